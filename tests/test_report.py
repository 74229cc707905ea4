"""The shared HTML report (core.insight.report) and `python -m core report`."""

from __future__ import annotations

import re
import subprocess
import sys
from html import escape

import pytest

from core.__main__ import main
from core.errors import RunError
from core.insight import report
from core.present import text
from tests.support import ROOT, make_run
from tests.test_app_evaluate import TEXTS, add_predictions

MAX_BYTES = 15 * 1024 * 1024


def assert_self_contained(html: str) -> None:
    """No asset is fetched from the network, plotly.js is inlined, and the size is bounded.

    Script bodies are left out of the markup check: the inlined plotly.js holds link strings (its logo,
    map tiles) that our figures never load; what matters is that no tag points at the network.
    """
    markup = re.sub(r"(<script[^>]*>).*?(</script>)", r"\1\2", html, flags=re.DOTALL | re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", markup, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc\s*=", markup, re.IGNORECASE)
    assert "@import" not in markup and "url(http" not in markup
    assert html.count("Plotly.newPlot") >= 1
    assert len(html.encode("utf-8")) < MAX_BYTES


def test_classification_report_is_self_contained_with_every_section(runs_root):
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    html = report.build_report(runs_root / run_id)
    assert_self_contained(html)
    assert html.count("window.PlotlyConfig") == 1  # the library is inlined once, not per figure
    for title in (text.REPORT_SUMMARY, text.REPORT_CURVES, text.REPORT_PROBES, text.REPORT_CLASSIFICATION,
                  text.CONFUSION_TITLE, text.PER_CLASS_TITLE, text.REPORT_TOP_MISCLASSIFIED):
        assert f">{title}</h" in html, title
    for field in ("model", "data", "strategy", "hyperparameters", "hardware", "duration"):
        assert text.REPORT_FIELDS[field] in html
    assert TEXTS[4] in html  # a misclassified example is listed


def test_language_model_report_lists_improvements_and_regressions(runs_root):
    run_id = make_run(runs_root, task="mlm")
    add_predictions(runs_root, run_id, task="mlm", sampled=True)
    html = report.build_report(runs_root / run_id)
    assert_self_contained(html)
    for title in (text.REPORT_LANGUAGE_MODEL, text.IMPROVEMENTS_TITLE, text.REGRESSIONS_TITLE):
        assert f">{title}</h" in html, title
    assert text.EVALUATE_SAMPLED.format(used=len(TEXTS), total=5000) in html


def test_a_run_without_predictions_still_gets_a_report(runs_root):
    run_id = make_run(runs_root, task="classification", probes=False)
    html = report.build_report(runs_root / run_id)
    assert_self_contained(html)
    assert text.REPORT_NO_PREDICTIONS in html and f">{text.REPORT_PROBES}</h" not in html


def test_not_a_run_folder_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="not a run folder"):
        report.build_report(tmp_path)


def test_cli_report_writes_the_file(runs_root, tmp_path, capsys):
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    output = tmp_path / "out" / "report.html"
    assert main(["report", str(runs_root / run_id), "--output", str(output)]) == 0
    assert_self_contained(output.read_text(encoding="utf-8"))
    assert str(output) in capsys.readouterr().out


def test_cli_report_on_a_missing_folder_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "core", "report", str(tmp_path / "missing"), "--output", str(tmp_path / "r.html")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a run folder" in lines[0]
    assert not (tmp_path / "r.html").exists()


def test_probe_panels_of_one_probe_share_one_probability_axis(runs_root, monkeypatch):
    """Issue 27: the base panel (5%) was drawn on its own axis, as wide as the fine-tuned one (41%)."""
    from core.present import charts

    drawn = []
    real = charts.topk_figure

    def recording(predictions, **kwargs):
        fig = real(predictions, **kwargs)
        drawn.append((max(p["score"] for p in predictions), tuple(fig.layout.xaxis.range)))
        return fig

    monkeypatch.setattr(charts, "topk_figure", recording)
    run_id = make_run(runs_root, task="mlm")
    report.build_report(runs_root / run_id)
    assert len(drawn) >= 2 and len(drawn) % 2 == 0
    for (base_top, base_range), (tuned_top, tuned_range) in zip(drawn[::2], drawn[1::2], strict=True):
        assert base_top < tuned_top  # the pair is (base, fine-tuned)
        assert base_range == tuned_range and base_range[1] >= tuned_top


def test_summary_names_only_the_setting_that_decided_the_length(runs_root):
    """Issue 27: 'epochs 2.0, max steps 12' named both; max steps, when set, is what applied."""
    from core.config import RunConfig
    from core.run.folder import RunFolder

    run_id = make_run(runs_root, task="mlm")
    folder = RunFolder(runs_root / run_id)
    cfg = RunConfig.load(folder.config_path)
    cfg.training.max_steps = 12
    cfg.save(folder.config_path)
    hyper = re.search(r"Hyperparameters</th><td>(.*?)</td>", report.build_report(folder.path)).group(1)
    assert hyper.startswith(text.TRAINING_LENGTH_STEPS.format(steps=12) + ",") and "epoch" not in hyper
    cfg.training.max_steps, cfg.training.epochs = 0, 2.0
    cfg.save(folder.config_path)
    hyper = re.search(r"Hyperparameters</th><td>(.*?)</td>", report.build_report(folder.path)).group(1)
    assert hyper.startswith(text.TRAINING_LENGTH_EPOCHS.format(epochs=2.0) + ",") and "max steps" not in hyper
    cfg.training.epochs = None  # neither set: the default rule chose the steps, as status.json says
    cfg.save(folder.config_path)
    hyper = re.search(r"Hyperparameters</th><td>(.*?)</td>", report.build_report(folder.path)).group(1)
    assert hyper.startswith(text.TRAINING_LENGTH_RULE + ",")
    folder.update_status(run_length={"steps": 100, "automatic": True})
    hyper = re.search(r"Hyperparameters</th><td>(.*?)</td>", report.build_report(folder.path)).group(1)
    assert hyper.startswith(text.TRAINING_LENGTH_RULE_STEPS.format(steps=100) + ",")


def test_report_names_both_models_alike_and_words_the_loss_by_task(runs_root):
    """Issue 27: 'Base model' next to 'Fine-tuned loss'; a causal run described as a masked LM."""
    run_id = make_run(runs_root, task="causal")
    add_predictions(runs_root, run_id, task="causal")
    html = report.build_report(runs_root / run_id)
    assert escape(text.LOSS_CAPTIONS["causal"]) in html and "15%" not in html.split(f">{text.REPORT_LANGUAGE_MODEL}</h2>")[1]
    assert f">{text.SERIES_BASE_MODEL}</p>" in html and f">{text.SERIES_TUNED_MODEL}</p>" in html  # probe panels
    assert f'"name":"{text.SERIES_TUNED_MODEL}"' in html and text.COLUMN_TUNED_LOSS not in html.split("<script")[0]
