"""Run one step of the flow as a separate process and measure it as the OS sees it."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seml.errors import SemlError

if TYPE_CHECKING:
    import psutil

__all__ = ["StepFailed", "StepResult", "run_measured"]


class StepFailed(SemlError):
    """A step of the flow exited non-zero; the message carries what it printed last."""


@dataclass(frozen=True)
class StepResult:
    argv: tuple[str, ...]
    returncode: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _has_proc_children() -> bool:
    """Linux lists each thread's children in /proc (CONFIG_PROC_CHILDREN, on by default)."""
    me = os.getpid()
    return Path(f"/proc/{me}/task/{me}/children").exists()


def _read(path: str) -> bytes:
    """A small /proc file, whole."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = [os.read(fd, 4096)]
        while parts[-1]:
            parts.append(os.read(fd, 4096))
        return b"".join(parts)
    finally:
        os.close(fd)


def _proc_tree_rss(pid: int) -> int:
    """Summed RSS of `pid` and all its descendants, from /proc: a few small reads per process.

    psutil's children(recursive=True) reads the status of every process on the machine to find
    parents, which at one sample every 20 ms cost about a tenth of a core; this reads only the
    tree's own entries, with plain `os` calls (through `pathlib` the same walk cost ~0.5 ms of
    CPU per sample, 2-3% of a core at 50 samples a second, taken from the steps it measures).
    A process that exits meanwhile is skipped.
    """
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            total += int(_read(f"/proc/{p}/statm").split()[1]) * _PAGE
            tasks = f"/proc/{p}/task"
            for tid in os.listdir(tasks):  # noqa: PTH208 - pathlib triples the CPU
                stack.extend(int(c) for c in _read(f"{tasks}/{tid}/children").split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def _psutil_tree_rss(proc: psutil.Process) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def _tree_sampler(pid: int) -> Callable[[], int] | None:
    """A function giving the summed RSS of `pid`'s process tree now; None if it is gone."""
    if _has_proc_children():
        return lambda: _proc_tree_rss(pid)
    import psutil

    try:
        ps = psutil.Process(pid)
    except psutil.Error:
        return None
    return lambda: _psutil_tree_rss(ps)


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    check: bool = True,
    poll: float = 0.02,
) -> StepResult:
    """Run `argv` to completion; wall time, CPU time of the whole process tree (user + system,
    from the kernel's accounting of waited-for descendants) and its peak summed RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        tree_rss = _tree_sampler(proc.pid)
        if tree_rss is None:
            return
        while not done.is_set():
            peak = max(peak, tree_rss())
            done.wait(poll)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Peak memory comes from sampling only: the kernel's ru_maxrss of a fresh child counts the
    # parent's memory before exec, which over-reports small commands started from a big parent.
    result = StepResult(
        tuple(argv), proc.returncode, seconds, cpu, peak / (1 << 20), stdout, stderr
    )
    if check and proc.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-6:])
        raise StepFailed(
            f"step failed (exit {proc.returncode}): {' '.join(argv[:6])}"
            f"{' ...' if len(argv) > 6 else ''}\n{tail}"
        )
    return result


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEML_")}
    env.update(extra)
    return env
