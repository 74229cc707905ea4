"""AppTest: the router, the sidebar and the Setup page (form, validation, uploads, YAML, Start)."""

from __future__ import annotations

import yaml

from core.config import RunConfig
from tests.test_app_support import (  # noqa: F401 - fixtures
    all_text,
    app,
    clear_streamlit_caches,
    jobs,
    make_run,
    runs_root,
    texts,
    trainer,
    wait_for,
)
from ui import text


def key(path: str, *extra: str, gen: int = 0) -> str:
    suffix = "".join(f"/{part}" for part in extra)
    return f"cfg:{path}{suffix}@{gen}"


def setup_page(jobs):  # noqa: F811 - the fixture
    at = app().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_router_shows_setup_with_defaults_and_sidebar(jobs):  # noqa: F811
    at = setup_page(jobs)
    assert at.title[0].value == text.SETUP_TITLE
    # The default config is valid and ready to start the seed demo.
    assert text.CONFIG_OK in texts(at.success)
    assert not at.button(key="tb_setup_start").disabled
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[text.PARAMS_TOTAL].endswith("M")  # the bundled MiniLM, estimated without weights
    assert metrics[text.ESTIMATE].startswith("about")
    sidebar = "\n".join(texts(at.sidebar.caption))
    assert text.SIDEBAR_NO_RUN in sidebar
    assert "CPU" in sidebar or "GPU" in sidebar or "NVIDIA" in sidebar
    # Help texts come from the RunConfig field metadata.
    assert at.number_input(key=key("training.batch_size")).help.startswith("Examples per step")


def test_sidebar_shows_the_selected_run(jobs, runs_root):  # noqa: F811
    run_id = make_run(runs_root, status="completed")
    at = app({"run": run_id}).run()
    assert run_id in texts(at.sidebar.caption)
    assert at.sidebar.get("progress")


def test_validation_error_appears_next_to_its_widget(jobs):  # noqa: F811
    at = setup_page(jobs)
    at.number_input(key=key("training.batch_size")).set_value(0).run()
    errors = [e for e in texts(at.error) if "training.batch_size" in e]
    assert len(errors) == 2  # under the widget, and in the summary next to Start
    assert at.button(key="tb_setup_start").disabled
    assert not at.exception


def test_strategy_knobs_follow_the_strategy(jobs):  # noqa: F811
    at = setup_page(jobs)
    at.selectbox(key=key("strategy.name")).set_value("lora").run()
    labels = [w.label for w in at.number_input]
    assert text.LORA_R in labels and text.LORA_ALPHA in labels
    assert at.get("toggle")  # merge on export
    at.selectbox(key=key("strategy.name")).set_value("freeze-layers").run()
    labels = [w.label for w in at.number_input]
    assert text.FREEZE_LAYERS in labels and text.LORA_R not in labels
    assert not at.exception


def test_uploaded_csv_is_previewed_and_stored_safely(jobs, isolated_runs):  # noqa: F811
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    csv = b"text,label\nNike shoes are great,1\nAdidas socks are awful,0\n"
    at.file_uploader(key=key("data.upload")).upload("../../My Reviews!.csv", csv, "text/csv")
    at.run()
    assert not at.exception
    assert at.dataframe, "a preview of the upload"
    uploads = isolated_runs.parent / "uploads"
    stored = list(uploads.iterdir())
    assert len(stored) == 1 and stored[0].name.endswith("My_Reviews_.csv")
    assert stored[0].read_bytes() == csv
    assert at.selectbox(key=key("data.text_column", "text|label")).value == "text"
    assert text.CONFIG_OK in texts(at.success)


def test_upload_missing_the_text_column_is_flagged(jobs):  # noqa: F811
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    at.file_uploader(key=key("data.upload")).upload("reviews.csv", b"review,stars\ngood,5\nbad,1\n", "text/csv")
    at.run()
    assert not at.exception
    missing = [e for e in texts(at.error) if "'text'" in e and "review, stars" in e]
    assert missing, texts(at.error)
    assert at.button(key="tb_setup_start").disabled


def test_empty_and_broken_uploads_show_errors_not_tracebacks(jobs):  # noqa: F811
    at = setup_page(jobs)
    at.radio(key=key("data.source")).set_value("file").run()
    uploader = at.file_uploader(key=key("data.upload"))
    uploader.upload("empty.csv", b"", "text/csv")
    at.run()
    assert any("empty.csv is empty" in e for e in texts(at.error))
    assert not at.exception
    at.file_uploader(key=key("data.upload")).set_value(("header.csv", b"text,label\n", "text/csv"))
    at.run()
    assert any("header.csv has a header" in e for e in texts(at.error)), texts(at.error)
    assert not at.exception
    # Streamlit refuses other extensions itself; a binary file disguised as CSV is refused by core.
    at.file_uploader(key=key("data.upload")).set_value(("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00binary", "text/csv"))
    at.run()
    assert at.error and not at.exception
    assert at.button(key="tb_setup_start").disabled


def test_config_yaml_round_trip_and_bad_yaml(jobs):  # noqa: F811
    at = setup_page(jobs)
    assert at.get("download_button"), "Download config.yaml"
    cfg = RunConfig(task="classification", name="from-yaml")
    cfg.training.batch_size = 8
    cfg.strategy.name = "lora"
    at.file_uploader(key="tb_setup_yaml").upload("run.yaml", cfg.to_yaml().encode(), "application/x-yaml")
    at.run()
    assert not at.exception
    assert at.session_state["tb_config"].name == "from-yaml"
    assert at.number_input(key=key("training.batch_size", gen=1)).value == 8
    assert at.radio(key=key("task", gen=1)).value == "classification"
    assert text.LORA_R in [w.label for w in at.number_input]

    at.file_uploader(key="tb_setup_yaml").set_value(("bad.yaml", b"training: [unclosed\n  - x: 1", "application/x-yaml"))
    at.run()
    assert any("not valid YAML" in e for e in texts(at.error))
    at.file_uploader(key="tb_setup_yaml").set_value(
        ("typo.yaml", yaml.safe_dump({"training": {"batchsize": 4}}).encode(), "application/x-yaml")
    )
    at.run()
    assert any("training.batchsize" in e for e in texts(at.error))
    assert not at.exception


def test_start_submits_and_opens_train(jobs, trainer):  # noqa: F811
    at = setup_page(jobs)
    at.text_input(key=key("name")).set_value("ui-start").run()
    at.button(key="tb_setup_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.query_params.get("run")
    assert run_id and run_id in [r.run_id for r in jobs.list_runs()]
    assert at.title[0].value == text.TRAIN_TITLE
    assert wait_for(lambda: jobs.snapshot(run_id).status == "completed")
    assert jobs.config(run_id).name == "ui-start"


def test_submission_errors_are_shown_inline(jobs, monkeypatch):  # noqa: F811
    from core.errors import DataError

    def refuse(cfg):
        raise DataError("Data file x.csv does not exist: upload it again or fix the path.", field="data.path")

    monkeypatch.setattr(jobs, "_preflight_fn", refuse)
    at = setup_page(jobs)
    at.button(key="tb_setup_start").click().run()
    assert not at.exception
    assert any("x.csv does not exist" in e for e in texts(at.error))
    assert at.title[0].value == text.SETUP_TITLE


def test_uncached_hub_model_is_explained(jobs):  # noqa: F811
    at = setup_page(jobs)
    at.radio(key=key("model.source", "kind")).set_value("hub").run()
    at.text_input(key=key("model.source", "hub")).set_value("someone/not-a-cached-model").run()
    assert not at.exception
    assert "not cached" in all_text(at)
    # Resolving the model is part of validation: the reason sits under the model widget.
    assert any("not in the local Hugging Face cache" in e for e in texts(at.error))
    assert at.button(key="tb_setup_start").disabled
