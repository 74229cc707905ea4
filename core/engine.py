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
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from core import devices
from core.callbacks import GradualUnfreezeCallback, SinkCallback
from core.config import RunConfig
from core.errors import DataError, TrainingError, TuneboardError, out_of_memory_kind
from core.fast_mlm import masked_only_loss, masked_only_parts, unwrap_model
from core.runs import RunFolder, atomic_write_json, now_iso

# Our run log says what happens; per-map progress bars would only clutter CLI output and logs.
datasets.disable_progress_bars()

# Eval sets beyond this are sampled: an evaluation must not stall the live charts for minutes.
MAX_EVAL_ROWS = 2000


# ---- preflight and estimates ----------------------------------------------------------------

def preflight(cfg: RunConfig) -> None:
    """Fast checks before a run is queued: values, model source, data files. Raises typed errors."""
    from core.models import resolve_model

    cfg.validate()
    resolve_model(cfg.model.source)
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


# Calibrated on the bench/ throughput runs (2-core AVX2 CPU, bundled MiniLM, batch 32): the engine
# sustains ~6e10 FLOP/s by the 6·N·tokens count, so ~3e10 per physical core.
CPU_FLOPS_PER_CORE = 3e10
SYNTHETIC_TOKENS_PER_ROW = 12
OTHER_TOKENS_PER_ROW = 48
# Causal LM scores the whole vocabulary at every position (MLM only at the masked 15%), which
# the 6·N count of the shared weights does not see: measured ~1.6x the MLM step time.
TASK_COST = {"mlm": 1.0, "classification": 0.8, "causal": 1.6}


def estimate_seconds(cfg: RunConfig, trainable_params: int | None = None, total_params: int | None = None) -> float | None:
    """A rough duration for this config on this machine, from FLOPs and a device throughput guess."""
    if total_params is None:
        try:
            from core.strategies import estimate_params

            trainable_params, total_params = estimate_params(cfg)
        except TuneboardError:
            return None
    rows = _expected_train_rows(cfg)
    steps = _expected_steps(cfg, rows)
    # Synthetic reviews are ~11 tokens long and batches are padded only to their longest row;
    # for other data the length is unknown until tokenised, so assume moderate sentences.
    typical_tokens = SYNTHETIC_TOKENS_PER_ROW if cfg.data.source == "synthetic" else OTHER_TOKENS_PER_ROW
    tokens_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps * min(
        cfg.model.max_length, typical_tokens
    )
    # Forward is 2·N FLOPs per token; backward adds 4·N for trained weights, ~2·N for activations only.
    trainable_share = (trainable_params or total_params) / max(total_params, 1)
    flops_per_token = total_params * (4 + 2 * trainable_share) * TASK_COST.get(cfg.task, 1.0)
    device = devices.pick_device(cfg.training.device)
    throughput = {"cpu": CPU_FLOPS_PER_CORE * devices.physical_cores(), "mps": 2e12, "cuda": 4e13}[device]
    seconds = steps * tokens_per_step * flops_per_token / throughput
    evals = max(1, steps // cfg.training.eval_steps) if cfg.data.validation_fraction > 0 else 0
    return seconds + evals * 1.5 + 8.0


def _expected_train_rows(cfg: RunConfig) -> int:
    if cfg.data.source == "synthetic":
        rows = int(cfg.data.synthetic.rows * (1 - cfg.data.synthetic.null_fraction))
    else:
        rows = 10_000
    rows = int(rows * (1 - cfg.data.validation_fraction))
    return min(rows, cfg.data.max_rows) if cfg.data.max_rows else rows


def _expected_steps(cfg: RunConfig, rows: int) -> int:
    t = cfg.training
    if t.max_steps:
        return t.max_steps
    per_epoch = max(1, -(-rows // (t.batch_size * t.gradient_accumulation_steps)))
    return max(1, int(per_epoch * t.epochs))


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


def train(
    cfg: RunConfig,
    folder: RunFolder,
    sink: Any,
    stop_event: threading.Event,
    *,
    resume: bool = False,
) -> str:
    """Fine-tune per cfg into folder; returns 'completed' or 'stopped'. Raises on failure."""
    from core.runs import elapsed_seconds

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
            error=None,
        )
        if resume:
            sink.event("resume", int(previous.get("step", 0) or 0), f"Resuming from {checkpoint.name}.")
        else:
            sink.log(f"Starting {cfg.summary()} on {device}.")

    attempt_cfg = cfg
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
        )
        sink.log(f"Run {status} after {elapsed:.0f} s.")
    return status


def _run_once(cfg, folder, sink, stop_event, device, checkpoint, resume, is_main, base_scored):
    _set_threads(device)
    torch.manual_seed(cfg.training.seed)
    prepared = _prepare(cfg, folder, sink, is_main)
    if stop_event.is_set():
        return "stopped", {}, {}

    language_model = cfg.task in ("mlm", "causal")
    probe_texts = cfg.probe_texts()

    def score(model):
        from core.probes import score_probes

        return score_probes(model, prepared.tokenizer, cfg.task, probe_texts, cfg.probes.top_k, label_names=prepared.label_names)

    if is_main and not resume and not base_scored.is_set():
        base_scored.set()  # an OOM retry must not score the base model twice
        sink.log("Scoring the probes with the base model.")
        prepared.model.to(device)
        for result in score(prepared.model):
            sink.probe(0, "base", result["text"], result["predictions"])

    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps * devices.rank_and_world_size()[1]
    sink_callback = SinkCallback(
        sink, stop_event, score_probes=score, language_model=language_model, samples_per_step=samples_per_step
    )
    callbacks: list[Any] = [sink_callback]
    if prepared.unfreezer is not None:
        callbacks.append(GradualUnfreezeCallback(prepared.unfreezer, sink, cfg.strategy.unfreeze_every_steps))

    trainer = _TuneboardTrainer(
        model=prepared.model,
        args=_training_arguments(cfg, folder, device, has_eval=prepared.eval_dataset is not None),
        data_collator=prepared.collator,
        train_dataset=prepared.train_dataset,
        eval_dataset=prepared.eval_dataset,
        processing_class=prepared.tokenizer,
        compute_metrics=_compute_metrics(cfg.task),
        callbacks=callbacks,
        masked_only_mlm=cfg.task == "mlm",
    )
    # The sink is our reporter; the Trainer's own printer would echo raw dicts to stdout.
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    state = trainer.state
    sink_callback.summary.update(step=state.global_step, max_steps=state.max_steps, epoch=round(state.epoch or 0.0, 4))
    if sink_callback.stopped_by_user:
        return "stopped", sink_callback.last_eval, sink_callback.summary

    step = trainer.state.global_step
    if sink_callback.last_eval_step != step and prepared.eval_dataset is not None:
        trainer.evaluate()  # the callback records it, with perplexity, like every evaluation
    final = sink_callback.last_eval
    if is_main:
        for result in score(trainer.model):
            sink.probe(step, "final", result["text"], result["predictions"])
        trainer.save_model(str(folder.final_path))
        sink.log(f"Saved the fine-tuned model to {folder.final_path}.")
    return "completed", final, sink_callback.summary


def _prepare(cfg: RunConfig, folder: RunFolder, sink: Any, is_main: bool) -> _Prepared:
    from core.data.prepare import prepare_data
    from core.models import load_for_task, load_tokenizer
    from core.strategies import GradualUnfreezer, apply_strategy

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
        )
        sink.log(plan.description)

    # The loader caps max_length at what the model can embed (e.g. 512 positions for BERT).
    max_length = int(loaded.report.get("max_length") or max_length)
    train_dataset = _tokenize(data.train, tokenizer, cfg, max_length, "training")
    eval_dataset = None
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
    )


def _tokenize(dataset, tokenizer, cfg: RunConfig, max_length: int, what: str):
    """Tokenise once, without padding: the collator pads each batch to its own longest row.

    Rows too long for the model were already dropped or cut by curation's too-long check
    (core.data.integrity); truncating here only bounds what a slow tokenizer could not cut by text.
    """
    keep_label = cfg.task == "classification" and "label" in dataset.column_names

    def encode(batch):
        encoded = tokenizer(
            batch["text"], truncation=True, max_length=max_length, return_special_tokens_mask=cfg.task == "mlm"
        )
        if keep_label:
            encoded["labels"] = batch["label"]
        return encoded

    columns = dataset.column_names
    tokenized = dataset.map(encode, batched=True, remove_columns=columns, desc=f"Tokenising {what} data")
    return tokenized.map(lambda row: {"length": len(row["input_ids"])})


def _collator(cfg: RunConfig, tokenizer):
    pad_multiple = 8 if torch.cuda.is_available() else None
    if cfg.task == "mlm":
        return DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=cfg.training.mlm_probability, pad_to_multiple_of=pad_multiple
        )
    if cfg.task == "causal":
        return DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=pad_multiple)
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple)


def _compute_metrics(task: str):
    from core.metrics import compute_metrics_for

    return compute_metrics_for(task)


def _training_arguments(cfg: RunConfig, folder: RunFolder, device: str, *, has_eval: bool = True) -> TrainingArguments:
    t = cfg.training
    bf16 = devices.use_bf16(device, t.precision)
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
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        bf16=bf16,
        fp16=t.precision == "fp16" and device == "cuda",
        use_cpu=device == "cpu",
        auto_find_batch_size=t.auto_find_batch_size,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=True,
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
        # Masked-only MLM calls the encoder and head directly, which would bypass DDP's gradient
        # hooks, so it is for single-process runs only.
        self.masked_only_parts = masked_only_parts(self.model) if masked_only_mlm and self.args.world_size == 1 else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.masked_only_parts is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        scaled_items = num_items_in_batch if self.model_accepts_loss_kwargs else None
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
from core.export import export_run  # noqa: E402,F401
