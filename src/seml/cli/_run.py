"""`seml measure`, `seml platform`, and `run` as typer lists it (its options and parsing live
in `seml.cli._run_fast`, which `seml run` uses without loading typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seml.cli._run_fast import CODE_HELP, SUMMARY

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
        help="Simulated platform key (default: $SEML_PLATFORM_KEY, else "
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


def measure(code: Code = None, command: Command = None) -> None:
    """Print the simulated measurement of a service: the value to list in its session.

    It is a SHA-256 over the seml runtime's own source, the --code files and the command
    (empty when the session supplies the command). `seml run` computes the same value.
    """
    from seml.runtime import measure as compute

    typer.echo(compute(code or [], command or []))


def run(ctx: typer.Context) -> None:
    # Listed here so `seml --help` shows `run`; `seml.cli.main` never gets here (it sends
    # `seml run` to its own parser before typer loads), but a caller of the typer app does.
    from seml.cli._run_fast import run as run_fast

    raise typer.Exit(run_fast(list(ctx.args)))
