"""Does a run with no length set train enough? The default length rule (core.training.run_length) measured.

    python -m bench.bench_train_enough [--cases news:282,reviews:282] [--baseline] [--curves news:282:100:20]

Three parts, written together to bench/results/train_enough.json and .md:
1. plan: the rule's length (`run_length.plan_length`) for training sets of 50 to 100,000 rows with no classes
   (a language model), 2, 8, 20 and 50 classes, at batch 32: steps, passes, evaluations and the bound that set
   them. Arithmetic only, instant.
2. cases, each KIND:ROWS: the bundled MiniLM fine-tunes (full, the default learning rate and batch) on ROWS
   distinct synthetic news headlines (KIND news, 8 classes) or reviews (reviews, 2 classes) at the rule's
   length: evaluated about 8 times, the best kept, stopped on a plateau. With --baseline the same data also
   trains at the old default, two epochs with one evaluation. Each run is judged on 400 rows of another seed
   that it never saw (the figures are the kept model's), and records its steps, evaluations, early stop,
   'still improving' and seconds.
3. curves, each KIND:ROWS:STEPS:EVERY: held-out accuracy every EVERY steps along one run of STEPS steps (the
   learning rate decays over all of them): the measurement the rule's floor rests on.

Every run goes through `core.training.engine.train` in this process, one after another, with probes and
per-example predictions off. Each trained step of MiniLM takes 0.3-0.5 s on 2 free cores, several seconds when
the cores are shared, so the default cases are few and small.
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
NAME = "train_enough"

PLAN_ROWS = (50, 100, 282, 1_000, 5_000, 20_000, 100_000)
PLAN_CLASSES = (0, 2, 8, 20, 50)
PLAN_BATCH = 32
EVAL_ROWS = 400   # held-out rows of another seed: 400 rows resolve accuracy to about 2 points
EVAL_SEED = 7
EVAL_POOL = 3000  # rows drawn at EVAL_SEED before de-duplication and removing any training text
CLASSES = {"news": 8, "reviews": 2}


def write_data(kind: str, rows: int, work: Path) -> tuple[Path, Path]:
    """ROWS distinct training rows of the kind, and EVAL_ROWS held-out ones none of them repeat, as CSV files."""
    from core.data.news import generate_headlines
    from core.data.synthetic import generate_reviews

    generate = generate_headlines if kind == "news" else generate_reviews
    train = generate(rows * 2, seed=0).dropna(subset=["text"]).drop_duplicates("text").head(rows)
    held = generate(EVAL_POOL, seed=EVAL_SEED).dropna(subset=["text"]).drop_duplicates("text")
    held = held[~held["text"].isin(train["text"])].head(EVAL_ROWS)
    if len(train) < rows or len(held) < EVAL_ROWS:
        raise SystemExit(f"Could not draw {rows} distinct {kind} rows and {EVAL_ROWS} held-out ones.")
    paths = work / f"{kind}-{rows}-train.csv", work / f"{kind}-{rows}-eval.csv"
    train[["text", "label"]].to_csv(paths[0], index=False)
    held[["text", "label"]].to_csv(paths[1], index=False)
    return paths


def config_for(train_csv: Path, eval_csv: Path, **training: Any):
    """Classification on the files with every default but the training settings given."""
    from core.config import RunConfig

    cfg = RunConfig(task="classification")
    cfg.data.source, cfg.data.path, cfg.data.eval_path = "file", str(train_csv), str(eval_csv)
    cfg.training.logging_steps = 10
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg.validate()


def train_once(cfg, work: Path) -> dict[str, Any]:
    """Train in this process; the kept model's held-out figures, how long it trained and how it ended."""
    from core.run.folder import RunFolder
    from core.run.sink import RunSink
    from core.training import engine

    folder = RunFolder.create(work, f"run-{time.monotonic_ns()}", cfg)
    started = time.monotonic()
    try:
        status = engine.train(cfg, folder, RunSink(folder, load_existing=False), threading.Event())
        info = folder.status()
        metrics = folder.metrics()
    finally:
        shutil.rmtree(folder.path, ignore_errors=True)
    final = info.get("final_metrics") or {}
    curve = [(m["step"], round(m["eval_accuracy"], 4)) for m in metrics if "eval_accuracy" in m]
    return {
        "status": status, "seconds": round(time.monotonic() - started, 1),
        "accuracy": final.get("eval_accuracy"), "f1": final.get("eval_f1"),
        "steps": info.get("step"), "planned_steps": (info.get("run_length") or {}).get("steps"),
        "bound": (info.get("run_length") or {}).get("bound"), "evaluations": len(curve),
        "best_step": (info.get("best") or {}).get("step"),
        "stopped_early": any(m.get("event") == "early_stop" for m in metrics),
        "still_improving": bool(info.get("still_improving")), "curve": curve,
    }


def _quiet_engine() -> None:
    """No probes or per-example predictions: the training and its evaluations are measured.

    Checkpoints and the saved model stay: keeping the best evaluation's model brings a checkpoint back, and
    the Trainer writes a checkpoint's weights through save_model.
    """
    import core.insight.probes
    import core.training.engine

    core.training.engine.prediction_recorder = lambda *args, **kwargs: None
    core.insight.probes.score_probes = lambda *args, **kwargs: []


def plan_table() -> list[dict[str, Any]]:
    """The rule's length over PLAN_ROWS x PLAN_CLASSES at PLAN_BATCH."""
    from core.training.run_length import plan_length

    table = []
    for rows in PLAN_ROWS:
        for classes in PLAN_CLASSES:
            length = plan_length(rows, PLAN_BATCH, classes=classes)
            table.append({"rows": rows, "classes": classes, "steps": length.steps, "epochs": length.epochs,
                          "samples_per_class": round(length.steps * PLAN_BATCH / classes) if classes else None,
                          "eval_steps": length.eval_steps, "evaluations": length.evaluations, "bound": length.bound})
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="news:282", help="KIND:ROWS,... trained at the rule's length ('' for none).")
    parser.add_argument("--baseline", action="store_true", help="Also train each case at the old default, 2 epochs.")
    parser.add_argument("--curves", default="", help="KIND:ROWS:STEPS:EVERY,... fixed-length accuracy curves.")
    args = parser.parse_args(argv)
    from core.training import run_length

    _quiet_engine()
    work = Path(tempfile.mkdtemp(prefix="tuneboard-train-enough-"))
    os.environ["TUNEBOARD_RUNS"] = str(work)
    cases: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for case in filter(None, args.cases.split(",")):
            kind, rows = case.split(":")
            paths = write_data(kind, int(rows), work)
            runs = {"rule": train_once(config_for(*paths), work)}
            if args.baseline:
                runs["two epochs"] = train_once(config_for(*paths, epochs=2.0, eval_steps=10_000), work)
            for length, run in runs.items():
                cases.append({"kind": kind, "classes": CLASSES[kind], "rows": int(rows), "length": length, **run})
                print(f"[train_enough] {cases[-1]}", flush=True)
        for spec in filter(None, args.curves.split(",")):
            kind, rows, steps, every = spec.split(":")
            paths = write_data(kind, int(rows), work)
            run = train_once(config_for(*paths, max_steps=int(steps), eval_steps=int(every), keep_model="last"), work)
            curves.append({"kind": kind, "classes": CLASSES[kind], "rows": int(rows), "steps": int(steps),
                           "seconds": run["seconds"], "curve": run["curve"]})
            print(f"[train_enough] {curves[-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {
        "benchmark": NAME,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
        "model": "bundled MiniLM-L6 (22.7M parameters), full fine-tuning at the default learning rate, batch 32",
        "rule": {"min_steps": run_length.MIN_STEPS, "samples_per_class": run_length.SAMPLES_PER_CLASS,
                 "max_epochs": run_length.MAX_EPOCHS, "default_epochs": run_length.DEFAULT_EPOCHS,
                 "evaluations": run_length.EVALUATIONS, "patience": run_length.PATIENCE},
        "eval_rows": EVAL_ROWS,
        "seconds": round(time.monotonic() - started, 1),
        "plan": plan_table(),
        "cases": cases,
        "curves": curves,
    }
    write_results(RESULTS, NAME, doc, _markdown(doc))
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    r = doc["rule"]
    lines = [
        "## Default training length: enough steps for the data",
        "",
        f"`python -m bench.bench_train_enough` on {doc['machine']['cpus']} CPUs, {doc['when']}. With no epochs or "
        f"max steps set a run trains max(two passes, {r['min_steps']} steps, {r['samples_per_class']} rows per class) "
        f"steps, at most {r['max_epochs']} passes, evaluates about {r['evaluations']} times, keeps the best and stops "
        f"after {r['patience']} evaluations without a better one (`core.training.run_length`).",
        "",
    ]
    if doc["curves"]:
        lines += ["Held-out accuracy along fixed-length runs (the learning rate decays over each run's steps):", "",
                  "| data | rows | run steps | accuracy by step |", "|---|---:|---:|---|"]
        lines += [f"| {c['kind']} ({c['classes']} classes) | {c['rows']} | {c['steps']} | "
                  + ", ".join(f"{step}: {acc:.1%}" for step, acc in c["curve"]) + " |" for c in doc["curves"]]
        lines.append("")
    if doc["cases"]:
        lines += [f"Trained at the rule's length (and the old default, 2 epochs), judged on {doc['eval_rows']} held-out "
                  "rows; the kept model's figures:", "",
                  "| data | rows | length | steps (planned) | evaluations | best at | early stop | still improving | "
                  "accuracy | F1 | seconds |", "|---|---:|---|---:|---:|---:|:-:|:-:|---:|---:|---:|"]
        lines += [f"| {c['kind']} ({c['classes']} classes) | {c['rows']} | {c['length']} | {c['steps']} "
                  f"({c['planned_steps']}) | {c['evaluations']} | {c['best_step'] or '-'} | "
                  f"{'yes' if c['stopped_early'] else 'no'} | {'yes' if c['still_improving'] else 'no'} | "
                  f"{(c['accuracy'] or 0):.1%} | {(c['f1'] or 0):.3f} | {c['seconds']:.0f} |" for c in doc["cases"]]
        lines.append("")
    lines += [f"The rule's plan at batch {PLAN_BATCH} (classes 0: a language model):", "",
              "| rows | classes | steps | passes | rows seen per class | evaluations | set by |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {p['rows']:,} | {p['classes']} | {p['steps']:,} | {p['epochs']:g} | "
              f"{p['samples_per_class'] if p['samples_per_class'] is not None else '-'} | {p['evaluations']} | {p['bound']} |"
              for p in doc["plan"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
    sys.exit(0)
