"""Training throughput: Tuneboard's engine vs what a user would otherwise run, whole processes, same data.

Per task, each condition is a fresh Python process on the same CSV of review sentences (bundled
MiniLM, batch 32), timed from spawn to exit, the way a user waits for it:
  tuned  - a plain Trainer script as a careful user writes it: tokenise once, dynamic padding
           (DataCollatorWithPadding / DataCollatorForLanguageModeling), the Trainer's defaults
           otherwise (fp32 on a CPU, SDPA attention, fused AdamW), the same steps, then one
           evaluation on a 5% held-out split and `save_model`.
  engine - `python -m core train --config ...`: the same steps, batch, learning rate and 5% split,
           evaluated once at the end, the model saved; plus what Tuneboard shows on top (base and
           final probes, the per-example predictions before and after). Its own choices: bf16
           autocast where the CPU has fast bf16, matmul attention under bf16, length-grouped batches,
           masked-only MLM logits, memory kept mapped between steps (huge pages, glibc's heap).
  dashboard - the same engine run as the dashboard starts it (JobManager.submit, what Start calls)
           in a server-like process that has drawn a page: its imports done and a standby training
           process waiting (core.service.child_process). Timed from submit to the run's end: the dashboard
           user's wait for the same job. Not a whole process, so its ratio is reported beside the
           target's, never as it.
  seed   - the seed notebook's recipe (a plain Trainer, every row padded to 128 tokens), for a few
           steps only: its training loop's samples/s, the earlier issue's baseline.
Ratios are whole-process wall time (tuned / engine) and training-loop samples/s, per repeat, the
conditions interleaved (order reversed every other repeat) so drifting machine load hits all alike.

Writes bench/results/throughput.json and throughput.md. Run: python -m bench.bench_throughput
"""

from __future__ import annotations

import argparse
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
TASKS = ("mlm", "classification", "causal")
LEARNING_RATE = 5e-5  # the Trainer's default, given to both sides so that only speed differs
HELD_OUT = 0.05
TARGETS = {"classification": 1.5, "causal": 1.5, "mlm": 2.5}  # engine vs tuned, whole process (mlm: fast-bf16 CPUs)


def write_csv(path: Path, rows: int) -> Path:
    """The shared dataset: synthetic reviews without null rows, as a user's CSV."""
    from core.data.synthetic import generate_reviews

    frame = generate_reviews(rows, seed=0).dropna(subset=["text"])
    frame[["text", "label"]].to_csv(path, index=False)
    return path


def plain_trainer(task: str, csv: Path, out: Path, *, pad_to_128: bool, steps: int, batch: int) -> dict[str, Any]:
    """A plain transformers.Trainer script, as a user would write it (runs in its own process)."""
    import numpy as np
    import pandas as pd
    import transformers
    from datasets import Dataset

    from core.models import bundled_model_path

    path = str(bundled_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if task == "mlm":
        model = transformers.AutoModelForMaskedLM.from_pretrained(path)
    elif task == "classification":
        model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    else:
        config = transformers.AutoConfig.from_pretrained(path, is_decoder=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, config=config)
    dataset = Dataset.from_pandas(pd.read_csv(csv), preserve_index=False)

    def encode(rows):
        if pad_to_128:
            encoded = tokenizer(rows["text"], padding="max_length", max_length=128, truncation=True)
        else:
            encoded = tokenizer(rows["text"], truncation=True, max_length=64)
        if task == "classification":
            encoded["labels"] = rows["label"]
        return encoded

    dataset = dataset.map(encode, batched=True, remove_columns=dataset.column_names)
    split = dataset.train_test_split(test_size=HELD_OUT, seed=0)
    if task == "classification":
        collator = transformers.DataCollatorWithPadding(tokenizer)
    else:
        collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm=task == "mlm")

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        learning_rate=LEARNING_RATE,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10_000,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        prediction_loss_only=task != "classification",
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=split["train"], eval_dataset=split["test"],
                                   data_collator=collator,
                                   compute_metrics=accuracy if task == "classification" else None)
    metrics = trainer.train().metrics
    evaluation = trainer.evaluate() if not pad_to_128 else {}
    if not pad_to_128:
        trainer.save_model(str(out / "final"))
    return {"samples_per_s": metrics["train_samples_per_second"], "eval_loss": evaluation.get("eval_loss")}


def engine_config(task: str, csv: Path, *, steps: int, batch: int):
    """The engine's run of the same job: same steps, batch, learning rate and held-out share, one evaluation at the end."""
    from core.config import RunConfig

    cfg = RunConfig(task=task)
    cfg.data.source, cfg.data.path = "file", str(csv)
    cfg.data.validation_fraction = HELD_OUT
    t = cfg.training
    t.max_steps, t.batch_size, t.learning_rate = steps, batch, LEARNING_RATE
    t.eval_steps = t.save_steps = steps * 100  # evaluated once, after the last step (the engine always does)
    t.keep_model, t.keep_checkpoints = "last", False
    return cfg.validate()


def dashboard_run(config: Path, runs: Path) -> dict[str, Any]:
    """Submit -> end of one run through JobManager with a standby child, as after a drawn page."""
    from core.config import RunConfig
    from core.service import child_process
    from core.service.jobs import JobManager
    from core.training import engine  # noqa: F401  the server's warm-up has imported it by the time Start is pressed

    manager = JobManager(runs)
    try:
        manager.keep_training_process_ready()
        if not child_process.wait_for_standby(300):
            raise RuntimeError("the standby training process did not finish its imports")
        started = time.perf_counter()
        run_id = manager.submit(RunConfig.load(config))
        while manager.is_busy(run_id) or manager.snapshot(run_id).is_active:
            time.sleep(0.02)
        wall = time.perf_counter() - started
        snapshot = manager.snapshot(run_id)
        if snapshot.status != "completed":
            raise RuntimeError(f"the dashboard run ended {snapshot.status}: {snapshot.error}")
        info = snapshot.info
    finally:
        manager.shutdown()
    return {"wall_s": round(wall, 2), "samples_per_s": info["samples_per_s"],
            "eval_loss": (info.get("final_metrics") or {}).get("eval_loss")}


def timed_process(command: list[str]) -> float:
    """Seconds from spawning `command` to its exit (raises with its stderr when it fails)."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {done.stderr[-2000:]}")
    return wall


def run_condition(condition: str, task: str, csv: Path, work: Path, *, steps: int, batch: int) -> dict[str, Any]:
    """One condition in a fresh process: wall time, loop samples/s, final eval loss."""
    out = work / f"{task}-{condition}-{time.monotonic_ns()}"
    if condition == "dashboard":
        config, result_file = out.with_suffix(".yaml"), out.with_suffix(".json")
        engine_config(task, csv, steps=steps, batch=batch).save(config)
        timed_process([sys.executable, "-m", "bench.bench_throughput", "--dashboard", str(config),
                       "--result-file", str(result_file), "--plain-out", str(out)])
        return json.loads(result_file.read_text())
    if condition == "engine":
        config = out.with_suffix(".yaml")
        engine_config(task, csv, steps=steps, batch=batch).save(config)
        wall = timed_process([sys.executable, "-m", "core", "train", "--config", str(config), "--output-dir", str(out)])
        status = json.loads((out / "status.json").read_text())
        result = {"samples_per_s": status["samples_per_s"],
                  "eval_loss": (status.get("final_metrics") or {}).get("eval_loss")}
    else:
        result_file = out.with_suffix(".json")
        wall = timed_process([sys.executable, "-m", "bench.bench_throughput", "--plain", task, "--csv", str(csv),
                              "--steps", str(steps), "--batch", str(batch), "--result-file", str(result_file),
                              "--plain-out", str(out)] + (["--pad-to-128"] if condition == "seed" else []))
        result = json.loads(result_file.read_text())
    result["wall_s"] = round(wall, 2)
    return result


def mean_tokens_per_row(csv: Path) -> float:
    """Real (non-pad) tokens per row of the CSV, as the bundled tokenizer splits it (max length 64)."""
    import pandas as pd
    from transformers import AutoTokenizer

    from core.models import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    texts = pd.read_csv(csv)["text"].tolist()
    return statistics.fmean(len(ids) for ids in tokenizer(texts, truncation=True, max_length=64)["input_ids"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--seed-steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plain", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--pad-to-128", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plain-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dashboard", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dashboard:  # the server-like process of one dashboard condition
        result = dashboard_run(args.dashboard, args.plain_out)
        args.result_file.write_text(json.dumps(result))
        return result
    if args.plain:  # the child process of one plain-Trainer condition
        result = plain_trainer(args.plain, args.csv, args.plain_out, pad_to_128=args.pad_to_128,
                               steps=args.steps, batch=args.batch)
        args.result_file.write_text(json.dumps(result))
        return result

    from core import devices

    work = Path(tempfile.mkdtemp(prefix="tuneboard-bench-"))
    csv = write_csv(work / "reviews.csv", args.rows)
    tokens_per_row = mean_tokens_per_row(csv)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        t: {"seed": [], "tuned": [], "engine": [], "dashboard": []} for t in args.tasks}
    for repeat in range(args.repeats):
        for task in args.tasks:
            order = ["tuned", "engine", "dashboard", "seed"]
            order = order if repeat % 2 == 0 else order[::-1]
            for condition in order:
                steps = args.seed_steps if condition == "seed" else args.steps
                result = run_condition(condition, task, csv, work, steps=steps, batch=args.batch)
                raw[task][condition].append(result)
                print(f"{task:<15} {condition:<7} {result['wall_s']:7.1f} s  {result['samples_per_s']:7.1f} samples/s",
                      flush=True)

    summary = {}
    for task, conditions in raw.items():
        pairs = list(zip(conditions["tuned"], conditions["engine"], conditions["seed"], strict=True))
        wall_ratios = [tuned["wall_s"] / engine["wall_s"] for tuned, engine, _ in pairs]
        dashboard_ratios = [tuned["wall_s"] / dashboard["wall_s"]
                            for tuned, dashboard in zip(conditions["tuned"], conditions["dashboard"], strict=True)]
        loop_ratios = [engine["samples_per_s"] / tuned["samples_per_s"] for tuned, engine, _ in pairs]
        seed_ratios = [engine["samples_per_s"] / seed["samples_per_s"] for _, engine, seed in pairs]
        samples = {c: statistics.median(r["samples_per_s"] for r in runs) for c, runs in conditions.items()}
        summary[task] = {
            "wall_s": {c: statistics.median(r["wall_s"] for r in runs) for c in ("tuned", "engine", "dashboard")
                       for runs in [conditions[c]]},
            "samples_per_s": samples,
            "real_tokens_per_s": {c: s * tokens_per_row for c, s in samples.items()},
            "eval_loss": {c: statistics.median(r["eval_loss"] for r in conditions[c])
                          for c in ("tuned", "engine", "dashboard")},
            "engine_vs_tuned_wall": statistics.median(wall_ratios),
            "engine_vs_tuned_wall_per_repeat": wall_ratios,
            "dashboard_vs_tuned_wall": statistics.median(dashboard_ratios),
            "dashboard_vs_tuned_wall_per_repeat": dashboard_ratios,
            "engine_vs_tuned_loop": statistics.median(loop_ratios),
            "engine_vs_tuned_loop_per_repeat": loop_ratios,
            "engine_vs_seed_loop": statistics.median(seed_ratios),
            "engine_vs_seed_loop_per_repeat": seed_ratios,
            "target_wall": TARGETS[task],
        }
    hardware = devices.probe_hardware()
    document = {
        "benchmark": "throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "bundled MiniLM-L6 (22.7M params)",
        "device": "cpu",
        "cpu": f"{os.cpu_count()} CPUs, {platform.machine()}, fast bf16: {devices.use_bf16('cpu')}",
        "cpu_capability": hardware.cpu_capability,
        "steps": args.steps,
        "seed_steps": args.seed_steps,
        "batch_size": args.batch,
        "rows": args.rows,
        "real_tokens_per_row": round(tokens_per_row, 2),
        "repeats": args.repeats,
        "targets": TARGETS,
        "summary": summary,
        "raw": raw,
    }
    write_results(args.out, "throughput", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"### Training throughput, whole processes (bundled MiniLM, {doc['cpu']}, batch {doc['batch_size']}, "
        f"{doc['steps']} steps, {doc['rows']:,} review rows, median of {doc['repeats']})",
        "",
        "Wall time is from spawning the process to its exit: imports, model load, tokenising, training, one "
        "evaluation on the 5% held-out split, saving the model (and, for the engine, its probes and per-example "
        "predictions before and after). The dashboard column is the same engine run started as the Start button "
        "does, from submit to the run's end, with the standby training process the pages keep ready: what a "
        "dashboard user waits for, not a whole process.",
        "",
        "| task | tuned Trainer wall | engine wall | engine / tuned (wall) | target | dashboard Start -> done "
        "| dashboard / tuned | tuned loop | engine loop | engine / tuned (loop) | eval loss tuned / engine |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for task, row in doc["summary"].items():
        wall, samples, loss = row["wall_s"], row["samples_per_s"], row["eval_loss"]
        lines.append(
            f"| {task} | {wall['tuned']:.1f} s | {wall['engine']:.1f} s | {row['engine_vs_tuned_wall']:.2f}x "
            f"| {row['target_wall']:.1f}x | {wall['dashboard']:.1f} s | {row['dashboard_vs_tuned_wall']:.2f}x "
            f"| {samples['tuned']:.1f} samples/s | {samples['engine']:.1f} samples/s "
            f"| {row['engine_vs_tuned_loop']:.2f}x | {loss['tuned']:.3f} / {loss['engine']:.3f} |"
        )
    lines += ["", f"Real (non-pad) tokens/s in the training loop ({doc['real_tokens_per_row']} tokens per row), "
              f"with the seed recipe (every row padded to 128, {doc['seed_steps']} steps):", "",
              "| task | seed | tuned | engine | engine / seed (loop) |", "|---|---:|---:|---:|---:|"]
    for task, row in doc["summary"].items():
        t = row["real_tokens_per_s"]
        lines.append(f"| {task} | {t['seed']:.0f} | {t['tuned']:.0f} | {t['engine']:.0f} "
                     f"| {row['engine_vs_seed_loop']:.2f}x |")
    lines += ["", "Each repeat's own ratios (conditions interleaved within a repeat):", "",
              "| task | engine / tuned, wall | dashboard / tuned, wall | engine / tuned, loop | engine / seed, loop |",
              "|---|---|---|---|---|"]
    for task, row in doc["summary"].items():
        def listed(values: list[float]) -> str:
            return ", ".join(f"{v:.2f}x" for v in values)

        lines.append(f"| {task} | {listed(row['engine_vs_tuned_wall_per_repeat'])} "
                     f"| {listed(row['dashboard_vs_tuned_wall_per_repeat'])} "
                     f"| {listed(row['engine_vs_tuned_loop_per_repeat'])} "
                     f"| {listed(row['engine_vs_seed_loop_per_repeat'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
