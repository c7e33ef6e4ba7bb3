"""The typer application: the root command and the registration of command groups."""

from __future__ import annotations

import typer

from seml import __version__

__all__ = ["COMMANDS", "ORDER", "app", "register"]

app = typer.Typer(
    name="seml",
    help=(
        "SEML: train one model on several parties' data in an untrusted cloud.\n\n"
        "Data is encrypted client-side (rclone-compatible), keys are released only to "
        "attested workloads whose measurement every party signed."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"seml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show the full traceback when a command fails."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        metavar="NAME",
        help="The profile (machine settings, see `seml init`) to use: else $SEML_PROFILE, else "
        "the current one. Flags and environment variables override its values.",
    ),
) -> None:
    # `seml.cli.main` reads --verbose and --profile from the arguments itself (`seml run` never
    # reaches typer); declaring them here makes typer accept them and list them in --help.
    del verbose, version, profile


# Which module provides each top-level command. Only the module of the command being run is
# loaded and registered (building every group's signatures costs tens of milliseconds on each
# call, which `seml run` pays per service); `seml --help` and unknown commands load them all.
COMMANDS = {
    "init": "_init",
    "profile": "_init",
    "doctor": "_doctor",
    "demo": "_flow",
    "flow": "_flow",
    "bench": "_bench",
    "run": "_run",
    "measure": "_run",
    "platform": "_run",
    "push": "_sync",
    "pull": "_sync",
    "ls": "_sync",
    "keys": "_keys",
    "session": "_session",
    "cas": "_cas",
    "receipt": "_receipt",
    "model": "_receipt",
    "attest": "_attest",
    "volume": "_volume",
    "crypt": "_crypt",
    "ml": "_ml",
    "deploy": "_deploy",
    "console": "_console",
}
ORDER = tuple(dict.fromkeys(COMMANDS.values()))
_registered: set[str] = set()


def register(modules: tuple[str, ...] = ORDER) -> None:
    """Attach command groups (each module's `register(app)`), once each, in help order."""
    import importlib

    for name in modules:
        if name not in _registered:
            importlib.import_module(f"seml.cli.{name}").register(app)
            _registered.add(name)
