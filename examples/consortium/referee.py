"""The consortium run's own checks: it plays no role in the flow and runs outside every host.

    referee.py predictions --session ACTIVE.yaml --data alice=DIR ... --predictions alice=DIR ...
        --holdout FILE
    referee.py holdings --host NAME=DIR ... --owner PARTY=DATA_DIR ... --shared FILE ...

`predictions`: every party's predictions equal those of scikit-learn trained natively on the
parties' combined plaintext with the training specs of the active session (as `seml session
show` prints it). `holdings`: what each host's folder tree holds, and that no host holds a row
of a party's data unless it is that party's host, and that storage and the cloud hold nothing
readable (no row, no column name, no model member name). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

COLUMNS = (b"sepal_length", b"sepal_width", b"petal_length", b"petal_width", b"species")
MODEL_MARKERS = (b"schema.json",)  # a skops archive's member name


def _pairs(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        out[name] = Path(path)
    return out


def predictions(args: argparse.Namespace) -> bool:
    from seml.ml import parse_spec, train

    text = Path(args.session).read_text()
    doc = yaml.safe_load(text)
    trainer = next(s for s in doc["services"] if s["name"] == "train")
    specs = {
        Path(path).stem: body
        for path, body in trainer.get("files", {}).items()
        if path.startswith("/specs/")
    }
    data = _pairs(args.data)
    combined = pd.concat(
        [pd.read_csv(data[p] / f"{p}.csv") for p in sorted(data)], ignore_index=True
    )
    held = pd.read_csv(args.holdout)
    ok = True
    for task, body in sorted(specs.items()):
        spec = parse_spec(yaml.safe_load(body), source=f"{task} spec")
        native = train(spec, combined).model
        want = [str(v) for v in native.predict(held[list(native.feature_names_in_)])]
        for party, folder in sorted(_pairs(args.predictions).items()):
            got = list(pd.read_csv(folder / f"{task}.csv")["prediction"].astype(str))
            same = got == want
            ok = ok and same
            print(
                f"  {'ok  ' if same else 'FAIL'} {task} ({spec.estimator.rsplit('.', 1)[-1]} "
                f"{spec.params}): {party}'s {len(got)} predictions "
                f"{'equal' if same else 'differ from'} native scikit-learn's"
            )
    return ok


def _rows(path: Path) -> set[bytes]:
    return {r.strip() for r in path.read_bytes().splitlines()[1:] if r.strip()}


def _files(top: Path) -> list[Path]:
    out = []
    for root, _dirs, names in os.walk(top):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def holdings(args: argparse.Namespace) -> bool:
    hosts = _pairs(args.host)
    owners = {
        p: set().union(*(_rows(f) for f in d.glob("*.csv"))) for p, d in _pairs(args.owner).items()
    }
    shared = set().union(*(_rows(Path(f)) for f in args.shared))
    # A row counts as a party's own only if no other party, and no shared file, has it too.
    own = {
        p: rows - shared - set().union(*(r for q, r in owners.items() if q != p))
        for p, rows in owners.items()
    }
    ok = True
    for host, top in hosts.items():
        files = _files(top)
        size = sum(f.stat().st_size for f in files)
        where = Counter(
            "/".join(f.relative_to(top).parts[:3])
            if len(f.relative_to(top).parts) > 3
            else f.relative_to(top).parent.as_posix()
            for f in files
        )
        print(f"{host}: {len(files)} files, {size / 1024:.0f} KiB")
        for folder, count in sorted(where.items()):
            print(f"    /{folder}: {count}")
        found: dict[str, list[str]] = {p: [] for p in own}
        readable: list[str] = []
        for f in files:
            blob = f.read_bytes()
            rel = "/" + f.relative_to(top).as_posix()
            for party, rows in own.items():
                if any(r in blob for r in rows):
                    found[party].append(rel)
            if host in ("storage", "cloud"):
                readable += [
                    f"{rel} ({m.decode()})"
                    for m in (*COLUMNS, *MODEL_MARKERS)
                    if m in blob or m in rel.encode()
                ]
        for party, where_found in found.items():
            allowed = party == host
            if where_found and not allowed:
                ok = False
                print(f"  FAIL holds {party}'s rows: {', '.join(where_found[:3])}")
            elif allowed:
                print(
                    f"  ok   holds its own rows ({len(own[party])} of them) "
                    f"in {len(where_found)} files"
                )
            else:
                print(f"  ok   none of {party}'s {len(own[party])} rows")
        if host in ("storage", "cloud"):
            if readable:
                ok = False
                print(f"  FAIL readable: {', '.join(readable[:3])}")
            else:
                print("  ok   no column name, no model member name: ciphertext only")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="referee.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predictions")
    p.add_argument("--session", required=True)
    p.add_argument("--data", action="append", default=[])
    p.add_argument("--predictions", action="append", default=[])
    p.add_argument("--holdout", required=True)
    h = sub.add_parser("holdings")
    h.add_argument("--host", action="append", default=[])
    h.add_argument("--owner", action="append", default=[])
    h.add_argument("--shared", action="append", default=[])
    args = parser.parse_args(argv)
    ok = predictions(args) if args.command == "predictions" else holdings(args)
    print("referee:", "all checks passed" if ok else "a check FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
