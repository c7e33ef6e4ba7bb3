"""The typer application: the root command and the registration of command groups."""

from __future__ import annotations

import typer
from typer.models import CommandInfo, TyperInfo

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
    _tidy(app)


def reflow(text: str) -> str:
    """A docstring as help text: each paragraph's wrapped lines joined, so the terminal (not the
    source file's 100 columns) decides where lines break; list items and indented lines stay."""
    import inspect

    paragraphs = []
    for block in inspect.cleandoc(text).split("\n\n"):
        lines: list[str] = []
        for line in block.splitlines():
            if lines and not _starts_item(line):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _starts_item(line: str) -> bool:
    head = line.lstrip()
    return line[:1] == " " or head[:2] in ("- ", "* ") or head.split(".", 1)[0].isdigit()


def _tidy(group: typer.Typer) -> None:
    infos: list[CommandInfo | TyperInfo] = [*group.registered_commands, *group.registered_groups]
    for info in infos:
        doc = info.help if isinstance(info.help, str) else (info.callback or _no_doc).__doc__
        if doc:
            info.help = reflow(doc)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _tidy(sub.typer_instance)


def _no_doc() -> None:
    pass
