"""Prompting, the strategy without training, and the answer scores every instruction-tuning run reports.

    settings = answer_settings(cfg, prepared)    few-shot examples drawn with the seed, the answers' label set
    outcome = run_prompting(cfg, prepared, recorder, sink, stop_event, device, score_probes)
    report_answers(sink, step, "base" | "final", scores)

A prompt run (strategy `prompt`, task sft) loads the base model, trains nothing, and lets it answer every
evaluation prompt greedily, with the run's few-shot examples before each one
(core.insight.answer_pass). Those answers are the run's per-example predictions (stored as the final
stage) and their scores its final metrics: exact match, and with a label set the accuracy and F1 that
classification runs report. The same pass with the same examples is every trained sft run's "before", so a
shoot-out's prompt row equals its trained rows' starting point. Stop is honoured between batches; nothing
is saved to final/ (the model is the base model) except prompting.json, the examples the prompts carried.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.config import RunConfig
from core.errors import DataError
from core.files import atomic_write_json
from core.insight.answer_pass import (
    LABEL_POOL_ROWS,
    AnswerScores,
    AnswerSettings,
    as_examples,
    describe_scores,
    draw_positions,
    prepend_examples,
    shots_words,
    split_reference,
)
from core.present import text

EXAMPLES_FILE = "prompting.json"  # in the run folder: the few-shot examples a prompt run's prompts carried


@dataclass(frozen=True)
class Prompted:
    """How a prompt run ended: 'completed' or 'stopped', its metrics, and the summary the run's status keeps."""

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def answer_settings(cfg: RunConfig, prepared: Any) -> AnswerSettings | None:
    """What an sft run's answer passes take from its data: few-shot examples, label set, prompt template; else None."""
    if cfg.task != "sft":
        return None
    # The raw chats, not the lazy tokenisation the Trainer reads through the dataset's transform.
    rows = prepared.train_dataset.with_format(None)
    seed = cfg.training.seed
    examples = as_examples(_texts(rows, draw_positions(len(rows), cfg.strategy.few_shot, seed)))
    pool = [split_reference(json.loads(t))[1] for t in _texts(rows, draw_positions(len(rows), LABEL_POOL_ROWS, seed))]
    labelled = (prepared.data_report or {}).get("format") == "labels"
    return AnswerSettings(
        examples=examples,
        label_names=(prepared.data_report or {}).get("answer_labels") if labelled else None,
        template=cfg.data.prompt_template if labelled else None,
        label_pool=pool,
    )


def _texts(rows: Any, positions: list[int]) -> list[str]:
    return [str(t) for t in rows.select(positions)["text"]] if positions else []


def run_prompting(cfg: RunConfig, prepared: Any, recorder: Any, sink: Any, stop_event: threading.Event, device: str,
                  score_probes: Callable[[Any], list[dict[str, Any]]]) -> Prompted:
    """The prompt strategy on the main process's recorder (None on the other processes: they only wait)."""
    if prepared.eval_dataset is None:
        raise DataError("Prompting is scored on the evaluation prompts, and this run has none: hold out a validation "
                        "share or give an eval file.", field="data.validation_fraction")
    if recorder is None:
        return Prompted("completed")
    model = prepared.model.to(device)
    examples = recorder.answer_plan.examples
    shots = shots_words(len(examples))
    sink.log(text.PROMPTING_START.format(shots=shots, rows=len(recorder.texts), total=recorder.total_rows))
    if stop_event.is_set():
        return Prompted("stopped")
    _score_probes(model, prepared.tokenizer, cfg, examples, sink, score_probes)
    sink.set_samples_per_step(1)  # progress counts prompts answered, and its rate is prompts per second
    scores = recorder.prompted(model, should_stop=stop_event.is_set,
                               on_batch=lambda done, total: sink.progress(done, total, 0.0))
    if scores is None:
        sink.event("stop", 0, text.PROMPTING_STOPPED)
        return Prompted("stopped")
    atomic_write_json(recorder.folder.parent / EXAMPLES_FILE, {"few_shot": len(examples), "seed": cfg.training.seed,
                                                              "examples": examples})
    sink.metric({"step": 0, **scores.metrics})
    sink.log(text.PROMPTING_DONE.format(shots=shots, rows=scores.rows, seconds=scores.seconds,
                                        scores=describe_scores(scores)))
    rate = scores.rows / scores.seconds if scores.seconds > 0 else None
    return Prompted("completed", dict(scores.metrics), {"step": 0, "max_steps": 0, "epoch": 0.0,
                                                        "answers_per_second": rate})


def _score_probes(model: Any, tokenizer: Any, cfg: RunConfig, examples: list, sink: Any,
                  score_probes: Callable[[Any], list[dict[str, Any]]]) -> None:
    """The probes as every run scores its base model, and as this run answers them (with its examples) as final."""
    from core.insight.answers import reply_to_chats

    base = score_probes(model)
    for result in base:
        sink.probe(0, "base", result["text"], result["predictions"])
    if examples:
        chats = [prepend_examples([{"role": "user", "content": r["text"]}], examples) for r in base]
        answers = reply_to_chats(model, tokenizer, chats)
        prompted = [{"text": r["text"], "predictions": [{"answer": a, "score": 1.0}]}
                    for r, a in zip(base, answers, strict=True)]
    else:
        prompted = base  # zero-shot: the probes were just answered exactly so
    for result in prompted:
        sink.probe(0, "final", result["text"], result["predictions"])


def report_answers(sink: Any, step: int, stage: str, scores: AnswerScores | None) -> dict[str, float]:
    """A trained sft run's answer scores ('base' before training, 'final' after) in its log, curves and status."""
    if scores is None:
        return {}
    sink.metric({"step": int(step), **scores.metrics})
    who = text.ANSWERS_BASE if stage == "base" else text.ANSWERS_TUNED
    sink.log(text.ANSWERS_SCORED.format(who=who, shots=shots_words(scores.shots), scores=describe_scores(scores),
                                        rows=scores.rows, seconds=scores.seconds))
    if stage == "base":
        sink.set_status(base_metrics=dict(scores.metrics))
    return dict(scores.metrics)
