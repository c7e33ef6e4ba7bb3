"""The Job `seml deploy k8s` renders, run here for real against the attestation service.

Its container's args and environment are used as rendered; only what kubelet would provide
is supplied by the test: the ConfigMap's values (this CAS's URL and pin), the Secrets' files and
values, and a folder for each mount. A simulated Job attests with the platform key from its
Secret and runs the session's command; the same service rendered for SGX refuses to fall back
to software evidence.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _k8s import deploy_job, documents, seml
from seml.cas import LocalCas
from seml.policy import new_key_pair, public_key_text, session_from_document, sign_session
from seml.runtime import init_platform_key, measure

pytestmark = pytest.mark.integration

PROGRAM = (
    "import os, pathlib; "
    "pathlib.Path('out').mkdir(exist_ok=True); "
    "pathlib.Path('out/model.txt').write_text('trained'); "
    "print('secret length', len(os.environ['MODEL_KEY']))"
)


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCas]:
    with LocalCas(tmp_path_factory.mktemp("cas") / "state") as server:
        yield server


@pytest.fixture(scope="module")
def session(cas: LocalCas, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Session k8sjob: service train, pinned to a platform whose key lies in `platform.key`."""
    secret_dir = tmp_path_factory.mktemp("platform-secret")
    platform = init_platform_key(secret_dir / "platform.key")
    key = new_key_pair()
    document: dict[str, Any] = {
        "version": 1,
        "name": "k8sjob",
        "parties": {"alice": public_key_text(key.public)},
        "approval": {"create": ["alice"], "update": ["alice"]},
        "security": {"tolerate": ["simulation"]},
        "secrets": [{"name": "model_key", "kind": "ascii", "size": 32, "readers": ["train"]}],
        "volumes": [{"name": "model"}],
        "services": [
            {
                "name": "train",
                "measurements": [measure([], [])],
                "platforms": [platform],
                "command": ["python3", "-c", PROGRAM],
                "environment": {"MODEL_KEY": "$$SEML::model_key$$"},
                "volumes": {"model": "/out"},
            }
        ],
    }
    s = session_from_document(document)
    with cas.client() as client:
        answer = client.submit_session(s, [sign_session(s, "alice", key)])
    return answer.hash, secret_dir


def _run_job(
    job: dict[str, Any], cas: LocalCas, root: Path, secret_dir: Path
) -> subprocess.CompletedProcess[str]:
    """Run the Job's container here, providing what kubelet would."""
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    where: dict[str, str] = {}
    for m in c["volumeMounts"]:
        if "secret" in volumes[m["name"]]:
            where[m["mountPath"]] = str(secret_dir)
        elif m["mountPath"] != "/dev/shm":  # the host's own tmpfs serves
            (root / m["name"]).mkdir(parents=True, exist_ok=True)
            where[m["mountPath"]] = str(root / m["name"])
    configmap = {"SEML_CAS": cas.url, "SEML_CAS_FINGERPRINT": cas.fingerprint}
    secret = {"AWS_ACCESS_KEY_ID": "unused-id", "AWS_SECRET_ACCESS_KEY": "unused-secret"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEML_", "AWS_"))}
    env["SEML_CONFIG_DIR"] = os.environ["SEML_CONFIG_DIR"]  # no profile of the user's
    for e in c["env"]:
        ref = e["valueFrom"]
        if "configMapKeyRef" in ref:
            assert ref["configMapKeyRef"]["name"] in ("seml-cas", "seml-storage")
            if ref["configMapKeyRef"]["key"] in configmap:
                env[e["name"]] = configmap[ref["configMapKeyRef"]["key"]]
            else:
                assert ref["configMapKeyRef"]["optional"] is True
        else:
            env[e["name"]] = secret[ref["secretKeyRef"]["key"]]
    env["TMPDIR"] = where["/tmp"]

    def mapped(arg: str) -> str:
        for mount, local in where.items():
            if arg == mount or arg.startswith(mount + "/"):
                return local + arg[len(mount) :]
        return arg

    return subprocess.run(
        [*seml(), *map(mapped, c["args"])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=mapped(c["workingDir"]),
    )


def _render(tee: str, session_hash: str, *extra: str) -> dict[str, Any]:
    done = deploy_job(
        "--session", "k8sjob", "--service", "train", "--image", "r/seml:1", "--tee", tee,
        "--session-hash", session_hash, *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (job,) = documents(done.stdout)
    return job


def test_simulated_job_attests_runs_and_seals(
    cas: LocalCas, session: tuple[str, Path], tmp_path: Path
) -> None:
    session_hash, secret_dir = session
    done = _run_job(_render("simulation", session_hash), cas, tmp_path, secret_dir)
    assert done.returncode == 0, done.stderr
    assert "secret length 32" in done.stdout
    assert "SIMULATED" in done.stderr
    sealed = tmp_path / "data" / "volumes" / "k8sjob" / "model"
    assert sealed.is_dir() and any(sealed.rglob("*"))
    assert b"trained" not in b"".join(p.read_bytes() for p in sealed.rglob("*") if p.is_file())


def test_sgx_job_refuses_software_evidence(
    cas: LocalCas, session: tuple[str, Path], tmp_path: Path
) -> None:
    session_hash, secret_dir = session
    done = _run_job(_render("sgx", session_hash), cas, tmp_path, secret_dir)
    assert done.returncode == 5, done.stderr
    assert "no TEE found" in done.stderr and "secret length" not in done.stdout


def test_job_pinned_to_another_session_version_is_refused(
    cas: LocalCas, session: tuple[str, Path], tmp_path: Path
) -> None:
    _, secret_dir = session
    done = _run_job(_render("simulation", "sha256:" + "0" * 64), cas, tmp_path, secret_dir)
    assert done.returncode != 0 and "secret length" not in done.stdout
    assert "sha256:" + "0" * 64 in done.stderr
