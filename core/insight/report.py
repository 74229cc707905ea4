"""One self-contained HTML report of a run: `python -m core report RUN_FOLDER --output FILE.html`.

The file opens offline in any browser: plotly's JavaScript is inlined once (first figure), the other
figures reuse it, and nothing is fetched from the network. It holds the run's summary, the curves, the
probes before and after, and the per-example results of core.insight.predictions. The figures come from core/present/charts.py
(plotly only, no streamlit) so the report and the pages draw the same pictures.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import describe_learning_rate
from core.errors import RunError
from core.insight import analysis
from core.insight import predictions as insight
from core.run.folder import RunFolder

TOP_EXAMPLES = 20
MAX_TABLE_TEXT = 300  # characters of an example's text shown in a table cell

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #0F172A; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #E2E8F0; }
h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #E2E8F0; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #F8FAFC; } .muted { color: #64748B; font-size: 0.9rem; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
"""


class _Figures:
    """Turns figures into HTML divs: the first carries plotly.js inline, the rest none."""

    def __init__(self) -> None:
        self.first = True

    def html(self, fig: Any) -> str:
        import plotly.io as pio

        include = "inline" if self.first else False
        self.first = False
        return pio.to_html(fig, full_html=False, include_plotlyjs=include, config={"displaylogo": False})


def build_report(run_path: Path | str) -> str:
    """The report of the run folder as one HTML string. Raises RunError when it is not a run folder."""
    from core.present import charts, text

    folder = RunFolder(Path(run_path))
    if not folder.config_path.is_file():
        raise RunError(text.REPORT_NOT_A_RUN.format(path=folder.path))
    cfg = folder.config()
    status = folder.status()
    records = folder.metrics()
    metrics = [r for r in records if "event" not in r]
    events = [r for r in records if "event" in r]
    predictions = insight.load_predictions(folder.path)
    figures = _Figures()

    parts = [f"<h1>{_e(text.REPORT_TITLE.format(run_id=folder.run_id))}</h1>",
             f"<p class='muted'>{_e(text.REPORT_GENERATED.format(time=datetime.now().strftime('%Y-%m-%d %H:%M')))}</p>",
             f"<h2>{_e(text.REPORT_SUMMARY)}</h2>", _summary_table(cfg, status, predictions)]

    parts.append(f"<h2>{_e(text.REPORT_CURVES)}</h2>")
    parts.append(figures.html(charts.loss_figure(metrics, events)))
    parts.append(figures.html(charts.eval_figure(metrics, cfg.task, events)))

    base_probes, tuned_probes = _probes(folder.probes())
    if base_probes or tuned_probes:
        parts.append(f"<h2>{_e(text.REPORT_PROBES)}</h2>")
        for probe in dict.fromkeys([*base_probes, *tuned_probes]):
            before, after = base_probes.get(probe, []), tuned_probes.get(probe, [])
            parts.append(f"<h3>{_e(probe)}</h3>")
            if cfg.task == "classification":
                parts.append(figures.html(charts.label_figure(before, after)))
            else:
                parts.append("<div class='pair'>")
                # One probability axis for both panels: an 8% bar must not be drawn as wide as a 29% one.
                x_max = charts.shared_x_max(*([p.get("score") for p in side] for side in (before, after)))
                for title, scores in ((text.SERIES_BASE_MODEL, before), (text.SERIES_TUNED_MODEL, after)):
                    body = figures.html(charts.topk_figure(scores, x_max=x_max)) if scores else _e(text.NOT_AVAILABLE)
                    parts.append(f"<div><p class='muted'>{_e(title)}</p>{body}</div>")
                parts.append("</div>")

    if predictions is None or predictions.tuned is None:
        parts.append(f"<h2>{_e(text.REPORT_CLASSIFICATION if cfg.task == 'classification' else text.REPORT_LANGUAGE_MODEL)}</h2>")
        parts.append(f"<p>{_e(text.REPORT_NO_PREDICTIONS)}</p>")
    elif predictions.has_labels:  # a classifier, or generated answers mapped to a small label set
        parts += _classification_section(predictions, figures)
    elif "loss" in predictions.tuned.columns:  # a prompt run stores answers without losses
        parts += _language_model_section(predictions, figures)

    body = "\n".join(parts)
    title = _e(text.REPORT_TITLE.format(run_id=folder.run_id))
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_report(run_path: Path | str, output: Path | str) -> Path:
    """Build the report and write it atomically to `output`; returns the path written."""
    from core.files import atomic_write_text

    target = Path(output).expanduser()
    atomic_write_text(target, build_report(run_path))
    return target


# ---- sections ------------------------------------------------------------------------------------

def _summary_table(cfg: Any, status: Mapping[str, Any], predictions: insight.RunPredictions | None) -> str:
    from core.present import text

    t = cfg.training
    hyper = (f"{training_length(t, status.get('run_length'))}, batch {t.batch_size} × {t.gradient_accumulation_steps}, "
             f"learning rate {describe_learning_rate(status.get('learning_rate') or t.learning_rate)} ({t.lr_scheduler}), weight decay {t.weight_decay:g}, seed {t.seed}")
    data = cfg.data.source if cfg.data.source == "synthetic" else f"{cfg.data.source}: {cfg.data.path}"
    final = status.get("final_metrics") or {}
    trainable, total = status.get("trainable_params"), status.get("total_params")
    elapsed = status.get("elapsed_s")
    rows = {
        "status": status.get("status", "—"),
        "task": cfg.task,
        "model": cfg.model.source,
        "data": data,
        "strategy": status.get("strategy_description") or cfg.strategy.name,
        "hyperparameters": hyper,
        "hardware": status.get("device") or "—",
        "started": status.get("started_at") or "—",
        "finished": status.get("finished_at") or "—",
        "duration": f"{float(elapsed):.0f} s" if isinstance(elapsed, (int, float)) else "—",
        "parameters": f"{trainable:,} / {total:,}" if isinstance(trainable, int) and isinstance(total, int) else "—",
        "final_metrics": ", ".join(f"{k}: {v:.4g}" for k, v in final.items() if isinstance(v, (int, float))) or "—",
    }
    if predictions is not None:
        meta = predictions.meta
        used, total_rows = int(meta.get("rows_used") or 0), int(meta.get("rows_total") or 0)
        rows["eval_rows"] = (text.EVALUATE_SAMPLED.format(used=used, total=total_rows) if meta.get("sampled")
                             else text.EVALUATE_ROWS.format(used=used))
    cells = "".join(f"<tr><th>{_e(text.REPORT_FIELDS[key])}</th><td>{_e(value)}</td></tr>" for key, value in rows.items())
    return f"<table>{cells}</table>"


def training_length(training: Any, planned: Mapping[str, Any] | None = None) -> str:
    """What decided the run's length: its max steps when set (they override the epochs), its epochs, else the default rule.

    planned: status.json's run_length, the steps the rule chose for the run's data (core.training.run_length).
    """
    from core.present import text

    if training.max_steps:
        return text.TRAINING_LENGTH_STEPS.format(steps=int(training.max_steps))
    if training.epochs is not None:
        return text.TRAINING_LENGTH_EPOCHS.format(epochs=float(training.epochs))
    if planned and planned.get("steps"):
        return text.TRAINING_LENGTH_RULE_STEPS.format(steps=int(planned["steps"]))
    return text.TRAINING_LENGTH_RULE


def _probes(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """(base predictions by probe text, the latest fine-tuned predictions by probe text; final wins)."""
    base: dict[str, list] = {}
    tuned: dict[str, tuple[int, int, list]] = {}
    for record in records:
        probe, phase = str(record.get("text", "")), record.get("phase")
        predictions = list(record.get("predictions") or [])
        if phase == "base":
            base[probe] = predictions
        elif phase in ("eval", "final"):
            rank = (int(record.get("step", 0) or 0), 1 if phase == "final" else 0)
            if probe not in tuned or rank >= tuned[probe][:2]:
                tuned[probe] = (*rank, predictions)
    return base, {probe: value[2] for probe, value in tuned.items()}


def _classification_section(predictions: insight.RunPredictions, figures: _Figures) -> list[str]:
    from core.present import charts, text

    labels = predictions.shown_labels()
    tuned_title = (text.EVALUATE_TUNED_FINAL if predictions.tuned_stage == "final" else text.EVALUATE_TUNED_EVAL).format(
        step=predictions.tuned_step if predictions.tuned_step is not None else "?")
    parts = [f"<h2>{_e(text.REPORT_CLASSIFICATION)}</h2>", f"<h3>{_e(text.CONFUSION_TITLE)}</h3>",
             f"<p class='muted'>{_e(text.CONFUSION_CAPTION)}</p>", "<div class='pair'>"]
    for title, frame in ((text.EVALUATE_BASE, predictions.base), (tuned_title, predictions.tuned)):
        if frame is None:
            parts.append(f"<div>{_e(text.NOT_AVAILABLE)}</div>")
            continue
        counts, shares = analysis.confusion(frame["gold"].tolist(), frame["predicted"].tolist(), labels)
        parts.append(f"<div>{figures.html(charts.confusion_figure(counts, shares, labels, title))}</div>")
    parts.append("</div>")

    table = analysis.per_class_change(predictions.base, predictions.tuned, labels)
    names = {"label": text.COLUMN_LABEL, "precision": text.COLUMN_PRECISION, "recall": text.COLUMN_RECALL,
             "f1": text.COLUMN_F1, "support": text.COLUMN_SUPPORT}
    for metric in ("precision", "recall", "f1"):
        names[f"{metric}_change"] = text.COLUMN_CHANGE.format(metric=names[metric])
    parts += [f"<h3>{_e(text.PER_CLASS_TITLE)}</h3>", _table(table.rename(columns=names))]

    examples = analysis.example_table(predictions.base, predictions.tuned)
    wrong = analysis.filter_examples(examples, "misclassified").sort_values("confidence", ascending=False, kind="stable")
    wrong = wrong.head(TOP_EXAMPLES).drop(columns=list(analysis.FILTER_COLUMNS)).rename(columns={
        "text": text.COLUMN_TEXT, "gold": text.COLUMN_GOLD, "base_prediction": text.COLUMN_BASE_PREDICTION,
        "tuned_prediction": text.COLUMN_TUNED_PREDICTION, "confidence": text.COLUMN_CONFIDENCE,
        "base_answer": text.COLUMN_BASE_ANSWER, "tuned_answer": text.COLUMN_TUNED_ANSWER,
    })
    parts.append(f"<h3>{_e(text.REPORT_TOP_MISCLASSIFIED)}</h3>")
    parts.append(_table(wrong) if len(wrong) else f"<p>{_e(text.EXAMPLES_NONE)}</p>")
    return parts


def _language_model_section(predictions: insight.RunPredictions, figures: _Figures) -> list[str]:
    from core.present import charts, text

    base = predictions.base["loss"].tolist() if predictions.base is not None else []
    parts = [f"<h2>{_e(text.REPORT_LANGUAGE_MODEL)}</h2>", f"<p class='muted'>{_e(text.LOSS_CAPTIONS.get(predictions.task, text.LOSS_CAPTION))}</p>",
             figures.html(charts.loss_distribution_figure(base, predictions.tuned["loss"].tolist()))]
    if predictions.base is None:
        return parts
    for part, rows in analysis.moved_examples(predictions.base, predictions.tuned, TOP_EXAMPLES).items():
        title, empty = text.MOVED_EXAMPLES[part]
        parts.append(f"<h3>{_e(title)}</h3>")
        parts.append(_table(rows.rename(columns=text.LOSS_CHANGE_COLUMNS)) if len(rows) else f"<p>{_e(empty)}</p>")
    return parts


# ---- html helpers -------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "—" if value != value else f"{float(value):.3f}"
    shown = str(value) if value is not None else "—"
    return _e(shown if len(shown) <= MAX_TABLE_TEXT else shown[:MAX_TABLE_TEXT] + "…")


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
