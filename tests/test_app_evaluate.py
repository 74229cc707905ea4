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


def upload_humans(at, human: pd.DataFrame) -> None:
    """Upload a human file to the Evaluate page's human-label panel and rerun."""
    at.file_uploader(key="tb_eval_human_upload").set_value(("humans.csv", human.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def pair_metrics(at) -> dict[str, dict[str, object]]:
    """The human panel's metrics per pair, by the pair's heading: {heading: {metric label: (value, delta)}}."""
    headings = [m.value.strip("*") for m in at.markdown if m.value.strip("*") in text.HUMAN_PAIRS.values()]
    metrics = list(at.metric)[-2 * len(headings):]
    return {heading: {m.label: (m.value, m.delta or None) for m in metrics[2 * i: 2 * i + 2]}
            for i, heading in enumerate(headings)}


def test_human_labels_upload_shows_agreement_and_disagreements(jobs, runs_root):
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    at = open_page(PAGE, {"run": run_id})
    human = pd.DataFrame({"sentence": TEXTS, "rating": ["positive" if g else "negative" for g in GOLD]})
    human.loc[0, "rating"] = "positive"  # the humans disagree with gold on row 0
    upload_humans(at, human)
    assert at.selectbox(key="tb_eval_human_text").value == "sentence"  # the column holding the run's texts
    assert at.selectbox(key="tb_eval_human_label").value == "rating"
    assert text.HUMAN_MATCHED.format(matched=12, unmatched=0) in all_text(at)
    pairs = pair_metrics(at)
    assert list(pairs) == list(text.HUMAN_PAIRS.values())
    # the fine-tuned model misses rows 4 and 5, and row 0 where humans differ; the base misses rows 1-3 (its
    # mistake on row 0 is the humans' label)
    tuned = pairs[text.HUMAN_PAIRS["tuned"]][text.HUMAN_ACCURACY]
    assert tuned == (f"{9 / 12:.1%}", "+0.0 pts")
    assert pairs[text.HUMAN_PAIRS["base"]][text.HUMAN_ACCURACY][0] == f"{9 / 12:.1%}"
    assert pairs[text.HUMAN_PAIRS["gold"]][text.HUMAN_ACCURACY] == (f"{11 / 12:.1%}", None)
    disagreements = at.dataframe[-1].value  # model vs human by default
    assert disagreements[text.COLUMN_TEXT].tolist() == [TEXTS[0], TEXTS[4], TEXTS[5]]


def test_human_labels_in_columns_text_label_and_human(jobs, runs_root):
    """`text`, `label` (the file's gold) and a second annotator's `human`: the page used to crash on the merge and
    to take `label` for the humans. Three pairs side by side, deltas in points, and each kind of disagreement."""
    run_id = make_run(runs_root, task="classification")
    add_predictions(runs_root, run_id)
    at = open_page(PAGE, {"run": run_id})
    gold = ["positive" if g else "negative" for g in GOLD]
    human = list(gold)
    human[0], human[4] = "positive", "positive"  # the second annotator differs from gold on rows 0 and 4
    upload_humans(at, pd.DataFrame({"text": TEXTS, "label": gold, "human": human}))
    assert at.selectbox(key="tb_eval_human_text").value == "text"
    assert at.selectbox(key="tb_eval_human_label").value == "human"
    assert text.HUMAN_MATCHED.format(matched=12, unmatched=0) in all_text(at)
    pairs = pair_metrics(at)
    assert list(pairs) == [text.HUMAN_PAIRS[p] for p in ("base", "tuned", "gold")]
    # against the humans, the base (wrong on rows 0-3) is right on rows 0 and 5-11; the fine-tuned model (wrong on
    # rows 4 and 5) is wrong on rows 0 and 5
    base, tuned, ceiling = (pairs[text.HUMAN_PAIRS[p]] for p in ("base", "tuned", "gold"))
    assert base[text.HUMAN_ACCURACY] == (f"{8 / 12:.1%}", None)
    assert tuned[text.HUMAN_ACCURACY] == (f"{10 / 12:.1%}", "+16.7 pts")
    assert tuned[text.HUMAN_KAPPA][1].startswith(("+", "-")) and "%" not in tuned[text.HUMAN_KAPPA][1]
    assert ceiling[text.HUMAN_ACCURACY] == (f"{10 / 12:.1%}", None)
    assert text.HUMAN_PAIR_CAPTIONS["gold"] in all_text(at)

    kinds = at.segmented_control(key="tb_eval_human_kind")
    assert kinds.value == "model_human"
    assert at.dataframe[-1].value[text.COLUMN_TEXT].tolist() == [TEXTS[0], TEXTS[5]]
    expected = {"model_gold": [TEXTS[4], TEXTS[5]], "human_gold": [TEXTS[0], TEXTS[4]]}
    for kind, rows in expected.items():
        at.segmented_control(key="tb_eval_human_kind").set_value(kind).run()
        assert not at.exception, [e.value for e in at.exception]
        table = at.dataframe[-1].value
        assert table[text.COLUMN_TEXT].tolist() == rows, kind
        assert {text.COLUMN_HUMAN, text.COLUMN_GOLD, text.COLUMN_TUNED_PREDICTION} <= set(table.columns)
    assert kinds.options == [text.HUMAN_KIND_COUNT.format(kind=text.HUMAN_KINDS[k], count=2) for k in
                             ("model_human", "model_gold", "human_gold")]

    at.selectbox(key="tb_eval_human_label").set_value("label").run()  # the gold column still can be chosen
    assert not at.exception, [e.value for e in at.exception]
    assert pair_metrics(at)[text.HUMAN_PAIRS["gold"]][text.HUMAN_ACCURACY][0] == f"{1:.1%}"


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
