"""`make bench`: every benchmark, then one table of every performance target.

Runs each `benchmarks/*_bench.py` in turn (its output shown as it goes), with
`$SEML_BENCH_TARGETS` naming a file each appends its target rows to (`seml.bench.record_target`),
then prints every target of issue 16 in its order: seml's figure, the peer's figure measured in
the same run, the ratio (or difference) and met/MISSED; a target no benchmark reported says so.
Then how long each benchmark took and the machine's load: wall-clock figures of a busy machine
are inflated, so read them with the load.

    .venv/bin/python benchmarks/run_all.py [--only flow_bench model_bench] [--quick]

Exits 1 if a benchmark failed or a target was not reported, 0 otherwise (a missed target is a
finding, printed as such, not a failure of the run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seml.bench import (
    ISSUE_TARGETS,
    TARGETS_ENV,
    plain_text,
    read_target_rows,
    target_rows_table,
)

HERE = Path(__file__).resolve().parent
# Smaller sizes for a check that the harness works (minutes, not half an hour); the figures
# of a quick run are not the issue's.
QUICK = {
    "crypt_bench.py": ["--size-mib", "64"],
    "sync_bench.py": ["--size-mib", "32"],
    "flow_bench.py": ["-n", "1", "--skip-large"],
    "model_bench.py": ["-n", "3"],
}


VERDICT = re.compile(r"\b(PASS|MISS|MISSED|met|NOT met)\b")


def _run(bench: Path, extra: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run one benchmark, its output passed through as it comes; (exit status, its lines)."""
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-u", str(bench), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return proc.returncode, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="benchmarks to run (by name)")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the harness")
    parser.add_argument("--dir", type=Path, default=HERE, help="where the *_bench.py are")
    args = parser.parse_args()
    benches = sorted(args.dir.glob("*_bench.py"))
    if args.only:
        wanted = {name.removesuffix(".py") for name in args.only}
        benches = [b for b in benches if b.stem in wanted]
        if not benches:
            print(f"run_all: no benchmark named {', '.join(args.only)}", file=sys.stderr)
            return 2
    failed: list[str] = []
    verdicts: dict[str, list[str]] = {}
    took: list[tuple[str, float, float]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seml-bench-targets-") as tmp:
        rows_file = Path(tmp) / "targets.jsonl"
        env = {**os.environ, TARGETS_ENV: str(rows_file)}
        for bench in benches:
            extra = QUICK.get(bench.name, []) if args.quick else []
            print(f"== {bench.name} {' '.join(extra)}".rstrip(), flush=True)
            t0 = time.perf_counter()
            status, said = _run(bench, extra, env)
            verdicts[bench.name] = [ln for ln in said if VERDICT.search(ln)]
            took.append((bench.name, time.perf_counter() - t0, os.getloadavg()[0]))
            if status != 0:
                failed.append(f"{bench.name} (exit {status})")
            print(flush=True)
        rows = read_target_rows(rows_file)
    table = target_rows_table(rows)
    print("== targets (issue 16): seml and its peer, measured in the same run")
    print("\n".join(plain_text(table)))
    print()
    # A benchmark that does not record its rows yet: its own verdict lines, as it printed them.
    for name, lines in verdicts.items():
        if lines and not any(name in r.bench for r in rows):
            print(f"{name} (its own verdict lines; it records no rows):")
            print("\n".join(f"  {ln.strip()}" for ln in lines))
            print()
    for name, seconds, load in took:
        print(f"{name:18} {seconds / 60:6.1f} min   load average after it {load:.1f}")
    print(f"{'all':18} {(time.perf_counter() - started) / 60:6.1f} min   on {os.cpu_count()} cores")
    unreported = [
        key
        for key in ISSUE_TARGETS
        if not any(r.key == key for r in rows)
        and (not args.only or any(b.name in ISSUE_TARGETS[key][1] for b in benches))
    ]
    missed = [r for r in rows if not r.met]
    print(
        f"{len(rows) - len(missed)} target rows met, {len(missed)} missed"
        + (f"; not reported: {', '.join(unreported)}" if unreported else "")
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed or unreported else 0


if __name__ == "__main__":
    sys.exit(main())
