"""kill -9 of a real `seml push` at each step: the remote never loses its last complete version,
a pull says plainly that a push was interrupted (never "added behind its back"), and running
the push again finishes it. On file:// and on a real SeaweedFS."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from _crash import PUSH_STEPS, crash_command
from _seaweedfs import SeaweedFS
from _sync_helpers import PASSWORD, PASSWORD2, make_tree, read_tree
from seml.crypt import Cipher
from seml.store import FileStore, ObjectStore, open_store
from seml.sync import MANIFEST_NAME, pull, push

# Before the switch a pull gets the old version; from the switch on, the new one.
OLD_UNTIL = ("push-uploading", "push-before-switch")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SEML_CRYPT_PASSWORD": PASSWORD,
        "SEML_CRYPT_PASSWORD2": PASSWORD2,
        "SEML_STATE_DIR": str(tmp_path / "default-state"),
    }


def _seml(args: list[str], env: dict[str, str], *, step: str) -> subprocess.CompletedProcess[str]:
    argv = [*crash_command(step), "seml", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def _versions(src: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Version 1 of a tree, then version 2: one file changed (staged), one added (final name),
    one deleted (cleanup)."""
    v1 = make_tree(src)
    (src / "twins" / "a.txt").write_bytes(b"changed in version 2")
    (src / "added.txt").write_bytes(b"new in version 2")
    (src / "twins" / "b.txt").unlink()
    v2 = read_tree(src)
    for rel, data in v1.items():  # back to version 1 on disk
        (src / rel).write_bytes(data)
    (src / "added.txt").unlink()
    return v1, v2


def _to_version_2(src: Path, v2: dict[str, bytes]) -> None:
    (src / "twins" / "a.txt").write_bytes(v2["twins/a.txt"])
    (src / "added.txt").write_bytes(v2["added.txt"])
    (src / "twins" / "b.txt").unlink()


def _plain_names(store: ObjectStore) -> list[str]:
    cipher = Cipher(PASSWORD, PASSWORD2)
    return sorted(cipher.decrypt_name(o.name) for o in store.list())


class _Warnings:
    """A progress sink that keeps the warnings."""

    def __init__(self) -> None:
        self.text = ""

    def start(self, action: str, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, path: str, status: str) -> None: ...
    def finish(self) -> None: ...

    def warn(self, message: str) -> None:
        self.text += message + "\n"


def _interrupt_then_finish(
    step: str, remote: str, store: ObjectStore, tmp_path: Path, env: dict[str, str]
) -> None:
    """Push version 1, kill -9 the real `seml push` of version 2 at `step`, then pull (on a
    machine that saw nothing yet) and push again, as a user would."""
    src = tmp_path / "src"
    v1, v2 = _versions(src)
    cipher = Cipher(PASSWORD, PASSWORD2)
    state = tmp_path / "pusher"
    push(src, store, cipher, state_dir=state)
    _to_version_2(src, v2)
    args = ["push", str(src), remote, "--transfers", "1", "--state-dir", str(state)]
    killed = _seml(args, env, step=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    # The last complete version, said plainly.
    said = _Warnings()
    out = tmp_path / "out"
    r = pull(store, out, cipher, state_dir=tmp_path / "p1", progress=said)
    assert read_tree(out) == (v1 if step in OLD_UNTIL else v2)
    assert r.version == (1 if step in OLD_UNTIL else 2)
    assert "was interrupted" in said.text or "did not finish cleaning up" in said.text
    assert "Run that push again to finish it" in said.text
    assert "behind its back" not in said.text

    # The push again: it finishes, and the remote holds version 2's files and nothing else.
    again = push(src, store, cipher, state_dir=state)
    assert again.version == (2 if step in OLD_UNTIL else 3)
    assert _plain_names(store) == sorted([*v2, MANIFEST_NAME])
    said = _Warnings()
    pull(store, tmp_path / "out2", cipher, state_dir=tmp_path / "p1", progress=said)
    assert read_tree(tmp_path / "out2") == v2 and said.text == ""


@pytest.mark.slow
@pytest.mark.parametrize("step", PUSH_STEPS)
def test_kill_9_of_a_push_on_file_store(step: str, tmp_path: Path, env: dict[str, str]) -> None:
    remote = tmp_path / "remote"
    _interrupt_then_finish(step, remote.as_uri(), FileStore(remote), tmp_path, env)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("step", ["push-before-switch", "push-after-switch", "push-mid-moves"])
def test_kill_9_of_a_push_on_seaweedfs(
    step: str, tmp_path: Path, env: dict[str, str], seaweedfs: SeaweedFS
) -> None:
    env = {**env, **seaweedfs.env}
    bucket = f"interrupted-{PUSH_STEPS.index(step)}"
    seaweedfs.create_bucket(bucket)
    remote = f"s3://{bucket}/tree"
    with pytest.MonkeyPatch.context() as m:
        for k, v in seaweedfs.env.items():
            m.setenv(k, v)
        store = open_store(remote)
        _interrupt_then_finish(step, remote, store, tmp_path, env)
