"""The model runner against a bare scikit-learn script predicting with the same model.

Trains the flow's models (a 100-tree random forest classifier and regressor on Iris x 100),
saves them as SEML model files, and times, in one run, alternating which goes first:

- seml: `seml flow predict --models DIR --input ROWS --out OUT`, the program the flow's
  "run" phase executes: SEML's bounded archive reader, its allow-list, the structural checks
  of every array, then predictions for each model;
- bare: `python -c "import skops.io, pandas; load; predict"` on the same files and rows, the
  way a user of scikit-learn without SEML would do it (skops asks which types to trust; the
  script trusts what skops lists, unchecked).

Both write one CSV per model. Target (issue 16): seml's wall time <= 1.3x the bare script's
(medians). Also printed: CPU seconds (wait4) and peak RSS of each.

    .venv/bin/python benchmarks/model_bench.py [--repetitions 5] [--rows 10] [--scale 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from seml.bench import TargetRow, record_target

SEML = str(Path(sys.executable).with_name("seml"))
TARGET = 1.3

BARE = """\
import sys
from pathlib import Path
import pandas as pd
import skops.io
models, rows, out = map(Path, sys.argv[1:4])
x = pd.read_csv(rows)
out.mkdir(parents=True, exist_ok=True)
for path in sorted(models.glob("*/model.skops")):
    model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    predicted = model.predict(x[list(model.feature_names_in_)])
    pd.DataFrame({"row": range(len(x)), "prediction": predicted}).to_csv(
        out / f"{path.parent.name}.csv", index=False
    )
"""


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mb: float


def _timed(argv: list[str]) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed:\n{err[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def _models(root: Path, rows: int, scale: int) -> tuple[Path, Path]:
    """Train and save the flow's two models; write `rows` input rows. Returns (models, rows)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from seml.ml import iris_frame, save_model

    models = root / "models"
    frame = iris_frame("classification")
    data = frame.loc[frame.index.repeat(scale)].reset_index(drop=True)  # x 100: like G
    x, y = data.drop(columns="species"), data["species"]
    save_model(
        RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y),
        _mkdir(models / "classification") / "model.skops",
    )
    xr, yr = x.drop(columns="petal_width"), x["petal_width"]
    save_model(
        RandomForestRegressor(n_estimators=100, random_state=0).fit(xr, yr),
        _mkdir(models / "regression") / "model.skops",
    )
    inputs = root / "rows.csv"
    x.sample(rows, random_state=1).to_csv(inputs, index=False)
    return models, inputs


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _same(a: Path, b: Path) -> None:
    import pandas as pd

    for name in ("classification", "regression"):
        left, right = pd.read_csv(a / f"{name}.csv"), pd.read_csv(b / f"{name}.csv")
        if list(left["prediction"]) != list(right["prediction"]):
            raise SystemExit(f"seml and the bare script predict differently ({name})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", "-n", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--scale", type=int, default=100, help="training rows: Iris x SCALE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seml-model-bench-") as tmp_name:
        tmp = Path(tmp_name)
        models, rows = _models(tmp, args.rows, args.scale)
        out_seml, out_bare = tmp / "out-seml", tmp / "out-bare"
        argv = {
            "seml": [
                SEML,
                "flow",
                "predict",
                "--models",
                str(models),
                "--input",
                str(rows),
                "--out",
                str(out_seml),
            ],
            "bare": [sys.executable, "-c", BARE, str(models), str(rows), str(out_bare)],
        }
        _timed(argv["seml"])  # warm-up: both read the same files
        _timed(argv["bare"])
        runs: dict[str, list[Run]] = {"seml": [], "bare": []}
        for rep in range(args.repetitions):
            for tool in ("seml", "bare") if rep % 2 == 0 else ("bare", "seml"):
                shutil.rmtree(out_seml if tool == "seml" else out_bare, ignore_errors=True)
                runs[tool].append(_timed(argv[tool]))
        _same(out_seml, out_bare)
    print(
        f"model runner: 2 models (100-tree forests), {args.rows} rows, {args.repetitions} runs "
        f"each, medians; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"  {'':6} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12}")
    med = {}
    for tool, rs in runs.items():
        med[tool] = statistics.median(r.wall for r in rs)
        cpu = statistics.median(r.cpu for r in rs)
        print(f"  {tool:6} {med[tool]:7.2f} {cpu:7.2f} {max(r.rss_mb for r in rs):12.0f}")
    ratio = med["seml"] / med["bare"]
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"  {verdict}  seml flow predict / bare skops+scikit-learn script: {ratio:.2f}x "
        f"(seml {med['seml']:.2f} s, bare {med['bare']:.2f} s); target <= {TARGET}x"
    )
    record_target(
        TargetRow(
            key="model-runner",
            what=f"model runner (2 forests, {args.rows} rows) vs a bare scikit-learn script",
            seml=f"{med['seml']:.2f} s",
            peer=f"{med['bare']:.2f} s (bare)",
            value=ratio,
            op="<=",
            limit=TARGET,
            unit="x",
            bench="model_bench.py",
            note=f"median of {args.repetitions}; load {os.getloadavg()[0]:.1f}",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
