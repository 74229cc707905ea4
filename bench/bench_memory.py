"""Peak memory per task and strategy: each run in its own process, its peak RSS read at exit.

Bundled MiniLM (causal uses it as a decoder), 6 steps, batch 32.
On a GPU machine the same script reports torch.cuda.max_memory_allocated as well.
Writes bench/results/memory.json and memory.md. Run: python -m bench.bench_memory
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("mlm", "full"), ("mlm", "feature-extraction"), ("mlm", "freeze-layers"), ("mlm", "gradual-unfreeze"),
    ("mlm", "lora"), ("classification", "full"), ("classification", "lora"), ("causal", "full"), ("causal", "lora"),
]

CHILD = """
import json, resource, sys, threading, torch
from pathlib import Path
from core.training import engine
from core.config import RunConfig
from core.run.folder import RunFolder
from core.run.sink import RunSink
task, strategy, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
cfg = RunConfig(task=task)
cfg.strategy.name = strategy
cfg.data.synthetic.rows = 600
cfg.training.max_steps = 6
cfg.training.eval_steps = cfg.training.save_steps = 1000
folder = RunFolder.create(root, f"{task}-{strategy}", cfg.validate())
engine.train(cfg, folder, RunSink(folder), threading.Event())
status = folder.status()
print(json.dumps({
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    "trainable_params": status["trainable_params"], "total_params": status["total_params"],
    "samples_per_s": status.get("samples_per_s"),
}))
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="tuneboard-memory-"))
    rows = []
    for task, strategy in CASES:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, task, strategy, str(root)], cwd=ROOT,
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{task}/{strategy} failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append({"task": task, "strategy": strategy, **result})
        print(f"{task:<15} {strategy:<19} {result['peak_rss_mib']:7.0f} MiB", flush=True)
    document = {"benchmark": "memory", "model": "bundled MiniLM-L6", "batch_size": 32, "steps": 6, "rows": rows}
    write_results(args.out, "memory", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "### Peak memory (bundled MiniLM, CPU, batch 32, 6 steps, one process per run)",
        "",
        "| task | strategy | peak RSS | trainable / total params |",
        "|---|---|---:|---:|",
    ]
    for row in doc["rows"]:
        lines.append(
            f"| {row['task']} | {row['strategy']} | {row['peak_rss_mib']:.0f} MiB "
            f"| {row['trainable_params']:,} / {row['total_params']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
