"""A stopped seml stops what it started: SIGTERM (what `timeout`, systemd and Kubernetes send)
unwinds like Ctrl-C, and even SIGKILL, which no code of seml sees, takes the attestation
service `seml demo` started with it (the kernel's parent-death signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _procs import alive, gone_within
from seml.cli import seml_command

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux"),
]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _demo_with_its_service(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """`seml demo` started, once the attestation service it started answers."""
    with (tmp_path / "demo.err").open("wb") as err:  # the child keeps its own copy
        demo = subprocess.Popen(
            [*seml_command(), "demo", "--workdir", str(tmp_path / "d")],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    log = tmp_path / "d" / "cas" / "serve.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and demo.poll() is None:
        cas = [c for c in _children(demo.pid) if "serve" in _cmdline(c)]
        if cas and log.exists() and "https://" in log.read_text():
            return demo, cas[0]
        time.sleep(0.1)
    demo.kill()
    raise AssertionError(
        f"seml demo's attestation service never answered: {(tmp_path / 'demo.err').read_text()}"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_stops_seml_and_the_service_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    demo, cas = _demo_with_its_service(tmp_path)
    try:
        demo.send_signal(sig)
        demo.wait(timeout=60)
        err = (tmp_path / "demo.err").read_text()
        assert demo.returncode == 128 + sig, err
        last = err.strip().splitlines()[-1]
        assert last == f"seml: stopped by {sig.name}; cleaned up what it had started", err
        assert "Traceback" not in err
        assert gone_within(cas, 15), "the attestation service outlived the demo"
    finally:
        demo.kill()
        if alive(cas):
            os.kill(cas, signal.SIGKILL)


def test_sigkill_of_seml_still_takes_its_service_along(tmp_path: Path) -> None:
    demo, cas = _demo_with_its_service(tmp_path)
    try:
        demo.kill()  # no code of seml runs
        demo.wait(timeout=10)
        assert gone_within(cas, 15), "the attestation service outlived a SIGKILLed demo"
    finally:
        if alive(cas):
            os.kill(cas, signal.SIGKILL)
