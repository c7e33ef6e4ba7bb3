"""The `seml` command: thin over the library.

Each command group lives in its own private module and imports heavy libraries inside its
commands, so `seml --help` and `seml run` start quickly. `main()` turns a `SemlError` into its
message on stderr and a non-zero exit; `--verbose` adds the traceback.
"""

from __future__ import annotations

import sys
import traceback

import click
import typer

from seml import __version__
from seml.errors import SemlError

__all__ = ["app", "main"]

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


def _register() -> None:
    """Attach the command groups. Each module owns one group (or a few top-level commands)."""
    # Each group module exposes register(app); add one import + call per module here.


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a console script, exit with) the process status."""
    args = sys.argv[1:] if argv is None else argv
    _state["verbose"] = "--verbose" in args or "-v" in args
    try:
        result = app(args=args, prog_name="seml", standalone_mode=False)
    except SemlError as e:
        if _state["verbose"]:
            traceback.print_exc()
        print(f"seml: error: {e}", file=sys.stderr)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        print("seml: aborted", file=sys.stderr)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        print("seml: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
