"""The real-browser end-to-end test: click through a fine-tune in headless Chromium.

Starts the app with the README's command (`make run`) on a free port, then drives Debian's
Chromium through Playwright like a user would: Setup (bundled MiniLM, synthetic reviews, masked
LM, a short run set through the widgets) -> Start -> Train (the loss chart gains points while
the run trains) -> Compare while it trains (no live fragment there, so the browser leaves the CPU
to the run until status.json says it ended) -> Train (completed, every step) -> Compare (base and
fine-tuned columns for a probe) -> Runs (the run is listed). Every page is checked for raw output
(tracebacks, `None`, dict reprs). Screenshots of each stage go to test-artifacts/e2e/, with the
app's log and the run's small files.

The Nike demo's Compare screenshot is also the README's docs/screenshot.png: it is written there when that
file is missing or when TUNEBOARD_UPDATE_SCREENSHOT=1, so an ordinary test run leaves the tracked
file alone.

Never downloads a browser: it skips when /usr/bin/chromium is missing (`make browser-deps`
installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench import browser
from bench.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from core.present import text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
DOCS_SCREENSHOT = REPO / "docs" / "screenshot.png"

TRAIN_TIMEOUT_S = 300  # a bound: the run takes ~40 s on an idle 2-core CPU, ~4 min on a busy one
UI_TIMEOUT_MS = 60_000

# A short run, set through the Setup widgets. New points reach the Train page's charts every few
# seconds, not every step: SLOW_STEPS makes sure the run lasts long enough to see that happen.
RUN_NAME = "e2e-browser"
ROWS = 400
MAX_STEPS = 60
BATCH_SIZE = 8
LOG_EVERY = 2
EVAL_EVERY = 30
SAVE_EVERY = 30
PROBE = "Nike shoes are very [MASK]"
# Each training step sleeps this long (tests/child_hooks/sitecustomize.py, loaded by the training
# child through PYTHONPATH), so that on any machine the run outlasts the Train page's chart
# throttle and the charts are seen to redraw while it trains.
SLOW_STEPS = {
    "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "child_hooks"), str(REPO)]),
    "TUNEBOARD_TEST_STEP_DELAY_S": "0.25",
}
RUN_FILES = ("config.yaml", "status.json", "run.log", "metrics.jsonl", "probes.jsonl")

# Trace names and point counts of every plotly chart on the page (Plotly keeps `data` on its div).
PLOT_TRACES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => (el.data || []).map(t => [t.name || '', (t.x || []).length]))"""


# ---- the app -------------------------------------------------------------------------------

@pytest.fixture
def app_url(tmp_path) -> Iterator[str]:
    """The app started with the README's command, in its own process group; killed afterwards."""
    if shutil.which("make") is None:
        pytest.skip("`make` is not installed; the browser test starts the app with `make run`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("*.png"):  # pictures of an earlier run would pass for this one's
        stale.unlink()
    try:
        proc, url = browser.start_app(tmp_path, ARTIFACTS / "app.log", extra_env=SLOW_STEPS)
    except browser.AppError as err:
        pytest.fail(str(err))
    try:
        yield url
    finally:
        browser.stop_app(proc)
        _keep_run_files(tmp_path / "runs", ARTIFACTS / "runs")


def _keep_run_files(runs: Path, dest: Path) -> None:
    """Copy each run's small files (config, log, metrics, probes, status) next to the screenshots."""
    shutil.rmtree(dest, ignore_errors=True)
    for run in sorted(runs.glob("*/")):
        for name in RUN_FILES:
            if (run / name).is_file():
                (dest / run.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run / name, dest / run.name / name)


# ---- the browser ---------------------------------------------------------------------------

@pytest.fixture
def page():
    """A Chromium page (Debian's binary, never a downloaded one) at 1400x900."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.set_default_timeout(UI_TIMEOUT_MS)
            sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)  # expect() waits 5 s by default: too short here
            yield tab
        finally:
            browser.close()


def _expect():
    from playwright.sync_api import expect

    return expect


def _wait_idle(page) -> None:
    """Wait until Streamlit finished the script run and drew every element (no loading skeletons)."""
    browser.wait_idle(page, UI_TIMEOUT_MS)


def _screenshot(page, name: str, *, full: bool = True, height: int | None = None, folder: Path = ARTIFACTS) -> Path:
    """Save the page as <folder>/<name>.png (test-artifacts/e2e/ by default).

    Streamlit scrolls inside its main container, so a full-page shot is taken by growing the
    viewport to the content's height (`full`), or to `height`; the viewport is restored after.
    """
    path = folder / f"{name}.png"
    page.mouse.move(0, VIEWPORT["height"] - 1)  # no hover tooltips in the pictures
    if full and height is None:
        height = page.evaluate(
            "() => Math.max(...Array.from(document.querySelectorAll('[data-testid=\"stMain\"], "
            "[data-testid=\"stMainBlockContainer\"]')).map(el => el.scrollHeight), window.innerHeight)"
        ) + 40
    if height:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), 6000)})
        page.wait_for_timeout(600)  # plotly charts resize to the new viewport
    page.screenshot(path=str(path))
    if height:
        page.set_viewport_size(VIEWPORT)
    return path


def _poll(what: str, check: Callable[[], object], timeout_s: float, interval_s: float = 1.0):
    """Call `check` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def _loss_points(page) -> int:
    """Points of the raw training-loss trace on the Train page (0 before the first log)."""
    counts = [n for plot in page.evaluate(PLOT_TRACES_JS) for name, n in plot if name == text.SERIES_RAW]
    return max(counts, default=0)


# What must never reach the screen: tracebacks, Python reprs of None or of a dict.
RAW_OUTPUT = re.compile(r"Traceback \(most recent call last\)|\bNone\b|\{'\w+': ")


def _assert_clean(page, where: str) -> None:
    """The page shows sentences, not tracebacks or raw Python values."""
    shown = page.get_by_test_id("stMain").inner_text()
    found = RAW_OUTPUT.search(shown)
    if found:
        context = shown[max(0, found.start() - 80):found.end() + 80].replace("\n", " | ")
        pytest.fail(f"{where} shows raw output {found.group()!r}: ...{context}...")


def _status(run: Path) -> str | None:
    """The run's status from its status.json (None before it is written)."""
    try:
        return json.loads((run / "status.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _finished(run: Path) -> str | None:
    """The run's final status (None while queued or running)."""
    status = _status(run)
    return None if status in (None, "queued", "running") else status


def _set_number(page, label: str, value: int) -> None:
    """Type into a number input like a user (Enter commits it) and wait for the rerun."""
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    _expect()(box).to_have_value(str(value))
    _wait_idle(page)


def _nav(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()


# ---- the test ------------------------------------------------------------------------------

def test_fine_tune_in_the_browser(app_url, page, tmp_path):
    expect = _expect()
    runs = tmp_path / "runs"  # where the app writes (app_url sets TUNEBOARD_RUNS)
    main = page.get_by_test_id("stMain")
    clock = _Stages()

    # -- Setup: bundled MiniLM, synthetic reviews, masked LM, a short run -------------------
    page.goto(app_url)
    expect(page.get_by_role("heading", name=text.SETUP_TITLE)).to_be_visible(timeout=120_000)
    start = page.get_by_role("button", name=text.START)
    expect(start).to_be_visible(timeout=120_000)  # the page has resolved the model and counted parameters
    _wait_idle(page)

    def choose(group: str, option: str) -> None:
        radios = page.get_by_role("radiogroup", name=group)
        radios.get_by_text(option, exact=True).click()
        expect(radios.get_by_role("radio", name=option, exact=True)).to_be_checked()
        _wait_idle(page)

    choose(text.TASK_LABEL, text.TASK_NAMES["mlm"])
    choose(text.MODEL_KIND, text.MODEL_KINDS["bundled"])
    choose(text.DATA_SOURCE, text.DATA_SOURCES["synthetic"])
    name = page.get_by_role("textbox", name=text.RUN_NAME, exact=True)
    name.fill(RUN_NAME)
    name.press("Enter")
    _wait_idle(page)
    _set_number(page, text.SYNTH_ROWS, ROWS)
    choose(text.TRAIN_FOR, text.TRAIN_FOR_OPTIONS["steps"])
    _set_number(page, text.MAX_STEPS, MAX_STEPS)
    _set_number(page, text.BATCH_SIZE, BATCH_SIZE)
    main.get_by_text(text.TRAINING_ADVANCED, exact=True).click()  # open the expander
    _set_number(page, text.LOGGING_STEPS, LOG_EVERY)
    _set_number(page, text.EVAL_STEPS, EVAL_EVERY)
    _set_number(page, text.SAVE_STEPS, SAVE_EVERY)
    expect(page.get_by_role("textbox", name=text.PROBE_TEXTS)).to_contain_text(PROBE)
    expect(main.get_by_text(text.CONFIG_OK)).to_be_visible()
    expect(start).to_be_enabled()
    _screenshot(page, "1-setup")
    _assert_clean(page, "Setup")
    clock.lap("setup")

    # -- Start -> Train: the loss chart gains points while the run trains -------------------
    start.click()
    expect(page.get_by_role("heading", name=text.TRAIN_TITLE, exact=True)).to_be_visible()
    page.wait_for_url(re.compile(r"/train\?run=[\w.-]+"))
    run_id = page.url.rsplit("run=", 1)[1].split("&")[0]
    expect(page.get_by_role("combobox", name=text.RUN_PICKER, exact=True)).to_have_value(f"{RUN_NAME} · {run_id}")
    stop = page.get_by_role("button", name=text.STOP)

    first = _poll("the first training-loss points", lambda: _loss_points(page), TRAIN_TIMEOUT_S)
    clock.lap("first loss points")
    _poll("the loss chart to gain points", lambda: _loss_points(page) > first, TRAIN_TIMEOUT_S)
    expect(stop).to_be_enabled()  # the points arrived while the run was still training
    _screenshot(page, "2-train-live")
    _assert_clean(page, "Train while training")

    # Wait for the end on the Compare page: it has no live fragment, so the browser and the app's
    # script thread do not compete with the training thread for the two CPU cores every second.
    _nav(page, text.PAGE_COMPARE)
    expect(page.get_by_role("heading", name=text.COMPARE_TITLE)).to_be_visible()
    _wait_idle(page)
    _screenshot(page, "3-compare-while-training", full=False)
    _assert_clean(page, "Compare while training")
    sidebar_step = re.compile(r"Step (\d+) of " + str(MAX_STEPS))
    sidebar = page.get_by_test_id("stSidebar")

    def sidebar_steps() -> int:
        found = sidebar_step.search(sidebar.inner_text())
        return int(found.group(1)) if found else -1

    seen = sidebar_steps()  # the sidebar follows the run on a page without a live panel of its own
    if seen < MAX_STEPS:
        _poll("the sidebar to follow the run", lambda: sidebar_steps() > seen, TRAIN_TIMEOUT_S)
    status = _poll("the run to finish", lambda: _finished(runs / run_id), TRAIN_TIMEOUT_S, interval_s=2)
    assert status == "completed", f"the run ended {status}:\n{browser.log_tail(runs / run_id / 'run.log')}"
    clock.lap("training")

    # Train shows the completed run: Stop disabled, the steps set on Setup, every logged point.
    _nav(page, text.PAGE_TRAIN)
    expect(page.get_by_role("heading", name=text.TRAIN_TITLE, exact=True)).to_be_visible()
    expect(stop).to_be_disabled()
    steps_done = text.PROGRESS_TEXT.partition(" · ")[0].format(step=MAX_STEPS, max_steps=MAX_STEPS)
    expect(main.get_by_text(steps_done)).to_be_visible()  # "Step 20 of 20"
    expect(main.get_by_text(re.compile(r"\bcompleted$")).first).to_be_visible()  # the status badge
    _poll("the loss chart to hold every logged step", lambda: _loss_points(page) >= MAX_STEPS // LOG_EVERY, 30)
    _wait_idle(page)
    _screenshot(page, "4-train-done")
    _assert_clean(page, "Train after the run")

    # -- Compare: base and fine-tuned columns for a probe -----------------------------------
    _nav(page, text.PAGE_COMPARE)
    expect(page.get_by_role("heading", name=text.COMPARE_TITLE)).to_be_visible()
    # The innermost block holding both the probe and the "Base model" caption is the probe's panel.
    panel = main.get_by_test_id("stVerticalBlock").filter(has=page.get_by_text(PROBE, exact=True)).filter(
        has=page.get_by_text(text.COLUMN_BASE, exact=True)
    ).last
    expect(panel.get_by_text(text.COLUMN_BASE, exact=True)).to_be_visible()
    expect(panel.get_by_text(text.COLUMN_TUNED_FINAL.format(step=MAX_STEPS), exact=True)).to_be_visible()
    expect(panel.locator(".js-plotly-plot")).to_have_count(2)  # base and fine-tuned top-k bars
    expect(main.get_by_text(text.LOAD_REPORT_TITLE)).to_be_visible()  # MiniLM's MLM head starts untrained
    _wait_idle(page)
    # The README picture: from the title down to the end of the first probe's panel.
    box = panel.bounding_box()
    compare = _screenshot(page, "5-compare", height=max(VIEWPORT["height"], int(box["y"] + box["height"]) + 24))
    _screenshot(page, "5-compare-full")
    _assert_clean(page, "Compare after the run")
    assert compare.exists()
    clock.lap("compare")

    # -- Runs: the run is listed ------------------------------------------------------------
    _nav(page, text.PAGE_RUNS)
    expect(page.get_by_role("heading", name=text.RUNS_TITLE, exact=True)).to_be_visible()
    expect(main.get_by_role("combobox", name=text.RUN_PICKER, exact=True)).to_have_value(f"{RUN_NAME} · {run_id}")
    # The history table is a canvas-drawn st.dataframe: its cells exist in the DOM (for screen
    # readers) but are never "visible" to Playwright, so the listing is checked by presence.
    expect(main.locator("[role=gridcell]").filter(has_text=re.compile(r"^completed$")).first).to_be_attached()
    # The download is prepared on request (the shared export writes the model with its card), then offered.
    main.get_by_role("button", name=text.PREPARE_EXPORT).click()
    expect(main.get_by_role("button", name=text.DOWNLOAD_MODEL)).to_be_visible(timeout=120_000)
    expect(main.get_by_text(text.COMMANDS, exact=True)).to_be_visible()
    expect(main.locator("code").filter(has_text="python -m core train --config")).to_contain_text(run_id)
    _wait_idle(page)
    _screenshot(page, "6-runs")
    _assert_clean(page, "Runs")
    clock.lap("runs")

    print(f"\nbrowser e2e: run {run_id}; {clock}; screenshots in {ARTIFACTS.relative_to(REPO)}")


class _Stages:
    """Seconds spent in each stage of the test, for its report line."""

    def __init__(self):
        self.start = self.last = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append((name, now - self.last))
        self.last = now

    def __str__(self) -> str:
        stages = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.laps)
        return f"{stages}; browser total {self.last - self.start:.0f}s"


# ---- two tabs ------------------------------------------------------------------------------

STATE_FOLLOW_TIMEOUT_MS = 15_000  # the target is about 2 s; the bound leaves room for a busy CI machine


def test_a_second_tab_follows_stop_and_resume_without_a_reload(app_url, page, tmp_path):
    """Stop then Resume in one tab; the other Train tab shows each new state by itself."""
    expect = _expect()
    page.goto(app_url)
    start = page.get_by_role("button", name=text.START)
    expect(start).to_be_visible(timeout=120_000)
    _wait_idle(page)
    start.click()  # the default config: the seed demo, long enough to stop and resume mid-run
    page.wait_for_url(re.compile(r"/train\?run=[\w.-]+"))
    run_id = page.url.rsplit("run=", 1)[1].split("&")[0]
    runs = tmp_path / "runs"
    _poll("the run to train", lambda: _status(runs / run_id) == "running", TRAIN_TIMEOUT_S, interval_s=0.5)

    other = page.context.browser.new_page(viewport=VIEWPORT)
    other.set_default_timeout(UI_TIMEOUT_MS)
    other.goto(f"{app_url}/train?run={run_id}")
    _wait_idle(other)
    other_stop = other.get_by_role("button", name=text.STOP)
    other_resume = other.get_by_role("button", name=text.RESUME)
    expect(other_stop).to_be_enabled()

    page.get_by_role("button", name=text.STOP).click()
    _poll("the run to stop", lambda: _status(runs / run_id) == "stopped", TRAIN_TIMEOUT_S, interval_s=0.2)
    stopped_at = time.monotonic()
    expect(other_resume).to_be_enabled(timeout=STATE_FOLLOW_TIMEOUT_MS)  # no reload of the second tab
    expect(other_stop).to_be_disabled()
    followed_stop_s = time.monotonic() - stopped_at

    resume = page.get_by_role("button", name=text.RESUME)
    expect(resume).to_be_enabled()
    resume.click()
    _poll("the run to resume", lambda: _status(runs / run_id) in ("queued", "running"), 60, interval_s=0.2)
    resumed_at = time.monotonic()
    expect(other_stop).to_be_enabled(timeout=STATE_FOLLOW_TIMEOUT_MS)
    followed_resume_s = time.monotonic() - resumed_at
    _screenshot(other, "7-second-tab-after-resume", full=False)
    _assert_clean(other, "the second Train tab")
    other.get_by_role("button", name=text.STOP).click()  # end it: the app is killed after the test
    print(f"\nsecond tab followed Stop in {followed_stop_s:.1f}s and Resume in {followed_resume_s:.1f}s")


# ---- an uploaded classification set, then its examples ------------------------------------

CLASSIFY_STEPS = 6


def _choose(page, group: str, option: str) -> None:
    """Click a radio option of a group like a user and wait for the rerun."""
    radios = page.get_by_role("radiogroup", name=group)
    radios.get_by_text(option, exact=True).click()
    _expect()(radios.get_by_role("radio", name=option, exact=True)).to_be_checked()
    _wait_idle(page)


HUMAN_FLIP_EVERY = 6  # the second annotator disagrees with the gold label on one row in six


def _review_csv(path: Path, rows: int = 120) -> Path:
    """A table with text and label columns and a second annotator's `human` column (agrees on most rows)."""
    lines = ["id,text,label,human"]
    for i in range(rows):
        adjective, label, other = (("comfortable", "positive", "negative"), ("flimsy", "negative", "positive"))[i % 2]
        human = other if i % HUMAN_FLIP_EVERY == HUMAN_FLIP_EVERY - 1 else label
        lines.append(f"{i},Nike shoes model {i} are very {adjective},{label},{human}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _setup_for_classification(page, app_url):
    """Setup, loaded and idle, with the classification task chosen; returns (main area, Start button)."""
    main = page.get_by_test_id("stMain")
    page.goto(app_url)
    start = page.get_by_role("button", name=text.START)
    _expect()(start).to_be_visible(timeout=120_000)
    _wait_idle(page)
    _choose(page, text.TASK_LABEL, text.TASK_NAMES["classification"])
    return main, start


def test_upload_a_labelled_table_train_and_browse_its_examples(app_url, page, tmp_path):
    """Upload text/label/human columns without touching the pickers, train, then the error browser and the
    agreement with the `human` column of the run's own data file (#27: `human`, never the gold `label`)."""
    expect = _expect()
    runs = tmp_path / "runs"
    main, start = _setup_for_classification(page, app_url)
    _choose(page, text.DATA_SOURCE, text.DATA_SOURCES["file"])
    uploader = main.get_by_test_id("stFileUploader").filter(has_text=text.UPLOAD_LABEL)
    uploader.locator("input[type=file]").set_input_files(str(_review_csv(tmp_path / "reviews.csv")))
    _wait_idle(page)
    # The pickers found the columns by their names: nothing is touched, and the page is ready.
    expect(main.get_by_text(text.CONFIG_OK)).to_be_visible()
    _choose(page, text.TRAIN_FOR, text.TRAIN_FOR_OPTIONS["steps"])
    _set_number(page, text.MAX_STEPS, CLASSIFY_STEPS)
    _set_number(page, text.BATCH_SIZE, 8)
    expect(start).to_be_enabled()
    _screenshot(page, "7-setup-upload")
    _assert_clean(page, "Setup with an upload")

    start.click()
    page.wait_for_url(re.compile(r"/train\?run=[\w.-]+"))
    run_id = page.url.rsplit("run=", 1)[1].split("&")[0]
    config = (runs / run_id / "config.yaml").read_text()
    assert "text_column: text" in config and "label_column: label" in config
    status = _poll("the classification run to finish", lambda: _finished(runs / run_id), TRAIN_TIMEOUT_S, 2)
    assert status == "completed", f"the run ended {status}:\n{browser.log_tail(runs / run_id / 'run.log')}"

    _nav(page, text.PAGE_EVALUATE)
    expect(page.get_by_role("heading", name=text.EVALUATE_TITLE)).to_be_visible()
    _wait_idle(page)
    expect(main.get_by_text(text.EXAMPLES_FILTER, exact=True)).to_be_visible()  # the error browser
    main.get_by_text(text.EXAMPLES_FILTERS["all"], exact=True).click()
    _wait_idle(page)
    expect(main.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(main.locator(".js-plotly-plot").first).to_be_visible()  # the confusion matrices
    expect(main.get_by_role("button", name=text.DOWNLOAD_REPORT)).to_be_visible()
    _screenshot(page, "8-evaluate")
    _assert_clean(page, "Evaluate")

    # Agreement with human labels: the run's data file holds them in its `human` column.
    _choose(page, text.HUMAN_SOURCE, text.HUMAN_SOURCE_RUN_DATA)
    expect(main.get_by_role("combobox", name=text.HUMAN_TEXT_COLUMN, exact=True)).to_have_value("text")
    expect(main.get_by_role("combobox", name=text.HUMAN_LABEL_COLUMN, exact=True)).to_have_value("human")
    for title in text.HUMAN_PAIRS.values():  # base vs human, fine-tuned vs human, human vs gold
        expect(main.get_by_text(title, exact=True)).to_be_visible()
    tuned = main.get_by_test_id("stColumn").filter(has_text=text.HUMAN_PAIRS["tuned"]).last
    expect(tuned.get_by_test_id("stMetricDelta").first).to_contain_text(re.compile(r"[+-]\d+\.\d pts"))
    kind = re.escape(text.HUMAN_KINDS["human_gold"])
    kinds = main.get_by_role("radiogroup", name=text.HUMAN_DISAGREEMENTS)  # the disagreements, by kind
    expect(kinds.get_by_role("radio", name=re.compile(rf"^{kind} \(\d+\)$"))).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("This app has encountered an error")).to_have_count(0)
    _screenshot(page, "8b-evaluate-human")
    _assert_clean(page, "Evaluate with human labels")


# ---- the Nike demo in one click ------------------------------------------------------------

PLOT_LABELS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    el => (el.data || []).flatMap(t => (t.y || []).map(String)))"""


def test_the_nike_demo_in_one_click_shows_real_words_leaning_positive(app_url, page, tmp_path):
    """Load the Nike demo -> Start -> Compare: SmolLM2's base column holds real words, the tuned one leans positive."""
    from core.plan.presets import probe_lean
    from core.run.folder import read_jsonl

    expect = _expect()
    runs = tmp_path / "runs"
    main = page.get_by_test_id("stMain")
    page.goto(app_url)
    start = page.get_by_role("button", name=text.START)
    expect(start).to_be_visible(timeout=120_000)
    _wait_idle(page)
    page.get_by_role("button", name=text.DEMO_BUTTONS["nike"], exact=True).click()
    _wait_idle(page)
    expect(main.get_by_text(text.CONFIG_OK)).to_be_visible(timeout=180_000)  # SmolLM2 resolved, data checked
    start.click()
    page.wait_for_url(re.compile(r"/train\?run=[\w.-]+"))
    run_id = page.url.rsplit("run=", 1)[1].split("&")[0]
    _nav(page, text.PAGE_COMPARE)  # no live charts there: the CPU goes to the run
    status = _poll("the Nike demo to finish", lambda: _finished(runs / run_id), 2 * TRAIN_TIMEOUT_S, 2)
    assert status == "completed", f"the run ended {status}:\n{browser.log_tail(runs / run_id / 'run.log')}"

    page.reload()
    expect(page.get_by_role("heading", name=text.COMPARE_TITLE)).to_be_visible()
    _wait_idle(page)
    probe = "Nike shoes are very"
    panel = main.get_by_test_id("stVerticalBlock").filter(has=page.get_by_text(probe, exact=True)).filter(
        has=page.get_by_text(text.COLUMN_BASE, exact=True)
    ).last
    expect(panel.locator(".js-plotly-plot")).to_have_count(2)
    words = [w.strip().lower() for plot in page.evaluate(PLOT_LABELS_JS) for w in plot]
    assert sum(bool(re.fullmatch(r"[a-z]{3,}", w)) for w in words) >= 5, words  # real words, not ##iv pieces
    records = read_jsonl(runs / run_id / "probes.jsonl")
    base, final = probe_lean(records, "base"), probe_lean(records, "final")
    assert final["positive"] > 2 * final["negative"] and final["positive"] > 2 * base["positive"], (base, final)
    box = panel.bounding_box()
    shot = _screenshot(page, "9-nike-demo-compare", height=max(VIEWPORT["height"], int(box["y"] + box["height"]) + 24))
    _assert_clean(page, "Compare after the Nike demo")
    if os.environ.get("TUNEBOARD_UPDATE_SCREENSHOT") == "1" or not DOCS_SCREENSHOT.exists():
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)


# ---- a strategy shoot-out from Setup -------------------------------------------------------

SHOOTOUT_STEPS = 6


def test_a_two_strategy_shootout_from_setup_shows_both_runs_and_a_recommendation(app_url, page, tmp_path):
    """Setup's Compare strategies with tiny settings -> both runs complete -> the group view: two rows, advice."""
    expect = _expect()
    runs = tmp_path / "runs"
    main, _ = _setup_for_classification(page, app_url)
    _set_number(page, text.SYNTH_ROWS, 200)
    _choose(page, text.TRAIN_FOR, text.TRAIN_FOR_OPTIONS["steps"])
    _set_number(page, text.MAX_STEPS, SHOOTOUT_STEPS)
    _set_number(page, text.BATCH_SIZE, 8)
    # LoRA as the run's strategy: the shoot-out then proposes LoRA and feature extraction, the two cheapest.
    page.get_by_role("combobox", name=text.STRATEGY_LABEL, exact=True).click()
    page.get_by_role("option", name=text.STRATEGY_NAMES["lora"], exact=True).click()
    _wait_idle(page)
    expect(main.get_by_text(text.CONFIG_OK)).to_be_visible()
    main.get_by_test_id("stCheckbox").get_by_text(text.SWEEP_MODE, exact=True).click()  # the mode's switch
    _wait_idle(page)
    chosen = main.get_by_test_id("stMultiSelect").filter(has_text=text.SWEEP_STRATEGIES)
    for name in ("lora", "feature-extraction"):
        expect(chosen.get_by_text(text.STRATEGY_NAMES[name], exact=True)).to_be_visible()
    expect(main.get_by_text(text.SWEEP_RUN_COUNT.format(runs=2))).to_be_visible()
    _screenshot(page, "10-setup-shootout")
    _assert_clean(page, "Setup in Compare strategies mode")

    page.get_by_role("button", name=text.SWEEP_START).click()
    page.wait_for_url(re.compile(r"/compare_strategies\?group=[\w.-]+"))
    group_id = page.url.rsplit("group=", 1)[1].split("&")[0]
    group_file = runs / "groups" / f"{group_id}.json"

    def member_runs() -> list[Path] | None:
        members = json.loads(group_file.read_text())["members"] if group_file.exists() else []
        found = [runs / m["run_id"] for m in members if m.get("run_id")]
        return found if len(found) == 2 else None

    members = _poll("both runs to be queued", member_runs, 60)
    for run in members:
        status = _poll(f"run {run.name} to finish", lambda run=run: _finished(run), 2 * TRAIN_TIMEOUT_S, 2)
        assert status == "completed", f"{run.name} ended {status}:\n{browser.log_tail(run / 'run.log')}"

    page.reload()  # the view as a user finds it after the group ended
    expect(page.get_by_role("heading", name=text.SWEEP_TITLE, exact=True)).to_be_visible()
    _wait_idle(page)
    # The table is canvas-drawn; its cells are in the DOM for screen readers (see the Runs check above).
    completed = main.locator("[role=gridcell]").filter(has_text=re.compile(r"^completed$"))
    expect(completed).to_have_count(2)
    names = "|".join(re.escape(text.STRATEGY_NAMES[s]) for s in ("lora", "feature-extraction"))
    advice = re.compile(rf"^({names}) (reaches|gives the best|gets within) ")  # display names, not ids
    expect(main.get_by_text(advice)).to_be_visible()
    expect(main.get_by_text(text.SWEEP_NO_RECOMMENDATION)).to_have_count(0)
    _screenshot(page, "11-shootout-view")
    _assert_clean(page, "Compare strategies")


# ---- instruction tuning: an uploaded chat file on a local model folder ----------------------

SFT_STEPS = 4
SFT_PROBE = "What is the capital of France?"
SFT_BASE_ANSWER = "I do not know."  # what the base model is taught to answer (see _tiny_chat_model)
CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Japan": "Tokyo",
            "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi"}
# ChatML, the shape of SmolLM2's template (without its default system turn).
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


# Each country asked six ways: the same chat twice would be dropped as a repeat (as a repeated text is).
CAPITAL_QUESTIONS = ("What is the capital of {country}?", "Which city is the capital of {country}?",
                     "Name the capital of {country}.", "What is {country}'s capital?",
                     "Tell me the capital of {country}.", "The capital of {country} is which city?")


def _chat_jsonl(path: Path, copies: int = 6) -> Path:
    """Chats in the 'messages' shape hosted fine-tuning APIs take: one question and its answer each."""
    rows = [{"messages": [{"role": "user", "content": question.format(country=country)},
                          {"role": "assistant", "content": f"{city}."}]}
            for question in CAPITAL_QUESTIONS[:copies] for country, city in CAPITALS.items()]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _tiny_chat_model(folder: Path) -> Path:
    """A tiny Llama (hidden size 32, 2 layers) with a ChatML tokenizer, saved to `folder`.

    Freshly initialised, its greedy answer is one token repeated (a newline, with tied embeddings), which
    strips to an empty answer; 40 quick steps teach it to answer every question "I do not know.", so the
    base column shows words that the fine-tune on the capitals then starts from.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import chat_tokenizer

    corpus = [f"What is the capital of {country}? {city}." for country, city in CAPITALS.items()]
    tokenizer = chat_tokenizer(corpus + [SFT_BASE_ANSWER, "system user assistant"], vocab_size=400,
                               chat_template=CHATML, model_max_length=256)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": f"What is the capital of {country}?"},
                                            {"role": "assistant", "content": SFT_BASE_ANSWER}], tokenize=False)
             for country in CAPITALS]
    batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small: one thread takes 0.5 s, two on a busy 2-core machine 30 s
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
            for _ in range(40):
                model(**batch, labels=labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_instruction_tuning_on_an_uploaded_chat_file_shows_both_answers(app_url, page, tmp_path):
    """Instruction tuning: a local model folder and an uploaded chat JSONL -> Start -> Compare: both answers."""
    expect = _expect()
    runs = tmp_path / "runs"
    model = _tiny_chat_model(tmp_path / "tiny-chat-model")
    data = _chat_jsonl(tmp_path / "capitals.jsonl")
    main = page.get_by_test_id("stMain")
    clock = _Stages()

    page.goto(app_url)
    start = page.get_by_role("button", name=text.START)
    expect(start).to_be_visible(timeout=120_000)
    _wait_idle(page)
    _choose(page, text.TASK_LABEL, text.TASK_NAMES["sft"])
    _choose(page, text.MODEL_KIND, text.MODEL_KINDS["local"])
    folder = page.get_by_role("textbox", name=text.MODEL_LOCAL, exact=True)
    folder.fill(str(model))
    folder.press("Enter")
    _wait_idle(page)
    _choose(page, text.DATA_SOURCE, text.DATA_SOURCES["file"])
    uploader = main.get_by_test_id("stFileUploader").filter(has_text=text.UPLOAD_LABEL)
    uploader.locator("input[type=file]").set_input_files(str(data))
    _wait_idle(page)
    expect(main.get_by_text(text.SFT_FORMAT_FOUND.split(":")[0] + ":")).to_be_visible()  # the chat shape
    expect(main.get_by_text(text.SFT_ROWS.format(rows=6 * len(CAPITALS)))).to_be_visible()
    _choose(page, text.TRAIN_FOR, text.TRAIN_FOR_OPTIONS["steps"])
    _set_number(page, text.MAX_STEPS, SFT_STEPS)
    probes = page.get_by_role("textbox", name=text.PROBE_TEXTS)
    probes.fill(SFT_PROBE)
    probes.blur()  # a text area commits its value when it loses focus
    _wait_idle(page)
    expect(main.get_by_text(text.CONFIG_OK)).to_be_visible()
    expect(start).to_be_enabled()
    _screenshot(page, "12-setup-sft")
    _assert_clean(page, "Setup for instruction tuning")
    clock.lap("setup")

    start.click()
    page.wait_for_url(re.compile(r"/train\?run=[\w.-]+"))
    run_id = page.url.rsplit("run=", 1)[1].split("&")[0]
    config = (runs / run_id / "config.yaml").read_text()
    assert "task: sft" in config and f"source: {model}" in config and "capitals.jsonl" in config, config
    _nav(page, text.PAGE_COMPARE)  # no live charts there: the CPU goes to the run
    status = _poll("the instruction-tuning run to finish", lambda: _finished(runs / run_id), TRAIN_TIMEOUT_S, 1)
    assert status == "completed", f"the run ended {status}:\n{browser.log_tail(runs / run_id / 'run.log')}"
    clock.lap("training")

    page.reload()
    expect(page.get_by_role("heading", name=text.COMPARE_TITLE)).to_be_visible()
    _wait_idle(page)
    panel = main.get_by_test_id("stVerticalBlock").filter(has=page.get_by_text(SFT_PROBE, exact=True)).filter(
        has=page.get_by_text(text.COLUMN_BASE, exact=True)
    ).last
    columns = panel.get_by_test_id("stColumn")
    expect(columns).to_have_count(2)
    titles = (text.COLUMN_BASE, text.COLUMN_TUNED_FINAL.format(step=SFT_STEPS))
    for column, title in zip((columns.nth(0), columns.nth(1)), titles, strict=True):
        expect(column.get_by_text(title, exact=True)).to_be_visible()
        answer = column.get_by_test_id("stText")  # the model's greedy answer, as plain text
        expect(answer).to_have_count(1)
        shown = answer.inner_text().strip()
        assert shown and shown != text.SFT_EMPTY_ANSWER, f"no answer under {title!r}"
    expect(columns.nth(0).get_by_test_id("stText")).to_have_text(SFT_BASE_ANSWER)
    box = panel.bounding_box()
    _screenshot(page, "13-compare-sft", height=max(VIEWPORT["height"], int(box["y"] + box["height"]) + 24))
    _assert_clean(page, "Compare after instruction tuning")
    clock.lap("compare")
    print(f"\nbrowser sft e2e: run {run_id}; {clock}")
