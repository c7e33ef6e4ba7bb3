"""`seml measure`, `seml platform`, and `run` as typer lists it (its options and parsing live
in `seml.cli._run_fast`, which `seml run` uses without loading typer)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.cli._run_fast import CODE_HELP, SUMMARY

if TYPE_CHECKING:
    from seml.runtime import Explanation

__all__ = ["register"]

Code = Annotated[list[Path] | None, typer.Option("--code", help=CODE_HELP)]
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
        envvar="SEML_PLATFORM_KEY",
        show_envvar=False,
        help="Simulated platform key (default: $SEML_PLATFORM_KEY, else the profile's, else "
        "~/.local/share/seml/platform.key). Stands in for the CPU's identity.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        help=SUMMARY,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(run)
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


def measure(
    code: Code = None,
    command: Command = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="List what the value covers (files, digests, command) and what not."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --explain: print JSON.")] = False,
) -> None:
    """Print the simulated measurement of a service: the value to list in its session.

    It is a SHA-256 over the seml runtime's own files, the --code files and the command
    (empty when the session supplies the command). `seml run` computes the same value. No
    install path enters it: machines with the same seml release and code files agree.
    """
    from seml.runtime import explain as compute

    result = compute(code or [], command or [])
    if not explain:
        typer.echo(result.value)
        return
    if as_json:
        import json

        typer.echo(
            json.dumps(
                {
                    "measurement": result.value,
                    "simulated": True,
                    "runtime_identity": result.runtime_identity,
                    "runtime_files": [{"name": n, "sha256": d} for n, d in result.runtime_files],
                    "code_files": [{"name": n, "sha256": d} for n, d in result.code_files],
                    "command": list(result.command),
                    "not_covered": list(result.not_covered),
                },
                indent=2,
            )
        )
        return
    _print_explanation(result)


def _print_explanation(result: Explanation) -> None:
    import json

    from seml import __version__

    echo = typer.echo
    echo(f"measurement {result.value}")
    echo("  simulated: a SHA-256 computed in software by seml, not a TEE's measurement")
    echo("covers, in this order:")
    echo(
        f"  1. the runtime identity {result.runtime_identity}: the {len(result.runtime_files)} "
        f"files of the installed seml {__version__} package, by name within the package:"
    )
    for name, digest in result.runtime_files:
        echo(f"       {digest}  {name}")
    if result.code_files:
        echo(f"  2. the code files given with --code ({len(result.code_files)}), by base name:")
        for name, digest in result.code_files:
            echo(f"       {digest}  {name}")
    else:
        echo("  2. code files: none given (--code)")
    shown = json.dumps(list(result.command), ensure_ascii=False)
    what = "" if result.command else " (empty: the session gives the command)"
    echo(f"  3. the command {shown}{what}")
    echo("does not cover:")
    for item in result.not_covered:
        echo(f"  - {item}")


def run(ctx: typer.Context) -> None:
    # Listed here so `seml --help` shows `run`; `seml.cli.main` never gets here (it sends
    # `seml run` to its own parser before typer loads), but a caller of the typer app does.
    from seml.cli._run_fast import run as run_fast

    raise typer.Exit(run_fast(list(ctx.args)))
