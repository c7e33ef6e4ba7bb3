"""`seml bench`: the paper's evaluation, reproduced (thin over `seml.bench`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from seml.bench import BenchOptions, BenchResult, RunDone

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    repetitions: Annotated[
        int, typer.Option("--repetitions", "-n", help="Runs of each scenario.", min=1)
    ] = 20,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Results folder (new or empty; default ./bench-results/<timestamp>)."
        ),
    ] = None,
    mode: Annotated[
        list[str] | None,
        typer.Option("--mode", help="Only this mode: native or confidential (repeatable)."),
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="Only this task: classification or regression (repeatable)."),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            help="Only this dataset: P (Iris, 150 rows), G (Iris x 100, 15,000 rows) or "
            "S<rows> from --scale (repeatable).",
        ),
    ] = None,
    scale: Annotated[
        list[int] | None,
        typer.Option(
            "--scale",
            help="Add a dataset of Iris repeated to this many rows, e.g. 1500000 (repeatable).",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Object storage base, file://DIR or s3://bucket/prefix; each run gets its own "
            "prefix below it (default: file://OUT/work/storage).",
        ),
    ] = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option("--s3-endpoint", help="S3 endpoint for s3:// storage (or $SEML_S3_ENDPOINT)."),
    ] = None,
    keep_work: Annotated[
        bool,
        typer.Option("--keep-work", help="Keep OUT/work (data, keys, CAS state) for inspection."),
    ] = False,
) -> None:
    """Run the paper's 8 scenarios (native / confidential x classification / regression x
    dataset P / G) REPETITIONS times each; write results.csv, phases.png, resources.png and
    report.md.

    Each run is the whole flow, on fresh storage and (confidential) fresh sessions.

    Attestation is SIMULATED (no TEE). Exits 1 if any run failed; the others are reported.
    """
    from rich.console import Console

    from seml.bench import BenchOptions, scenarios

    picked = scenarios(
        scale=scale or (), modes=mode or (), tasks=task or (), datasets=dataset or ()
    )
    folder = out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    # The flow's steps run with SEML_* cleared, so the endpoint travels as an option.
    s3_endpoint = s3_endpoint or os.environ.get("SEML_S3_ENDPOINT") or None
    options = BenchOptions(
        out=folder,
        scenarios=picked,
        repetitions=repetitions,
        storage=storage,
        s3_endpoint=s3_endpoint,
        keep_work=keep_work,
    )
    console = Console(stderr=True)
    console.print(
        f"seml bench: {len(picked)} scenarios x {repetitions} repetitions -> {folder}\n"
        "[yellow]attestation is SIMULATED (no TEE hardware)[/]",
        highlight=False,
    )
    result = _run_with_progress(console, options)
    console.print(f"results in {result.out}", highlight=False)
    _print_targets(console, result.out / "report.md")
    if result.failures:
        console.print(f"[red]{len(result.failures)} run(s) failed[/]; see report.md")
        raise typer.Exit(1)


def _line(done: RunDone) -> str:
    status = f"FAILED: {done.error}" if done.error else "ok"
    return (
        f"[{done.index}/{done.total}] {done.scenario.mode} {done.scenario.task} "
        f"{done.scenario.dataset.label} rep {done.repetition}: {done.seconds:.1f} s {status}"
    )


def _run_with_progress(console: Console, options: BenchOptions) -> BenchResult:
    from seml.bench import run_bench

    if not console.is_terminal:
        return run_bench(options, lambda d: console.print(_line(d), highlight=False))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("runs", total=len(options.scenarios) * options.repetitions)

        def on_run(done: RunDone) -> None:
            progress.update(bar, advance=1, description=_line(done))
            if done.error:
                progress.console.print(_line(done), highlight=False)

        return run_bench(options, on_run)


def _print_targets(console: Console, report: Path) -> None:
    lines = report.read_text().splitlines()
    start = lines.index("## Targets") if "## Targets" in lines else -1
    for line in lines[start + 4 : start + 6] if start >= 0 else []:
        console.print(line, highlight=False, soft_wrap=True)
