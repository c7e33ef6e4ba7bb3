"""Files the CLI writes for a party (keys, signatures) are whole, durable and private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from seml.cli import main
from seml.policy import SessionSignature, load_private_key, public_key_text


def test_keys_and_signatures_are_flushed_and_keys_private(
    tmp_path: Path, fsyncs: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "new", "alice", "--dir", str(tmp_path)]) == 0
    key = tmp_path / "alice.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert fsyncs == ["file", "dir", "file", "dir"]  # the private key, then the public key
    session = {
        "version": 1,
        "name": "durable",
        "parties": {"alice": public_key_text(load_private_key(key).public)},
        "approval": {"create": ["alice"], "update": ["alice"]},
    }
    doc = tmp_path / "durable.yaml"
    doc.write_text(yaml.safe_dump(session))
    fsyncs.clear()
    assert main(["session", "sign", str(doc), "--key", str(key)]) == 0
    assert fsyncs == ["file", "dir"]
    sig = SessionSignature.from_json((tmp_path / "durable.alice.sig").read_text())
    assert sig.party == "alice"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alice.key",
        "alice.pub",
        "durable.alice.sig",
        "durable.yaml",
    ]
    capsys.readouterr()
