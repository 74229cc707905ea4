"""Nothing cut off at 1400 px: every page in headless Chromium, checked for text that does not fit (issue 27).

A new user at a 1400 px window met "98 MB G…" in Setup's model catalogue, run ids, metrics and "Duration" cut
off in the Runs table, Evaluate's Confidence column and the Compare strategies headers out of sight, toggles
reading "Keep check…", placeholders reading "about 8 ev", and overlay chips carrying ~100-character names.

The app runs on seeded run folders (no training): a classification run with a ~100-character name, eight
news categories, predictions and a data file with a `human` column; a masked-LM run; and a finished
three-strategy group. Each page is then checked for what the DOM can show:
- text that its box clips or ends in an ellipsis (labels, captions, headers, chips, selected values);
- placeholders wider than their input;
- tables wider than their frame (columns hidden behind a sideways scroll).
Streamlit draws a table's cells on a canvas, which the DOM cannot measure: ui/tables.py fits their widths,
and the screenshots under test-artifacts/widths/ show them.

Uses the e2e test's Chromium page (Debian's binary, never a downloaded one), here named `chromium`, and
skips the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench import browser
from core.config import RunConfig
from core.data.news import NEWS_CATEGORIES, generate_headlines
from core.files import atomic_write_json
from core.insight import predictions as insight
from core.plan import sweep
from core.present import text
from core.run.folder import RunFolder
from tests.support import make_run
from tests.test_browser_e2e import _nav, _screenshot, _wait_idle
from tests.test_browser_e2e import page as chromium  # noqa: F401  (the fixture, by this name here)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "widths"
LONG_NAME = ("news headlines classifier with the second annotator's labels, trained on four hundred rows "
             "for a quick check")  # ~100 characters, as a user names a run
EVAL_ROWS = 40

# Where text is cut off, as the DOM shows it: [where, what].
CUT_OFF_JS = """() => {
    const cut = [];
    const where = el => { const owner = el.closest('[data-testid]'); return owner ? owner.dataset.testid : el.tagName; };
    // Not checked: charts (SVG), the canvas tables (below), and the upload box's fixed line of Streamlit's
    // own ("200MB per file • CSV, JSON, JSONL, NDJSON, PARQUET…"), whose help tooltip lists the formats.
    const skip = '.js-plotly-plot, [data-testid="stDataFrame"], [data-testid="stFileUploaderDropzoneInstructions"]';
    for (const el of document.querySelectorAll('[data-testid="stMain"] *, [data-testid="stSidebar"] *')) {
        if (!el.textContent.trim() || el.closest(skip)) continue;
        const style = getComputedStyle(el);
        if (style.fontFamily.includes('Material')) continue;  // an icon, drawn from its name's ligature
        const clips = style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
        // clientWidth 1: a label for screen readers only ("add icon"), 1 px wide and clipped by design
        if (clips && el.clientWidth > 1 && el.scrollWidth > el.clientWidth + 1) {
            cut.push([where(el), el.textContent.trim().slice(0, 100)]);
        }
    }
    const context = document.createElement('canvas').getContext('2d');
    for (const input of document.querySelectorAll('[data-testid="stMain"] input[placeholder]')) {
        if (input.value || !input.placeholder || input.clientWidth === 0) continue;
        const style = getComputedStyle(input);
        context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        if (context.measureText(input.placeholder).width > room + 1) cut.push(['placeholder', input.placeholder]);
    }
    for (const table of document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]')) {
        const scroller = table.querySelector('.dvn-scroller');
        if (scroller && scroller.scrollWidth > scroller.clientWidth + 1) {
            const headers = Array.from(table.querySelectorAll('th')).map(th => th.textContent).join(' | ');
            cut.push(['table wider than its frame', `${scroller.scrollWidth} > ${scroller.clientWidth} px: ${headers}`]);
        }
    }
    return cut;
}"""


# ---- the seeded runs -----------------------------------------------------------------------

def _classification_run(runs: Path, data_file: Path, frame) -> str:
    """A finished classifier with the long name, its data file (text, label, human) and predictions."""
    run_id = make_run(runs, task="classification", name=LONG_NAME, strategy="feature-extraction")
    folder = RunFolder(runs / run_id)
    cfg = RunConfig.load(folder.config_path)
    cfg.data.source, cfg.data.path = "file", str(data_file)
    cfg.save(folder.config_path)
    folder.update_status(best={"name": "eval_f1", "step": 40, "value": 0.83})
    labels = sorted(NEWS_CATEGORIES)
    held_out = frame.tail(EVAL_ROWS)
    gold = [labels.index(label) for label in held_out["label"]]
    rng = np.random.default_rng(0)
    stages = {"base": rng.dirichlet(np.ones(len(labels)), EVAL_ROWS),
              "final": rng.dirichlet(np.ones(len(labels)) * 0.3, EVAL_ROWS)}
    out = folder.predictions_path
    atomic_write_json(out / insight.META_FILE, {"task": "classification", "label_names": labels, "rows_used": EVAL_ROWS,
                                                "rows_total": EVAL_ROWS, "sampled": False, "final_step": 40})
    for stage, probabilities in stages.items():
        stage_frame = insight.classification_frame(held_out["text"].tolist(), gold, probabilities, labels)
        insight.write_frame_atomically(out / f"{stage}.parquet", stage_frame)
    return run_id


def _mlm_run(runs: Path, frame) -> str:
    """A finished masked-LM run with per-example losses."""
    run_id = make_run(runs, task="mlm")
    out = RunFolder(runs / run_id).predictions_path
    texts = frame["text"].head(EVAL_ROWS).tolist()
    atomic_write_json(out / insight.META_FILE, {"task": "mlm", "label_names": [], "rows_used": EVAL_ROWS,
                                                "rows_total": EVAL_ROWS, "sampled": False, "final_step": 40})
    losses = np.linspace(2.0, 9.0, EVAL_ROWS)
    insight.write_frame_atomically(out / "base.parquet", insight.loss_frame(texts, losses + 1.5))
    insight.write_frame_atomically(out / "final.parquet", insight.loss_frame(texts, losses[::-1]))
    return run_id


def _group(runs: Path) -> str:
    """A finished three-strategy group under the long name, with the figures its table shows."""
    cfg = RunConfig(task="classification", name=LONG_NAME)
    strategies = ["full", "lora", "feature-extraction"]
    group = sweep.Group(group_id=sweep.new_group_id(cfg.task), config=cfg, strategies=strategies,
                        learning_rates=[None], name=LONG_NAME, created_at="2026-01-01T12:00:00")
    for i, strategy in enumerate(strategies):
        member = sweep.Member(strategy, None)
        run_id = make_run(runs, task="classification", name=group.member_config(member).name, strategy=strategy)
        RunFolder(runs / run_id).update_status(
            elapsed_s=40.0 + 30 * i, trainable_params=[22_700_000, 76_808, 150_920][i], total_params=22_700_000,
            peak_memory_bytes=1_005_113_344, final_metrics={"eval_f1": 0.8 + i / 100, "eval_loss": 0.5 - i / 100})
        member.run_id = run_id
        group.members.append(member)
    sweep.save_group(runs, group)
    return group.group_id


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Iterator[dict]:
    """The app (README's command) on the seeded runs: {url, data (a CSV to upload), classification, mlm, group}."""
    state_dir = tmp_path_factory.mktemp("widths")
    runs = state_dir / "runs"
    runs.mkdir()
    frame = generate_headlines(400, seed=1)
    data_file = state_dir / "news.csv"
    frame.to_csv(data_file, index=False)
    ids = {"data": data_file, "classification": _classification_run(runs, data_file, frame),
           "mlm": _mlm_run(runs, frame), "group": _group(runs)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("*.png"):
        stale.unlink()
    try:
        proc, url = browser.start_app(state_dir, ARTIFACTS / "app.log")
    except browser.AppError as err:
        pytest.fail(str(err))
    try:
        yield {"url": url, **ids}
    finally:
        browser.stop_app(proc)


# ---- checking a page -----------------------------------------------------------------------

def _open(page, url: str, title: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=120_000)
    _wait_idle(page)


def _open_expanders(page) -> None:
    """Open every closed expander, so that what they hold is checked too."""
    for summary in page.locator('[data-testid="stMain"] details:not([open]) > summary').all():
        if summary.is_visible():
            summary.click()
    _wait_idle(page)


def _choose(page, group: str, option: str) -> None:
    page.get_by_role("radiogroup", name=group).get_by_text(option, exact=True).click()
    _wait_idle(page)


def _assert_nothing_cut_off(page, where: str) -> None:
    """Nothing on the page is cut off (CUT_OFF_JS); a full-page screenshot either way."""
    page.wait_for_timeout(800)  # tables and charts take their width after the script run
    cut = page.evaluate(CUT_OFF_JS)
    _screenshot(page, re.sub(r"\W+", "-", where.lower()).strip("-"), folder=ARTIFACTS)
    assert not cut, f"{where}: cut off in a 1400 px window:\n" + "\n".join(json.dumps(c) for c in cut)


# ---- the tests -----------------------------------------------------------------------------

def test_setup_and_data_fit(seeded, chromium):  # noqa: F811  (a fixture argument, not a redefinition)
    page = chromium
    _open(page, seeded["url"], text.SETUP_TITLE)
    page.get_by_role("button", name=text.START).wait_for(timeout=120_000)  # the model resolved, the catalogue drawn
    _open_expanders(page)
    _assert_nothing_cut_off(page, "Setup, masked LM")

    _choose(page, text.TASK_LABEL, text.TASK_NAMES["classification"])
    _choose(page, text.DATA_SOURCE, text.DATA_SOURCES["file"])
    page.get_by_test_id("stFileUploader").locator("input[type=file]").first.set_input_files(str(seeded["data"]))
    page.get_by_text(text.FILE_PREVIEW.format(rows=20)).wait_for(timeout=60_000)
    _wait_idle(page)
    page.get_by_test_id("stMain").get_by_text(text.SWEEP_MODE, exact=True).click()  # the strategies' chips
    _wait_idle(page)
    _open_expanders(page)
    _assert_nothing_cut_off(page, "Setup, classification on an upload")

    _nav(page, text.PAGE_DATA)
    page.get_by_role("heading", name=text.DATA_TITLE, exact=True).wait_for()
    _wait_idle(page)
    page.get_by_role("button", name=text.CURATE).click()
    page.get_by_text(text.REPORT_TABLE, exact=True).wait_for(timeout=120_000)
    _wait_idle(page)
    _assert_nothing_cut_off(page, "Data, curated")

    _nav(page, text.PAGE_SETUP)
    page.get_by_role("heading", name=text.SETUP_TITLE, exact=True).wait_for()
    _wait_idle(page)
    _choose(page, text.TASK_LABEL, text.TASK_NAMES["sft"])
    _choose(page, text.DATA_SOURCE, text.DATA_SOURCES["synthetic"])
    _choose(page, text.SYNTH_KIND, text.SYNTH_KINDS["news"])
    _open_expanders(page)
    _assert_nothing_cut_off(page, "Setup, instruction tuning on news headlines")


RUN_PAGES = {
    "Runs": ("runs?run={classification}", text.RUNS_TITLE),
    "Train": ("train?run={classification}", text.TRAIN_TITLE),
    "Compare": ("compare?run={classification}", text.COMPARE_TITLE),
    "Evaluate, classification": ("evaluate?run={classification}", text.EVALUATE_TITLE),
    "Evaluate, masked LM": ("evaluate?run={mlm}", text.EVALUATE_TITLE),
    "Compare strategies": ("compare_strategies?group={group}", text.SWEEP_TITLE),
}


@pytest.mark.parametrize("where", list(RUN_PAGES))
def test_run_pages_fit(seeded, chromium, where):  # noqa: F811  (a fixture argument, not a redefinition)
    page = chromium
    path, title = RUN_PAGES[where]
    _open(page, f"{seeded['url']}/{path.format(**seeded)}", title)
    _open_expanders(page)
    if where == "Evaluate, classification":  # the human labels: a column of the run's data file
        page.get_by_text(text.HUMAN_SOURCE_RUN_DATA, exact=True).click()
        page.get_by_test_id("stMain").locator("strong", has_text=text.HUMAN_DISAGREEMENTS).wait_for()
        _wait_idle(page)
    _assert_nothing_cut_off(page, where)
