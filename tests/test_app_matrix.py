"""AppTest: every page, over its main widget states, raises nothing and shows no error it did not mean to.

The matrix is task (mlm, classification, causal, sft) x data source (the synthetic reviews, an uploaded file
whose columns are `text`, `label` and `human`) x run state (no runs, a finished run with its probes and
per-example predictions, a failed run, a running run with one queued behind it). Each case starts on Setup
(task, source and upload as a user sets them; with no runs, every strategy of the task and every choice of
its data too), then visits every page of the router with each of the case's runs selected, uploads the
file as Evaluate's human labels, and sets every choice of the page to each of its options (view filters,
steps, metrics, the human-label source and the column pickers it brings) and flips every toggle. Buttons
are not pressed: what they start is covered by each page's own tests. No training: runs are folders written
as the engine writes them (tests.support.make_run) or the fake trainer's, held running until the test ends.

A page may show an error only where it means to: the failed run's own message, and on Setup a validation
message while the walk picks a column that cannot serve; never one that leaks a Python exception.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from core.config import RunConfig, strategies_for
from core.data.probe_texts import run_probe_texts
from core.files import atomic_write_json
from core.insight import predictions as insight
from core.present import text
from core.run.folder import RunFolder
from core.run.sink import RunSink
from tests.support import ROOT, app, make_run, texts, wait_for
from tests.test_prompting import add_answer_predictions

TASKS = ("mlm", "classification", "causal", "sft")
SOURCES = ("synthetic", "file")
STATES = ("none", "completed", "failed", "running")
PAGES = ("pages/setup.py", "pages/data.py", "pages/train.py", "pages/compare.py", "pages/playground.py",
         "pages/evaluate.py", "pages/runs.py", "pages/compare_strategies.py")
# A message that leaks an exception instead of saying what to do ("KeyError: 'text'", a traceback).
PYTHON_ERROR = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception)\b:|object has no attribute|not in index")
FAILURE = "The training loss became nan at step 7. Lower the learning rate (e.g. by 10x)."
TAB_PAGES = ("pages/setup.py", "pages/data.py")  # drawn from the tab's config, not from a run
SETUP_FIELD = "cfg:"  # Setup's form widgets: filled as a user fills the form, not walked (but for its data)
SETUP_DATA_FIELD = "cfg:data."
SETUP_PARAMETERS = ("cfg:data.source@0", "cfg:data.upload@0")  # the case's own: not walked
RUN_PICKER = "tb_run_picker"
HUMAN_UPLOAD = "tb_eval_human_upload"
MAX_OPTIONS = 6  # per choice: a column picker can offer many
MAX_DEPTH = 2  # choices under choices under choices

HEADLINES = {
    "business": ["Stocks rally as the central bank holds rates", "Oil prices slide on weak demand",
                 "Retailer posts record holiday sales", "Chipmaker shares jump after earnings"],
    "sports": ["Striker signs for a record fee", "Goalkeeper saves three penalties in the final",
               "Champion retires after twenty seasons", "Underdogs win the cup in extra time"],
    "politics": ["Parliament passes the budget bill", "Senate delays the vote on energy",
                 "Minister resigns over expenses", "Opposition wins the regional election"],
    "science": ["Telescope spots a distant water world", "New vaccine shows strong results",
                "Glacier melt speeds up, study finds", "Rover finds traces of ancient lakes"],
}
# Five rounds of each headline, numbered so no row repeats: enough rows for the default batches after the split.
ROWS = [(f"{headline} ({n})", label) for n in range(5) for label, lines in HEADLINES.items() for headline in lines]
LABELS = list(HEADLINES)
# A second annotator who calls every fifth headline 'business'.
HUMAN = ["business" if i % 5 == 0 else label for i, (_, label) in enumerate(ROWS)]


@pytest.fixture(autouse=True)
def error_details():
    """The exception's type, message and trace on the page, where a user sees only a redacted notice
    (.streamlit/config.toml): the failure then says what broke."""
    from streamlit import config

    before = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")
    yield
    config.set_option("client.showErrorDetails", before)


def test_the_matrix_covers_every_page_of_the_router():
    routed = re.findall(r'st\.Page\("([^"]+)"', (ROOT / "ui" / "router.py").read_text(encoding="utf-8"))
    assert sorted(routed) == sorted(PAGES)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("task", TASKS)
def test_every_page_raises_nothing(task, source, state, jobs, trainer, runs_root, tmp_path):
    data = tmp_path / "news.csv"
    pd.DataFrame({"text": [t for t, _ in ROWS], "label": [label for _, label in ROWS], "human": HUMAN}).to_csv(
        data, index=False)
    at = app().run()
    check(at, "Setup")
    at = fill_setup(at, task, source, data.read_bytes(), walk=state == "none")
    cfg = at.session_state["tb_config"]
    runs, allowed = make_runs(state, cfg, task, source, data, jobs, trainer, runs_root)
    for run_id in runs or [None]:
        if run_id is not None:
            at.query_params["run"] = run_id
        for page in PAGES[1:]:
            at.switch_page(page).run()
            check(at, f"{page} ({run_id})", allowed)
            uploader = [u for u in at.file_uploader if u.key == HUMAN_UPLOAD]
            if uploader:  # Evaluate's human labels, uploaded: the text, label and human columns of the case's file
                uploader[0].set_value(("humans.csv", data.read_bytes(), "text/csv")).run()
                check(at, f"{page} ({run_id}): human labels uploaded", allowed)
            if page not in TAB_PAGES or state == "none":  # the tab's own pages do not change with the runs
                walk_page(at, f"{page} ({run_id})", allowed, runs)


# ---- Setup -------------------------------------------------------------------------------------------

def key(path: str) -> str:
    return f"cfg:{path}@0"


def fill_setup(at, task: str, source: str, csv: bytes, *, walk: bool):
    """Task, data source and (for a file) the upload, as a user sets them; then, when asked, every strategy of the
    task (on the synthetic data: the strategies do not change with the source) and every choice of the data."""
    at.radio(key=key("task")).set_value(task).run()
    check(at, f"Setup: task {task}")
    if source == "file":
        at.radio(key=key("data.source")).set_value("file").run()
        at.file_uploader(key=key("data.upload")).upload("news.csv", csv, "text/csv")
        at.run()
        check(at, f"Setup: {task} on an uploaded file")
    if not walk:
        return at
    if source == "synthetic":
        chosen = at.session_state["tb_config"].strategy.name
        for strategy in [*(s for s in strategies_for(task) if s != chosen), chosen]:
            at.selectbox(key=key("strategy.name")).set_value(strategy).run()
            check(at, f"Setup: {task}, {source}, strategy {strategy}")
    # The data's own choices (the kind of synthetic data; a file's text, label, prompt and answer columns):
    # a column that cannot serve is a validation message under its picker, never a crash.
    walk_page(at, f"Setup: {task}, {source}", {""}, fields=SETUP_DATA_FIELD)
    return at


# ---- runs ----------------------------------------------------------------------------------------------

def make_runs(state: str, cfg: RunConfig, task: str, source: str, data, jobs, trainer, runs_root) -> tuple[list[str], set[str]]:
    """The case's runs (ids) and the error messages its pages may show."""
    if state == "none":
        return [], set()
    cfg = RunConfig.from_dict(cfg.to_dict())
    if source == "file":
        cfg.data.path = str(data)  # the stored upload may be renamed; the run reads the same rows
    if state == "running":
        trainer.hold = True  # waits for Stop (the manager's shutdown at the end of the test) before each step
        running = jobs.submit(cfg)
        assert trainer.started.wait(10)
        queued = jobs.submit(cfg)
        assert wait_for(lambda: jobs.snapshot(queued).status == "queued")
        return [running, queued], set()
    strategy = cfg.strategy.name
    failed = state == "failed"
    run_id = make_run(runs_root, task=task, strategy=strategy, status=state, probes=False, final_model=not failed,
                      error=FAILURE if failed else None)
    folder = RunFolder(runs_root / run_id)
    cfg.save(folder.config_path)  # the case's task, data and strategy, as Setup would have started it
    if not failed:
        add_probes(folder, cfg)
        add_predictions(folder, run_id, cfg)
    return [run_id], {FAILURE} if failed else set()


def add_probes(folder: RunFolder, cfg: RunConfig) -> None:
    """Base, evaluation and final probe scores for the probes a run of this config scores, shaped per task."""
    sink = RunSink(folder)
    for i, probe in enumerate(run_probe_texts(cfg)[:3]):
        if cfg.task == "classification":
            names = LABELS if cfg.data.source == "file" else ["negative", "positive"]
            base = [{"label": name, "score": 1 / len(names)} for name in names]
            tuned = [{"label": name, "score": 0.7 if n == i % len(names) else 0.3 / (len(names) - 1)}
                     for n, name in enumerate(names)]
        elif cfg.task == "sft":
            base, tuned = [{"answer": "I am not sure.", "score": 1.0}], [{"answer": LABELS[i % 4], "score": 1.0}]
        else:
            base = [{"token": "the", "score": 0.2}, {"token": "a", "score": 0.1}]
            tuned = [{"token": "rates", "score": 0.4}, {"token": "fee", "score": 0.2}]
        sink.probe(0, "base", probe, base)
        sink.probe(20, "eval", probe, base)
        sink.probe(40, "final", probe, tuned)


def add_predictions(folder: RunFolder, run_id: str, cfg: RunConfig) -> None:
    """Per-example predictions of the base and fine-tuned models, on the case's own rows where they are a file."""
    if cfg.task == "sft":
        add_answer_predictions(folder.path.parent, run_id)
        return
    rows = ROWS[:24] if cfg.data.source == "file" else [(f"review number {i}", ("negative", "positive")[i % 2])
                                                         for i in range(12)]
    names = sorted({label for _, label in rows})
    row_texts, gold = [t for t, _ in rows], [names.index(label) for _, label in rows]
    out = folder.predictions_path
    atomic_write_json(out / insight.META_FILE, {
        "task": cfg.task, "label_names": names if cfg.task == "classification" else [], "rows_used": len(rows),
        "rows_total": len(rows), "sampled": False, "final_step": 40})
    if cfg.task == "classification":
        def probabilities(wrong_every: int) -> np.ndarray:
            shares = np.full((len(rows), len(names)), 0.1 / max(1, len(names) - 1))
            for i, g in enumerate(gold):
                shares[i, (g + (i % wrong_every == 0)) % len(names)] = 0.9
            return shares / shares.sum(axis=1, keepdims=True)

        base = insight.classification_frame(row_texts, gold, probabilities(2), names)
        final = insight.classification_frame(row_texts, gold, probabilities(5), names)
    else:
        base = insight.loss_frame(row_texts, [3.0] * len(rows))
        final = insight.loss_frame(row_texts, [2.0 + (i % 3) for i in range(len(rows))])
    insight.write_frame_atomically(out / "base.parquet", base)
    insight.write_frame_atomically(out / "final.parquet", final)


# ---- checks ----------------------------------------------------------------------------------------------

def check(at, where: str, allowed: set[str] = frozenset()) -> None:
    """No exception on the page, and no error other than the ones this case means to show ("" allows any message
    that is not a Python error's: Setup's validation while the walk picks columns that cannot serve)."""
    assert not at.exception, f"{where}: " + "\n".join("\n".join([e.value, *e.stack_trace]) for e in at.exception)
    unintended = [e for e in texts(at.error) if PYTHON_ERROR.search(e) or not any(message in e for message in allowed)]
    assert not unintended, f"{where}: {unintended}"


def walk_page(at, where: str, allowed: set[str], extra: Sequence[str] = (), *, fields: str | None = None,
         known: frozenset = frozenset(), depth: int = 0) -> None:
    """Set every choice of the page to each of its options, and flip every toggle, checking each time.

    A choice that appears under an option (the human-label pickers once a source is chosen) is walked under it;
    then the choice goes back to the page's own value, for the choices after it. The run picker is not walked:
    every run of the case is visited anyway. `extra`: values an option may stand for besides text's table keys
    (the case's run ids, for the overlays). `fields`: walk Setup's form widgets of this prefix instead.
    """
    found = [(kind, k) for kind in (*CHOICES, "toggle") for k in _keys(at, kind, fields) if (kind, k) not in known]
    known = known | set(found)
    for kind, widget_key in found:
        widget = _widget(at, kind, widget_key)
        if widget is None:
            continue
        if kind == "toggle":
            widget.set_value(not widget.value).run()
            check(at, f"{where}: {widget_key} flipped", allowed)
            continue
        first = widget.value
        for option in list(widget.options)[:MAX_OPTIONS]:
            widget = _widget(at, kind, widget_key)
            value = _value_of(widget, option, extra) if widget is not None else _UNKNOWN
            if value is _UNKNOWN:
                continue
            widget.set_value([value] if kind == "multiselect" else value).run()
            check(at, f"{where}: {widget_key} = {option!r}", allowed)
            if depth < MAX_DEPTH:
                walk_page(at, f"{where}: {widget_key} = {option!r}", allowed, extra, fields=fields, known=known,
                     depth=depth + 1)
        widget = _widget(at, kind, widget_key)
        if widget is not None and widget.value != first:
            widget.set_value(first).run()
            check(at, f"{where}: {widget_key} back to {first!r}", allowed)


CHOICES = ("selectbox", "radio", "button_group", "select_slider", "multiselect")
_UNKNOWN = object()
# The values behind formatted options are mostly the keys of core.present.text's name tables (a filter's id,
# a strategy's name, a disagreement kind): each option is set as the value that formats to it.
_NAMED = [k for name in dir(text) if isinstance(getattr(text, name), dict) for k in getattr(text, name) if isinstance(k, str)]


def _value_of(widget, option: str, extra: Sequence[str] = ()):
    """The value the widget shows as `option`: itself, a key of text's tables, an extra, or a number in it; else _UNKNOWN."""
    for value in (option, *_NAMED, *extra, *(int(n) for n in re.findall(r"\d+", option))):
        try:
            if str(widget.format_func(value)) == option:
                return value
        except Exception:  # noqa: S112 - a format function for other values refuses this candidate
            continue
    return _UNKNOWN


def _keys(at, kind: str, fields: str | None = None) -> list[str]:
    """Keys of the page's widgets of this kind that the walk sets: not Setup's form (filled as a user fills it)
    unless `fields` names a prefix of it, nor the run picker."""
    if fields is not None:
        return [w.key for w in at.get(kind) if w.key and w.key.startswith(fields) and w.key not in SETUP_PARAMETERS]
    return [w.key for w in at.get(kind) if w.key and not w.key.startswith((SETUP_FIELD, RUN_PICKER))]


def _widget(at, kind: str, widget_key: str):
    """The enabled widget of this kind and key on the page now, or None (gone, or disabled for the user too)."""
    found = [w for w in at.get(kind) if w.key == widget_key and not getattr(w.proto, "disabled", False)]
    return found[0] if found else None
