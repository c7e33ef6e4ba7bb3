"""`seml run` without typer: the same options, parsed with argparse.

`seml run` starts once per service, and typer's import and per-call parameter machinery cost
more than everything else the runtime does before the command starts (~150 ms of ~400 here).
`main()` sends `seml run ...` here unless help is asked for; `seml run --help` still shows
typer's help, and tests check that both parsers know the same options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seml.errors import UsageError

__all__ = ["OPTIONS", "execute", "parse", "run"]

MOUNTS = ("auto", "namespace", "workspace", "fuse")
# Every option of `seml run`, as typer declares them in seml.cli._run (checked by a test).
OPTIONS = (
    "--session",
    "--service",
    "--code",
    "--volumes-dir",
    "--session-hash",
    "--mount",
    "--simulation",
    "--no-simulation",
    "--platform-key",
    "--gpu",
    "--cas",
    "--cas-fingerprint",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"seml run: {message} (see seml run --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="seml run", add_help=False, allow_abbrev=False)
    p.add_argument("--session", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--code", action="append", type=Path, default=[])
    p.add_argument("--volumes-dir", type=Path, default=Path("volumes"))
    p.add_argument("--session-hash")
    p.add_argument("--mount", default="auto")
    p.add_argument("--simulation", dest="simulation", action="store_true", default=True)
    p.add_argument("--no-simulation", dest="simulation", action="store_false")
    p.add_argument("--platform-key", type=Path)
    p.add_argument("--gpu", default="auto", choices=("auto", "required", "simulate", "none"))
    p.add_argument("--cas")
    p.add_argument("--cas-fingerprint")
    return p


def parse(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(options, command) from the arguments after `run`."""
    if "--" in args:
        cut = args.index("--")
        args, command = args[:cut], args[cut + 1 :]
    else:
        command = []
    return _parser().parse_args(args), command


def run(args: list[str]) -> int:
    """Parse the arguments after `run` and run the service; return its exit status."""
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
        cas_url=options.cas,
        cas_fingerprint=options.cas_fingerprint,
    )


def execute(
    *,
    session: str,
    service: str,
    command: list[str],
    code: list[Path],
    volumes_dir: Path,
    session_hash: str | None,
    mount: str,
    simulation: bool,
    platform_key: Path | None,
    cas_url: str | None,
    cas_fingerprint: str | None,
    gpu: str = "auto",
) -> int:
    """What `seml run` does once its options are parsed (by typer, or by `_run_fast`)."""
    from seml.cas import client_from_env
    from seml.errors import UsageError
    from seml.runtime import RunOptions, default_platform_key, run_service

    if mount not in ("auto", "namespace", "workspace", "fuse"):
        raise UsageError(f"--mount must be auto, namespace, workspace or fuse, not {mount!r}")
    options = RunOptions(
        session=session,
        service=service,
        code=tuple(code),
        command=tuple(command),
        volumes_dir=volumes_dir,
        session_hash=session_hash,
        simulation=simulation,
        mount=mount,
        platform_key=platform_key or default_platform_key(),
        gpu=gpu,
    )
    with client_from_env(cas_url, cas_fingerprint) as cas:
        return run_service(options, cas).status
