"""What watching costs: the default run's training rate with Chromium tabs open, against headless.

    python -m bench.bench_watching [--conditions headless,train-0,train-1,train-2,compare-1,headless]
                                   [--cap 300] [--from-step 10] [--to-step 100]

Measured the way a user meets it: the app is started with the README's command (`make run`), a
Chromium tab opens Setup and presses "Start training" on the default config (masked-LM, bundled
MiniLM, synthetic reviews), and then

- `train-0`: that tab leaves (about:blank), nobody watches;
- `train-1`: that tab stays on Train, watching the live charts;
- `train-2`: a second tab opens on Train for the same run;
- `compare-1`: that tab moves to Compare;

against `headless`: the same config through `python -m core train`. Put headless runs between
the dashboard conditions: each condition is compared with the mean of the headless runs next to
it (`ratio_to_neighbours`), because this machine's speed drifts by 20% over minutes, and with the
median of all headless runs (`ratio_to_headless`). `--repeats N` runs the whole list N times and
the summary gives each condition's median.

A condition may name environment variables for the app (and so for the training process it
starts), e.g. `train-2:OMP_WAIT_POLICY=PASSIVE`: the app is restarted whenever they change.

The rate of each condition is samples/s between the same two logged steps (--from-step to
--to-step), from the `time` stamps in the run's own metrics.jsonl, so model loading, the child
process start and the final save are left out for every condition alike. A condition that has
not reached --to-step after --cap seconds is measured to the step it reached and stopped.

Also reported per condition: the CPU the Streamlit server and the training process used (share of
one core over the window), and websocket frames and bytes each tab received per second (how often
fragments rerun and how large their messages are).

Writes bench/results/watching.json and bench/results/watching.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results
from bench.browser import REPO, VIEWPORT, app_env, chromium, start_app, stop_app, wait_idle

RESULTS = REPO / "bench" / "results"
DEFAULT_CONDITIONS = "headless,train-0,headless,train-1,headless,train-2,headless,compare-1,headless"
FINISHED = ("completed", "stopped", "failed", "interrupted", "cancelled")


# ---- reading a run folder -------------------------------------------------------------------

def _records(run: Path) -> list[dict[str, Any]]:
    from core.run.folder import read_jsonl

    return [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r and "event" not in r]


def _status(run: Path) -> str:
    from core.run.folder import RunFolder

    return str(RunFolder(run).status().get("status", ""))


def window_rate(run: Path, from_step: int, to_step: int, batch: int) -> dict[str, Any]:
    """Samples/s between the first logged step >= from_step and the last logged step <= to_step."""
    points = sorted((int(r["step"]), float(r["time"])) for r in _records(run) if "time" in r)
    start = next(((s, t) for s, t in points if s >= from_step), None)
    ends = [(s, t) for s, t in points if s <= to_step]
    if start is None or not ends or ends[-1][0] <= start[0]:
        return {"samples_per_s": None, "steps": None, "seconds": None}
    (s0, t0), (s1, t1) = start, ends[-1]
    return {"samples_per_s": round((s1 - s0) * batch / (t1 - t0), 3), "steps": [s0, s1], "seconds": round(t1 - t0, 2)}


# ---- processes ------------------------------------------------------------------------------

def _processes(app_proc: subprocess.Popen) -> dict[str, Any]:
    """The Streamlit server and the training child, found among the app's descendants."""
    import psutil

    found: dict[str, Any] = {}
    try:
        children = psutil.Process(app_proc.pid).children(recursive=True)
    except psutil.Error:
        return found
    for child in children:
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "streamlit" in cmd and "run" in cmd:
            found["server"] = child
        elif "core.service.child_process" in cmd:
            found["training"] = child
    return found


def _browser_cpu_seconds() -> float:
    """CPU seconds of every Chromium process so far (renderers, GPU, network), ended ones excluded."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if "chrom" in (process.info.get("name") or ""):
            seconds = _cpu_seconds(process)
            total += seconds or 0.0
    return total


def _cpu_seconds(process: Any) -> float | None:
    try:
        times = process.cpu_times()
        return times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
    except Exception:  # the process ended
        return None


# ---- the conditions -------------------------------------------------------------------------

def run_headless(work: Path, config: Path, index: int) -> tuple[Path, dict[str, Any]]:
    """The same config through the CLI; also its CPU share over the whole process (load included)."""
    import resource

    run = work / f"headless-{index}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "core", "train", "--config", str(config), "--output-dir", str(run)],
        cwd=REPO, env=app_env(work), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return run, {"training_cpu_share": round(used / (time.monotonic() - started), 3)}


class Tabs:
    """Chromium pages with websocket accounting."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.base_url = base_url
        self.frames = 0
        self.bytes = 0
        self.pump_page = None

    def open(self, path: str = ""):
        page = self.context.new_page()
        page.set_default_timeout(120_000)
        page.on("websocket", self._count)
        page.goto(f"{self.base_url}/{path}")
        wait_idle(page, 180_000)
        self.pump_page = self.pump_page or page
        return page

    def wait(self, seconds: float) -> None:
        """Sleep while Playwright delivers events (the sync API only does so inside its own calls)."""
        if self.pump_page is not None:
            self.pump_page.wait_for_timeout(seconds * 1000)
        else:
            time.sleep(seconds)

    def _count(self, ws) -> None:
        def received(payload) -> None:
            self.frames += 1
            self.bytes += len(payload) if payload else 0

        ws.on("framereceived", received)

    def close(self) -> None:
        self.context.close()


def start_from_setup(tabs: Tabs):
    """Setup's "Start training" on the default config; returns (page, run id)."""
    from core.present import text

    page = tabs.open("")
    start = page.get_by_role("button", name=text.START)
    start.wait_for(state="visible", timeout=240_000)  # Setup resolves the model and counts parameters first
    wait_idle(page, 180_000)
    start.click()
    page.wait_for_url("**/train?run=*", timeout=120_000)
    run_id = page.url.split("run=")[1].split("&")[0]
    return page, run_id


def stop_run(tabs: Tabs, run: Path, run_id: str) -> None:
    """Stop from a Train tab, as a user would; a run that ends meanwhile needs no Stop."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from core.present import text

    page = tabs.open(f"train?run={run_id}")
    try:
        page.get_by_role("button", name=text.STOP).click(timeout=30_000)
    except PlaywrightTimeout:
        if _status(run) not in FINISHED:
            raise


def run_dashboard(condition: str, browser, base_url: str, app_proc, runs: Path, args) -> dict[str, Any]:
    tabs = Tabs(browser, base_url)
    try:
        starter, run_id = start_from_setup(tabs)
        if condition == "train-0":
            starter.goto("about:blank")
        elif condition == "train-2":
            tabs.open(f"train?run={run_id}")
        elif condition == "compare-1":
            starter.goto(f"{base_url}/compare?run={run_id}")
        run = runs / run_id
        frames0, bytes0, t0 = tabs.frames, tabs.bytes, time.monotonic()
        procs = _processes(app_proc)
        cpu0 = {name: _cpu_seconds(p) for name, p in procs.items()}
        browser0 = _browser_cpu_seconds()
        deadline = time.monotonic() + args.cap
        reached = False
        while time.monotonic() < deadline:
            if _status(run) in FINISHED:
                break
            steps = [r["step"] for r in _records(run)]
            if steps and max(steps) >= args.to_step:
                reached = True
            if reached and not args.full_runs:
                break
            tabs.wait(1.0)
        tabs.wait(0.1)
        seconds = time.monotonic() - t0
        cpu = {"browser_cpu_share": round((_browser_cpu_seconds() - browser0) / seconds, 3)}
        for name, process in procs.items():
            end = _cpu_seconds(process)
            if end is not None and cpu0.get(name) is not None:
                cpu[f"{name}_cpu_share"] = round((end - cpu0[name]) / seconds, 3)
        watched = {
            "ws_frames_per_s": round((tabs.frames - frames0) / seconds, 2),
            "ws_kb_per_s": round((tabs.bytes - bytes0) / seconds / 1024, 1),
        }
        if _status(run) not in FINISHED:
            stop_run(tabs, run, run_id)
            _wait(lambda: _status(run) in FINISHED, 180)
        return {"run": run, "run_id": run_id, **cpu, **watched}
    finally:
        tabs.close()


def _wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


# ---- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", default=DEFAULT_CONDITIONS)
    parser.add_argument("--cap", type=float, default=300.0, help="seconds a dashboard condition may train")
    parser.add_argument("--from-step", type=int, default=10)
    parser.add_argument("--to-step", type=int, default=100)
    parser.add_argument("--full-runs", action="store_true", help="let each run finish instead of stopping at --to-step")
    parser.add_argument("--repeats", type=int, default=1, help="run the list of conditions this many times")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)

    from core.config import RunConfig

    cfg = RunConfig()
    work = Path(tempfile.mkdtemp(prefix="tuneboard-watching-"))
    config = work / "default.yaml"
    cfg.save(config)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()] * max(1, args.repeats)
    rows: list[dict[str, Any]] = []
    app_proc, app_env_now = None, None
    try:
        with chromium() as browser:
            for index, condition in enumerate(conditions):
                print(f"[watching] {condition} ...", flush=True)
                started = time.monotonic()
                kind, env = parse_condition(condition)
                if kind == "headless":
                    run, extra = run_headless(work, config, index)
                else:
                    if app_proc is not None and env != app_env_now:
                        stop_app(app_proc)
                        app_proc = None
                    if app_proc is None:
                        app_proc, base_url = start_app(work, work / f"app-{index}.log", env)
                        app_env_now = env
                    result = run_dashboard(kind, browser, base_url, app_proc, work / "runs", args)
                    run = result.pop("run")
                    extra = result
                rate = window_rate(run, args.from_step, args.to_step, cfg.training.batch_size)
                row = {"condition": condition, **rate, **extra, "status": _status(run),
                       "wall_s": round(time.monotonic() - started, 1)}
                print(f"[watching] {row}", flush=True)
                rows.append(row)
    finally:
        if app_proc is not None:
            stop_app(app_proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    headless = [r["samples_per_s"] for r in rows if r["condition"] == "headless" and r["samples_per_s"]]
    baseline = statistics.median(headless) if headless else None
    for row in rows:
        row["ratio_to_headless"] = round(row["samples_per_s"] / baseline, 3) if baseline and row["samples_per_s"] else None
    add_neighbour_ratios(rows)
    document = {
        "benchmark": "watching",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"task": cfg.task, "model": cfg.model.source, "rows": cfg.data.synthetic.rows,
                   "batch_size": cfg.training.batch_size, "epochs": cfg.training.epochs,
                   "window_steps": [args.from_step, args.to_step], "cap_s": args.cap},
        "headless_samples_per_s": baseline,
        "rows": rows,
        "summary": summarise(rows),
    }
    write_results(Path(args.out), "watching", document, _markdown(document))
    return document


def parse_condition(condition: str) -> tuple[str, dict[str, str]]:
    """'train-2:A=1:B=2' -> ('train-2', {'A': '1', 'B': '2'})."""
    kind, *assignments = condition.split(":")
    env = dict(a.split("=", 1) for a in assignments if "=" in a)
    return kind, env


def add_neighbour_ratios(rows: list[dict[str, Any]]) -> None:
    """Each dashboard row's rate over the mean of the nearest headless rates before and after it."""
    for index, row in enumerate(rows):
        if row["condition"] == "headless" or not row.get("samples_per_s"):
            continue
        before = next((r["samples_per_s"] for r in reversed(rows[:index])
                       if r["condition"] == "headless" and r.get("samples_per_s")), None)
        after = next((r["samples_per_s"] for r in rows[index + 1:]
                      if r["condition"] == "headless" and r.get("samples_per_s")), None)
        near = [v for v in (before, after) if v]
        row["ratio_to_neighbours"] = round(row["samples_per_s"] / statistics.mean(near), 3) if near else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per condition: how many runs, and the median of each ratio."""
    summary = []
    for condition in dict.fromkeys(r["condition"] for r in rows if r["condition"] != "headless"):
        mine = [r for r in rows if r["condition"] == condition]
        entry: dict[str, Any] = {"condition": condition, "runs": len(mine)}
        for key in ("ratio_to_neighbours", "ratio_to_headless", "browser_cpu_share"):
            values = [r[key] for r in mine if r.get(key) is not None]
            entry[key] = round(statistics.median(values), 3) if values else None
            entry[f"{key}_all"] = values
        summary.append(entry)
    return summary


def _markdown(doc: dict[str, Any]) -> str:
    def cell(value: Any, fmt: str = "{}") -> str:
        return "—" if value is None else fmt.format(value)

    lines = [
        "## Watching costs (real Chromium tabs)",
        "",
        f"`python -m bench.bench_watching` on {doc['machine']['cpus']} CPUs, {doc['date']}. The default run "
        f"(masked-LM, bundled MiniLM, {doc['config']['rows']} synthetic rows, batch {doc['config']['batch_size']}) "
        "started from Setup in Chromium, app started with `make run`. Rate = samples/s between the same logged "
        f"steps (~{doc['config']['window_steps'][0]}→{doc['config']['window_steps'][1]}). Headless CLI runs of the same config "
        "sit between the dashboard conditions; each condition's rate is divided by the mean of the headless runs just "
        "before and after it (this machine's speed drifts by 20% within minutes), and also by the median of all "
        "headless runs. CPU shares are of one core over the window.",
        "",
        "| condition | runs | ratio to neighbouring headless runs (median) | each run | ratio to all headless (median) | browser CPU |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for entry in doc.get("summary", []):
        each = ", ".join(f"{v:.2f}" for v in entry["ratio_to_neighbours_all"]) or "—"
        lines.append(
            f"| {entry['condition']} | {entry['runs']} | {cell(entry['ratio_to_neighbours'], '{:.2f}')} | {each} "
            f"| {cell(entry['ratio_to_headless'], '{:.2f}')} | {cell(entry['browser_cpu_share'], '{:.0%}')} |"
        )
    lines += [
        "",
        "Every run, in the order they ran:",
        "",
        "| condition | samples/s | ratio to neighbours | ratio to headless | steps | server CPU | training CPU | browser CPU | ws frames/s | ws KB/s |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in doc["rows"]:
        steps = "→".join(str(s) for s in row["steps"]) if row.get("steps") else "—"
        lines.append(
            f"| {row['condition']} | {cell(row['samples_per_s'], '{:.1f}')} | {cell(row.get('ratio_to_neighbours'), '{:.2f}')} "
            f"| {cell(row.get('ratio_to_headless'), '{:.2f}')} "
            f"| {steps} | {cell(row.get('server_cpu_share'), '{:.0%}')} | {cell(row.get('training_cpu_share'), '{:.0%}')} "
            f"| {cell(row.get('browser_cpu_share'), '{:.0%}')} "
            f"| {cell(row.get('ws_frames_per_s'))} | {cell(row.get('ws_kb_per_s'))} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
