"""AppTest: the Compare page (probe panels, step slider, load report, free-text probes)."""

from __future__ import annotations

import core.insight.probes
from core.present import text
from tests.support import (
    BASE_MLM,
    TUNED_MLM,
    all_text,
    make_run,
    open_page,
    texts,
)

PAGE = "pages/compare.py"
UNTRAINED = {
    "source": "bundled", "architecture": "BertForMaskedLM", "head_is_untrained": True,
    "newly_initialized": ["cls.predictions.bias", "cls.predictions.transform.dense.weight"],
    "unused": [], "warnings": ["The masked-LM head was initialised from scratch."],
}


def test_mlm_probes_side_by_side_with_changes_and_load_report(jobs, runs_root):
    run_id = make_run(runs_root, load_report=UNTRAINED)
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    warning = texts(at.warning)[0]
    assert text.LOAD_REPORT_TITLE in warning and "cls.predictions.* (2 tensors)" in warning
    assert "cls.predictions.bias" in at.code[0].value  # the full list, in the expander
    assert len(at.get("plotly_chart")) == 4  # two probes x (base, fine-tuned)
    page = all_text(at)
    assert "stylish" in page and "nice" in page  # new and dropped tokens are named
    assert text.COLUMN_TUNED_FINAL.format(step=40) in page
    slider = at.select_slider(key="tb_compare_step")
    assert list(slider.options) == ["20", "40 ✓"] and slider.value == 40
    slider.set_value(20).run()
    assert text.COLUMN_TUNED.format(step=20) in all_text(at)
    assert not at.exception


def test_load_report_file_is_read_when_status_has_none(jobs, runs_root):
    import json

    run_id = make_run(runs_root)
    (runs_root / run_id / "load_report.json").write_text(json.dumps(UNTRAINED))
    at = open_page(PAGE, {"run": run_id})
    assert any(text.LOAD_REPORT_TITLE in w for w in texts(at.warning))


def test_classification_shows_label_probabilities_before_and_after(jobs, runs_root):
    run_id = make_run(runs_root, task="classification")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # one grouped before/after chart per probe
    assert not at.warning
    predicted = [m for m in texts(at.markdown) if " predicts **" in m]
    assert len(predicted) == 2 and all(m.count("predicts") == 2 for m in predicted)  # each side names its label


def test_run_without_probes_says_so(jobs, runs_root):
    run_id = make_run(runs_root, probes=False, status="queued")
    at = open_page(PAGE, {"run": run_id})
    assert text.NO_PROBES in texts(at.info)
    assert not at.exception


def test_only_base_scored_yet_shows_a_pending_column_not_a_step(jobs, runs_root):
    from core.run.folder import RunFolder
    from core.run.sink import RunSink

    run_id = make_run(runs_root, probes=False, status="running")
    RunSink(RunFolder(runs_root / run_id)).probe(0, "base", "Nike shoes are very [MASK].", BASE_MLM)
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception
    page = all_text(at)
    assert text.COLUMN_TUNED_PENDING in page and "None" not in page
    assert texts(at.caption).count(text.NO_TUNED_PROBES) == 1  # said once, in the panel
    assert text.NO_TUNED_PROBES not in texts(at.info)


def test_free_text_probe_against_base_and_fine_tuned(jobs, runs_root, monkeypatch):
    calls = []

    def fake_probe_text(run_path, sentence, top_k):
        calls.append((run_path.name, sentence, top_k))
        return {"base": BASE_MLM, "tuned": TUNED_MLM}

    monkeypatch.setattr(core.insight.probes, "probe_text", fake_probe_text, raising=False)
    run_id = make_run(runs_root, final_model=True)
    at = open_page(PAGE, {"run": run_id})
    box, go = at.text_input(key="tb_compare_free_text"), at.button(key="tb_compare_free_go")
    assert not go.disabled
    box.set_value("Nike hoodies are really warm")
    go.click().run()
    assert text.FREE_PROBE_NEEDS_MASK in texts(at.error)
    at.text_input(key="tb_compare_free_text").set_value("Nike hoodies are really [MASK]")
    at.button(key="tb_compare_free_go").click().run()
    assert not at.exception
    assert calls == [(run_id, "Nike hoodies are really [MASK]", 5)]
    assert len(at.get("plotly_chart")) == 4 + 2
    assert text.COLUMN_TUNED_LATEST in all_text(at)


def test_free_text_probe_errors_are_messages(jobs, runs_root, monkeypatch):
    from core.errors import ModelError

    def broken(run_path, sentence, top_k):
        raise ModelError("The fine-tuned model cannot be loaded: final/ is incomplete. Resume the run.")

    monkeypatch.setattr(core.insight.probes, "probe_text", broken, raising=False)
    run_id = make_run(runs_root, final_model=True)
    at = open_page(PAGE, {"run": run_id})
    at.text_input(key="tb_compare_free_text").set_value("Nike socks are [MASK]")
    at.button(key="tb_compare_free_go").click().run()
    assert any("final/ is incomplete" in e for e in texts(at.error))
    assert not at.exception


def test_free_text_probe_waits_for_a_saved_model(jobs, runs_root):
    run_id = make_run(runs_root, status="running")
    at = open_page(PAGE, {"run": run_id})
    assert at.button(key="tb_compare_free_go").disabled
    assert text.FREE_PROBE_NO_MODEL in texts(at.caption)
