"""The shared HTML report (core.insight.report) and `python -m core report`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from core.__main__ import main
from core.errors import RunError
from core.insight import report
from core.present import text
from tests.test_app_evaluate import TEXTS, add_predictions
from tests.test_app_support import ROOT, make_run, runs_root  # noqa: F401 - fixtures

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


def test_classification_report_is_self_contained_with_every_section(runs_root):  # noqa: F811
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


def test_language_model_report_lists_improvements_and_regressions(runs_root):  # noqa: F811
    run_id = make_run(runs_root, task="mlm")
    add_predictions(runs_root, run_id, task="mlm", sampled=True)
    html = report.build_report(runs_root / run_id)
    assert_self_contained(html)
    for title in (text.REPORT_LANGUAGE_MODEL, text.IMPROVEMENTS_TITLE, text.REGRESSIONS_TITLE):
        assert f">{title}</h" in html, title
    assert text.EVALUATE_SAMPLED.format(used=len(TEXTS), total=5000) in html


def test_a_run_without_predictions_still_gets_a_report(runs_root):  # noqa: F811
    run_id = make_run(runs_root, task="classification", probes=False)
    html = report.build_report(runs_root / run_id)
    assert_self_contained(html)
    assert text.REPORT_NO_PREDICTIONS in html and f">{text.REPORT_PROBES}</h" not in html


def test_not_a_run_folder_is_a_run_error(tmp_path):
    with pytest.raises(RunError, match="not a run folder"):
        report.build_report(tmp_path)


def test_cli_report_writes_the_file(runs_root, tmp_path, capsys):  # noqa: F811
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
