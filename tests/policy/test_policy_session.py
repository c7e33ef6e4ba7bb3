"""Session schema: valid documents, precise errors, canonical hash, garbage handling."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from seml.errors import UsageError
from seml.policy import (
    SecretKind,
    new_key_pair,
    parse_session,
    placeholders_in,
    public_key_text,
    session_from_document,
    session_hash,
)

KEY_A = public_key_text(new_key_pair().public)
KEY_B = new_key_pair().public.hex()
M = "ab" * 32
ZERO = "sha256:" + "0" * 64


def doc() -> dict[str, Any]:
    return {
        "version": 1,
        "name": "shared",
        "predecessor": None,
        "parties": {"A": KEY_A, "B": KEY_B},
        "approval": {"create": ["A", "B"], "update": ["A", "B"]},
        "security": {"tolerate": ["simulation"], "ignore_advisories": ["INTEL-SA-00615"]},
        "secrets": [
            {"name": "dk", "kind": "key", "readers": ["train"]},
            {"name": "tls", "kind": "x509", "readers": ["train"]},
            {"name": "pw", "kind": "provided", "provided_by": "A", "readers": ["train"]},
            {"name": "imp", "import": {"session": "a-private", "secret": "data"}, "readers": []},
        ],
        "volumes": [{"name": "out"}],
        "services": [
            {
                "name": "train",
                "measurements": [M],
                "command": ["python", "train.py"],
                "environment": {"KEY": "$$SEML::dk:base64$$", "PW": "$$SEML::pw$$"},
                "files": {"/etc/tls.pem": "$$SEML::tls.crt$$\n$$SEML::tls.key$$"},
                "volumes": {"out": "/out"},
            }
        ],
        "storage": {"location": "s3://bucket/prefix"},
    }


def error_for(mutate: Any) -> str:
    d = doc()
    mutate(d)
    with pytest.raises(UsageError) as e:
        session_from_document(d)
    return str(e.value)


def test_valid_document_parses_with_both_key_encodings() -> None:
    s = session_from_document(doc())
    assert s.name == "shared"
    assert s.secret("dk") is not None and s.secret("dk").kind is SecretKind.KEY  # type: ignore[union-attr]
    assert s.secret("imp").import_ is not None  # type: ignore[union-attr]
    assert s.service("train") is not None and s.service("nope") is None


def test_hash_ignores_yaml_style_key_order_and_comments() -> None:
    d = doc()
    text1 = yaml.safe_dump(d, sort_keys=True)
    text2 = "# a comment\n" + yaml.safe_dump(d, sort_keys=False, default_flow_style=True)
    h1, h2 = session_hash(parse_session(text1)), session_hash(parse_session(text2))
    assert h1 == h2 and h1.startswith("sha256:") and len(h1) == 71


def test_hash_changes_with_any_meaningful_change() -> None:
    base = session_hash(session_from_document(doc()))
    d = doc()
    d["services"][0]["measurements"] = ["ef" * 32]
    assert session_hash(session_from_document(d)) != base
    d = doc()
    d["security"]["tolerate"] = []
    assert session_hash(session_from_document(d)) != base


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["services"][0].update(bogus=1), "unknown key 'bogus' in services[0]"),
        (
            lambda d: d["secrets"][0].update(reader=d["secrets"][0].pop("readers")),
            "unknown key 'reader' in secrets[0] (did you mean 'readers'?)",
        ),
        (
            lambda d: d["services"][0].update(comand=d["services"][0].pop("command")),
            "unknown key 'comand' in services[0] (did you mean 'command'?)",
        ),
        (lambda d: d.update(partys=d.pop("parties")), "unknown key 'partys' in the session"),
        (
            lambda d: d["services"][0].update(measurements=[]),
            "services[0].measurements: must list at least one",
        ),
        (
            lambda d: d["services"][0].update(measurements=["xyz"]),
            "services[0].measurements[0]: value 'xyz' is not a measurement: 32 to 128 lowercase "
            "hex digits",
        ),
        (lambda d: d["services"][0].pop("measurements"), "services[0]: missing key 'measurements'"),
        (lambda d: d.update(parties={}), "parties: must list at least one"),
        (lambda d: d["parties"].update(B="not-a-key!"), "party B"),
        (lambda d: d["approval"].update(update=["A", "C"]), "approval.update: C is not one"),
        (
            lambda d: d["approval"].update(create=[]),
            "approval.create: an empty rule would need nobody's approval",
        ),
        (
            lambda d: d["services"][0]["environment"].update(X="$$SEML::nope$$"),
            "services[0].environment.X: no secret named nope",
        ),
        (
            lambda d: d["secrets"][0].update(readers=[]),
            "services[0].environment.KEY: service train is not a reader of secret dk",
        ),
        (
            lambda d: d["services"][0]["environment"].update(X="$$SEML::dk;hex$$"),
            "services[0].environment.X: malformed secret placeholder",
        ),
        (lambda d: d["services"][0]["volumes"].update(v2="/v2"), "no volume named v2"),
        (lambda d: d["secrets"][0].update(readers=["ghost"]), "secrets[0].readers: no service"),
        (lambda d: d["secrets"].append(dict(d["secrets"][0])), "secret dk is defined twice"),
        (
            lambda d: d["secrets"][0].update(kind="rsa"),
            "secrets[0].kind: 'rsa' is not one of 'key', 'ascii'",
        ),
        (lambda d: d["secrets"][0].pop("kind"), "a secret needs a kind"),
        (lambda d: d["secrets"][1].update(size=32), "size does not apply to kind x509"),
        (lambda d: d["secrets"][1].update(size="big"), "secrets[1].size: must be a whole number"),
        (lambda d: d["secrets"][2].pop("provided_by"), "provided_by is required"),
        (lambda d: d["secrets"][3].update(kind="key"), "an imported secret takes no kind"),
        (
            lambda d: d["services"][0]["environment"].update(X="$$SEML::dk.key$$"),
            ".key applies only to ed25519/x509",
        ),
        (lambda d: d.update(version=2), "version: 2 is not one of 1"),
        (
            lambda d: d["services"][0]["command"].append("--key=$$SEML::dk$$"),
            "services[0].command[2]: no secrets in the command line",
        ),
        (
            lambda d: d["security"].update(tolerate=["simulaton"]),
            "security.tolerate[0]: 'simulaton' is not one of 'simulation', 'debug'",
        ),
        (lambda d: d["security"].update(tolerate=["simulaton"]), "(did you mean 'simulation'?)"),
        (lambda d: d["security"].update(tolerate=["revoked"]), "security.tolerate[0]"),
        (lambda d: d.update(predecessor="sha256:12"), "predecessor: value 'sha256:12' is not a"),
        (lambda d: d.update(name="bad name"), "name: value 'bad name' is not a name"),
        (
            lambda d: d["volumes"][0].update(
                export=[
                    {"session": "shared", "session_hash": "sha256:" + "0" * 64, "services": ["x"]}
                ]
            ),
            "cannot export to itself",
        ),
    ],
)
def test_errors_name_the_offending_key(mutate: Any, expected: str) -> None:
    assert expected in error_for(mutate)


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(UsageError, match="not valid YAML at line"):
        parse_session("a: [1, 2\nb: {", source="x.yaml")
    with pytest.raises(UsageError, match=r"x\.yaml: a session is a mapping"):
        parse_session("- 1\n- 2\n", source="x.yaml")


def test_placeholder_syntax() -> None:
    found = placeholders_in(
        "a $$SEML::k$$ b $$SEML::t.crt$$ $$SEML::x:base64$$ $$SEML::e.pub:hex$$"
    )
    assert [(p.name, p.part, p.encoding) for p in found] == [
        ("k", None, None),
        ("t", "crt", None),
        ("x", None, "base64"),
        ("e", "pub", "hex"),
    ]
    assert placeholders_in("no placeholders, just $$ signs $") == []
    with pytest.raises(ValueError, match="malformed"):
        placeholders_in("$$SEML::k")


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.text(max_size=400))
def test_garbage_text_gives_clean_errors(text: str) -> None:
    try:
        parse_session(text)
    except UsageError as e:
        assert str(e).startswith("session: ")


@given(st.binary(max_size=200))
def test_garbage_bytes_give_clean_errors(data: bytes) -> None:
    try:
        parse_session(data)
    except UsageError as e:
        assert str(e).startswith("session: ")


@given(_data)
def test_garbage_documents_give_clean_errors(data: Any) -> None:
    with pytest.raises(UsageError, match=r"^session: \S"):
        session_from_document(data)


@given(st.sampled_from(list(doc())), _data)
def test_one_garbage_field_gives_clean_errors(key: str, value: Any) -> None:
    d = copy.deepcopy(doc())
    d[key] = value
    try:
        session_from_document(d)
    except UsageError as e:
        assert str(e)


@pytest.mark.parametrize(
    ("files", "volumes", "expected"),
    [
        ({"//etc/x": "v"}, {}, "file path '//etc/x' has an empty component"),
        ({"/etc/x/": "v"}, {}, "has an empty component (// or a trailing /)"),
        ({"/a/../../x": "v"}, {}, "file path '/a/../../x' has a '..' component"),
        ({"/a/./x": "v"}, {}, "has a '.' component"),
        ({"/": "v"}, {}, "cannot be / itself"),
        ({"relative/x": "v"}, {}, "must be absolute"),
        ({"/" + "n" * 300: "v"}, {}, "has a component longer than 128 bytes"),
        ({"/a" * 600: "v"}, {}, "is longer than 1024 bytes"),
        ({"/a\x00b": "v"}, {}, "contains a control character"),
        ({"/a\nb": "v"}, {}, "contains a control character"),
        ({"/a": "v", "/a/b": "w"}, {}, "file /a/b is inside file /a"),
        ({"/out/secret.pem": "v"}, {}, "file /out/secret.pem is inside volume out at /out"),
        ({"/out": "v"}, {}, "file /out and volume out at /out are the same path"),
        ({}, {"out": "/"}, "volume path '/' cannot be / itself"),
        ({}, {"out": "//out"}, "volume path '//out' has an empty component"),
    ],
)
def test_session_paths_are_checked_when_the_session_is(
    files: dict[str, str], volumes: dict[str, str], expected: str
) -> None:
    """Issue 11: `//etc/x`, a 300-character name, a file on a volume's path, `/a` and `/a/b`
    both files passed `session check` and crashed `seml run` after keys were released."""

    def mutate(d: dict[str, Any]) -> None:
        d["services"][0]["files"] = files
        d["services"][0]["volumes"].update(volumes)

    message = error_for(mutate)
    assert "services[0]: " in message and expected in message, message


def test_two_volumes_cannot_nest() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["volumes"].append({"name": "inner"})
        d["services"][0]["volumes"]["inner"] = "/out/inner"

    assert "volume inner at /out/inner is inside volume out at /out" in error_for(mutate)


@pytest.mark.parametrize("name", ["PYTHONPATH", "LD_PRELOAD", "PYTHONSTARTUP", "NODE_OPTIONS"])
def test_a_session_may_not_set_a_code_loading_variable(name: str) -> None:
    message = error_for(lambda d: d["services"][0]["environment"].update({name: "/x"}))
    assert f"services[0].environment: {name} may not be set" in message
    assert "load code the measurement does not cover" in message
