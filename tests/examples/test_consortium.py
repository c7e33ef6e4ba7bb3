"""examples/consortium/run.sh: five hosts as network namespaces, the whole flow, and faults.

The script runs once (it takes minutes: every step is a real `seml` process on its own host,
against a real SeaweedFS and the attestation service over HTTPS) with ``--faults``, which adds,
in the same bed: the attestation service killed (-9) and restarted between fetch and train;
the storage host's link taken down while alice's first pull runs; an approval signed with a
key that is no party's. Each test below reads what the run left.

Needs root and ``ip netns`` (CI runs as root); without them the tests skip, saying which.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "consortium" / "run.sh"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.long,
    pytest.mark.timeout(1800),
]


def _capability() -> str | None:
    """Why this machine cannot build the bed, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the test as root)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"seml-probe-{os.getpid()}"
    made = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


@dataclass
class Run:
    workdir: Path
    returncode: int
    output: str
    seconds: float

    @property
    def faults(self) -> Path:
        return self.workdir / "faults"


def _ours(run: Run) -> tuple[list[str], list[str]]:
    """Namespaces and links of this run that still exist."""
    m = re.search(r"bridge (seml-[0-9a-f]{4})-br", run.output)
    assert m, run.output[:2000]
    prefix = m.group(1) + "-"
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return (
        [line for line in spaces.stdout.splitlines() if line.startswith(prefix)],
        [line for line in links.stdout.splitlines() if prefix in line],
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    why = _capability()
    if why is not None:
        pytest.skip(why)
    workdir = tmp_path_factory.mktemp("consortium") / "w"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEML_", "AWS_"))}
    env["SEML"] = str(Path(sys.executable).with_name("seml"))
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), str(workdir), "--faults"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the script's trap removes what it made
        out, _ = proc.communicate(timeout=60)
        out += "\n(timed out)"
    yield Run(workdir, proc.returncode, out, time.monotonic() - started)


def test_the_whole_flow_across_five_hosts(run: Run) -> None:
    assert run.returncode == 0, run.output[-6000:]
    print(f"consortium run with faults: {run.seconds:.0f} s")
    out = run.output
    assert "consortium: all checks passed" in out
    # Both rounds: every party's predictions equal native scikit-learn's; the second with the
    # parameters alice's update brought.
    for n in (1, 2):
        verdict = (run.workdir / f"referee-round-{n}.txt").read_text()
        assert "referee: all checks passed" in verdict and "FAIL" not in verdict, verdict
        assert verdict.count("  ok   ") == 4, verdict  # 2 tasks x 2 parties
    assert "'max_depth': 1" in (run.workdir / "referee-round-2.txt").read_text()
    assert "'max_depth'" not in (run.workdir / "referee-round-1.txt").read_text()
    # Who holds what: each party only its own rows, storage and cloud nothing readable.
    holdings = (run.workdir / "referee-holdings.txt").read_text()
    assert "FAIL" not in holdings and "referee: all checks passed" in holdings, holdings
    assert holdings.count("ciphertext only") == 2
    # Each party's folders at its own path; services got storage settings from the host.
    assert "/srv/alice-org/data" in out and "/home/bob/seml/data" in out
    assert out.count("seml run: passing ") >= 16
    # Only public material moved between organizations.
    transfers = [line for line in out.splitlines() if line.startswith("transfer ")]
    kinds = {
        re.split(r"\s{2,}|: ", line.split("->", 1)[1].strip(), maxsplit=2)[1] for line in transfers
    }
    public = {"service URL and pin", "cloud platform id", "public key", "platform id"}
    assert kinds == public | {"the service's identity key"}, transfers
    assert len(transfers) == 11
    # Each party verified each run's receipt on its own host, offline.
    for round_ in (1, 2):
        assert out.count(f"receipt iris-{round_}.receipt.json verified offline") == 2, out
    # The proposals: alice proposed, bob approved from his host; then the update likewise.
    assert "accepted iris version 1" in out and "accepted iris version 2" in out
    assert "audit log verified" in out
    # Nothing of the bed is left.
    assert _ours(run) == ([], [])
    assert "removed namespaces seml-" in out


def test_attestation_service_restarted_between_two_steps(run: Run) -> None:
    log = (run.faults / "cas-restart.log").read_text()
    assert "kill -9" in log and "serving again" in log, log
    killed = int(re.search(r"kill -9 (\d+)", log).group(1))  # type: ignore[union-attr]
    again = int(re.search(r"serving again as (\d+)", log).group(1))  # type: ignore[union-attr]
    assert killed != again
    # The flow went on: train ran right after the restart, and the first round verified.
    after = run.output.split("FAULT cas-restart: serving again", 1)[1]
    assert re.search(r"cloud\$ seml run --session iris --service train", after.split("\n", 3)[1])
    assert "referee: all checks passed" in (run.workdir / "referee-round-1.txt").read_text()


def test_storage_link_cut_during_a_pull(run: Run) -> None:
    # The link went down while the pull was running (storage is slowed to 2 Mbit/s meanwhile).
    assert "alice's pull: running" in (run.faults / "storage-cut.log").read_text()
    rc = int((run.faults / "storage-cut.rc").read_text())
    err = (run.faults / "storage-cut.err").read_text()
    # A clean error: the storage (6) or network (7) exit code, one line, no traceback.
    assert rc in (6, 7), (rc, err[-2000:])
    errors = [line for line in err.splitlines() if line.startswith("seml: error:")]
    assert errors and "Traceback" not in err, err[-2000:]
    # Nothing under final names: no sealed version of alice's model volume, no partial file.
    before = (run.faults / "storage-cut.volumes-before").read_text()
    after = (run.faults / "storage-cut.volumes-after").read_text()
    assert before == "" and (run.faults / "storage-cut.leftovers").read_text() == ""
    files = [line.split("/model-alice/", 1)[1] for line in after.splitlines()]
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == [".lock", "MANIFEST", "VOLUME"], after
    assert next(f for f in files if f.endswith("MANIFEST")).startswith("g000000000000-"), after
    assert "volumes not sealed" in err
    assert not list((run.workdir / "hosts" / "alice").rglob("classification.csv.*"))
    # A later pull works (the script pulls again once the link is up, then runs the model).
    rest = run.output.split("FAULT storage-cut: the pull exited", 1)[1]
    assert "alice$ seml run --session iris --service pull-alice" in rest
    assert "referee: all checks passed" in (run.workdir / "referee-round-1.txt").read_text()


def test_approval_with_a_key_that_is_no_partys(run: Run) -> None:
    rc = int((run.faults / "not-a-party.rc").read_text())
    err = (run.faults / "not-a-party.err").read_text()
    assert rc == 4, (rc, err)
    (line,) = [x for x in err.splitlines() if x.startswith("seml: error:")]
    assert "is not the key of a party of session iris" in line, err
    assert "Traceback" not in err
    # The proposal still waits for bob, who approves it next.
    status = (run.faults / "not-a-party.status").read_text()
    assert "missing: bob must approve" in status, status
