"""The flow's step runner: wall and CPU time, and the peak RSS of the whole process tree."""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from seml.flow._runner import _has_proc_children, _proc_tree_rss, _psutil_tree_rss, run_measured

# A parent that starts a child holding ~150 MB for a moment, then exits: the peak is the child's.
_GRANDCHILD = (
    "import subprocess, sys\n"
    'code = \'import time; b = bytearray(150 << 20); b[::4096] = b"x" * len(b[::4096]); '
    "time.sleep(0.6)'\n"
    "subprocess.run([sys.executable, '-c', code], check=True)\n"
)


def test_peak_rss_counts_the_descendants_of_the_step() -> None:
    result = run_measured([sys.executable, "-c", _GRANDCHILD], env=dict(os.environ))
    assert result.returncode == 0
    # the child's 150 MB plus two interpreters; far below what a sampler error could add
    assert 150 <= result.peak_rss_mb < 400, result.peak_rss_mb
    assert result.cpu_seconds > 0


@pytest.mark.skipif(not _has_proc_children(), reason="kernel without /proc/PID/task/TID/children")
def test_proc_sampler_agrees_with_psutil_on_a_live_tree() -> None:
    import subprocess

    child = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '5'])"]
    )
    try:
        ps = psutil.Process(child.pid)
        for _ in range(100):  # wait for the grandchild
            if ps.children(recursive=True):
                break
            psutil.wait_procs([], timeout=0.02)
        assert len(ps.children(recursive=True)) == 1
        ours, theirs = _proc_tree_rss(child.pid), _psutil_tree_rss(ps)
        assert ours == pytest.approx(theirs, rel=0.05)
        assert ours > ps.memory_info().rss  # the grandchild is counted
    finally:
        for p in psutil.Process(child.pid).children(recursive=True):
            p.kill()
        child.kill()
        child.wait()


def test_a_process_that_is_gone_has_no_rss() -> None:
    import subprocess

    p = subprocess.Popen(["true"])
    p.wait()
    assert _proc_tree_rss(p.pid) == 0
