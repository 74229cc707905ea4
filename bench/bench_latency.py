"""What a user waits for: submit -> first loss point on the chart, and the whole default seed demo.

Both go through JobManager, as the dashboard's Start button does, with the bundled model on CPU.
The first figure comes with its parts (model load, data, base probes) from the run log's timestamps.
Writes bench/results/latency.json and latency.md. Run: python -m bench.bench_latency
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"first_point_s": 15.0, "seed_demo_s": 180.0}


def _wait(manager, run_id: str, done, timeout_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        snapshot = manager.snapshot(run_id)
        if done(snapshot):
            return time.perf_counter() - started
        if snapshot.status in ("failed", "cancelled"):
            raise RuntimeError(f"run {run_id} {snapshot.status}: {snapshot.error}")
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} did not get there in {timeout_s} s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    # Imports are part of what a fresh app pays once; time them separately from a warm Start.
    import_started = time.perf_counter()
    from core import engine  # noqa: F401  (torch, transformers)
    from core.config import RunConfig
    from core.jobs import JobManager

    import_s = time.perf_counter() - import_started
    manager = JobManager(Path(tempfile.mkdtemp(prefix="tuneboard-latency-")))
    try:
        first_cfg = RunConfig()
        first_cfg.training.max_steps = 3
        run_id = manager.submit(first_cfg)
        first_point_s = _wait(manager, run_id, lambda s: any("loss" in m for m in s.metrics), 120)
        _wait(manager, run_id, lambda s: not s.is_active, 300)
        log = manager.snapshot(run_id).log_tail

        demo_cfg = RunConfig()  # the dashboard's defaults: the seed demo
        demo_id = manager.submit(demo_cfg)
        demo_s = _wait(manager, demo_id, lambda s: not s.is_active, 900)
        demo = manager.snapshot(demo_id)
    finally:
        manager.shutdown()
    document = {
        "benchmark": "latency",
        "model": "bundled MiniLM-L6",
        "device": "cpu",
        "import_s": round(import_s, 2),
        "first_point_s": round(first_point_s, 2),
        "seed_demo_s": round(demo_s, 1),
        "seed_demo_steps": demo.step,
        "seed_demo_status": demo.status,
        "seed_demo_final_metrics": dict(demo.info.get("final_metrics") or {}),
        "targets": TARGETS,
        "first_run_log": list(log)[:12],
    }
    write_results(args.out, "latency", document, _markdown(document))
    print(_markdown(document))
    return document


def _markdown(doc: dict[str, Any]) -> str:
    return "\n".join(
        [
            "### Latency (bundled MiniLM, CPU, through JobManager as the Start button does)",
            "",
            "| measure | value | target |",
            "|---|---:|---:|",
            f"| submit -> first loss point | {doc['first_point_s']:.1f} s | <= {doc['targets']['first_point_s']:.0f} s |",
            f"| default seed demo, submit -> completed ({doc['seed_demo_steps']} steps) | {doc['seed_demo_s']:.0f} s "
            f"| <= {doc['targets']['seed_demo_s']:.0f} s |",
            f"| one-off imports (torch, transformers) before the first Start | {doc['import_s']:.1f} s | |",
        ]
    ) + "\n"


if __name__ == "__main__":
    main()
