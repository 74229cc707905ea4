"""AppTest: the Evaluate page (classification views, language-model views, runs without predictions,
human labels) and the report download."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from core.files import atomic_write_json
from core.insight import predictions as insight
from core.present import text
from core.run.folder import RunFolder
from tests.support import (
    ROOT,
    all_text,
    make_run,
    open_page,
)

PAGE = "pages/evaluate.py"
LABELS = ["negative", "positive"]
TEXTS = [f"review number {i} is {'great' if i % 2 else 'awful'}" for i in range(12)]
GOLD = [1 if i % 2 else 0 for i in range(12)]


def add_predictions(root, run_id: str, task: str = "classification", *, sampled: bool = False, tuned: bool = True) -> None:
    """Store predictions for a canned run as the engine would: base is always wrong on rows 0-3, the
    fine-tuned model on rows 4 and 5 (fixed 0-3, broke 4-5)."""
    out = RunFolder(root / run_id).predictions_path
    total = 5000 if sampled else len(TEXTS)
    atomic_write_json(out / insight.META_FILE, {"task": task, "label_names": LABELS if task == "classification" else [],
                                                "rows_used": len(TEXTS), "rows_total": total, "sampled": sampled,
                                                "final_step": 40})
    if task == "classification":
        def probabilities(wrong: set[int]) -> np.ndarray:
            rows = [[0.2, 0.8] if (g == 1) != (i in wrong) else [0.7, 0.3] for i, g in enumerate(GOLD)]
            return np.array(rows)

        base = insight.classification_frame(TEXTS, GOLD, probabilities({0, 1, 2, 3}), LABELS)
        final = insight.classification_frame(TEXTS, GOLD, probabilities({4, 5}), LABELS)
    else:
        base = insight.loss_frame(TEXTS, [3.0] * len(TEXTS))
        final = insight.loss_frame(TEXTS, [2.0] * 10 + [3.5, 4.0])
    insight.write_frame_atomically(out / "base.parquet", base)
    if tuned:
        insight.write_frame_atomically(out / "final.parquet", final)


def test_classification_views(jobs, runs_root):
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    page = all_text(at)
    assert text.EVALUATE_ROWS.format(used=len(TEXTS)) in page
    assert len(at.get("plotly_chart")) == 2  # base and fine-tuned confusion matrices
    per_class = at.dataframe[0].value
    assert per_class[text.COLUMN_LABEL].tolist() == LABELS
    assert text.COLUMN_CHANGE.format(metric=text.COLUMN_F1) in per_class.columns
    examples = at.dataframe[1].value  # misclassified by default: rows 4 and 5
    assert examples[text.COLUMN_TEXT].tolist() == TEXTS[4:6]
    at.segmented_control(key="tb_eval_filter").set_value("fixed").run()
    assert at.dataframe[1].value[text.COLUMN_TEXT].tolist() == TEXTS[:4]
    at.segmented_control(key="tb_eval_filter").set_value("broken").run()
    assert at.dataframe[1].value[text.COLUMN_TEXT].tolist() == TEXTS[4:6]
    assert any(text.EXAMPLES_DOWNLOAD in str(b.proto) for b in at.get("download_button"))


def test_human_labels_upload_shows_agreement_and_disagreements(jobs, runs_root):
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    at = open_page(PAGE, {"run": run_id})
    human = pd.DataFrame({"sentence": TEXTS, "label": ["positive" if g else "negative" for g in GOLD]})
    human.loc[0, "label"] = "positive"  # the humans disagree with gold on row 0
    at.file_uploader(key="tb_eval_human_upload").set_value(("humans.csv", human.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="tb_eval_human_text").set_value("sentence").run()
    at.selectbox(key="tb_eval_human_label").set_value("label").run()
    assert text.HUMAN_MATCHED.format(matched=12, unmatched=0) in all_text(at)
    labels = [m.label for m in at.metric]
    assert labels == [text.HUMAN_ACCURACY, text.HUMAN_KAPPA]
    assert at.metric[0].value == f"{9 / 12:.1%}"  # the fine-tuned model misses rows 4 and 5, and row 0 where humans differ
    disagreements = at.dataframe[-1].value
    assert set(disagreements[text.COLUMN_TEXT]) == set(TEXTS[:6])


def test_human_labels_with_a_text_column_named_text(jobs, runs_root):
    """`text`, `label` and a second annotator's `human`: the page must not crash and compares the humans."""
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    at = open_page(PAGE, {"run": run_id})
    gold = ["positive" if g else "negative" for g in GOLD]
    human = pd.DataFrame({"text": TEXTS, "label": gold, "human": gold})
    at.file_uploader(key="tb_eval_human_upload").set_value(("humans.csv", human.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="tb_eval_human_text").set_value("text").run()
    for column in ("label", "human"):
        at.selectbox(key="tb_eval_human_label").set_value(column).run()
        assert not at.exception, [e.value for e in at.exception]
        assert text.HUMAN_MATCHED.format(matched=12, unmatched=0) in all_text(at)
        assert at.metric[0].value == f"{10 / 12:.1%}"  # the fine-tuned model misses rows 4 and 5


def test_language_model_views_and_sampled_note(jobs, runs_root):
    run_id = make_run(runs_root, task="mlm")
    add_predictions(runs_root, run_id, task="mlm", sampled=True)
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    page = all_text(at)
    assert text.EVALUATE_SAMPLED.format(used=len(TEXTS), total=5000) in page
    assert text.IMPROVEMENTS_TITLE in page and text.REGRESSIONS_TITLE in page
    assert len(at.get("plotly_chart")) == 1
    frames = [d.value for d in at.dataframe]
    assert frames[0][text.COLUMN_TEXT].tolist() == TEXTS[:10]
    assert frames[1][text.COLUMN_TEXT].tolist() == [TEXTS[11], TEXTS[10]]


def test_a_run_without_predictions_says_what_to_do(jobs, runs_root):
    run_id = make_run(runs_root, task="classification")
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception
    assert text.EVALUATE_NO_PREDICTIONS in all_text(at)
    pending = make_run(runs_root, task="classification", status="running")
    add_predictions(runs_root, pending, tuned=False)
    at = open_page(PAGE, {"run": pending})
    assert text.EVALUATE_PENDING in all_text(at)


def test_report_download_is_offered(jobs, runs_root):
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    at = open_page(PAGE, {"run": run_id})
    assert not at.exception, [e.value for e in at.exception]
    assert any(text.DOWNLOAD_REPORT in str(b.proto) for b in at.get("download_button"))
    for page in ("pages/runs.py", "pages/compare.py"):
        at = open_page(page, {"run": run_id})
        assert any(text.DOWNLOAD_REPORT in str(b.proto) for b in at.get("download_button")), page


def test_page_side_modules_do_not_import_torch():
    code = ("import sys; import core.insight.predictions, core.insight.report, core.present.charts; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules and 'streamlit' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_loss_wording_follows_the_task_and_the_legend_names_both_models(jobs, runs_root):
    """Issue 27: a causal run was told '(masked LM: on the same fixed 15% of tokens…)', and the legend
    read 'Base model' next to 'Fine-tuned loss'."""
    import json

    for task in ("causal", "mlm"):
        run_id = make_run(runs_root, task=task)
        add_predictions(runs_root, run_id, task=task)
        at = open_page(PAGE, {"run": run_id})
        assert not at.exception, [e.value for e in at.exception]
        captions = [c.value for c in at.caption]
        assert text.LOSS_CAPTIONS[task] in captions
        assert any("15%" in c for c in captions) == (task == "mlm")
        figure = json.loads(at.get("plotly_chart")[0].proto.spec)
        names = {trace.get("name") for trace in figure["data"] if trace.get("showlegend", True)}
        assert names == {text.SERIES_BASE_MODEL, text.SERIES_TUNED_MODEL}
