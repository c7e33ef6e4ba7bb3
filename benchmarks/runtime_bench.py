"""`seml run` benchmark: fixed overhead around a trivial command, and protected-volume throughput.

Starts a real `seml cas serve` over HTTPS on a free loopback port, submits one signed session
(tolerating simulation) and compares, in one run on this machine:

1. Fixed overhead: `seml run` around a trivial command (`true`, then `python -c pass`) with one
   empty protected volume (measure, attest over HTTPS, receive the configuration, unseal and
   seal the empty volume, report its new version), against the same command run natively.
   Runs alternate seml/native so background load hits both alike.
2. Volume throughput: a small Python program that reads a SIZE MiB file from the volume,
   transforms every byte (`bytes.translate`, +1 mod 256), writes the result to a new file,
   fsyncs it and renames it over the original. The volume therefore holds one SIZE MiB file in
   steady state. What each side does, so that both end with the new data durable on disk:
   - native (plain disk): the program alone, on a plain folder on the same filesystem as the
     volumes dir: reads SIZE MiB (from the page cache: the previous run wrote it), writes SIZE
     MiB and fsyncs it.
   - seml run: everything of 1. (measure, attest, service round trips), then unseal (decrypt
     SIZE MiB from the volume into the memory-backed workspace), the same program there (its
     fsync costs nothing on tmpfs), then seal (encrypt SIZE MiB, SHA-256 it for the manifest,
     fsync the new object, manifest, header and folders), report the new version, remove the
     workspace. With `--mount fuse` there is no unseal: the program reads through FUSE,
     decrypted on access, and its writes go to encrypted scratch files the seal reads back.
   - FUSE passthrough (with `--mount fuse`, for information): the program through a mount made
     with the same FUSE library and settings that passes requests to the plain folder, no
     crypto: the floor of the kernel crossings and per-request Python calls of any such mount.
   Throughput = (read + written) MiB / the wall time of the whole invocation (interpreter
   start to exit), on each side.

CPU seconds (user + system, of the process and every child it waited for, from wait4) are
printed beside wall times: on a machine shared with other work, wall times include waiting for
a CPU, CPU seconds much less so. The service's own CPU (verifying evidence, SQLite commits) is
not in seml run's CPU figure; its time is in the wall figure.

Phase times of `seml run` come from timestamping its stderr lines as they arrive (the runtime
flushes one line per step; the benchmark's program adds one when it is done): startup (process
start, imports, measurement), attest, unseal, command, seal (including the version report to the
service), exit (completion report, workspace wipe, interpreter shutdown).

The simulated measurement covers the seml package's own source, so everything runs from a
copy of src/seml taken at start (PYTHONPATH for the service; `seml run`, which refuses
PYTHONPATH, through a launcher that puts the copy first on its path): an edit to the checkout
during the run cannot make the attestation service refuse the runtime. The copy is compiled
once, as `pip install` does: with PYTHONDONTWRITEBYTECODE set, every start would compile it.
Temp files live under /tmp and are removed.

The attestation is SIMULATED (no TEE hardware): the figures measure SEML's own work.

    .venv/bin/python benchmarks/runtime_bench.py [--size-mib 256] [--repetitions 20]
        [--io-repetitions 3] [--mount auto]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Targets of issue 16: fixed cost <= 150 ms beyond the bare command; a program reading and
# writing a volume gets >= 80% of plain disk's throughput (workspace mode), >= 50% through FUSE.
OVERHEAD_TARGET_MS = 150.0
THROUGHPUT_TARGET = 0.8
FUSE_TARGET = 0.5

# The volume workload. Same program, same argv natively and under `seml run`; it finds its
# folder in SEML_VOLUME_DATA (set by `seml run`, or by the benchmark for the native run).
PROGRAM = """\
import os, sys, time
t0 = time.perf_counter()
size = int(sys.argv[1]) << 20
folder = os.environ["SEML_VOLUME_DATA"]
path = os.path.join(folder, "data.bin")
tmp = path + ".new"
block = 1 << 20
read = written = 0
if not os.path.exists(path):  # first (setup) run: create the file
    mode = "created"
    chunk = os.urandom(block)
    with open(tmp, "wb", buffering=0) as out:
        for _ in range(size // block):
            written += out.write(chunk)
        os.fsync(out.fileno())
else:
    mode = "transformed"
    table = bytes((i + 1) % 256 for i in range(256))
    buf = bytearray(block)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as src, open(tmp, "wb", buffering=0) as out:
        while n := src.readinto(buf):
            read += n
            written += out.write(view[:n].tobytes().translate(table))
        os.fsync(out.fileno())
    if read != size:
        sys.exit(f"expected {size} bytes in {path}, read {read}")
os.replace(tmp, path)
print(f"bench-command {mode} {read} {written} {time.perf_counter() - t0:.6f}",
      file=sys.stderr, flush=True)
"""


class Passthrough:
    """The FUSE floor: a mount made with the same library and settings as a volume's FUSE mount
    (mfusepy over libfuse 3, one thread, 1 MiB requests, kernel cache, widened read-ahead) that
    passes every request to a plain folder, with no crypto and no scratch files. What the volume
    workload gets through it is what any Python FUSE server gets here at best."""

    use_ns = True

    def __init__(self, root: str, mountpoint: str) -> None:
        self.root, self.mountpoint = root, mountpoint

    def _p(self, path: str) -> str:
        return self.root + path

    def init_with_config(self, conn: Any, config: Any) -> None:
        from seml.volume._fuse import _REQUEST, _widen_readahead  # the volume mount's settings

        if conn is not None:
            conn.max_write = conn.max_readahead = _REQUEST
        if config is not None:
            config.kernel_cache = 1
        _widen_readahead(Path(self.mountpoint))

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._p(path))
        keys = ("st_mode", "st_size", "st_nlink", "st_uid", "st_gid")
        return {k: getattr(st, k) for k in keys} | {
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
            "st_atime": st.st_atime_ns,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *(p.name for p in Path(self._p(path)).iterdir())]

    def open(self, path: str, flags: int) -> int:
        return os.open(self._p(path), flags & ~os.O_CREAT)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return os.open(self._p(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        os.truncate(self._p(path), length)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        os.fsync(fh)

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        Path(self._p(old)).rename(self._p(new))

    def unlink(self, path: str) -> None:
        Path(self._p(path)).unlink()

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(self._p(path))
        else:
            os.utime(self._p(path), ns=times)

    def chmod(self, path: str, mode: int) -> None:
        Path(self._p(path)).chmod(mode)


def serve_passthrough(root: str, mountpoint: str) -> None:
    import mfusepy  # type: ignore[import-untyped]

    mfusepy.FUSE(Passthrough(root, mountpoint), mountpoint, foreground=True, nothreads=True)


class PassthroughMount:
    """`Passthrough` served by a child process (this script) for as long as the context."""

    def __init__(self, root: Path, mountpoint: Path) -> None:
        self.root, self.mountpoint = root, mountpoint
        self._proc: subprocess.Popen[bytes] | None = None
        self._cpu0 = 0.0
        self.server_cpu = 0.0  # the server's CPU seconds, once it has exited

    def stop(self) -> None:
        self.__exit__()
        self.server_cpu = _children_cpu() - self._cpu0

    def __enter__(self) -> PassthroughMount:
        self.mountpoint.mkdir(exist_ok=True)
        argv = [
            sys.executable,
            __file__,
            "--serve-passthrough",
            str(self.root),
            str(self.mountpoint),
        ]
        self._proc = subprocess.Popen(argv)
        self._cpu0 = _children_cpu()
        for _ in range(200):
            if os.path.ismount(self.mountpoint):
                return self
            time.sleep(0.05)
        self.__exit__()
        raise SystemExit("the passthrough FUSE mount did not come up")

    def __exit__(self, *exc: object) -> None:
        tool = shutil.which("fusermount3") or "fusermount"
        subprocess.run([tool, "-u", str(self.mountpoint)], check=False)
        if self._proc is not None:
            deadline = time.monotonic() + 30
            while self._proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._proc.returncode is None:
                self._proc.kill()
                self._proc.wait()


def _children_cpu() -> float:
    """CPU seconds of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# stderr line markers of `seml run` (src/seml/runtime/_run.py) -> the phase they end.
_MARKS = (
    ("attested as ", "attest"),
    (" unsealed at ", "unseal"),
    ("bench-command ", "command"),
    (" sealed as v", "seal"),
    (" unchanged: stays at v", "seal"),  # a volume the command did not change is not sealed
)
PHASES = ("startup", "attest", "unseal", "command", "seal", "exit")


@dataclass
class Timed:
    """One invocation: wall time, and for `seml run` the time at which each phase ended."""

    wall: float
    cpu: float = 0.0  # user + system seconds of the process and the children it waited for
    marks: dict[str, float] = field(default_factory=dict)
    command_seconds: float | None = None  # the program's own time (volume workload only)
    stderr: str = ""

    def phases(self) -> dict[str, float]:
        """Phase durations; a phase without its own marker is folded into the next one
        (`command+seal` for a command that prints nothing)."""
        out: dict[str, float] = {}
        last = 0.0
        pending: list[str] = []
        for name in PHASES:
            end = self.wall if name == "exit" else self.marks.get(name)
            pending.append(name)
            if end is None:
                continue
            out["+".join(pending)] = end - last
            last, pending = end, []
        return out


def _timed(argv: Sequence[str], env: dict[str, str], cwd: Path) -> Timed:
    """Run argv, timestamping each stderr line when it arrives; fail loudly on non-zero exit."""
    lines: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    stream = proc.stderr

    def pump() -> None:
        for raw in stream:
            lines.append((time.perf_counter() - t0, raw.decode(errors="replace")))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    _, wait_status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    status = os.waitstatus_to_exitcode(wait_status)
    proc.returncode = status
    reader.join()
    stream.close()
    cpu = usage.ru_utime + usage.ru_stime
    result = Timed(wall, cpu, stderr="".join(text for _, text in lines))
    if status != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... exited {status}:\n{result.stderr}")
    if lines:
        result.marks["startup"] = lines[0][0]
    for at, text in lines:
        for needle, phase in _MARKS:
            if needle in text:
                result.marks[phase] = at  # the last one wins (several volumes)
        if text.startswith("bench-command "):
            result.command_seconds = float(text.split()[4])
    return result


def _ms(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:8.1f} ms, mean "
        f"{statistics.mean(values) * 1000:8.1f} ms, min {min(values) * 1000:8.1f} ms"
    )


def _phase_table(runs: Sequence[Timed], indent: str = "    ") -> list[str]:
    per: dict[str, list[float]] = {}
    for r in runs:
        for name, seconds in r.phases().items():
            per.setdefault(name, []).append(seconds)
    total = statistics.median(r.wall for r in runs)
    out = []
    for name, values in per.items():
        if len(values) == len(runs):
            med = statistics.median(values)
            out.append(f"{indent}{name:<14} {med * 1000:9.1f} ms  ({100 * med / total:4.1f}%)")
    return out


def _session(owner_public: str, trivial: dict[str, str], io_measurement: str) -> dict[str, Any]:
    services: list[dict[str, Any]] = [
        {"name": name, "measurements": [m], "volumes": {"empty": "/empty"}}
        for name, m in trivial.items()
    ]
    services.append({"name": "io", "measurements": [io_measurement], "volumes": {"data": "/data"}})
    return {
        "version": 1,
        "name": "runtime-bench",
        "parties": {"owner": owner_public},
        "approval": {"create": ["owner"], "update": ["owner"]},
        "security": {"tolerate": ["simulation"]},
        "secrets": [],
        "volumes": [{"name": "empty"}, {"name": "data"}],
        "services": services,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="volume workload file size")
    parser.add_argument(
        "--repetitions", type=int, default=20, help="measured runs per trivial command"
    )
    parser.add_argument(
        "--io-repetitions", type=int, default=3, help="measured runs of the volume workload"
    )
    parser.add_argument(
        "--mount",
        default="auto",
        choices=("auto", "namespace", "workspace"),
        help="passed to `seml run --mount`",
    )
    parser.add_argument(
        "--fixed-only", action="store_true", help="only part 1 (fixed overhead), no volume workload"
    )
    parser.add_argument("--serve-passthrough", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_passthrough:
        serve_passthrough(*args.serve_passthrough)
        return 0
    if args.size_mib < 1 or args.repetitions < 1 or args.io_repetitions < 1:
        parser.error("--size-mib, --repetitions and --io-repetitions must be at least 1")

    python = sys.executable
    true = shutil.which("true") or "/bin/true"
    trivial_commands = {"trivial-true": [true], "trivial-python": [python, "-c", "pass"]}

    with tempfile.TemporaryDirectory(prefix="seml-runtime-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        # The simulated measurement covers every source file of the seml package, and others
        # may be editing this checkout: run everything (CAS, `seml run`, `measure`) from a
        # snapshot taken now, so an edit during the benchmark cannot change the measurement.
        snapshot = tmp / "src"
        shutil.copytree(
            REPO / "src" / "seml", snapshot / "seml", ignore=shutil.ignore_patterns("__pycache__")
        )
        # Compiled once, as pip does when it installs seml: without it, an environment with
        # PYTHONDONTWRITEBYTECODE set would compile every module at every start.
        compileall.compile_dir(snapshot, quiet=1)
        sys.path.insert(0, str(snapshot))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(snapshot), os.environ.get("PYTHONPATH")) if p
        )
        from seml.bench import TargetRow, record_target
        from seml.cas import LocalCas
        from seml.policy import new_key_pair, public_key_text, session_from_document, sign_session
        from seml.runtime import init_platform_key, measure

        assert Path(measure.__code__.co_filename).is_relative_to(snapshot)
        code = tmp / "code"
        code.mkdir()
        program = code / "transform.py"
        program.write_text(PROGRAM)
        io_command = [python, str(program), str(args.size_mib)]
        plain = tmp / "plain"  # native counterpart of the volume, same filesystem
        plain.mkdir()
        volumes = tmp / "volumes"
        platform_key = tmp / "platform.key"
        init_platform_key(platform_key)

        with LocalCas(tmp / "cas") as cas:
            owner = new_key_pair()
            doc = _session(
                public_key_text(owner.public),
                {name: measure([], argv) for name, argv in trivial_commands.items()},
                measure([code], io_command),
            )
            session = session_from_document(doc)
            with cas.client() as client:
                client.submit_session(session, [sign_session(session, "owner", owner)])

            # `seml run` refuses to start with PYTHONPATH set (it loads code the measurement
            # does not cover): it runs from the snapshot through a path set by its launcher.
            env = {k: v for k, v in {**os.environ, **cas.env}.items() if k != "PYTHONPATH"}
            # It calls `entry()`, as the installed `seml` script does (which ends `seml run`
            # without the interpreter's teardown).
            launcher = [
                python,
                "-c",
                "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                "from seml.cli import entry; entry()",
                str(snapshot),
            ]
            native_env = {k: v for k, v in os.environ.items() if not k.startswith("SEML_")} | {
                "SEML_VOLUME_DATA": str(plain)
            }

            def seml_run(
                service: str, argv: Sequence[str], *extra: str, mount: str = args.mount
            ) -> Timed:
                return _timed(
                    [
                        *launcher,
                        "run",
                        "--session",
                        "runtime-bench",
                        "--service",
                        service,
                        "--volumes-dir",
                        str(volumes),
                        "--platform-key",
                        str(platform_key),
                        "--mount",
                        mount,
                        *extra,
                        "--",
                        *argv,
                    ],
                    env,
                    tmp,
                )

            print(
                f"seml run benchmark (SIMULATED attestation, no TEE), {os.cpu_count()} cores, "
                f"load average {os.getloadavg()[0]:.2f}, CAS {cas.url}"
            )

            # 1. Fixed overhead.
            overhead: dict[str, tuple[list[Timed], list[Timed]]] = {}
            for service, argv in trivial_commands.items():
                warm = seml_run(service, argv)  # warm-up (creates the empty volume)
                if service == "trivial-true":
                    flat = "no private mount namespace" in warm.stderr
                    print(
                        f"--mount {args.mount}: "
                        + ("workspace only" if flat else "private mount namespace (unshare)")
                    )
                _timed(argv, native_env, tmp)
                runs: list[Timed] = []
                native: list[Timed] = []
                for _ in range(args.repetitions):
                    native.append(_timed(argv, native_env, tmp))
                    runs.append(seml_run(service, argv))
                overhead[service] = (runs, native)
                s = [r.wall for r in runs]
                n = [r.wall for r in native]
                diff = (statistics.median(s) - statistics.median(n)) * 1000
                print(
                    f"\n1. fixed overhead, command {' '.join(Path(a).name for a in argv)!r}, "
                    f"empty volume, {args.repetitions} runs each"
                )
                s_cpu = statistics.median(r.cpu for r in runs) * 1000
                n_cpu = statistics.median(r.cpu for r in native) * 1000
                print(f"  native    {_ms(n)}, CPU {n_cpu:7.1f} ms")
                print(f"  seml run  {_ms(s)}, CPU {s_cpu:7.1f} ms")
                print(
                    f"  overhead  {diff:.1f} ms wall (median difference; mean "
                    f"{(statistics.mean(s) - statistics.mean(n)) * 1000:.1f} ms), "
                    f"{s_cpu - n_cpu:.1f} ms CPU of seml run itself (the service's work not "
                    "included)"
                )
                print("  seml run phases (median):")
                print("\n".join(_phase_table(runs)))

            # 2. Volume throughput: the chosen mount mode, then FUSE (decrypted on access) where
            # it works here (fuse_available() says why not, or None).
            from seml.volume import fuse_available

            mounts = [args.mount] + ([] if args.mount == "fuse" or fuse_available() else ["fuse"])
            if args.fixed_only:
                mounts = []
            rates: dict[str, tuple[float, float]] = {}
            floors: dict[str, float] = {}
            for mount in mounts:
                size = args.size_mib
                moved = 2 * size  # read + written by the command
                setup = seml_run("io", io_command, "--code", str(code), mount=mount)
                _timed(io_command, native_env, tmp)
                assert setup.command_seconds is not None, setup.stderr
                io_runs: list[Timed] = []
                io_native: list[Timed] = []
                io_floor: list[Timed] = []
                floor_env = native_env | {"SEML_VOLUME_DATA": str(tmp / "passthrough")}
                for _ in range(args.io_repetitions):
                    io_native.append(_timed(io_command, native_env, tmp))
                    io_runs.append(seml_run("io", io_command, "--code", str(code), mount=mount))
                    if mount == "fuse":  # the floor: same FUSE library, no crypto, plain folder
                        passthrough = PassthroughMount(plain, tmp / "passthrough").__enter__()
                        try:
                            floor = _timed(io_command, floor_env, tmp)
                        finally:
                            passthrough.stop()
                        floor.cpu += passthrough.server_cpu
                        io_floor.append(floor)
                for r in io_runs:
                    if "bench-command transformed" not in r.stderr:
                        raise SystemExit(
                            f"the volume workload did not run as expected:\n{r.stderr}"
                        )
                s_wall = statistics.median(r.wall for r in io_runs)
                n_wall = statistics.median(r.wall for r in io_native)
                s_rate, n_rate = moved / s_wall, moved / n_wall
                s_cmd = statistics.median(r.command_seconds or 0.0 for r in io_runs)
                n_cmd = statistics.median(r.command_seconds or 0.0 for r in io_native)
                phases = {  # FUSE decrypts on access: no unseal step of its own
                    name: statistics.median(r.phases()[name] for r in io_runs)
                    for name in ("unseal", "seal")
                    if all(name in r.phases() for r in io_runs)
                }
                print(
                    f"\n2. volume workload, --mount {mount}: read {size} MiB, transform, "
                    f"write {size} MiB, fsync, rename ({args.io_repetitions} runs each, medians)"
                )
                s_cpu = statistics.median(r.cpu for r in io_runs)
                n_cpu = statistics.median(r.cpu for r in io_native)
                print(
                    f"  native (plain disk)  {n_wall * 1000:8.0f} ms  {n_rate:7.1f} MiB/s  "
                    f"CPU {n_cpu:5.2f} s  (program itself {n_cmd * 1000:.0f} ms)"
                )
                print(
                    f"  seml run (volume)    {s_wall * 1000:8.0f} ms  {s_rate:7.1f} MiB/s  "
                    f"CPU {s_cpu:5.2f} s  (program itself {s_cmd * 1000:.0f} ms)"
                )
                if io_floor:
                    f_wall = statistics.median(r.wall for r in io_floor)
                    print(
                        f"  FUSE passthrough     {f_wall * 1000:8.0f} ms  {moved / f_wall:7.1f} "
                        f"MiB/s  CPU {statistics.median(r.cpu for r in io_floor):5.2f} s  "
                        f"= {n_wall / f_wall:.0%} of plain disk (the same FUSE library and "
                        "settings passing requests to a plain folder, no crypto; CPU of the "
                        "program and the server; the floor of any Python FUSE mount here)"
                    )
                    floors[mount] = n_wall / f_wall
                print(
                    f"  throughput ratio     {s_rate / n_rate:.2f} (seml / native; CPU seconds "
                    f"native / seml {n_cpu / s_cpu:.2f}, for information)"
                )
                true_runs, true_native = overhead["trivial-true"]
                fixed_s = statistics.median(r.wall for r in true_runs) - statistics.median(
                    r.wall for r in true_native
                )
                if s_wall - fixed_s > 0:
                    data_rate = moved / (s_wall - fixed_s)
                    print(
                        f"  without the fixed overhead of 1. ({fixed_s * 1000:.0f} ms): "
                        f"{data_rate:.1f} MiB/s, ratio {data_rate / n_rate:.2f} (for information)"
                    )
                if len(phases) == 2:
                    print(
                        f"  unseal {size / phases['unseal']:.0f} MiB/s decrypted, "
                        f"seal {size / phases['seal']:.0f} MiB/s encrypted + fsync"
                    )
                print("  seml run phases (median):")
                print("\n".join(_phase_table(io_runs)))

                rates[mount] = (s_rate, n_rate)
    # 3. Summary.
    true_runs, true_native = overhead["trivial-true"]
    fixed = (
        statistics.median(r.wall for r in true_runs)
        - statistics.median(r.wall for r in true_native)
    ) * 1000
    py_runs, py_native = overhead["trivial-python"]
    fixed_py = (
        statistics.median(r.wall for r in py_runs) - statistics.median(r.wall for r in py_native)
    ) * 1000
    fixed_ok = fixed <= OVERHEAD_TARGET_MS
    fixed_cpu = (
        statistics.median(r.cpu for r in true_runs) - statistics.median(r.cpu for r in true_native)
    ) * 1000
    load = os.getloadavg()[0]
    print(
        f"\nsummary (SIMULATED attestation; seml vs its baseline in the same run; load "
        f"average {load:.2f} on {os.cpu_count()} cores"
        + ("; wall times on a loaded machine include waiting for a CPU)" if load > 1 else ")")
    )
    print(
        f"  {'PASS' if fixed_ok else 'MISS'}  fixed overhead {fixed:.0f} ms around `true` "
        f"(seml run {statistics.median(r.wall for r in true_runs) * 1000:.0f} ms, bare "
        f"{statistics.median(r.wall for r in true_native) * 1000:.0f} ms; {fixed_cpu:.0f} ms "
        f"CPU; {fixed_py:.0f} ms around `python -c pass`); target <= "
        f"{OVERHEAD_TARGET_MS:.0f} ms"
    )
    record_target(
        TargetRow(
            key="run-fixed",
            what="`seml run` around `true` minus bare `true`",
            seml=f"{statistics.median(r.wall for r in true_runs) * 1000:.0f} ms",
            peer=f"{statistics.median(r.wall for r in true_native) * 1000:.0f} ms (bare)",
            value=fixed,
            op="<=",
            limit=OVERHEAD_TARGET_MS,
            unit=" ms",
            bench="runtime_bench.py",
            note=f"CPU {fixed_cpu:.0f} ms; SIMULATED attestation; load {load:.1f}",
        )
    )
    for mount, (s_rate, n_rate) in rates.items():
        ratio = s_rate / n_rate
        target = FUSE_TARGET if mount == "fuse" else THROUGHPUT_TARGET
        record_target(
            TargetRow(
                key="volume-fuse" if mount == "fuse" else "volume-workspace",
                what=f"volume --mount {mount}, {size} MiB read + written, vs plain disk",
                seml=f"{s_rate:.0f} MiB/s",
                peer=f"{n_rate:.0f} MiB/s (plain disk)",
                value=100 * ratio,
                op=">=",
                limit=100 * target,
                unit="%",
                bench="runtime_bench.py",
                note=f"load {load:.1f}"
                + (
                    f"; FUSE passthrough without crypto {100 * floors[mount]:.0f}%"
                    if mount in floors
                    else ""
                ),
            )
        )
        print(
            f"  {'PASS' if ratio >= target else 'MISS'}  volume --mount {mount}: {s_rate:.0f} "
            f"MiB/s vs plain disk {n_rate:.0f} MiB/s = {100 * ratio:.0f}% ({size} MiB read + "
            f"{size} MiB written); target >= {100 * target:.0f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
