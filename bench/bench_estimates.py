"""Are Setup's time estimates right? Each data source's estimate against the run's real duration.

    python -m bench.bench_estimates [--quick]

For each case (synthetic reviews, an uploaded CSV, a curated set, a classification upload, small uploads
of 100-120 rows whose runs are mostly fixed work, LoRA and full fine-tuning, different epochs) the estimate
is made exactly as Setup makes it (`core.data.preflight` facts of the chosen data under the run's curation,
`core.training.strategies.estimate_params`, `core.plan.estimate.estimate_run` with the speeds the runs the
dashboard lists measured), then the run is started as Setup's Start starts it: `JobManager.submit` in this
server-like process, which keeps a training process waiting with its imports done (core.service), timed
from submit to the run's end. That is what the estimate claims to predict: what a user waits for after
pressing Start (the CLI prints the same figure after its own imports, so it too is the wait from there).

Every kind of run (model, task, strategy) runs first on a runs root without one of its kind (the
"computed" estimate, from FLOPs), then again with a changed config (the "measured" estimate, from the speed
the earlier run recorded). Target (issues #17, #28): every ratio between 0.5 and 2.

Writes bench/results/estimates.json and bench/results/estimates.md.
"""

from __future__ import annotations

import argparse
import platform
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
    small_upload = _reviews_csv(folder, 100)
    small_labelled = _reviews_csv(folder, 120)
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
        # Small uploads: a few steps, so the run is mostly its fixed work (issue #28: 300 rows were
        # estimated at 15 s and took 6 s from the dashboard).
        {"case": "small upload 100 rows, LoRA, 1 epoch", "data": {"source": "file", "path": str(small_upload),
                                                                  "text_column": "review"},
         "strategy": "lora", "training": {"epochs": 1.0}},
        {"case": "small classification upload 120 rows, LoRA, 2 epochs", "task": "classification",
         "data": {"source": "file", "path": str(small_labelled), "text_column": "review", "label_column": "sentiment"},
         "strategy": "lora", "training": {"epochs": 2.0}},
        {"case": "small classification upload 120 rows, LoRA, 4 epochs", "task": "classification",
         "data": {"source": "file", "path": str(small_labelled), "text_column": "review", "label_column": "sentiment"},
         "strategy": "lora", "training": {"epochs": 4.0}},
    ]
    return found[:4] + found[8:9] if quick else found


def config_for(case: dict[str, Any]):
    from core.config import RunConfig

    cfg = RunConfig(task=case.get("task", "mlm"))
    for key, value in case["data"].items():
        setattr(cfg.data, key, value)
    cfg.strategy.name = case.get("strategy", "full")
    for key, value in case.get("training", {}).items():
        setattr(cfg.training, key, value)
    return cfg.validate()


def estimate_for(cfg, runs: list):
    """The estimate exactly as Setup makes it: the data's facts under the run's curation, the speeds past runs measured."""
    from core.data.preflight import run_facts
    from core.data.rows import load_rows
    from core.plan.estimate import data_shape, estimate_run, measured_speed
    from core.training.strategies import estimate_params

    trainable, total = estimate_params(cfg)
    facts = run_facts(load_rows(cfg.data), cfg)
    return estimate_run(cfg, data_shape(cfg, facts), trainable, total, measured_speed(cfg, runs))


def standby_ready(timeout_s: float = 180.0) -> None:
    """Wait for the training process the dashboard keeps ready to finish its imports (never timed with a run)."""
    from core.service import child_process

    deadline = time.perf_counter() + timeout_s
    while child_process.standby_pid() is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    if not child_process.wait_for_standby(max(0.0, deadline - time.perf_counter())):
        raise RuntimeError(f"no standby training process finished its imports in {timeout_s:.0f} s")


def dashboard_run(manager, cfg) -> tuple[float, dict[str, Any]]:
    """Submit -> end of the run, as Start runs it; (seconds, the run's status.json)."""
    started = time.perf_counter()
    run_id = manager.submit(cfg)
    while manager.is_busy(run_id) or manager.snapshot(run_id).is_active:
        time.sleep(0.02)
    wall = time.perf_counter() - started
    snapshot = manager.snapshot(run_id)
    if snapshot.status != "completed":
        raise RuntimeError(f"{run_id} ended {snapshot.status}: {snapshot.error}")
    return wall, dict(snapshot.info)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Two kinds only (synthetic and an upload), and a small upload.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tuneboard-estimates-"))
    runs_root = work / "runs"
    runs_root.mkdir()
    # The training processes inherit these: the curated set and the runs live under the work folder.
    os.environ.update({"TUNEBOARD_RUNS": str(runs_root), "TUNEBOARD_DATA": str(work / "datasets")})
    from core.service.jobs import JobManager
    from core.training import engine  # noqa: F401  the server's warm-up has imported it by the time Start is pressed

    rows = []
    manager = JobManager(runs_root)
    try:
        manager.keep_training_process_ready()  # as the pages ask
        for case in cases(work, args.quick):
            cfg = config_for(case)
            estimate = estimate_for(cfg, [run for run in manager.list_runs() if run.speed])
            standby_ready()
            load = os.getloadavg()[0]
            actual, status = dashboard_run(manager, cfg)
            speed = status.get("speed") or {}
            row = {"case": case["case"], "basis": estimate.basis, "estimate_s": round(estimate.seconds, 1),
                   "actual_s": round(actual, 1), "ratio": round(estimate.seconds / actual, 2),
                   "steps": status.get("step"), "outside_training_s": speed.get("overhead_s"),
                   "checkpoint_write_s": speed.get("checkpoint_s"), "load_avg": round(load, 2)}
            rows.append(row)
            print(f"[estimates] {row}", flush=True)
    finally:
        manager.shutdown()
    ratios = [r["ratio"] for r in rows]
    doc = {
        "benchmark": "estimates",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "target": "every estimate within 2x of the real duration (ratio 0.5-2)",
        "path": "JobManager.submit with the standby training process ready (Setup's Start), submit -> end",
        "within_2x": all(0.5 <= r <= 2 for r in ratios),
        "rows": rows,
    }
    write_results(args.out, "estimates", doc, _markdown(doc))
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "## Time estimates against real runs",
        "",
        f"`python -m bench.bench_estimates` on {doc['machine']['cpus']} CPUs, {doc['when']}. Setup's estimate for "
        "each data source, then the run as Setup's Start runs it (`JobManager.submit`, the training process the "
        "dashboard keeps ready with its imports done), timed from submit to the run's end. `computed`: the first "
        "run of its kind (FLOPs over the device's calibrated speed, plus the fixed work); `measured`: the speed "
        "and the time outside training that an earlier run of the same model, task and strategy recorded. "
        f"Target: ratio 0.5-2 ({'met' if doc['within_2x'] else 'NOT met'}). The load average is the 1-minute one "
        "at submit: above 2, other work shared the two cores.",
        "",
        "| case | basis | estimate | actual | ratio | steps | outside training | load avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['case']} | {r['basis']} | {r['estimate_s']:.0f} s | {r['actual_s']:.0f} s | {r['ratio']:.2f} | "
              f"{r['steps']} | {r['outside_training_s'] if r['outside_training_s'] is not None else '-'} s | "
              f"{r['load_avg']} |" for r in doc["rows"]]
    return "\n".join(lines) + "\n\n" + WHAT_IS_COUNTED + "\n"


WHAT_IS_COUNTED = (
    "What the estimate counts (issue #28): the wait from Start, so no process start (the dashboard hands the run to "
    "the training process it keeps ready with its imports done; the CLI prints its estimate after its own imports; "
    "`estimate_run(..., process_ready=False)` adds ~6 s for a cold one); the run's own fixed work outside its steps "
    "(~2 s for a small model and data, plus the model's load, the rows read and the base and final per-example passes, "
    "or the time a past run of the kind spent outside training); each evaluation's fixed cost (~0.5 s: the probes, "
    "the per-example stage, the loop's set-up) besides its rows; and each checkpoint the run writes (a run that keeps "
    "its best model writes one at every evaluation: ~0.7-1 s for a full MiniLM, as a past run measured it). A "
    "measured speed is the steps' own: the engine leaves the evaluations and checkpoints made inside the Trainer's "
    "loop out of it. Before, the estimate added a 6 s process start that Start does not pay and a fixed 8 s, and "
    "folded evaluations and checkpoints into the speed: a 300-row upload was estimated at 15 s and took 6 s from the "
    "dashboard. Computed estimates assume the cores are the run's alone: with a load average near 4 on the 2 cores "
    "the same runs took 1.5-1.7x longer than at a load near 1.5 (73 s against 47 s for the first case), which the computed rows' ratios show."
)


if __name__ == "__main__":
    sys.exit(0 if main()["within_2x"] else 1)
