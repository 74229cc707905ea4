"""What a user waits for: submit -> first loss point on the chart, the default seed demo, the Nike demo.

All go through JobManager, as the dashboard's Start button does, on CPU: the first two with the
bundled MiniLM, the third is the `nike` preset ("Load the Nike demo", SmolLM2-135M; core.plan.presets),
whose promise is Start -> completed within 3 minutes on a 2-core CPU (bench_presets measures the
same preset headless, with its probe lean). The first loss point is timed both ways, interleaved:
with the standby training process the pages keep ready (its imports done, as after a page was
drawn; core.service.child_process) and with a fresh child per run (TUNEBOARD_STANDBY=0). The demos run as
the dashboard does, with the standby. Writes bench/results/latency.json and latency.md.
Run: python -m bench.bench_latency [--parts first demo nike] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import write_results

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"first_point_s": 15.0, "seed_demo_s": 180.0, "nike_s": 180.0}
PARTS = ("first", "demo", "nike")


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
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which waits to measure; the results keep the other parts' last figures")
    parser.add_argument("--repeats", type=int, default=2, help="first loss point: runs per condition")
    args = parser.parse_args(argv)

    # Imports are part of what a fresh app pays once; time them separately from a warm Start.
    import_started = time.perf_counter()
    from core.config import RunConfig
    from core.service.jobs import JobManager
    from core.training import engine  # noqa: F401  (torch, transformers)

    import_s = time.perf_counter() - import_started
    document = _previous(args.out)
    document.update({"benchmark": "latency", "device": "cpu", "import_s": round(import_s, 2), "targets": TARGETS})
    from core.service import child_process

    manager = JobManager(Path(tempfile.mkdtemp(prefix="tuneboard-latency-")))
    try:
        manager.keep_training_process_ready()  # as the pages ask: from now on one waits whenever idle
        if "first" in args.parts:
            first_cfg = RunConfig()
            first_cfg.training.max_steps = 3
            times: dict[str, list[float]] = {"standby": [], "fresh": []}
            for repeat in range(args.repeats):
                for condition in ("standby", "fresh") if repeat % 2 == 0 else ("fresh", "standby"):
                    _standby_ready()  # never a standby importing during a timed run
                    if condition == "fresh":
                        child_process.discard_standby()  # Start then spawns a new child, as with TUNEBOARD_STANDBY=0
                    run_id = manager.submit(first_cfg)
                    times[condition].append(_wait(manager, run_id, lambda s: any("loss" in m for m in s.metrics), 120))
                    _wait(manager, run_id, lambda s: not s.is_active, 300)
                    log = list(manager.snapshot(run_id).log_tail)[:12]
            document.update({"model": "bundled MiniLM-L6",
                             "first_point_s": round(statistics.median(times["standby"]), 2),
                             "first_point_fresh_child_s": round(statistics.median(times["fresh"]), 2),
                             "first_point_runs": times, "first_run_log": log})
        if "demo" in args.parts:
            _standby_ready()
            demo_id = manager.submit(RunConfig())  # the dashboard's defaults: the seed demo
            demo_s = _wait(manager, demo_id, lambda s: not s.is_active, 900)
            demo = manager.snapshot(demo_id)
            document.update({"seed_demo_s": round(demo_s, 1), "seed_demo_steps": demo.step,
                             "seed_demo_status": demo.status,
                             "seed_demo_final_metrics": dict(demo.info.get("final_metrics") or {})})
        if "nike" in args.parts:
            _standby_ready()
            document["nike"] = _nike(manager)
    finally:
        manager.shutdown()
    write_results(args.out, "latency", document, _markdown(document))
    print(_markdown(document))
    return document


def _standby_ready(timeout_s: float = 180.0) -> None:
    """Wait for the standby's imports; after a run, the manager starts the next one as its worker ends."""
    from core.service import child_process

    deadline = time.perf_counter() + timeout_s
    while child_process.standby_pid() is None and time.perf_counter() < deadline:
        time.sleep(0.05)
    if not child_process.wait_for_standby(max(0.0, deadline - time.perf_counter())):
        raise RuntimeError(f"no standby training process finished its imports in {timeout_s:.0f} s")


def _previous(out: Path) -> dict[str, Any]:
    """The last results, so a run of some parts keeps the figures of the others."""
    import json

    try:
        return json.loads((out / "latency.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _nike(manager) -> dict[str, Any]:
    """The `nike` preset through JobManager: submit -> completed, with the probes' lean (core.plan.presets)."""
    import json

    from core.models import gguf
    from core.plan.presets import preset_config, probe_lean

    cfg = preset_config("nike")
    first_use = not gguf.is_converted(gguf.converted_folder(gguf.SMOLLM2), gguf.gguf_file(gguf.SMOLLM2))
    load_before = os.getloadavg()[0]
    run_id = manager.submit(cfg)
    wall_s = _wait(manager, run_id, lambda s: not s.is_active, 900)
    snap = manager.snapshot(run_id)
    folder = manager.runs_root / run_id
    records = [json.loads(line) for line in (folder / "probes.jsonl").read_text(encoding="utf-8").splitlines() if line]
    base, final = probe_lean(records, "base"), probe_lean(records, "final")
    return {
        "model": cfg.model.source, "steps": snap.step, "status": snap.status, "wall_s": round(wall_s, 1),
        "first_use_conversion": first_use, "load_average_before": round(load_before, 2),
        "within_target": snap.status == "completed" and wall_s <= TARGETS["nike_s"],
        "final_positive": round(final["positive"], 4), "final_negative": round(final["negative"], 4),
        "base_positive": round(base["positive"], 4),
    }


def _markdown(doc: dict[str, Any]) -> str:
    targets = doc["targets"]
    lines = [
        "### Latency (CPU, through JobManager as the Start button does)",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
    ]
    if "first_point_s" in doc:
        lines.append(f"| submit -> first loss point (bundled MiniLM), standby training process | "
                     f"{doc['first_point_s']:.1f} s | <= {targets['first_point_s']:.0f} s |")
    if "first_point_fresh_child_s" in doc:
        lines.append(f"| submit -> first loss point (bundled MiniLM), fresh child process (TUNEBOARD_STANDBY=0) | "
                     f"{doc['first_point_fresh_child_s']:.1f} s | <= {targets['first_point_s']:.0f} s |")
    if "seed_demo_s" in doc:
        lines.append(f"| default seed demo, submit -> completed ({doc['seed_demo_steps']} steps) "
                     f"| {doc['seed_demo_s']:.0f} s | <= {targets['seed_demo_s']:.0f} s |")
    nike = doc.get("nike")
    if nike:
        first = ", first use: converts the GGUF" if nike["first_use_conversion"] else ""
        lines.append(f"| Nike demo (`nike` preset, SmolLM2-135M), submit -> {nike['status']} ({nike['steps']} steps, "
                     f"load {nike['load_average_before']}{first}) | {nike['wall_s']:.0f} s "
                     f"| <= {targets['nike_s']:.0f} s |")
    lines.append(f"| one-off imports (torch, transformers) before the first Start | {doc['import_s']:.1f} s | |")
    if nike:
        lines += ["", f"Nike demo probes: positive {nike['final_positive']:.3f} vs negative "
                  f"{nike['final_negative']:.3f} after fine-tuning (base model: positive {nike['base_positive']:.3f})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
