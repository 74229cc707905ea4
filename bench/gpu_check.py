"""GPU readiness: MLM, classification and causal LM train briefly in bf16 with SDPA on a CUDA device.

    python -m bench.gpu_check [--steps 60] [--out bench/results]

Only where CUDA is present: elsewhere it says so and exits 0 without writing anything (CI and
CPU machines skip it). Each task runs through `core.training.engine.train`, as the dashboard's training
process does, on the bundled models (MiniLM for masked-LM and classification, SmolLM2-135M for
causal LM), and reports:
  - samples/s over the logged training steps (the first interval, warm-up, left out);
  - MFU: 6 x parameters x tokens/s over the device's peak dense bf16 FLOP/s (fp16 where the GPU has
    no bf16), from PEAK_FLOPS; an unknown GPU gets no MFU, and the report says why. Tokens are the
    padded tokens the batches carry; 6N counts neither attention nor a causal LM's vocabulary
    projection beyond its tied matrix, so it is the usual lower bound;
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
TASK_MODELS = {"mlm": "bundled", "classification": "bundled", "causal": "bundled:smollm2-135m"}


def peak_flops(device_name: str) -> tuple[str, float, str] | None:
    """(label, peak dense FLOP/s, precision) of a GPU by its CUDA name; None for one not in the table."""
    for pattern, label, flops, precision in PEAK_FLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return label, flops, precision
    return None


def mfu(params: int, tokens_per_s: float, peak: float) -> float:
    """Model FLOP utilisation: 6 FLOPs per parameter per token (forward 2, backward 4) over the peak."""
    return 6.0 * params * tokens_per_s / peak


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


def run_task(task: str, work: Path, steps: int, precision: str, peak: tuple[str, float, str] | None) -> dict[str, Any]:
    """Train one task on the GPU through core.training.engine.train; its speed, MFU, memory and folder checks."""
    import torch

    from core.config import RunConfig
    from core.models import empty_model
    from core.run.folder import RunFolder, new_run_id
    from core.run.sink import RunSink
    from core.training import engine

    cfg = RunConfig(task=task, name=f"gpu-check-{task}")
    cfg.model.source = TASK_MODELS[task]
    t = cfg.training
    t.device, t.precision = "cuda", precision
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
        "task": task, "model": cfg.model.source, "precision": precision, "attention": attention,
        "steps": status.get("step"), "batch_size": t.batch_size, "params": params,
        "samples_per_s": round(samples_per_s, 1) if samples_per_s else None,
        "tokens_per_s": round(tokens_per_s) if tokens_per_s else None,
        "peak_memory_gib": round(peak_memory / 2**30, 2),
        "folder": folder_complete(folder.path),
    }
    if peak is None:
        result["mfu_note"] = "device not in the table of peak FLOP/s (bench/gpu_check.py PEAK_FLOPS)"
    elif tokens_per_s is None:
        result["mfu_note"] = "too few logged steps to measure tokens/s"
    else:
        result["mfu"] = round(mfu(params, tokens_per_s, peak[1]), 4)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Run the check where CUDA is present; elsewhere say why and return None (exit status 0)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--tasks", nargs="+", choices=list(TASK_MODELS), default=list(TASK_MODELS))
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
    with tempfile.TemporaryDirectory(prefix="tuneboard-gpu-check-") as tmp:
        rows = []
        for task in args.tasks:
            rows.append(run_task(task, Path(tmp), args.steps, precision, peak))
            print(f"[gpu_check] {rows[-1]}", flush=True)
    from core.devices import describe_device

    document = {
        "benchmark": "gpu_check",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": name,
        "device_line": describe_device(),
        "peak": {"label": peak[0], "flops": peak[1], "precision": peak[2]} if peak else None,
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
    peak = doc["peak"]
    basis = (f"peak {peak['flops'] / 1e12:.0f} TFLOP/s dense {peak['precision']} ({peak['label']})" if peak
             else "device not in the peak table: no MFU")
    lines = [
        "## GPU check",
        "",
        f"`python -m bench.gpu_check` on {doc['device']} ({doc['device_line']}), {doc['date']}: torch "
        f"{doc['machine']['torch']}, CUDA {doc['machine']['cuda']}, transformers {doc['machine']['transformers']}. "
        f"{doc['steps']} steps per task through core.training.engine.train; MFU = 6 x params x padded tokens/s / {basis}.",
        "",
        "| task | model | precision | attention | samples/s | tokens/s | MFU | peak memory | run folder |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in doc["rows"]:
        missing = [name for name, ok in r["folder"].items() if not ok]
        utilisation = f"{r['mfu']:.1%}" if "mfu" in r else r.get("mfu_note", "")
        lines.append(
            f"| {r['task']} | {r['model']} | {r['precision']} | {r['attention']} | {r['samples_per_s']} | "
            f"{r['tokens_per_s']} | {utilisation} | "
            f"{r['peak_memory_gib']} GiB | {'complete' if not missing else 'missing ' + ', '.join(missing)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
