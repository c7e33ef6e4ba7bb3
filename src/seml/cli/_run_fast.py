"""`seml run`: its options, declared once (argparse), and what it does with them.

`seml run` starts once per service, and typer's import and per-call parameter machinery cost
more than everything else the runtime does before the command starts (~150 ms of ~400 here).
So `seml run` never loads typer: `seml.cli.main` sends `seml run ...` (help included) here, and
this parser is the only declaration of its options, for parsing and for `--help` alike. The
typer app lists `run` among the commands with `SUMMARY` and hands any call back to `run()`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from seml.errors import UsageError

__all__ = ["CODE_HELP", "GPUS", "MOUNTS", "SUMMARY", "execute", "help_text", "parse", "run"]

SUMMARY = "Attest, receive the service's secrets and volumes, run the command, seal the volumes."
_DESCRIPTION = f"""{SUMMARY}

The command only starts if the attestation service accepted the evidence; its exit status
becomes seml's. Volumes are sealed as a new version only when the command succeeds (one
it left unchanged stays at its version).
Everything after -- is the command and its own arguments: seml reads none of them.

This machine's settings come from flags, else environment variables, else the profile
(seml --profile NAME run ..., or SEML_PROFILE; see seml init). The command also gets this
machine's storage endpoint and credentials (SEML_S3_ENDPOINT, AWS_*; their names are printed)
and its folders (--folder, the profile's) as NAME/ in its working directory."""
CODE_HELP = "A code file or folder the command runs; part of the measurement (repeatable)."
MOUNTS = ("auto", "namespace", "workspace", "fuse")
GPUS = ("auto", "required", "simulate", "none")
_MOUNT_HELP = (
    "How volumes appear: namespace (decrypted into a tmpfs workspace, bind-mounted at the "
    "session's paths, creating missing top-level folders; needs root), auto (the same, but only "
    "onto folders that already exist), workspace (paths relative to the working directory), "
    "fuse (decrypted on access through FUSE, for data larger than memory; relative paths). "
    "Default: auto."
)
_HELP = ("-h", "--help")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"seml run: {message} (see seml run --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="seml run",
        usage="seml run --session NAME --service NAME [OPTIONS] [-- COMMAND...]",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
        allow_abbrev=False,
    )
    p.add_argument("--session", required=True, metavar="NAME", help="Session name.")
    p.add_argument("--service", required=True, metavar="NAME", help="Service name in the session.")
    p.add_argument("--code", action="append", type=Path, default=[], metavar="PATH", help=CODE_HELP)
    p.add_argument(
        "--volumes-dir",
        type=Path,
        metavar="DIR",
        help="Where this machine keeps protected volumes (one folder per session/volume). "
        "Default: $SEML_VOLUMES_DIR, else the profile's, else ./volumes.",
    )
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="A folder of this machine the command sees as NAME/ in its working directory "
        "(repeatable; adds to and overrides the profile's folders).",
    )
    p.add_argument(
        "--seml",
        type=Path,
        metavar="FILE",
        help="The seml executable that runs a command whose program is `seml` (default: "
        "$SEML_EXECUTABLE, else the profile's, else this installation's).",
    )
    p.add_argument(
        "--session-hash",
        metavar="HASH",
        help="Refuse unless the session is at this exact hash (sha256:...).",
    )
    p.add_argument("--mount", choices=MOUNTS, default="auto", metavar="MODE", help=_MOUNT_HELP)
    p.add_argument(
        "--simulation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Allow software (simulated) evidence when no TEE is present. The session must "
        "also tolerate simulation. Default: allowed.",
    )
    p.add_argument(
        "--platform-key",
        type=Path,
        metavar="FILE",
        help="Simulated platform key (default: $SEML_PLATFORM_KEY, else the profile's, else "
        "~/.local/share/seml/platform.key). Stands in for the CPU's identity.",
    )
    p.add_argument(
        "--gpu",
        choices=GPUS,
        default="auto",
        metavar="MODE",
        help="GPU evidence: auto (NVIDIA GPUs in confidential-computing mode, found through "
        "NVML, when present), required, simulate (software GPU evidence, labelled simulation), "
        "none. Default: auto.",
    )
    p.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="Pass this machine's variable NAME to the command too (repeatable); the storage "
        "endpoint and credentials of the profile are passed anyway. Only these and PATH, LANG, "
        "LC_*, TZ, TERM, USER, LOGNAME come from this machine; a variable that loads code "
        "(PYTHONPATH, LD_PRELOAD, ...) is refused. The names are printed, never the values.",
    )
    p.add_argument(
        "--cas",
        metavar="URL",
        help="Attestation service URL, https://HOST:PORT; env SEML_CAS, else the profile's.",
    )
    p.add_argument(
        "--cas-fingerprint",
        metavar="PIN",
        help="Pinned sha256:... fingerprint of the service certificate; env "
        "SEML_CAS_FINGERPRINT, else the profile's.",
    )
    p.add_argument(*_HELP, action="help", help="Show this message and exit.")
    return p


def help_text() -> str:
    return _parser().format_help()


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    """(seml's options, the command): the command is everything after the first `--`."""
    if "--" in args:
        cut = args.index("--")
        return args[:cut], args[cut + 1 :]
    return args, []


def parse(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(options, command) from the arguments after `run`."""
    options, command = _split(args)
    return _parser().parse_args(options), command


def run(args: list[str]) -> int:
    """Parse the arguments after `run` and run the service; return its exit status."""
    if any(a in _HELP for a in _split(args)[0]):
        sys.stdout.write(help_text())
        return 0
    options, command = parse(args)
    return execute(
        session=options.session,
        service=options.service,
        command=command,
        code=options.code,
        volumes_dir=options.volumes_dir,
        session_hash=options.session_hash,
        mount=options.mount,
        simulation=options.simulation,
        platform_key=options.platform_key,
        gpu=options.gpu,
        pass_env=options.pass_env,
        cas_url=options.cas,
        cas_fingerprint=options.cas_fingerprint,
        folders=options.folder,
        seml=options.seml,
    )


def execute(
    *,
    session: str,
    service: str,
    command: list[str],
    code: list[Path],
    volumes_dir: Path | None,
    session_hash: str | None,
    mount: str,
    simulation: bool,
    platform_key: Path | None,
    cas_url: str | None,
    cas_fingerprint: str | None,
    gpu: str = "auto",
    pass_env: Sequence[str] = (),
    folders: list[str] | None = None,
    seml: Path | None = None,
) -> int:
    """What `seml run` does once its options are parsed."""
    from seml.cas import client_from_env
    from seml.cli._machine import run_machine
    from seml.runtime import RunOptions, run_service

    if mount not in MOUNTS:
        raise UsageError(f"--mount must be auto, namespace, workspace or fuse, not {mount!r}")
    if gpu not in GPUS:
        raise UsageError(f"--gpu must be auto, required, simulate or none, not {gpu!r}")
    machine = run_machine(
        cas_url=cas_url,
        cas_fingerprint=cas_fingerprint,
        volumes_dir=volumes_dir,
        platform_key=platform_key,
        seml=seml,
        folders=folders or [],
    )
    if machine.profile is not None:
        print(f"seml run: profile {machine.profile}", file=sys.stderr, flush=True)
    for name in machine.missing:
        what = f"no {name}" if " " in name else f"${name} is not set"
        print(
            f"seml run: warning: {what}: the profile takes storage credentials from there, so "
            "the service gets none",
            file=sys.stderr,
            flush=True,
        )
    passed = dict(machine.pass_env)
    for name in pass_env:
        if "=" in name:
            raise UsageError(
                f"--pass-env takes a variable's NAME, not {name.split('=')[0]}=...: values never "
                "go on the command line"
            )
        if name not in os.environ:
            raise UsageError(f"--pass-env {name}: {name} is not set in this environment")
        passed[name] = os.environ[name]
    options = RunOptions(
        session=session,
        service=service,
        code=tuple(code),
        command=tuple(command),
        volumes_dir=machine.volumes_dir,
        session_hash=session_hash,
        simulation=simulation,
        mount=mount,
        platform_key=machine.platform_key,
        gpu=gpu,
        pass_env=passed,
        folders=machine.folders,
        seml=machine.seml,
    )
    with client_from_env(machine.cas_url, machine.cas_fingerprint) as cas:
        return run_service(options, cas).status
