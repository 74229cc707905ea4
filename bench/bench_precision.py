"""bf16 on this CPU: the same runs in fp32 and bf16, their speed and their final losses.

    python -m bench.bench_precision [--repeats 1]

`precision: auto` picks bf16 autocast on CPUs with AVX512-BF16 or AMX (core.devices.use_bf16).
This measures whether that pays here: masked-LM (the default seed demo) and classification on the
bundled MiniLM, each trained with `python -m core train` in fp32 and in bf16, alternating, over
the same data and steps. Reported per task: samples/s over the logged steps (model loading left
out), the bf16/fp32 speed ratio, and the final eval loss of each with their relative difference
(tolerance: 5%).

Writes bench/results/precision.json and bench/results/precision.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LOSS_TOLERANCE = 0.05
TASKS = ("mlm", "classification")


def _cpu_flags() -> str:
    from core import devices

    return "avx512_bf16/amx" if devices._cpu_has_fast_bf16() else "no fast bf16"


def _run(task: str, precision: str, work: Path, index: int) -> dict[str, Any]:
    from core.run.folder import RunFolder

    out = work / f"{task}-{precision}-{index}"
    subprocess.run([sys.executable, "-m", "core", "train", "--task", task, "--max-steps", "120",
                    "--config", str(_config(work, precision)), "--output-dir", str(out)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = RunFolder(out)
    points = sorted((m["step"], m["time"]) for m in folder.metrics() if "loss" in m and "time" in m)
    (s0, t0), (s1, t1) = points[1], points[-1]
    status = folder.status()
    return {"samples_per_s": (s1 - s0) * 32 / (t1 - t0),
            "eval_loss": (status.get("final_metrics") or {}).get("eval_loss")}


def _config(work: Path, precision: str) -> Path:
    from core.config import RunConfig

    cfg = RunConfig()
    cfg.training.precision = precision
    cfg.training.eval_steps = 120
    cfg.training.save_steps = 120
    path = work / f"{precision}.yaml"
    cfg.save(path)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tuneboard-precision-"))
    rows = []
    for task in TASKS:
        found: dict[str, list[dict[str, Any]]] = {"fp32": [], "bf16": []}
        for index in range(args.repeats):
            for precision in ("fp32", "bf16"):
                found[precision].append(_run(task, precision, work, index))
                print(f"[precision] {task} {precision} {found[precision][-1]}", flush=True)
        speed = {p: statistics.median(r["samples_per_s"] for r in runs) for p, runs in found.items()}
        loss = {p: statistics.median(r["eval_loss"] for r in runs) for p, runs in found.items()}
        rows.append({
            "task": task,
            "fp32_samples_per_s": round(speed["fp32"], 1),
            "bf16_samples_per_s": round(speed["bf16"], 1),
            "speedup": round(speed["bf16"] / speed["fp32"], 2),
            "fp32_eval_loss": round(loss["fp32"], 4),
            "bf16_eval_loss": round(loss["bf16"], 4),
            "loss_difference": round(abs(loss["bf16"] - loss["fp32"]) / loss["fp32"], 4),
        })
    doc = {
        "benchmark": "precision",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "bf16": _cpu_flags()},
        "loss_tolerance": LOSS_TOLERANCE,
        "rows": rows,
    }
    write_results(RESULTS, "precision", doc, _markdown(doc))
    return doc


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "## bf16 on the CPU",
        "",
        f"`python -m bench.bench_precision` on {doc['machine']['cpus']} CPUs ({doc['machine']['bf16']}), "
        f"{doc['when']}. The default config (bundled MiniLM, synthetic reviews, batch 32, 120 steps) per task, in "
        "fp32 and in bf16 autocast, alternating. samples/s over the logged steps; final eval loss with the "
        f"relative difference (tolerance {doc['loss_tolerance']:.0%}).",
        "",
        "| task | fp32 samples/s | bf16 samples/s | bf16 / fp32 | fp32 eval loss | bf16 eval loss | difference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['task']} | {r['fp32_samples_per_s']} | {r['bf16_samples_per_s']} | {r['speedup']:.2f}x | "
              f"{r['fp32_eval_loss']} | {r['bf16_eval_loss']} | {r['loss_difference']:.1%} |" for r in doc["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
