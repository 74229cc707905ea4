"""Training throughput: Tuneboard's engine vs what a user would otherwise run, same process, same data.

Three ways to train the bundled MiniLM on the same CSV of review sentences, same batch and steps:
  seed   - plain Trainer, the tokenizer pads every row to 128 tokens (the seed notebook's recipe)
  tuned  - plain Trainer, tokenise once, dynamic padding in the collator
  engine - core.engine.train (dynamic padding, length-grouped batches, masked-only MLM logits,
           honest loss normalisation, threads = physical cores)
Measured with the Trainer's own train_samples_per_second (the training loop only), per task.
Conditions are interleaved per repeat so drifting machine load hits all of them alike.

Writes bench/results/throughput.json and throughput.md. Run: python -m bench.bench_throughput
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ("mlm", "classification", "causal")


def write_csv(path: Path, rows: int) -> Path:
    """The shared dataset: synthetic reviews without null rows, as a user's CSV."""
    from core.data.synthetic import generate_reviews

    frame = generate_reviews(rows, seed=0).dropna(subset=["text"])
    frame[["text", "label"]].to_csv(path, index=False)
    return path


def plain_trainer(task: str, csv: Path, *, pad_to_128: bool, steps: int, batch: int) -> dict[str, float]:
    """A plain transformers.Trainer run, as a user would write it."""
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
    frame = pd.read_csv(csv)
    dataset = Dataset.from_pandas(frame, preserve_index=False)

    def encode(rows):
        if pad_to_128:
            out = tokenizer(rows["text"], padding="max_length", max_length=128, truncation=True)
        else:
            out = tokenizer(rows["text"], truncation=True, max_length=64)
        if task == "classification":
            out["labels"] = rows["label"]
        return out

    dataset = dataset.map(encode, batched=True, remove_columns=dataset.column_names)
    if task == "classification":
        collator = transformers.DataCollatorWithPadding(tokenizer)
    else:
        collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm=task == "mlm")
    args = transformers.TrainingArguments(
        output_dir=str(csv.parent / f"plain-{task}-{pad_to_128}"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=5e-4,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10_000,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    metrics = trainer.train().metrics
    tokens_per_row = statistics.fmean(sum(mask) for mask in dataset["attention_mask"])
    return _rates(metrics["train_samples_per_second"], tokens_per_row)


def engine_run(task: str, csv: Path, *, steps: int, batch: int, root: Path) -> dict[str, float]:
    """The same training through core.engine.train."""
    from core import engine
    from core.config import RunConfig
    from core.runs import RunFolder, new_run_id
    from core.sink import RunSink

    cfg = RunConfig(task=task)
    cfg.data.source, cfg.data.path = "file", str(csv)
    cfg.data.validation_fraction = 0.05
    cfg.training.max_steps = steps
    cfg.training.batch_size = batch
    cfg.training.eval_steps = cfg.training.save_steps = steps * 100
    cfg.validate()
    folder = RunFolder.create(root, new_run_id(cfg), cfg)
    engine.train(cfg, folder, RunSink(folder), threading.Event())
    samples_per_s = folder.status()["samples_per_s"]
    from transformers import AutoTokenizer

    from core.models import bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    import pandas as pd

    texts = pd.read_csv(csv)["text"].tolist()
    tokens_per_row = statistics.fmean(len(ids) for ids in tokenizer(texts, truncation=True, max_length=64)["input_ids"])
    return _rates(samples_per_s, tokens_per_row)


def _rates(samples_per_s: float, tokens_per_row: float) -> dict[str, float]:
    return {"samples_per_s": samples_per_s, "real_tokens_per_s": samples_per_s * tokens_per_row}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import tempfile

    import torch

    work = Path(tempfile.mkdtemp(prefix="tuneboard-bench-"))
    csv = write_csv(work / "reviews.csv", 3000)
    raw: dict[str, dict[str, list[dict[str, float]]]] = {t: {"seed": [], "tuned": [], "engine": []} for t in args.tasks}
    for repeat in range(args.repeats):
        for task in args.tasks:
            order = ["seed", "tuned", "engine"] if repeat % 2 == 0 else ["engine", "tuned", "seed"]
            for condition in order:
                started = time.perf_counter()
                if condition == "engine":
                    result = engine_run(task, csv, steps=args.steps, batch=args.batch, root=work / "runs")
                else:
                    result = plain_trainer(task, csv, pad_to_128=condition == "seed", steps=args.steps, batch=args.batch)
                result["wall_s"] = time.perf_counter() - started
                raw[task][condition].append(result)
                print(f"{task:<15} {condition:<7} {result['samples_per_s']:8.1f} samples/s", flush=True)

    summary = {}
    for task, conditions in raw.items():
        median = {c: statistics.median(r["samples_per_s"] for r in runs) for c, runs in conditions.items()}
        tokens = {c: statistics.median(r["real_tokens_per_s"] for r in runs) for c, runs in conditions.items()}
        summary[task] = {
            "samples_per_s": median,
            "real_tokens_per_s": tokens,
            "engine_vs_seed": median["engine"] / median["seed"],
            "engine_vs_tuned": median["engine"] / median["tuned"],
        }
    document = {
        "benchmark": "throughput",
        "model": "bundled MiniLM-L6 (22.7M params)",
        "device": "cpu",
        "cpu_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "steps": args.steps,
        "batch_size": args.batch,
        "repeats": args.repeats,
        "targets": {"mlm_engine_vs_seed": 5.0, "mlm_engine_vs_tuned": 1.5},
        "summary": summary,
        "raw": raw,
    }
    write_results(args.out, "throughput", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"### Training throughput (bundled MiniLM, CPU, batch {doc['batch_size']}, {doc['steps']} steps, "
        f"median of {doc['repeats']})",
        "",
        "| task | seed recipe (pad 128) | tuned Trainer (dynamic) | Tuneboard engine | engine / seed | engine / tuned |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for task, row in doc["summary"].items():
        s = row["samples_per_s"]
        lines.append(
            f"| {task} | {s['seed']:.1f} samples/s | {s['tuned']:.1f} samples/s | {s['engine']:.1f} samples/s "
            f"| {row['engine_vs_seed']:.2f}x | {row['engine_vs_tuned']:.2f}x |"
        )
    lines += ["", "Real (non-pad) tokens/s:", "", "| task | seed | tuned | engine |", "|---|---:|---:|---:|"]
    for task, row in doc["summary"].items():
        t = row["real_tokens_per_s"]
        lines.append(f"| {task} | {t['seed']:.0f} | {t['tuned']:.0f} | {t['engine']:.0f} |")
    lines += ["", "Each repeat's own ratios (conditions interleaved within a repeat, so these are the "
              "same-moment comparisons the medians summarise):", "",
              "| task | engine / seed per repeat | engine / tuned per repeat |", "|---|---|---|"]
    for task, runs in doc["raw"].items():
        per_repeat = list(zip(runs["seed"], runs["tuned"], runs["engine"], strict=False))
        vs_seed = ", ".join(f"{e['samples_per_s'] / s['samples_per_s']:.2f}x" for s, _, e in per_repeat)
        vs_tuned = ", ".join(f"{e['samples_per_s'] / t['samples_per_s']:.2f}x" for _, t, e in per_repeat)
        lines.append(f"| {task} | {vs_seed} | {vs_tuned} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
