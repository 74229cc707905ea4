"""Before Start: how long a run will take and how much disk it will use, from the data it will read.

No torch: Setup calls these on every rerun. The duration comes from the rows and text lengths of
the chosen data (not an assumed size) times a speed: the speed a past run of the same model, task
and strategy measured on this machine when there is one, else a FLOP count over this device's
calibrated throughput. `engine.train` records the speed every completed run measured
(`status.json` "speed"), so the second estimate of a kind is a measured one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core import devices
from core.config import LEARNING_RATE_AUTO, MAX_EVAL_ROWS, PROMPT_STRATEGY, RunConfig
from core.data.preflight import DataFacts, approx_tokens, split_sizes
from core.run.history import RunSummary
from core.training.lr_finder import planned_steps
from core.training.run_length import length_for
from core.training.trainer import padded_tokens_per_row

# Calibrated by bench/bench_estimates.py (2-core CPU, bundled MiniLM, batch 32): by this module's
# count (all parameters, embeddings included, over padded tokens) the engine sustains ~1.2e11
# FLOP/s, ~6e10 per physical core; 3e10 had the first estimate of every kind ~2x too long.
CPU_FLOPS_PER_CORE = 6e10
DEVICE_FLOPS = {"mps": 2e12, "cuda": 4e13}
# Causal LM scores the whole vocabulary at every position (MLM only at the masked 15%), which
# the 6·N count of the shared weights does not see: measured ~1.6x the MLM step time.
TASK_COST = {"mlm": 1.0, "classification": 0.8, "causal": 1.6, "sft": 1.6}
# Starting the training process, loading a small model and tokenising, seen on every run; larger
# models add load time in proportion to their size.
FIXED_OVERHEAD_S = 8.0
LOAD_S_PER_PARAM = 4.0 / 1e8
# Starting the training process and importing torch and transformers, before the run's own clock
# starts (a measured overhead_s begins at the engine's start).
PROCESS_START_S = 6.0
# An evaluation runs forward passes only: about a third of a training step's work per row.
EVAL_COST_SHARE = 1 / 3
BYTES_PER_PARAM = 4            # fp32 weights
OPTIMIZER_BYTES_PER_PARAM = 8  # AdamW's two moments per trained weight


@dataclass(frozen=True)
class DataShape:
    """What the run will read: training and evaluation rows and the tokens a padded batch costs per row."""

    train_rows: int
    eval_rows: int
    padded_tokens_per_row: float
    classes: int = 0  # classification: the labels' count, which the default length rule needs (0: unknown)


@dataclass(frozen=True)
class MeasuredSpeed:
    """The speed a completed run measured: padded tokens per second, and the time outside training."""

    run_id: str
    tokens_per_s: float
    overhead_s: float


@dataclass(frozen=True)
class Estimate:
    """A duration, and in words what it rests on."""

    seconds: float
    basis: str  # "measured": a past run of this kind on this machine; "computed": FLOPs over throughput
    measured_run: str | None = None


def token_lengths(word_counts: Iterable[int], max_length: int | None) -> list[int]:
    """Approximate token counts of texts from their word counts (x TOKENS_PER_WORD, plus specials).

    max_length None (follow the data) cuts at the length fitted to these counts, as the run will.
    """
    lengths = [approx_tokens(words) for words in word_counts]
    if max_length is None:
        if not lengths:
            return lengths
        from core.config import AUTO_MAX_LENGTH_CAP
        from core.data.lengths import fitted_length

        max_length = fitted_length(np.asarray(lengths), AUTO_MAX_LENGTH_CAP)
    return [min(max_length, n) for n in lengths]


def data_shape(cfg: RunConfig, facts: DataFacts) -> DataShape:
    """The shape of the run's data from the facts Setup gathered (core.data.preflight): split rows, lengths."""
    train_rows, eval_rows = split_sizes(facts.usable, cfg)
    if eval_rows is None:  # a separate eval file, not read before Start: assume the validation share's size
        eval_rows = max(1, round(facts.usable * cfg.data.validation_fraction))
    eval_rows = min(eval_rows, MAX_EVAL_ROWS)
    if cfg.data.max_rows:
        train_rows = min(train_rows, cfg.data.max_rows)
    lengths = token_lengths(facts.word_counts, cfg.model.max_length)
    classes = facts.labels.classes if facts.labels is not None else 0
    return DataShape(train_rows, eval_rows, padded_tokens_per_row(lengths, cfg.training.batch_size, rows=train_rows),
                     classes)


def expected_steps(cfg: RunConfig, train_rows: int, classes: int = 0) -> int:
    """Optimizer steps the run will take over train_rows (at most: an automatic run may stop early)."""
    return length_for(cfg, train_rows, classes=classes).steps


def measured_speed(cfg: RunConfig, runs: Iterable[RunSummary]) -> MeasuredSpeed | None:
    """The newest speed a completed run of the same model, task, strategy and device measured."""
    device = devices.pick_device(cfg.training.device)
    found = [
        run for run in runs
        if run.status == "completed" and run.speed and (run.speed.get("tokens_per_s") or 0) > 0
        and (run.model, run.task, run.strategy) == (cfg.model.source, cfg.task, cfg.strategy.name)
        and run.device == device
    ]
    if not found:
        return None
    newest = max(found, key=lambda run: run.finished_at or "")
    return MeasuredSpeed(newest.run_id, float(newest.speed["tokens_per_s"]), float(newest.speed.get("overhead_s") or 0.0))


def computed_tokens_per_s(cfg: RunConfig, trainable: int, total: int) -> float:
    """Training tokens per second from the FLOP count and this device's calibrated throughput."""
    # Forward is 2·N FLOPs per token; backward adds 4·N for trained weights, ~2·N for activations only.
    trainable_share = (trainable or total) / max(total, 1)
    flops_per_token = total * (4 + 2 * trainable_share) * TASK_COST.get(cfg.task, 1.0)
    device = devices.pick_device(cfg.training.device)
    throughput = DEVICE_FLOPS.get(device, CPU_FLOPS_PER_CORE * devices.physical_cores())
    return throughput / max(flops_per_token, 1.0)


def estimate_run(cfg: RunConfig, shape: DataShape, trainable: int, total: int,
                 speed: MeasuredSpeed | None = None) -> Estimate:
    """How long the run will take: its padded tokens (training and evaluations) over a speed, plus start-up."""
    prompting = cfg.strategy.name == PROMPT_STRATEGY  # no training: only its answers
    length = length_for(cfg, shape.train_rows, classes=shape.classes)
    steps = 0 if prompting else length.steps
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    train_tokens = steps * samples_per_step * shape.padded_tokens_per_row
    evals = 0
    if shape.eval_rows:
        evals = length.evaluations
    eval_tokens = (evals * shape.eval_rows * shape.padded_tokens_per_row + answer_tokens(cfg, shape)) * EVAL_COST_SHARE
    # learning_rate 'auto': the range test trains its own steps first, after preparing the data
    # and loading the model once more.
    finder = cfg.training.learning_rate == LEARNING_RATE_AUTO and not prompting
    if finder:
        train_tokens += planned_steps(cfg, shape.train_rows) * samples_per_step * shape.padded_tokens_per_row
    starts = 2 if finder else 1
    if speed is not None:
        seconds = (train_tokens + eval_tokens) / speed.tokens_per_s + starts * speed.overhead_s + PROCESS_START_S
        return Estimate(seconds, "measured", speed.run_id)
    tokens_per_s = computed_tokens_per_s(cfg, trainable, total)
    seconds = (train_tokens + eval_tokens) / tokens_per_s + starts * (FIXED_OVERHEAD_S + total * LOAD_S_PER_PARAM)
    return Estimate(seconds, "computed")


def answer_tokens(cfg: RunConfig, shape: DataShape) -> float:
    """Tokens instruction tuning's answer passes read or write (core.insight.answer_pass), 0 for other tasks.

    A prompt run answers once, with its few-shot examples in every prompt; a trained run twice, the base
    model with the examples and the fine-tuned one without. Each generated token is counted as one more
    prompt token, and every answer as MAX_ANSWER_TOKENS long, the most a pass lets it grow.
    """
    from core.insight.answer_pass import MAX_ANSWER_TOKENS
    from core.insight.predictions import LM_EXAMPLE_ROWS

    if cfg.task != "sft":
        return 0.0
    rows = min(shape.eval_rows, LM_EXAMPLE_ROWS)
    with_examples = shape.padded_tokens_per_row * (1 + cfg.strategy.few_shot) + MAX_ANSWER_TOKENS
    if cfg.strategy.name == PROMPT_STRATEGY:
        return rows * with_examples
    return rows * (with_examples + shape.padded_tokens_per_row + MAX_ANSWER_TOKENS)


def disk_bytes(cfg: RunConfig, trainable: int, total: int) -> tuple[int, int]:
    """(peak while training, kept after completion) bytes of the run folder's models and checkpoints."""
    if cfg.strategy.name == PROMPT_STRATEGY:
        return 0, 0  # nothing trains, so nothing is saved: the model is the base model
    adapter = cfg.strategy.name == "lora"
    saved_weights = (trainable if adapter else total) * BYTES_PER_PARAM
    checkpoint = saved_weights + trainable * OPTIMIZER_BYTES_PER_PARAM
    kept_checkpoints = cfg.training.save_total_limit + (1 if cfg.training.keep_model == "best" else 0)
    peak = kept_checkpoints * checkpoint + saved_weights
    kept = saved_weights + (kept_checkpoints * checkpoint if cfg.training.keep_checkpoints else 0)
    return peak, kept
