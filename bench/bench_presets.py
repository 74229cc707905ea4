"""The demo presets end to end: how long Start -> finished run takes, and how far the probes lean positive.

    python -m bench.bench_presets [--presets nike nike-mlm] [--repeats 1]

Each repeat runs `python -m core train --preset NAME` in a fresh process, as a user would headless
(the dashboard trains in the same kind of child process). Measured per run:
  - wall seconds of the whole process (imports, data, model load, base probes, training, final save)
    and the run's own elapsed seconds from status.json;
  - the lean: the summed probability of positive and of negative words among the top-k predictions
    of the probes (core.plan.presets.sentiment_mass), for the base model and the fine-tuned one.
The promise checked: wall <= 180 s on a 2-core CPU; final positive > 2x final negative and > 2x the
base model's positive. The machine's load average is recorded: other work on the same cores slows
a run down, and the figures say so.

Writes bench/results/presets.json and bench/results/presets.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 180.0


def run_preset(name: str, out: Path) -> dict[str, Any]:
    """Train one preset in a fresh process; return its timings and probe lean."""
    from core.models import gguf
    from core.plan.presets import preset_config, probe_lean

    cfg = preset_config(name)
    first_use = False
    if cfg.model.source.startswith("bundled:smollm2"):
        first_use = not gguf.is_converted(gguf.converted_folder(gguf.SMOLLM2), gguf.gguf_file(gguf.SMOLLM2))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "core", "train", "--preset", name, "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"preset {name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    status = json.loads((out / "status.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (out / "probes.jsonl").read_text(encoding="utf-8").splitlines() if line]
    base, final = probe_lean(records, "base"), probe_lean(records, "final")
    finals = [
        {"text": r["text"], "top": [(p["token"], round(p["score"], 3)) for p in r["predictions"][:5]]}
        for r in records if r["phase"] == "final"
    ]
    bases = [
        {"text": r["text"], "top": [(p["token"], round(p["score"], 3)) for p in r["predictions"][:5]]}
        for r in records if r["phase"] == "base"
    ]
    return {
        "preset": name,
        "model": cfg.model.source,
        "task": cfg.task,
        "training": {
            "rows_generated": cfg.data.synthetic.rows, "max_steps": cfg.training.max_steps,
            "batch_size": cfg.training.batch_size, "learning_rate": cfg.training.learning_rate,
            "max_length": cfg.model.max_length, "eval_steps": cfg.training.eval_steps, "top_k": cfg.probes.top_k,
        },
        "train_rows": (status.get("data_report") or {}).get("train_rows"),
        "first_use_conversion": first_use,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "wall_s": round(wall, 1),
        "run_elapsed_s": status.get("elapsed_s"),
        "samples_per_s": status.get("samples_per_s"),
        "within_budget": wall <= BUDGET_S,
        "base": {k: round(v, 4) for k, v in base.items()},
        "final": {k: round(v, 4) for k, v in final.items()},
        "positive_over_negative": round(final["positive"] / final["negative"], 2) if final["negative"] else None,
        "positive_over_base": round(final["positive"] / base["positive"], 2) if base["positive"] else None,
        "leans_positive": final["positive"] > 2 * final["negative"] and final["positive"] > 2 * base["positive"],
        "base_probes": bases,
        "final_probes": finals,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write presets.json / presets.md; returns the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["nike"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch
    import transformers

    runs = []
    with tempfile.TemporaryDirectory(prefix="tuneboard-bench-presets-") as tmp:
        for name in args.presets:
            for repeat in range(args.repeats):
                result = run_preset(name, Path(tmp) / f"{name}-{repeat}")
                runs.append(result)
                print(
                    f"{name} #{repeat}: {result['wall_s']:.0f} s wall (load {result['load_average_before']}), "
                    f"positive {result['final']['positive']:.3f} vs negative {result['final']['negative']:.3f}, "
                    f"base positive {result['base']['positive']:.3f}; leans positive: {result['leans_positive']}",
                    flush=True,
                )
    document = {
        "benchmark": "presets",
        "question": "Does each demo preset finish within 3 minutes and leave its probes leaning positive?",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "budget_s": BUDGET_S,
        "runs": runs,
    }
    write_results(args.out, "presets", document, _markdown(document))
    print(f"wrote {args.out / 'presets.json'} and {args.out / 'presets.md'}")
    return document


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "## Demo presets",
        "",
        f"{doc['question']} Each run is `python -m core train --preset NAME` in a fresh process; wall time "
        "covers imports, data, model load, base probes, training and the final save. Lean: summed top-k "
        "probability of positive vs negative words over the probes (core.plan.presets.sentiment_mass). Promise: "
        f"wall <= {doc['budget_s']:.0f} s, final positive > 2x final negative and > 2x the base model's. "
        "The load average shows other work on the same cores during the run.",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}. "
        f"Measured {doc['date']}.",
        "",
        "| preset | model | steps x batch | wall s | load avg | positive (final) | negative (final) | positive (base) "
        "| pos/neg | pos/base | leans positive |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["runs"]:
        t = r["training"]
        lines.append(
            f"| {r['preset']} | {r['model']} | {t['max_steps']} x {t['batch_size']} | {r['wall_s']:.0f}"
            f"{' (first use)' if r['first_use_conversion'] else ''} | {r['load_average_before']} | "
            f"{r['final']['positive']:.3f} | {r['final']['negative']:.3f} | {r['base']['positive']:.3f} | "
            f"{r['positive_over_negative'] if r['positive_over_negative'] is not None else 'inf'} | "
            f"{r['positive_over_base']} | {'yes' if r['leans_positive'] else 'NO'} |"
        )
    firsts = {r["preset"]: r for r in reversed(doc["runs"])}  # the first run of each preset
    for r in firsts.values():
        lines += ["", f"`{r['preset']}`, first probe: base {r['base_probes'][0]['top']} -> fine-tuned "
                  f"{r['final_probes'][0]['top']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
