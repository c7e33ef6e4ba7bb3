"""`seml bench`: the paper's evaluation, reproduced (thin over `seml.bench`)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seml.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from seml.bench import BenchOptions, BenchResult, Row, RunDone, Table

__all__ = ["register"]

# Off a terminal (a log, a pipe, CI) tables are printed this wide at most, never folded at 80
# columns; a terminal gets its own width.
LOG_WIDTH = 200


def register(app: typer.Typer) -> None:
    group = typer.Typer(invoke_without_command=True)
    group.callback()(bench)
    group.command("report")(report)
    app.add_typer(group, name="bench")


def bench(
    ctx: typer.Context,
    repetitions: Annotated[
        int,
        typer.Option(
            "--repetitions",
            "-n",
            help="Runs of each scenario on P and G (and --scale < 150,000).",
            min=1,
        ),
    ] = 10,
    large_repetitions: Annotated[
        int,
        typer.Option(
            "--large-repetitions",
            help="Runs of each scenario on the large datasets (L and --scale >= 150,000 rows).",
            min=1,
        ),
    ] = 2,
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
            help="Only this dataset: P (Iris, 150 rows), G (Iris x 100, 15,000 rows), L (Iris "
            "x 10,000, 1,500,000 rows) or S<rows> from --scale (repeatable).",
        ),
    ] = None,
    scale: Annotated[
        list[int] | None,
        typer.Option(
            "--scale",
            help="Add a dataset of Iris repeated to this many rows, e.g. 300000 (repeatable).",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Object storage base, file://DIR or s3://bucket/prefix; each run gets its own "
            "prefix below it (default: a folder in OUT/work, removed after the run).",
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
    """Run the whole flow in 12 scenarios (native / confidential x classification /
    regression x dataset P, G, L) and write results.csv, bench.json, phases.png,
    resources.png and report.md.

    P and G are the paper's datasets and run --repetitions times; L (1.5 M rows) runs
    --large-repetitions times. Each run is the whole flow, on fresh storage and
    (confidential) fresh sessions. `seml bench report DIR` rebuilds the figures and report.

    Attestation is SIMULATED (no TEE). Exits 1 if any run failed; the others are reported.
    """
    if ctx.invoked_subcommand is not None:
        _refuse_options(ctx)
        return
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
        large_repetitions=large_repetitions,
        storage=storage,
        s3_endpoint=s3_endpoint,
        keep_work=keep_work,
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    runs = options.runs()
    err.print(
        f"seml bench: {len(picked)} scenarios, {len(runs)} runs ({_plan(options)}) -> {folder}"
        "\n[yellow]attestation is SIMULATED (no TEE hardware)[/]"
    )
    started = time.perf_counter()
    try:
        result = _run_with_progress(err, options)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: the finished runs are in {folder / 'results.csv'}; "
            f"`seml bench report {folder}` makes the figures and report from them"
        )
        raise typer.Exit(130) from None
    minutes = (time.perf_counter() - started) / 60
    _print_summary(result.rows)
    err.print(f"{len(runs)} runs in {minutes:.1f} min; report: {result.out / 'report.md'}")
    if result.failures:
        err.print(f"[red]{len(result.failures)} run(s) failed[/]; see report.md")
        raise typer.Exit(1)


def _plan(options: BenchOptions) -> str:
    """How many runs each dataset gets, e.g. "20 each on P, G; 2 each on L"."""
    by: dict[int, list[str]] = {}
    for s in options.scenarios:
        label = s.dataset.label
        reps = by.setdefault(options.repetitions_of(s), [])
        if label not in reps:
            reps.append(label)
    return "; ".join(f"{n} each on {', '.join(labels)}" for n, labels in by.items())


def _refuse_options(ctx: typer.Context) -> None:
    """`seml bench -n 3 report DIR` would silently ignore -n: say so instead."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    given = [name for name, source in sources.items() if source and source.name != "DEFAULT"]
    if given:
        raise UsageError(
            f"--{given[0].replace('_', '-')} is an option of `seml bench`, not of "
            f"`seml bench {ctx.invoked_subcommand}`"
        )


def report(
    folder: Annotated[
        Path, typer.Argument(help="A results folder of `seml bench` (with its results.csv).")
    ],
) -> None:
    """Rebuild phases.png, resources.png and report.md from a results folder's results.csv
    (and bench.json), e.g. after an interrupted run or a change to the report."""
    from rich.console import Console

    from seml.bench import FIGURES, REPORT_FILE, rebuild

    rows = rebuild(folder)
    _print_summary(rows)
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"rebuilt {', '.join(str(folder / f) for f in (*FIGURES, REPORT_FILE))}"
    )


def _line(done: RunDone) -> str:
    status = f"FAILED: {done.error}" if done.error else "ok"
    return (
        f"[{done.index}/{done.total}] {done.scenario.mode} {done.scenario.task} "
        f"{done.scenario.dataset.label} rep {done.repetition}: {done.seconds:.1f} s {status}"
    )


def _run_with_progress(console: Console, options: BenchOptions) -> BenchResult:
    from seml.bench import run_bench

    if not console.is_terminal:
        return run_bench(options, lambda d: console.print(_line(d), markup=False))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("runs", total=len(options.runs()))

        def on_run(done: RunDone) -> None:
            progress.update(bar, advance=1, description=_line(done).replace("[", r"\["))
            if done.error:
                progress.console.print(_line(done), markup=False)

        return run_bench(options, on_run)


_STATUS_STYLE = {"PASS": "bold green", "MISS": "bold red", "NOT RUN": "yellow"}


def _print_summary(rows: list[Row]) -> None:
    """The targets, the ratios and the means per scenario, as tables: on a terminal at its
    width, in a log or pipe at `LOG_WIDTH` columns (a row is one line there)."""
    from rich.console import Console

    from seml.bench import ratio_table, scenario_stats, summary_table, target_table

    terminal = sys.stdout.isatty()
    console = Console(highlight=False, width=None if terminal else LOG_WIDTH)
    stats = scenario_stats(rows)
    tables = [
        _rich_table(title, table, terminal)
        for title, table in (
            ("Targets (the project's own; paper's figures for comparison)", target_table(stats)),
            ("Confidential / native, whole flow", ratio_table(stats)),
            ("Means per scenario (per phase: report.md)", summary_table(stats)),
        )
    ]
    if terminal:
        for table in tables:
            console.print(table)
        return
    with console.capture() as captured:  # plain text: no trailing padding in a log
        for table in tables:
            console.print(table)
            console.print()
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _rich_table(title: str, table: Table, terminal: bool) -> object:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD if terminal else box.ASCII2,
        header_style="bold" if terminal else "",
        pad_edge=not terminal,  # a terminal's 80 columns need the two
    )
    for i, head in enumerate(table.headers):
        out.add_column(head, justify="right" if i in table.right else "left", no_wrap=not terminal)
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            style = _STATUS_STYLE.get(cell, "bold") if i in table.strong and terminal else ""
            cells.append(Text(cell, style=style))
        out.add_row(*cells)
    return out
