"""AppTest: the Runs page (history, overlay, open in Setup, exports, commands, delete, resume)."""

from __future__ import annotations

from pathlib import Path

from core.present import text
from tests.support import (
    make_run,
    open_page,
    texts,
    wait_for,
)

PAGE = "pages/runs.py"


def test_empty_history(jobs):
    at = open_page(PAGE)
    assert text.NO_RUNS in texts(at.info)
    assert not at.exception


def test_history_table_overlay_and_commands(jobs, runs_root):
    first = make_run(runs_root, name="alpha")
    second = make_run(runs_root, name="beta", task="classification", status="failed", error="Out of memory.")
    at = open_page(PAGE, {"run": first})
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert set(table[text.COL_RUN]) == {first, second}
    # Key columns first: the id (pinned, never cut off), how it went, its result.
    assert list(table.columns)[:3] == [text.COL_RUN, text.COL_STATUS, text.COL_METRICS]
    row = table[table[text.COL_RUN] == first].iloc[0]
    assert row[text.COL_STATUS] == "completed" and row[text.COL_DURATION] == "1m 15s"
    assert "eval loss 2.1" in row[text.COL_METRICS]
    assert at.get("plotly_chart"), "overlaid training-loss curves"
    at.selectbox(key="tb_runs_metric").set_value("eval_accuracy").run()
    assert at.get("plotly_chart")  # the classification run has accuracy
    codes = texts(at.code)
    assert any(c.startswith("python -m core train --config ") and c.endswith(f"{first}/config.yaml") for c in codes)
    assert any(c.startswith("accelerate launch -m core train --config ") for c in codes)


def test_the_headline_is_the_kept_best_evaluation_with_its_step(jobs, runs_root):
    from core.run.folder import RunFolder

    run_id = make_run(runs_root, task="classification")
    RunFolder(runs_root / run_id).update_status(
        final_metrics={"eval_accuracy": 0.9, "eval_f1": 0.88},
        best={"name": "eval_f1", "step": 20, "value": 0.88},
    )
    at = open_page(PAGE, {"run": run_id})
    table = at.dataframe[0].value
    assert table[text.COL_METRICS].iloc[0].endswith("(best, step 20)")
    assert not at.exception


def test_failed_run_error_is_shown(jobs, runs_root):
    run_id = make_run(runs_root, status="failed", error="The disk is full. Free space, then start again.")
    at = open_page(PAGE, {"run": run_id})
    assert any("The disk is full" in e for e in texts(at.error))
    assert not at.exception


def test_open_in_setup_loads_the_config(jobs, runs_root):
    run_id = make_run(runs_root, name="reopen-me", task="classification", strategy="lora")
    at = open_page(PAGE, {"run": run_id})
    at.button(key="tb_runs_setup").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == text.SETUP_TITLE
    assert at.text_input(key="cfg:name@1").value == "reopen-me"
    assert at.radio(key="cfg:task@1").value == "classification"
    assert at.selectbox(key="cfg:strategy.name@1").value == "lora"


def fake_export(monkeypatch, tmp_path) -> list:
    """export_run replaced by one that records its call and returns a small folder (the real one is tested in test_export)."""
    import core.models.export

    calls = []

    def export(run_path, target=None, *, merge=True, fmt="safetensors", quantization=None):
        calls.append((Path(run_path).name, merge, fmt))
        exported = tmp_path / f"export-{fmt}-{merge}"
        exported.mkdir(exist_ok=True)
        (exported / "README.md").write_text("card")
        return exported

    monkeypatch.setattr(core.models.export, "export_run", export)
    return calls


def test_downloads_for_a_full_model(jobs, runs_root, monkeypatch, tmp_path):
    calls = fake_export(monkeypatch, tmp_path)
    run_id = make_run(runs_root, final_model=True)
    at = open_page(PAGE, {"run": run_id})
    labels = [b.proto.label for b in at.get("download_button")]
    assert text.DOWNLOAD_CONFIG in labels
    at.button(key="tb_runs_prepare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == [(run_id, True, "safetensors")]
    assert text.DOWNLOAD_MODEL in [b.proto.label for b in at.get("download_button")]
    assert not [b for b in at.button if b.key == "tb_runs_prepare_gguf"]  # a masked LM has no GGUF


def test_a_causal_run_offers_a_gguf(jobs, runs_root, monkeypatch, tmp_path):
    calls = fake_export(monkeypatch, tmp_path)
    run_id = make_run(runs_root, task="causal", final_model=True)
    at = open_page(PAGE, {"run": run_id})
    at.button(key="tb_runs_prepare_gguf").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == [(run_id, True, "gguf")]
    assert text.DOWNLOAD_GGUF in [b.proto.label for b in at.get("download_button")]


def test_a_gguf_the_model_cannot_be_is_said_next_to_the_button(jobs, runs_root, monkeypatch):
    import core.models.export
    from core.errors import ModelError

    def refuse(*args, **kwargs):
        raise ModelError("GGUF export covers Llama-architecture models (such as SmolLM2); this run's model is gpt2.")

    monkeypatch.setattr(core.models.export, "export_run", refuse)
    run_id = make_run(runs_root, task="causal", final_model=True)
    at = open_page(PAGE, {"run": run_id})
    at.button(key="tb_runs_prepare_gguf").click().run()
    assert not at.exception
    assert any("Llama-architecture" in e for e in texts(at.error))


def test_run_without_a_model_says_so(jobs, runs_root):
    run_id = make_run(runs_root)
    at = open_page(PAGE, {"run": run_id})
    assert text.NO_MODEL_YET in texts(at.caption)


def test_lora_export_merged_on_request(jobs, runs_root, monkeypatch, tmp_path):
    run_id = make_run(runs_root, strategy="lora")
    adapter = runs_root / run_id / "final"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    calls = fake_export(monkeypatch, tmp_path)
    at = open_page(PAGE, {"run": run_id})
    assert at.toggle(key="tb_runs_merge").value is True
    at.button(key="tb_runs_prepare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert calls == [(run_id, True, "safetensors")]
    labels = [b.proto.label for b in at.get("download_button")]
    assert text.DOWNLOAD_MERGED in labels


def test_delete_asks_first(jobs, runs_root):
    keep = make_run(runs_root, name="keep")
    doomed = make_run(runs_root, name="doomed")
    at = open_page(PAGE, {"run": doomed})
    at.button(key="tb_runs_delete").click().run()
    assert any(doomed in w for w in texts(at.warning))
    at.button(key="tb_runs_delete_no").click().run()
    assert (runs_root / doomed).exists()
    at.button(key="tb_runs_delete").click().run()
    at.button(key="tb_runs_delete_yes").click().run()
    assert not at.exception
    assert not (runs_root / doomed).exists() and (runs_root / keep).exists()
    assert [r.run_id for r in jobs.list_runs()] == [keep]


def test_resume_from_the_history(jobs, trainer, runs_root):
    run_id = make_run(runs_root, status="interrupted", error="The server stopped while this run was training.")
    at = open_page(PAGE, {"run": run_id})
    at.button(key="tb_runs_resume").click().run()
    assert not at.exception
    assert at.title[0].value == text.TRAIN_TITLE
    assert wait_for(lambda: [call[0] for call in trainer.calls] == [run_id])


def test_cancel_a_queued_run(jobs, trainer, runs_root):
    from core.config import RunConfig

    trainer.hold = True  # the first run trains until Stop, so the second one waits in the queue
    first = jobs.submit(RunConfig(name="first"))
    assert trainer.started.wait(15)
    queued = jobs.submit(RunConfig(name="second"))
    assert jobs.queued() == [queued]
    at = open_page(PAGE, {"run": queued})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.button(key="tb_runs_cancel").disabled
    at.button(key="tb_runs_cancel").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert jobs.queued() == [] and jobs.snapshot(queued).status == "cancelled"
    assert jobs.active_run_id() == first  # the running run is not touched
    assert not at.button(key="tb_runs_delete").disabled  # a cancelled run can be deleted; no Cancel left
    assert not any(b.key == "tb_runs_cancel" for b in at.button)
    jobs.stop(first)
    assert wait_for(lambda: jobs.snapshot(first).status == "stopped")
    assert [call[0] for call in trainer.calls] == [first]  # the cancelled run never trained


def test_the_history_page_notices_a_run_that_ends_elsewhere(jobs, runs_root):
    """What Runs drew is remembered; the sidebar's fragment reruns the page once it is stale."""
    from core.run.folder import RunFolder
    from ui import state

    run_id = make_run(runs_root, status="running")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception
    drawn = at.session_state[state.WATCH_HISTORY_KEY]
    assert drawn == state.history_fingerprint(jobs.list_runs())
    RunFolder(runs_root / run_id).update_status(status="completed")  # e.g. a CLI run finishing
    assert state.history_fingerprint(jobs.list_runs()) != drawn


def test_overlay_legend_uses_short_names_and_one_colour_per_strategy(jobs, runs_root):
    """Issue 27: legends carried ~100-character names, and a strategy's colour differed from Compare strategies'."""
    import json

    from core.present import legend

    long_name = "a shoot-out group with a long name · LoRA at a learning rate of 1e-4 on the reviews"
    lora = make_run(runs_root, name=long_name, strategy="lora")
    full = make_run(runs_root, name=long_name + " again", strategy="full")
    at = open_page(PAGE, {"run": lora})
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="tb_runs_overlay").set_value([lora, full]).run()
    figure = json.loads(next(c for c in at.get("plotly_chart") if c.key == "tb_runs_overlay_chart").proto.spec)
    traces = {t["name"]: t for t in figure["data"]}
    assert set(traces) == {legend.run_legend_name(lora, "lora"), legend.run_legend_name(full, "full")}
    assert all(len(name) <= 40 for name in traces)
    lora_trace = traces[legend.run_legend_name(lora, "lora")]
    assert lora_trace["line"]["color"] == legend.strategy_color("lora")  # what Compare strategies draws for LoRA
    assert traces[legend.run_legend_name(full, "full")]["line"]["color"] == legend.strategy_color("full")
    assert long_name in lora_trace["hovertemplate"] and lora in lora_trace["hovertemplate"]  # the full name on hover


def test_history_fits_a_1400px_window(jobs, runs_root):
    """Issue 27: ids, metrics and "Duration" were cut off. The id and the result show whole, a long name ends in
    '…', and how the run was made starts hidden (the table's eye button; the selected run's line says it)."""
    import json

    long_name = "news headlines classifier with the second annotator's labels, trained on four hundred rows"
    run_id = make_run(runs_root, name=long_name, task="classification")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    row = at.dataframe[0].value.iloc[0]
    assert row[text.COL_RUN] == run_id
    assert row[text.COL_METRICS] == "acc 0.84 · F1 0.83"  # a classifier's own scores, two of them
    assert row[text.COL_NAME].endswith("…") and long_name.startswith(row[text.COL_NAME][:-1])
    config = json.loads(at.dataframe[0].proto.columns)
    hidden = {name for name, entry in config.items() if entry.get("hidden") and name != "_index"}
    assert hidden == {text.COL_TASK, text.COL_STRATEGY, text.COL_MODEL, text.COL_CREATED, text.COL_DISK}
    assert all(isinstance(entry.get("width"), int) for name, entry in config.items() if not entry.get("hidden"))
    assert any(c.startswith("Classification · Full fine-tune · ") for c in texts(at.caption))
