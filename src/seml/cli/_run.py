"""`seml run` and `seml measure`: run a command as an attested service of a session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from seml.cli._cas import CasFingerprint, CasUrl

__all__ = ["register"]

Code = Annotated[
    list[Path] | None,
    typer.Option(
        "--code",
        help="A code file or folder the command runs; part of the measurement (repeatable).",
    ),
]
Command = Annotated[
    list[str] | None,
    typer.Argument(
        help="The command, after --. Omit it to run the session's own command.",
        show_default=False,
    ),
]


PlatformKey = Annotated[
    Path | None,
    typer.Option(
        "--platform-key",
        help="Simulated platform key (default: $SEML_PLATFORM_KEY, else "
        "~/.local/share/seml/platform.key). Stands in for the CPU's identity.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("run", context_settings={"allow_interspersed_args": False})(run)
    app.command("measure", context_settings={"allow_interspersed_args": False})(measure)
    platform = typer.Typer(
        help="This machine's simulated platform identity (what a TEE's PPID would be).",
        no_args_is_help=True,
    )
    platform.command("init")(platform_init)
    platform.command("id")(platform_show)
    app.add_typer(platform, name="platform")


def platform_init(key: PlatformKey = None) -> None:
    """Create this machine's simulated platform key (0600) and print its id.

    Simulation only: whoever can read the key file can claim to be this platform.
    """
    from seml.runtime import default_platform_key, init_platform_key

    path = key or default_platform_key()
    typer.echo(init_platform_key(path))
    typer.echo(f"platform key written to {path} (simulated: it models a CPU identity)", err=True)


def platform_show(key: PlatformKey = None) -> None:
    """Print the platform id to list in a service's `platforms`."""
    from seml.runtime import default_platform_key, platform_of

    typer.echo(platform_of(key or default_platform_key()))


def measure(code: Code = None, command: Command = None) -> None:
    """Print the simulated measurement of a service: the value to list in its session.

    It is a SHA-256 over the seml runtime's own source, the --code files and the command
    (empty when the session supplies the command). `seml run` computes the same value.
    """
    from seml.runtime import measure as compute

    typer.echo(compute(code or [], command or []))


def run(
    session: Annotated[str, typer.Option("--session", help="Session name.")],
    service: Annotated[str, typer.Option("--service", help="Service name in the session.")],
    command: Command = None,
    code: Code = None,
    volumes_dir: Annotated[
        Path,
        typer.Option(
            "--volumes-dir",
            help="Where this machine keeps protected volumes (one folder per session/volume).",
        ),
    ] = Path("volumes"),
    session_hash: Annotated[
        str | None,
        typer.Option("--session-hash", help="Refuse unless the session is at this exact hash."),
    ] = None,
    mount: Annotated[
        str,
        typer.Option(
            "--mount",
            help="How volumes appear: namespace (decrypted into a tmpfs workspace, bind-mounted "
            "at the session's paths, creating missing top-level folders; needs root), auto "
            "(the same, but only onto folders that already exist), workspace (paths relative "
            "to the working directory), fuse (decrypted on access through FUSE, for data "
            "larger than memory; relative paths).",
        ),
    ] = "auto",
    simulation: Annotated[
        bool,
        typer.Option(
            "--simulation/--no-simulation",
            help="Allow software (simulated) evidence when no TEE is present. The session must "
            "also tolerate simulation.",
        ),
    ] = True,
    platform_key: PlatformKey = None,
    gpu: Annotated[
        str,
        typer.Option(
            "--gpu",
            help="GPU evidence: auto (NVIDIA GPUs in confidential-computing mode, found through "
            "NVML, when present), required, simulate (software GPU evidence, labelled "
            "simulation), none.",
        ),
    ] = "auto",
    cas_url: CasUrl = None,
    cas_fingerprint: CasFingerprint = None,
) -> None:
    """Attest, receive the service's secrets and volumes, run the command, seal the volumes.

    The command only starts if the attestation service accepted the evidence; its exit status
    becomes seml's. Volumes are sealed as a new version only when the command succeeds.
    """
    from seml.cli._run_fast import execute

    status = execute(
        session=session,
        service=service,
        command=command or [],
        code=code or [],
        volumes_dir=volumes_dir,
        session_hash=session_hash,
        mount=mount,
        simulation=simulation,
        platform_key=platform_key,
        gpu=gpu,
        cas_url=cas_url or os.environ.get("SEML_CAS"),
        cas_fingerprint=cas_fingerprint or os.environ.get("SEML_CAS_FINGERPRINT"),
    )
    raise typer.Exit(status)
