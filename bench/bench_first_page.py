"""A first page that is there at once, and pages that answer while a fine-tune runs (real Chromium).

    python -m bench.bench_first_page [--repeats 3] [--rounds 2] [--skip-during-run]

First visit: the app is started with the README's command (`make run`, bench/browser.start_app)
on a fresh server; Chromium opens Setup (`goto`), and the clock runs from `goto` to
  - the Task radio visible (interactive; target <= 3 s),
  - the Summary's total parameter count showing a number (target <= 8 s).
Each repeat starts a new server, so every visit is the first of its process (no Streamlit cache,
nothing imported but what the app imports itself).

During a run: on one more fresh server, Setup's Start launches the default run (masked-LM, MiniLM,
synthetic reviews; 3 epochs so it outlasts the measurements, as bench_watching starts it). While
it trains, the same tab clicks each page in the sidebar in turn and the clock runs from the click
to the page's title shown and to its script run finished (every element drawn). Target: about
1 s. The first visit also records when the app's frame (the sidebar) appears: what the browser and
Streamlit's own start cost before any of the page's script shows. The run's status at each click is recorded, so a page measured after the run ended says so.

Writes bench/results/first_page.json and first_page.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_results
from bench.browser import REPO, VIEWPORT, chromium, start_app, stop_app, wait_idle

RESULTS = REPO / "bench" / "results"
TARGETS = {"interactive_s": 3.0, "params_s": 8.0, "page_s": 1.0}
RUN_EPOCHS = 3

# The task radio, found by its label.
RADIO_JS = """(label) => [...document.querySelectorAll('[data-testid="stRadio"]')].some(
    r => r.offsetParent !== null && (r.querySelector('[data-testid="stWidgetLabel"]')?.textContent || '').trim() === label)"""
# The Summary's metric named `label` shows a value with a digit in it ('22.7M'; '—' while unknown).
METRIC_JS = """(label) => [...document.querySelectorAll('[data-testid="stMetric"]')].some(m =>
    (m.querySelector('[data-testid="stMetricLabel"]')?.textContent || '').trim() === label
    && /\\d/.test(m.querySelector('[data-testid="stMetricValue"]')?.textContent || ''))"""
# A page's title (st.title: an h1) with exactly this text.
TITLE_JS = """(title) => [...document.querySelectorAll('h1')].some(h => h.textContent.trim() === title)"""
FRAME_JS = """() => !!document.querySelector('[data-testid="stSidebar"]')"""
IDLE_JS = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'"""


def _pages() -> list[tuple[str, str]]:
    """(navigation label, page title) of every page, in the sidebar's order."""
    from core.present import text

    return [
        (text.PAGE_DATA, text.DATA_TITLE),
        (text.PAGE_TRAIN, text.TRAIN_TITLE),
        (text.PAGE_COMPARE, text.COMPARE_TITLE),
        (text.PAGE_EVALUATE, text.EVALUATE_TITLE),
        (text.PAGE_RUNS, text.RUNS_TITLE),
        (text.PAGE_STRATEGIES, text.SWEEP_TITLE),
        (text.PAGE_SETUP, text.SETUP_TITLE),
    ]


def first_visit(browser, work: Path, index: int) -> dict[str, Any]:
    """One fresh server, one Chromium `goto` Setup: seconds to the radio and to the parameter count."""
    from core.present import text

    state = work / f"first-{index}"
    proc, url = start_app(state, state / "app.log")
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function(FRAME_JS, timeout=120_000, polling=50)
        frame = time.perf_counter() - started
        page.wait_for_function(RADIO_JS, arg=text.TASK_LABEL, timeout=120_000, polling=50)
        interactive = time.perf_counter() - started
        page.wait_for_function(METRIC_JS, arg=text.PARAMS_TOTAL, timeout=120_000, polling=50)
        params = time.perf_counter() - started
        return {"frame_s": round(frame, 2), "interactive_s": round(interactive, 2), "params_s": round(params, 2),
                "load_average_before": round(load_before, 2)}
    finally:
        context.close()
        stop_app(proc)


def during_run(browser, work: Path, rounds: int) -> dict[str, Any]:
    """Every page clicked in the sidebar while the default run trains: seconds to its title and to idle."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from core.present import text
    from core.run.folder import RunFolder

    state = work / "during-run"
    proc, url = start_app(state, state / "app.log")
    context = browser.new_context(viewport=VIEWPORT)
    rows: list[dict[str, Any]] = []
    run_id = None
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        start = page.get_by_role("button", name=text.START)
        start.wait_for(state="visible", timeout=180_000)
        epochs = page.get_by_role("spinbutton", name=text.EPOCHS, exact=True)
        epochs.fill(str(RUN_EPOCHS))
        epochs.press("Enter")
        wait_idle(page, 120_000)
        start.click()
        page.wait_for_url("**/train?run=*", timeout=120_000)
        run_id = page.url.split("run=")[1].split("&")[0]
        folder = RunFolder(state / "runs" / run_id)
        _wait_for(lambda: any("loss" in m for m in folder.metrics()), 180)  # training, not loading
        wait_idle(page, 120_000)
        nav = page.locator('[data-testid="stSidebarNav"]')
        for round_index in range(rounds):
            for label, title in _pages():
                status = str(folder.status().get("status", ""))
                link = nav.get_by_role("link", name=label, exact=True)
                started = time.perf_counter()
                link.click()
                try:
                    page.wait_for_function(TITLE_JS, arg=title, timeout=60_000, polling=20)
                    title_s = time.perf_counter() - started
                    page.wait_for_timeout(50)  # the rerun's state reaches the DOM before idle is read
                    page.wait_for_function(IDLE_JS, timeout=60_000, polling=20)
                    idle_s = time.perf_counter() - started
                except PlaywrightTimeout:
                    title_s = idle_s = None
                rows.append({"round": round_index, "page": label, "run_status": status,
                             "title_s": None if title_s is None else round(title_s, 2),
                             "drawn_s": None if idle_s is None else round(idle_s, 2)})
                print(f"[first_page] during run: {rows[-1]}", flush=True)
                wait_idle(page, 60_000)
        final_status = str(folder.status().get("status", ""))
        if final_status in ("running", "queued"):
            page.goto(f"{url}/train?run={run_id}")
            page.get_by_role("button", name=text.STOP).click(timeout=60_000)
            _wait_for(lambda: str(folder.status().get("status", "")) not in ("running", "queued"), 180)
        return {"run_id": run_id, "epochs": RUN_EPOCHS, "rows": rows}
    finally:
        context.close()
        stop_app(proc)


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both parts; write first_page.json / first_page.md; returns the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers for the first visit")
    parser.add_argument("--rounds", type=int, default=2, help="passes over every page during the run")
    parser.add_argument("--skip-during-run", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tuneboard-first-page-"))
    try:
        with chromium() as browser:
            visits = []
            for index in range(args.repeats):
                visits.append(first_visit(browser, work, index))
                print(f"[first_page] first visit #{index}: {visits[-1]}", flush=True)
            during = earlier_during_run(args.out) if args.skip_during_run else during_run(browser, work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    document = {
        "benchmark": "first_page",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "targets": TARGETS,
        "first_visits": visits,
        "median_interactive_s": statistics.median(v["interactive_s"] for v in visits),
        "median_params_s": statistics.median(v["params_s"] for v in visits),
        "during_run": during,
    }
    write_results(args.out, "first_page", document, _markdown(document))
    print(_markdown(document))
    return document


def earlier_during_run(out: Path) -> dict[str, Any] | None:
    """The pages-during-a-run figures of the last full run, kept with their date when only first visits are
    measured again (bench.guards --run), so the results and BENCHMARKS.md keep both parts."""
    import json

    try:
        earlier = json.loads((out / "first_page.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    during = earlier.get("during_run")
    if not during:
        return None
    return {**during, "date": during.get("date") or earlier.get("date")}


def _markdown(doc: dict[str, Any]) -> str:
    targets = doc["targets"]
    visits = doc["first_visits"]
    lines = [
        "## The first page, and pages during a run (Chromium)",
        "",
        f"`python -m bench.bench_first_page` on {doc['machine']['cpus']} CPUs, {doc['date']}. Each first visit "
        "is a fresh server started with `make run` and a Chromium `goto` of Setup; seconds from `goto`.",
        "",
        "| first visit | app frame (sidebar) drawn | Task radio visible | Summary shows the parameter count "
        "| load avg before |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| #{i + 1} | {v['frame_s']:.2f} s | {v['interactive_s']:.2f} s | {v['params_s']:.2f} s "
              f"| {v['load_average_before']} |" for i, v in enumerate(visits)]
    lines += [f"| **median** (target) | {statistics.median(v['frame_s'] for v in visits):.2f} s "
              f"| **{doc['median_interactive_s']:.2f} s** (<= {targets['interactive_s']:.0f} s) "
              f"| **{doc['median_params_s']:.2f} s** (<= {targets['params_s']:.0f} s) | |"]
    during = doc.get("during_run")
    if during:
        lines += [
            "",
            (f"Measured on {during['date']}. " if during.get("date") else "") +
            f"While the default run trains ({during['epochs']} epochs, started from Setup), the same tab clicks each "
            f"page in the sidebar; seconds from the click to the page's title, and to its script run finished "
            f"(target about {targets['page_s']:.0f} s).",
            "",
            "| page | run status | title shown | page drawn |",
            "|---|---|---:|---:|",
        ]
        for row in during["rows"]:
            title = "timeout" if row["title_s"] is None else f"{row['title_s']:.2f} s"
            drawn = "timeout" if row["drawn_s"] is None else f"{row['drawn_s']:.2f} s"
            lines.append(f"| {row['page']} (pass {row['round'] + 1}) | {row['run_status']} | {title} | {drawn} |")
        drawn = [r["drawn_s"] for r in during["rows"] if r["drawn_s"] is not None]
        if drawn:
            lines += ["", f"Page drawn: median {statistics.median(drawn):.2f} s, slowest {max(drawn):.2f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
