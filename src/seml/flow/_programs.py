"""The programs the flow's services run (inside `seml run`, which gives them their keys).

Each one is a plain function over folders and stores so the native baseline of `seml bench`
can call the same code without encryption. They read keys from the environment only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seml.errors import StorageError, UsageError

__all__ = [
    "copy_in",
    "copy_out",
    "fetch",
    "key_variable",
    "parse_sources",
    "predict_all",
    "train_all",
    "training_claims",
]

_SOURCE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_-]{0,63})=(?P<remote>.+)$")


def key_variable(party: str) -> str:
    """The environment variable that carries `party`'s data key to the fetch service."""
    return "SEML_KEY_" + party.upper().replace("-", "_")


def parse_sources(sources: Sequence[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for s in sources:
        m = _SOURCE.match(s)
        if not m:
            raise UsageError(f"a source is NAME=REMOTE, got {s!r}")
        out.append((m["name"], m["remote"]))
    if not out:
        raise UsageError("give at least one NAME=REMOTE source")
    if len({n for n, _ in out}) != len(out):
        raise UsageError("a source name is given twice")
    return out


def fetch(
    dest: Path,
    sources: Sequence[tuple[str, str]],
    *,
    state_dir: Path | None,
    s3_endpoint: str | None = None,
) -> list[dict[str, Any]]:
    """Pull and verify each party's encrypted dataset into `dest/<party>`; per party, what was
    pulled as the completion report claims it (`seml.receipt.InputClaim`: party, remote,
    manifest version and digest, files, bytes).

    Each party's key comes from `key_variable(party)`; a missing key is an error before any
    download. Verification (manifest, rollback) is `seml pull`'s; each folder becomes exactly
    the party's current dataset (a mirror pull: files of an earlier version are removed).
    """
    from seml.crypt import Cipher
    from seml.store import open_store
    from seml.sync import pull

    keys: dict[str, str] = {}
    for name, _ in sources:
        value = os.environ.get(key_variable(name), "")
        if not value:
            raise UsageError(f"no key for {name}: {key_variable(name)} is not set")
        keys[name] = value
    inputs: list[dict[str, Any]] = []
    for name, remote in sources:
        store = open_store(remote, s3_endpoint=s3_endpoint)
        result = pull(store, dest / name, Cipher(keys[name]), state_dir=state_dir, mirror=True)
        inputs.append(
            {
                "party": name,
                "remote": remote,
                "manifest_version": result.version,
                "manifest_digest": result.digest,
                "files": len(result.files),
                "bytes": result.bytes,
            }
        )
    return inputs


def train_all(data: Path, out: Path, specs: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Train every spec on `data`; each model goes to `out/<spec file stem>/`. Metrics by name."""
    from seml.ml import load_spec, train_folder

    if not specs:
        raise UsageError("give at least one training spec")
    results: dict[str, dict[str, Any]] = {}
    for spec_path in specs:
        spec = load_spec(spec_path)
        result = train_folder(spec, data, out / spec_path.stem)
        results[spec_path.stem] = dict(result.metrics)
    return results


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest(), path.stat().st_size
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e.strerror or e}") from e


def training_claims(
    out: Path, specs: Sequence[Path], metrics: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What a training claims in its completion report (`seml.receipt.TrainClaim`): each spec's
    SHA-256, each model file's SHA-256 and size (paths relative to `out`), numeric metrics."""
    from seml.ml import MODEL_FILE

    models = []
    for spec_path in specs:
        digest, size = _sha256(out / spec_path.stem / MODEL_FILE)
        models.append({"path": f"{spec_path.stem}/{MODEL_FILE}", "sha256": digest, "size": size})
    return {
        "specs": [{"name": p.stem, "sha256": _sha256(p)[0]} for p in specs],
        "models": models,
        "metrics": {
            task: {
                k: float(v)
                for k, v in values.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            for task, values in metrics.items()
        },
    }


def predict_all(models: Path, inputs: Path, out: Path) -> list[Path]:
    """Run every `models/<name>/model.skops` on `inputs`; write `out/<name>.csv`, and the
    model's metrics beside it as `out/<name>.metrics.json` (the party may know how good the
    model it uses is)."""
    from seml.ml import METRICS_FILE, MODEL_FILE, predict

    found = sorted(p for p in models.glob(f"*/{MODEL_FILE}"))
    if not found:
        raise UsageError(f"no models ({MODEL_FILE}) below {models}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for model in found:
        target = out / f"{model.parent.name}.csv"
        predict(model, inputs, target)
        metrics = model.parent / METRICS_FILE
        if metrics.is_file():
            _atomic_copy(metrics, out / f"{model.parent.name}.metrics.json")
        written.append(target)
    return written


def _atomic_copy(src: Path, dst: Path) -> None:
    from seml._fs import staged

    with staged(dst) as (tmp,):
        try:
            shutil.copyfile(src, tmp)
        except OSError as e:
            raise StorageError(f"cannot copy {src} to {dst}: {e.strerror or e}") from e


def copy_in(src: Path, store_url: str, *, s3_endpoint: str | None = None) -> int:
    """Native baseline: put a folder's files into a store as they are (no encryption)."""
    from seml.store import open_store

    store = open_store(store_url, s3_endpoint=s3_endpoint)
    count = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            store.put(path.relative_to(src).as_posix(), f)
        count += 1
    return count


def copy_out(store_url: str, dst: Path, *, s3_endpoint: str | None = None) -> int:
    """Native baseline: get every object of a store into a folder as it is (plaintext, so
    through `seml._fs.Folder` too: never through a link, 0700)."""
    from seml._fs import Folder
    from seml.store import open_store

    store = open_store(store_url, s3_endpoint=s3_endpoint)
    count = 0
    with Folder.open(dst, private=True) as folder:
        for info in store.list(""):
            with store.open(info.name) as src, folder.writer(info.name, sync=False) as f:
                shutil.copyfileobj(src, f, 1 << 20)
            count += 1
    return count
