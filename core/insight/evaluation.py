"""A run's base model and its fine-tuned model on the same evaluation file, example by example (`python -m core evaluate`).

evaluate_run reads the file the way the run reads its data, lets both models answer, label or score every example,
writes one JSON line per example and returns the scores; summary_lines writes them as the CLI prints them.

What is compared, by task:
    sft             an example's prompt is its chat up to the last assistant turn, and that turn is the reference.
                    Both models answer greedily (core.insight.answers); the score is exact match after
                    normalisation and, when the references come from a small set of labels (the run's own, else the
                    references' own), the accuracy and macro-F1 of the label each answer names.
    classification  each model's predicted label against the gold label.
    mlm, causal     each example's mean token loss (the pass the engine stores before and after training, masked-LM
                    masks drawn with the run's seed), lower being better.

A human column holds a second annotator's labels (sft: answers): the agreement, accuracy and Cohen's kappa, of each
model with it, and of it with the gold labels, the ceiling a model can be expected to reach. Rows without a human
value are left out of the agreement only.

Every output line has `row`, the example's 1-based row in the file (JSONL: its line, blank lines not counted), and:
    sft             prompt (the chat's messages before the reference), reference, base, tuned; with a label set also
                    reference_label, base_label, tuned_label (null: the answer names none of the labels)
    classification  text, reference, base, tuned (label names), base_confidence, tuned_confidence
    mlm, causal     text, base_loss, tuned_loss, change (negative: the fine-tuned model predicts it better)
plus `human` with a human column: its value, as one of the label names where it names one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.data.columns import check_columns
from core.data.instructions import (
    Chat,
    classification_labels,
    conversations_from_frame,
    conversations_from_labels,
    detect_format,
    instruction_columns,
    map_to_label,
    normalise_answer,
)
from core.data.tables import read_table
from core.errors import ConfigError, DataError, ModelError, RunError
from core.files import atomic_write_text, clean_number
from core.insight.analysis import agreement, human_label, normalise_label
from core.insight.answers import (
    ANSWER_BATCH_SIZE,
    reply_to_chats,
    score_answers,
    small_label_set,
)
from core.insight.generate import MAX_NEW_TOKENS_LIMIT
from core.insight.predictions import NO_LABEL  # an answer naming no label, as the agreement counts it
from core.insight.probes import base_model_for, tuned_model_for
from core.models.export import run_label_names, tuned_model_path
from core.models.tasks import TASK_NAMES
from core.run.folder import RunFolder, default_runs_root

MAX_BATCH_SIZE = 256
RESULTS_FOLDER = "evaluations"  # inside the run folder: where the lines go when no output file is named
BASE, TUNED, GOLD = "base", "tuned", "gold"
SHOWN = {BASE: "base", TUNED: "fine-tuned"}  # the models as the user reads them
LOSS_TASKS = ("mlm", "causal")
# The input length where neither the run nor the model says one: long enough for a chat turn, short enough that
# a batch of them fits a laptop's memory.
UNKNOWN_LENGTH = 1024

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EvaluationSettings:
    """How to evaluate: the file's human column (None: there is none), and for sft how many prompts are answered
    at once and how long an answer may grow (None: as long as the run's own answer passes let it, see
    answer_token_budget)."""

    human_column: str | None = None
    batch_size: int = ANSWER_BATCH_SIZE
    max_new_tokens: int | None = None

    def validate(self) -> EvaluationSettings:
        """Return self, or raise ConfigError naming the setting that is out of range."""
        for value, name, most in ((self.batch_size, "batch size", MAX_BATCH_SIZE),
                                  (self.max_new_tokens, "maximum of new tokens", MAX_NEW_TOKENS_LIMIT)):
            if value is None and name != "batch size":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ConfigError(f"The {name} must be a whole number from 1 to {most} (got {value!r}).",
                                  field=name.replace(" ", "_"))
        return self


@dataclass(frozen=True)
class Evaluation:
    """What evaluate_run found: the lines it wrote, and the scores of both models."""

    run_id: str
    task: str
    eval_file: Path
    output: Path
    lines: list[dict[str, Any]]
    scores: dict[str, dict[str, float]]  # "base" / "tuned" -> metric -> value
    label_names: list[str] | None  # the labels answers were mapped to (sft with a label set, classification)
    left_out: dict[str, int] = field(default_factory=dict)  # rows of the file not evaluated, by reason
    human_column: str | None = None
    human_rows: int = 0  # rows with a human value: the agreement's rows
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)  # "base" / "tuned" / "gold" -> accuracy, kappa


@dataclass
class _Examples:
    """The file's rows as one task evaluates them, in file order."""

    rows: list[int]  # 1-based rows in the file
    inputs: list[Any]  # sft: the prompt chats; otherwise the texts
    references: list[str] | None  # sft: the reference answers; classification: the gold label names
    human: list[str | None] | None  # the human column's values (None where empty)
    label_names: list[str] | None
    left_out: dict[str, int]


def evaluate_run(run_path: str | Path, eval_file: str | Path, *, output: str | Path | None = None,
                 settings: EvaluationSettings | None = None, on_progress: Progress | None = None) -> Evaluation:
    """Score the run's base and fine-tuned models on `eval_file`; write one JSON line per example to `output`
    (default: <run>/evaluations/<file name>.jsonl). Bad input raises a TuneboardError before any model loads."""
    settings = (settings or EvaluationSettings()).validate()
    say = on_progress or (lambda message: None)
    folder, cfg, tuned_source = open_run(run_path)
    eval_path = Path(eval_file).expanduser()
    target = writable_output(Path(output).expanduser() if output else
                             folder.path / RESULTS_FOLDER / f"{eval_path.stem}.jsonl")
    frame = read_table(eval_path)
    examples = _read_examples(frame, cfg, folder, settings.human_column, eval_path.name)
    if not examples.rows:
        reasons = ", ".join(f"{n} {reason}" for reason, n in examples.left_out.items())
        raise DataError(f"{eval_path.name} has no rows to evaluate (left out: {reasons}): fix the rows or choose "
                        "another file.", field="eval_file")
    say(f"Loading the base and the fine-tuned model of run {folder.run_id}…")
    label_names = examples.label_names if cfg.task == "classification" else None
    base, tuned = load_run_models(folder, cfg, tuned_source, label_names)
    if cfg.task == "sft":
        lines, scores, compared = _answer_all(examples, cfg, base, tuned, settings, say)
    elif cfg.task == "classification":
        lines, scores, compared = _label_all(examples, cfg, base, tuned, say)
    else:
        lines, scores, compared = _score_losses(examples, cfg, base, tuned, say)
    human_rows, agreement = 0, {}
    if examples.human is not None:
        for line, value in zip(lines, examples.human, strict=True):
            line["human"] = value
        human_rows, agreement = _agreement(examples.human, *compared)
    atomic_write_text(target, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return Evaluation(folder.run_id, cfg.task, eval_path, target, lines, scores, examples.label_names,
                      examples.left_out, settings.human_column, human_rows, agreement)


# ---- the run and the output ----------------------------------------------------------------------

def open_run(run_path: str | Path) -> tuple[RunFolder, RunConfig, Path]:
    """(folder, config, its saved model's folder) of a run that has a model to evaluate; RunError otherwise.

    A bare run id that is not a folder here is looked up in the runs folder.
    """
    path = Path(run_path).expanduser()
    if not path.exists() and len(path.parts) == 1:
        path = default_runs_root() / path
    if not (path / "config.yaml").is_file():
        raise RunError(f"{run_path} is not a run folder (it has no config.yaml): pass a folder under runs/, "
                       "e.g. runs/<id>.")
    folder = RunFolder(path)
    cfg = folder.config()
    source = tuned_model_path(folder)
    if source is None:
        raise RunError(f"Run {folder.run_id} has no saved model yet: let it finish, or stop it to save a checkpoint, "
                       "then evaluate again.")
    return folder, cfg, source


def load_run_models(folder: RunFolder, cfg: RunConfig, tuned_source: Path,
                    label_names: Sequence[str] | None = None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """((base model, tokenizer), (fine-tuned model, tokenizer)) of a run, from the caches the Compare page uses."""
    names = list(label_names) if label_names else None
    return base_model_for(cfg, label_names=names), tuned_model_for(cfg, tuned_source, label_names=names)


def writable_output(path: Path) -> Path:
    """`path`, once a file is known to be writable there (its folder is created); ConfigError otherwise."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder: give the output a file name, e.g. {path / 'evaluation.jsonl'}.",
                          field="output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"Cannot write the results to {path}: {err.strerror or err}. Choose another output file.",
                          field="output") from None
    return path


# ---- reading the file as the run reads its data -------------------------------------------------

def _read_examples(frame: pd.DataFrame, cfg: RunConfig, folder: RunFolder, human: str | None, name: str) -> _Examples:
    if human is not None:
        if cfg.task in LOSS_TASKS:
            raise ConfigError(f"A {cfg.task} run is scored by each example's loss, which leaves nothing for a human "
                              "column to agree with: leave the human column out.", field="human_column")
        if human not in frame.columns:
            columns = ", ".join(f"'{c}'" for c in frame.columns)
            raise DataError(f"{name} has no column '{human}' for the human labels; its columns are {columns}.",
                            field="human_column")
    if cfg.task == "sft":
        return _sft_examples(frame, cfg, folder, human, name)
    d = cfg.data
    check_columns(frame, d, cfg.task, what=f"The evaluation file {name}")
    roles = {d.text_column: "text"}
    if cfg.task == "classification":
        roles[d.label_column] = "gold label"
    _refuse_as_human(human, roles)
    no_text = frame[d.text_column].map(_blank).to_numpy(dtype=bool)
    left_out = {"without text": int(no_text.sum())}
    names = references = None
    keep = ~no_text
    if cfg.task == "classification":
        names = list(run_label_names(folder) or [])
        if not names:
            raise RunError(f"Run {folder.run_id} recorded no label names (status.json), so its predictions cannot "
                           "be named: evaluate a run that trained.")
        gold = [None if _blank(v) else normalise_label(v, names) for v in frame[d.label_column]]
        no_label = keep & np.array([g is None for g in gold], dtype=bool)
        unknown = keep & ~no_label & np.array([g not in names for g in gold], dtype=bool)
        left_out |= {"without a label": int(no_label.sum()), "with a label the run does not know": int(unknown.sum())}
        keep &= ~(no_label | unknown)
        references = [str(g) for g, kept in zip(gold, keep, strict=True) if kept]
    kept = frame[keep]
    return _Examples(rows=[i + 1 for i in np.flatnonzero(keep).tolist()],
                     inputs=[str(t) for t in kept[d.text_column]], references=references,
                     human=_human_values(kept, human, names), label_names=names,
                     left_out={k: v for k, v in left_out.items() if v})


def _sft_examples(frame: pd.DataFrame, cfg: RunConfig, folder: RunFolder, human: str | None, name: str) -> _Examples:
    """Chats split at their last assistant turn; labelled texts become chats through the run's prompt template."""
    d = cfg.data
    run_labels = _run_answer_labels(folder)
    if _labelled_texts(frame, cfg):
        _refuse_as_human(human, {d.text_column: "text", d.label_column: "gold label"})
        # Rows without a text or a label are dropped here (run_conversations would drop them too) so that the
        # human column stays aligned with the chats.
        no_text = frame[d.text_column].map(_blank).to_numpy(dtype=bool)
        no_label = ~no_text & frame[d.label_column].map(_blank).to_numpy(dtype=bool)
        keep = ~(no_text | no_label)
        left_out = {"without text": int(no_text.sum()), "without a label": int(no_label.sum())}
        kept = frame[keep]
        kept.attrs = dict(frame.attrs)  # the read report names the file and its rows in errors
        # The run's own labels, in its order, so that the prompt lists what the model was trained with.
        chats = conversations_from_labels(kept, text_column=d.text_column, label_column=d.label_column,
                                          label_names=run_labels, template=d.prompt_template,
                                          source=name) if keep.any() else []
        names = run_labels or classification_labels(kept, d.label_column)
    else:
        prompt, response = d.prompt_column or None, d.response_column or None
        used = instruction_columns(frame.columns, prompt_column=prompt, response_column=response)
        _refuse_as_human(human, {column: "prompt or answer" for column in used})
        keep, left_out, kept = np.ones(len(frame), dtype=bool), {}, frame
        chats = conversations_from_frame(frame, prompt_column=prompt, response_column=response, source=name)
        names = None
    prompts, references = zip(*(_split_at_last_answer(chat) for chat in chats), strict=True) if chats else ((), ())
    if names is None:
        fits = run_labels and all(map_to_label(r, run_labels) is not None for r in references)
        names = run_labels if fits else small_label_set(references)
    return _Examples(rows=[i + 1 for i in np.flatnonzero(keep).tolist()], inputs=list(prompts),
                     references=list(references), human=_human_values(kept, human, names), label_names=names,
                     left_out={k: v for k, v in left_out.items() if v})


def _labelled_texts(frame: pd.DataFrame, cfg: RunConfig) -> bool:
    """Whether the file is labelled texts (asked through the prompt template) rather than instruction data, decided
    as run_conversations decides from the file's columns alone: whatever the run trained on, chats are read as chats."""
    d = cfg.data
    if d.prompt_column or d.response_column:
        return False
    try:
        detect_format(frame.columns)
    except DataError:
        return d.text_column in frame.columns and d.label_column in frame.columns
    return False


def _split_at_last_answer(chat: Chat) -> tuple[Chat, str]:
    """(the chat before its last assistant turn, that turn's text)."""
    last = max(i for i, message in enumerate(chat) if message["role"] == "assistant")
    return chat[:last], chat[last]["content"]


def _run_answer_labels(folder: RunFolder) -> list[str] | None:
    """The labels an sft run on labelled texts answered with (its data report's), else None."""
    status = folder.status()
    report = status.get("data_report") or {}
    names = status.get("label_names") or report.get("answer_labels")
    if not isinstance(names, list) or not names:
        return None
    # The report keeps them sorted as text; a data file's prompts listed them as classification_labels orders them
    # (numbers by value). A synthetic source's own order is not recorded, so its prompts may list them otherwise.
    return classification_labels(pd.DataFrame({"label": [str(n) for n in names]}), "label")


def _refuse_as_human(human: str | None, roles: dict[str, str]) -> None:
    if human is not None and human in roles:
        raise DataError(f"The human column '{human}' is the file's {roles[human]} column: name the column with the "
                        "second annotator's labels.", field="human_column")


def _human_values(kept: pd.DataFrame, human: str | None, names: Sequence[str] | None) -> list[str | None] | None:
    """The human column's value per kept row: a label name where it names one (by name, id or in a sentence),
    None where it is empty."""
    if human is None:
        return None
    return [None if _blank(v) else human_label(v, names or []) for v in kept[human]]


def _blank(value: Any) -> bool:
    """An empty cell: None, NaN or only spaces."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or not str(value).strip()


# ---- the passes ------------------------------------------------------------------------------------

Compared = tuple[list[Any], list[Any], list[Any]]  # per example: base's, tuned's and the gold value, as agreement compares them


def _answer_all(examples: _Examples, cfg: RunConfig, base: tuple[Any, Any], tuned: tuple[Any, Any],
                settings: EvaluationSettings, say: Progress) -> tuple[list[dict[str, Any]], dict, Compared]:
    """Greedy answers of both models to every prompt, scored against the references."""
    references, names = examples.references or [], examples.label_names
    answers, scores = {}, {}
    for which, (model, tokenizer) in ((BASE, base), (TUNED, tuned)):
        answers[which] = _answers(model, tokenizer, examples.inputs, cfg, settings, which, say, references)
        scored = score_answers(answers[which], references, names)
        scores[which] = {k: scored[k] for k in ("exact_match", "accuracy", "f1", "unmapped") if k in scored}
    lines = [{"row": row, "prompt": prompt, "reference": reference, BASE: b, TUNED: t}
             for row, prompt, reference, b, t in zip(examples.rows, examples.inputs, references, answers[BASE],
                                                     answers[TUNED], strict=True)]
    if names:
        columns = {f"{which}_label": [map_to_label(a, names) for a in answers[which]] for which in (BASE, TUNED)}
        columns["reference_label"] = [map_to_label(r, names) for r in references]
        for i, line in enumerate(lines):
            line.update({key: values[i] for key, values in columns.items()})
        compared = (columns["base_label"], columns["tuned_label"], columns["reference_label"])
    else:
        compared = tuple([normalise_answer(a) for a in values] for values in (answers[BASE], answers[TUNED], references))
    return lines, scores, compared


def _answers(model: Any, tokenizer: Any, prompts: list[Any], cfg: RunConfig, settings: EvaluationSettings,
             which: str, say: Progress, references: Sequence[str]) -> list[str]:
    from core.insight.answer_pass import answer_token_budget
    from core.models import position_limit

    new_tokens = settings.max_new_tokens or answer_token_budget(tokenizer, references)
    limit = position_limit(getattr(model, "config", None), tokenizer)
    room = min(input_length(cfg, model, tokenizer), (limit or UNKNOWN_LENGTH) - new_tokens)
    if room < 1:
        raise ConfigError(f"The model sees at most {limit} tokens, so {new_tokens} new tokens leave no "
                          "room for the prompt: ask for fewer new tokens.", field="max_new_tokens")
    say(f"Answering {len(prompts)} prompts with the {SHOWN[which]} model (at most {new_tokens} tokens each)…")

    def progress(done: int, total: int) -> None:
        if total > settings.batch_size:
            say(f"  {done}/{total}")

    return reply_to_chats(model, tokenizer, prompts, max_new_tokens=new_tokens,
                          batch_size=settings.batch_size, max_length=room, on_batch=progress)


def _label_all(examples: _Examples, cfg: RunConfig, base: tuple[Any, Any], tuned: tuple[Any, Any],
               say: Progress) -> tuple[list[dict[str, Any]], dict, Compared]:
    """Each model's predicted label (and its probability) for every text, scored against the gold labels."""
    from core.insight.example_pass import classification_pass

    names, references = examples.label_names or [], examples.references or []
    predicted, confidence, scores = {}, {}, {}
    for which, (model, tokenizer) in ((BASE, base), (TUNED, tuned)):
        say(f"Labelling {len(examples.inputs)} texts with the {SHOWN[which]} model…")
        probabilities = classification_pass(model, _tokenised(examples.inputs, model, tokenizer, cfg), tokenizer)
        if probabilities.shape[1] != len(names):
            raise ModelError(f"The {SHOWN[which]} model predicts {probabilities.shape[1]} classes, but the run has "
                             f"{len(names)} labels ({', '.join(names)}): its saved model does not match its record.")
        predicted[which] = [names[i] for i in probabilities.argmax(axis=1)]
        confidence[which] = probabilities.max(axis=1)
        scored = score_answers(predicted[which], references, names)
        scores[which] = {"accuracy": scored["accuracy"], "f1": scored["f1"]}
    lines = [{"row": row, "text": text, "reference": gold, BASE: predicted[BASE][i], TUNED: predicted[TUNED][i],
              "base_confidence": float(confidence[BASE][i]), "tuned_confidence": float(confidence[TUNED][i])}
             for i, (row, text, gold) in enumerate(zip(examples.rows, examples.inputs, references, strict=True))]
    return lines, scores, (predicted[BASE], predicted[TUNED], references)


def _score_losses(examples: _Examples, cfg: RunConfig, base: tuple[Any, Any], tuned: tuple[Any, Any],
                  say: Progress) -> tuple[list[dict[str, Any]], dict, Compared]:
    """Each example's mean token loss under both models."""
    from core.insight.example_pass import example_loss_pass

    losses, scores = {}, {}
    for which, (model, tokenizer) in ((BASE, base), (TUNED, tuned)):
        say(f"Scoring {len(examples.inputs)} texts with the {SHOWN[which]} model…")
        losses[which] = example_loss_pass(model, _tokenised(examples.inputs, model, tokenizer, cfg), tokenizer,
                                          cfg.task, cfg.training.seed)
        # An example too short to predict a token has no loss (NaN); it counts in neither mean.
        mean = float(np.nanmean(losses[which])) if np.isfinite(losses[which]).any() else float("nan")
        scores[which] = {"mean_loss": mean, "perplexity": math.exp(min(mean, 50.0)) if math.isfinite(mean) else mean}
    change = losses[TUNED] - losses[BASE]
    scores[TUNED]["improved"] = int((change < 0).sum())
    lines = [{"row": row, "text": text, "base_loss": clean_number(float(losses[BASE][i])),
              "tuned_loss": clean_number(float(losses[TUNED][i])), "change": clean_number(float(change[i]))}
             for i, (row, text) in enumerate(zip(examples.rows, examples.inputs, strict=True))]
    return lines, scores, ([], [], [])


def _tokenised(texts: list[str], model: Any, tokenizer: Any, cfg: RunConfig) -> Any:
    """The texts as a tokenised Dataset, cut to what the run trained on and the model can embed."""
    import datasets

    from core.data.prepare import BatchEncoder

    encoder = BatchEncoder(tokenizer, cfg.task, input_length(cfg, model, tokenizer))
    return datasets.Dataset.from_dict(encoder({"text": texts}))


def input_length(cfg: RunConfig, model: Any, tokenizer: Any) -> int:
    """The most tokens an example keeps: what the run trained on (model.max_length), within what the model embeds."""
    from core.models import position_limit

    trained = cfg.model.max_length if isinstance(cfg.model.max_length, int) else None  # None: 'auto', set by the data
    limits = [n for n in (trained, position_limit(getattr(model, "config", None), tokenizer)) if n]
    return min(limits) if trained else min(limits + [UNKNOWN_LENGTH])


def _agreement(human: list[str | None], base: list[Any], tuned: list[Any],
               gold: list[Any]) -> tuple[int, dict[str, dict[str, float]]]:
    """(rows with a human value, accuracy and Cohen's kappa of base vs human, tuned vs human, human vs gold)."""
    rated = [i for i, value in enumerate(human) if value is not None]
    if not rated:
        return 0, {}

    def shown(values: list[Any]) -> list[str]:
        return [NO_LABEL if values[i] is None else str(values[i]) for i in rated]

    humans = shown(human)
    result = {}
    for which, values in ((BASE, base), (TUNED, tuned), (GOLD, gold)):
        theirs = shown(values)
        result[which] = agreement(humans, theirs)
    return len(rated), result


# ---- what the CLI prints ----------------------------------------------------------------------------

# metric -> (its name in the summary, how its value is written)
_METRICS: dict[str, tuple[str, Callable[[float], str]]] = {
    "exact_match": ("exact match", lambda v: f"{v:.1%}"),
    "accuracy": ("accuracy", lambda v: f"{v:.1%}"),
    "f1": ("macro-F1", lambda v: f"{v:.3f}"),
    "unmapped": ("answers naming no label", lambda v: f"{int(v)}"),
    "mean_loss": ("mean loss", lambda v: f"{v:.4f}"),
    "perplexity": ("perplexity", lambda v: f"{v:.2f}"),
}


def summary_lines(result: Evaluation) -> list[str]:
    """The scores as lines: what was evaluated, both models side by side, the human agreement, where the lines went."""
    n = len(result.lines)
    left = sum(result.left_out.values())
    lines = [f"Run {result.run_id}, {TASK_NAMES.get(result.task, result.task)}, on {result.eval_file.name}: "
             f"{n} example{'s' * (n != 1)}"
             + (f"; {left} row{'s' * (left != 1)} left out ("
                + ", ".join(f"{count} {reason}" for reason, count in result.left_out.items()) + ")" if left else "")
             + "."]
    if result.task == "sft" and result.label_names:
        lines.append(f"Answers are mapped to the labels: {', '.join(result.label_names)}.")
    rows = [(name, write(result.scores[BASE][key]), write(result.scores[TUNED][key]))
            for key, (name, write) in _METRICS.items() if key in result.scores[BASE]]
    lines += _table(("", "base", "fine-tuned"), rows)
    if "improved" in result.scores[TUNED]:
        lines.append(f"The fine-tuned model's loss is lower on {result.scores[TUNED]['improved']} of {n} examples.")
    if result.human_column is not None:
        if not result.agreement:
            lines.append(f"The human column '{result.human_column}' has no values on the evaluated rows.")
        else:
            lines.append(f"Agreement with the human column '{result.human_column}' ({result.human_rows} of {n} "
                         "examples have a value):")
            names = {BASE: "base vs human", TUNED: "fine-tuned vs human", GOLD: "human vs gold (the ceiling)"}
            lines += _table(("", "accuracy", "Cohen's kappa"),
                            [(names[which], f"{a['accuracy']:.1%}", f"{a['kappa']:.3f}")
                             for which, a in result.agreement.items()])
    lines.append(f"One line per example: {result.output}")
    return lines


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Rows under a header, the first column left-aligned and the others right-aligned, indented by two spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
            for row in [header, *rows]]
