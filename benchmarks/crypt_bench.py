"""seml crypt against real rclone on one large file, plus libsodium's raw secretbox speed.

Encrypts and decrypts a 1 GiB file (default) through the `seml` CLI and through `rclone copy`
with a crypt remote over a local folder, in the same run on the same files, and prints wall
time, throughput, the peak RSS of each child process, the seml/rclone wall-time ratio, and
seml's throughput as a share of raw `crypto_secretbox_easy` on 64 KiB chunks measured here.
Targets (issue 16): encrypt <= 0.5x rclone's time, decrypt <= 0.8x, and seml's peak RSS flat
in the file size: seml also encrypts and decrypts a file 1/8 the size, and its peak RSS on the
full file may exceed that by at most 16 MB.

    .venv/bin/python benchmarks/crypt_bench.py [--size-mib 1024] [--reps 2] [--dir /tmp]

Each measurement is the best of --reps runs (the machine is shared; best-of filters noise).
Files live in a temporary folder under --dir and are deleted at the end.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nacl._sodium import ffi, lib

import seml
from seml.bench import TargetRow, record_target
from seml.crypt import obscure

MIB = 1 << 20
CHUNK = 64 * 1024
SEML = str(Path(sys.executable).with_name("seml"))
TARGETS = {"encrypt": 0.5, "decrypt": 0.8}
RSS_LIMIT_MB = 150
RSS_GROWTH_LIMIT_MB = 16.0  # full file vs 1/8 of it


@dataclass(frozen=True)
class Run:
    wall: float
    rss_mb: float
    cpu: float  # user + system seconds of the child


def run_child(argv: list[str], env: dict[str, str]) -> Run:
    """Run a command; return its wall time and peak RSS (from wait4, this child only)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return Run(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def best(runs: list[Run]) -> Run:
    return Run(min(r.wall for r in runs), max(r.rss_mb for r in runs), min(r.cpu for r in runs))


def raw_secretbox(total: int, threads: int) -> float:
    """MB/s of crypto_secretbox_easy over 64 KiB chunks, `threads` threads, `total` bytes each."""
    key, nonce = os.urandom(32), os.urandom(24)
    src = os.urandom(CHUNK)

    def work() -> None:
        dst = ffi.new("unsigned char[]", CHUNK + 16)
        for _ in range(total // CHUNK):
            lib.crypto_secretbox_easy(dst, src, CHUNK, nonce, key)

    best_rate = 0.0
    for _ in range(2):
        workers = [threading.Thread(target=work) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best_rate = max(best_rate, threads * total / MIB / (time.perf_counter() - start))
    return best_rate


def make_file(path: Path, size: int) -> str:
    """Write `size` pseudo-random bytes (fast, incompressible enough); return its SHA-256."""
    digest = hashlib.sha256()
    block = bytearray(os.urandom(MIB))
    with path.open("wb") as f:
        for i in range(size // MIB):
            block[:8] = i.to_bytes(8, "little")
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def warm_up_page_cache(work: Path, size: int) -> None:
    """Write and delete 3x the file size once, so no tool pays first-touch memory costs.

    On a VM, the first use of guest memory for the page cache is several times slower than
    reusing it; without this, whichever tool writes first would look slow.
    """
    scratch = work / "warmup"
    block = bytes(MIB)
    with scratch.open("wb") as f:
        for _ in range(3 * size // MIB):
            f.write(block)
    scratch.unlink()


def prime(path: Path) -> None:
    """Read a file or every file under a folder, so it starts in the page cache."""
    for p in [path] if path.is_file() else sorted(path.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                while f.read(4 * MIB):
                    pass


def fsync_tree(path: Path) -> float:
    """fsync every file under `path` (and the folders); return the seconds it took.

    seml writes each file durably (fsync before the rename), rclone leaves its output in the
    page cache; the time to flush rclone's output shows how much of a gap is the disk's."""
    start = time.perf_counter()
    for p in [*sorted(path.rglob("*")), path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return time.perf_counter() - start


def disk_floor(work: Path, size: int, env: dict[str, str]) -> Run:
    """`dd` writing `size` zero bytes durably with direct I/O (1 MiB blocks, then an fsync):
    what this disk takes to store the decrypted file with no decryption at all. A durable
    decrypt cannot beat it; printed for information beside rclone and rclone + fsync."""
    out = work / "dd.bin"
    argv = ["dd", "if=/dev/zero", f"of={out}", "bs=1M", f"count={size // MIB}"]
    run = run_child([*argv, "oflag=direct", "conv=fsync", "status=none"], env)
    out.unlink()
    return run


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--raw-mib", type=int, default=256, help="data per raw secretbox run")
    args = parser.parse_args()
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed (apt-get install rclone)")
    size = args.size_mib * MIB
    # seml compiled once, as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as in this
    # environment) every `seml` start would compile its modules again (~0.4 CPU s here).
    compileall.compile_dir(Path(seml.__file__).parent, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="seml-crypt-bench-", dir=args.dir))
    try:
        _bench(work, size, args.reps, args.raw_mib * MIB)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, size: int, reps: int, raw_size: int) -> None:
    plain = work / "plain"
    plain.mkdir()
    warm_up_page_cache(work, size)
    print(f"writing a {size // MIB} MiB test file in {work} ...", flush=True)
    digest = make_file(plain / "big.bin", size)
    password = "benchmark password"  # noqa: S105  (a throwaway benchmark secret)
    conf = work / "rclone.conf"
    conf.write_text(
        f"[bench]\ntype = crypt\nremote = {work / 'rclone_store'}\n"
        f"password = {obscure(password)}\npassword2 = {obscure('benchmark salt')}\n\n"
        f"[bench_seml]\ntype = crypt\nremote = {work / 'seml_store'}\n"
        f"password = {obscure(password)}\npassword2 = {obscure('benchmark salt')}\n",
        encoding="utf-8",
    )
    conf.chmod(0o600)
    env = {**os.environ, "RCLONE_CONFIG": str(conf)}
    seml_opts = ["--rclone-config", str(conf), "--remote", "bench", "-q"]

    enc_seml, enc_rclone = work / "seml_store", work / "rclone_store"
    out_seml, out_rclone = work / "out_seml", work / "out_rclone"
    commands = {
        ("encrypt", "seml"): (
            plain / "big.bin",
            enc_seml,
            [SEML, "crypt", "encrypt", str(plain), str(enc_seml), *seml_opts],
        ),
        ("encrypt", "rclone"): (
            plain / "big.bin",
            enc_rclone,
            ["rclone", "copy", str(plain), "bench:"],
        ),
        # both decrypt the file rclone wrote
        ("decrypt", "seml"): (
            enc_rclone,
            out_seml,
            [SEML, "crypt", "decrypt", str(enc_rclone), str(out_seml), *seml_opts],
        ),
        ("decrypt", "rclone"): (
            enc_rclone,
            out_rclone,
            ["rclone", "copy", "bench:", str(out_rclone)],
        ),
    }
    runs: dict[tuple[str, str], list[Run]] = {}
    synced: dict[str, list[float]] = {}  # rclone's wall time plus an fsync of what it wrote
    floor: list[Run] = []  # dd's durable direct write of the same size, between the decrypts
    ok = True
    for op in ("encrypt", "decrypt"):
        for rep in range(reps):
            # Alternate which tool goes first. Every run starts from an empty destination
            # (deleting the old output is not charged to the tool) and a freshly read input:
            # the page cache here is capped (memory cgroup), so it drops pages on its own.
            order = ("seml", "rclone") if rep % 2 == 0 else ("rclone", "seml")
            for tool in order:
                source, dest, argv = commands[(op, tool)]
                shutil.rmtree(dest, ignore_errors=True)
                prime(source)
                runs.setdefault((op, tool), []).append(run_child(argv, env))
                if tool == "rclone":  # what rclone's output costs to make durable, as seml's is
                    synced.setdefault(op, []).append(runs[(op, tool)][-1].wall + fsync_tree(dest))
                if op == "decrypt":  # verify now, then free the page cache it occupies
                    same = sha256(dest / "big.bin") == digest
                    ok &= same
                    print(
                        f"verifying: {tool} decrypted the original back:", "yes" if same else "NO"
                    )
                    shutil.rmtree(dest)
            if op == "decrypt":
                floor.append(disk_floor(work, size, env))
        if op == "encrypt":
            check = subprocess.run(
                ["rclone", "cryptcheck", str(plain), "bench_seml:"], env=env, capture_output=True
            )
            ok &= check.returncode == 0
            print(
                "verifying: rclone cryptcheck of seml's encrypted file:",
                "passed" if not check.returncode else "FAILED",
            )
            shutil.rmtree(enc_seml)
            shutil.rmtree(plain)
    results = {key: best(rs) for key, rs in runs.items()}
    small_rss = _small_file_rss(work, size // 8, env, seml_opts)
    for (op, tool), rs in runs.items():
        print(f"  {op} {tool}: " + ", ".join(f"{r.wall:.2f}s/{r.cpu:.2f}cpu" for r in rs))
    print("  disk floor (dd direct + fsync): " + ", ".join(f"{r.wall:.2f}s" for r in floor))
    dd = best(floor)

    raw1 = raw_secretbox(raw_size, 1)
    cores = os.cpu_count() or 1
    rawn = raw_secretbox(raw_size, cores) if cores > 1 else raw1
    mib = size / MIB
    print(
        f"\nfile {mib:.0f} MiB, best of {reps}; machine: {cores} cores (shared), load average "
        f"now {os.getloadavg()[0]:.2f}"
    )
    print(
        f"raw libsodium secretbox, 64 KiB chunks: {raw1:.0f} MiB/s on 1 core, "
        f"{rawn:.0f} MiB/s on {cores}"
    )
    print(f"{'op':8} {'tool':7} {'wall s':>7} {'MiB/s':>7} {'CPU s':>7} {'peak RSS MB':>12}")
    for op in ("encrypt", "decrypt"):
        for tool in ("seml", "rclone"):
            r = results[(op, tool)]
            print(
                f"{op:8} {tool:7} {r.wall:7.2f} {mib / r.wall:7.0f} {r.cpu:7.2f} {r.rss_mb:12.1f}"
            )
    print()
    failed = not ok
    for op, target in TARGETS.items():
        s, r = results[(op, "seml")], results[(op, "rclone")]
        ratio = s.wall / r.wall
        share1, sharen = (mib / s.wall) / raw1, (mib / s.wall) / rawn
        verdict = "ok" if ratio <= target else "MISSED"
        failed |= ratio > target
        durable = min(synced[op])
        disk = (
            f"; the disk alone (dd, direct I/O + fsync) {dd.wall:.2f} s, "
            f"seml {s.wall / dd.wall:.2f}x of it"
            if op == "decrypt"
            else ""
        )
        print(
            f"{op}: seml/rclone wall time {ratio:.2f}x (seml {s.wall:.2f} s, rclone {r.wall:.2f} "
            f"s; target <= {target}x: {verdict}); {s.wall / durable:.2f}x rclone + an fsync of "
            f"its output ({durable:.2f} s{disk}, for information); seml = {100 * share1:.0f}% "
            f"of raw secretbox on 1 core, {100 * sharen:.0f}% of all {cores} cores; CPU seconds "
            f"{s.cpu:.2f} vs {r.cpu:.2f} ({s.cpu / r.cpu:.2f}x, steadier than wall under load)"
        )
        record_target(
            TargetRow(
                key=f"crypt-{op}",
                what=f"crypt {op} {mib:.0f} MiB vs rclone",
                seml=f"{s.wall:.2f} s",
                peer=f"{r.wall:.2f} s (rclone)",
                value=ratio,
                op="<=",
                limit=target,
                unit="x",
                bench="crypt_bench.py",
                note=(
                    f"CPU {s.cpu:.2f} s vs {r.cpu:.2f} s; rclone + fsync {durable:.2f} s"
                    + (f"; disk floor (dd direct + fsync) {dd.wall:.2f} s" if disk else "")
                    + f"; load {os.getloadavg()[0]:.1f}"
                ),
            )
        )
        if s.rss_mb >= RSS_LIMIT_MB:
            failed = True
            print(f"{op}: seml peak RSS {s.rss_mb:.0f} MB >= {RSS_LIMIT_MB} MB: MISSED")
    for op in ("encrypt", "decrypt"):
        full, small = results[(op, "seml")].rss_mb, small_rss[op]
        growth = full - small
        flat = growth <= RSS_GROWTH_LIMIT_MB
        failed |= not flat
        record_target(
            TargetRow(
                key="memory",
                what=f"memory, crypt {op}: peak RSS on {mib:.0f} MiB minus on {mib / 8:.0f} MiB",
                seml=f"{full:.0f} MB",
                peer=f"{small:.0f} MB (1/8 size)",
                value=growth,
                op="<=",
                limit=RSS_GROWTH_LIMIT_MB,
                unit=" MB",
                bench="crypt_bench.py",
            )
        )
        print(
            f"{op}: seml peak RSS {full:.0f} MB on {mib:.0f} MiB vs {small:.0f} MB on "
            f"{mib / 8:.0f} MiB: +{growth:.1f} MB (target flat, <= +{RSS_GROWTH_LIMIT_MB:.0f} MB: "
            f"{'ok' if flat else 'MISSED'}); rclone {results[(op, 'rclone')].rss_mb:.0f} MB"
        )
    print("\nresult:", "targets met" if not failed else "some targets missed (see above)")


def _small_file_rss(
    work: Path, size: int, env: dict[str, str], seml_opts: list[str]
) -> dict[str, float]:
    """seml's peak RSS encrypting and decrypting a `size` file (for the flat-memory target)."""
    plain, store, out = work / "small_plain", work / "small_store", work / "small_out"
    plain.mkdir()
    digest = make_file(plain / "small.bin", max(size, MIB))
    enc = run_child([SEML, "crypt", "encrypt", str(plain), str(store), *seml_opts], env)
    dec = run_child([SEML, "crypt", "decrypt", str(store), str(out), *seml_opts], env)
    if sha256(out / "small.bin") != digest:
        raise SystemExit("seml did not decrypt the small file back to the original")
    for folder in (plain, store, out):
        shutil.rmtree(folder)
    return {"encrypt": enc.rss_mb, "decrypt": dec.rss_mb}


if __name__ == "__main__":
    main()
