"""Plotly figures for the pages. Pure functions: plain records in, a Figure out.

Records are the dicts of metrics.jsonl / probes.jsonl (see core/run/sink.py). Every series is
downsampled to about MAX_POINTS points so a long run does not grow the browser's memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from core.present import legend, text

PALETTE = legend.PALETTE  # runs by strategy (one colour each, short legend names): core.present.legend

MAX_POINTS = 2000
PRIMARY = "#4F46E5"
PRIMARY_LIGHT = "rgba(79, 70, 229, 0.28)"
SECONDARY = "#0EA5E9"
TERTIARY = "#F59E0B"
QUATERNARY = "#10B981"
NEUTRAL = "#94A3B8"
NEW_COLOR = "#16A34A"
DROPPED_COLOR = "#DC2626"
# A series with at most this many points gets markers: one or two evaluations draw no visible line.
MARKER_POINTS = 60
# The training loss gets markers only while it is this short (its points are many once it trains).
FEW_POINTS = 5
EVENT_COLORS = {
    "unfreeze": "#8B5CF6",
    "checkpoint": "#94A3B8",
    "oom_retry": "#DC2626",
    "resume": "#10B981",
    "stop": "#F59E0B",
    "warning": "#EF4444",
}
# Markers drawn on the charts; "warning" is log-only.
CHART_EVENTS = ("unfreeze", "checkpoint", "oom_retry", "resume", "stop")
CHART_HEIGHT = 320


# ---- series helpers ------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def series(records: Iterable[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric, in step order; records without a finite value are skipped."""
    points: dict[int, float] = {}
    for record in records:
        if "event" in record:
            continue
        value = _number(record.get(key))
        step = record.get("step")
        if value is None or not isinstance(step, (int, float)) or isinstance(step, bool):
            continue
        points[int(step)] = value  # a resumed run may log a step twice: keep the latest
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def downsample(
    xs: Sequence[Any], ys: Sequence[Any], max_points: int = MAX_POINTS
) -> tuple[list[Any], list[Any]]:
    """At most max_points evenly spaced points, always keeping the first and the last."""
    n = len(xs)
    if n <= max_points or max_points < 2:
        return list(xs), list(ys)
    stride = (n - 1) / (max_points - 1)
    indices = sorted({round(i * stride) for i in range(max_points)})
    return [xs[i] for i in indices], [ys[i] for i in indices]


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Debiased exponential moving average (as TensorBoard's smoothing slider); weight in [0, 1)."""
    if not values:
        return []
    weight = min(max(float(weight), 0.0), 0.999)
    smoothed, last, correction = [], 0.0, 0.0
    for value in values:
        last = last * weight + (1 - weight) * value
        correction = correction * weight + (1 - weight)
        smoothed.append(last / correction)
    return smoothed


# ---- figure helpers ------------------------------------------------------------------------

def _layout(fig: go.Figure, *, y_title: str, log_y: bool = False, height: int = CHART_HEIGHT) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        hovermode="x unified",
        xaxis_title=text.AXIS_STEP,
        yaxis_title=y_title,
    )
    fig.update_yaxes(type="log" if log_y else "linear")
    return fig


def add_events(fig: go.Figure, events: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Vertical dotted lines at marker events, one legend entry per kind (hover shows the message)."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        kind = event.get("event")
        step = _number(event.get("step"))
        if kind in CHART_EVENTS and step is not None:
            by_kind.setdefault(str(kind), []).append(event)
    for kind, items in by_kind.items():
        color = EVENT_COLORS.get(kind, NEUTRAL)
        for item in items[-200:]:  # a long run with frequent checkpoints: keep the chart readable
            fig.add_vline(x=item["step"], line_dash="dot", line_width=1, line_color=color, opacity=0.7)
        # A marker trace carries the legend entry and the hover text, at the chart's lowest value.
        fig.add_trace(
            go.Scatter(
                x=[item["step"] for item in items],
                y=_event_y(fig, len(items)),
                mode="markers",
                marker={"symbol": "triangle-up", "size": 9, "color": color},
                name=text.EVENT_NAMES.get(kind, kind),
                text=[str(item.get("message", "")) for item in items],
                hovertemplate="%{text}<extra></extra>",
                yaxis="y",
            )
        )
    return fig


def _event_y(fig: go.Figure, count: int) -> list[float]:
    """Place event markers at the lowest plotted value so they sit on the x axis side."""
    lows = []
    for trace in fig.data:
        ys = [v for v in (trace.y or ()) if isinstance(v, (int, float)) and math.isfinite(v)]
        if ys and getattr(trace, "yaxis", None) in (None, "y"):
            lows.append(min(ys))
    return [min(lows) if lows else 0.0] * count


def _empty(y_title: str, log_y: bool = False) -> go.Figure:
    return _layout(go.Figure(), y_title=y_title, log_y=log_y)


# ---- training charts -----------------------------------------------------------------------

def loss_figure(
    metrics: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]] = (),
    *,
    log_y: bool = False,
    smoothing: float = 0.6,
    learning_rate: bool = True,
) -> go.Figure:
    """Training loss: the raw series (light) and its EMA (bold), with event markers; the learning
    rate on the right axis.

    One chart for both, because every changed chart costs the watching browser a redraw, and the
    browser's CPU is the training's on a small machine.
    """
    steps, losses = series(metrics, "loss")
    fig = _empty(text.AXIS_LOSS, log_y)
    if not steps:
        return fig
    smoothed = ema(losses, smoothing) if smoothing > 0 and len(steps) > 1 else []
    xs, ys = downsample(steps, losses)
    # The first few points get markers: one logged loss drawn as a line alone is invisible.
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) <= FEW_POINTS else "lines", name=text.SERIES_RAW,
                   line={"color": PRIMARY_LIGHT, "width": 1.5}, marker={"color": PRIMARY, "size": 7})
    )
    if smoothed:
        xs, ys = downsample(steps, smoothed)
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", name=text.SERIES_SMOOTHED, line={"color": PRIMARY, "width": 2.5})
        )
    lr_steps, rates = series(metrics, "learning_rate")
    if learning_rate and len(lr_steps) > 1 and len(steps) > 1:  # one rate on an axis of its own tells nothing yet
        xs, ys = downsample(lr_steps, rates)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=text.AXIS_LR, yaxis="y2",
                                 line={"color": SECONDARY, "width": 1, "dash": "dash"}))
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "exponentformat": "e",
                                  "rangemode": "tozero", "title": {"text": text.AXIS_LR}})
    return add_events(fig, events)


def eval_figure(
    metrics: Iterable[Mapping[str, Any]],
    task: str,
    events: Iterable[Mapping[str, Any]] = (),
    *,
    log_y: bool = False,
) -> go.Figure:
    """Eval loss + perplexity (mlm/causal, perplexity on the right axis) or accuracy/F1/P/R."""
    metrics = list(metrics)
    if task == "classification":
        fig = _empty(text.METRIC_NAMES["eval_accuracy"])
        for key, name, color, dash in (
            ("eval_accuracy", text.SERIES_ACCURACY, PRIMARY, "solid"),
            ("eval_f1", text.SERIES_F1, SECONDARY, "solid"),
            ("eval_precision", text.SERIES_PRECISION, TERTIARY, "dot"),
            ("eval_recall", text.SERIES_RECALL, QUATERNARY, "dot"),
        ):
            steps, values = series(metrics, key)
            if steps:
                xs, ys = downsample(steps, values)
                fig.add_trace(
                    go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, line={"color": color, "dash": dash})
                )
        fig.update_yaxes(range=[0, 1.02], title_text=text.AXIS_SCORE)  # accuracy and F1 are scores
        return add_events(fig, events)

    # Perplexity is exp(eval loss): drawn as a second trace it retraces the same line on another
    # axis. One line, then, with the right axis labelled in perplexity at the same heights.
    fig = _empty(text.METRIC_NAMES["eval_loss"], log_y)
    steps, values = series(metrics, "eval_loss")
    if not steps:
        return add_events(fig, events)
    xs, ys = downsample(steps, values)
    fig.add_trace(
        go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=text.SERIES_EVAL_LOSS, line={"color": PRIMARY},
            customdata=[_perplexity(v) for v in ys],
            hovertemplate=text.EVAL_LOSS_HOVER + "<extra></extra>",
        )
    )
    if not log_y:
        low, high = min(ys), max(ys)
        pad = max(0.05, (high - low) * 0.08)
        y_range = [low - pad, high + pad]
        ticks = perplexity_ticks(*y_range)
        fig.update_yaxes(range=y_range)
        fig.update_layout(
            yaxis2={
                "overlaying": "y", "side": "right", "range": y_range, "showgrid": False,
                "tickvals": [math.log(t) for t in ticks], "ticktext": [f"{t:,.4g}" for t in ticks],
                "title": {"text": text.METRIC_NAMES["eval_perplexity"]},
            }
        )
        # An invisible trace on the right axis, so plotly draws that axis at all.
        fig.add_trace(go.Scatter(x=[xs[0]], y=[ys[0]], yaxis="y2", mode="markers", opacity=0,
                                 showlegend=False, hoverinfo="skip"))
    return add_events(fig, events)


def _perplexity(loss: float) -> float | None:
    try:
        return math.exp(loss)
    except OverflowError:
        return None


def perplexity_ticks(low_loss: float, high_loss: float, count: int = 5) -> list[float]:
    """Round perplexity values (1-2-5 steps) whose log falls inside the loss range, about `count`."""
    low, high = _perplexity(low_loss), _perplexity(high_loss)
    if low is None or high is None or high <= low:
        return []
    candidates = []
    decade = 10 ** math.floor(math.log10(max(low, 1e-12)))
    while decade <= high * 10:
        for mantissa in (1, 1.5, 2, 3, 5, 7):
            value = mantissa * decade
            if low <= value <= high:
                candidates.append(value)
        decade *= 10
    if len(candidates) <= count:
        return candidates
    stride = (len(candidates) - 1) / (count - 1)
    return [candidates[round(i * stride)] for i in range(count)]


def has_series(runs: Mapping[str, Iterable[Mapping[str, Any]]], metric: str) -> bool:
    """Whether any of the runs has logged at least one value of `metric` (else draw a note, not an empty chart)."""
    return any(series(records, metric)[0] for records in runs.values())


def overlay_figure(
    runs: Mapping[str, Iterable[Mapping[str, Any]]], metric: str, *, log_y: bool = False, smoothing: float = 0.0,
    names: Mapping[str, str] | None = None, hovers: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """One metric of several runs on one chart.

    Runs are keyed by anything unique; `names` gives each its (short) legend name, `hovers` its full name
    for the hover, `colors` its colour (a strategy's: legend.strategy_color). Runs that share a colour differ
    by dash. A series of few points gets markers, so a single evaluation still shows.
    """
    fig = _empty(text.METRIC_NAMES.get(metric, metric), log_y)
    fig.update_layout(hovermode="closest")
    used: dict[str, int] = {}
    for i, (key, records) in enumerate(runs.items()):
        steps, values = series(records, metric)
        if not steps:
            continue
        if smoothing > 0:
            values = ema(values, smoothing)
        xs, ys = downsample(steps, values)
        color = (colors or {}).get(key) or PALETTE[i % len(PALETTE)]
        dash = legend.DASHES[used.get(color, 0) % len(legend.DASHES)]
        used[color] = used.get(color, 0) + 1
        name = (names or {}).get(key, key)
        hover = (hovers or {}).get(key, name)
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) <= MARKER_POINTS else "lines", name=name,
                       line={"color": color, "width": 2, "dash": dash}, marker={"size": 7},
                       hovertemplate=f"{_hover_safe(hover)}<br>%{{x}}: %{{y:.4g}}<extra></extra>")
        )
    return fig


def _hover_safe(label: str) -> str:
    """A label inside a plotly hovertemplate: braces would read as template fields."""
    return str(label).replace("{", "(").replace("}", ")")


# ---- probe charts --------------------------------------------------------------------------

def prediction_name(prediction: Mapping[str, Any]) -> str:
    """The token (mlm/causal) or label (classification) of one prediction."""
    return str(prediction.get("token", prediction.get("label", "")))


def token_changes(
    base: Sequence[Mapping[str, Any]], tuned: Sequence[Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """Tokens new in the tuned top-k, and tokens of the base top-k that dropped out (in rank order)."""
    base_names = [prediction_name(p).strip() for p in base]
    tuned_names = [prediction_name(p).strip() for p in tuned]
    new = [t for t in tuned_names if t not in base_names]
    dropped = [t for t in base_names if t not in tuned_names]
    return new, dropped


def shared_x_max(*score_lists: Iterable[Any]) -> float:
    """An x-axis end that fits every bar of several top-k figures, with room for the labels."""
    scores = [_number(score) or 0.0 for scores in score_lists for score in scores]
    return min(1.05, max([*scores, 0.05]) * 1.1)


def topk_figure(
    predictions: Sequence[Mapping[str, Any]],
    *,
    highlight: Iterable[str] = (),
    highlight_color: str = NEW_COLOR,
    color: str = PRIMARY,
    height: int | None = None,
    x_max: float | None = None,
) -> go.Figure:
    """Horizontal probability bars, best first; highlighted tokens get their own colour.

    Figures shown side by side pass the same `x_max`, so equal bars have equal lengths.
    """
    marked = {h.strip() for h in highlight}
    names = [prediction_name(p) for p in predictions]
    scores = [_number(p.get("score")) or 0.0 for p in predictions]
    colors = [highlight_color if n.strip() in marked else color for n in names]
    labels = [repr(n) if n != n.strip() or not n else n for n in names]  # make stray spaces visible
    return _bar_list(
        labels, scores, colors, [f"{s:.1%}" for s in scores], "%{y}: %{x:.2%}<extra></extra>",
        height=height or max(140, 34 * len(names) + 50),
        xaxis={"range": [0, shared_x_max(scores) if x_max is None else x_max], "tickformat": ".0%", "title": None},
        bargap=0.25,
    )


def _bar_list(labels: list[str], values: list[float], colors: Any, texts: list[str], hovertemplate: str, *,
              height: int, xaxis: dict[str, Any], **layout: Any) -> go.Figure:
    """Horizontal bars, first label on top, one per category: top-k tokens, class counts."""
    fig = go.Figure(
        go.Bar(x=values, y=labels, orientation="h", marker_color=colors, text=texts, textposition="auto",
               hovertemplate=hovertemplate)
    )
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis=xaxis,
        yaxis={"autorange": "reversed", "title": None, "type": "category"},
        showlegend=False,
        **layout,
    )
    return fig


def label_figure(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Label probabilities before and after fine-tuning, as grouped horizontal bars."""
    labels: list[str] = []
    for prediction in [*before, *after]:
        name = prediction_name(prediction)
        if name not in labels:
            labels.append(name)
    fig = go.Figure()
    for series, records, color in ((text.SERIES_BEFORE, before, NEUTRAL), (text.SERIES_AFTER, after, PRIMARY)):
        scores = {prediction_name(p): _number(p.get("score")) or 0.0 for p in records}
        # The legend names each side's predicted label (the top one), so the answer reads without the bars.
        name = text.SERIES_PREDICTS.format(series=series, label=prediction_name(records[0])) if records else series
        fig.add_trace(
            go.Bar(
                x=[scores.get(label, 0.0) for label in labels],
                y=labels,
                orientation="h",
                name=name,
                marker_color=color,
                text=[f"{scores.get(label, 0.0):.1%}" for label in labels],
                textposition="auto",
                hovertemplate="%{y}: %{x:.2%}<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        template="plotly_white",
        barmode="group",
        height=max(160, 60 * len(labels) + 60),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"range": [0, 1.05], "tickformat": ".0%", "title": None},
        yaxis={"autorange": "reversed", "title": None, "type": "category"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
    )
    return fig


def class_counts_figure(counts: Mapping[str, int]) -> go.Figure:
    """Rows per class of a label column, as small horizontal bars with count and share."""
    labels = [str(label) for label in counts]
    values = [int(counts[label]) for label in counts]
    total = sum(values) or 1
    return _bar_list(
        labels, values, PRIMARY, [f"{v:,} ({v / total:.0%})" for v in values],
        "%{y}: %{x:,} " + text.AXIS_ROWS + "<extra></extra>",
        height=max(120, 32 * len(labels) + 60), xaxis={"title": text.AXIS_ROWS, "rangemode": "tozero"},
    )


# ---- per-example results (core.insight.predictions) ----------------------------------------------------

def confusion_figure(counts: Any, shares: Any, labels: Sequence[str], title: str) -> go.Figure:
    """A confusion-matrix heatmap coloured by row share, each cell labelled with count and share."""
    labels = [str(label) for label in labels]
    cell_text = [[f"{int(counts[i][j]):,}<br>{shares[i][j]:.0%}" for j in range(len(labels))] for i in range(len(labels))]
    fig = go.Figure(go.Heatmap(
        z=[[float(v) for v in row] for row in shares], x=labels, y=labels, zmin=0, zmax=1,
        colorscale=[[0, "#F8FAFC"], [1, PRIMARY]], showscale=False, text=cell_text, texttemplate="%{text}",
        hovertemplate=text.CONFUSION_GOLD + ": %{y}<br>" + text.CONFUSION_PREDICTED + ": %{x}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(
        template="plotly_white", title={"text": title, "x": 0, "font": {"size": 14}},
        height=max(260, 60 * len(labels) + 120), margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis={"title": text.CONFUSION_PREDICTED, "type": "category", "side": "bottom"},
        yaxis={"title": text.CONFUSION_GOLD, "type": "category", "autorange": "reversed"},
    )
    return fig


def loss_distribution_figure(base: Sequence[float], tuned: Sequence[float]) -> go.Figure:
    """Per-example losses of the base and the fine-tuned model: overlaid histograms with box plots above."""
    fig = go.Figure()
    for name, values, color in ((text.SERIES_BASE_MODEL, base, NEUTRAL), (text.SERIES_TUNED_MODEL, tuned, PRIMARY)):
        clean = [float(v) for v in values if _number(v) is not None]
        if not clean:
            continue
        fig.add_trace(go.Histogram(x=clean, name=name, marker_color=color, opacity=0.6, nbinsx=40,
                                   hovertemplate="%{x}: %{y}<extra>" + name + "</extra>"))
        fig.add_trace(go.Box(x=clean, name=name, marker_color=color, yaxis="y2", boxpoints=False, showlegend=False))
    fig.update_layout(
        template="plotly_white", barmode="overlay", height=CHART_HEIGHT, margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        xaxis={"title": text.LOSS_AXIS}, yaxis={"title": text.AXIS_ROWS, "domain": [0, 0.74]},
        yaxis2={"domain": [0.78, 1], "showticklabels": False},
    )
    return fig


# ---- strategy shoot-out and learning-rate finder ------------------------------------------------

def tradeoff_figure(points: Sequence[Mapping[str, Any]], metric_title: str, *, higher_is_better: bool) -> go.Figure:
    """Quality against wall time, one point per run ({label, wall_s, metric, front}); the front joined by a line."""
    fig = _layout(go.Figure(), y_title=metric_title)
    fig.update_layout(hovermode="closest", xaxis_title=text.SWEEP_AXIS_TIME)
    shown = [p for p in points if _number(p.get("wall_s")) is not None and _number(p.get("metric")) is not None]
    front = sorted((p for p in shown if p.get("front")), key=lambda p: p["wall_s"])
    if len(front) > 1:
        fig.add_trace(go.Scatter(
            x=[p["wall_s"] for p in front], y=[p["metric"] for p in front], mode="lines", name=text.SWEEP_FRONT,
            line={"color": NEUTRAL, "width": 2, "dash": "dot", "shape": "hv" if higher_is_better else "linear"},
            hoverinfo="skip",
        ))
    sides, y_range = legend.point_label_layout([p["wall_s"] for p in shown], [p["metric"] for p in shown])
    for i, point in enumerate(shown):
        fig.add_trace(go.Scatter(
            x=[point["wall_s"]], y=[point["metric"]], mode="markers+text", name=str(point["label"]),
            text=[str(point["label"])], textposition=sides[i], cliponaxis=False,
            marker={"size": 14 if point.get("front") else 10, "color": point.get("color") or PALETTE[i % len(PALETTE)],
                    "symbol": "star" if point.get("front") else "circle"},
            hovertemplate=f"{point['label']}<br>%{{x:.0f}} s<br>{metric_title} %{{y:.4g}}<extra></extra>",
        ))
    if y_range:
        fig.update_yaxes(range=y_range)
    return fig


def lr_finder_figure(learning_rates: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                     pick: float | None) -> go.Figure:
    """Loss against learning rate (log x) from a range test, raw and smoothed, with the pick marked."""
    fig = _layout(go.Figure(), y_title=text.METRIC_NAMES["loss"])
    fig.update_layout(hovermode="closest", xaxis_title=text.METRIC_NAMES["learning_rate"])
    fig.update_xaxes(type="log", exponentformat="e")
    fig.add_trace(go.Scatter(x=list(learning_rates), y=list(losses), mode="markers", name=text.LR_FINDER_RAW,
                             marker={"color": PRIMARY_LIGHT, "size": 6}))
    fig.add_trace(go.Scatter(x=list(learning_rates), y=list(smoothed), mode="lines", name=text.LR_FINDER_SMOOTHED,
                             line={"color": PRIMARY, "width": 2}))
    if pick is not None:
        fig.add_vline(x=pick, line={"color": TERTIARY, "width": 2, "dash": "dash"},
                      annotation_text=text.LR_FINDER_PICK_MARK.format(rate=pick), annotation_position="top")
    return fig
