"""The `seml` command: thin over the library.

Each command group lives in its own private module and imports heavy libraries inside its
commands, so `seml --help` and `seml run` start quickly. `main()` turns a `SemlError` into its
message on stderr and its exit code; a foreign exception that escaped a boundary becomes one
line too (an OSError: exit 6; anything else is a bug: exit 1), never a traceback unless
`--verbose` asks for it. Every start first wipes the workspaces of runtimes that were killed
(`seml.volume.sweep_stale_workspaces`): decrypted data and secrets never outlive the next seml
command on the machine.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from seml.errors import SemlError, UsageError

__all__ = ["app", "entry", "main", "seml_command"]


def __getattr__(name: str) -> Any:
    if name == "app":  # typer loads only when a command needs it (not for `seml run`)
        from seml.cli._app import app

        return app
    raise AttributeError(f"module 'seml.cli' has no attribute {name!r}")


def seml_command() -> list[str]:
    """The argv that runs this installation's `seml` (for child processes)."""
    exe = Path(sys.executable).with_name("seml")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "seml"]


# seml's own options that take a value (`seml --profile NAME run ...`).
_WITH_VALUE = frozenset({"--profile"})


def _split_command(args: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(seml's own options, the command, its arguments): the command is the first argument
    that is not an option or an option's value, unless `--` comes first."""
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--":
            break
        if arg in _WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return args[:i], arg, args[i + 1 :]
    return args, None, []


def _profile_option(own: list[str]) -> str | None:
    """The value of `--profile NAME` / `--profile=NAME` among seml's own options."""
    chosen = None
    for i, arg in enumerate(own):
        if arg == "--profile":
            if i + 1 >= len(own) or own[i + 1].startswith("-"):
                raise UsageError("--profile needs a profile name")
            chosen = own[i + 1]
        elif arg.startswith("--profile="):
            chosen = arg.partition("=")[2]
    return chosen


def _command_of(args: list[str]) -> str | None:
    return _split_command(args)[1]


_WORKSPACE_PREFIX = "seml-ws-"  # seml.volume's private workspaces (see _sweep_workspaces)


def _sweep_workspaces() -> None:
    """Wipe the workspaces of killed runtimes. Looking costs two folder listings; the volume
    package (which does the wiping) loads only when some workspace exists."""
    import tempfile

    bases = [Path("/dev/shm"), Path(tempfile.gettempdir())]  # noqa: S108 - see seml.volume
    for base in bases:
        try:
            with os.scandir(base) as entries:
                if not any(e.name.startswith(_WORKSPACE_PREFIX) for e in entries):
                    continue
        except OSError:
            continue
        from seml.volume import sweep_stale_workspaces

        sweep_stale_workspaces(bases)
        return


def _internal(e: BaseException) -> tuple[str, int]:
    """The one line (and exit code) for an exception that escaped every boundary."""
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror or e}{where}", 6
    return (
        f"internal error ({type(e).__name__}: {e}); this is a bug in seml: rerun with "
        "--verbose before the command for the traceback and report it",
        1,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a console script, exit with) the process status."""
    args = sys.argv[1:] if argv is None else argv
    own, command, rest = _split_command(args)
    # Only options before the command are seml's: a `-v` given to a command, or to the
    # workload after `--`, is theirs.
    verbose = any(a in ("-v", "--verbose") for a in own)
    previous = _catch_termination()
    try:
        _sweep_workspaces()
        from seml.cli import _machine

        _machine.choose(_profile_option(own))
        if command == "run":
            from seml.cli import _run_fast

            return _run_fast.run(rest)
        return _typer_main(args, command)
    except SemlError as e:
        if verbose:
            traceback.print_exc()
        print(f"seml: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("seml: interrupted", file=sys.stderr)
        return 130
    except _Terminated as e:
        name = signal.Signals(e.signum).name
        print(f"seml: stopped by {name}; cleaned up what it had started", file=sys.stderr)
        return 128 + e.signum
    except BrokenPipeError:  # the reader of our output went away (`seml ... | head`)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # the last boundary: one line, never a traceback unless asked
        if verbose:
            traceback.print_exc()
        message, code = _internal(e)
        print(f"seml: error: {message}", file=sys.stderr)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so every `finally` runs (child
    services stopped, temporary files and workspaces removed) before seml exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


def _catch_termination() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into `_Terminated` where they would otherwise end the process on
    the spot (the default action); a handler someone else installed is left alone. Returns what
    to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise_terminated)
    return previous


@functools.cache
def _command_tree(modules: frozenset[str]) -> Any:  # typer's click.Command (vendored or not)
    """The click command tree of the registered command modules, built once per process and set
    of modules (building it reads every command's signature: 0.2 s of CPU for the whole CLI,
    paid again by each in-process `main()` call, as the tests make hundreds)."""
    import typer

    from seml.cli._app import app

    return typer.main.get_command(app)


def _typer_main(args: list[str], command: str | None) -> int:
    import typer

    try:  # typer 0.2x vendors click as typer._click; older typer raises the click package's
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import ClickException  # type: ignore[assignment,unused-ignore]

    from seml.cli._app import COMMANDS, ORDER, _registered, register
    from seml.cli._machine import click_defaults

    module = COMMANDS.get(command or "")
    register((module,) if module else ORDER)
    root = _command_tree(frozenset(_registered))
    try:
        # The profile's values reach every option that declares its variable (seml.cli._machine).
        result = root.main(
            args=args, prog_name="seml", standalone_mode=False, default_map=click_defaults(root)
        )
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        print("seml: aborted", file=sys.stderr)
        return 130
    except ClickException as e:
        e.show()
        return e.exit_code
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
