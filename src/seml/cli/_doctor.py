"""`seml doctor`: this machine against its profile, one line per check with the fix."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import UsageError

if TYPE_CHECKING:
    from seml.profiles import Profile
    from seml.profiles._doctor import Check
    from seml.store import ObjectStore

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


@contextlib.contextmanager
def _environment(overlay: Mapping[str, str]) -> Iterator[None]:
    """Run the storage probe with what `seml run` gives a service on this machine."""
    saved = dict(os.environ)
    os.environ.update(overlay)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def checks(profile: Profile, environ: Mapping[str, str]) -> list[Check]:
    """Every check of this machine, with the settings its commands would use (flags aside:
    environment variables over the profile)."""
    from seml import __version__
    from seml.attest._providers import GRAMINE_ROOT, TSM_REPORT_ROOT
    from seml.cas._identity import IDENTITY_KEY, MASTER_KEY, TLS_KEY
    from seml.cli import seml_command
    from seml.cli._machine import seml_executable, setting
    from seml.policy import load_private_key
    from seml.profiles import storage_environment
    from seml.profiles._doctor import (
        check_cas,
        check_folder,
        check_fuse,
        check_key_file,
        check_seml,
        check_storage,
        check_tee,
    )
    from seml.runtime import load_platform_key, measure
    from seml.store import open_store
    from seml.volume import fuse_available

    def get(var: str) -> str | None:
        return setting(var, None, environ)

    found = [
        check_seml(
            version=__version__,
            measurement=measure([], []),
            executable=seml_executable(None, environ),
            this=seml_command(),
            environ=environ,
        ),
        check_cas(get("SEML_CAS"), get("SEML_CAS_FINGERPRINT")),
    ]
    again = "seml init creates it (never over an existing file)"
    if profile.role == "party":
        found.append(
            check_key_file(
                "signing key", _path(get("SEML_SIGNING_KEY")), load_private_key, create=again
            )
        )
    found.append(
        check_key_file(
            "platform key", _path(get("SEML_PLATFORM_KEY")), load_platform_key, create=again
        )
    )
    if profile.service is not None:
        state = _path(get("SEML_CAS_STATE")) or profile.service.state
        for name in (MASTER_KEY, IDENTITY_KEY, TLS_KEY):
            found.append(
                check_key_file(
                    f"service {name}",
                    state / name,
                    lambda p: p.read_bytes(),
                    create=f"seml cas init {state} (on a new state folder)",
                )
            )
    found.append(check_folder("volumes folder", _path(get("SEML_VOLUMES_DIR"))))
    found.append(check_folder("sync state folder", _path(get("SEML_STATE_DIR"))))
    for name, path in profile.folders.items():
        found.append(check_folder(f"folder {name}/", path))
    endpoint = get("SEML_S3_ENDPOINT")
    location = get("SEML_STORAGE")
    overlay, missing = storage_environment(profile.storage, environ, endpoint=endpoint)

    def store() -> ObjectStore:
        return open_store(location or "", s3_endpoint=endpoint)

    with _environment(overlay):
        found.append(
            check_storage(
                location,
                store,
                missing=missing,
                describe=f" (endpoint {endpoint})" if endpoint else "",
            )
        )
    found.append(check_fuse(fuse_available()))
    found.append(check_tee(gramine_root=GRAMINE_ROOT, tsm_root=TSM_REPORT_ROOT))
    return found


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check this machine against its profile: one line per check, with the fix.

    Checks the attestation service and its pin, the keys and their modes, the folders, storage
    (a real put, get and delete of a probe object), FUSE, TEE interfaces or simulation, and the
    seml version and measurement. Exits 1 if a check fails. Another profile: seml --profile
    NAME doctor."""
    from seml.cli._machine import selected

    chosen = selected()
    if chosen.profile is None:
        raise UsageError(
            f"no profile to check (none current in {chosen.path}): create one with seml init"
        )
    p = chosen.profile
    who = f"party {p.party}" if p.role == "party" else "operator"
    found = checks(p, os.environ)
    failed = [c for c in found if c.status == "fail"]
    if as_json:
        import json

        typer.echo(
            json.dumps(
                {
                    "profile": chosen.name,
                    "config": str(chosen.path),
                    "checks": [c.__dict__ for c in found],
                    "ok": not failed,
                },
                indent=2,
            )
        )
    else:
        typer.echo(f"profile {chosen.name} ({who}) from {chosen.path}, selected by {chosen.how}")
        for c in found:
            typer.echo(c.line())
        warned = sum(c.status == "warn" for c in found)
        summary = f"{len(failed)} failed" if failed else "all passed"
        typer.echo(f"{len(found)} checks: {summary}" + (f", {warned} warning(s)" if warned else ""))
    if failed:
        raise typer.Exit(1)
