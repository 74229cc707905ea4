"""Are the default learning rates good without tuning? Each task x strategy's default against a small grid.

    python -m bench.bench_lr_defaults [--reuse] [--tasks mlm,classification] [--strategies full,lora]

For every task (mlm, classification, causal) and strategy (full, feature-extraction, freeze-layers,
gradual-unfreeze, lora) the bundled MiniLM trains a short run on the synthetic reviews at each
learning rate of a grid of four (chosen per strategy: lower for the ones that train the backbone),
then at the default (`core.config.default_learning_rate`) when it is not on the grid. All runs go
through `core.training.engine.train` in this process, one after another, with probes and per-example
predictions off; each ends with one evaluation on the same held-out rows.

Criterion, "the default is as good as the grid's best":
- classification: eval accuracy within half a point (0.005) of the best grid rate's;
- masked and causal LM: eval loss within 0.5% of the best grid rate's (perplexity within about 2%).

`--reuse` reads the grid runs from the last results file and runs only what is missing (a default
that moved off the grid after the table was revised). Writes bench/results/lr_defaults.json and .md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
NAME = "lr_defaults"

TASKS = ("mlm", "classification", "causal")
STRATEGIES = ("full", "feature-extraction", "freeze-layers", "gradual-unfreeze", "lora")
# Strategies that update backbone weights take lower rates than head-only and adapter runs.
BACKBONE_GRID = (3e-5, 1e-4, 3e-4, 1e-3)
LIGHT_GRID = (1e-4, 3e-4, 1e-3, 3e-3)
GRIDS = {"full": BACKBONE_GRID, "freeze-layers": BACKBONE_GRID, "gradual-unfreeze": BACKBONE_GRID,
         "feature-extraction": LIGHT_GRID, "lora": LIGHT_GRID}
# Short runs (about one epoch) that fit the whole grid in ~15 minutes on 2 cores; the causal LM head (the whole
# vocabulary at every position) makes its steps the dearest, so it gets fewer.
STEPS = {"classification": 60, "mlm": 60, "causal": 50}
BATCH = 16
ROWS = 1200                # synthetic rows; a quarter is held out, so a run sees its ~900 training rows about once
VALIDATION_FRACTION = 0.25  # and every rate is judged on the same ~300 rows
ACCURACY_TOLERANCE = 0.005  # half a point (1.5 examples in ~300: close to the resolution of this eval set)
LOSS_TOLERANCE = 0.005      # 0.5% of the eval loss


def config_for(task: str, strategy: str, rate: float):
    """The run: bundled MiniLM, synthetic reviews, a fixed number of steps, one evaluation at the end."""
    from core.config import RunConfig

    cfg = RunConfig(task=task)
    cfg.strategy.name = strategy
    cfg.strategy.unfreeze_every_steps = 5  # gradual unfreezing moves within the short run, not per epoch
    cfg.data.synthetic.rows = ROWS
    cfg.data.validation_fraction = VALIDATION_FRACTION
    t = cfg.training
    t.max_steps, t.batch_size, t.learning_rate = STEPS[task], BATCH, rate
    t.eval_steps = t.save_steps = 10_000  # no evaluation or checkpoint during the run; one evaluation at the end
    t.keep_model, t.logging_steps = "last", 10
    return cfg.validate()


def train_once(cfg, work: Path) -> dict[str, Any]:
    """Train in this process; returns the final evaluation and the seconds it took."""
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from core.training import engine

    folder = RunFolder.create(work, f"run-{time.monotonic_ns()}", cfg)
    started = time.monotonic()
    try:
        status = engine.train(cfg, folder, RunSink(folder, load_existing=False), threading.Event())
        final = folder.status().get("final_metrics") or {}
    finally:
        shutil.rmtree(folder.path, ignore_errors=True)
    return {"status": status, "seconds": round(time.monotonic() - started, 1),
            "accuracy": final.get("eval_accuracy"), "f1": final.get("eval_f1"), "eval_loss": final.get("eval_loss")}


def _quiet_engine() -> None:
    """No probes, per-example predictions or saved model: only the training and its final evaluation count."""
    import core.insight.probes
    import core.training.engine
    from core.training.trainer import TuneboardTrainer

    core.training.engine.prediction_recorder = lambda *args, **kwargs: None
    core.insight.probes.score_probes = lambda *args, **kwargs: []
    # The Trainer saves a checkpoint at the last step whatever save_steps says; neither it nor the final
    # model is read here.
    TuneboardTrainer._save_checkpoint = lambda self, *args, **kwargs: None
    TuneboardTrainer.save_model = lambda self, *args, **kwargs: None


def score(task: str, run: dict[str, Any]) -> float | None:
    """The figure a rate is judged by: accuracy (higher is better) or eval loss (lower is better)."""
    return run.get("accuracy") if task == "classification" else run.get("eval_loss")


def verdict(task: str, best: float, default: float) -> tuple[bool, str]:
    """(the default is within tolerance of the best, the gap in words)."""
    if task == "classification":
        gap = best - default
        return gap <= ACCURACY_TOLERANCE + 1e-9, f"{gap * 100:+.1f} pt"
    gap = default / best - 1
    return gap <= LOSS_TOLERANCE + 1e-9, f"{gap:+.1%} loss"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="Reuse the last results' grid runs; run only what is missing.")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args(argv)
    from core.config import default_learning_rate

    _quiet_engine()
    known: dict[tuple[str, str, float], dict[str, Any]] = {}
    spent_before = 0.0  # the reused runs' time, so the figure stays the whole grid's
    if args.reuse and (RESULTS / f"{NAME}.json").exists():
        import json

        previous = json.loads((RESULTS / f"{NAME}.json").read_text(encoding="utf-8"))
        spent_before = float(previous.get("seconds") or 0.0)
        for run in previous["runs"]:
            known[(run["task"], run["strategy"], float(run["learning_rate"]))] = run
    work = Path(tempfile.mkdtemp(prefix="tuneboard-lr-defaults-"))
    os.environ["TUNEBOARD_RUNS"] = str(work)
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for task in args.tasks.split(","):
            for strategy in args.strategies.split(","):
                default = default_learning_rate(task, strategy)
                measured: dict[float, dict[str, Any]] = {}
                for rate in sorted({*GRIDS[strategy], default}):
                    run = known.get((task, strategy, rate))
                    if run is None:
                        run = {"task": task, "strategy": strategy, "learning_rate": rate,
                               **train_once(config_for(task, strategy, rate), work)}
                        print(f"[lr_defaults] {run}", flush=True)
                    runs.append(run)
                    measured[rate] = run
                rows.append(_row(task, strategy, default, measured))
                print(f"[lr_defaults] {rows[-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {
        "benchmark": NAME,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "model": "bundled MiniLM-L6 (22.7M parameters)",
        "setup": {"rows": ROWS, "validation_fraction": VALIDATION_FRACTION, "batch_size": BATCH, "steps": STEPS,
                  "grids": {name: list(grid) for name, grid in GRIDS.items()}},
        "criterion": {"classification": "eval accuracy within 0.5 points of the best grid rate",
                      "mlm/causal": "eval loss within 0.5% of the best grid rate"},
        "all_within": all(r["within"] for r in rows),
        "seconds": round(spent_before + time.monotonic() - started, 1),
        "rows": rows,
        "runs": runs,
    }
    write_results(RESULTS, NAME, doc, _markdown(doc))
    return doc


def _row(task: str, strategy: str, default: float, measured: dict[float, dict[str, Any]]) -> dict[str, Any]:
    higher = task == "classification"
    grid = {rate: run for rate, run in measured.items() if rate in GRIDS[strategy] and score(task, run) is not None}
    best_rate = (max if higher else min)(grid, key=lambda rate: score(task, grid[rate]))
    best, at_default = score(task, grid[best_rate]), score(task, measured[default])
    within, gap = verdict(task, best, at_default) if at_default is not None else (False, "no result")
    return {"task": task, "strategy": strategy, "metric": "accuracy" if higher else "eval loss",
            "best_rate": best_rate, "best": round(best, 4), "default_rate": default,
            "default": None if at_default is None else round(at_default, 4), "gap": gap, "within": within,
            "grid": {f"{rate:g}": round(score(task, run), 4) for rate, run in sorted(grid.items())}}


def _markdown(doc: dict[str, Any]) -> str:
    s = doc["setup"]
    lines = [
        "## Default learning rates against a grid",
        "",
        f"`python -m bench.bench_lr_defaults` on {doc['machine']['cpus']} CPUs, {doc['when']}, "
        f"{doc['seconds'] / 60:.0f} min. The bundled MiniLM trains each task x strategy on {s['rows']} synthetic "
        f"reviews ({s['validation_fraction']:.0%} held out), batch {s['batch_size']}, "
        f"{s['steps']['classification']} steps ({s['steps']['mlm']} for MLM, {s['steps']['causal']} for causal), at each rate of a four-rate "
        "grid and at the default (`core.config.default_learning_rate`). Criterion: classification accuracy "
        "within half a point of the grid's best; language models' eval loss within 0.5% of the best "
        f"({'every default meets it' if doc['all_within'] else 'NOT every default meets it'}). The table in "
        "`core.config.DEFAULT_LEARNING_RATES` is the lowest grid rate that met the criterion, so every default is "
        f"a grid rate; {sum(r['best_rate'] == max(GRIDS[r['strategy']]) for r in doc['rows'])} of "
        f"{len(doc['rows'])} bests sit at the grid's top, where a higher rate might do better still. MiniLM's "
        "language-model heads start untrained, which favours high rates there.",
        "",
        "| task | strategy | metric | best grid rate | its value | default | its value | gap | within |",
        "|---|---|---|---:|---:|---:|---:|---:|:-:|",
    ]
    lines += [f"| {r['task']} | {r['strategy']} | {r['metric']} | {r['best_rate']:g} | {r['best']:.4f} | "
              f"{r['default_rate']:g} | {r['default'] if r['default'] is not None else '-'} | {r['gap']} | "
              f"{'yes' if r['within'] else 'NO'} |" for r in doc["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(0 if main()["all_within"] else 1)
