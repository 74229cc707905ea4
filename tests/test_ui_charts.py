"""core.present.charts: pure functions from run records to plotly figures."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

from core.present import charts, legend


def train_records(n: int) -> list[dict]:
    return [{"step": s, "loss": 3.0 / s, "learning_rate": 1e-4 * (1 - s / (n + 1))} for s in range(1, n + 1)]


def test_series_skips_events_missing_and_non_finite_values_and_sorts():
    records = [
        {"step": 3, "loss": 1.0},
        {"step": 1, "loss": 2.0},
        {"step": 2, "loss": None},
        {"step": 4, "loss": float("nan")},
        {"step": 5, "event": "checkpoint", "loss": 9.0},
        {"step": 6, "eval_loss": 1.5},
        {"loss": 7.0},
        {"step": 3, "loss": 0.5},  # a resumed run logging step 3 again: the latest wins
    ]
    assert charts.series(records, "loss") == ([1, 3], [2.0, 0.5])


def test_downsample_keeps_ends_and_bounds_points():
    xs = list(range(10_000))
    dx, dy = charts.downsample(xs, [x * 2 for x in xs], 2000)
    assert len(dx) <= 2000 and dx[0] == 0 and dx[-1] == 9999
    assert all(y == 2 * x for x, y in zip(dx, dy, strict=True))
    assert charts.downsample([1, 2, 3], [4, 5, 6]) == ([1, 2, 3], [4, 5, 6])


def test_ema_is_debiased_and_smooths():
    assert charts.ema([], 0.9) == []
    assert charts.ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])
    assert charts.ema([1.0, 3.0], 0.0) == [1.0, 3.0]
    smoothed = charts.ema([0.0, 10.0, 0.0, 10.0], 0.8)
    assert smoothed[0] == 0.0 and max(smoothed) < 10.0


def test_loss_figure_raw_and_smoothed_with_event_markers():
    events = [
        {"step": 10, "event": "unfreeze", "message": "Unfroze layer 5"},
        {"step": 20, "event": "checkpoint", "message": "Saved checkpoint-20"},
        {"step": 30, "event": "phase", "message": "not drawn"},
    ]
    fig = charts.loss_figure(train_records(50), events, log_y=True, smoothing=0.6)
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names[:2] == ["loss", "smoothed"]
    assert "unfreeze" in names and "checkpoint" in names and "phase" not in names
    assert len(fig.layout.shapes) == 2  # one vertical line per drawn event
    assert fig.layout.yaxis.type == "log"
    marker = next(t for t in fig.data if t.name == "checkpoint")
    assert list(marker.text) == ["Saved checkpoint-20"]


def test_loss_figure_downsamples_long_runs_and_handles_empty():
    fig = charts.loss_figure(train_records(12_000))
    assert all(len(t.x) <= charts.MAX_POINTS for t in fig.data)
    empty = charts.loss_figure([])
    assert len(empty.data) == 0


def test_eval_figure_language_model_draws_one_line_with_perplexity_on_the_right_axis():
    records = [{"step": 10, "eval_loss": 2.0, "eval_perplexity": math.exp(2.0)},
               {"step": 20, "eval_loss": 1.5, "eval_perplexity": math.exp(1.5)}]
    fig = charts.eval_figure(records, "mlm")
    drawn = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in drawn] == ["eval loss"]  # not a second line retracing the first
    assert list(drawn[0].customdata) == pytest.approx([math.exp(2.0), math.exp(1.5)])  # perplexity on hover
    right = fig.layout.yaxis2
    assert right.overlaying == "y" and tuple(right.range) == tuple(fig.layout.yaxis.range)
    for value, label in zip(right.tickvals, right.ticktext, strict=True):  # each label sits at its loss
        assert float(label.replace(",", "")) == pytest.approx(math.exp(value), rel=1e-3)
        assert right.range[0] <= value <= right.range[1]


def test_perplexity_ticks_are_round_and_inside_the_range():
    ticks = charts.perplexity_ticks(1.0, 3.0)
    assert ticks and all(math.exp(1.0) <= t <= math.exp(3.0) for t in ticks)
    assert all(float(f"{t:.2g}") == t for t in ticks)
    assert charts.perplexity_ticks(2.0, 2.0) == []


def test_eval_figure_classification_shows_accuracy_and_f1_on_a_unit_axis():
    records = [{"step": 10, "eval_accuracy": 0.7, "eval_f1": 0.65, "eval_precision": 0.7, "eval_recall": 0.6}]
    fig = charts.eval_figure(records, "classification")
    assert {"accuracy", "F1", "precision", "recall"} <= {t.name for t in fig.data}
    assert tuple(fig.layout.yaxis.range) == (0, 1.02)


def test_the_learning_rate_shares_the_loss_chart_on_its_own_axis_and_overlays():
    fig = charts.loss_figure(train_records(10))
    (lr,) = [t for t in fig.data if t.yaxis == "y2"]
    assert len(lr.x) == 10 and fig.layout.yaxis2.side == "right"
    assert len(charts.loss_figure(train_records(10), learning_rate=False).data) == len(fig.data) - 1
    overlay = charts.overlay_figure({"run a": train_records(10), "run b": [], "run c": train_records(5)}, "loss")
    assert [t.name for t in overlay.data] == ["run a", "run c"]


def test_token_changes_and_topk_highlighting():
    base = [{"token": "good", "score": 0.2}, {"token": "cheap", "score": 0.1}]
    tuned = [{"token": "comfortable", "score": 0.5}, {"token": "good", "score": 0.3}]
    new, dropped = charts.token_changes(base, tuned)
    assert new == ["comfortable"] and dropped == ["cheap"]
    fig = charts.topk_figure(tuned, highlight=new)
    bar = fig.data[0]
    assert list(bar.y) == ["comfortable", "good"]
    assert list(bar.marker.color) == [charts.NEW_COLOR, charts.PRIMARY]
    assert fig.layout.yaxis.autorange == "reversed"  # best first, at the top


def test_side_by_side_topk_figures_share_one_x_scale():
    base = [{"token": "good", "score": 0.02}]
    tuned = [{"token": "comfortable", "score": 0.6}, {"token": None, "score": None}]
    x_max = charts.shared_x_max([p["score"] for p in base], [p["score"] for p in tuned])
    assert x_max == pytest.approx(0.66)
    ranges = [tuple(charts.topk_figure(p, x_max=x_max).layout.xaxis.range) for p in (base, tuned)]
    assert ranges[0] == ranges[1] == (0, x_max)
    assert charts.shared_x_max([0.99]) == 1.05 and charts.shared_x_max([]) == pytest.approx(0.055)


def test_topk_makes_stray_whitespace_visible():
    fig = charts.topk_figure([{"token": " Nike", "score": 0.5}])
    assert list(fig.data[0].y) == ["' Nike'"]


def test_label_figure_groups_before_and_after():
    before = [{"label": "negative", "score": 0.6}, {"label": "positive", "score": 0.4}]
    after = [{"label": "positive", "score": 0.9}, {"label": "negative", "score": 0.1}]
    fig = charts.label_figure(before, after)
    # Each names its model as everywhere else ("Base model" / "Fine-tuned model") and its predicted label.
    assert [t.name for t in fig.data] == ["Base model: negative", "Fine-tuned model: positive"]
    assert list(fig.data[0].y) == ["negative", "positive"]
    assert list(fig.data[1].x) == [0.1, 0.9]


def test_weight_names_are_summarised_by_module():
    from ui.widgets import summarise_weight_names

    names = ["cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
             "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
             "cls.predictions.decoder.weight", "score.weight"]
    assert summarise_weight_names(names) == "cls.predictions.* (6 tensors), score.weight"
    assert summarise_weight_names(["classifier.weight", "classifier.bias"]) == "classifier.* (2 tensors)"
    assert summarise_weight_names([]) == ""


def test_class_counts_figure_draws_one_bar_per_class_with_count_and_share():
    fig = charts.class_counts_figure({"positive": 30, "negative": 10})
    (bar,) = fig.data
    assert list(bar.y) == ["positive", "negative"] and list(bar.x) == [30, 10]
    assert list(bar.text) == ["30 (75%)", "10 (25%)"]
    assert charts.class_counts_figure({}).data[0].x == ()


def test_overlay_marks_single_points_and_keeps_strategy_colours_apart_by_dash():
    """Issue 27: one evaluation per run drew a line with no visible point; one colour per strategy."""
    one_eval = [{"step": 12, "eval_f1": 0.8}]
    fig = charts.overlay_figure(
        {"a": one_eval, "b": one_eval, "c": train_records(3000)}, "eval_f1",
        names={"a": "LoRA · 1a2b", "b": "LoRA · 3c4d"}, hovers={"a": "a very long run name · 20260101-a"},
        colors={"a": legend.strategy_color("lora"), "b": legend.strategy_color("lora")},
    )
    assert [t.name for t in fig.data] == ["LoRA · 1a2b", "LoRA · 3c4d"]
    assert all("markers" in t.mode for t in fig.data)
    assert fig.data[0].line.color == fig.data[1].line.color == legend.STRATEGY_COLORS["lora"]
    assert fig.data[0].line.dash != fig.data[1].line.dash
    assert "a very long run name" in fig.data[0].hovertemplate
    long_run = charts.overlay_figure({"c": train_records(3000)}, "loss")
    assert long_run.data[0].mode == "lines"  # thousands of points: no markers
    assert legend.short_run_id("20260101-120000-classification-1a2b3c4d") == "1a2b3c4d"
    assert not charts.has_series({"a": one_eval}, "loss") and charts.has_series({"a": one_eval}, "eval_f1")
