"""Snapshot reads from Python threads: samples/s of a real run, alone vs polled by 4 threads at 20 Hz.

What it measures is the JobManager's read path (`snapshot()` and a chart's walk of the history)
sharing one GIL with training on the worker thread (`train_in_this_process`). It is not what a
browser tab costs: a real page also builds, serialises and sends figures, and Chromium renders
them on the same CPUs. That is `bench_watching`, measured with real tabs.

    python -m bench.bench_snapshot_threads [--repeats 3] [--steps 30] [--rows 600] [--batch 16] [--pairs 8]

Both conditions train the same config through the same JobManager worker thread; the only
difference is four threads calling `manager.snapshot(run_id)` 20 times a second each and reading
the metric history as a chart would. Two designs, both reported:

1. Whole runs: short runs (after one discarded warm-up) alternate headless / polled, `--repeats`
   of each; the ratio of each adjacent pair, then the median. Throughput comes from the run's own
   metric timeline (first to last logged training step), which leaves model loading, evaluation
   and saving out.
2. Interleaved windows: one longer run logs every step; the pollers switch on and off every few
   seconds, `--pairs` times each; each window's median step time is compared with its neighbour's.
   On a machine shared with other work, whole runs a minute apart can differ 2x in speed for
   reasons that have nothing to do with polling; windows seconds apart cancel that drift, so this
   is the headline figure.

Writes bench/results/snapshot_threads.json and bench/results/snapshot_threads.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results
from core.config import RunConfig
from core.run.folder import RunFolder
from core.service.jobs import JobManager, train_in_this_process

RESULTS = Path(__file__).resolve().parent / "results"
POLLERS = 4
POLL_HZ = 20.0


def bench_config(steps: int, rows: int, batch: int) -> RunConfig:
    """A short MLM fine-tune of the bundled MiniLM on synthetic reviews."""
    cfg = RunConfig(task="mlm", name="bench-polling")
    cfg.data.synthetic.rows = rows
    cfg.training.max_steps = steps
    cfg.training.batch_size = batch
    cfg.training.logging_steps = 5
    cfg.training.eval_steps = 10 * steps   # no evaluation inside the measured window
    cfg.training.save_steps = 10 * steps   # no checkpoint inside it either
    cfg.training.seed = 0
    return cfg.validate()


def interleaved_config(rows: int, batch: int) -> RunConfig:
    """Same model and data, logging every step and running until stopped."""
    cfg = bench_config(100_000, rows, batch)
    cfg.training.logging_steps = 1
    return cfg.validate()


class Pollers:
    """Threads that poll a run's snapshot like dashboard tabs do, and time each call."""

    def __init__(self, manager: JobManager, run_id: str, count: int = POLLERS, hz: float = POLL_HZ):
        self.manager, self.run_id, self.period = manager, run_id, 1.0 / hz
        self.done = threading.Event()
        self.latencies: list[float] = []
        self.cpu_s = 0.0  # CPU time the poller threads used, summed
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._poll, daemon=True) for _ in range(count)]

    def __enter__(self) -> Pollers:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()
        self.seconds = time.monotonic() - self.started

    def _poll(self) -> None:
        latencies = []
        cpu_start = time.thread_time()
        next_at = time.monotonic()
        while not self.done.is_set():
            t0 = time.perf_counter()
            try:
                snap = self.manager.snapshot(self.run_id)
                # What a chart does with it: pull the loss series out of the metric history.
                _ = [(m["step"], m.get("loss")) for m in snap.metrics if "loss" in m]
                _ = (snap.progress, snap.eta_s, snap.samples_per_s, snap.log_tail[-5:])
            except Exception as err:  # reported, not raised: the run must go on
                self.errors.append(f"{type(err).__name__}: {err}")
            latencies.append(time.perf_counter() - t0)
            next_at += self.period
            self.done.wait(max(0.0, next_at - time.monotonic()))
        with self._lock:
            self.latencies.extend(latencies)
            self.cpu_s += time.thread_time() - cpu_start


def measure(folder: RunFolder, samples_per_step: int) -> dict[str, Any]:
    """Training throughput from the logged steps' timestamps (first to last training record)."""
    train = [m for m in folder.metrics() if "loss" in m and "time" in m]
    if len(train) < 2:
        raise RuntimeError(f"Run {folder.run_id} logged too few training steps to measure: {len(train)}.")
    first, last = train[0], train[-1]
    steps = int(last["step"]) - int(first["step"])
    seconds = float(last["time"]) - float(first["time"])
    status = folder.status()
    return {
        "run_id": folder.run_id,
        "status": status.get("status"),
        "measured_steps": steps,
        "measured_s": round(seconds, 3),
        "samples_per_s": round(steps * samples_per_step / seconds, 3),
        "trainer_samples_per_s": status.get("samples_per_s"),
    }


def run_once(manager: JobManager, cfg: RunConfig, polled: bool, timeout_s: float) -> dict[str, Any]:
    """Train one run to the end (optionally under pollers) and return its throughput."""
    load_before = _loadavg()
    run_id = manager.submit(cfg)
    pollers = Pollers(manager, run_id) if polled else None
    deadline = time.monotonic() + timeout_s
    if pollers is not None:
        pollers.__enter__()
    try:
        while manager.is_busy(run_id):
            if time.monotonic() > deadline:
                manager.stop(run_id)
                raise RuntimeError(f"Run {run_id} took longer than {timeout_s:.0f} s.")
            time.sleep(0.2)
    finally:
        if pollers is not None:
            pollers.__exit__(None, None, None)
    snap = manager.snapshot(run_id)
    if snap.status != "completed":
        raise RuntimeError(f"Benchmark run {run_id} ended {snap.status}: {snap.error}")
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    result = measure(RunFolder(manager.runs_root / run_id), samples_per_step)
    result["condition"] = "polled" if polled else "headless"
    # Other processes on a shared machine move these numbers far more than polling does: keep the
    # 1-minute load average next to each run so a noisy pair can be recognised.
    result["loadavg_1m_before_after"] = [load_before, _loadavg()]
    if pollers is not None:
        lat = sorted(pollers.latencies)
        result["polls"] = len(lat)
        result["poll_hz_achieved"] = round(len(lat) / pollers.seconds, 1)
        result["poll_latency_us_median"] = round(statistics.median(lat) * 1e6, 1) if lat else None
        result["poll_latency_us_p99"] = round(lat[int(0.99 * (len(lat) - 1))] * 1e6, 1) if lat else None
        result["poll_errors"] = pollers.errors[:5]
    return result


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def run_interleaved(manager: JobManager, cfg: RunConfig, pairs: int, timeout_s: float) -> dict[str, Any]:
    """One run; pollers toggle on/off in windows; paired ratios of median step times."""
    run_id = manager.submit(cfg)
    folder = RunFolder(manager.runs_root / run_id)
    deadline = time.monotonic() + timeout_s

    def train_times() -> list[tuple[int, float]]:
        return [(int(m["step"]), float(m["time"])) for m in folder.metrics() if "loss" in m and "time" in m]

    try:
        # Warm up and size the windows: at least 4 s and about 6 steps each.
        while len(train_times()) < 6:
            if time.monotonic() > deadline or manager.snapshot(run_id).status not in ("queued", "running"):
                raise RuntimeError(f"Interleaved run {run_id} did not start training: {manager.snapshot(run_id).error}")
            time.sleep(0.2)
        warm = train_times()
        step_s = statistics.median(b[1] - a[1] for a, b in zip(warm[1:], warm[2:], strict=False))
        window_s = max(4.0, 6 * step_s)
        windows: list[tuple[str, float, float]] = []
        latencies: list[float] = []
        poller_cpu_s = polled_wall_s = 0.0
        for pair in range(pairs):
            for polled in (False, True) if pair % 2 == 0 else (True, False):
                if time.monotonic() + window_s > deadline:
                    raise RuntimeError(f"Interleaved run {run_id} ran past {timeout_s:.0f} s.")
                start = time.time()
                if polled:
                    with Pollers(manager, run_id) as pollers:
                        time.sleep(window_s)
                    latencies += pollers.latencies
                    poller_cpu_s += pollers.cpu_s
                    polled_wall_s += pollers.seconds
                else:
                    time.sleep(window_s)
                windows.append(("polled" if polled else "headless", start, time.time()))
    finally:
        manager.stop(run_id)
        while manager.is_busy(run_id):
            time.sleep(0.2)

    records = train_times()
    durations = [(b[1], b[1] - a[1]) for a, b in zip(records, records[1:], strict=False) if b[0] == a[0] + 1]
    per_window = []
    for condition, start, end in windows:
        # A step belongs to the window when it started and ended inside it.
        inside = [d for t, d in durations if start <= t - d and t <= end]
        per_window.append((condition, statistics.median(inside) if inside else None, len(inside)))
    ratios = []
    for i in range(0, len(per_window) - 1, 2):
        a, b = per_window[i], per_window[i + 1]
        times = {a[0]: a[1], b[0]: b[1]}
        if times.get("headless") and times.get("polled"):
            ratios.append(times["headless"] / times["polled"])  # samples/s ratio polled / headless
    if not ratios:
        raise RuntimeError("No window held a complete training step: raise --pairs or lower --batch.")
    lat = sorted(latencies)
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    headless_s = [w[1] for w in per_window if w[0] == "headless" and w[1]]
    polled_s = [w[1] for w in per_window if w[0] == "polled" and w[1]]
    return {
        "run_id": run_id,
        "window_s": round(window_s, 2),
        "windows": [
            {"condition": c, "median_step_s": round(m, 4) if m else None, "steps": n} for c, m, n in per_window
        ],
        "ratios_polled_over_headless": [round(r, 4) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 4),
        "headless_samples_per_s_median": round(samples_per_step / statistics.median(headless_s), 3),
        "polled_samples_per_s_median": round(samples_per_step / statistics.median(polled_s), 3),
        "poll_latency_us_median": round(statistics.median(lat) * 1e6, 1) if lat else None,
        "poll_latency_us_p99": round(lat[int(0.99 * (len(lat) - 1))] * 1e6, 1) if lat else None,
        # Pollers are pure Python: while they run they hold the GIL and a core. Their CPU share is
        # therefore the most they can take from training, measured without the window-to-window noise.
        "poller_cpu_percent_of_one_core": round(100 * poller_cpu_s / polled_wall_s, 3) if polled_wall_s else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write snapshot_threads.json / snapshot_threads.md; returns the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="whole runs per condition (alternating)")
    parser.add_argument("--steps", type=int, default=30, help="max steps of each whole run")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=8, help="on/off window pairs in the interleaved run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from core import devices

    cfg = bench_config(args.steps, args.rows, args.batch)
    root = Path(tempfile.mkdtemp(prefix="tuneboard-bench-snapshots-"))
    manager = JobManager(root, train_fn=train_in_this_process)  # one GIL: what this bench is about
    runs: list[dict[str, Any]] = []
    try:
        print("warm-up run (discarded)...", flush=True)
        run_once(manager, cfg, polled=False, timeout_s=args.timeout)
        print("whole runs:", flush=True)
        for repeat in range(args.repeats):
            for polled in (False, True) if repeat % 2 == 0 else (True, False):
                result = run_once(manager, cfg, polled, args.timeout)
                result["repeat"] = repeat
                runs.append(result)
                print(f"  {result['condition']:8s} {result['samples_per_s']:8.2f} samples/s", flush=True)
        print("interleaved windows in one run...", flush=True)
        interleaved = run_interleaved(manager, interleaved_config(args.rows, args.batch), args.pairs, args.timeout)
        print(f"  window ratios: {interleaved['ratios_polled_over_headless']}", flush=True)
    finally:
        manager.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    pair_ratios = [
        next(r for r in runs if r["repeat"] == i and r["condition"] == "polled")["samples_per_s"]
        / next(r for r in runs if r["repeat"] == i and r["condition"] == "headless")["samples_per_s"]
        for i in range(args.repeats)
    ]
    polled_runs = [r for r in runs if r["condition"] == "polled"]
    median_ratio = interleaved["median_ratio"]
    document = {
        "benchmark": "snapshot_threads",
        "question": "How much training throughput do 4 Python threads reading snapshots at 20 Hz cost, under one GIL?",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "device": devices.describe_device(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "config": {"task": cfg.task, "model": cfg.model.source, "rows": args.rows, "max_steps": args.steps,
                   "batch_size": args.batch, "pollers": POLLERS, "poll_hz": POLL_HZ, "repeats": args.repeats,
                   "pairs": args.pairs},
        "median_ratio": median_ratio,
        "overhead_percent": round((1 - median_ratio) * 100, 2),
        "headline": "interleaved",
        "interleaved": interleaved,
        "whole_runs": {
            "headless_samples_per_s_median": round(statistics.median(
                r["samples_per_s"] for r in runs if r["condition"] == "headless"), 3),
            "polled_samples_per_s_median": round(statistics.median(r["samples_per_s"] for r in polled_runs), 3),
            "ratios_polled_over_headless": [round(r, 4) for r in pair_ratios],
            "median_ratio": round(statistics.median(pair_ratios), 4),
            "poll_latency_us_median": statistics.median(r["poll_latency_us_median"] for r in polled_runs),
            "poll_latency_us_p99_max": max(r["poll_latency_us_p99"] for r in polled_runs),
            "poll_hz_achieved_median": statistics.median(r["poll_hz_achieved"] for r in polled_runs),
            "runs": runs,
        },
    }
    write_results(args.out, "snapshot_threads", document, _markdown(document))
    print(f"median ratio polled/headless (interleaved): {median_ratio:.3f} "
          f"({document['overhead_percent']:+.1f}% overhead); whole runs: "
          f"{document['whole_runs']['median_ratio']:.3f}")
    print(f"wrote {args.out / 'snapshot_threads.json'} and {args.out / 'snapshot_threads.md'}")
    return document


def _markdown(doc: dict[str, Any]) -> str:
    c, m, w, iv = doc["config"], doc["machine"], doc["whole_runs"], doc["interleaved"]
    lines = [
        "# Snapshot reads from Python threads (not a browser)",
        "",
        f"{doc['question']} The same training through the same JobManager worker, headless vs with "
        f"{c['pollers']} threads calling `snapshot()` at {c['poll_hz']:.0f} Hz each and reading the metric "
        "history as a chart does.",
        "",
        f"Machine: {m['device']}, {m['cpus']} CPUs, Python {m['python']}. Model: {c['model']} ({c['task']}), "
        f"{c['rows']} synthetic rows, batch {c['batch_size']}. Measured {doc['date']}.",
        "",
        f"**Result: polled / headless = {doc['median_ratio']:.3f} "
        f"({doc['overhead_percent']:+.1f}% overhead)**, the median over {len(iv['ratios_polled_over_headless'])} "
        f"adjacent on/off window pairs of {iv['window_s']:.1f} s in one run.",
        "",
        "## Interleaved windows (headline)",
        "",
        "One run logging every step; the pollers switch on and off every window. A window's figure is its "
        "median step time; each pair compares neighbours seconds apart, so load from other processes "
        "cancels out.",
        "",
        "| pair | polled / headless |",
        "|---:|---:|",
        *[f"| {i + 1} | {r:.3f} |" for i, r in enumerate(iv["ratios_polled_over_headless"])],
        f"| **median** | **{iv['median_ratio']:.3f}** |",
        "",
        f"Median samples/s: headless {iv['headless_samples_per_s_median']:.2f}, polled "
        f"{iv['polled_samples_per_s_median']:.2f}. A `snapshot()` call took {iv['poll_latency_us_median']:.0f} µs "
        f"at the median (p99 {iv['poll_latency_us_p99']:.0f} µs).",
        "",
        f"Upper bound without the noise: the poller threads used **{iv['poller_cpu_percent_of_one_core']:.2f}% "
        "of one core** (thread CPU time over the polled windows). They are pure Python, so that is also the "
        "share of time they hold the GIL: the most 4 polling tabs can take from training.",
        "",
        "## Whole runs",
        "",
        f"{c['repeats']} runs of {c['max_steps']} steps per condition, alternating, after a discarded warm-up; "
        "throughput from each run's logged step timestamps (loading, evaluation and saving excluded).",
        "",
        "| run | condition | samples/s | 1-min load before → after |",
        "|---:|---|---:|---|",
        *[
            f"| {i + 1} | {r['condition']} | {r['samples_per_s']:.2f} | "
            f"{r['loadavg_1m_before_after'][0]} → {r['loadavg_1m_before_after'][1]} |"
            for i, r in enumerate(w["runs"])
        ],
        "",
        "| pair | polled / headless |",
        "|---:|---:|",
        *[f"| {i + 1} | {r:.3f} |" for i, r in enumerate(w["ratios_polled_over_headless"])],
        f"| **median** | **{w['median_ratio']:.3f}** |",
        "",
        f"The machine has {m['cpus']} CPUs; where the load is above that, other processes competed for them "
        "during the run, and whole runs a minute apart then differ by far more than polling could explain. "
        "That is why the interleaved figure is the headline.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
