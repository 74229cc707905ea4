"""Evaluate: what fine-tuning changed, example by example.

Reads the per-example predictions a run stored in predictions/ (core.insight.predictions): for classification the
confusion matrices, the per-class table, an example browser and agreement with human labels; for
language models the per-example loss distribution and the largest improvements and regressions. Instruction
tuning's generated answers get their scores before and after, and, mapped to a small label set, the same
views as a classifier's, the answers side by side in the example browser; without a label set, the browser.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import TuneboardError
from core.insight import analysis
from core.insight import predictions as insight
from core.insight.answer_pass import shots_words
from core.present import charts, text
from core.run.folder import RunFolder
from ui import router, state
from ui.tables import fitted_columns
from ui.widgets import picked_run, report_button

EXAMPLE_LIMIT = 500  # rows the browser shows; the CSV download has them all
CONFIDENCE_WIDTH_PX = 150  # the bar and '100.0%' beside it
TOP_CHANGES = 10


@st.cache_data(show_spinner=False, max_entries=8)
def cached_predictions(run_path: str, stamp: tuple) -> insight.RunPredictions | None:
    """The run's predictions, re-read only when its predictions folder changes (stamp)."""
    return insight.load_predictions(run_path)


def predictions_stamp(run_path: Path) -> tuple:
    """File names and modification times of the predictions folder: the cache key of what is stored."""
    folder = RunFolder(Path(run_path)).predictions_path
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()))
    except OSError:
        return ()


def rows_caption(meta: dict) -> str:
    """How many eval rows the predictions cover (and that they are a sample, when they are)."""
    used, total = int(meta.get("rows_used") or 0), int(meta.get("rows_total") or 0)
    if meta.get("sampled"):
        return text.EVALUATE_SAMPLED.format(used=used, total=total)
    return text.EVALUATE_ROWS.format(used=used)


def tuned_title(predictions: insight.RunPredictions) -> str:
    """'Fine-tuned (final, step N)' or '(evaluation at step N)'; a prompt run's 'Prompted, no training (3-shot)'."""
    if predictions.prompted:
        return text.EVALUATE_PROMPTED.format(shots=shots_words(predictions.shots("final")))
    template = text.EVALUATE_TUNED_FINAL if predictions.tuned_stage == "final" else text.EVALUATE_TUNED_EVAL
    return template.format(step=predictions.tuned_step if predictions.tuned_step is not None else "?")


def base_title(predictions: insight.RunPredictions) -> str:
    """'Base model', and how it was prompted when it answered (generated answers)."""
    if predictions.has_answers:
        return text.EVALUATE_BASE_PROMPTED.format(shots=shots_words(predictions.shots("base")))
    return text.EVALUATE_BASE


def stages(predictions: insight.RunPredictions) -> list[tuple[str, object]]:
    """(title, frame) of the stages to show: base and fine-tuned; a prompt run's one stage alone."""
    shown = [(tuned_title(predictions), predictions.tuned)]
    return shown if predictions.prompted else [(base_title(predictions), predictions.base), *shown]


def points(change: float) -> str:
    """A change of a share as percentage points: 0.34 -> '+34.0 pts'."""
    return text.POINTS_DELTA.format(points=change * 100)


# ---- generated answers ------------------------------------------------------------------------

def answers_panel(predictions: insight.RunPredictions) -> None:
    """Exact match (and the label scores) of the answers, the fine-tuned model's with its change from the base."""
    st.subheader(text.ANSWERS_TITLE)
    st.caption(text.ANSWERS_CAPTION_PROMPTED if predictions.prompted else text.ANSWERS_CAPTION)
    labels = predictions.label_names
    tuned = analysis.answer_summary(predictions.tuned, labels)
    base = analysis.answer_summary(predictions.base, labels) if predictions.base is not None else None
    for column, (key, name) in zip(st.columns(len(tuned)), text.ANSWER_METRICS.items(), strict=False):
        if key not in tuned:
            continue
        delta = points(tuned[key] - base[key]) if base is not None and key in base else None
        column.metric(name, f"{tuned[key]:.1%}", delta=delta)
        if base is not None and key in base:
            column.caption(text.HUMAN_BASE.format(value=f"{base[key]:.1%}"))




# ---- classification ---------------------------------------------------------------------------

def confusion_panel(predictions: insight.RunPredictions) -> None:
    """Base and fine-tuned confusion matrices side by side."""
    st.subheader(text.CONFUSION_TITLE)
    st.caption(text.CONFUSION_CAPTION)
    labels = predictions.shown_labels()
    if insight.NO_LABEL in labels:
        st.caption(text.CONFUSION_NO_LABEL.format(no_label=insight.NO_LABEL))
    frames = stages(predictions)
    for column, (title, frame) in zip(st.columns(len(frames)), frames, strict=True):
        with column:
            if frame is None:
                st.caption(text.NOT_AVAILABLE)
                continue
            counts, shares = analysis.confusion(frame["gold"].tolist(), frame["predicted"].tolist(), labels)
            st.plotly_chart(charts.confusion_figure(counts, shares, labels, title), key=f"tb_eval_confusion_{title}")


def per_class_panel(predictions: insight.RunPredictions) -> None:
    """Precision, recall, F1 and support per class, with the change from the base model."""
    st.subheader(text.PER_CLASS_TITLE)
    table = analysis.per_class_change(predictions.base, predictions.tuned, predictions.shown_labels())
    names = {"label": text.COLUMN_LABEL, "precision": text.COLUMN_PRECISION, "recall": text.COLUMN_RECALL,
             "f1": text.COLUMN_F1, "support": text.COLUMN_SUPPORT}
    for metric in ("precision", "recall", "f1"):
        names[f"{metric}_change"] = text.COLUMN_CHANGE.format(metric=names[metric])
    shown = table.rename(columns=names)
    number = {name: st.column_config.NumberColumn(format="%.3f") for key, name in names.items() if key not in ("label", "support")}
    st.dataframe(shown, hide_index=True, column_config=fitted_columns(shown, flexible=[text.COLUMN_LABEL], config=number),
                 key="tb_eval_per_class")
    if predictions.base is not None:
        st.caption(text.PER_CLASS_CAPTION)


def examples_panel(predictions: insight.RunPredictions, run_id: str) -> None:
    """The example browser: a filter, a sortable table and the CSV download."""
    st.subheader(text.EXAMPLES_TITLE)
    table = analysis.example_table(predictions.base, predictions.tuned)
    options = list(analysis.FILTERS) if predictions.base is not None else ["all", "misclassified", "least_confident"]
    names = text.ANSWER_FILTERS if predictions.has_answers else text.EXAMPLES_FILTERS
    which = st.segmented_control(text.EXAMPLES_FILTER, options, format_func=names.get,
                                 default="misclassified", key="tb_eval_filter") or "all"
    chosen = analysis.filter_examples(table, which)
    st.caption(text.EXAMPLES_COUNT.format(count=len(chosen), total=len(table)))
    if chosen.empty:
        st.info(text.EXAMPLES_NONE, icon=":material/info:")
        return
    hidden = list(analysis.FILTER_COLUMNS)
    if predictions.has_answers and not predictions.has_labels:
        hidden += ["base_prediction", "tuned_prediction"]  # without labels, a prediction is the answer itself
    if predictions.prompted:
        hidden += [c for c in ("base_answer", "base_prediction") if c in chosen.columns]
    shown = chosen.drop(columns=hidden).rename(columns={
        "text": text.COLUMN_TEXT, "gold": text.COLUMN_GOLD, "base_prediction": text.COLUMN_BASE_PREDICTION,
        "tuned_prediction": text.COLUMN_TUNED_PREDICTION, "confidence": text.COLUMN_CONFIDENCE,
        "base_answer": text.COLUMN_BASE_ANSWER, "tuned_answer": text.COLUMN_TUNED_ANSWER,
    })
    if predictions.has_answers:
        shown = shown.rename(columns={text.COLUMN_GOLD: text.COLUMN_REFERENCE})
    if predictions.prompted:  # one model, not fine-tuned
        shown = shown.rename(columns={text.COLUMN_TUNED_ANSWER: text.COLUMN_ANSWER,
                                      text.COLUMN_TUNED_PREDICTION: text.COLUMN_ANSWER_LABEL})
    texts = [c for c in (text.COLUMN_TEXT, text.COLUMN_BASE_ANSWER, text.COLUMN_TUNED_ANSWER, text.COLUMN_ANSWER)
             if c in shown.columns]
    # The labels, predictions and confidence keep their whole width; the texts and answers share the rest (cut at
    # its edge, whole in the cell's overlay, the table's search and the CSV).
    shown = shown.head(EXAMPLE_LIMIT)
    st.dataframe(shown, hide_index=True, key="tb_eval_examples", column_config=fitted_columns(
        shown, flexible=texts, fixed={text.COLUMN_CONFIDENCE: CONFIDENCE_WIDTH_PX}, config={
            text.COLUMN_CONFIDENCE: st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        }))
    st.download_button(text.EXAMPLES_DOWNLOAD, shown.to_csv(index=False).encode("utf-8"),
                       file_name=f"{run_id}-{which}.csv", mime="text/csv", key="tb_eval_examples_csv",
                       icon=":material/download:")


def human_frame(cfg) -> pd.DataFrame | None:
    """The human-labelled table the user chose: an upload, or the run's own data file."""
    from core.data.tables import read_table
    from ui.files import save_upload

    sources = [text.HUMAN_SOURCE_UPLOAD, text.HUMAN_SOURCE_RUN_DATA]
    source = st.radio(text.HUMAN_SOURCE, sources, horizontal=True, key="tb_eval_human_source")
    try:
        if source == text.HUMAN_SOURCE_UPLOAD:
            uploaded = st.file_uploader(text.HUMAN_UPLOAD, type=["csv", "tsv", "json", "jsonl", "parquet"],
                                        key="tb_eval_human_upload")
            if uploaded is None:
                return None
            return read_table(save_upload(uploaded.name, uploaded.getvalue(), state.uploads_root()))
        if cfg.data.source != "file" or not cfg.data.path:
            st.caption(text.HUMAN_NO_RUN_DATA)
            return None
        return read_table(cfg.data.path)
    except TuneboardError as err:
        st.error(text.HUMAN_READ_ERROR.format(error=err), icon=":material/error:")
        return None


def human_panel(predictions: insight.RunPredictions, cfg) -> None:
    """Accuracy and Cohen's kappa of base vs human, fine-tuned vs human and human vs gold, and the disagreements."""
    st.subheader(text.HUMAN_TITLE)
    st.caption(text.HUMAN_CAPTION)
    frame = human_frame(cfg)
    if frame is None or frame.empty:
        return
    frame = frame.rename(columns=str)
    columns = list(frame.columns)
    guessed_text = analysis.likely_text_column(frame, predictions, cfg.data.text_column)
    left, right = st.columns(2)
    text_column = left.selectbox(text.HUMAN_TEXT_COLUMN, columns, index=columns.index(guessed_text),
                                 key="tb_eval_human_text")
    others = [c for c in columns if c != text_column]
    if not others:
        st.warning(text.HUMAN_ONE_COLUMN, icon=":material/warning:")
        return
    guessed_human = analysis.likely_human_column(others, text_column, cfg.data.label_column)
    label_column = right.selectbox(text.HUMAN_LABEL_COLUMN, others, index=others.index(guessed_human),
                                   key="tb_eval_human_label")
    result = analysis.human_agreement(frame, text_column, label_column, predictions)
    if result.matched == 0:
        st.warning(text.HUMAN_NO_MATCH.format(rows=len(frame)), icon=":material/warning:")
        return
    st.caption(text.HUMAN_MATCHED.format(matched=result.matched, unmatched=result.unmatched))
    agreement_metrics(result, predictions)
    disagreements_table(result, predictions)


def agreement_metrics(result: analysis.HumanAgreement, predictions: insight.RunPredictions) -> None:
    """One column per pair: accuracy and kappa; the fine-tuned model's change from the base in points."""
    names = dict(text.HUMAN_PAIRS, tuned=text.HUMAN_PAIR_PROMPTED) if predictions.prompted else text.HUMAN_PAIRS
    base = result.pairs.get("base")
    for column, pair in zip(st.columns(len(result.pairs)), result.pairs, strict=True):
        scores = result.pairs[pair]
        compared = pair == "tuned" and base is not None
        with column:
            st.markdown(f"**{names[pair]}**")
            st.metric(text.HUMAN_ACCURACY, f"{scores['accuracy']:.1%}",
                      delta=points(scores["accuracy"] - base["accuracy"]) if compared else None)
            st.metric(text.HUMAN_KAPPA, f"{scores['kappa']:.3f}",
                      delta=f"{scores['kappa'] - base['kappa']:+.3f}" if compared else None)
            if pair != "tuned" or compared:
                st.caption(text.HUMAN_PAIR_CAPTIONS[pair])


def disagreements_table(result: analysis.HumanAgreement, predictions: insight.RunPredictions) -> None:
    """The matched texts of one kind of disagreement, the kind chosen with its count."""
    counts = result.disagreement_counts()
    st.markdown(f"**{text.HUMAN_DISAGREEMENTS}**")
    st.caption(text.HUMAN_DISAGREEMENTS_CAPTION_PROMPTED if predictions.prompted else text.HUMAN_DISAGREEMENTS_CAPTION)
    kind = st.segmented_control(
        text.HUMAN_DISAGREEMENTS, list(analysis.DISAGREEMENT_KINDS), default="model_human",
        format_func=lambda k: text.HUMAN_KIND_COUNT.format(kind=text.HUMAN_KINDS[k], count=counts[k]),
        key="tb_eval_human_kind", label_visibility="collapsed") or "model_human"
    chosen = result.disagreements(kind)
    if chosen.empty:
        st.success(text.HUMAN_NO_DISAGREEMENTS.format(kind=text.HUMAN_KINDS[kind]), icon=":material/check:")
        return
    if predictions.base is None:
        chosen = chosen.drop(columns=["base_prediction"])
    shown = chosen.rename(columns={
        "text": text.COLUMN_TEXT, "human": text.COLUMN_HUMAN, "gold": text.COLUMN_GOLD,
        "base_prediction": text.COLUMN_BASE_PREDICTION, "tuned_prediction": text.COLUMN_TUNED_PREDICTION,
    })
    st.dataframe(shown, hide_index=True, key="tb_eval_human_disagreements",
                 column_config=fitted_columns(shown, flexible=[text.COLUMN_TEXT], shown_rows=len(shown)))


# ---- language models ------------------------------------------------------------------------

def loss_panel(predictions: insight.RunPredictions) -> None:
    """Per-example loss before and after, and the examples that moved the most."""
    st.subheader(text.LOSS_TITLE)
    st.caption(text.LOSS_CAPTIONS.get(predictions.task, text.LOSS_CAPTION))
    base = predictions.base["loss"].tolist() if predictions.base is not None else []
    st.plotly_chart(charts.loss_distribution_figure(base, predictions.tuned["loss"].tolist()), key="tb_eval_losses")
    if predictions.base is None:
        return
    names = text.LOSS_CHANGE_COLUMNS
    for part, rows in analysis.moved_examples(predictions.base, predictions.tuned, TOP_CHANGES).items():
        title, empty = text.MOVED_EXAMPLES[part]
        st.markdown(f"**{title}**")
        if rows.empty:
            st.caption(empty)
        else:
            shown = rows.rename(columns=names)
            number = {name: st.column_config.NumberColumn(format="%.3f") for name in list(names.values())[1:]}
            st.dataframe(shown, hide_index=True, key=f"tb_eval_{title}",
                         column_config=fitted_columns(shown, flexible=[text.COLUMN_TEXT], config=number))


# ---- the page ------------------------------------------------------------------------------

router.require_router()
st.title(text.EVALUATE_TITLE)
st.caption(text.EVALUATE_CAPTION)

jobs = state.get_jobs()
run_id, snap, cfg = picked_run(jobs)
state.watch(jobs, snap)  # a new evaluation or the run's end redraws the page

run_path = state.run_path(run_id)
predictions = cached_predictions(str(run_path), predictions_stamp(run_path))
report_button(state.run_path(run_id), run_id, key="tb_eval_report")
if predictions is None:
    st.info(text.EVALUATE_NO_PREDICTIONS, icon=":material/info:")
    st.stop()
st.caption(rows_caption(predictions.meta))
if snap.is_active:
    st.caption(text.STILL_TRAINING)
if predictions.tuned is None:
    st.info(text.EVALUATE_PENDING, icon=":material/hourglass_top:")
    st.stop()

if predictions.has_answers:
    answers_panel(predictions)
if predictions.has_labels:  # a classifier, or generated answers mapped to a small label set
    confusion_panel(predictions)
    per_class_panel(predictions)
    examples_panel(predictions, run_id)
    st.divider()
    human_panel(predictions, cfg)
elif predictions.has_answers:
    examples_panel(predictions, run_id)
if predictions.task != "classification" and "loss" in predictions.tuned.columns:  # a prompt run stores no losses
    if predictions.has_answers:
        st.divider()
    loss_panel(predictions)
