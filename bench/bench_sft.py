"""Instruction tuning as a user runs it: unseen chat data at the defaults, the news preset, and prompt vs LoRA vs full.

    python -m bench.bench_sft [--parts acceptance preset strategies] [--steps 120]

Every run is a fresh `python -m core ...` process, as a user starts it headless (the dashboard trains
in the same kind of child process):
  acceptance  chat JSONL nobody tuned the defaults on (bench/tickets.py: customer messages routed to
              one of eight teams, a system turn, answers like "Account access"); `core train --task sft
              --max-steps STEPS` at every other default, then `core evaluate` on 160 held-out messages
              (none of them in the training file): exact match of the base model (prompting) and the
              fine-tuned one. Promise: fine-tuned >= 85%, far above the base.
  preset      `core train --preset news` end to end: wall seconds (imports, data, model load, the base
              model's answers, training, the fine-tuned model's answers, save) and the answers'
              accuracy before (prompting) and after. Promise: <= 300 s on a 2-core CPU.
  strategies  the news preset with --strategy prompt, lora and full: accuracy against wall seconds.
The machine's load average is recorded: other work on the same cores slows a run down.

Writes bench/results/sft.json and bench/results/sft.md.
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
from bench.tickets import generate_tickets

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
PRESET_BUDGET_S = 300.0
ACCEPTANCE_EXACT_MATCH = 0.85
TRAIN_ROWS, EVAL_ROWS = 800, 160


def _core(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"core {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started, proc


def _status(run: Path) -> dict[str, Any]:
    return json.loads((run / "status.json").read_text(encoding="utf-8"))


def _write_chats(path: Path, chats: list[dict]) -> Path:
    path.write_text("".join(json.dumps(chat) + "\n" for chat in chats), encoding="utf-8")
    return path


def acceptance(tmp: Path, steps: int) -> dict[str, Any]:
    """LoRA SFT of SmolLM2 at the defaults on the tickets, scored on held-out messages by `core evaluate`."""
    from core.insight.answers import exact_match

    train = generate_tickets(TRAIN_ROWS, seed=0)
    seen = {chat["messages"][1]["content"] for chat in train}
    held_out = [chat for chat in generate_tickets(4 * EVAL_ROWS, seed=1) if chat["messages"][1]["content"] not in seen]
    train_file = _write_chats(tmp / "tickets-train.jsonl", train)
    eval_file = _write_chats(tmp / "tickets-eval.jsonl", held_out[:EVAL_ROWS])
    run, answers = tmp / "tickets-run", tmp / "tickets-answers.jsonl"
    load = os.getloadavg()[0]
    train_s, _ = _core("train", "--task", "sft", "--dataset", str(train_file), "--max-steps", str(steps),
                       "--output-dir", str(run))
    evaluate_s, proc = _core("evaluate", str(run), "--eval-file", str(eval_file), "--output", str(answers))
    lines = [json.loads(line) for line in answers.read_text(encoding="utf-8").splitlines() if line.strip()]
    base = sum(exact_match(r["base"], r["reference"]) for r in lines) / len(lines)
    tuned = sum(exact_match(r["tuned"], r["reference"]) for r in lines) / len(lines)
    status = _status(run)
    from core.config import RunConfig

    cfg = RunConfig.load(run / "config.yaml")
    return {
        "data": f"{TRAIN_ROWS} training chats, {len(lines)} held-out chats (bench/tickets.py, 8 teams)",
        "steps": status.get("step"), "batch_size": cfg.training.batch_size,
        "learning_rate": status.get("learning_rate"),
        "load_average_before": round(load, 2),
        "train_wall_s": round(train_s, 1), "evaluate_wall_s": round(evaluate_s, 1),
        "samples_per_s": status.get("samples_per_s"),
        "base_exact_match": round(base, 4), "tuned_exact_match": round(tuned, 4),
        "passes": tuned >= ACCEPTANCE_EXACT_MATCH and tuned > base,
        "summary": proc.stdout.strip().splitlines(),
        "examples": [{k: r.get(k) for k in ("reference", "base", "tuned")} for r in lines[:5]],
    }


def preset_run(tmp: Path, strategy: str | None = None, repeat: int = 0) -> dict[str, Any]:
    """`core train --preset news` (optionally with another strategy): wall time and answer accuracy before/after."""
    name = f"news-{strategy or 'default'}-{repeat}"
    run = tmp / name
    args = ["train", "--preset", "news", "--output-dir", str(run)] + (["--strategy", strategy] if strategy else [])
    load = os.getloadavg()[0]
    wall, _ = _core(*args)
    status = _status(run)
    final, before = status.get("final_metrics") or {}, status.get("base_metrics") or {}
    return {
        "strategy": strategy or "lora (preset)",
        "load_average_before": round(load, 2),
        "wall_s": round(wall, 1), "run_elapsed_s": status.get("elapsed_s"),
        "steps": status.get("step"), "samples_per_s": status.get("samples_per_s"),
        "before_accuracy": before.get("eval_accuracy"), "after_accuracy": final.get("eval_accuracy"),
        "after_exact_match": final.get("eval_exact_match"), "after_f1": final.get("eval_f1"),
        "within_budget": wall <= PRESET_BUDGET_S,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["acceptance", "preset"],
                        choices=["acceptance", "preset", "strategies"])
    parser.add_argument("--steps", type=int, default=120, help="acceptance: optimiser steps (default 120).")
    parser.add_argument("--repeats", type=int, default=1, help="preset: fresh runs of the preset (default 1).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch
    import transformers

    document: dict[str, Any] = {
        "benchmark": "sft",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                    "torch": torch.__version__, "transformers": transformers.__version__},
    }
    with tempfile.TemporaryDirectory(prefix="tuneboard-bench-sft-") as name:
        tmp = Path(name)
        if "acceptance" in args.parts:
            document["acceptance"] = acceptance(tmp, args.steps)
            print(json.dumps(document["acceptance"], indent=1), flush=True)
        if "preset" in args.parts:
            document["preset_runs"] = [preset_run(tmp, repeat=i) for i in range(max(1, args.repeats))]
            print(json.dumps(document["preset_runs"], indent=1), flush=True)
        if "strategies" in args.parts:
            document["strategies"] = [preset_run(tmp, s) for s in ("prompt", "lora", "full")]
            print(json.dumps(document["strategies"], indent=1), flush=True)
    write_results(args.out, "sft", document, _markdown(document))
    print(f"wrote {args.out / 'sft.json'} and {args.out / 'sft.md'}")
    return document


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "-"


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = ["## Instruction tuning (SFT)", "",
             f"Machine: {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}. "
             f"Measured {doc['date']}. Each figure is one fresh `python -m core` process.", ""]
    if "acceptance" in doc:
        a = doc["acceptance"]
        lines += [
            f"**Unseen chat data at the defaults** ({a['data']}): `core train --task sft --max-steps {a['steps']}` "
            f"(LoRA on SmolLM2-135M-Instruct, batch {a['batch_size']}, learning rate {a['learning_rate']}), then "
            "`core evaluate` on the held-out chats.", "",
            "| exact match, base (prompting) | exact match, fine-tuned | train wall s | evaluate wall s | samples/s "
            "| load avg | >= 85% |",
            "|---:|---:|---:|---:|---:|---:|---|",
            f"| {_pct(a['base_exact_match'])} | {_pct(a['tuned_exact_match'])} | {a['train_wall_s']:.0f} | "
            f"{a['evaluate_wall_s']:.0f} | {a['samples_per_s']} | {a['load_average_before']} | "
            f"{'yes' if a['passes'] else 'NO'} |", ""]
    rows = doc.get("preset_runs", []) + doc.get("strategies", [])
    if rows:
        lines += [f"**The news preset** (`core train --preset news`, promise: <= {PRESET_BUDGET_S:.0f} s end to end):",
                  "", "| strategy | wall s | steps | samples/s | accuracy before (prompting) | accuracy after "
                  "| load avg | within budget |", "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(f"| {r['strategy']} | {r['wall_s']:.0f} | {r['steps']} | {r['samples_per_s']} | "
                         f"{_pct(r['before_accuracy'])} | {_pct(r['after_accuracy'])} | {r['load_average_before']} "
                         f"| {'yes' if r['within_budget'] else 'NO'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
