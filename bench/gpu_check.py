"""GPU readiness: MLM, classification, causal LM and instruction tuning train briefly in bf16 with SDPA on a CUDA device.

    python -m bench.gpu_check [--steps 60] [--tasks mlm classification causal sft] [--sft-strategies lora full]
                              [--sft-batch 32] [--out bench/results]

Only where CUDA is present: elsewhere it says so and exits 0 without writing anything (CI and
CPU machines skip it). Each task runs through `core.training.engine.train`, as the dashboard's training
process does, on the bundled models (MiniLM for masked-LM and classification, SmolLM2-135M for
causal LM, SmolLM2-135M-Instruct for instruction tuning: LoRA at the sft defaults and a full fine-tune, on
the chat data of bench/tickets.py), and reports:
  - samples/s over the logged training steps (the first interval, warm-up, left out);
  - MFU: model FLOP/s over the device's peak dense bf16 FLOP/s (fp16 where the GPU has no bf16), both
    the datasheet's (PEAK_FLOPS; an unknown GPU gets none, and the report says why) and the peak a
    torch.matmul loop measures on the device in this run. Model FLOPs: 6 x parameters x padded
    tokens for mlm, classification and causal (6N counts neither attention nor a causal LM's vocabulary
    projection beyond its tied matrix, so it is the usual lower bound); for sft the FLOPs each training
    chat needs (bench.bench_sft_trl.train_flops: real tokens through the blocks and attention, the LM
    head at the answer positions only, no weight gradients for LoRA's frozen weights);
  - peak GPU memory (torch.cuda.max_memory_allocated);
  - whether the run folder is complete: config.yaml, metrics.jsonl with losses, status.json
    'completed', the model saved in final/.
Writes bench/results/gpu_check.json and gpu_check.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results"
# (pattern on torch.cuda.get_device_name, label, peak dense FLOP/s, its precision), from the
# vendors' datasheets, without sparsity. More specific patterns first (H100 PCIe before H100).
PEAK_FLOPS: tuple[tuple[str, str, float, str], ...] = (
    (r"H100.*PCIe", "H100 PCIe", 756e12, "bf16"),
    (r"H100.*NVL", "H100 NVL", 835e12, "bf16"),
    (r"H200", "H200", 989e12, "bf16"),
    (r"H100", "H100 SXM", 989e12, "bf16"),
    (r"B200", "B200", 2250e12, "bf16"),
    (r"A100", "A100", 312e12, "bf16"),
    (r"L40S", "L40S", 362e12, "bf16"),
    (r"\bL4\b", "L4", 121e12, "bf16"),
    (r"A10G", "A10G", 125e12, "bf16"),
    (r"\bA10\b", "A10", 125e12, "bf16"),
    (r"RTX 4090", "RTX 4090", 165e12, "bf16"),
    (r"RTX 3090", "RTX 3090", 71e12, "bf16"),
    (r"\bT4\b", "T4", 65e12, "fp16"),
    (r"V100", "V100", 125e12, "fp16"),
)
TASK_MODELS = {"mlm": "bundled", "classification": "bundled", "causal": "bundled:smollm2-135m",
               "sft": "bundled:smollm2-135m"}
SFT_STRATEGIES = ("lora", "full")
SFT_ROWS = 800  # training chats of bench/tickets.py (the engine holds 10% out and evaluates on them)


def peak_flops(device_name: str) -> tuple[str, float, str] | None:
    """(label, peak dense FLOP/s, precision) of a GPU by its CUDA name; None for one not in the table."""
    for pattern, label, flops, precision in PEAK_FLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return label, flops, precision
    return None


def model_flops_per_s(params: int, tokens_per_s: float) -> float:
    """Model FLOP/s of training: 6 FLOPs per parameter per token (forward 2, backward 4)."""
    return 6.0 * params * tokens_per_s


def mfu(params: int, tokens_per_s: float, peak: float) -> float:
    """Model FLOP utilisation: 6 FLOPs per parameter per token (forward 2, backward 4) over the peak."""
    return model_flops_per_s(params, tokens_per_s) / peak


def cuda_missing() -> str | None:
    """Why this machine cannot run the check (no CUDA build, no visible GPU); None when it can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} was built without CUDA"
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch"
    return None


def folder_complete(path: Path) -> dict[str, bool]:
    """Each thing a completed run folder must hold, and whether it does."""
    try:
        status = json.loads((path / "status.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError):
        status = None
    metrics = path / "metrics.jsonl"
    lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []
    final = path / "final"
    return {
        "config.yaml": (path / "config.yaml").is_file(),
        "metrics.jsonl": any('"loss"' in line for line in lines),
        "status completed": status == "completed",
        "model saved": (final / "config.json").is_file()
        and any(final.glob("*.safetensors")),
    }


def steady_samples_per_s(metrics: list[dict[str, Any]], batch: int) -> float | None:
    """Samples/s between the second and the last logged training step (the first interval warms up)."""
    points = sorted((m["step"], m["time"]) for m in metrics if "loss" in m and "time" in m)
    if len(points) < 3:
        return None
    (s0, t0), (s1, t1) = points[1], points[-1]
    return (s1 - s0) * batch / (t1 - t0) if t1 > t0 else None


def sft_flops_per_row(cfg: Any, strategy: str, adapters: int) -> float:
    """Mean FLOPs a training step needs per chat of cfg's data file (bench.bench_sft_trl.train_flops), as encoded for training.

    adapters: LoRA's A and B weights (a LoRA run's trainable parameters; 0 for a full fine-tune).
    """
    import dataclasses

    from bench.bench_sft_trl import model_costs, read_chats, train_flops
    from core.data.instructions import IGNORE_INDEX, encode_conversation, training_chat_template
    from core.models import empty_model, load_tokenizer

    costs = dataclasses.replace(model_costs(empty_model(cfg.model, "sft")), adapters=adapters)
    tokenizer, max_length = load_tokenizer(cfg.model)
    template = training_chat_template(tokenizer)
    flops = []
    for chat in read_chats(Path(cfg.data.path)):
        row = encode_conversation(tokenizer, chat["messages"], max_length, chat_template=template)
        tokens, labels = len(row["input_ids"]), row["labels"]
        stats = {"tokens": tokens, "attention": tokens**2, "trained": sum(label != IGNORE_INDEX for label in labels[1:])}
        flops.append(train_flops(costs, stats, strategy))
    return statistics.fmean(flops)


def measured_peak(precision: str) -> float:
    """Dense matmul FLOP/s of the CUDA device in this precision, from a short torch.matmul loop."""
    from bench.bench_sft_trl import matmul_peak

    return matmul_peak(precision, device="cuda", seconds=3.0, sizes=(4096, 8192))


def run_task(task: str, work: Path, steps: int, precision: str, peak: tuple[str, float, str] | None, *,
             measured: float | None = None, strategy: str | None = None, data: Path | None = None,
             batch: int | None = None) -> dict[str, Any]:
    """Train one task on the GPU through core.training.engine.train; its speed, MFU, memory and folder checks.

    measured: the device's matmul peak measured in this run; strategy, data, batch: a run's own (sft:
    its strategy, the chat file, its batch size), else the task's defaults.
    """
    import torch

    from core.config import RunConfig
    from core.models import empty_model
    from core.run.folder import RunFolder, new_run_id
    from core.run.sink import RunSink
    from core.training import engine

    cfg = RunConfig(task=task, name=f"gpu-check-{task}" + (f"-{strategy}" if strategy else ""))
    cfg.model.source = TASK_MODELS[task]
    if strategy:
        cfg.strategy.name = strategy
    if data is not None:
        cfg.data.source, cfg.data.path = "file", str(data)
    t = cfg.training
    t.device, t.precision = "cuda", precision
    t.batch_size = batch or t.batch_size
    t.max_steps, t.logging_steps = steps, max(1, steps // 6)
    t.eval_steps = t.save_steps = steps  # one evaluation and one checkpoint, at the end
    cfg.validate()
    attention = getattr(empty_model(cfg.model, task).config, "_attn_implementation", None)
    folder = RunFolder.create(work, new_run_id(cfg), cfg)
    torch.cuda.reset_peak_memory_stats()
    engine.train(cfg, folder, RunSink(folder), threading.Event())
    peak_memory = torch.cuda.max_memory_allocated()
    status = folder.status()
    samples_per_s = steady_samples_per_s(list(folder.metrics()), t.batch_size * t.gradient_accumulation_steps)
    speed = status.get("speed") or {}
    padded = speed["tokens_per_s"] / status["samples_per_s"] if speed.get("tokens_per_s") and status.get(
        "samples_per_s") else None
    tokens_per_s = samples_per_s * padded if samples_per_s and padded else None
    params = int(status.get("trainable_params") or status.get("total_params") or 0)
    result: dict[str, Any] = {
        "task": task, "strategy": cfg.strategy.name, "model": cfg.model.source, "precision": precision,
        "attention": attention, "steps": status.get("step"), "batch_size": t.batch_size, "params": params,
        "samples_per_s": round(samples_per_s, 1) if samples_per_s else None,
        "tokens_per_s": round(tokens_per_s) if tokens_per_s else None,
        "peak_memory_gib": round(peak_memory / 2**30, 2),
        "folder": folder_complete(folder.path),
    }
    flops_per_s = None
    if task == "sft" and samples_per_s:
        adapters = params if cfg.strategy.name == "lora" else 0  # a LoRA run trains its adapters only
        flops_per_s = samples_per_s * sft_flops_per_row(cfg, cfg.strategy.name, adapters)
    elif task != "sft" and tokens_per_s:
        flops_per_s = model_flops_per_s(params, tokens_per_s)
    if flops_per_s is None:
        result["mfu_note"] = "too few logged steps to measure the speed"
        return result
    result["tflops_per_s"] = round(flops_per_s / 1e12, 2)
    if measured:
        result["mfu_measured"] = round(flops_per_s / measured, 4)
    if peak is None:
        result["mfu_note"] = "device not in the table of peak FLOP/s (bench/gpu_check.py PEAK_FLOPS)"
    else:
        result["mfu"] = round(flops_per_s / peak[1], 4)
    return result


def planned_runs(tasks: list[str], sft_strategies: list[str]) -> list[tuple[str, str | None]]:
    """(task, strategy) of each run, in order: one per task, one per strategy for sft."""
    return [(task, strategy) for task in tasks for strategy in (sft_strategies if task == "sft" else [None])]


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Run the check where CUDA is present; elsewhere say why and return None (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--tasks", nargs="+", choices=list(TASK_MODELS), default=list(TASK_MODELS))
    parser.add_argument("--sft-strategies", nargs="+", choices=SFT_STRATEGIES, default=list(SFT_STRATEGIES))
    parser.add_argument("--sft-batch", type=int, default=32, help="chats per step for sft (default 32)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    missing = cuda_missing()
    if missing:
        print(f"gpu_check skipped: {missing}. It runs only where CUDA is present; nothing was written.")
        return None

    import torch
    import transformers

    name = torch.cuda.get_device_name(0)
    peak = peak_flops(name)
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    measured = measured_peak(precision)
    print(f"[gpu_check] {name}: {precision} matmul peak measured {measured / 1e12:.0f} TFLOP/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="tuneboard-gpu-check-") as tmp:
        chats = None
        if "sft" in args.tasks:
            from bench.tickets import write_tickets

            chats = write_tickets(Path(tmp) / "tickets.jsonl", SFT_ROWS, seed=0)
        rows = []
        for task, strategy in planned_runs(args.tasks, args.sft_strategies):
            sft = task == "sft"
            rows.append(run_task(task, Path(tmp), args.steps, precision, peak, measured=measured, strategy=strategy,
                                 data=chats if sft else None, batch=args.sft_batch if sft else None))
            print(f"[gpu_check] {rows[-1]}", flush=True)
    from core.devices import describe_device

    document = {
        "benchmark": "gpu_check",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": name,
        "device_line": describe_device(),
        "peak": {"label": peak[0], "flops": peak[1], "precision": peak[2]} if peak else None,
        "measured_peak": {"flops": measured, "precision": precision},
        "machine": {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
                    "transformers": transformers.__version__},
        "steps": args.steps,
        "rows": rows,
        "all_complete": all(all(r["folder"].values()) for r in rows),
        "median_mfu": statistics.median([r["mfu"] for r in rows if "mfu" in r]) if any("mfu" in r for r in rows)
        else None,
    }
    write_results(args.out, "gpu_check", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    peak, measured = doc["peak"], doc["measured_peak"]
    basis = (f"peak {peak['flops'] / 1e12:.0f} TFLOP/s dense {peak['precision']} ({peak['label']})" if peak
             else "device not in the peak table: no MFU")
    lines = [
        "## GPU check",
        "",
        f"`python -m bench.gpu_check` on {doc['device']} ({doc['device_line']}), {doc['date']}: torch "
        f"{doc['machine']['torch']}, CUDA {doc['machine']['cuda']}, transformers {doc['machine']['transformers']}. "
        f"{doc['steps']} steps per run through core.training.engine.train; MFU = model FLOP/s / {basis}, and "
        f"against the {measured['precision']} matmul peak measured on the device in this run "
        f"({measured['flops'] / 1e12:.0f} TFLOP/s). Model FLOPs: 6 x params x padded tokens (mlm, classification, "
        "causal); for sft the FLOPs each chat needs, the LM head at the answer positions only "
        "(bench.bench_sft_trl.train_flops).",
        "",
        "| task | strategy | model | precision | attention | batch | samples/s | tokens/s | TFLOP/s | MFU (datasheet) "
        "| MFU (measured peak) | peak memory | run folder |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["rows"]:
        missing = [name for name, ok in r["folder"].items() if not ok]
        utilisation = f"{r['mfu']:.1%}" if "mfu" in r else r.get("mfu_note", "")
        against_measured = f"{r['mfu_measured']:.1%}" if "mfu_measured" in r else "-"
        lines.append(
            f"| {r['task']} | {r['strategy']} | {r['model']} | {r['precision']} | {r['attention']} | {r['batch_size']} "
            f"| {r['samples_per_s']} | {r['tokens_per_s']} | {r.get('tflops_per_s', '-')} | {utilisation} "
            f"| {against_measured} | {r['peak_memory_gib']} GiB "
            f"| {'complete' if not missing else 'missing ' + ', '.join(missing)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
