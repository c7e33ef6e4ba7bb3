"""Push and pull a 1 GiB folder with seml and with rclone (crypt over the same backend).

Backends: a local folder (file://) and a real SeaweedFS S3 server started for the run. Every
transfer runs as its own process; wall time and that process's peak RSS (wait4) are recorded.
Targets: seml at most 1.0x rclone's wall time each way, seml's peak RSS under 200 MB.

    .venv/bin/python benchmarks/sync_bench.py [--size-mib 1024] [--transfers 4] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _seaweedfs import SeaweedFS, find_weed  # noqa: E402
from seml.crypt import obscure  # noqa: E402

PASSWORD, PASSWORD2 = "bench-password", "bench-salt"
SEML = str(Path(sys.executable).parent / "seml")
MiB = 1 << 20


@dataclass
class Run:
    seconds: float
    rss_mb: float


def make_data(root: Path, total: int) -> tuple[int, int]:
    """A few large files (75%) and many small ones (25%, 4 KiB to 256 KiB)."""
    rng = random.Random(42)
    big = total * 3 // 4
    sizes = [big // 3, big // 3, big - 2 * (big // 3)]
    chunk = os.urandom(4 * MiB)
    for i, size in enumerate(sizes):
        with open(root / f"large-{i}.bin", "wb") as f:
            left = size
            while left:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n
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


def timed(argv: list[str], env: dict[str, str]) -> Run:
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}):\n{err[-3000:]}")
    return Run(seconds, usage.ru_maxrss / 1024)


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
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    if shutil.which("rclone") is None or find_weed() is None:
        print("sync_bench: needs rclone and weed (make setup system-deps)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="seml-sync-bench-", dir="/tmp"))
    server = SeaweedFS(work / "weed")
    try:
        data = work / "data"
        data.mkdir()
        nfiles, total = make_data(data, args.size_mib * MiB)
        print(f"data: {nfiles} files, {total / MiB:.0f} MiB; transfers={args.transfers}")
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
        targets = {
            "file://": ((work / "seml-local").as_uri(), "localcrypt:"),
            "SeaweedFS": ("s3://bench-seml/d", "s3crypt:"),
        }
        rows = []
        for label, (seml_remote, rclone_remote) in targets.items():
            out = work / "out"
            r = {}
            subprocess.run(["sync"], check=False)
            r["seml push"] = timed([SEML, "push", str(data), seml_remote, *seml_opts], env)
            subprocess.run(["sync"], check=False)
            r["rclone push"] = timed([*rclone, "copy", str(data), rclone_remote], env)
            subprocess.run(["sync"], check=False)
            r["seml pull"] = timed([SEML, "pull", seml_remote, str(out), *seml_opts], env)
            same_tree(data, out)
            drop(out)
            subprocess.run(["sync"], check=False)
            r["rclone pull"] = timed([*rclone, "copy", rclone_remote, str(out)], env)
            same_tree(data, out)
            drop(out)
            for way in ("push", "pull"):
                s, c = r[f"seml {way}"], r[f"rclone {way}"]
                rows.append((label, way, s, c))
            drop(work / "seml-local")
            drop(work / "rclone-local")
        print()
        print(
            f"{'backend':<10} {'way':<5} {'seml s':>8} {'rclone s':>9} {'ratio':>6} "
            f"{'seml RSS MB':>12} {'rclone RSS MB':>14}"
        )
        ok = True
        for label, way, s, c in rows:
            ratio = s.seconds / c.seconds
            ok = ok and ratio <= 1.0 and s.rss_mb < 200
            print(
                f"{label:<10} {way:<5} {s.seconds:8.2f} {c.seconds:9.2f} {ratio:6.2f} "
                f"{s.rss_mb:12.0f} {c.rss_mb:14.0f}"
            )
        rate = total / MiB / min(s.seconds for _, _, s, _ in rows)
        print(
            f"\nbest seml throughput {rate:.0f} MiB/s; targets (ratio <= 1.0, RSS < 200 MB): "
            f"{'met' if ok else 'NOT met'}"
        )
        return 0
    finally:
        server.stop()
        if not args.keep:
            drop(work)


if __name__ == "__main__":
    sys.exit(main())
