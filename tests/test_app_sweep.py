"""AppTest: Setup's "Compare strategies" mode and the Compare strategies page (table, curves,
trade-off, recommendation, stop / resume / delete)."""

from __future__ import annotations

import contextlib

import pytest

from core.config import RunConfig
from core.plan import sweep
from core.present import text
from core.run.folder import RunFolder
from tests.support import (
    FakeTrainer,
    app,
    open_page,
    texts,
    wait_for,
)

PAGE = "pages/compare_strategies.py"


def classification_config() -> RunConfig:
    cfg = RunConfig(task="classification", name="shoot")
    cfg.data.synthetic.rows = 200
    return cfg


@contextlib.contextmanager
def queued_group(runs_root, monkeypatch, trainer: FakeTrainer):
    """A two-member group queued on a manager the pages use, its first member started; shut down after."""
    import ui.state
    from core.service.jobs import JobManager

    manager = JobManager(runs_root, train_fn=trainer, preflight_fn=lambda cfg: None)
    monkeypatch.setattr(ui.state, "get_jobs", lambda: manager)
    try:
        group_id = sweep.submit_group(manager, classification_config(), ["full", "lora"])
        assert trainer.started.wait(10)
        yield manager, group_id
    finally:
        if getattr(trainer, "gate", None) is not None:
            trainer.gate.set()
        manager.shutdown(timeout=10)


def test_setup_mode_queues_a_group_and_opens_its_view(jobs, runs_root):
    at = app().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "tb_sweep_strategies" not in [w.key for w in at.get("multiselect")]  # off until switched on
    at.toggle(key="tb_sweep_mode").set_value(True).run()
    assert at.multiselect(key="tb_sweep_strategies").value == ["full", "lora", "feature-extraction"]
    at.multiselect(key="tb_sweep_strategies").set_value(["full", "lora"]).run()
    at.text_input(key="tb_sweep_rates").set_value("1e-4, 5e-4").run()
    assert text.SWEEP_RUN_COUNT.format(runs=4) in texts(at.caption)
    at.text_input(key="tb_sweep_rates").set_value("1e-4, soon").run()
    assert any("not a learning rate" in e for e in texts(at.error))
    assert at.button(key="tb_sweep_start").disabled
    at.text_input(key="tb_sweep_rates").set_value("").run()
    at.button(key="tb_sweep_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == text.SWEEP_TITLE
    group_id = at.query_params.get("group")
    group = sweep.load_group(runs_root, group_id)
    assert [m.strategy for m in group.members] == ["full", "lora"]
    assert wait_for(lambda: sweep.member_states(jobs, group) == ["completed", "completed"])


def test_empty_view(jobs):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert text.SWEEP_NO_GROUPS in texts(at.info)


def test_view_shows_table_tradeoff_curves_and_recommendation(jobs, runs_root):
    group_id = sweep.submit_group(jobs, classification_config(), ["full", "lora"])
    group = sweep.load_group(runs_root, group_id)
    assert wait_for(lambda: not jobs.is_busy())
    full, lora = group.run_ids()
    RunFolder(runs_root / full).update_status(elapsed_s=100.0, trainable_params=1000, total_params=1000,
                                              final_metrics={"eval_f1": 0.90, "eval_loss": 0.3},
                                              peak_memory_bytes=1_500_000_000)
    RunFolder(runs_root / lora).update_status(elapsed_s=40.0, trainable_params=12, total_params=1012,
                                              final_metrics={"eval_f1": 0.882, "eval_loss": 0.35})
    at = open_page(PAGE, {"group": group_id})
    assert not at.exception, [e.value for e in at.exception]
    lora, full = text.STRATEGY_NAMES["lora"], text.STRATEGY_NAMES["full"]  # display names, not ids (issue 27)
    assert (f"{lora} reaches 98% of {full}'s F1 in 40% of the time, training 1.2% of the parameters."
            in texts(at.success))
    table = at.dataframe[0].value
    assert list(table[text.SWEEP_COLUMNS["label"]]) == [full, lora]
    assert list(table[text.SWEEP_COLUMNS["front"]]) == ["★", "★"]
    from ui.widgets import format_bytes

    assert list(table[text.SWEEP_COLUMNS["peak_memory"]]) == [format_bytes(1_500_000_000), ""]  # blank: not recorded
    assert [chart.key for chart in at.get("plotly_chart")] == ["tb_sweep_tradeoff", "tb_sweep_loss"]
    # The fake runs logged no F1: a note in its place, not an empty chart.
    assert text.OVERLAY_EMPTY.format(metric=text.METRIC_NAMES["eval_f1"]) in texts(at.caption)
    assert not at.button(key="tb_sweep_delete").disabled and at.button(key="tb_sweep_stop").disabled


def test_view_stops_resumes_and_deletes_the_group(runs_root, monkeypatch):
    held = FakeTrainer(hold=True)
    with queued_group(runs_root, monkeypatch, held) as (manager, group_id):
        at = open_page(PAGE, {"group": group_id})
        assert not at.exception, [e.value for e in at.exception]
        at.button(key="tb_sweep_stop").click().run()
        assert wait_for(lambda: not manager.is_busy())
        group = sweep.load_group(runs_root, group_id)
        assert sweep.member_states(manager, group) == ["stopped", "cancelled"]
        held.hold = False
        at.run()
        at.button(key="tb_sweep_resume").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert wait_for(lambda: sweep.member_states(manager, sweep.load_group(runs_root, group_id))
                        == ["completed", "completed"])
        at.run()
        at.button(key="tb_sweep_delete").click().run()
        at.button(key="tb_sweep_delete_confirm").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert sweep.list_groups(runs_root) == [] and manager.list_runs() == []
        assert text.SWEEP_NO_GROUPS in texts(at.info)


def test_setup_suggests_a_learning_rate_and_uses_it(jobs, monkeypatch):
    from core.training import lr_finder

    rates = [lr_finder.ramp_rate(i, 20) for i in range(20)]
    losses = [2.0 - i * 0.05 for i in range(14)] + [3.0, 9.0, 30.0, 90.0, 200.0, 500.0]
    pick, minimum, smoothed = lr_finder.pick_learning_rate(rates, losses)
    fake = lr_finder.RangeTest(tuple(rates), tuple(losses), tuple(smoothed), pick, minimum, 20, 20, True, 3.0)
    seen: list[RunConfig] = []
    monkeypatch.setattr(lr_finder, "find_learning_rate", lambda cfg: seen.append(cfg) or fake)
    at = app().run()
    at.button(key="tb_lr_finder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert seen and seen[0].task == "mlm"
    assert len(at.get("plotly_chart")) >= 1
    rounded = float(f"{pick:.1e}")
    assert text.LR_FINDER_RESULT.format(rate=pick, minimum=minimum, steps=20, seconds=3.0) in texts(at.caption)
    at.button(key="tb_lr_finder_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    from ui.state import CONFIG_KEY

    assert at.session_state[CONFIG_KEY].training.learning_rate == rounded
    assert at.button(key="tb_lr_finder_use").disabled  # the pick is in use


def test_setup_learning_rate_field_defaults_follows_the_strategy_and_offers_auto(jobs):
    from core.config import default_learning_rate
    from ui.state import CONFIG_KEY

    at = app().run()
    assert not at.exception, [e.value for e in at.exception]
    field = next(w for w in at.number_input if w.label == text.LEARNING_RATE)
    assert field.value is None  # not set: the default, shown as the placeholder
    assert field.proto.placeholder == text.LR_DEFAULT_PLACEHOLDER.format(rate=default_learning_rate("mlm", "full"))
    assert at.session_state[CONFIG_KEY].training.learning_rate is None
    strategy = next(w for w in at.selectbox if w.label == text.STRATEGY_LABEL)
    strategy.set_value("lora").run()
    field = next(w for w in at.number_input if w.label == text.LEARNING_RATE)
    assert field.proto.placeholder == text.LR_DEFAULT_PLACEHOLDER.format(rate=default_learning_rate("mlm", "lora"))
    field.set_value(2e-4).run()
    assert at.session_state[CONFIG_KEY].training.learning_rate == pytest.approx(2e-4)
    auto = next(w for w in at.checkbox if w.label == text.LR_AUTO_LABEL)
    auto.check().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[CONFIG_KEY].training.learning_rate == "auto"
    assert next(w for w in at.number_input if w.label == text.LEARNING_RATE).disabled
    assert "learning_rate: auto" in at.session_state[CONFIG_KEY].to_yaml()
    next(w for w in at.checkbox if w.label == text.LR_AUTO_LABEL).uncheck().run()
    assert at.session_state[CONFIG_KEY].training.learning_rate == pytest.approx(2e-4)


def figures(at) -> dict[str, dict]:
    """The page's plotly figures by element key."""
    import json

    return {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def test_before_any_run_finishes_notes_replace_empty_charts(runs_root, monkeypatch):
    """Issue 27: empty charts with -1...6 axes were drawn while the group had no result yet."""
    import threading

    held = FakeTrainer()
    held.gate = threading.Event()  # the first member waits before its first step
    with queued_group(runs_root, monkeypatch, held) as (_, group_id):
        at = open_page(PAGE, {"group": group_id})
        assert not at.exception, [e.value for e in at.exception]
        assert not at.get("plotly_chart")
        assert text.SWEEP_TRADEOFF_WAITING in texts(at.info) and text.SWEEP_CURVES_WAITING in texts(at.info)


def test_curves_show_single_points_in_each_strategys_colour_with_short_names(jobs, runs_root):
    """Issue 27: one evaluation per run drew an invisible line; colours must be the strategy's everywhere."""
    from core.present import legend

    group_id = sweep.submit_group(jobs, classification_config(), ["full", "lora"])
    group = sweep.load_group(runs_root, group_id)
    assert wait_for(lambda: not jobs.is_busy())
    for run_id in group.run_ids():
        RunFolder(runs_root / run_id).update_status(elapsed_s=10.0, final_metrics={"eval_f1": 0.8, "eval_loss": 0.3})
        with open(runs_root / run_id / "metrics.jsonl", "a", encoding="utf-8") as out:
            out.write('{"step": 12, "eval_loss": 0.3, "eval_f1": 0.8}\n')
    at = open_page(PAGE, {"group": group_id})
    assert not at.exception, [e.value for e in at.exception]
    eval_figure = figures(at)["tb_sweep_eval"]
    traces = [t for t in eval_figure["data"] if len(t.get("x", [])) == 1]
    assert len(traces) == 2 and all("markers" in t["mode"] for t in traces)
    assert [t["name"] for t in traces] == [text.STRATEGY_NAMES["full"], text.STRATEGY_NAMES["lora"]]
    assert [t["line"]["color"] for t in traces] == [legend.strategy_color("full"), legend.strategy_color("lora")]
    tradeoff = figures(at)["tb_sweep_tradeoff"]
    marked = {t["name"]: t["marker"]["color"] for t in tradeoff["data"] if t.get("mode") == "markers+text"}
    assert marked == {text.STRATEGY_NAMES["full"]: legend.strategy_color("full"),
                      text.STRATEGY_NAMES["lora"]: legend.strategy_color("lora")}


def test_buttons_follow_the_group_once_it_finishes(runs_root, monkeypatch):
    """Issue 27: after the group finished, Stop stayed enabled and Delete disabled until a reload. The page
    registers what it drew, so the sidebar's fragment reruns it when a member ends."""
    import threading

    from ui import state

    held = FakeTrainer()
    held.gate = threading.Event()
    with queued_group(runs_root, monkeypatch, held) as (manager, group_id):
        at = open_page(PAGE, {"group": group_id})
        assert not at.button(key="tb_sweep_stop").disabled and at.button(key="tb_sweep_delete").disabled
        drawn = at.session_state[state.WATCH_HISTORY_KEY]
        assert drawn == state.history_fingerprint(manager.list_runs())
        held.gate.set()
        assert wait_for(lambda: not manager.is_busy())
        assert state.history_fingerprint(manager.list_runs()) != drawn  # the sidebar's fragment reruns the page
        at.run()
        assert at.button(key="tb_sweep_stop").disabled and not at.button(key="tb_sweep_delete").disabled
