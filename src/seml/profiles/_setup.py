"""`seml init`: make this machine's profile, and the folders and keys it names.

A party's machine gets a signing key (its identity in sessions), a simulated platform key (its
machine's identity), a volumes folder, a sync-state folder and its data folders: `data/` (what
it uploads), `input/` (rows it runs models on), `output/` (results). An operator's machine gets
an attestation service (state folder with its keys and certificate), a platform key for the
cloud services, a volumes folder and a sync-state folder; given `--cas` (and no `--listen` or
`--advertise`), its service runs on another machine and this one is only the cloud machine.
Nothing that exists is overwritten: running init again fills in what is missing and updates
what is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seml.errors import StorageError, UsageError
from seml.profiles._model import (
    FOLDER_NAME,
    CasEndpoint,
    ConfigFile,
    Credentials,
    Profile,
    ServiceSettings,
    StorageSettings,
)

__all__ = ["PARTY_FOLDERS", "InitRequest", "InitResult", "init_profile"]

# A party's data folders by the names sessions use (`seml run` links each into a service's
# working directory), with what they are for.
PARTY_FOLDERS = {
    "data": "what your upload service pushes (encrypted) to storage",
    "input": "the rows you run models on",
    "output": "what your services write for you: predictions, metrics",
}


@dataclass(frozen=True)
class InitRequest:
    """What `seml init` was asked for; None: keep the profile's value, else the default."""

    role: str
    profile: str
    party: str | None = None
    root: Path | None = None
    cas_url: str | None = None
    cas_fingerprint: str | None = None
    storage: str | None = None
    s3_endpoint: str | None = None
    credentials: Credentials | None = None
    folders: Mapping[str, Path] = field(default_factory=dict)
    seml: Path | None = None
    listen: str | None = None
    advertise: str | None = None
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitResult:
    """The profile written, what was created for it now, and the public facts to send."""

    name: str
    profile: Profile
    updated: bool
    made: list[tuple[str, Path]]  # (what, path) created by this run
    platform_id: str
    public_key: str | None = None  # a party's, base64
    service_urls: list[str] = field(default_factory=list)  # an operator's, best first


def _mkdir(path: Path, made: list[tuple[str, Path]], what: str, mode: int = 0o755) -> None:
    if path.is_dir():
        return
    try:
        path.mkdir(mode=mode, parents=True)
    except FileExistsError:
        raise UsageError(f"{path} ({what}) exists and is not a folder") from None
    except OSError as e:
        raise StorageError(f"cannot create {path} ({what}): {e.strerror or e}") from e
    made.append((what, path))


def _signing_key(path: Path, party: str, made: list[tuple[str, Path]]) -> str:
    from seml._fs import write_atomic
    from seml.policy import load_private_key, new_key_pair, public_key_text, write_private_key

    public = path.with_suffix(".pub")
    if path.exists():
        key = load_private_key(path)
    else:
        _mkdir(path.parent, made, "keys folder", 0o700)
        key = new_key_pair()
        write_private_key(path, key.pem())
        made.append((f"signing key of {party}", path))
    text = public_key_text(key.public)
    if not public.exists():
        write_atomic(public, text + "\n")
    return text


def _platform(path: Path, made: list[tuple[str, Path]]) -> str:
    from seml.runtime import init_platform_key, platform_of

    if path.exists():
        return platform_of(path)
    _mkdir(path.parent, made, "keys folder", 0o700)
    ident = init_platform_key(path)
    made.append(("platform key (simulated)", path))
    return ident


def _service(
    request: InitRequest,
    old: ServiceSettings | None,
    root: Path,
    made: list[tuple[str, Path]],
    *,
    now: dt.datetime,
    interfaces: Iterable[str],
) -> tuple[ServiceSettings, CasEndpoint, list[str]]:
    from seml.cas._identity import MASTER_KEY, init_state_dir, load_identity
    from seml.cas._serve import client_urls, parse_listen

    state = old.state if old is not None else root / "cas"
    listen = request.listen or (old.listen if old is not None else "0.0.0.0:8443")
    advertise = request.advertise or (old.advertise if old is not None else None)
    host, port = parse_listen(listen)
    urls = client_urls(host, port, list(interfaces), advertise=advertise)
    if (state / MASTER_KEY).exists():
        identity = load_identity(state)
    else:
        names = [u.removeprefix("https://").rpartition(":")[0].strip("[]") for u in urls]
        hosts = list(dict.fromkeys([*request.hosts, *names, "localhost", "127.0.0.1", "::1"]))
        identity = init_state_dir(state, hosts=hosts, now=now)
        made.append(("attestation service (keys, TLS certificate)", state))
    settings = ServiceSettings(state=state, listen=listen, advertise=advertise)
    return settings, CasEndpoint(url=urls[0], fingerprint=identity.fingerprint), urls


def _check(request: InitRequest) -> None:
    """Refuse malformed values before anything is created."""
    import os

    from seml.policy import schema_errors

    if request.role not in ("party", "operator"):
        raise UsageError(f"--role is party or operator, not {request.role!r}")
    with schema_errors("seml init --cas"):
        CasEndpoint(url=request.cas_url, fingerprint=request.cas_fingerprint)
    with schema_errors("seml init --storage"):
        StorageSettings(location=request.storage, endpoint=request.s3_endpoint)
    if request.advertise is not None:
        with schema_errors("seml init --advertise"):
            CasEndpoint(url=request.advertise)
    import re

    for name in request.folders:
        if not re.fullmatch(FOLDER_NAME, name):
            raise UsageError(f"--folder {name!r}: a folder's name is letters, digits, _ . -")
    if request.role == "party" and (request.listen or request.advertise or request.hosts):
        raise UsageError("--listen, --advertise and --host are for --role operator")
    if request.listen is not None:
        from seml.cas._serve import parse_listen

        if parse_listen(request.listen)[1] == 0:
            raise UsageError(
                "the operator's --listen needs a fixed port: the parties pin the service's URL"
            )
    if request.seml is not None and not (
        request.seml.is_file() and os.access(request.seml, os.X_OK)
    ):
        raise UsageError(f"--seml {request.seml} is not an executable file")


def init_profile(
    config: ConfigFile,
    request: InitRequest,
    *,
    default_root: Path,
    default_seml: Path | None,
    now: dt.datetime,
    interfaces: Iterable[str] = (),
) -> tuple[ConfigFile, InitResult]:
    """The configuration with the profile made or updated (current), after creating the
    folders and keys it names. `interfaces` are this machine's addresses (operator URLs)."""
    _check(request)
    old = config.profiles.get(request.profile)
    if old is not None and old.role != request.role:
        raise UsageError(
            f"profile {request.profile} is a {old.role} profile, not {request.role}: choose "
            "another name with --profile"
        )
    party = request.party or (old.party if old is not None else None)
    if request.role == "party" and party is None:
        raise UsageError("a party's profile needs --name PARTY (its name in sessions)")
    if old is not None and request.party and old.party and request.party != old.party:
        raise UsageError(f"profile {request.profile} is party {old.party}'s, not {request.party}'s")
    root = (request.root or default_root).absolute()
    made: list[tuple[str, Path]] = []

    def keep(value: Path | None, default: Path) -> Path:
        return value if value is not None else default

    volumes = keep(old.volumes if old else None, root / "volumes")
    state = keep(old.state if old else None, root / "state")
    platform_key = keep(old.platform_key if old else None, root / "keys" / "platform.key")
    folders = dict(old.folders) if old is not None else {}
    if request.role == "party" and old is None:
        folders = {name: root / name for name in PARTY_FOLDERS}
    folders.update({k: v.absolute() for k, v in request.folders.items()})

    _mkdir(root, made, "profile root")
    _mkdir(volumes, made, "protected volumes")
    _mkdir(state, made, "sync state", 0o700)
    for name, path in folders.items():
        _mkdir(path, made, f"folder {name}")
    platform_id = _platform(platform_key, made)

    signing_key = old.signing_key if old is not None else None
    service = old.service if old is not None else None
    cas = old.cas if old is not None else CasEndpoint()
    public_key: str | None = None
    urls: list[str] = []
    if party is not None and request.role == "party":
        signing_key = keep(signing_key, root / "keys" / f"{party}.key")
        public_key = _signing_key(signing_key, party, made)
    elif service is None and request.cas_url and not (request.listen or request.advertise):
        pass  # an operator's cloud machine using a service that runs on another machine
    else:
        service, cas, urls = _service(request, service, root, made, now=now, interfaces=interfaces)
    cas = CasEndpoint(
        url=request.cas_url or cas.url, fingerprint=request.cas_fingerprint or cas.fingerprint
    )
    old_storage = old.storage if old is not None else StorageSettings()
    location = request.storage or old_storage.location
    credentials = request.credentials or old_storage.credentials
    if credentials is None and location and location.startswith("s3://"):
        credentials = Credentials.model_validate({"env": {}})  # AWS's standard variables
    storage = StorageSettings(
        location=location,
        endpoint=request.s3_endpoint or old_storage.endpoint,
        credentials=credentials,
    )
    seml = request.seml or (old.seml if old is not None else None) or default_seml
    from seml.policy import schema_errors

    with schema_errors(f"profile {request.profile}"):
        profile = Profile(
            role=request.role,  # type: ignore[arg-type]  # checked by the model
            party=party,
            signing_key=signing_key,
            platform_key=platform_key,
            cas=cas,
            service=service,
            volumes=volumes,
            state=state,
            folders=folders,
            storage=storage,
            seml=seml.absolute() if seml is not None else None,
        )
    result = InitResult(
        name=request.profile,
        profile=profile,
        updated=old is not None,
        made=made,
        platform_id=platform_id,
        public_key=public_key,
        service_urls=urls,
    )
    profiles = {**config.profiles, request.profile: profile}
    return ConfigFile(current=request.profile, profiles=profiles), result
