"""The `seml` command: thin over the library.

Each command group lives in its own private module and imports heavy libraries inside its
commands, so `seml --help` and `seml run` start quickly. `main()` turns a `SemlError` into its
message on stderr and a non-zero exit; `--verbose` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

try:  # typer 0.2x vendors click as typer._click; older typer raises the click package's errors
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import ClickException as _ClickException  # type: ignore[assignment,unused-ignore]

from seml import __version__
from seml.errors import SemlError

__all__ = ["app", "entry", "main"]

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

_state = {"verbose": False}


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
) -> None:
    _state["verbose"] = verbose


# Which module provides each top-level command. Only the module of the command being run is
# loaded and registered (building every group's signatures costs tens of milliseconds on each
# call, which `seml run` pays per service); `seml --help` and unknown commands load them all.
_COMMANDS = {
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
    "attest": "_attest",
    "volume": "_volume",
    "crypt": "_crypt",
    "ml": "_ml",
}
_ORDER = tuple(dict.fromkeys(_COMMANDS.values()))
_registered: set[str] = set()


def _register(modules: tuple[str, ...] = _ORDER) -> None:
    """Attach command groups (each module's `register(app)`), once each, in help order."""
    import importlib

    for name in modules:
        if name not in _registered:
            importlib.import_module(f"seml.cli.{name}").register(app)
            _registered.add(name)


def _command_of(args: list[str]) -> str | None:
    for arg in args:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a console script, exit with) the process status."""
    args = sys.argv[1:] if argv is None else argv
    _state["verbose"] = "--verbose" in args or "-v" in args
    module = _COMMANDS.get(_command_of(args) or "")
    _register((module,) if module else _ORDER)
    try:
        result = app(args=args, prog_name="seml", standalone_mode=False)
    except SemlError as e:
        if _state["verbose"]:
            traceback.print_exc()
        print(f"seml: error: {e}", file=sys.stderr)
        return e.exit_code
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        print("seml: aborted", file=sys.stderr)
        return 130
    except _ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        print("seml: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


# Commands whose process ends right after they return: skipping the interpreter's teardown
# (a garbage collection over hundreds of modules) saves ~0.1 s, which `seml run` pays once per
# service. Their files and connections are all closed by then.
_FAST_EXIT = frozenset({"run", "measure"})


def entry() -> None:
    """The console script: `main()`, then exit (fast for the commands in `_FAST_EXIT`)."""
    code = main()
    if _command_of(sys.argv[1:]) in _FAST_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
