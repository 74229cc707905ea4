"""train(cfg, folder, sink, stop_event): one fine-tune, start to finish, with transformers.Trainer.

The engine does not know whether a worker thread, the CLI or `accelerate launch` called it. It sets
the run's status to running / completed / stopped; on failure it raises a TuneboardError (or lets an
unexpected exception through) and the caller, at the thread or process boundary, marks it failed.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from core import devices
from core.config import MAX_EVAL_ROWS, RunConfig
from core.errors import DataError, TrainingError, out_of_memory_kind
from core.insight.predictions import trainer_eval_order
from core.models.fast_mlm import masked_only_loss, masked_only_parts, unwrap_model
from core.plan.estimate import padded_tokens_per_row
from core.run.folder import RunFolder, atomic_write_json, now_iso
from core.training.callbacks import GradualUnfreezeCallback, SinkCallback

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

@dataclass
class _Prepared:
    model: Any
    tokenizer: Any
    train_dataset: Any
    eval_dataset: Any
    collator: Any
    plan: Any
    unfreezer: Any
    label_names: list[str] | None
    data_report: dict[str, Any]
    load_report: dict[str, Any]
    eval_rows: Any = None  # the raw (text, label) rows behind eval_dataset, in the same order
    eval_rows_total: int = 0  # rows of the eval set before sampling


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

    from core.training import lr_finder, peak_memory

    peak_memory.reset(device)
    # learning_rate 'auto': the range test runs once, before the first attempt (an OOM retry keeps its pick).
    attempt_cfg = lr_finder.resolve_auto(cfg, folder, sink, stop_event, resume=resume)
    base_scored = threading.Event()
    for attempt in range(2):
        try:
            outcome = _run_once(attempt_cfg, folder, sink, stop_event, device, checkpoint, resume, is_main, base_scored)
            break
        except Exception as err:
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise TrainingError(
                    f"The disk filled up while writing {folder.path}. Free space (delete old runs on the Runs "
                    "page), then resume the run if it saved a checkpoint, or start it again from its config."
                ) from None
            # Only accelerator memory is retried: half the batch halves activations there, while a
            # host that ran out of RAM is usually out of it for the model itself.
            if out_of_memory_kind(err) != "accelerator":
                raise
            if attempt == 1 or attempt_cfg.training.batch_size == 1:
                raise TrainingError(
                    "The GPU ran out of memory even at half the batch size. Lower the batch size or max "
                    "length, or use LoRA, then start again."
                ) from None
            smaller = replace(
                attempt_cfg.training,
                batch_size=max(1, attempt_cfg.training.batch_size // 2),
                gradient_accumulation_steps=attempt_cfg.training.gradient_accumulation_steps * 2,
            )
            attempt_cfg = replace(attempt_cfg, training=smaller)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if is_main:
                sink.event(
                    "oom_retry",
                    int(folder.status().get("step", 0) or 0),
                    f"Out of GPU memory: retrying with batch size {smaller.batch_size} and "
                    f"{smaller.gradient_accumulation_steps}x gradient accumulation (same effective batch).",
                )

    status, final_metrics, summary = outcome
    if is_main:
        elapsed = elapsed_before + elapsed_seconds(folder.status().get("started_at"))
        sink.set_status(
            status=status,
            finished_at=now_iso(),
            elapsed_s=round(elapsed, 2),
            final_metrics=final_metrics,
            samples_per_s=summary.get("train_samples_per_second"),
            step=summary.get("step", 0),
            max_steps=summary.get("max_steps", 0),
            epoch=summary.get("epoch", 0.0),
            best=summary.get("best"),
            speed=_measured_speed(summary, elapsed) if status == "completed" and not resume else None,
            peak_memory_bytes=peak_memory.peak_bytes(device),
        )
        sink.log(f"Run {status} after {elapsed:.0f} s.")
    return status


def _measured_speed(summary: dict[str, Any], elapsed_s: float) -> dict[str, float] | None:
    """What core.plan.estimate needs to predict the next run of this kind: padded tokens/s, time outside training."""
    samples_per_s, runtime = summary.get("train_samples_per_second"), summary.get("train_runtime")
    padded = summary.get("padded_tokens_per_row")
    if not samples_per_s or not runtime or not padded:
        return None
    return {"tokens_per_s": round(samples_per_s * padded, 2), "overhead_s": round(max(0.0, elapsed_s - runtime), 2)}


def _run_once(cfg, folder, sink, stop_event, device, checkpoint, resume, is_main, base_scored):
    _set_threads(device)
    torch.manual_seed(cfg.training.seed)
    prepared = _prepare(cfg, folder, sink, is_main)
    if cfg.training.learning_rate is None:  # not set: the default for this task, strategy and (now known) model size
        from core.config import default_learning_rate

        rate = default_learning_rate(cfg.task, cfg.strategy.name, prepared.plan.total_params)
        cfg = replace(cfg, training=replace(cfg.training, learning_rate=rate))
        if is_main:
            sink.log(f"Learning rate {rate:.1e}: the default for {cfg.task} with {cfg.strategy.name} on a model of "
                     f"{prepared.plan.total_params / 1e6:.1f}M parameters (set training.learning_rate to choose another).")
    if is_main:
        sink.set_status(learning_rate=cfg.training.learning_rate)
    if stop_event.is_set():
        return "stopped", {}, {}

    language_model = cfg.task in ("mlm", "causal")
    probe_texts = cfg.probe_texts()
    recorder = _insight_recorder(cfg, folder, sink, prepared) if is_main else None

    def score(model):
        from core.insight.probes import score_probes

        return score_probes(model, prepared.tokenizer, cfg.task, probe_texts, cfg.probes.top_k, label_names=prepared.label_names)

    if is_main and not resume and not base_scored.is_set():
        base_scored.set()  # an OOM retry must not score the base model twice
        sink.log("Scoring the probes with the base model.")
        prepared.model.to(device)
        for result in score(prepared.model):
            sink.probe(0, "base", result["text"], result["predictions"])
        if recorder is not None:
            sink.log("Storing the base model's per-example predictions on the evaluation set.")
            recorder.base(prepared.model)

    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps * devices.rank_and_world_size()[1]
    sink_callback = SinkCallback(
        sink, stop_event, score_probes=score, language_model=language_model, samples_per_step=samples_per_step,
        after_evaluate=recorder.after_evaluate if recorder is not None else None,
        checkpoint_at_end=cfg.training.keep_checkpoints or cfg.training.keep_model != "last",
    )
    callbacks: list[Any] = [sink_callback]
    if prepared.unfreezer is not None:
        callbacks.append(GradualUnfreezeCallback(prepared.unfreezer, sink, cfg.strategy.unfreeze_every_steps))
    if is_main:
        callbacks += _tracker_callbacks(cfg, folder)
    if cfg.training.early_stopping_patience and prepared.eval_dataset is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))

    t = cfg.training
    if is_main and prepared.eval_dataset is not None and t.keep_model == "best" and t.save_steps % t.eval_steps:
        sink.log(f"Checkpoints every {t.eval_steps} steps, at the evaluations, so that the best one can be kept "
                 f"(set 'Model to keep' to last to save every {t.save_steps} steps).")
    trainer = _TuneboardTrainer(
        model=prepared.model,
        args=_training_arguments(cfg, folder, device, has_eval=prepared.eval_dataset is not None),
        data_collator=prepared.collator,
        train_dataset=prepared.train_dataset,
        eval_dataset=prepared.eval_dataset,
        processing_class=prepared.tokenizer,
        compute_metrics=_compute_metrics(cfg.task, recorder),
        callbacks=callbacks,
        masked_only_mlm=cfg.task == "mlm",
    )
    # The sink is our reporter; the Trainer's own printer would echo raw dicts to stdout.
    trainer.remove_callback(PrinterCallback)
    if recorder is not None:
        recorder.eval_order = trainer_eval_order(trainer)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    state = trainer.state
    sink_callback.summary.update(step=state.global_step, max_steps=state.max_steps, epoch=round(state.epoch or 0.0, 4))
    if sink_callback.stopped_by_user:
        return "stopped", sink_callback.last_eval, sink_callback.summary

    step = trainer.state.global_step
    if sink_callback.last_eval_step != step and prepared.eval_dataset is not None:
        trainer.evaluate()  # the callback records it, with perplexity, like every evaluation
    final = sink_callback.last_eval
    kept = _kept_checkpoint(cfg, trainer.state, sink_callback.evals)
    if kept is not None:
        best_step, final = kept
        sink_callback.summary["best"] = {"name": "eval_" + MAIN_METRIC[cfg.task][0], "step": best_step,
                                         "value": final.get("eval_" + MAIN_METRIC[cfg.task][0])}
        if is_main:
            sink.log(f"Kept the best model, from step {best_step} (by eval {MAIN_METRIC[cfg.task][0]}); "
                     "the probes below and the export use it.")
    if trainer.state.global_step < trainer.state.max_steps and not sink_callback.stopped_by_user and is_main \
            and cfg.training.early_stopping_patience:
        sink.event("early_stop", step, f"Stopped early at step {step}: no better evaluation for "
                   f"{cfg.training.early_stopping_patience} evaluations in a row.")
    sink_callback.summary["padded_tokens_per_row"] = padded_tokens_per_row(
        _sampled_lengths(prepared.train_dataset), cfg.training.batch_size, cfg.training.seed,
        rows=len(prepared.train_dataset))
    if is_main:
        for result in score(trainer.model):
            sink.probe(step, "final", result["text"], result["predictions"])
        if recorder is not None:
            recorder.final(step, trainer.model)
        trainer.save_model(str(folder.final_path))
        sink.log(f"Saved the fine-tuned model to {folder.final_path}.")
        if not cfg.training.keep_checkpoints:
            _remove_checkpoints(folder, sink)
    return "completed", final, sink_callback.summary


def _tracker_callbacks(cfg: RunConfig, folder: RunFolder) -> list[Any]:
    """The Trainer's own TensorBoard and MLflow reporters, writing into the run folder."""
    found: list[Any] = []
    if "tensorboard" in cfg.training.log_to:
        from tensorboardX import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        found.append(TensorBoardCallback(SummaryWriter(log_dir=str(folder.path / "tensorboard"))))
    if "mlflow" in cfg.training.log_to:
        from transformers.integrations import MLflowCallback

        os.environ.setdefault("MLFLOW_TRACKING_URI", (folder.path / "mlruns").as_uri())
        os.environ.setdefault("MLFLOW_RUN_NAME", folder.run_id)
        found.append(MLflowCallback())
    return found


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


def _sampled_lengths(dataset: Any, limit: int = 2000) -> list[int]:
    """Token lengths of up to `limit` training rows (a seeded sample of larger sets).

    Reading the rows through the dataset tokenises just the sample when the set is tokenised lazily.
    """
    import random

    rows = len(dataset)
    picked = sorted(random.Random(0).sample(range(rows), limit)) if rows > limit else list(range(rows))
    return [len(ids) for ids in dataset[picked]["input_ids"]] if picked else []


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


def _prepare(cfg: RunConfig, folder: RunFolder, sink: Any, is_main: bool) -> _Prepared:
    from core.data.prepare import prepare_data
    from core.models import load_for_task, load_tokenizer
    from core.training.strategies import GradualUnfreezer, apply_strategy

    sink.log("Preparing the data.")
    # The tokenizer first (no weights yet): curation's too-long check needs it, and the classifier
    # head needs the label names the data gives.
    tokenizer, max_length = load_tokenizer(cfg.model)
    data = prepare_data(cfg, tokenizer, max_length=max_length)
    if len(data.train) == 0:
        raise DataError("No training rows are left after cleaning and curation: loosen the filters or add data.")
    if is_main:
        atomic_write_json(folder.path / "data_report.json", data.report)
        dropped = sum((data.report.get("dropped") or {}).values()) if isinstance(data.report.get("dropped"), dict) else 0
        eval_rows = len(data.eval) if data.eval is not None else 0
        sink.log(f"Data: {len(data.train)} training rows, {eval_rows} evaluation rows, {dropped} rows dropped.")

    sink.log(f"Loading model '{cfg.model.source}' for {cfg.task}.")
    loaded = load_for_task(cfg.model, cfg.task, label_names=data.label_names)
    model, tokenizer = loaded.model, loaded.tokenizer
    if is_main:
        atomic_write_json(folder.load_report_path, loaded.report)
        for warning in loaded.report.get("warnings", []):
            sink.event("warning", 0, warning)

    model, plan = apply_strategy(model, cfg.strategy, cfg.task)
    _declare_loss_kwargs(model)
    unfreezer = GradualUnfreezer(model, plan) if cfg.strategy.name == "gradual-unfreeze" else None
    if is_main:
        sink.set_status(
            trainable_params=int(plan.trainable_params),
            total_params=int(plan.total_params),
            strategy_description=plan.description,
            load_report=loaded.report,
            data_report={k: v for k, v in data.report.items() if k != "curation"},
            label_names=data.label_names,
            parent_run=loaded.report.get("parent_run"),  # fine-tuned further from a finished run
        )
        sink.log(plan.description)

    # The loader caps max_length at what the model can embed (e.g. 512 positions for BERT).
    max_length = int(loaded.report.get("max_length") or max_length)
    train_dataset = _tokenize(data.train, tokenizer, cfg, max_length, "training", lazy=True)
    eval_dataset = eval_source = None
    if data.eval is not None and len(data.eval):
        eval_source = data.eval
        if len(eval_source) > MAX_EVAL_ROWS:
            eval_source = eval_source.shuffle(seed=cfg.training.seed).select(range(MAX_EVAL_ROWS))
        eval_dataset = _tokenize(eval_source, tokenizer, cfg, max_length, "evaluation")
    return _Prepared(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if eval_dataset is not None and len(eval_dataset) else None,
        collator=_collator(cfg, tokenizer),
        plan=plan,
        unfreezer=unfreezer,
        label_names=data.label_names,
        data_report=data.report,
        load_report=loaded.report,
        eval_rows=eval_source,
        eval_rows_total=len(data.eval) if data.eval is not None else 0,
    )


def _tokenize(dataset, tokenizer, cfg: RunConfig, max_length: int, what: str, *, lazy: bool = False):
    """Token ids without padding (the collator pads each batch to its own longest row).

    lazy: tokenised batch by batch as the Trainer fetches rows, grouped by character counts, so
    the start does not wait on the whole training set. Else tokenised now (the capped evaluation
    set, which core.insight.predictions reads column by column); its sampler groups by exact token counts.
    Rows too long for the model were already dropped or cut by curation's too-long check
    (core.data.integrity); truncating here only bounds what a slow tokenizer could not cut by text.
    """
    from core.data.prepare import BatchEncoder, lazily_tokenized

    encoder = BatchEncoder(tokenizer, cfg.task, max_length)
    if lazy:
        return lazily_tokenized(dataset, encoder)
    return dataset.map(encoder, batched=True, remove_columns=dataset.column_names, desc=f"Tokenising {what} data")


def _collator(cfg: RunConfig, tokenizer):
    pad_multiple = 8 if torch.cuda.is_available() else None
    if cfg.task == "mlm":
        return DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=cfg.training.mlm_probability, pad_to_multiple_of=pad_multiple
        )
    if cfg.task == "causal":
        return DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=pad_multiple)
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple)


def _compute_metrics(task: str, recorder: Any = None):
    from core.training.metrics import compute_metrics_for

    compute = compute_metrics_for(task)
    return recorder.wrap_compute_metrics(compute) if recorder is not None and compute is not None else compute


def _insight_recorder(cfg: RunConfig, folder: RunFolder, sink: Any, prepared: _Prepared) -> Any:
    """The per-example predictions recorder (core.insight.predictions), or None when the run has no eval set."""
    from core.insight.predictions import Recorder

    if prepared.eval_dataset is None or prepared.eval_rows is None:
        return None
    recorder = Recorder(folder.path, cfg.task, prepared.eval_rows, prepared.eval_rows_total, prepared.label_names,
                        prepared.eval_dataset, prepared.tokenizer, cfg.training.seed, precision=cfg.training.precision)
    recorder.on_error = lambda message: sink.event("warning", 0, message)
    return recorder


# The metric that picks the best checkpoint and stops early: (metric name, higher is better).
MAIN_METRIC = {"classification": ("f1", True), "mlm": ("loss", False), "causal": ("loss", False)}


def _training_arguments(cfg: RunConfig, folder: RunFolder, device: str, *, has_eval: bool = True) -> TrainingArguments:
    t = cfg.training
    bf16 = devices.use_bf16(device, t.precision)
    metric, greater = MAIN_METRIC[cfg.task]
    # The Trainer can only bring back a checkpoint saved at an evaluation, so keeping the best one
    # saves at every evaluation when the save interval is not a multiple of it.
    keep_best = has_eval and t.keep_model == "best"
    tracks_metric = keep_best or (has_eval and t.early_stopping_patience > 0)
    return TrainingArguments(
        output_dir=str(folder.path),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps else -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=max(t.batch_size, 32),
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio if t.warmup_ratio < 1 else 0,
        weight_decay=t.weight_decay,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        # The default filter replaces a NaN loss by a running mean, hiding a diverged run.
        logging_nan_inf_filter=False,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps if not keep_best or t.save_steps % t.eval_steps == 0 else t.eval_steps,
        load_best_model_at_end=keep_best,
        metric_for_best_model=metric if tracks_metric else None,
        greater_is_better=greater if tracks_metric else None,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        bf16=bf16,
        fp16=t.precision == "fp16" and device == "cuda",
        use_cpu=device == "cpu",
        auto_find_batch_size=t.auto_find_batch_size,
        # The lazily tokenised training set carries character counts as its length column; the
        # eager evaluation set has none, so the sampler measures its (capped) rows' token ids.
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        # The lazy training set's transform needs its raw text column; every column the datasets
        # hand the collator is already a model input.
        remove_unused_columns=False,
        save_only_model=False,
        log_level="warning",
        # LM evaluation needs only the loss; gathering [N, T, vocab] logits would cost GBs.
        prediction_loss_only=cfg.task != "classification",
    )


class _TuneboardTrainer(Trainer):
    """Trainer with masked-only MLM loss, and an optimizer that knows every parameter.

    Gradual unfreezing needs the latter.

    Trainer builds its optimizer from the parameters that require grad at that moment; a block
    unfrozen later would get gradients but never an update. AdamW skips parameters whose grad is
    None, so registering frozen ones costs nothing until they thaw.
    """

    def __init__(self, *args, masked_only_mlm: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        use_cpu_attention_kernel(self.model, on_cpu=self.args.device.type == "cpu", bf16=self.args.bf16)
        # Masked-only MLM calls the encoder and head directly, which would bypass DDP's gradient
        # hooks, so it is for single-process runs only.
        self.masked_only_parts = masked_only_parts(self.model) if masked_only_mlm and self.args.world_size == 1 else None

    def _get_train_sampler(self, train_dataset=None):
        # Trainer reads the length column as a lazy datasets Column and sorts by indexing it, one
        # Arrow query per row; read through Arrow once, the lengths are a plain list.
        from transformers.trainer_pt_utils import LengthGroupedSampler

        from core.data.prepare import length_column

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = length_column(dataset, self.args.length_column_name)
        if self.args.train_sampling_strategy != "group_by_length" or lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=lengths)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.masked_only_parts is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        scaled_items = num_items_in_batch if self.model_accepts_loss_kwargs else None
        # The encoder and head are called directly, not through model.forward, which is where
        # accelerate applies bf16 autocast; without this the bf16 setting never reached MLM runs.
        with self.accelerator.autocast():
            loss = masked_only_loss(self.masked_only_parts, inputs, scaled_items)
        return (loss, {"loss": loss}) if return_outputs else loss

    def create_optimizer(self, model=None):
        target = model if model is not None else self.model
        frozen = [p for p in target.parameters() if not p.requires_grad]
        if not frozen or not getattr(self, "_register_frozen", True):
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        for parameter in frozen:
            parameter.requires_grad_(True)
        try:
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        finally:
            for parameter in frozen:
                parameter.requires_grad_(False)


def cpu_attention_implementation(*, on_cpu: bool, bf16: bool) -> str | None:
    """The attention kernel a CPU run should train with, or None to keep the model's own.

    On a quiet machine the two kernels train at the same speed in bf16 (bench_levers: 0.93-1.02x).
    When other processes share the cores, as the dashboard's server and browser do, PyTorch's fused
    SDPA backward in bf16 collapses: half of a MiniLM step in that one kernel, steps 2-4x slower than
    plain matmul attention in the same conditions. In fp32 SDPA does not suffer and stays.
    """
    return "eager" if on_cpu and bf16 else None


def use_cpu_attention_kernel(model: Any, *, on_cpu: bool, bf16: bool) -> None:
    """Switch the model to the attention kernel that trains fastest for this device and precision."""
    wanted = cpu_attention_implementation(on_cpu=on_cpu, bf16=bf16)
    inner = unwrap_model(model)
    current = getattr(getattr(inner, "config", None), "_attn_implementation", None)
    if wanted is None or current == wanted or not hasattr(inner, "set_attn_implementation"):
        return
    try:
        inner.set_attn_implementation(wanted)
    except (ValueError, ImportError):  # a remote-code model without the eager path keeps its own
        pass


def _declare_loss_kwargs(model: Any) -> None:
    """Tell Trainer whether the model really normalises its loss by `num_items_in_batch`.

    Trainer assumes it does whenever forward() takes **kwargs, and then skips dividing by the
    gradient-accumulation steps and multiplies by the number of processes. BERT-family heads take
    **kwargs but average the loss themselves, so losses and gradients came out world_size times
    (or accumulation-steps times) too large. Models that use `self.loss_function` do normalise.
    """
    import inspect

    inner = unwrap_model(model)
    try:
        source = inspect.getsource(type(inner).forward)
    except (OSError, TypeError):
        return
    inner.accepts_loss_kwargs = "loss_function" in source or "num_items_in_batch" in source


def _set_threads(device: str) -> None:
    if device == "cpu":
        # Hyper-threads share one core's FPUs; more threads than physical cores only adds contention.
        torch.set_num_threads(max(1, devices.physical_cores()))


# The Runs page calls engine.export_run; it lives with the other saved-model code.
from core.models.export import export_run  # noqa: E402,F401
