"""The public training builder: a run's prepared data, its TrainingArguments and the Trainer that trains it.

    prepared = prepare_run(cfg, folder, sink, is_main)      tokenizer, data, model with its strategy
    trainer = build_trainer(cfg, folder, prepared, device)  TuneboardTrainer, our arguments, no printer

The engine, the learning-rate range test (core.training.lr_finder) and the benchmarks all build their
Trainer here, so each trains exactly the model, data, collator, arguments and masked-only loss of a
real run. The Trainer's private hooks (its samplers, its checkpoint write) are touched in this file only;
the order its training batches come in is core.training.batching's.

No torch or transformers at import. `TuneboardTrainer` subclasses transformers.Trainer, so it is
built on first use (reading `trainer.TuneboardTrainer` builds it; the class is built once).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core import devices
from core.config import MAIN_METRIC, MAX_EVAL_ROWS, RunConfig
from core.errors import DataError
from core.run.folder import RunFolder, atomic_write_json


@dataclass(frozen=True)
class PreparedRun:
    """What a run trains on: the model (its strategy applied), tokenizer, tokenised data and collator."""

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
    train_encoder: Any = None  # the lazy training set's encoder (sft: it counts the prompts it cut)
    probe_texts: list[str] | None = None  # the probes chosen from the rows prepare_data read (None: choose them)


class LogOnlySink:
    """The part of a RunSink that preparing a run talks to; only log lines go anywhere (no run folder status)."""

    def __init__(self, log: Callable[[str], None] | None):
        self._log = log

    def log(self, message: str) -> None:
        """Pass the line on, when there is somewhere to pass it."""
        if self._log is not None:
            self._log(message)

    def set_status(self, **_changes: Any) -> None:
        """No status: what prepares here is not a run."""

    def event(self, *_args: Any) -> None:
        """No events: what prepares here is not a run."""


# ---- preparing -------------------------------------------------------------------------------

def set_threads(device: str) -> None:
    """Train on as many threads as the CPU has physical cores (a GPU run leaves torch's choice)."""
    import torch

    if device == "cpu":
        # Hyper-threads share one core's FPUs; more threads than physical cores only adds contention.
        torch.set_num_threads(max(1, devices.physical_cores()))


def prepare_run(cfg: RunConfig, folder: RunFolder, sink: Any, is_main: bool) -> PreparedRun:
    """Load the tokenizer, data and model, apply the strategy and tokenise; the main process reports to sink."""
    from core.data.lengths import measure
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
        from core.present.numbers import dropped_reasons

        why = dropped_reasons(data.report["dropped"]) if dropped else ""
        sink.log(f"Data: {len(data.train)} training rows, {eval_rows} evaluation rows, {dropped} rows dropped"
                 + (f" ({why})." if why else "."))

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

    # The loader caps max_length at what the model can embed (e.g. 512 positions for BERT); left
    # empty, model.max_length follows the training rows up to that ceiling.
    ceiling = int(loaded.report.get("max_length") or max_length)
    fit = measure(data.train, tokenizer, cfg.task, None if cfg.model.max_length is None else ceiling, ceiling,
                  seed=cfg.training.seed)
    max_length = fit.max_length
    if is_main:
        sink.set_status(max_length=max_length)
        sink.log(fit.log_line(fitted=cfg.model.max_length is None))
    train_encoder = encoder_for(cfg, tokenizer, max_length)
    train_dataset = tokenize(data.train, tokenizer, cfg, max_length, "training", lazy=True, encoder=train_encoder)
    eval_dataset = eval_source = None
    if data.eval is not None and len(data.eval):
        eval_source = data.eval
        if len(eval_source) > MAX_EVAL_ROWS:
            eval_source = eval_source.shuffle(seed=cfg.training.seed).select(range(MAX_EVAL_ROWS))
        eval_encoder = encoder_for(cfg, tokenizer, max_length)
        eval_dataset = tokenize(eval_source, tokenizer, cfg, max_length, "evaluation", encoder=eval_encoder)
        note = getattr(eval_encoder, "truncation_note", lambda _what: None)("evaluation")
        if is_main and note:
            sink.log(note)
    return PreparedRun(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if eval_dataset is not None and len(eval_dataset) else None,
        collator=collator(cfg, tokenizer),
        plan=plan,
        unfreezer=unfreezer,
        label_names=data.label_names,
        data_report=data.report,
        load_report=loaded.report,
        eval_rows=eval_source,
        eval_rows_total=len(data.eval) if data.eval is not None else 0,
        train_encoder=train_encoder,
        probe_texts=data.probe_texts,
    )


def encoder_for(cfg: RunConfig, tokenizer: Any, max_length: int) -> Any:
    """The batch encoder of the task: chats rendered and masked (sft), else plain tokenising."""
    from core.data.prepare import BatchEncoder, ConversationEncoder

    if cfg.task == "sft":
        from core.data.instructions import training_chat_template

        return ConversationEncoder(tokenizer, max_length, train_on_prompt=cfg.data.train_on_prompt,
                                   chat_template=training_chat_template(tokenizer))
    return BatchEncoder(tokenizer, cfg.task, max_length)


def tokenize(dataset: Any, tokenizer: Any, cfg: RunConfig, max_length: int, what: str, *, lazy: bool = False,
             encoder: Any = None) -> Any:
    """Token ids without padding (the collator pads each batch to its own longest row).

    lazy: tokenised batch by batch as the Trainer fetches rows, grouped by character counts, so
    the start does not wait on the whole training set. Else tokenised now (the capped evaluation
    set, which core.insight.predictions reads column by column); its sampler groups by exact token counts.
    Rows too long for the model were already dropped or cut by curation's too-long check
    (core.data.integrity); truncating here only bounds what a slow tokenizer could not cut by text.
    """
    from core.data.prepare import lazily_tokenized

    encoder = encoder or encoder_for(cfg, tokenizer, max_length)
    if lazy:
        return lazily_tokenized(dataset, encoder)
    return dataset.map(encoder, batched=True, remove_columns=dataset.column_names, desc=f"Tokenising {what} data")


def collator(cfg: RunConfig, tokenizer: Any) -> Any:
    """The data collator of the task: dynamic padding, plus the masking of masked-LM batches.

    sft: the encoder already made the labels (-100 off the answers); DataCollatorForSeq2Seq pads them
    with -100 on the tokenizer's padding side, ids and masks as usual.
    """
    import torch
    from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, DataCollatorWithPadding

    pad_multiple = 8 if torch.cuda.is_available() else None
    if cfg.task == "mlm":
        return DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=cfg.training.mlm_probability, pad_to_multiple_of=pad_multiple
        )
    if cfg.task == "causal":
        return DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=pad_multiple)
    if cfg.task == "sft":
        from core.data.instructions import IGNORE_INDEX

        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=pad_multiple)
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple)


def _declare_loss_kwargs(model: Any) -> None:
    """Tell Trainer whether the model really normalises its loss by `num_items_in_batch`.

    Trainer assumes it does whenever forward() takes **kwargs, and then skips dividing by the
    gradient-accumulation steps and multiplies by the number of processes. BERT-family heads take
    **kwargs but average the loss themselves, so losses and gradients came out world_size times
    (or accumulation-steps times) too large. Models that use `self.loss_function` do normalise.
    """
    import inspect

    from core.models.fast_mlm import unwrap_model

    inner = unwrap_model(model)
    try:
        source = inspect.getsource(type(inner).forward)
    except (OSError, TypeError):
        return
    inner.accepts_loss_kwargs = "loss_function" in source or "num_items_in_batch" in source


# ---- the Trainer -----------------------------------------------------------------------------

def metrics_for(task: str, recorder: Any = None) -> Callable[[Any], dict[str, float]] | None:
    """The task's compute_metrics; wrapped by a per-example predictions recorder to keep its logits."""
    from core.training.metrics import compute_metrics_for

    compute = compute_metrics_for(task)
    return recorder.wrap_compute_metrics(compute) if recorder is not None and compute is not None else compute


def training_arguments(cfg: RunConfig, folder: RunFolder, device: str, *, has_eval: bool = True) -> Any:
    """The run's transformers.TrainingArguments: schedule, evaluation, checkpoints, precision, length grouping.

    cfg's length must be numbers (core.training.run_length.with_length: build_trainer applies it).
    """
    from transformers import TrainingArguments

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
        report_to="none",  # the trackers in training.log_to are added as callbacks (core.training.trackers)
        run_name=folder.run_id,  # the name they show the run under
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


def build_trainer(
    cfg: RunConfig,
    folder: RunFolder,
    prepared: PreparedRun,
    device: str,
    *,
    callbacks: Iterable[Any] = (),
    compute_metrics: Callable[[Any], dict[str, float]] | None = None,
    has_eval: bool | None = None,
    trainer_class: type | None = None,
    args: Any = None,
    **extra: Any,
) -> Any:
    """The run's Trainer (TuneboardTrainer unless trainer_class) over prepared, without the stdout printer.

    has_eval: evaluate on prepared.eval_dataset (default: when there is one); args: ready
    TrainingArguments instead of `training_arguments(cfg, folder, device, has_eval=...)`; extra:
    keyword arguments of trainer_class's own.
    """
    from transformers import PrinterCallback

    from core.training.run_length import length_for, with_length

    evaluates = prepared.eval_dataset is not None if has_eval is None else has_eval
    # An empty epochs, eval interval or patience becomes the default rule's number for this data (the
    # engine has done so already, and said so in the run log; doing it again changes nothing).
    cfg = with_length(cfg, length_for(cfg, len(prepared.train_dataset), classes=len(prepared.label_names or ()),
                                      world_size=devices.rank_and_world_size()[1]), has_eval=evaluates)
    trainer = (trainer_class or _trainer_class())(
        model=prepared.model,
        args=args if args is not None else training_arguments(cfg, folder, device, has_eval=evaluates),
        data_collator=prepared.collator,
        train_dataset=prepared.train_dataset,
        eval_dataset=prepared.eval_dataset if evaluates else None,
        processing_class=prepared.tokenizer,
        compute_metrics=compute_metrics,
        callbacks=list(callbacks),
        masked_only_mlm=cfg.task == "mlm",
        answer_only_head=cfg.task == "sft" and not cfg.data.train_on_prompt,
        **extra,
    )
    # The sink is our reporter; the Trainer's own printer would echo raw dicts to stdout.
    trainer.remove_callback(PrinterCallback)
    return trainer


def trainer_eval_order(trainer: Any) -> Callable[[], list[int]]:
    """The row order in which the Trainer evaluates its eval set (its sampler is seeded afresh each time)."""
    def order() -> list[int]:
        # Trainer has no public way to say in which order it will evaluate, and its length-grouped
        # sampler shuffles; asking its own sampler keeps the per-example stages aligned with the
        # logits it hands compute_metrics. `_get_eval_sampler(eval_dataset)` checked against transformers 5.23.0.
        sampler = trainer._get_eval_sampler(trainer.eval_dataset)
        return list(sampler) if sampler is not None else list(range(len(trainer.eval_dataset)))

    return order


def train_sampler(trainer: Any) -> Any:
    """The sampler that orders the Trainer's training rows (length-grouped for a run's data)."""
    # Trainer has no public accessor for it; `_get_train_sampler(train_dataset=None)` checked against
    # transformers 5.23.0 (TuneboardTrainer overrides it, below).
    return trainer._get_train_sampler()


@functools.cache
def _trainer_class() -> type:
    """TuneboardTrainer, built once on first use (its base class needs torch and transformers)."""
    from transformers import Trainer

    from core.models.fast_mlm import answer_only_loss, masked_only_loss, masked_only_parts

    class TuneboardTrainer(Trainer):
        """Trainer with masked-only MLM loss, and an optimizer that knows every parameter.

        Gradual unfreezing needs the latter.

        Trainer builds its optimizer from the parameters that require grad at that moment; a block
        unfrozen later would get gradients but never an update. AdamW skips parameters whose grad is
        None, so registering frozen ones costs nothing until they thaw.
        """

        def __init__(self, *args, masked_only_mlm: bool = False, answer_only_head: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            # Time inside train() that is not its steps: evaluations (their callbacks, such as the probes,
            # included) and checkpoints. A completed run's measured speed leaves them out (core.plan.estimate
            # counts them apart: a run that keeps its best model evaluates and saves about eight times).
            self.evaluation_seconds = 0.0
            self.checkpoint_seconds = 0.0
            self.checkpoints_written = 0
            use_cpu_attention_kernel(self.model, on_cpu=self.args.device.type == "cpu", bf16=self.args.bf16)
            # Masked-only MLM and answer-only SFT call the body and head directly, which would bypass
            # DDP's gradient hooks, so they are for single-process runs only.
            single = self.args.world_size == 1
            self.masked_only_parts = masked_only_parts(self.model) if masked_only_mlm and single else None
            self.answer_only_parts = masked_only_parts(self.model) if answer_only_head and single else None

        def _get_train_sampler(self, train_dataset=None):
            # Trainer reads the length column as a lazy datasets Column and sorts by indexing it, one
            # Arrow query per row; read through Arrow once, the lengths are a plain list. Trainer has no
            # public hook for its training sampler: this overrides the private one, whose signature
            # `_get_train_sampler(self, train_dataset=None)` was checked against transformers 5.23.0.
            from core.data.prepare import length_column
            from core.training.batching import length_grouped_sampler

            dataset = train_dataset if train_dataset is not None else self.train_dataset
            lengths = length_column(dataset, self.args.length_column_name)
            if self.args.train_sampling_strategy != "group_by_length" or lengths is None:
                return super()._get_train_sampler(train_dataset)
            return length_grouped_sampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            parts = self.masked_only_parts or self.answer_only_parts
            if parts is None or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            scaled_items = num_items_in_batch if self.model_accepts_loss_kwargs else None
            head_only_where = masked_only_loss if self.masked_only_parts is not None else answer_only_loss
            # The body and head are called directly, not through model.forward, which is where
            # accelerate applies bf16 autocast; without this the bf16 setting never reached MLM runs.
            with self.accelerator.autocast():
                loss = head_only_where(parts, inputs, scaled_items)
            return (loss, {"loss": loss}) if return_outputs else loss

        def evaluate(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                self.evaluation_seconds += time.perf_counter() - started

        def _save_checkpoint(self, model, trial):
            # Timed like evaluate(), but Trainer has no public hook around the write:
            # `_save_checkpoint(self, model, trial)` checked against transformers 5.23.0.
            started = time.perf_counter()
            try:
                return super()._save_checkpoint(model, trial)
            finally:
                self.checkpoint_seconds += time.perf_counter() - started
                self.checkpoints_written += 1

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

    TuneboardTrainer.__qualname__ = "TuneboardTrainer"  # as if defined at module level (reprs, pickling)
    return TuneboardTrainer


def __getattr__(name: str) -> Any:
    # `trainer.TuneboardTrainer` (or `from core.training.trainer import TuneboardTrainer`) builds the
    # class on first use; tests patch methods on it, which reaches every Trainer build_trainer makes.
    if name == "TuneboardTrainer":
        return _trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from core.models.fast_mlm import unwrap_model

    wanted = cpu_attention_implementation(on_cpu=on_cpu, bf16=bf16)
    inner = unwrap_model(model)
    current = getattr(getattr(inner, "config", None), "_attn_implementation", None)
    if wanted is None or current == wanted or not hasattr(inner, "set_attn_implementation"):
        return
    try:
        inner.set_attn_implementation(wanted)
    except (ValueError, ImportError):  # a remote-code model without the eager path keeps its own
        pass
