"""RunConfig: the one typed description of a fine-tune, validated and round-tripped through YAML.

The dashboard builds it from widgets (each field's `help` metadata is the widget's help text), the
CLI builds it from a file plus flags, and every run folder stores it as `config.yaml`.

Longer than 500 lines on purpose: the sections, their help texts, their checks and the YAML coercion
are one schema, read and changed together.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from core.errors import ConfigError
from core.files import atomic_write_text

CONFIG_VERSION = 1

TASKS = ("mlm", "classification", "causal", "sft")
# The language-model tasks: judged by their loss (and perplexity), no label head.
LANGUAGE_MODEL_TASKS = ("mlm", "causal", "sft")
# The metric each task is judged by, for the best checkpoint, early stopping and shoot-outs: (name, higher is better).
MAIN_METRIC = {"classification": ("f1", True), "mlm": ("loss", False), "causal": ("loss", False),
               "sft": ("loss", False)}
# The strategy a task starts with in Setup and the CLI when none is given (instruction tuning: adapters).
DEFAULT_STRATEGIES = {"sft": "lora"}
# Chats are ~100 tokens where reviews are ~15, and a 135M-parameter LM costs ~6x MiniLM per token:
# 8 rows keep an sft step at a few seconds on a 2-core CPU (TRL's default per-device batch too).
DEFAULT_BATCH_SIZES = {"sft": 8}
# LoRA's dropout draws a random mask over every adapted layer's input: 16% of an sft step on a 2-core CPU.
# Without it the news preset's 100 steps ended at the same held-out accuracy (92.3%) and a lower eval
# loss (0.050 against 0.056), and an instruction-tuning run rarely sees its rows twice (BENCHMARKS).
DEFAULT_LORA_DROPOUTS = {"sft": 0.0}
# model.max_length left empty follows the data: the length that covers this share of the training
# rows, rounded up to a multiple of 8, capped by the model and by this many tokens (memory grows
# with it, and attention's share with its square).
AUTO_MAX_LENGTH_COVERAGE = 0.99
AUTO_MAX_LENGTH_CAP = 512
STRATEGIES = ("full", "feature-extraction", "freeze-layers", "gradual-unfreeze", "lora", "prompt")
# The strategy that trains nothing: the base model answers the evaluation prompts (instruction tuning only).
PROMPT_STRATEGY = "prompt"
# Few-shot examples before each prompt: beyond this many the prompt outgrows a small model's context.
MAX_FEW_SHOT = 32
DATA_SOURCES = ("synthetic", "file", "hub", "curated")
SYNTHETIC_KINDS = ("reviews", "news")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
KEEP_MODELS = ("best", "last")
# Experiment trackers a run can also log to -> the package each needs.
TRACKERS = {"tensorboard": "tensorboardX", "mlflow": "mlflow"}
# Eval sets beyond this are sampled: an evaluation must not stall the live charts for minutes.
MAX_EVAL_ROWS = 2000
TOO_LONG_ACTIONS = ("truncate", "drop")
CHECK_ACTIONS = ("remove", "flag")

BUNDLED_MODEL = "bundled"
# How a masked-LM text marks the word to guess: BERT's spelling and RoBERTa's. Probes are rewritten
# to the loaded tokenizer's own spelling (core.insight.probes.adapt_mask_token), so either one is accepted.
MASK_SPELLINGS = ("[MASK]", "<mask>")

DEFAULT_MLM_PROBES = (
    "Nike shoes are very [MASK]",
    "Nike athletic wear is known for being very [MASK]",
    "Nike [MASK] shoes are very comfortable",
    "Trousers and Hoodies made by [MASK] are not very expensive",
    "Nike tshirts are famous for being [MASK]",
)
# The seed's masked sentences cut at the mask: a causal LM only predicts what comes next, so the
# mid-sentence masks ("Nike [MASK] shoes are very comfortable") need a masked LM.
DEFAULT_CAUSAL_PROBES = (
    "Nike shoes are very",
    "Nike athletic wear is known for being very",
    "Nike tshirts are famous for being",
)
# Instruction tuning: a probe is a user message, answered by greedy generation.
DEFAULT_SFT_PROBES = (
    "Nike shoes are very comfortable. Is this review positive or negative?",
    "Write a one-sentence review of a Nike hoodie.",
)
DEFAULT_CLASSIFICATION_PROBES = (
    "Nike shoes are very comfortable",
    "Nike tshirts are famous for being cheap and flimsy",
    "Adidas hoodies are known to be stylish",
)

# Instruction tuning on labelled texts: the user's message (core.data.instructions fills it in).
PROMPT_PLACEHOLDERS = ("text", "labels")
DEFAULT_PROMPT_TEMPLATE = (
    "Classify the text into one of: {labels}.\n\nText: {text}\n\nAnswer with the category name only."
)

LEARNING_RATE_AUTO = "auto"
# The learning rate a run trains at when none is set, per (task, strategy): the lowest rate of a grid
# that came within half an accuracy point (classification) or 0.5% eval loss (language models) of the
# grid's best, on the bundled MiniLM, about one epoch of the synthetic reviews (bench/bench_lr_defaults.py,
# BENCHMARKS.md). Head-only and LoRA runs move few weights from a small start, so they take higher
# rates than full fine-tuning; MiniLM's masked- and causal-LM heads start untrained, which is why its
# language-model rates are high (a model with a pretrained head gets less through its size below).
DEFAULT_LEARNING_RATES: dict[tuple[str, str], float] = {
    ("mlm", "full"): 3e-4,
    ("mlm", "feature-extraction"): 3e-3,
    ("mlm", "freeze-layers"): 1e-3,
    ("mlm", "gradual-unfreeze"): 1e-3,
    ("mlm", "lora"): 3e-3,
    ("classification", "full"): 1e-4,
    ("classification", "feature-extraction"): 3e-3,
    ("classification", "freeze-layers"): 3e-4,
    ("classification", "gradual-unfreeze"): 1e-4,
    ("classification", "lora"): 3e-3,
    ("causal", "full"): 1e-3,
    ("causal", "feature-extraction"): 3e-3,
    ("causal", "freeze-layers"): 1e-3,
    ("causal", "gradual-unfreeze"): 1e-3,
    ("causal", "lora"): 3e-3,
    # Instruction tuning: causal LM's rates (SmolLM2 is 6x MiniLM's size, so LoRA trains at 1e-3). Measured
    # on unseen chat data (bench/bench_sft.py, 120 steps of 8, 160 held-out chats): LoRA at 1e-3 on every
    # linear layer (the sft default) reached 100% exact match from the base model's 0% (80% on q/v alone);
    # no SFT grid has been run, so these are not grid-measured.
    ("sft", "full"): 1e-3,
    ("sft", "feature-extraction"): 3e-3,
    ("sft", "freeze-layers"): 1e-3,
    ("sft", "gradual-unfreeze"): 1e-3,
    ("sft", "lora"): 3e-3,
}
# The size the table was measured at (MiniLM-L6). A larger model's rate shrinks with the square root
# of its size, the usual practice (BERT-base 110M: 2e-5..5e-5 where MiniLM takes 1e-4; 7B models
# 1e-5 full, 1e-4 LoRA), but never below a tenth: LoRA on a 7B model still wants about 1e-4.
DEFAULTS_MEASURED_PARAMS = 22_700_000
MIN_SIZE_FACTOR = 0.1


def default_learning_rate(task: str, strategy: str, model_params: int | None = None) -> float:
    """The learning rate a run of this task and strategy trains at when none is set (model size in parameters, or None)."""
    try:
        rate = DEFAULT_LEARNING_RATES[(task, strategy)]
    except KeyError:
        raise ConfigError(f"No default learning rate for task {task!r} with strategy {strategy!r}; "
                          "choose a known task and strategy, or set training.learning_rate.",
                          field="training.learning_rate") from None
    if model_params and model_params > DEFAULTS_MEASURED_PARAMS:
        rate *= max(MIN_SIZE_FACTOR, math.sqrt(DEFAULTS_MEASURED_PARAMS / model_params))
    return float(f"{rate:.1g}")  # one significant digit: 4e-05, not 4.1075e-05


def resolved_learning_rate(cfg: RunConfig, model_params: int | None = None) -> float:
    """The number a run trains at: the one set, else the default for its model size (ConfigError for 'auto').

    The engine calls this once the model is loaded; 'auto' is resolved before that by the range test.
    """
    rate = cfg.training.learning_rate
    if rate is None:
        return default_learning_rate(cfg.task, cfg.strategy.name, model_params)
    if rate == LEARNING_RATE_AUTO:
        raise ConfigError("training.learning_rate is 'auto': run the range test (core.training.lr_finder) to get a number.",
                          field="training.learning_rate")
    return float(rate)


def describe_learning_rate(rate: float | str | None) -> str:
    """A config's learning rate in words: '0.0005', 'auto' or 'default'."""
    if rate is None:
        return "default"
    return rate if isinstance(rate, str) else f"{rate:g}"


def strategies_for(task: str) -> tuple[str, ...]:
    """The strategies a task can use: all of them for instruction tuning, all but prompting for the others."""
    return STRATEGIES if task == "sft" else tuple(s for s in STRATEGIES if s != PROMPT_STRATEGY)


def has_mask(text: str) -> bool:
    """Whether a masked-LM text holds a mask, in either spelling ([MASK] or <mask>)."""
    return any(spelling in text for spelling in MASK_SPELLINGS)


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class ModelConfig:
    source: str = field(
        default=BUNDLED_MODEL,
        metadata=_help(
            "'bundled' (MiniLM-L6) or 'bundled:smollm2-135m' (SmolLM2, a causal LM), both shipped with "
            "Tuneboard and offline; a Hugging Face Hub id such as 'distilbert-base-uncased' or 'gpt2'; or "
            "the path of a local model folder."
        ),
    )
    max_length: int | None = field(
        default=None,
        metadata=_help(
            "Longest input in tokens; longer texts are truncated (or dropped by curation). Empty (the "
            "default) follows the data: long enough for 99% of the training rows, capped by the model's "
            f"positions and at {AUTO_MAX_LENGTH_CAP} tokens to bound memory."
        ),
    )
    trust_remote_code: bool = field(
        default=False,
        metadata=_help("Run Python code shipped with a Hub model. Only for models you trust."),
    )
    allow_pickle_weights: bool = field(
        default=False,
        metadata=_help(
            "Allow loading pickled (.bin) weights when no safetensors exist. Pickles can run code."
        ),
    )


@dataclass
class SyntheticConfig:
    kind: str = field(
        default="reviews",
        metadata=_help(
            "'reviews': product review sentences with a sentiment label (and some empty rows); 'news': news "
            "headlines in eight categories with a second annotator's labels in a 'human' column."
        ),
    )
    rows: int = field(default=2000, metadata=_help("How many rows to generate."))
    seed: int = field(default=0, metadata=_help("Same seed, same sentences."))
    null_fraction: float = field(
        default=0.05, metadata=_help("Share of rows whose text is missing, as in real exports.")
    )


@dataclass
class CurationConfig:
    signal: dict[str, Any] | None = field(
        default=None,
        metadata=_help("Signal tree (AND / OR / NOT of predicates) that rows must pass to be kept."),
    )
    drop_duplicates: bool = field(default=True, metadata=_help("Remove rows whose text repeats."))
    normalise_duplicates: bool = field(
        default=False,
        metadata=_help("Treat texts that differ only in case or whitespace as duplicates."),
    )
    too_long: str = field(
        default="truncate",
        metadata=_help("Texts longer than the model's max length: truncate them or drop the rows."),
    )
    check_action: str = field(
        default="remove",
        metadata=_help("Rows failing an integrity check are removed, or kept and only flagged."),
    )


@dataclass
class DataConfig:
    source: str = field(
        default="synthetic",
        metadata=_help(
            "'synthetic' review sentences, a 'file' (CSV, TSV, JSON, JSONL, Parquet), a 'hub' "
            "dataset by name, or a 'curated' set saved from the Data page."
        ),
    )
    path: str | None = field(
        default=None, metadata=_help("File path (source 'file'/'curated') or Hub dataset name.")
    )
    eval_path: str | None = field(
        default=None, metadata=_help("Optional separate evaluation file; else a split is held out.")
    )
    hub_split: str = field(default="train", metadata=_help("Split to read from a Hub dataset."))
    text_column: str = field(default="text", metadata=_help("Column holding the text."))
    label_column: str = field(
        default="label", metadata=_help("Column holding the label (classification only).")
    )
    validation_fraction: float = field(
        default=0.1, metadata=_help("Share of rows held out for evaluation when no eval file.")
    )
    max_rows: int | None = field(
        default=None, metadata=_help("Use at most this many training rows (None: all).")
    )
    prompt_column: str | None = field(
        default=None,
        metadata=_help(
            "Instruction tuning: the column holding the prompt, when the data has no recognised fields "
            "(messages; prompt and completion; instruction, input and output). Map it with the response column."
        ),
    )
    response_column: str | None = field(
        default=None,
        metadata=_help("Instruction tuning: the column holding the answer the model should learn (with the prompt column)."),
    )
    prompt_template: str = field(
        default=DEFAULT_PROMPT_TEMPLATE,
        metadata=_help(
            "Instruction tuning on labelled texts (a text and a label column, e.g. the synthetic reviews): the "
            "user's message, with {text} for the text and {labels} for the list of labels; the answer is the "
            "label's name. Write {{ and }} for literal braces."
        ),
    )
    train_on_prompt: bool = field(
        default=False,
        metadata=_help(
            "Instruction tuning: also train on the prompt's tokens (system and user turns). Off: the loss is on "
            "the assistant's answers only."
        ),
    )
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)


@dataclass
class StrategyConfig:
    name: str = field(
        default="full",
        metadata=_help(
            "full: train everything. feature-extraction: freeze the backbone, train the head. "
            "freeze-layers: freeze embeddings and the bottom N blocks. gradual-unfreeze: start "
            "with the head, unfreeze one block from the top per phase. lora: low-rank adapters. "
            "prompt (instruction tuning only): no training; the base model answers the evaluation prompts, "
            "with few-shot examples when asked, as the baseline a fine-tune has to beat."
        ),
    )
    freeze_layers: int = field(
        default=3, metadata=_help("freeze-layers: how many bottom blocks (and embeddings) to freeze.")
    )
    unfreeze_every_steps: int = field(
        default=0,
        metadata=_help("gradual-unfreeze: unfreeze one more block every K steps (0: every epoch)."),
    )
    lora_r: int = field(default=8, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=16, metadata=_help("LoRA scaling (alpha)."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA branch."))
    lora_targets: list[str] | None = field(
        default=None,
        metadata=_help("Module names to adapt, e.g. query, value (None: chosen per architecture)."),
    )
    merge_on_export: bool = field(
        default=True, metadata=_help("Export a merged model (adapter folded into the weights).")
    )
    few_shot: int = field(
        default=0,
        metadata=_help(
            f"Instruction tuning: k worked examples (0 to {MAX_FEW_SHOT}), drawn with the seed from the training "
            "set, given as earlier user and assistant turns before each evaluation prompt the base model answers: "
            "the prompt strategy's whole prompt, and every other strategy's 'before' score. The fine-tuned model "
            "answers without them, as it was trained."
        ),
    )


@dataclass
class TrainingConfig:
    # None is "not set": with max_steps 0 the run trains for enough steps for its data by the measured rule in
    # core.training.run_length. Configs saved before the rule existed state 2.0 and keep it.
    epochs: float | None = field(
        default=None,
        metadata=_help(
            "Passes over the training data. Empty (with max steps 0): enough steps for the data by the measured "
            "default rule (at least 100 optimizer steps, and for classifiers 400 rows of each class, at most 30 "
            "passes), evaluated about 8 times, keeping the best and stopping early on a plateau."
        ),
    )
    max_steps: int = field(
        default=0, metadata=_help("Stop after this many optimizer steps (0: use epochs, or the default rule).")
    )
    batch_size: int = field(default=32, metadata=_help("Examples per step on each device."))
    gradient_accumulation_steps: int = field(
        default=1, metadata=_help("Steps whose gradients add up before one optimizer update.")
    )
    # None is "not set": the engine trains at default_learning_rate(task, strategy, model size). Configs
    # saved before the defaults existed state 5e-4 and keep it.
    learning_rate: float | str | None = field(
        default=None,
        metadata=_help(
            "Peak learning rate. Empty: the measured default for the task, strategy and model size (head-only "
            "and LoRA runs take higher rates than full fine-tuning, large models lower). 'auto': a learning-rate "
            "range test on this model, data and strategy picks it when the run starts."
        ),
    )
    lr_scheduler: str = field(default="linear", metadata=_help("How the learning rate decays."))
    warmup_ratio: float = field(
        default=0.06, metadata=_help("Share of steps spent warming the learning rate up.")
    )
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    logging_steps: int = field(default=5, metadata=_help("Log the training loss every N steps."))
    eval_steps: int | None = field(
        default=None,
        metadata=_help("Evaluate and score the probes every N steps. Empty: about 8 evaluations across the run."),
    )
    save_steps: int = field(default=50, metadata=_help("Save a checkpoint every N steps."))
    save_total_limit: int = field(
        default=2, metadata=_help("Keep only the newest K checkpoints of a run.")
    )
    seed: int = field(default=42, metadata=_help("Seed for shuffling, masking and initialisation."))
    mlm_probability: float = field(
        default=0.15, metadata=_help("Masked-LM: share of tokens masked in each batch.")
    )
    device: str = field(default="auto", metadata=_help("auto picks CUDA, then MPS, then CPU."))
    precision: str = field(
        default="auto",
        metadata=_help(
            "auto: bf16 on GPUs that support it and on CPUs with AVX512-BF16 or AMX; fp32 elsewhere "
            "(bf16 on other CPUs is ~160x slower)."
        ),
    )
    auto_find_batch_size: bool = field(
        default=False, metadata=_help("Halve the batch on out-of-memory until it fits.")
    )
    keep_model: str = field(
        default="best",
        metadata=_help(
            "The model a run keeps, probes and exports: 'best' (the evaluation with the best main "
            "metric: F1 for classification, eval loss for language models; checkpoints are then saved at "
            "evaluations, the only ones the Trainer can bring back) or 'last'."
        ),
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata=_help(
            "Stop after this many evaluations without improvement (0: never). Empty: 3 when the run's length "
            "follows the default rule (no epochs or max steps set), else never."
        ),
    )
    log_to: list[str] = field(
        default_factory=list,
        metadata=_help(
            "Also log to experiment trackers: 'tensorboard' (event files in the run folder's tensorboard/) "
            "and 'mlflow' (when installed; to $MLFLOW_TRACKING_URI, else the run folder's mlruns/)."
        ),
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata=_help(
            "Keep the checkpoints after the run completes. They hold optimizer states (about three "
            "times the model's size each) and are only needed to resume, which a completed run cannot."
        ),
    )


@dataclass
class ProbeConfig:
    texts: list[str] | None = field(
        default=None,
        metadata=_help(
            "Sentences scored before and during training. MLM probes contain [MASK]; "
            "None uses the task's defaults."
        ),
    )
    top_k: int = field(default=5, metadata=_help("How many predictions to keep per probe."))


@dataclass
class RunConfig:
    task: str = field(
        default="mlm",
        metadata=_help(
            "mlm: masked-word prediction (BERT family). classification: a label per text. "
            "causal: next-token prediction (GPT-2 style). sft: instruction tuning of a causal LM on prompts "
            "and answers or chats, the loss on the answers."
        ),
    )
    name: str = field(default="", metadata=_help("Optional name shown in the run history."))
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    version: int = field(default=CONFIG_VERSION, metadata=_help("Config format version."))

    # ---- derived views -------------------------------------------------------------------
    def probe_texts(self) -> list[str]:
        """The probes to score: the configured ones, else the task's defaults."""
        if self.probes.texts:
            return list(self.probes.texts)
        return list(
            {
                "mlm": DEFAULT_MLM_PROBES,
                "causal": DEFAULT_CAUSAL_PROBES,
                "classification": DEFAULT_CLASSIFICATION_PROBES,
                "sft": DEFAULT_SFT_PROBES,
            }[self.task]
        )

    def summary(self) -> str:
        """One line for history lists: task, model, strategy, data."""
        data = self.data.source if self.data.source == "synthetic" else f"{self.data.path}"
        return f"{self.task} · {self.model.source} · {self.strategy.name} · {data}"

    # ---- validation ---------------------------------------------------------------------
    def validate(self) -> RunConfig:
        """Check every value; raise ConfigError naming the field and what to do (the first problem)."""
        found = self.problems()
        if found:
            raise found[0]
        return self

    def problems(self) -> list[ConfigError]:
        """Every invalid value, in form order, each naming its field (validate() raises the first).

        All of them, not just the first, so Setup can show each one under its widget at once: a
        probe without [MASK] is flagged even while the data path is still missing.
        """
        found: list[ConfigError] = []
        for check in self._checks():
            try:
                check()
            except ConfigError as err:
                found.append(err)
        return found

    def _checks(self):
        """One callable per independent check; each raises ConfigError."""
        t, d, s = self.training, self.data, self.strategy
        yield lambda: _choice("task", self.task, TASKS)
        yield lambda: _choice("strategy.name", s.name, STRATEGIES)
        yield lambda: _choice("data.source", d.source, DATA_SOURCES)
        yield lambda: _choice("training.lr_scheduler", t.lr_scheduler, SCHEDULERS)
        yield lambda: _choice("training.device", t.device, DEVICES)
        yield lambda: _choice("training.precision", t.precision, PRECISIONS)
        yield lambda: _choice("training.keep_model", t.keep_model, KEEP_MODELS)
        yield self._check_trackers
        yield lambda: _choice("data.curation.too_long", d.curation.too_long, TOO_LONG_ACTIONS)
        yield lambda: _choice("data.curation.check_action", d.curation.check_action, CHECK_ACTIONS)
        yield self._check_model_source
        if self.model.max_length is not None:
            yield lambda: _positive("model.max_length", self.model.max_length, upper=8192)
        if t.max_steps == 0 and t.epochs is not None:
            yield lambda: _positive("training.epochs", t.epochs, upper=10_000)
        yield lambda: _at_least("training.max_steps", t.max_steps, 0)
        yield lambda: _positive("training.batch_size", t.batch_size, upper=65_536)
        yield lambda: _positive("training.gradient_accumulation_steps", t.gradient_accumulation_steps, upper=4096)
        yield self._check_learning_rate
        yield lambda: _between("training.warmup_ratio", t.warmup_ratio, 0.0, 1.0)
        yield lambda: _between("training.weight_decay", t.weight_decay, 0.0, 1.0)
        yield lambda: _positive("training.logging_steps", t.logging_steps)
        if t.eval_steps is not None:
            yield lambda: _positive("training.eval_steps", t.eval_steps)
        yield lambda: _positive("training.save_steps", t.save_steps)
        yield lambda: _positive("training.save_total_limit", t.save_total_limit, upper=1000)
        if t.early_stopping_patience is not None:
            yield lambda: _at_least("training.early_stopping_patience", t.early_stopping_patience, 0)
        if t.early_stopping_patience:
            yield self._check_early_stopping
        yield lambda: _between("training.mlm_probability", t.mlm_probability, 0.01, 0.99)
        yield lambda: _between("data.validation_fraction", d.validation_fraction, 0.0, 0.9)
        if d.max_rows is not None:
            yield lambda: _positive("data.max_rows", d.max_rows)
        yield lambda: _choice("data.synthetic.kind", d.synthetic.kind, SYNTHETIC_KINDS)
        yield lambda: _positive("data.synthetic.rows", d.synthetic.rows, upper=10_000_000)
        yield lambda: _between("data.synthetic.null_fraction", d.synthetic.null_fraction, 0.0, 0.9)
        yield self._check_data_path
        yield self._check_columns
        if self.task == "sft":
            yield self._check_instruction_fields
        yield lambda: _at_least("strategy.freeze_layers", s.freeze_layers, 0)
        yield lambda: _at_least("strategy.unfreeze_every_steps", s.unfreeze_every_steps, 0)
        yield lambda: _positive("strategy.lora_r", s.lora_r, upper=1024)
        yield lambda: _positive("strategy.lora_alpha", s.lora_alpha, upper=4096)
        yield lambda: _between("strategy.lora_dropout", s.lora_dropout, 0.0, 0.9)
        yield self._check_prompting
        yield lambda: _positive("probes.top_k", self.probes.top_k, upper=100)
        if self.task == "mlm":
            yield self._check_mask

    def _check_model_source(self) -> None:
        if not str(self.model.source).strip():
            raise ConfigError("Choose a model: 'bundled', a Hub id or a local folder.", field="model.source")

    def _check_data_path(self) -> None:
        d = self.data
        if d.source in ("file", "hub", "curated") and not (d.path or "").strip():
            what = "Hub dataset name" if d.source == "hub" else "file"
            raise ConfigError(f"Data source '{d.source}' needs a {what}: set data.path.", field="data.path")

    def _check_columns(self) -> None:
        if not self.data.text_column.strip():
            raise ConfigError("Name the text column.", field="data.text_column")
        if self.task == "classification" and not self.data.label_column.strip():
            raise ConfigError("Classification needs a label column.", field="data.label_column")

    def _check_instruction_fields(self) -> None:
        d = self.data
        prompt, response = (d.prompt_column or "").strip(), (d.response_column or "").strip()
        if bool(prompt) != bool(response):
            missing = "data.response_column" if prompt else "data.prompt_column"
            raise ConfigError("Map both the prompt column and the response column, or neither.", field=missing)
        if prompt and prompt == response:
            raise ConfigError("The prompt and the response must be different columns.", field="data.response_column")
        check_prompt_template(d.prompt_template)

    def _check_trackers(self) -> None:
        import importlib.util

        for tracker in self.training.log_to:
            if tracker not in TRACKERS:
                raise ConfigError(f"Unknown tracker {tracker!r}: choose from {', '.join(TRACKERS)}.",
                                  field="training.log_to")
            if importlib.util.find_spec(TRACKERS[tracker]) is None:
                # Said to the CLI (--log-to) and to a loaded config alike: Setup offers only installed trackers.
                raise ConfigError(f"Logging to {tracker} needs the {TRACKERS[tracker]} package: pip install "
                                  f"{TRACKERS[tracker]}, or leave {tracker} out.", field="training.log_to")

    def _check_learning_rate(self) -> None:
        rate = self.training.learning_rate
        if rate is None or rate == LEARNING_RATE_AUTO:
            return
        if isinstance(rate, str):
            raise ConfigError(
                f"training.learning_rate is {rate!r}: give a number such as 1e-4, 'auto' (a range test picks it) "
                "or leave it empty (the default for the task, strategy and model).",
                field="training.learning_rate",
            )
        _positive("training.learning_rate", rate, upper=1.0)

    def _check_prompting(self) -> None:
        s = self.strategy
        if isinstance(s.few_shot, bool) or not isinstance(s.few_shot, int) or not 0 <= s.few_shot <= MAX_FEW_SHOT:
            raise ConfigError(f"strategy.few_shot must be a whole number from 0 to {MAX_FEW_SHOT}, not {s.few_shot!r}.",
                              field="strategy.few_shot")
        if s.name == PROMPT_STRATEGY and self.task != "sft":
            raise ConfigError(
                f"The prompt strategy (no training) answers chat prompts, so it is for instruction tuning only: "
                f"choose task sft, or a training strategy for {self.task}.",
                field="strategy.name",
            )
        if s.few_shot and self.task != "sft":
            raise ConfigError("Few-shot examples are for instruction tuning (task sft) only: set strategy.few_shot to 0.",
                              field="strategy.few_shot")
        if s.name == PROMPT_STRATEGY and self.data.validation_fraction == 0 and not self.data.eval_path:
            raise ConfigError("Prompting is scored on the evaluation prompts: hold out a validation share or give an "
                              "eval file.", field="data.validation_fraction")

    def _check_early_stopping(self) -> None:
        if self.data.validation_fraction == 0 and not self.data.eval_path:
            raise ConfigError(
                "Early stopping watches the evaluations: hold out a validation share or give an eval "
                "file, or set the patience to 0.",
                field="training.early_stopping_patience",
            )

    def _check_mask(self) -> None:
        for text in self.probe_texts():
            if not has_mask(text):
                raise ConfigError(
                    f"Masked-LM probe {text!r} has no [MASK]: add one where the model should guess.",
                    field="probes.texts",
                )

    # ---- (de)serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """Build from plain data; unknown keys and wrong types raise ConfigError."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError("A run config must be a mapping of settings (key: value), not a list or a value.")
        version = data.get("version", CONFIG_VERSION)
        if isinstance(version, int) and version > CONFIG_VERSION:
            unknown = _unknown_keys(cls, data, "")
            if unknown:
                raise ConfigError(
                    f"This config was written by a newer Tuneboard (format {version}, this one reads "
                    f"{CONFIG_VERSION}); unknown settings: {', '.join(unknown)}. Upgrade Tuneboard or "
                    "remove those settings."
                )
        return _build(cls, data, "")

    @classmethod
    def from_yaml(cls, text: str) -> RunConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"The config is not valid YAML{where}: fix the file or save it again from Setup.") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"Cannot read config file {path}: {err}.") from None
        return cls.from_yaml(text)

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_yaml())


def field_help(dotted: str) -> str:
    """Help text of a field by its dotted path, e.g. 'training.learning_rate'."""
    cls: Any = RunConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        match = {f.name: f for f in fields(cls)}[part]
        if i == len(parts) - 1:
            return match.metadata.get("help", "")
        cls = get_type_hints(cls)[part]
    return ""


# ---- helpers -------------------------------------------------------------------------------

def check_prompt_template(template: Any) -> str:
    """The template when it is usable ({text} present, no placeholder but {text} and {labels}); else a ConfigError."""
    import string

    usage = "use {text} for the text and {labels} for the list of labels, and write {{ and }} for literal braces"
    field_name = "data.prompt_template"
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"The prompt template is empty: {usage}.", field=field_name)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ConfigError(f"The prompt template has a stray brace ({err}): {usage}.", field=field_name) from None
    found = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PROMPT_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(f"The prompt template has an unknown placeholder {shown}: {usage}.", field=field_name)
        found.add(name)
    if "text" not in found:
        raise ConfigError(f"The prompt template has no {{text}} placeholder: add it where the text goes ({usage}).",
                          field=field_name)
    return template


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} is {value!r}; choose one of: {', '.join(allowed)}.", field=name)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: Any, upper: float | None = None) -> None:
    if not _is_number(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, not {value!r}.", field=name)
    if upper is not None and value > upper:
        raise ConfigError(f"{name} is {value}; use at most {upper}.", field=name)


def _at_least(name: str, value: Any, lower: float) -> None:
    if not _is_number(value) or value < lower:
        raise ConfigError(f"{name} must be at least {lower}, not {value!r}.", field=name)


def _between(name: str, value: Any, lower: float, upper: float) -> None:
    if not _is_number(value) or not lower <= value <= upper:
        raise ConfigError(f"{name} must be between {lower} and {upper}, not {value!r}.", field=name)


def _unknown_keys(cls: Any, data: dict, prefix: str) -> list[str]:
    hints = get_type_hints(cls)
    unknown = []
    for key, value in data.items():
        if key not in hints:
            unknown.append(prefix + str(key))
        elif dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            unknown += _unknown_keys(hints[key], value, f"{prefix}{key}.")
    return unknown


def _build(cls: Any, data: dict, prefix: str) -> Any:
    hints = get_type_hints(cls)
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {', '.join(prefix + str(k) for k in unknown)}; check the spelling "
            "(see a config saved from Setup for the names)."
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if value is None:
            return hint()
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a section of settings, not {value!r}.", field=name)
        return _build(hint, value, name + ".")
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is not None and type(None) in args:  # Optional[X] or Optional[X | Y]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        # The first type that takes the value wins (float before str: "5e-5" is a number, "auto" a word);
        # when none does, the first type's message says what was expected.
        first_error: ConfigError | None = None
        for option in inner:
            try:
                return _coerce(option, value, name)
            except ConfigError as err:
                first_error = first_error or err
        raise first_error
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, not {value!r}.", field=name)
        return [_coerce(args[0], v, name) for v in value] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, not {value!r}.", field=name)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, not {value!r}.", field=name)
        return value
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{name} must be a whole number, not {value!r}.", field=name)
        return int(value)
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML reads "5e-5" as a string
            except ValueError:
                raise ConfigError(f"{name} must be a number, not {value!r}.", field=name) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, not {value!r}.", field=name)
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name} must be text, not {value!r}.", field=name)
        return str(value)
    return value
