"""Are Setup's time estimates right? Each data source's estimate against the run's real duration.

    python -m bench.bench_estimates [--quick]

For each case (synthetic reviews, an uploaded CSV, a curated set, a classification upload, LoRA
and full fine-tuning, different epochs) the estimate is made exactly as Setup makes it
(`core.data.preflight` facts of the chosen data, `core.training.strategies.estimate_params`,
`core.plan.estimate.estimate_run` with the speeds the runs root holds), then the run is started with
`python -m core train` and timed from process start to exit, which is what a user waits for.

Every case runs twice: first on an empty runs root (the "computed" estimate, from FLOPs), then
again with a changed config after a run of the same kind has completed (the "measured" estimate,
from the speed that run recorded). Target (issue #17): every ratio between 0.5 and 2.

Writes bench/results/estimates.json and bench/results/estimates.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _reviews_csv(folder: Path, rows: int, *, labelled_as: str = "sentiment") -> Path:
    from core.data.synthetic import generate_reviews

    frame = generate_reviews(rows, seed=1, null_fraction=0.0)
    frame["sentiment"] = frame["label"].map({1: "positive", 0: "negative"})
    path = folder / f"reviews-{rows}.csv"
    frame.rename(columns={"text": "review"})[["review", "sentiment", "brand"]].to_csv(path, index=False)
    return path


def _curated_set(folder: Path, rows: int) -> str:
    """A curated set as the Data page keeps one: the positive Nike rows of synthetic reviews."""
    from core.config import RunConfig
    from core.data.curation import save_curated
    from core.data.integrity import curate
    from core.data.synthetic import generate_reviews

    cfg = RunConfig()
    cfg.data.curation.signal = {"op": "and", "children": [{"kind": "word_list", "list": "brand:Nike"},
                                                          {"kind": "sentiment", "polarity": "positive"}]}
    result = curate(generate_reviews(rows, seed=2), cfg.data, cfg.task)
    return str(save_curated(result, "bench-positive-nike", folder / "datasets"))


def cases(folder: Path, quick: bool) -> list[dict[str, Any]]:
    """(name, config changes) pairs; the second of each kind runs after the first completed."""
    upload = _reviews_csv(folder, 300)
    big_upload = _reviews_csv(folder, 1500)
    curated = _curated_set(folder, 3000)
    found = [
        {"case": "synthetic, full, 1 epoch", "data": {"source": "synthetic"}, "training": {"epochs": 1.0}},
        {"case": "synthetic, full, 2 epochs", "data": {"source": "synthetic"}, "training": {"epochs": 2.0}},
        {"case": "upload 300 rows, LoRA, 2 epochs", "data": {"source": "file", "path": str(upload), "text_column": "review"},
         "strategy": "lora", "training": {"epochs": 2.0}},
        {"case": "upload 300 rows, LoRA, 5 epochs", "data": {"source": "file", "path": str(upload), "text_column": "review"},
         "strategy": "lora", "training": {"epochs": 5.0}},
        {"case": "curated set, full, 2 epochs", "data": {"source": "curated", "path": curated}, "training": {"epochs": 2.0}},
        {"case": "curated set, full, 4 epochs", "data": {"source": "curated", "path": curated}, "training": {"epochs": 4.0}},
        {"case": "classification upload 1,500 rows, 1 epoch", "task": "classification",
         "data": {"source": "file", "path": str(big_upload), "text_column": "review", "label_column": "sentiment"},
         "training": {"epochs": 1.0}},
        {"case": "classification upload 1,500 rows, 2 epochs", "task": "classification",
         "data": {"source": "file", "path": str(big_upload), "text_column": "review", "label_column": "sentiment"},
         "training": {"epochs": 2.0}},
    ]
    return found[:4] if quick else found


def config_for(case: dict[str, Any]):
    from core.config import RunConfig

    cfg = RunConfig(task=case.get("task", "mlm"))
    for key, value in case["data"].items():
        setattr(cfg.data, key, value)
    cfg.strategy.name = case.get("strategy", "full")
    for key, value in case.get("training", {}).items():
        setattr(cfg.training, key, value)
    return cfg.validate()


def estimate_for(cfg, runs_root: Path):
    """The estimate exactly as Setup makes it, with the speeds the runs root holds."""
    from core.data.preflight import data_facts
    from core.data.rows import load_rows
    from core.plan.estimate import data_shape, estimate_run, measured_speed
    from core.run.folder import RunFolder
    from core.run.history import RunHistory
    from core.training.strategies import estimate_params

    trainable, total = estimate_params(cfg)
    facts = data_facts(load_rows(cfg.data), cfg.data.text_column,
                       cfg.data.label_column if cfg.task == "classification" else None)
    history = RunHistory(runs_root)
    runs = [history.summary(RunFolder(p)) for p in sorted(runs_root.iterdir()) if (p / "status.json").exists()] \
        if runs_root.exists() else []
    return estimate_run(cfg, data_shape(cfg, facts), trainable, total, measured_speed(cfg, runs))


def timed_run(cfg, runs_root: Path, index: int, env: dict[str, str]) -> float:
    config_path = runs_root.parent / f"case-{index}.yaml"
    cfg.save(config_path)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "core", "train", "--config", str(config_path),
                    "--output-dir", str(runs_root / f"case-{index}")],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Two kinds only (synthetic and an upload).")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tuneboard-estimates-"))
    runs_root = work / "runs"
    runs_root.mkdir()
    env = {**os.environ, "TUNEBOARD_RUNS": str(runs_root), "TUNEBOARD_DATA": str(work / "datasets")}
    os.environ.update({k: env[k] for k in ("TUNEBOARD_RUNS", "TUNEBOARD_DATA")})
    rows = []
    for index, case in enumerate(cases(work, args.quick)):
        cfg = config_for(case)
        estimate = estimate_for(cfg, runs_root)
        actual = timed_run(cfg, runs_root, index, env)
        row = {"case": case["case"], "basis": estimate.basis, "estimate_s": round(estimate.seconds, 1),
               "actual_s": round(actual, 1), "ratio": round(estimate.seconds / actual, 2)}
        rows.append(row)
        print(f"[estimates] {row}", flush=True)
    ratios = [r["ratio"] for r in rows]
    doc = {
        "benchmark": "estimates",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "target": "every estimate within 2x of the real duration (ratio 0.5-2)",
        "within_2x": all(0.5 <= r <= 2 for r in ratios),
        "rows": rows,
    }
    write_results(RESULTS, "estimates", doc, _markdown(doc))
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "## Time estimates against real runs",
        "",
        f"`python -m bench.bench_estimates` on {doc['machine']['cpus']} CPUs, {doc['when']}. Setup's estimate for "
        "each data source, then the run through `python -m core train`, timed from process start to exit. "
        "`computed`: the first run of its kind (FLOPs over the device's calibrated speed); `measured`: the "
        "speed an earlier run of the same model, task and strategy recorded. Target: ratio 0.5-2 "
        f"({'met' if doc['within_2x'] else 'NOT met'}).",
        "",
        "| case | basis | estimate | actual | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {r['case']} | {r['basis']} | {r['estimate_s']:.0f} s | {r['actual_s']:.0f} s | {r['ratio']:.2f} |"
              for r in doc["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(0 if main()["within_2x"] else 1)
