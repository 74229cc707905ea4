"""Scale: the first chart point after process start, and peak memory, for 10k, 100k and 1M rows.

    python -m bench.bench_scale [--sizes 10000 100000 1000000] [--steps 30] [--baseline-ref REF] [--pairs 3]

Startup: for each size a CSV of distinct short texts (mlm, bundled MiniLM, max length 64) is trained
through the real CLI, `python -m core train --config ... --output-dir ...`, in a fresh process for 5
steps with logging_steps 1. First point = the `time` stamp of the first loss entry in the run's
metrics.jsonl minus the moment the subprocess was started; peak RSS = the child's resident memory,
polled every 50 ms with psutil. A flat curve means the work before step 1 does not grow with the rows.

Against the old path, same run (issue #28): at the largest size the CLI of BASELINE_REF (the tree before
the fixed work before step 1 was deferred: the base model's per-example pass and probes, and the data file
read three times) is exported with `git archive` into a temporary folder and run with the same Python, CSV
and config, alternating with the current tree (old, new / new, old), --pairs times. Each pair's ratio is
old / new first point; the figure is their median. The per-run load average shows what else shared the
cores. (Lazy tokenisation's own baseline, the issue #18 measurement of the eager engine: 34 s at 300k rows,
194 s at 1M, 1.5 GB.)

Throughput, same run: at 100k rows, the engine's lazily tokenised training set against an eager one
built here with `Dataset.map` (the same BatchEncoder, tokenizer and length column, so the sampler
draws the same batches: the first batch's ids are compared). Same model weights, same Trainer
subclass; samples/s over steps 2..N from step-end timestamps, conditions alternated per repeat.
The eager map's own time is the tokenising the old engine did before step 1 at that size.

Writes bench/results/scale.json and bench/results/scale.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
SIZES = (10_000, 100_000, 1_000_000)
WORDS = ("the a this my our good bad great terrible product service delivery arrived late early price quality "
         "support would buy again never order package box shoes phone battery screen fast slow").split()
# The figures before the change: the eager engine through the CLI, --max-steps 5, 2 cores.
BASELINE = {"300k": {"first_point_s": 40, "tokenising_s": 34, "peak_rss_gb": 1.4},
            "1M": {"first_point_s": 194, "tokenising_s": 180, "peak_rss_gb": 1.5}}
# The tree before issue #28 moved the base model's scoring past the first loss point and read the data once.
BASELINE_REF = "8dd94d7"
WHAT_CHANGED = (
    "What the old path did before step 1 that the new one does not: it scored the base model's probes and its "
    "per-example losses on the 500-row evaluation sample (now scored on a copy kept aside, right after the first "
    "loss point: core.training.base_scoring; the run's speed leaves that time out), and it read the CSV three times "
    "(the check before the run folder exists now hands its table to the run, and the probes are chosen from the rows "
    "the run read). Smaller: null words are looked for among short texts only, and the length-grouped order is "
    "sorted by numpy. What is left before step 1 is importing torch and transformers (~7 s here), reading and "
    "checking the CSV once (~4-5 s at 1M rows), loading the model and the first step."
)


def write_texts(path: Path, rows: int) -> Path:
    """A CSV of `rows` distinct short texts (a row number plus 5-12 words, ~60 bytes)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    words = np.asarray(WORDS)[rng.integers(0, len(WORDS), size=(rows, 12))]
    counts = rng.integers(5, 13, size=rows)
    texts = [f"review {i}: " + " ".join(row[:n]) for i, (row, n) in enumerate(zip(words, counts, strict=True))]
    pd.DataFrame({"text": texts}).to_csv(path, index=False)
    return path


def run_config(csv: Path, steps: int):
    """The mlm run the CLI trains: bundled MiniLM, logging every step, nothing saved before the end."""
    from core.config import RunConfig

    cfg = RunConfig(task="mlm")
    cfg.data.source, cfg.data.path = "file", str(csv)
    t = cfg.training
    t.max_steps, t.logging_steps, t.eval_steps, t.save_steps, t.batch_size = steps, 1, 1000, 1000, 32
    t.learning_rate = 5e-5  # explicit: the throughput half builds its Trainer without the engine's default pick
    t.keep_checkpoints = False
    return cfg.validate()


def first_point(csv: Path, work: Path, env: dict[str, str], tree: Path = REPO) -> dict[str, Any]:
    """Start the CLI of `tree` on csv; seconds from process start to the first loss entry, peak RSS, total wall time."""
    import psutil

    config_path = work / f"{csv.stem}.yaml"
    run_config(csv, 5).save(config_path)
    out = work / f"run-{csv.stem}-{time.monotonic_ns()}"
    load = os.getloadavg()[0]
    started = time.time()
    child = subprocess.Popen([sys.executable, "-m", "core", "train", "--config", str(config_path), "--output-dir",
                              str(out)], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watched, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    wall = time.time() - started
    if child.returncode != 0:
        raise RuntimeError(f"the CLI run on {csv.name} failed: {child.stderr.read().decode()[-2000:]}")
    entries = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    first = min(e["time"] for e in entries if "loss" in e)
    complete = all((out / name).exists() for name in ("config.yaml", "metrics.jsonl", "status.json"))
    return {"first_point_s": round(first - started, 2), "peak_rss_gb": round(peak / 1e9, 2), "wall_s": round(wall, 1),
            "load_avg": round(load, 2), "folder_complete": complete}


def baseline_tree(ref: str, work: Path) -> Path | None:
    """The repository at `ref`, exported with `git archive` under work; None when git or the ref is not there."""
    import io
    import tarfile

    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref], capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    tree = work / f"tree-{ref}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def against_baseline(csv: Path, work: Path, env: dict[str, str], tree: Path, pairs: int) -> dict[str, Any]:
    """First point of the current CLI and of the baseline tree's on csv, alternating; each pair's old / new ratio."""
    runs: dict[str, list[dict[str, Any]]] = {"new": [], "old": []}
    ratios = []
    for pair in range(pairs):
        order = ("old", "new") if pair % 2 == 0 else ("new", "old")
        for which in order:
            runs[which].append(first_point(csv, work, env, tree if which == "old" else REPO))
            print(which, runs[which][-1], flush=True)
        ratios.append(round(runs["old"][-1]["first_point_s"] / runs["new"][-1]["first_point_s"], 2))
    median = {which: round(statistics.median(r["first_point_s"] for r in found), 2) for which, found in runs.items()}
    return {"rows": int(csv.stem.rsplit("-", 1)[1]), "pairs": pairs, "runs": runs, "ratios": ratios,
            "new_first_point_s": median["new"], "old_first_point_s": median["old"],
            "old_over_new": round(statistics.median(ratios), 2)}


def throughput(csv: Path, work: Path, steps: int, repeats: int) -> dict[str, Any]:
    """Lazy vs eager training sets at the same rows and batches: samples/s over steps 2..N, and the eager map's time."""
    import dataclasses

    import torch
    from transformers import TrainerCallback

    from core.data.prepare import LENGTH_COLUMN, BatchEncoder, length_column
    from core.run.folder import RunFolder
    from core.training.trainer import LogOnlySink, build_trainer, prepare_run, set_threads

    cfg = run_config(csv, steps)
    cfg.data.validation_fraction = 0.0
    set_threads("cpu")
    folder = RunFolder(work / "throughput")
    folder.path.mkdir(parents=True, exist_ok=True)
    prepared = prepare_run(cfg, folder, LogOnlySink(None), is_main=False)
    weights = copy.deepcopy(prepared.model.state_dict())
    lazy = prepared.train_dataset
    plain = lazy.with_format(None).remove_columns([LENGTH_COLUMN])
    started = time.perf_counter()
    encoder = BatchEncoder(prepared.tokenizer, cfg.task, int(prepared.load_report.get("max_length") or 64))
    eager = plain.map(encoder, batched=True, remove_columns=plain.column_names)
    map_s = time.perf_counter() - started
    eager = eager.add_column(LENGTH_COLUMN, length_column(lazy))

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    def measure(dataset) -> tuple[float, int]:
        prepared.model.load_state_dict(weights)
        clock = StepClock()
        trainer = build_trainer(cfg, folder, dataclasses.replace(prepared, train_dataset=dataset), "cpu",
                                callbacks=[clock], has_eval=False)
        torch.manual_seed(cfg.training.seed)
        first_ids = hash(next(iter(trainer.get_train_dataloader()))["input_ids"].numpy().tobytes())
        torch.manual_seed(cfg.training.seed)
        trainer.train()
        ticks = clock.times
        return (len(ticks) - 1) * cfg.training.batch_size / (ticks[-1] - ticks[0]), first_ids

    rates: dict[str, list[float]] = {"lazy": [], "eager": []}
    firsts: dict[str, int] = {}
    for _ in range(repeats):
        for name, dataset in (("lazy", lazy), ("eager", eager)):
            rate, firsts[name] = measure(dataset)
            rates[name].append(rate)
    lazy_rate, eager_rate = statistics.median(rates["lazy"]), statistics.median(rates["eager"])
    return {
        "rows": len(lazy), "steps": steps, "batch_size": cfg.training.batch_size, "repeats": repeats,
        "lazy_samples_per_s": round(lazy_rate, 1), "eager_samples_per_s": round(eager_rate, 1),
        "lazy_vs_eager": round(lazy_rate / eager_rate, 3), "runs": {k: [round(v, 1) for v in r] for k, r in rates.items()},
        "same_first_batch": firsts["lazy"] == firsts["eager"], "eager_map_s": round(map_s, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write scale.json / scale.md; returns the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--steps", type=int, default=30, help="Steps of each throughput measurement.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--throughput-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--baseline-ref", default=BASELINE_REF,
                        help="The git commit whose CLI is the old path ('' to skip the comparison).")
    parser.add_argument("--pairs", type=int, default=3, help="Old / new pairs at the largest size.")
    parser.add_argument("--skip-throughput", action="store_true", help="Only the first points.")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tuneboard-scale-"))
    env = {**os.environ, "TUNEBOARD_RUNS": str(work / "runs"), "TUNEBOARD_DATA": str(work / "datasets")}
    os.environ.update({k: env[k] for k in ("TUNEBOARD_RUNS", "TUNEBOARD_DATA")})
    startup = []
    for rows in args.sizes:
        csv = write_texts(work / f"texts-{rows}.csv", rows)
        point = first_point(csv, work, env)
        startup.append({"rows": rows, "csv_mb": round(csv.stat().st_size / 1e6, 1), **point})
        print(startup[-1], flush=True)
    largest_csv = work / f"texts-{args.sizes[-1]}.csv"
    tree = baseline_tree(args.baseline_ref, work) if args.baseline_ref else None
    compared = against_baseline(largest_csv, work, env, tree, args.pairs) if tree is not None else None
    speed = None
    if not args.skip_throughput:
        csv = work / f"texts-{args.throughput_rows}.csv"
        if not csv.exists():
            write_texts(csv, args.throughput_rows)
        speed = throughput(csv, work, args.steps, args.repeats)
        print(speed, flush=True)

    largest = startup[-1]
    document = {
        "benchmark": "scale",
        "question": "How long from process start to the first loss point, and how much memory, as the rows grow?",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "startup": startup,
        "first_point_growth": round(largest["first_point_s"] / startup[0]["first_point_s"], 2),
        "baseline_before_change": BASELINE,
        "against_old_path": {"ref": args.baseline_ref, **compared} if compared is not None else None,
        "throughput": speed,
    }
    write_results(args.out, "scale", document, markdown(document))
    return document


def markdown(document: dict[str, Any]) -> str:
    """The results table and its sentences, from the JSON document."""
    startup, speed = document["startup"], document["throughput"]
    compared = document["against_old_path"]
    lines = [
        "## Scale: first chart point and memory vs rows (bench_scale)",
        "",
        f"{document['question']} Each row is a fresh `python -m core train` (mlm, bundled MiniLM, 5 steps, "
        "logging every step) on a CSV of distinct short texts; first point = the first loss entry's time stamp "
        "minus the process start, peak RSS polled every 50 ms.",
        "",
        "| rows | CSV | first loss point | peak RSS | whole run | load avg |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for case in startup:
        lines.append(f"| {case['rows']:,} | {case['csv_mb']} MB | {case['first_point_s']} s | "
                     f"{case['peak_rss_gb']} GB | {case['wall_s']} s | {case['load_avg']} |")
    lines += [
        "",
        f"From the smallest to the largest size the first point moved x{document['first_point_growth']}. Before lazy "
        "tokenisation (issue #18's figures, same CLI, same machine class): 40 s at 300k rows and 194 s at 1M, of which "
        "34 s and ~3 min tokenising before step 1, peak RSS 1.4-1.5 GB.",
        "",
    ]
    if compared is not None:
        each = "; ".join(f"{old['first_point_s']} / {new['first_point_s']} s (load {old['load_avg']} / {new['load_avg']})"
                         for old, new in zip(compared["runs"]["old"], compared["runs"]["new"], strict=True))
        complete = all(r["folder_complete"] for found in compared["runs"].values() for r in found)
        lines += [
            f"Against the old path in the same run (`{compared['ref']}`, the tree before issue #28, exported with "
            f"`git archive`; same Python, CSV and config; {compared['pairs']} pairs, alternating), {compared['rows']:,} rows: "
            f"first loss point **{compared['new_first_point_s']} s** (old path {compared['old_first_point_s']} s), "
            f"**x{compared['old_over_new']}** sooner (median of the pairs' ratios {', '.join(map(str, compared['ratios']))}). "
            f"Each pair, old / new: {each}. Every run folder held its config, metrics and status: {complete}.",
            "",
            WHAT_CHANGED,
            "",
        ]
    if speed is not None:
        lines += [
            f"Throughput at {speed['rows']:,} rows, same run, same batches (first batch identical: "
            f"{speed['same_first_batch']}): lazily tokenised {speed['lazy_samples_per_s']} samples/s vs eager "
            f"`Dataset.map` {speed['eager_samples_per_s']} samples/s (x{speed['lazy_vs_eager']}; steps 2..{speed['steps']}, "
            f"median of {speed['repeats']}). The eager map itself took {speed['eager_map_s']} s before its first step.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
