"""The answer pass of instruction tuning: every evaluation chat's prompt answered greedily, scored against its
reference, and mapped to a label when the references are a small set of labels.

    settings = AnswerSettings(examples, label_names, template, label_pool)   from the run (core.training.prompting)
    plan = plan_answers(eval_chat_texts, settings)      prompts, references, inputs, the label set
    result = answer_pass(model, tokenizer, plan, with_examples=True, should_stop=..., on_batch=...)
    frame = answer_frame(texts, plan, result, losses)   one row per example: core.insight.predictions' sft stage
    scores = answer_scores(plan, result)                eval_exact_match, with a label set eval_accuracy and eval_f1

An example's prompt is its chat up to the last assistant turn, and that turn is the reference. With few-shot
examples the prompt starts with them, as earlier user and assistant turns (after the chat's own system turn).
The base model answers with the run's examples (the prompt strategy, and every run's "before"); a fine-tuned
model answers without them, as it was trained.

A stage frame keeps the classification columns, so confusion, per-class scores, the example browser and the
agreement with human labels read it as they read a classifier's: `gold` and `predicted` are the reference's
and the answer's labels (`predicted` None when the answer names none), or without a label set the reference
and the answer themselves; `correct` is what accuracy counts (the labels agree; else an exact match) and
`confidence` the model's probability of its whole answer. `input` is what a human-labelled file names the
example by: the {text} a prompt template wrapped, else the last user message.
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.data.instructions import map_to_label
from core.insight.answers import (
    ANSWER_BATCH_SIZE,
    answer_batches,
    exact_match,
    score_answers,
    small_label_set,
)

Chat = list[dict[str, str]]

# An answer may run this many tokens past the longest reference ("The answer is Sports." still names a label),
# and never past MAX_ANSWER_TOKENS: a label set's answers are a few tokens, and every generated token of the
# longest row in a batch costs a forward pass of the whole batch.
ANSWER_MARGIN_TOKENS = 8
MAX_ANSWER_TOKENS = 64
# Training answers read to decide whether the answers form a label set (a seeded sample of larger sets).
LABEL_POOL_ROWS = 2000


# ---- chats -------------------------------------------------------------------------------------

def split_reference(chat: Sequence[Mapping[str, str]]) -> tuple[Chat, str]:
    """(the chat before its last assistant turn, that turn's text): an example's prompt and its reference answer."""
    turns = [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]
    last = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=len(turns))
    return turns[:last], turns[last]["content"] if last < len(turns) else ""


def prepend_examples(prompt: Sequence[Mapping[str, str]], examples: Sequence[Sequence[Mapping[str, str]]]) -> Chat:
    """The prompt with worked examples before it as earlier turns; the prompt's own system turn stays first."""
    system = [dict(m) for m in prompt if m["role"] == "system"]
    shown = [dict(m) for example in examples for m in example if m["role"] != "system"]
    return system + shown + [dict(m) for m in prompt if m["role"] != "system"]


def draw_positions(rows: int, k: int, seed: int) -> list[int]:
    """k of `rows` positions (all of them when there are fewer), drawn with the seed, in the order drawn."""
    return random.Random(seed).sample(range(rows), min(max(0, k), rows)) if rows > 0 else []


def as_examples(chat_texts: Sequence[str]) -> list[Chat]:
    """Chats (JSON strings) as few-shot examples: each cut after its last answer."""
    return [prompt + [{"role": "assistant", "content": answer}]
            for prompt, answer in (split_reference(json.loads(text)) for text in chat_texts)]


def template_text(message: str, template: str) -> str | None:
    """The {text} that `template` (a labelled-text prompt template) wrapped into `message`; None if it does not fit."""
    pattern, named = [], False
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern.append(re.escape(literal))
        if name == "text":
            pattern.append("(?P=text)" if named else "(?P<text>.*)")
            named = True
        elif name is not None:
            pattern.append(".*?")  # the labels, listed in the order the data gave them
    found = re.fullmatch("".join(pattern), message, flags=re.DOTALL) if named else None
    return found.group("text") if found else None


# ---- what is asked ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnswerSettings:
    """What a run's answer passes share: its few-shot examples, and what says whether the answers are labels."""

    examples: list[Chat] = field(default_factory=list)  # drawn from the training set, shown in this order
    label_names: list[str] | None = None  # the data's own label set (labelled texts), else found in the answers
    template: str | None = None  # the prompt template that made labelled texts into prompts
    label_pool: list[str] = field(default_factory=list)  # training answers, to find a label set from


@dataclass(frozen=True)
class AnswerPlan:
    """The evaluation examples as the passes ask them: prompts, references, inputs and the label set."""

    prompts: list[Chat]
    references: list[str]
    inputs: list[str]
    examples: list[Chat]
    label_names: list[str] | None

    def chats(self, *, with_examples: bool) -> list[Chat]:
        """Every prompt as the model sees it: with the few-shot examples first, or alone."""
        if not with_examples or not self.examples:
            return self.prompts
        return [prepend_examples(prompt, self.examples) for prompt in self.prompts]


def plan_answers(chat_texts: Sequence[str], settings: AnswerSettings) -> AnswerPlan:
    """The plan of a run's answer passes over its evaluation chats (JSON strings)."""
    prompts, references, inputs = [], [], []
    for text in chat_texts:
        prompt, reference = split_reference(json.loads(text))
        prompts.append(prompt)
        references.append(reference)
        asked = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        inputs.append((template_text(asked, settings.template) if settings.template else None) or asked)
    labels = settings.label_names or small_label_set(list(settings.label_pool) + references)
    if labels and any(map_to_label(r, labels) is None for r in references):
        labels = None  # a reference outside the set: the answers are free text, not labels
    return AnswerPlan(prompts, references, inputs, list(settings.examples), list(labels) if labels else None)


# ---- answering ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AnswerResult:
    """One pass's answers in example order, the model's probability of each, and what the pass cost."""

    answers: list[str]
    probabilities: list[float]
    seconds: float
    shots: int  # few-shot examples each prompt carried


def answer_token_budget(tokenizer: Any, references: Sequence[str]) -> int:
    """How many tokens an answer may grow: the longest reference's length plus ANSWER_MARGIN_TOKENS, at most
    MAX_ANSWER_TOKENS."""
    longest = max((len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=0)
    return max(1, min(MAX_ANSWER_TOKENS, longest + ANSWER_MARGIN_TOKENS))


def answer_pass(model: Any, tokenizer: Any, plan: AnswerPlan, *, with_examples: bool,
                should_stop: Callable[[], bool] | None = None, on_batch: Callable[[int, int], None] | None = None,
                batch_size: int = ANSWER_BATCH_SIZE) -> AnswerResult | None:
    """Greedy answers to every prompt of the plan; None when should_stop() turned true between two batches."""
    from core.models import position_limit

    chats = plan.chats(with_examples=with_examples)
    new_tokens = answer_token_budget(tokenizer, plan.references)
    limit = position_limit(getattr(model, "config", None), tokenizer) or 1024
    answers: list[str] = [""] * len(chats)
    probabilities = [float("nan")] * len(chats)
    started, done = time.monotonic(), 0
    batches = answer_batches(model, tokenizer, chats, max_new_tokens=new_tokens, batch_size=batch_size,
                             max_length=max(1, limit - new_tokens))
    try:
        for batch in batches:
            for position, reply, probability in zip(batch.positions, batch.replies, batch.probabilities, strict=True):
                answers[position], probabilities[position] = reply, probability
            done += len(batch.positions)
            if on_batch is not None:
                on_batch(done, len(chats))
            if should_stop is not None and should_stop() and done < len(chats):
                return None
    finally:
        batches.close()  # the model back in the mode it was in, also when stopped early
    shots = len(plan.examples) if with_examples else 0
    return AnswerResult(answers, probabilities, time.monotonic() - started, shots)


# ---- what the answers say ------------------------------------------------------------------------

def answer_frame(texts: Sequence[str], plan: AnswerPlan, result: AnswerResult,
                 losses: Sequence[float] | None = None) -> pd.DataFrame:
    """A stage frame of the answers (see the module docstring); `losses`: each example's answer-token loss."""
    exact = [exact_match(a, r) for a, r in zip(result.answers, plan.references, strict=True)]
    if plan.label_names:
        gold = [map_to_label(r, plan.label_names) or r for r in plan.references]
        predicted: list[str | None] = [map_to_label(a, plan.label_names) for a in result.answers]
        correct = [p is not None and p == g for p, g in zip(predicted, gold, strict=True)]
    else:
        gold, predicted, correct = list(plan.references), list(result.answers), exact
    frame = pd.DataFrame({
        "row": np.arange(len(texts)),
        "text": list(texts),
        "input": plan.inputs,
        "reference": plan.references,
        "answer": result.answers,
        "exact_match": exact,
        "gold": gold,
        "predicted": predicted,
        "correct": correct,
        "confidence": np.asarray(result.probabilities, dtype=np.float32),
    })
    if losses is not None:
        frame["loss"] = np.asarray(losses, dtype=np.float32)
    return frame


@dataclass(frozen=True)
class AnswerScores:
    """A pass's scores as metrics (the names classification runs use where they mean the same), and its size."""

    metrics: dict[str, float]  # eval_exact_match; with a label set also eval_accuracy and eval_f1
    rows: int
    seconds: float
    shots: int
    without_label: int | None = None  # answers that named no label (None: the answers are not labels)


def answer_scores(plan: AnswerPlan, result: AnswerResult) -> AnswerScores:
    """Exact match of the answers and, with a label set, the accuracy and macro F1 of the labels they name."""
    scored = score_answers(result.answers, plan.references, plan.label_names)
    metrics = {"eval_exact_match": float(scored["exact_match"])}
    if plan.label_names:
        metrics.update(eval_accuracy=float(scored["accuracy"]), eval_f1=float(scored["f1"]))
    return AnswerScores(metrics, int(scored["rows"]), round(result.seconds, 2), result.shots,
                        int(scored["unmapped"]) if plan.label_names else None)


def describe_scores(scores: AnswerScores) -> str:
    """'exact match 0.42 (accuracy 0.45, F1 0.40; 3 answers named no label)': the scores as the run log says them."""
    from core.present import text

    m = scores.metrics
    line = text.ANSWERS_EXACT_MATCH.format(value=m["eval_exact_match"])
    if "eval_accuracy" in m:
        line += text.ANSWERS_LABEL_SCORES.format(accuracy=m["eval_accuracy"], f1=m["eval_f1"],
                                                 without=scores.without_label or 0)
    return line


def shots_words(shots: int) -> str:
    """'zero-shot' or '3-shot'."""
    from core.present import text

    return text.FEW_SHOT_WORDS.format(k=shots) if shots else text.ZERO_SHOT_WORDS
