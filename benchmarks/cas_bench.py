"""Attestation service benchmark: attestation + secret release round trips over HTTPS.

Starts a real `seml cas serve` on loopback, creates a session tolerating simulation evidence,
then runs the load generator *on the same machine*: several processes, each with keep-alive TLS
connections driven by a minimal asyncio HTTP/1.1 client (so the generator does not eat the
cores the service needs). One round trip = POST /v1/nonce, build simulation evidence bound to the
nonce and a fresh X25519 key, POST /v1/attest, open the sealed configuration.
Also measures session submissions per second (each one signed, verified, its secrets generated
and sealed, committed before the answer).

Simulation evidence proves nothing about hardware; the figures measure the service's own work
(TLS, verification logic, secret resolution, sealing, durable audit log).

Last, the price of durability: audit-logged commits per second of the service's store with
`synchronous=FULL` (what the service runs: a commit is on the disk before the answer, so it
survives a power loss) against `synchronous=NORMAL` (survives a killed process only), on the
same disk in the same run.

    .venv/bin/python benchmarks/cas_bench.py [--clients 32] [--procs 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MEASUREMENT = "ab" * 32


class Conn:
    """One keep-alive HTTP/1.1 connection over TLS; just enough protocol for JSON calls."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str, ssl_ctx: Any) -> Conn:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        r, w = await asyncio.open_connection(host, int(port), ssl=ssl_ctx, server_hostname=host)
        return cls(r, w, host)

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


def _generator(
    url: str, fingerprint: str, clients: int, start_at: float, seconds: float, out: Any
) -> None:
    import uvloop
    from nacl.public import PrivateKey, SealedBox

    from seml.attest import SimulationProvider, report_data_for
    from seml.cas._client import _pinned_context

    ctx = _pinned_context(url, fingerprint, 10.0)
    provider = SimulationProvider(MEASUREMENT)

    async def one_client(latencies: list[float], errors: list[str]) -> None:
        conn = await Conn.open(url, ctx)
        while time.time() < start_at:
            await asyncio.sleep(0.01)
        end = start_at + seconds
        while time.time() < end:
            t0 = time.perf_counter()
            key = PrivateKey.generate()
            public = bytes(key.public_key)
            status, body = await conn.call("POST", "/v1/nonce")
            nonce = base64.b64decode(json.loads(body)["nonce"])
            evidence = provider.evidence(report_data_for(nonce, public))
            request = json.dumps(
                {
                    "session": "bench",
                    "service": "worker",
                    "nonce": base64.b64encode(nonce).decode(),
                    "public_key": base64.b64encode(public).decode(),
                    "evidence": evidence.to_json_dict(),
                }
            ).encode()
            status, body = await conn.call("POST", "/v1/attest", request)
            if status != 200:
                errors.append(body.decode()[:200])
                continue
            config = json.loads(
                SealedBox(key).decrypt(base64.b64decode(json.loads(body)["sealed"]))
            )
            assert config["environment"]["KEY"]
            latencies.append(time.perf_counter() - t0)
        conn.writer.close()

    async def main() -> None:
        latencies: list[float] = []
        errors: list[str] = []
        await asyncio.gather(*(one_client(latencies, errors) for _ in range(clients)))
        out.put((latencies, errors))

    uvloop.run(main())


def _submitter(url: str, fingerprint: str, bodies: list[bytes], clients: int, out: Any) -> None:
    import uvloop

    from seml.cas._client import _pinned_context

    ctx = _pinned_context(url, fingerprint, 10.0)

    async def one_client(queue: list[bytes], latencies: list[float], errors: list[str]) -> None:
        conn = await Conn.open(url, ctx)
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            status, answer = await conn.call("POST", "/v1/sessions", body)
            if status != 200:
                errors.append(answer.decode()[:200])
            latencies.append(time.perf_counter() - t0)
        conn.writer.close()

    async def main() -> None:
        latencies: list[float] = []
        errors: list[str] = []
        queue = list(bodies)
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(queue, latencies, errors) for _ in range(clients)))
        out.put((latencies, errors, time.perf_counter() - t0))

    uvloop.run(main())


def _session_doc(name: str, public: str) -> dict[str, Any]:
    return {
        "version": 1,
        "name": name,
        "predecessor": None,
        "parties": {"owner": public},
        "approval": {"create": ["owner"], "update": ["owner"]},
        "security": {"tolerate": ["simulation"]},
        "secrets": [
            {"name": "data_key", "kind": "key", "readers": ["worker"]},
            {"name": "token", "kind": "ascii", "readers": ["worker"]},
        ],
        "volumes": [{"name": "out"}],
        "services": [
            {
                "name": "worker",
                "measurements": [MEASUREMENT],
                "command": ["python", "-m", "worker"],
                "environment": {"KEY": "$$SEML::data_key$$", "TOKEN": "$$SEML::token$$"},
                "volumes": {"out": "/out"},
            }
        ],
    }


def _commit_rate(folder: Path, synchronous: str, commits: int) -> float:
    """Audit-logged commits per second of the service's store in `synchronous` mode."""
    from seml.cas._state import StateStore

    folder.mkdir()
    store = StateStore(folder / "state.db", lambda _: b"\0" * 64, synchronous=synchronous)
    try:
        start = time.perf_counter()
        for i in range(commits):
            with store.transaction() as db:
                store.append_audit(db, "bench", {"i": i}, time.time())
        return commits / (time.perf_counter() - start)
    finally:
        store.close()


def _durability(base: Path, commits: int) -> None:
    full = _commit_rate(base / "full", "FULL", commits)
    normal = _commit_rate(base / "normal", "NORMAL", commits)
    print(
        f"durable commits (one audit entry each, {commits} in a row, on {base}): "
        f"synchronous=FULL {full:.0f}/s (the service: survives power loss), "
        f"synchronous=NORMAL {normal:.0f}/s (survives kill -9 only), FULL costs "
        f"{(1 / full - 1 / normal) * 1e3:.2f} ms per commit"
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in total")
    parser.add_argument("--procs", type=int, default=4, help="load generator processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration")
    parser.add_argument("--sessions", type=int, default=400, help="sessions to submit")
    parser.add_argument(
        "--commits", type=int, default=500, help="commits per synchronous mode (durability)"
    )
    parser.add_argument(
        "--durability-only", action="store_true", help="measure FULL against NORMAL only"
    )
    args = parser.parse_args()

    from seml.attest import SimulationProvider
    from seml.cas import LocalCas
    from seml.policy import new_key_pair, public_key_text, session_from_document, sign_session

    # On the disk the benchmark runs from (the system temp dir may be memory, where syncing
    # costs nothing).
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        _durability(Path(tmp), args.commits)
    if args.durability_only:
        return 0

    owner = new_key_pair()
    with tempfile.TemporaryDirectory() as tmp, LocalCas(Path(tmp) / "cas") as cas:
        with cas.client() as client:
            s = session_from_document(_session_doc("bench", public_key_text(owner.public)))
            client.submit_session(s, [sign_session(s, "owner", owner)])
            client.attest("bench", "worker", SimulationProvider(MEASUREMENT))

        ctx = mp.get_context("fork")
        out = ctx.Queue()
        per = [
            args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)
        ]
        start_at = time.time() + 1.5
        procs = [
            ctx.Process(
                target=_generator, args=(cas.url, cas.fingerprint, n, start_at, args.seconds, out)
            )
            for n in per
        ]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        latencies = [x for lat, _ in results for x in lat]
        errors = [x for _, err in results for x in err]
        rate = len(latencies) / args.seconds
        print(
            f"attestation + secret release (SIMULATED evidence), {args.clients} clients over "
            f"HTTPS, {args.procs} generator processes on the same machine "
            f"({os.cpu_count()} cores):"
        )
        print(
            f"  {len(latencies)} round trips in {args.seconds:.0f} s: {rate:.0f}/s "
            f"({2 * rate:.0f} HTTP requests/s), p50 {_pct(latencies, 0.5):.1f} ms, "
            f"p99 {_pct(latencies, 0.99):.1f} ms, mean {statistics.mean(latencies) * 1000:.1f} ms, "
            f"errors {len(errors)}"
        )
        if errors:
            print("  first error:", errors[0])

        # Session submissions: pre-signed distinct sessions, submitted concurrently.
        bodies = []
        for i in range(args.sessions):
            si = session_from_document(_session_doc(f"bench-{i}", public_key_text(owner.public)))
            bodies.append(
                json.dumps(
                    {
                        "document": si.document(),
                        "signatures": [sign_session(si, "owner", owner).model_dump()],
                    }
                ).encode()
            )
        sub_clients = 8
        sp = ctx.Process(
            target=_submitter, args=(cas.url, cas.fingerprint, bodies, sub_clients, out)
        )
        sp.start()
        lat, errs, elapsed = out.get()
        sp.join()
        print(
            f"session submissions ({sub_clients} clients, each verified, secrets generated and "
            f"sealed, committed before the answer): {len(lat) / elapsed:.0f}/s, "
            f"p50 {_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms, errors {len(errs)}"
        )
        if errs:
            print("  first error:", errs[0])
        ok = rate >= 500 and _pct(latencies, 0.99) < 200 and not errors
        print(f"target (>= 500/s, p99 < 200 ms): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
