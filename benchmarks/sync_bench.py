"""Push and pull 1 GiB trees with seml and with rclone (crypt over the same backend).

Backends: a local folder (file://) and a real SeaweedFS S3 server started for the run. Tree
shapes: `large` (one file of SIZE), `large+small` (one file of SIZE and 500 files of 4-64 KiB)
and `mixed` (three large files, 75%, and small files of 4-256 KiB, 25%). Every transfer runs as
its own process; wall time and that process's peak RSS (wait4) are recorded. seml and rclone
alternate which goes first in each repetition; the figures are medians.
seml pull verifies every byte against the signed manifest (rclone checks only chunk tags).
Targets (issue 16): push <= 0.7x rclone's time and pull <= 0.8x on every shape and backend;
seml's peak RSS under 200 MB and the same on the `large` tree as on `large+small`.

    .venv/bin/python benchmarks/sync_bench.py [--size-mib 1024] [--transfers 4] [--reps 1]
        [--shapes large,large+small,mixed] [--backends file,s3] [--keep]
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import seml  # noqa: E402
from _seaweedfs import SeaweedFS, find_weed  # noqa: E402
from seml.bench import TargetRow, record_target  # noqa: E402
from seml.crypt import obscure  # noqa: E402

PASSWORD, PASSWORD2 = "bench-password", "bench-salt"
SEML = str(Path(sys.executable).parent / "seml")
MiB = 1 << 20
RSS_GROWTH_MB = 16.0  # peak RSS with the 500 small files beside the large one, over without


@dataclass
class Run:
    seconds: float
    rss_mb: float
    cpu: float  # user + system seconds of the process


PUSH_TARGET, PULL_TARGET, RSS_LIMIT_MB = 0.7, 0.8, 200.0
SHAPES = ("large", "large+small", "mixed")


def make_data(root: Path, total: int, shape: str) -> tuple[int, int]:
    """Write a tree of `shape` (see the module doc); return (files, bytes)."""
    rng = random.Random(42)
    chunk = os.urandom(4 * MiB)
    if shape in ("large", "large+small"):
        _write_large(root / "large.bin", total, chunk)
        if shape == "large":
            return 1, total
        written = 0
        for i in range(500):
            n = rng.randint(4 << 10, 64 << 10)
            off = rng.randint(0, len(chunk) - n)
            d = root / f"small/{i // 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}.dat").write_bytes(chunk[off : off + n])
            written += n
        return 501, total + written
    big = total * 3 // 4
    sizes = [big // 3, big // 3, big - 2 * (big // 3)]
    for i, size in enumerate(sizes):
        _write_large(root / f"large-{i}.bin", size, chunk)
    small_total, count = total - big, 0
    while small_total > 0:
        n = min(small_total, rng.randint(4 << 10, 256 << 10))
        d = root / f"small/{count // 200:02d}"
        d.mkdir(parents=True, exist_ok=True)
        off = rng.randint(0, len(chunk) - n)
        (d / f"f{count:05d}.dat").write_bytes(chunk[off : off + n])
        small_total -= n
        count += 1
    return len(sizes) + count, total


def _write_large(path: Path, size: int, chunk: bytes) -> None:
    with path.open("wb") as f:
        left, i = size, 0
        while left:
            n = min(left, len(chunk))
            # a counter in every 4 MiB block, so no two blocks of the file are alike
            f.write(i.to_bytes(8, "little") + chunk[8:n])
            left -= n
            i += 1


def timed(argv: list[str], env: dict[str, str]) -> Run:
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{err[-3000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def same_tree(a: Path, b: Path) -> None:
    proc = subprocess.run(["diff", "-rq", str(a), str(b)], capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"pulled tree differs:\n{proc.stdout.decode()[:2000]}")


def drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--transfers", type=int, default=4)
    ap.add_argument("--reps", type=int, default=1, help="repetitions of every transfer")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated tree shapes")
    ap.add_argument("--backends", default="file,s3", help="comma-separated: file, s3 (SeaweedFS)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    backends = [x for x in args.backends.split(",") if x]
    if not backends or any(x not in ("file", "s3") for x in backends):
        ap.error("--backends: choose from file, s3")
    shapes = [x for x in args.shapes.split(",") if x]
    if not shapes or any(x not in SHAPES for x in shapes):
        ap.error(f"--shapes: choose from {', '.join(SHAPES)}")
    if shutil.which("rclone") is None or find_weed() is None:
        print("sync_bench: needs rclone and weed (make setup system-deps)", file=sys.stderr)
        return 1
    # seml compiled once, as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as in this
    # environment) every `seml` start would compile its modules again (~0.4 CPU s here).
    compileall.compile_dir(Path(seml.__file__).parent, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="seml-sync-bench-", dir="/tmp"))
    server = SeaweedFS(work / "weed")
    try:
        server.start()
        server.create_bucket("bench-seml")
        server.create_bucket("bench-rclone")
        conf = work / "rclone.conf"
        pw, pw2 = obscure(PASSWORD), obscure(PASSWORD2)
        conf.write_text(
            "[s3]\ntype = s3\nprovider = SeaweedFS\n"
            f"access_key_id = {server.access_key}\nsecret_access_key = {server.secret_key}\n"
            f"endpoint = {server.endpoint}\n\n"
            f"[s3crypt]\ntype = crypt\nremote = s3:bench-rclone/d\npassword = {pw}\n"
            f"password2 = {pw2}\n\n"
            f"[localcrypt]\ntype = crypt\nremote = {work / 'rclone-local'}\npassword = {pw}\n"
            f"password2 = {pw2}\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        env.update(server.env)
        env.update(SEML_CRYPT_PASSWORD=PASSWORD, SEML_CRYPT_PASSWORD2=PASSWORD2)
        t = str(args.transfers)
        rclone = ["rclone", "--config", str(conf), "--transfers", t]
        seml_opts = ["--transfers", t, "--quiet", "--state-dir", str(work / "state")]
        print(
            f"sync benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
            f"transfers={args.transfers}, {args.reps} repetition(s), medians"
        )
        rows = []
        for shape in shapes:
            data = work / "data"
            data.mkdir()
            nfiles, total = make_data(data, args.size_mib * MiB, shape)
            print(f"tree {shape}: {nfiles} files, {total / MiB:.0f} MiB", flush=True)
            for backend, label, seml_remote, rclone_remote in (
                ("file", "file://", (work / "seml-local").as_uri(), "localcrypt:"),
                ("s3", "SeaweedFS", f"s3://bench-seml/{shape}-{{rep}}", f"s3crypt:{shape}-{{rep}}"),
            ):
                if backend not in backends:
                    continue
                runs = _transfers(
                    data, work, seml_remote, rclone_remote, seml_opts, rclone, env, args.reps
                )
                for way in ("push", "pull"):
                    rows.append((shape, label, way, runs[f"seml {way}"], runs[f"rclone {way}"]))
                drop(work / "seml-local")
                drop(work / "rclone-local")
            drop(data)
        return _report(rows)
    finally:
        server.stop()
        if not args.keep:
            drop(work)


def _transfers(
    data: Path,
    work: Path,
    seml_remote: str,
    rclone_remote: str,
    seml_opts: list[str],
    rclone: list[str],
    env: dict[str, str],
    reps: int,
) -> dict[str, list[Run]]:
    """Push then pull with both tools, `reps` times, alternating which tool goes first.

    Every push starts from an empty destination: a local one is deleted, an S3 one gets a new
    prefix per repetition (`{rep}` in the remote)."""
    out = work / "out"
    runs: dict[str, list[Run]] = {}
    for rep in range(reps):
        seml_at, rclone_at = seml_remote.format(rep=rep), rclone_remote.format(rep=rep)
        argv = {
            "seml push": [SEML, "push", str(data), seml_at, *seml_opts],
            "rclone push": [*rclone, "copy", str(data), rclone_at],
            "seml pull": [SEML, "pull", seml_at, str(out), *seml_opts],
            "rclone pull": [*rclone, "copy", rclone_at, str(out)],
        }
        tools = ("seml", "rclone") if rep % 2 == 0 else ("rclone", "seml")
        for way in ("push", "pull"):
            for tool in tools:
                if way == "push" and rep:  # every push starts from an empty destination
                    drop(work / ("seml-local" if tool == "seml" else "rclone-local"))
                    if tool == "seml":
                        drop(work / "state")
                subprocess.run(["sync"], check=False)
                runs.setdefault(f"{tool} {way}", []).append(timed(argv[f"{tool} {way}"], env))
                if way == "pull":
                    same_tree(data, out)
                    drop(out)
    return runs


def _report(rows: list[tuple[str, str, str, list[Run], list[Run]]]) -> int:
    print()
    print(
        f"{'tree':<12} {'backend':<10} {'way':<5} {'seml s':>8} {'rclone s':>9} {'ratio':>6} "
        f"{'target':>7} {'':6} {'seml CPU':>8} {'rclone CPU':>10} {'CPU ratio':>9} "
        f"{'seml RSS MB':>12} {'rclone RSS MB':>14}"
    )
    ok = True
    rss: dict[tuple[str, str, str], float] = {}
    for shape, label, way, s, c in rows:
        s_sec = statistics.median(r.seconds for r in s)
        c_sec = statistics.median(r.seconds for r in c)
        s_rss, c_rss = max(r.rss_mb for r in s), max(r.rss_mb for r in c)
        s_cpu = statistics.median(r.cpu for r in s)
        c_cpu = statistics.median(r.cpu for r in c)
        rss[(shape, label, way)] = s_rss
        ratio, target = s_sec / c_sec, PUSH_TARGET if way == "push" else PULL_TARGET
        met = ratio <= target and s_rss < RSS_LIMIT_MB
        ok &= met
        record_target(
            TargetRow(
                key=way,
                what=f"{way}, {label}, tree {shape}",
                seml=f"{s_sec:.2f} s",
                peer=f"{c_sec:.2f} s (rclone)",
                value=ratio,
                op="<=",
                limit=target,
                unit="x",
                bench="sync_bench.py",
                note=f"CPU {s_cpu:.2f} s vs {c_cpu:.2f} s; peak RSS {s_rss:.0f} MB",
            )
        )
        print(
            f"{shape:<12} {label:<10} {way:<5} {s_sec:8.2f} {c_sec:9.2f} {ratio:6.2f} "
            f"{'<= ' + str(target):>7} {'met' if met else 'MISSED':6} {s_cpu:8.2f} {c_cpu:10.2f} "
            f"{s_cpu / c_cpu:9.2f} {s_rss:12.0f} {c_rss:14.0f}"
        )
    for (shape, label, way), big in rss.items():
        if shape == "large" and ("large+small", label, way) in rss:
            other = rss[("large+small", label, way)]
            record_target(
                TargetRow(
                    key="memory",
                    what=f"memory, {label} {way}: peak RSS with 500 small files minus without",
                    seml=f"{other:.0f} MB",
                    peer=f"{big:.0f} MB (one large file)",
                    value=other - big,
                    op="<=",
                    limit=RSS_GROWTH_MB,
                    unit=" MB",
                    bench="sync_bench.py",
                )
            )
            print(
                f"memory, {label} {way}: {big:.0f} MB for one large file, {other:.0f} MB with "
                "500 small files beside it"
            )
    print(
        f"\ntargets (push <= {PUSH_TARGET}x, pull <= {PULL_TARGET}x rclone's wall time, RSS < "
        f"{RSS_LIMIT_MB:.0f} MB): {'met' if ok else 'NOT met'}; load average at the end "
        f"{os.getloadavg()[0]:.2f} (wall times under load are noisy; CPU seconds are steadier, "
        "but exclude the SeaweedFS server's work, the same for both tools)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
