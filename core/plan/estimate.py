"""Before Start: how long a run will take and how much disk it will use, from the data it will read.

No torch: Setup calls these on every rerun. The duration comes from the rows and text lengths of
the chosen data (not an assumed size) times a speed: the speed a past run of the same model, task
and strategy measured on this machine when there is one, else a FLOP count over this device's
calibrated throughput. `engine.train` records the speed every completed run measured
(`status.json` "speed"), so the second estimate of a kind is a measured one.

The duration is the wait from Start (or from the CLI's plan line): the training process the dashboard
keeps ready has imported torch already, as the CLI has when it prints its plan, so importing is counted
only for a process that starts cold (`process_ready=False`). What is left is the run's own fixed work
(data, model, the base and final passes, the save) and its steps, which for a small upload is most of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core import devices
from core.config import LEARNING_RATE_AUTO, MAX_EVAL_ROWS, PROMPT_STRATEGY, RunConfig
from core.data.preflight import DataFacts, approx_tokens, split_sizes
from core.run.history import RunSummary
from core.training.batching import padded_tokens_per_row
from core.training.lr_finder import planned_steps
from core.training.run_length import RunLength, length_for, with_length

# Calibrated by bench/bench_estimates.py (2-core CPU, bundled MiniLM, batch 32): by this module's
# count (all parameters, embeddings included, over padded tokens) the engine sustains ~1.2e11
# FLOP/s, ~6e10 per physical core; 3e10 had the first estimate of every kind ~2x too long.
CPU_FLOPS_PER_CORE = 6e10
DEVICE_FLOPS = {"mps": 2e12, "cuda": 4e13}
# Causal LM scores the whole vocabulary at every position (MLM only at the masked 15%), which
# the 6·N count of the shared weights does not see: measured ~1.6x the MLM step time.
TASK_COST = {"mlm": 1.0, "classification": 0.8, "causal": 1.6, "sft": 1.6}
# The engine's fixed work on a small model and small data, outside its steps: reading and checking the
# data, loading the model, the probes, setting up the Trainer, saving; larger models add load and save time
# in proportion to their size, more rows their reading and checking (tokenising is lazy: it is in the steps).
FIXED_OVERHEAD_S = 2.0
LOAD_S_PER_PARAM = 4.0 / 1e8
DATA_S_PER_ROW = 6e-6  # a 1M-row CSV is read, checked and split in ~6 s on the 2-core CPU (bench_scale)
# A training process that starts cold imports torch and transformers first. Setup's Start hands the run to
# the process the dashboard keeps ready, and the CLI prints its estimate after its imports: neither waits
# for them (a measured overhead_s, too, begins at the engine's start).
PROCESS_START_S = 6.0
# An evaluation runs forward passes only: about a third of a training step's work per row. Each one also
# costs the same whatever its rows: the evaluation loop's set-up, its metrics, the probes scored at it, the
# per-example stage written (~0.4 s a MiniLM evaluation of 30 rows with the cores shared, of which the
# probes and the stage ~0.35 s); a short run makes about eight of them.
EVAL_COST_SHARE = 1 / 3
EVAL_FIXED_S = 0.5
BYTES_PER_PARAM = 4            # fp32 weights
OPTIMIZER_BYTES_PER_PARAM = 8  # AdamW's two moments per trained weight
# Writing a checkpoint (the weights, and the optimizer's moments of the trained ones), serialising included:
# a full MiniLM checkpoint (273 MB) took 0.8-1.0 s on the 2-core machine with its cores shared (bench_estimates
# records each run's own figure, which a measured estimate uses); 200 MB/s leaves room for a slower disk. A run
# that keeps its best model writes one at every evaluation, about eight in a run of the default length: seconds
# that a short run feels and that do not grow with its steps.
CHECKPOINT_BYTES_PER_S = 2e8


@dataclass(frozen=True)
class DataShape:
    """What the run will read: training and evaluation rows and the tokens a padded batch costs per row."""

    train_rows: int
    eval_rows: int
    padded_tokens_per_row: float
    classes: int = 0  # classification: the labels' count, which the default length rule needs (0: unknown)


@dataclass(frozen=True)
class MeasuredSpeed:
    """The speed a completed run measured: padded tokens per second, the time outside training, a checkpoint's write."""

    run_id: str
    tokens_per_s: float
    overhead_s: float
    checkpoint_s: float | None = None  # seconds one checkpoint took to write (None: the run wrote none)


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
    checkpoint_s = newest.speed.get("checkpoint_s")
    return MeasuredSpeed(newest.run_id, float(newest.speed["tokens_per_s"]), float(newest.speed.get("overhead_s") or 0.0),
                         float(checkpoint_s) if checkpoint_s is not None else None)


def computed_tokens_per_s(cfg: RunConfig, trainable: int, total: int) -> float:
    """Training tokens per second from the FLOP count and this device's calibrated throughput."""
    # Forward is 2·N FLOPs per token; backward adds 4·N for trained weights, ~2·N for activations only.
    trainable_share = (trainable or total) / max(total, 1)
    flops_per_token = total * (4 + 2 * trainable_share) * TASK_COST.get(cfg.task, 1.0)
    device = devices.pick_device(cfg.training.device)
    throughput = DEVICE_FLOPS.get(device, CPU_FLOPS_PER_CORE * devices.physical_cores())
    return throughput / max(flops_per_token, 1.0)


def estimate_run(cfg: RunConfig, shape: DataShape, trainable: int, total: int,
                 speed: MeasuredSpeed | None = None, *, process_ready: bool = True) -> Estimate:
    """How long the run will take: its padded tokens (training and evaluations) over a speed, plus its fixed work.

    process_ready: the run starts in a process whose imports are done (the dashboard's standby, the
    CLI once it prints its plan); False adds a cold process start.
    """
    prompting = cfg.strategy.name == PROMPT_STRATEGY  # no training: only its answers
    length = length_for(cfg, shape.train_rows, classes=shape.classes)
    steps = 0 if prompting else length.steps
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps
    train_tokens = steps * samples_per_step * shape.padded_tokens_per_row
    evals = length.evaluations if shape.eval_rows and not prompting else 0
    eval_tokens = (evals * shape.eval_rows * shape.padded_tokens_per_row + answer_tokens(cfg, shape)) * EVAL_COST_SHARE
    # learning_rate 'auto': the range test trains its own steps first, after preparing the data
    # and loading the model once more.
    finder = cfg.training.learning_rate == LEARNING_RATE_AUTO and not prompting
    if finder:
        train_tokens += planned_steps(cfg, shape.train_rows) * samples_per_step * shape.padded_tokens_per_row
    starts = 2 if finder else 1
    cold = 0.0 if process_ready else PROCESS_START_S
    saves = 0 if prompting else checkpoint_saves(cfg, length, has_eval=bool(shape.eval_rows))
    each_save = checkpoint_bytes(cfg, trainable, total) / CHECKPOINT_BYTES_PER_S
    if speed is not None and speed.checkpoint_s is not None:
        each_save = speed.checkpoint_s  # as a run of this kind wrote them
    per_run = evals * EVAL_FIXED_S + saves * each_save + cold  # none of it grows with the tokens
    if speed is not None:
        # The measured time outside training holds the fixed work, the per-example passes included; the
        # measured speed is the steps' own (engine._measured_speed leaves evaluations and checkpoints out).
        seconds = (train_tokens + eval_tokens) / speed.tokens_per_s + starts * speed.overhead_s + per_run
        return Estimate(seconds, "measured", speed.run_id)
    tokens_per_s = computed_tokens_per_s(cfg, trainable, total)
    fixed = FIXED_OVERHEAD_S + total * LOAD_S_PER_PARAM + (shape.train_rows + shape.eval_rows) * DATA_S_PER_ROW
    pass_tokens = example_pass_tokens(cfg, shape) * EVAL_COST_SHARE
    seconds = (train_tokens + eval_tokens + pass_tokens) / tokens_per_s + starts * fixed + per_run
    return Estimate(seconds, "computed")


def checkpoint_saves(cfg: RunConfig, length: RunLength, *, has_eval: bool) -> int:
    """Checkpoints the run writes while training, at the interval core.training.trainer gives the Trainer.

    Keeping the best model saves at every evaluation; the last step saves too unless the run keeps its
    last weights and no checkpoints (the engine then skips that save).
    """
    t = with_length(cfg, length, has_eval=has_eval).training
    keep_best = has_eval and t.keep_model == "best"
    every = max(1, t.save_steps if not keep_best or t.save_steps % t.eval_steps == 0 else t.eval_steps)
    at_end = length.steps % every != 0 and (t.keep_checkpoints or t.keep_model != "last")
    return length.steps // every + int(at_end)


def checkpoint_bytes(cfg: RunConfig, trainable: int, total: int) -> int:
    """Bytes of one checkpoint: the saved weights (a LoRA run's adapter only) and AdamW's moments of the trained ones."""
    saved_weights = (trainable if cfg.strategy.name == "lora" else total) * BYTES_PER_PARAM
    return saved_weights + trainable * OPTIMIZER_BYTES_PER_PARAM


def example_pass_tokens(cfg: RunConfig, shape: DataShape) -> float:
    """Tokens of the per-example passes outside the steps (core.insight.predictions), 0 for a prompt run.

    The base model's pass, and a language model's final one (a classifier's final stage reuses its last
    evaluation), over the evaluation rows: all of a classifier's, a sample of a language model's.
    """
    from core.insight.predictions import LM_EXAMPLE_ROWS

    if cfg.strategy.name == PROMPT_STRATEGY or not shape.eval_rows:
        return 0.0
    if cfg.task == "classification":
        return shape.eval_rows * shape.padded_tokens_per_row
    return 2 * min(shape.eval_rows, LM_EXAMPLE_ROWS) * shape.padded_tokens_per_row


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
    checkpoint = checkpoint_bytes(cfg, trainable, total)
    kept_checkpoints = cfg.training.save_total_limit + (1 if cfg.training.keep_model == "best" else 0)
    peak = kept_checkpoints * checkpoint + saved_weights
    kept = saved_weights + (kept_checkpoints * checkpoint if cfg.training.keep_checkpoints else 0)
    return peak, kept
