"""`seml demo`: the whole SEML flow on one machine, narrated, and verified at the end."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seml.flow._flow import Flow, FlowConfig
from seml.flow._runner import StepResult

__all__ = ["Check", "run_demo", "verify_flow"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


_ATTESTED = re.compile(r"attested as (\S+) of session (\S+) .*received (.*)$")


def _narrate(console: Console, root: Path) -> Callable[[str, str, StepResult], None]:
    def on_step(label: str, phase: str, result: StepResult) -> None:
        tag = f"[bold cyan]{phase:>12}[/]" if phase else " " * 12
        console.print(f"{tag}  {label}  [dim]{result.seconds:.2f} s[/]")
        for line in result.stderr.splitlines():
            m = _ATTESTED.search(line)
            if m:
                console.print(f"{'':12}    [dim]attested (simulated); got {m[3]}[/]")

    del root
    return on_step


def _plaintext_markers(flow: Flow) -> list[bytes]:
    """Things that must never appear at rest in the cloud: column names, data rows, model bytes."""
    markers = {b"sepal_length", b"petal_width", b"species", b"schema.json"}
    for p in flow.config.parties:
        for path in [*flow.layout.data(p).glob("*.csv")]:
            rows = path.read_bytes().splitlines()[1:40]
            markers.update(r for r in rows if len(r) >= 12)
    return sorted(markers)


def _scan(folder: Path, markers: list[bytes]) -> tuple[int, list[str]]:
    files, hits = 0, []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            files += 1
            blob = path.read_bytes()
            rel = path.relative_to(folder).as_posix()
            hits += [f"{rel}: {m[:20]!r}" for m in markers if m in blob or m in rel.encode()]
    return files, hits


def verify_flow(flow: Flow) -> list[Check]:
    """The properties the demo promises, checked on what is on disk after the flow."""
    import pandas as pd
    import yaml

    from seml.ml import parse_spec, train

    checks: list[Check] = []
    # 1. The confidential model predicts exactly what native scikit-learn predicts, trained on
    # the parties' plaintext combined in the order the fetch service lays it out.
    combined = pd.concat(
        [pd.read_csv(flow.layout.data(p) / f"{p}.csv") for p in sorted(flow.config.parties)],
        ignore_index=True,
    )
    for task, text in flow.specs().items():
        spec = parse_spec(yaml.safe_load(text), source=f"{task} spec")
        native = train(spec, combined).model
        same = True
        for p in flow.config.parties:
            held = pd.read_csv(flow.layout.holdout(p))
            got = pd.read_csv(flow.predictions_dir(p) / f"{task}.csv")["prediction"]
            want = native.predict(held[list(native.feature_names_in_)])
            same = same and list(got.astype(str)) == [str(v) for v in want]
        checks.append(
            Check(
                f"{task}: predictions equal native scikit-learn",
                same,
                "same data, same seed, every holdout row of every party",
            )
        )
    if flow.mode == "native":
        return checks
    checks += [Check(name, ok, detail) for name, ok, detail in flow.receipt_checks]
    # 2. Nothing readable at rest on the cloud side.
    markers = _plaintext_markers(flow)
    files, hits = _scan(flow.layout.cloud, markers)
    checks.append(
        Check(
            "cloud holds nothing readable",
            not hits and files > 0,
            f"{files} files in cloud/ scanned for {len(markers)} column names, data rows and "
            "model bytes" + (f"; found: {hits[:3]}" if hits else ": none found"),
        )
    )
    return checks


def _storage_table(flow: Flow) -> Table:
    table = Table(title="What object storage holds (cloud/storage)", title_justify="left")
    table.add_column("object (encrypted name)")
    table.add_column("bytes", justify="right")
    root = flow.layout.storage
    entries = sorted(p for p in root.rglob("*") if p.is_file())
    for path in entries[:14]:
        table.add_row(path.relative_to(root).as_posix(), f"{path.stat().st_size:,}")
    if len(entries) > 14:
        table.add_row(f"... and {len(entries) - 14} more", "")
    return table


def _phase_table(flow: Flow) -> Table:
    table = Table(title="Phases (each a separate attested service)", title_justify="left")
    for col, just in (
        ("phase", "left"),
        ("seconds", "right"),
        ("CPU %", "right"),
        ("peak MB", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    total = 0.0
    for ph in flow.phases:
        total += ph.step.seconds
        table.add_row(
            ph.phase,
            f"{ph.step.seconds:.2f}",
            f"{ph.step.cpu_percent:.0f}",
            f"{ph.step.peak_rss_mb:.0f}",
        )
    table.add_row("[bold]total[/]", f"[bold]{total:.2f}[/]", "", "")
    return table


def _metrics_table(flow: Flow) -> Table:
    table = Table(title="Model metrics (held-out split of the combined data)", title_justify="left")
    table.add_column("task")
    table.add_column("metrics")
    table.add_column("rows train/test", justify="right")
    for task, m in flow.metrics.items():
        values = m.get("metrics", {})
        shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items() if isinstance(v, float))
        rows = m.get("rows", {})
        table.add_row(task, shown, f"{rows.get('train', '?')}/{rows.get('test', '?')}")
    return table


def _audit_summary(flow: Flow, console: Console) -> Check:
    # Read as the operator of the service reads it (its state folder): every entry in full.
    result = flow.step(
        "verify the audit log",
        ["cas", "audit", "--verify", "--json", "--dir", str(flow.layout.cas)],
    )
    entries = json.loads(result.stdout)
    counts = Counter(str(e["event"]) for e in entries)
    table = Table(title="Audit log (hash-chained, signed by the service)", title_justify="left")
    table.add_column("event")
    table.add_column("count", justify="right")
    for event, n in sorted(counts.items()):
        table.add_row(event, str(n))
    console.print(table)
    return Check("audit chain verifies", True, f"{len(entries)} entries, signatures and links ok")


def run_demo(config: FlowConfig, console: Console | None = None) -> bool:
    """Run and narrate the flow; return whether every check passed."""
    console = console or Console()
    flow = Flow(config, "confidential")
    flow.on_step = _narrate(console, flow.layout.root)
    started = time.perf_counter()
    console.rule("[bold]SEML demo: two parties, one model, an untrusted cloud")
    console.print(
        f"work folder: {flow.layout.root}\n"
        "[yellow]No TEE hardware here: every attestation below is SIMULATED in software and "
        "proves nothing about where code runs; the sessions say they tolerate that.[/]\n"
        "parties/<name>/ is each party's machine, cloud/ the operator's, cas/ the "
        "attestation service's."
    )
    try:
        console.rule("1. agree: keys, sessions, measurements, signatures")
        flow.prepare_data()
        cas = flow.start_cas()
        console.print(f"attestation service at {cas.url} (pinned {cas.fingerprint[:23]}...)")
        flow.agree()
        console.print(f"collaboration session {config.session} accepted: {flow.session_hash}")
        console.rule("2-4. upload, fetch, train, publish, pull, run (each attested)")
        flow.run_confidential()
        console.rule("5. what happened")
        console.print(_phase_table(flow))
        console.print(_metrics_table(flow))
        console.print(_storage_table(flow))
        checks = [_audit_summary(flow, console), *verify_flow(flow)]
    finally:
        flow.close()
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[red]FAILED[/]"
        console.print(f"{mark}  {c.name}: [dim]{c.detail}[/]")
    ok = all(c.ok for c in checks)
    console.print(
        f"\n{'[green]verified' if ok else '[red]NOT verified'}[/] in "
        f"{time.perf_counter() - started:.1f} s; everything is in {flow.layout.root}"
    )
    return ok
