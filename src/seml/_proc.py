"""Child processes that do not outlive seml: the kernel's parent-death signal.

Pure standard library and light: `seml run` (its command) and `LocalCas` (the attestation
service a demo, a bench or a test starts) use it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading

__all__ = ["die_with_parent", "started_on_main_thread"]

# Run by a fresh interpreter between fork and the command when setpriv is missing: ask the
# kernel for the signal when the parent dies, make sure the parent has not died already, exec.
_TRAMPOLINE = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[1]), 0, 0, 0)\n"
    "os.getppid() == int(sys.argv[2]) or os._exit(128 + int(sys.argv[1]))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def die_with_parent(argv: list[str], sig: signal.Signals = signal.SIGKILL) -> list[str]:
    """`argv` behind a launcher that sets its parent-death signal (PR_SET_PDEATHSIG) to `sig`:
    when this process dies, even by SIGKILL, the kernel sends `sig` to the child (the setting
    survives exec, so programs that exec in turn, such as `unshare`, pass it on). No
    preexec_fn: it is unsafe in a process with threads.

    The kernel ties the signal to the thread that starts the child, not to the process: start
    it from a thread that lives as long as the child should (a thread that waits for it, or
    the main one: `started_on_main_thread`). Off Linux, `argv` as is."""
    if not sys.platform.startswith("linux"):
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, "--pdeathsig", sig.name.removeprefix("SIG"), "--", *argv]
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(int(sig)), str(os.getpid()), *argv]


def started_on_main_thread() -> bool:
    """Whether a child started now would get its parent-death signal only when the process
    ends (the main thread ends last), not when some worker thread does."""
    return threading.current_thread() is threading.main_thread()
