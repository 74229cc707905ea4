"""train(cfg, folder, sink, stop_event): one fine-tune, start to finish, with transformers.Trainer.

The engine does not know whether a worker thread, the CLI or `accelerate launch` called it. It sets
the run's status to running / completed / stopped; on failure it raises a TuneboardError (or lets an
unexpected exception through) and the caller, at the thread or process boundary, marks it failed.

A run is one `Attempt` (two when the accelerator runs out of memory: `train_with_oom_retry`), and an
attempt is three phases around the Trainer that core.training.trainer builds:
    before_training   the default learning rate, the run's length (core.training.run_length), the base model's
                      probes and per-example predictions (on a CPU kept aside and scored after the first
                      loss point: core.training.base_scoring)
    run_trainer       callbacks, the Trainer, training
    after_training    whether it ended still improving, the best checkpoint kept, the final probes and
                      predictions, the save, cleanup
An attempt of the prompt strategy has no Trainer: `answer_without_training` lets the base model answer the
evaluation prompts instead (core.training.prompting). Instruction tuning's per-example passes also score the
models' generated answers, before and after training, into the log, the curves and the metrics.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import EarlyStoppingCallback

from core import devices
from core.config import LANGUAGE_MODEL_TASKS, MAIN_METRIC, PROMPT_STRATEGY, RunConfig, resolved_learning_rate
from core.errors import DataError, TrainingError, out_of_memory_kind
from core.run.folder import RunFolder, now_iso
from core.training.base_scoring import BaseScoring, ScoreBaseAfterFirstLog, kept_aside, without_base_scoring
from core.training.batching import padded_tokens_per_row, sampled_lengths
from core.training.callbacks import GradualUnfreezeCallback, SinkCallback
from core.training.prompting import answer_settings, report_answers, run_prompting
from core.training.run_length import length_for, length_line, with_length
from core.training.trackers import open_trackers
from core.training.trainer import (
    PreparedRun,
    build_trainer,
    metrics_for,
    prepare_run,
    set_threads,
    trainer_eval_order,
)

# Our run log says what happens; per-map progress bars would only clutter CLI output and logs.
datasets.disable_progress_bars()


# ---- preflight ------------------------------------------------------------------------------

def preflight(cfg: RunConfig) -> None:
    """Checks before a run is queued: values, model source, data files and what the data holds. Raises typed errors."""
    from core.data.preflight import check_data
    from core.models import resolve_model
    from core.models.loading import check_parent_run

    cfg.validate()
    check_parent_run(resolve_model(cfg.model.source), cfg.task)  # a 'run:' base must be of the same task
    for label, value in (("data.path", cfg.data.path), ("data.eval_path", cfg.data.eval_path)):
        if cfg.data.source == "file" or (label == "data.eval_path" and value):
            if value is None:
                continue
            path = Path(value).expanduser()
            if not path.exists():
                raise DataError(f"Data file {value} does not exist: upload it again or fix the path.", field=label)
            if not path.is_file():
                raise DataError(f"{value} is not a regular file (a folder or a device?): point to a data file.", field=label)
            if not os.access(path, os.R_OK):
                raise DataError(f"Data file {value} is not readable: check its permissions.", field=label)
    check_data(cfg)  # one class, too few rows for the batch, no text: refused before a run folder exists


# ---- the run --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    """One try at training a run: what it trains, where it reports, and what it resumes from."""

    cfg: RunConfig
    folder: RunFolder
    sink: Any
    stop_event: threading.Event
    device: str
    checkpoint: Path | None  # the complete checkpoint a resumed run continues from
    resume: bool
    is_main: bool  # the process that writes the run folder (rank 0)
    base_scored: threading.Event  # set once the base model was scored: a retry must not score it twice


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: 'completed' or 'stopped', the evaluation it ends on, and the Trainer's summary."""

    status: str
    final_metrics: dict[str, float]
    summary: dict[str, Any]


@dataclass(frozen=True)
class TrainingSetup:
    """What training starts from: the attempt (its learning rate now a number) and the prepared run."""

    attempt: Attempt
    prepared: PreparedRun
    score_probes: Callable[[Any], list[dict[str, Any]]]  # a model -> its probe results
    recorder: Any  # the PredictionRecorder (main process, with an eval set), else None
    base_scoring: BaseScoring | None = None  # the base model kept aside, scored once training is under way


@dataclass(frozen=True)
class Trained:
    """The Trainer after `train()`, and the callback that heard everything it reported."""

    trainer: Any
    reporter: SinkCallback


def train(
    cfg: RunConfig,
    folder: RunFolder,
    sink: Any,
    stop_event: threading.Event,
    *,
    resume: bool = False,
) -> str:
    """Fine-tune per cfg into folder; returns 'completed' or 'stopped'. Raises on failure."""
    from core.run.folder import elapsed_seconds
    from core.training import lr_finder, peak_memory

    rank, world_size = devices.rank_and_world_size()
    is_main = rank == 0
    previous = folder.status()
    elapsed_before = float(previous.get("elapsed_s", 0.0) or 0.0) if resume else 0.0
    checkpoint = None
    if resume:
        checkpoint = folder.last_complete_checkpoint()
        if checkpoint is None:
            raise TrainingError(
                f"Run {folder.run_id} has no complete checkpoint to resume from; start it again from its config."
            )
    device = devices.pick_device(cfg.training.device)
    if is_main:
        sink.set_status(
            status="running",
            started_at=now_iso(),
            elapsed_before_s=elapsed_before,
            world_size=world_size,
            device=devices.describe_device() if device != "cpu" else f"cpu ({devices.describe_device()})",
            device_kind=device,
            error=None,
        )
        if resume:
            sink.event("resume", int(previous.get("step", 0) or 0), f"Resuming from {checkpoint.name}.")
        else:
            sink.log(f"Starting {cfg.summary()} on {device}.")

    peak_memory.reset(device)
    # learning_rate 'auto': the range test runs once, before the first attempt (an OOM retry keeps its pick);
    # a prompt run trains nothing, so it has no rate to find.
    prompting = cfg.strategy.name == PROMPT_STRATEGY
    attempt_cfg = cfg if prompting else lr_finder.resolve_auto(cfg, folder, sink, stop_event, resume=resume)
    outcome = train_with_oom_retry(Attempt(
        cfg=attempt_cfg, folder=folder, sink=sink, stop_event=stop_event, device=device, checkpoint=checkpoint,
        resume=resume, is_main=is_main, base_scored=threading.Event(),
    ))
    if is_main:
        summary = outcome.summary
        elapsed = elapsed_before + elapsed_seconds(folder.status().get("started_at"))
        sink.set_status(
            status=outcome.status,
            finished_at=now_iso(),
            elapsed_s=round(elapsed, 2),
            final_metrics=outcome.final_metrics,
            samples_per_s=summary.get("answers_per_second" if prompting else "train_samples_per_second"),
            step=summary.get("step", 0),
            max_steps=summary.get("max_steps", 0),
            epoch=summary.get("epoch", 0.0),
            best=summary.get("best"),
            still_improving=summary.get("still_improving"),
            speed=_measured_speed(summary, elapsed) if outcome.status == "completed" and not resume else None,
            peak_memory_bytes=peak_memory.peak_bytes(device),
        )
        sink.log(f"Run {outcome.status} after {elapsed:.0f} s.")
    return outcome.status


def train_with_oom_retry(attempt: Attempt, *, retried: bool = False) -> Outcome:
    """Run the attempt; out of accelerator memory, once more at half the batch and twice the accumulation.

    The effective batch stays the same. A full disk becomes a TrainingError that says what to free.
    """
    try:
        return run_attempt(attempt)
    except Exception as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise TrainingError(
                f"The disk filled up while writing {attempt.folder.path}. Free space (delete old runs on the Runs "
                "page), then resume the run if it saved a checkpoint, or start it again from its config."
            ) from None
        # Only accelerator memory is retried: half the batch halves activations there, while a
        # host that ran out of RAM is usually out of it for the model itself.
        if out_of_memory_kind(err) != "accelerator":
            raise
        if retried or attempt.cfg.training.batch_size == 1:
            raise TrainingError(
                "The GPU ran out of memory even at half the batch size. Lower the batch size or max "
                "length, or use LoRA, then start again."
            ) from None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    # Retried outside the except block, so that the failed attempt's tensors are no longer referenced.
    t = attempt.cfg.training
    smaller = replace(t, batch_size=max(1, t.batch_size // 2), gradient_accumulation_steps=t.gradient_accumulation_steps * 2)
    if attempt.is_main:
        attempt.sink.event(
            "oom_retry",
            int(attempt.folder.status().get("step", 0) or 0),
            f"Out of GPU memory: retrying with batch size {smaller.batch_size} and "
            f"{smaller.gradient_accumulation_steps}x gradient accumulation (same effective batch).",
        )
    return train_with_oom_retry(replace(attempt, cfg=replace(attempt.cfg, training=smaller)), retried=True)


def run_attempt(attempt: Attempt) -> Outcome:
    """One try at the run: prepare it, then the phases before, during and after training."""
    set_threads(attempt.device)
    torch.manual_seed(attempt.cfg.training.seed)
    prepared = prepare_run(attempt.cfg, attempt.folder, attempt.sink, attempt.is_main)
    if attempt.cfg.strategy.name == PROMPT_STRATEGY:
        return answer_without_training(attempt, prepared)
    setup = before_training(attempt, prepared)
    if setup is None:
        return Outcome("stopped", {}, {})
    # The trackers stay open through the evaluation after training; one that raised ends its MLflow run FAILED.
    with open_trackers(attempt.cfg, attempt.folder, enabled=attempt.is_main) as trackers:
        trained = run_trainer(setup, trackers)
        if trained.reporter.stopped_by_user:
            return Outcome("stopped", trained.reporter.last_eval, trained.reporter.summary)
        return after_training(setup, trained)


def answer_without_training(attempt: Attempt, prepared: PreparedRun) -> Outcome:
    """The prompt strategy: no Trainer; the base model answers every evaluation prompt (its scores are the metrics)."""
    cfg = attempt.cfg
    recorder = prediction_recorder(cfg, attempt.folder, attempt.sink, prepared) if attempt.is_main else None
    prompted = run_prompting(cfg, prepared, recorder, attempt.sink, attempt.stop_event, attempt.device,
                             probe_scorer(cfg, prepared))
    return Outcome(prompted.status, prompted.metrics, prompted.summary)


def before_training(attempt: Attempt, prepared: PreparedRun) -> TrainingSetup | None:
    """The learning rate made a number, and the base model's probes and per-example predictions stored or kept aside.

    On a CPU the base model is kept aside and scored after the first loss point (core.training.base_scoring):
    its passes took seconds that held up step 1. None when Stop was pressed while the run prepared.
    """
    cfg, sink = _with_default_learning_rate(attempt, prepared), attempt.sink
    cfg = _with_run_length(replace(attempt, cfg=cfg), prepared)
    if attempt.is_main:
        sink.set_status(learning_rate=cfg.training.learning_rate)
    if attempt.stop_event.is_set():
        return None
    setup = TrainingSetup(
        attempt=replace(attempt, cfg=cfg), prepared=prepared, score_probes=probe_scorer(cfg, prepared),
        recorder=prediction_recorder(cfg, attempt.folder, sink, prepared) if attempt.is_main else None,
    )
    if attempt.is_main and not attempt.resume and not attempt.base_scored.is_set():
        attempt.base_scored.set()  # an OOM retry must not score the base model twice
        prepared.model.to(attempt.device)
        if attempt.device != "cpu":  # quick on an accelerator, whose memory a copy would take from training
            BaseScoring(prepared.model, setup.score_probes, setup.recorder, sink).run()
            return setup
        # Gradual unfreezing thaws frozen weights as it trains: its copy shares none.
        aside = kept_aside(prepared.model, share_frozen=prepared.unfreezer is None)
        sink.log("The base model's probes and per-example predictions are scored once the first loss point is in.")
        setup = replace(setup, base_scoring=BaseScoring(aside, setup.score_probes, setup.recorder, sink))
    return setup


def run_trainer(setup: TrainingSetup, trackers: list[Any] | None = None) -> Trained:
    """The callbacks (the open trackers among them), the Trainer, then training (from the checkpoint, when resuming)."""
    attempt, prepared, recorder = setup.attempt, setup.prepared, setup.recorder
    cfg, sink = attempt.cfg, attempt.sink
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps * devices.rank_and_world_size()[1]
    reporter = SinkCallback(
        sink, attempt.stop_event, score_probes=setup.score_probes, language_model=cfg.task in LANGUAGE_MODEL_TASKS,
        samples_per_step=samples_per_step, after_evaluate=recorder.after_evaluate if recorder is not None else None,
        checkpoint_at_end=cfg.training.keep_checkpoints or cfg.training.keep_model != "last",
    )
    callbacks: list[Any] = [reporter]
    if prepared.unfreezer is not None:
        callbacks.append(GradualUnfreezeCallback(prepared.unfreezer, sink, cfg.strategy.unfreeze_every_steps))
    callbacks += trackers or []
    if cfg.training.early_stopping_patience and prepared.eval_dataset is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    # Last: every logger has published the first loss before the base model is scored.
    deferred = ScoreBaseAfterFirstLog(setup.base_scoring) if setup.base_scoring is not None else None
    if deferred is not None:
        callbacks.append(deferred)

    t = cfg.training
    if attempt.is_main and prepared.eval_dataset is not None and t.keep_model == "best" and t.save_steps % t.eval_steps:
        sink.log(f"Checkpoints every {t.eval_steps} steps, at the evaluations, so that the best one can be kept "
                 f"(set 'Model to keep' to last to save every {t.save_steps} steps).")
    trainer = build_trainer(cfg, attempt.folder, prepared, attempt.device, callbacks=callbacks,
                            compute_metrics=metrics_for(cfg.task, recorder))
    if recorder is not None:
        recorder.eval_order = trainer_eval_order(trainer)
    trainer.train(resume_from_checkpoint=str(attempt.checkpoint) if attempt.checkpoint else None)
    state = trainer.state
    # What train_runtime holds besides the steps: the evaluations and the checkpoints written while training
    # (read now: the evaluation after training is outside it).
    reporter.summary.update(step=state.global_step, max_steps=state.max_steps, epoch=round(state.epoch or 0.0, 4),
                            evaluation_s=round(getattr(trainer, "evaluation_seconds", 0.0), 2),
                            checkpoint_s=round(getattr(trainer, "checkpoint_seconds", 0.0), 2),
                            checkpoints=getattr(trainer, "checkpoints_written", 0))
    if deferred is not None:
        setup.base_scoring.run()  # training ended before its first log (stopped at once): scored all the same
        without_base_scoring(reporter.summary, deferred.seconds)
    return Trained(trainer, reporter)


def after_training(setup: TrainingSetup, trained: Trained) -> Outcome:
    """The final evaluation and kept checkpoint, the final probes and predictions, the saved model, cleanup."""
    attempt, prepared = setup.attempt, setup.prepared
    cfg, sink, folder = attempt.cfg, attempt.sink, attempt.folder
    trainer, reporter = trained.trainer, trained.reporter
    step = trainer.state.global_step
    # Judged on the evaluations made while training, before an evaluation of the kept best model below.
    if step >= trainer.state.max_steps:
        reporter.summary["still_improving"] = _still_improving(cfg, reporter, sink if attempt.is_main else None)
    if reporter.last_eval_step != step and prepared.eval_dataset is not None:
        trainer.evaluate()  # the callback records it, with perplexity, like every evaluation
    final = reporter.last_eval
    kept = _kept_checkpoint(cfg, trainer.state, reporter.evals)
    if kept is not None:
        best_step, final = kept
        metric = MAIN_METRIC[cfg.task][0]
        reporter.summary["best"] = {"name": "eval_" + metric, "step": best_step, "value": final.get("eval_" + metric)}
        if attempt.is_main:
            sink.log(f"Kept the best model, from step {best_step} (by eval {metric}); "
                     "the probes below and the export use it.")
    # Said after the kept checkpoint, as the run log has always read; it is about how training ended.
    if step < trainer.state.max_steps and attempt.is_main and cfg.training.early_stopping_patience:
        sink.event("early_stop", step, f"Stopped early at step {step}: no better evaluation for "
                   f"{cfg.training.early_stopping_patience} evaluations in a row.")
    reporter.summary["padded_tokens_per_row"] = padded_tokens_per_row(
        sampled_lengths(prepared.train_dataset), cfg.training.batch_size, cfg.training.seed,
        rows=len(prepared.train_dataset))
    note = getattr(prepared.train_encoder, "truncation_note", None)
    if attempt.is_main and note is not None:  # sft: counted as the training batches were encoded
        sink.log(note("training") or "No training prompt had to be cut to fit max_length.")
    if attempt.is_main:
        for result in setup.score_probes(trainer.model):
            sink.probe(step, "final", result["text"], result["predictions"])
        if setup.recorder is not None:
            final = {**final, **report_answers(sink, step, "final", setup.recorder.final(step, trainer.model))}
        trainer.save_model(str(folder.final_path))
        sink.log(f"Saved the fine-tuned model to {folder.final_path}.")
        if not cfg.training.keep_checkpoints:
            _remove_checkpoints(folder, sink)
    return Outcome("completed", final, reporter.summary)


def _with_default_learning_rate(attempt: Attempt, prepared: PreparedRun) -> RunConfig:
    """The attempt's config with an unset learning rate made the default for this task, strategy and (now known) model size."""
    cfg = attempt.cfg
    if cfg.training.learning_rate is not None:
        return cfg
    total = prepared.plan.total_params
    rate = resolved_learning_rate(cfg, total)
    if attempt.is_main:
        attempt.sink.log(f"Learning rate {rate:.1e}: the default for {cfg.task} with {cfg.strategy.name} on a model of "
                         f"{total / 1e6:.1f}M parameters (set training.learning_rate to choose another).")
    return replace(cfg, training=replace(cfg.training, learning_rate=rate))


def _with_run_length(attempt: Attempt, prepared: PreparedRun) -> RunConfig:
    """The attempt's config with its length made numbers for this data (core.training.run_length), said in the log.

    An automatic run gets its steps, evaluations and early stopping from the rule; a run whose epochs or max
    steps are set keeps them, and gets its evaluation interval when none is set. The config saved in the run
    folder keeps its empty fields, so a resumed run (same data) finds the same numbers.
    """
    cfg, sink = attempt.cfg, attempt.sink
    has_eval = prepared.eval_dataset is not None
    rows, classes = len(prepared.train_dataset), len(prepared.label_names or ())
    length = length_for(cfg, rows, classes=classes, world_size=devices.rank_and_world_size()[1])
    resolved = with_length(cfg, length, has_eval=has_eval)
    patience = resolved.training.early_stopping_patience
    if attempt.is_main:
        sink.set_status(run_length={
            "steps": length.steps, "epochs": length.epochs, "eval_steps": length.eval_steps if has_eval else None,
            "evaluations": length.evaluations if has_eval else 0, "patience": patience, "automatic": length.automatic,
            "bound": length.bound, "train_rows": rows,
        })
        sink.log(length_line(length, rows, classes, has_eval, patience))
    return resolved


def _still_improving(cfg: RunConfig, reporter: SinkCallback, sink: Any) -> dict[str, Any] | None:
    """The run's main metric when its last evaluation still beat every earlier one (core.training.run_length), else None.

    The run log says so, and what to do about it: the Train page offers to train further from this model.
    """
    from core.training.run_length import improving_metric, still_improving

    key, higher = improving_metric(cfg.task)
    curve = reporter.eval_curve(key)
    if not still_improving([value for _, value in curve], higher):
        return None
    previous = max if higher else min
    found = {"metric": key, "step": curve[-1][0], "value": curve[-1][1],
             "before": previous(value for _, value in curve[:-1]), "evaluations": len(curve)}
    if sink is not None:
        name = key.removeprefix("eval_").replace("_", " ")
        sink.log(f"Still improving at the end: eval {name} {found['before']:.4g} -> {found['value']:.4g} at the last "
                 "evaluation. Training further would likely help: 'Train further' on the Train page starts a new run "
                 "from this model.")
    return found


def probe_scorer(cfg: RunConfig, prepared: PreparedRun) -> Callable[[Any], list[dict[str, Any]]]:
    """A function that scores this run's probes on a model (its tokenizer, task, texts and labels)."""
    from core.data.probe_texts import run_probe_texts

    # Left at the default they are chosen from the data, as Setup showed them: from the rows prepare_data
    # read, else (a prepared run that did not choose them) read here.
    probe_texts = prepared.probe_texts if prepared.probe_texts is not None else run_probe_texts(cfg)

    def score(model: Any) -> list[dict[str, Any]]:
        from core.insight.probes import score_probes

        return score_probes(model, prepared.tokenizer, cfg.task, probe_texts, cfg.probes.top_k, label_names=prepared.label_names)

    return score


def prediction_recorder(cfg: RunConfig, folder: RunFolder, sink: Any, prepared: PreparedRun) -> Any:
    """The per-example predictions recorder (core.insight.predictions), or None when the run has no eval set."""
    from core.insight.predictions import PredictionRecorder

    if prepared.eval_dataset is None or prepared.eval_rows is None:
        return None
    recorder = PredictionRecorder(folder.path, cfg.task, prepared.eval_rows, prepared.eval_rows_total,
                                  prepared.label_names, prepared.eval_dataset, prepared.tokenizer, cfg.training.seed,
                                  precision=cfg.training.precision, answers=answer_settings(cfg, prepared))
    recorder.on_error = lambda message: sink.event("warning", 0, message)
    return recorder


def _measured_speed(summary: dict[str, Any], elapsed_s: float) -> dict[str, float] | None:
    """What core.plan.estimate needs to predict the next run of this kind: padded tokens/s, time outside training.

    The tokens per second are the training steps' own: the Trainer's train_runtime also holds the evaluations
    made while training and the checkpoints written at them (about eight of each in a run of the default
    length), which the estimate counts apart.
    """
    samples_per_s, runtime = summary.get("train_samples_per_second"), summary.get("train_runtime")
    padded = summary.get("padded_tokens_per_row")
    if not samples_per_s or not runtime or not padded:
        return None
    writing, checkpoints = float(summary.get("checkpoint_s") or 0.0), int(summary.get("checkpoints") or 0)
    stepping = runtime - float(summary.get("evaluation_s") or 0.0) - writing
    if stepping <= 0.1 * runtime:  # times that cannot be right: the Trainer's figure as it is
        stepping = runtime
    speed = {"tokens_per_s": round(samples_per_s * runtime / stepping * padded, 2),
             "overhead_s": round(max(0.0, elapsed_s - runtime), 2)}
    if checkpoints:
        speed["checkpoint_s"] = round(writing / checkpoints, 3)  # one checkpoint of this model and strategy
    return speed


def _kept_checkpoint(cfg: RunConfig, state: Any, evals: dict[int, dict[str, float]]) -> tuple[int, dict] | None:
    """(step, its evaluation) of the best checkpoint the Trainer loaded back at the end, else None."""
    best = getattr(state, "best_model_checkpoint", None)
    if cfg.training.keep_model != "best" or not best:
        return None
    try:
        step = int(Path(best).name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None
    return (step, evals[step]) if step in evals else None


def _remove_checkpoints(folder: RunFolder, sink: Any) -> None:
    """A completed run keeps final/ only: its checkpoints' optimizer states are only for resuming."""
    import shutil

    checkpoints = folder.checkpoints()
    if not checkpoints:
        return
    freed = 0
    for checkpoint in checkpoints:
        freed += sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file())
        shutil.rmtree(checkpoint, ignore_errors=True)
    sink.log(f"Removed {len(checkpoints)} checkpoint(s), {freed / 1e6:,.0f} MB: the fine-tuned model is in "
             f"{folder.final_path.name}/ (tick 'Keep checkpoints' to keep them).")
