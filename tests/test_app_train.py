"""AppTest: the Train page (start, stop, resume, live panel, failures, reattaching by URL)."""

from __future__ import annotations

from core.present import text
from tests.support import (
    all_text,
    make_run,
    open_page,
    texts,
    wait_for,
)

PAGE = "pages/train.py"


def test_no_runs_offers_to_start(jobs):
    at = open_page(PAGE)
    assert text.NO_RUNS in texts(at.info)
    at.button(key="tb_train_start_first").click().run()
    assert not at.exception
    assert wait_for(lambda: len(jobs.list_runs()) == 1)
    assert at.query_params.get("run") == jobs.list_runs()[0].run_id


def test_completed_run_shows_progress_charts_events_and_log(jobs, runs_root):
    run_id = make_run(runs_root, status="completed")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.METRIC_STEP] == "40 / 40"
    assert metrics[text.METRIC_EPOCH] == "1.00"
    assert metrics[text.METRIC_ELAPSED] == "1m 15s"
    assert at.get("progress")[0].value == 100
    assert len(at.get("plotly_chart")) == 2  # loss (with the learning rate on its right axis), evaluation
    assert "Training started." in at.code[0].value
    assert at.button(key="tb_train_stop").disabled
    assert at.button(key="tb_train_resume").disabled
    assert not at.error


def test_failed_run_shows_the_message_not_a_traceback(jobs, runs_root):
    message = "The training loss became nan at step 7. Lower the learning rate (e.g. by 10x)."
    run_id = make_run(runs_root, status="failed", error=message)
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception
    assert any(message in e for e in texts(at.error))
    assert "Traceback" not in all_text(at)


def test_the_url_picks_the_run_and_a_bad_id_falls_back(jobs, runs_root):
    first = make_run(runs_root, name="first")
    second = make_run(runs_root, name="second")
    at = open_page(PAGE, {"run": first})
    assert at.selectbox[0].value == first
    at = open_page(PAGE, {"run": "../../etc"})
    assert at.selectbox[0].value in (first, second)
    assert not at.exception
    # Picking another run puts it in the URL, so a reloaded tab reattaches to it.
    at.selectbox[0].set_value(first).run()
    assert at.query_params.get("run") == first


def test_start_then_stop_a_live_run(jobs, trainer, runs_root):
    trainer.hold = True  # the fake trainer waits for Stop before its first step
    make_run(runs_root, name="older")
    at = open_page(PAGE)
    at.button(key="tb_train_start").click().run()
    run_id = at.query_params.get("run")
    assert run_id and trainer.started.wait(10)
    at.run()
    assert jobs.snapshot(run_id).status == "running"
    assert not at.button(key="tb_train_stop").disabled
    at.button(key="tb_train_stop").click().run()
    assert not at.exception
    assert wait_for(lambda: jobs.snapshot(run_id).status == "stopped")
    at.run()
    assert text.STATUS_LABELS["stopped"] in all_text(at)


def test_resume_a_stopped_run(jobs, trainer, runs_root):
    run_id = make_run(runs_root, status="stopped", error=None)
    at = open_page(PAGE, {"run": run_id})
    resume = at.button(key="tb_train_resume")
    assert not resume.disabled
    resume.click().run()
    assert not at.exception
    # Without a complete checkpoint the manager restarts the run from step 0 (resume=False).
    assert wait_for(lambda: [call[0] for call in trainer.calls] == [run_id])
    assert wait_for(lambda: jobs.snapshot(run_id).status == "completed")


def test_resume_refusal_is_shown_inline(jobs, runs_root, monkeypatch):
    from core.errors import RunError

    run_id = make_run(runs_root, status="interrupted", error="The server stopped while this run was training.")

    def refuse(_run_id):
        raise RunError("Run x is already running in another Tuneboard process.")

    monkeypatch.setattr(jobs, "resume", refuse)
    at = open_page(PAGE, {"run": run_id})
    assert any("server stopped" in w for w in texts(at.warning))
    at.button(key="tb_train_resume").click().run()
    assert any("another Tuneboard process" in e for e in texts(at.error))
    assert not at.exception


def test_finished_run_without_progress_in_status_uses_its_metrics(jobs, runs_root):
    import json

    run_id = make_run(runs_root, status="completed")
    status_path = runs_root / run_id / "status.json"
    status = json.loads(status_path.read_text())
    for key in ("step", "max_steps", "epoch"):
        status.pop(key, None)
    status_path.write_text(json.dumps(status))
    at = open_page(PAGE, {"run": run_id})
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.METRIC_STEP] == "40 / 40"
    assert at.get("progress")[-1].value == 100


def test_a_deep_linked_page_runs_inside_the_router(jobs, runs_root):
    # AppTest (like a fresh server) runs a switched-to page on its own first; the page reruns
    # through app.py, so it gets the sidebar with the device.
    run_id = make_run(runs_root)
    at = open_page(PAGE, {"run": run_id})
    sidebar = texts(at.sidebar.caption)
    assert run_id in sidebar and any("CPU" in c or "GPU" in c or "NVIDIA" in c for c in sidebar)


def _empty_running_run(root, validation_fraction: float) -> str:
    from core.config import RunConfig
    from core.run.folder import RunFolder, new_run_id
    from core.run.sink import RunSink

    cfg = RunConfig(name="empty")
    cfg.data.validation_fraction = validation_fraction
    cfg.training.eval_steps, cfg.training.logging_steps = 25, 5
    folder = RunFolder.create(root, new_run_id(cfg), cfg)
    RunSink(folder, load_existing=False).set_status(status="running", max_steps=100)
    return folder.run_id


def test_empty_charts_say_when_their_first_points_come(jobs, runs_root):
    at = open_page(PAGE, {"run": _empty_running_run(runs_root, 0.1)})
    assert not at.exception
    captions = texts(at.caption)
    assert text.CHART_EMPTY.format(steps=5) in captions  # the loss chart: the logging interval
    assert text.CHART_EMPTY.format(steps=25) in captions  # evaluation: the eval interval
    assert text.NOT_AVAILABLE not in " ".join(c for c in captions if "steps" in c)


def test_a_run_without_validation_says_it_is_not_evaluated(jobs, runs_root):
    at = open_page(PAGE, {"run": _empty_running_run(runs_root, 0.0)})
    assert not at.exception
    assert text.CHART_NO_EVAL in texts(at.caption)


def test_a_failed_run_resumes_only_from_a_complete_checkpoint(jobs, runs_root):
    run_id = make_run(runs_root, status="failed", error="The disk is full.")
    at = open_page(PAGE, {"run": run_id})
    assert at.button(key="tb_train_resume").disabled  # nothing to continue from
    checkpoint = runs_root / run_id / "checkpoint-20"
    checkpoint.mkdir()
    for name in ("optimizer.pt", "scheduler.pt", "model.safetensors"):
        (checkpoint / name).write_bytes(b"x")
    (checkpoint / "trainer_state.json").write_text('{"global_step": 20}')
    at.run()
    assert not at.button(key="tb_train_resume").disabled


def test_the_sidebar_never_shows_a_stale_step_beside_the_live_page(jobs, trainer, runs_root):
    """Issue 27: on Train the sidebar rests while the page shows the active run live, and kept the step of
    the page's last full run ("Step 0") while the page said 12 / 12. It now leaves the progress to the page;
    elsewhere, and once the run has ended, it reads the same fields as the page (ui.widgets.run_progress)."""
    import threading

    from core.config import RunConfig

    trainer.gate = threading.Event()  # running, before its first step
    run_id = jobs.submit(RunConfig(name="live"))
    try:
        assert trainer.started.wait(10)
        at = open_page(PAGE, {"run": run_id})
        assert not at.exception, [e.value for e in at.exception]
        assert text.SIDEBAR_PROGRESS_ON_PAGE in texts(at.sidebar.caption)
        assert not at.sidebar.get("progress")  # no step that would go stale
        runs = open_page("pages/runs.py", {"run": run_id})  # the sidebar refreshes there: it shows the step
        assert runs.sidebar.get("progress") and text.SIDEBAR_PROGRESS_ON_PAGE not in texts(runs.sidebar.caption)
    finally:
        trainer.gate.set()
    assert wait_for(lambda: jobs.snapshot(run_id).status == "completed" and not jobs.is_busy())
    at.run()
    page = {m.label: m.value for m in at.metric}[text.METRIC_STEP]
    sidebar = at.sidebar.get("progress")[0].proto.text
    assert page == "12 / 12" and sidebar == text.SIDEBAR_STEP.format(step=12, max_steps=12)


def test_the_loss_chart_waits_for_data_and_marks_its_first_point(jobs, runs_root):
    """Issue 27: before its first logged losses the chart drew no visible point beside a learning-rate axis.
    With no loss yet the page says when it comes (test_empty_charts_say_when_their_first_points_come)."""
    import json

    from core.run.folder import RunFolder
    from core.run.sink import RunSink

    run_id = _empty_running_run(runs_root, 0.1)
    RunSink(RunFolder(runs_root / run_id)).metric({"step": 5, "epoch": 0.1, "loss": 2.5, "learning_rate": 1e-4})
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    chart = next(c for c in at.get("plotly_chart") if c.key == "tb_train_chart_loss")
    figure = json.loads(chart.proto.spec)
    assert "markers" in figure["data"][0]["mode"] and figure["data"][0]["x"] == [5]
    assert "yaxis2" not in figure["layout"]  # one learning rate: no axis of its own yet


# ---- a run that ended still improving (issue 27: defaults that train enough) ---------------------

def _still_improving_run(root, **status) -> str:
    from core.run.folder import RunFolder
    from core.run.sink import RunSink

    run_id = make_run(root, task="classification", status="completed", final_model=True)
    sink = RunSink(RunFolder.open(root, run_id), load_existing=True)
    sink.set_status(**status)
    return run_id


def test_a_run_still_improving_offers_to_train_further_from_its_model(jobs, trainer, runs_root):
    run_id = _still_improving_run(runs_root, still_improving={
        "metric": "eval_f1", "step": 40, "value": 0.83, "before": 0.79, "evaluations": 8})
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception
    hint = text.STILL_IMPROVING.format(metric="F1", before="0.79", value="0.83", evaluations=8)
    assert hint in texts(at.info)
    at.button(key="tb_train_further").click().run()
    assert not at.exception
    further = at.query_params.get("run")
    assert further and further != run_id  # the page follows the new run
    assert wait_for(lambda: jobs.snapshot(further).status == "completed")
    cfg = jobs.config(further)
    assert cfg.model.source == f"run:{run_id}" and cfg.task == "classification"
    assert cfg.name == text.FINE_TUNE_FURTHER_NAME.format(name="demo")


def test_a_run_that_levelled_off_offers_no_hint(jobs, runs_root):
    at = open_page(PAGE, {"run": _still_improving_run(runs_root, still_improving=None)})
    assert not at.exception
    assert not any("Still improving" in i for i in texts(at.info))
    assert not [b for b in at.button if b.key == "tb_train_further"]


def test_an_automatic_eval_interval_is_read_from_the_runs_plan(jobs, runs_root):
    from core.config import RunConfig
    from core.run.folder import RunFolder, new_run_id
    from core.run.sink import RunSink

    cfg = RunConfig(name="auto")  # eval_steps empty: the run picks it once its data is prepared
    folder = RunFolder.create(runs_root, new_run_id(cfg), cfg)
    sink = RunSink(folder, load_existing=False)
    sink.set_status(status="running", max_steps=100)
    at = open_page(PAGE, {"run": folder.run_id})
    assert not at.exception
    assert text.CHART_EMPTY_PLANNED in texts(at.caption)
    sink.set_status(run_length={"steps": 100, "eval_steps": 13, "evaluations": 8})
    at = open_page(PAGE, {"run": folder.run_id})
    assert text.CHART_EMPTY.format(steps=13) in texts(at.caption)
