"""Every user-facing string of the app, in one place.

Templates use str.format placeholders; pages fill them in. Keeping them here makes wording
consistent across pages and lets tests assert on the same constants the pages show.

Longer than 500 lines on purpose: all the wording in one file is the point (LLaMA-Factory's lesson).
"""

from __future__ import annotations

APP_TITLE = "Tuneboard"

# ---- password gate (only when $TUNEBOARD_PASSWORD is set) --------------------------------------
AUTH_TITLE = "Tuneboard is locked"
AUTH_CAPTION = "This Tuneboard is shared: enter the password its administrator gave you."
AUTH_PASSWORD = "Password"
AUTH_UNLOCK = "Unlock"
AUTH_WRONG = "Wrong password. Ask the person who runs this Tuneboard for the current one."

# ---- navigation ----------------------------------------------------------------------------
PAGE_SETUP = "Setup"
PAGE_DATA = "Data"
PAGE_TRAIN = "Train"
PAGE_COMPARE = "Compare"
PAGE_RUNS = "Runs"
ICON_SETUP = ":material/tune:"
ICON_DATA = ":material/dataset:"
ICON_TRAIN = ":material/model_training:"
ICON_COMPARE = ":material/compare_arrows:"
ICON_RUNS = ":material/history:"

# ---- sidebar -------------------------------------------------------------------------------
SIDEBAR_ACTIVE_RUN = "Active run"
SIDEBAR_SELECTED_RUN = "Selected run"
SIDEBAR_NO_RUN = "No run yet. Set one up and press Start."
SIDEBAR_STEP = "Step {step} of {max_steps}"
SIDEBAR_STEP_UNKNOWN = "Step {step}"
SIDEBAR_QUEUED = "{count} more queued"
SIDEBAR_PROGRESS_ON_PAGE = "Its progress is shown live on this page."
SIDEBAR_DEVICE = "Device"

STATUS_LABELS = {
    "queued": ":material/schedule: queued",
    "running": ":material/play_circle: running",
    "stopped": ":material/pause_circle: stopped",
    "completed": ":material/check_circle: completed",
    "failed": ":material/error: failed",
    "interrupted": ":material/report: interrupted",
    "cancelled": ":material/cancel: cancelled",
}
STATUS_COLORS = {
    "queued": "gray",
    "running": "blue",
    "stopped": "orange",
    "completed": "green",
    "failed": "red",
    "interrupted": "orange",
    "cancelled": "gray",
}

# ---- shared --------------------------------------------------------------------------------
RUN_PICKER = "Run"
RUN_PICKER_HELP = "Runs from the history, newest first. The choice is kept in the page address."
NO_RUNS = "There are no runs yet. Configure one on **Setup** and press **Start**."
GO_SETUP = "Go to Setup"
UNKNOWN_RUN = "Run {run_id} no longer exists; pick another one."
NOT_AVAILABLE = "—"
UNKNOWN_ERROR = "Something went wrong: {error}. The run log has the details."

# ---- Setup ---------------------------------------------------------------------------------
SETUP_TITLE = "Set up a fine-tune"
SETUP_CAPTION = (
    "Choose a task, a base model, data and a training strategy. The defaults fine-tune the bundled "
    "MiniLM on synthetic product reviews in a few minutes on a laptop CPU."
)
SECTION_TASK = "Task"
SECTION_MODEL = "Base model"
SECTION_DATA = "Data"
SECTION_STRATEGY = "Strategy"
SECTION_TRAINING = "Hyperparameters"
SECTION_PROBES = "Probes"
SECTION_SUMMARY = "Summary"
SECTION_CONFIG_FILE = "Config file"

TASK_LABEL = "Task"
TASK_NAMES = {
    "mlm": "Masked LM (fill in [MASK])",
    "classification": "Classification (label per text)",
    "causal": "Causal LM (next token)",
    "sft": "Instruction tuning (SFT)",
}
# Setup, after the task changes (core.plan.task_switch): what went back to the new task's defaults, what was kept.
TASK_SWITCH_RESET = "For {task}, back to its defaults: {fields}."
TASK_SWITCH_KEPT = "Kept as you set them for the previous task: {fields}."
TASK_SWITCH_CHANGE = "{name} {before} → {after}"
TASK_SWITCH_VALUE = "{name} {value}"
TASK_SWITCH_USE_DEFAULTS = "Use this task's defaults for those too"
TASK_FIELD_NAMES = {
    "strategy.name": "strategy",
    "strategy.lora_dropout": "LoRA dropout",
    "model.max_length": "max length",
    "training.max_steps": "max steps",
    "training.epochs": "epochs",
    "training.batch_size": "batch size",
    "training.learning_rate": "learning rate",
    "training.eval_steps": "evaluation interval",
    "probes.texts": "probe sentences",
}
TASK_FIELD_DEFAULT = "default"
TASK_FIELD_FOLLOWS_DATA = "follows the data"
TASK_FIELD_OFF = "off"
TASK_FIELD_AUTO_LENGTH = "the default length for the data"
TASK_FIELD_PROBES_DEFAULT = "the task's own"
TASK_FIELD_PROBES_CUSTOM = "{n} of your own"
RUN_NAME = "Run name"
RUN_NAME_PLACEHOLDER = "e.g. nike-positive-lora"

MODEL_KIND = "Where the model comes from"
MODEL_KINDS = {
    "bundled": "Bundled (offline)",
    "popular": "Popular Hub model",
    "hub": "Any Hub id",
    "local": "Local folder",
    "run": "A finished run",
}
MODEL_RUN = "Run"
SETUP_CHECKING = "Checking the model and counting its parameters…"
MODEL_RUN_NOTE = (
    "Fine-tunes further from that run's model: a full fine-tune as saved, a LoRA adapter merged into its "
    "own base first. Compare can then show the parent or the original base as \"before\"."
)
MODEL_RUN_NONE = "No completed {task} run yet: finish one, then continue from it here or from the Runs page."
MODEL_POPULAR = "Model"
MODEL_POPULAR_NONE = "No popular model fits this task; use a Hub id or a local folder."
MODEL_CACHED = "cached"
MODEL_NEEDS_NETWORK = "needs network"
MODEL_POPULAR_OPTION = "{id} · {params} · {badge}"
MODEL_HUB_ID = "Hub model id"
MODEL_HUB_PLACEHOLDER = "e.g. distilbert-base-uncased"
MODEL_HUB_CACHED = ":material/check: {id} is in the local Hugging Face cache."
MODEL_HUB_UNCACHED = ":material/cloud_download: {id} is not cached: the run downloads it (needs network)."
MODEL_LOCAL = "Model folder"
MODEL_LOCAL_PLACEHOLDER = "/path/to/a/saved/model"
MODEL_LOCAL_MISSING = "There is no folder at {path}."
MODEL_ADVANCED = "Model options"
MAX_LENGTH = "Max length (tokens)"
MAX_LENGTH_AUTO = "Follows the data"
MAX_LENGTH_FITTED = (
    "Max length: about {max_length} tokens, fitted to 99% of the rows (the run measures it exactly at Start and "
    "logs how many rows are still cut)."
)
TRUST_REMOTE_CODE = "Trust remote code"
ALLOW_PICKLE = "Allow pickled weights"
TRUST_REMOTE_CODE_WARNING = (
    "Trust remote code is on: loading this model runs Python code shipped with it, with your "
    "permissions on this machine. Turn it on only for a model whose authors you trust."
)
ALLOW_PICKLE_WARNING = (
    "Pickled weights are allowed: a .bin file can run code when it is loaded. Prefer a model with "
    "safetensors weights, and allow pickles only for a model you trust."
)

DATA_SOURCE = "Dataset"
DATA_SOURCES = {
    "synthetic": "Synthetic reviews",
    "file": "Upload a file",
    "hub": "Hub dataset",
    "curated": "Curated dataset",
}
SYNTH_KIND = "Generator"
SYNTH_KINDS = {"reviews": "Product reviews (sentiment)", "news": "News headlines (8 categories, a second annotator)"}
SYNTH_ROWS = "Rows"
SYNTH_SEED = "Seed"
SYNTH_NULLS = "Share of empty rows"
SYNTH_SAMPLE = "Sample sentences"
UPLOAD_LABEL = "Upload a table"
UPLOAD_HELP = "CSV, TSV, JSON, JSONL or Parquet. The file is stored next to the runs and never executed."
UPLOAD_BAD_TYPE = "{name} is not a supported file: upload one of {types}."
UPLOAD_EMPTY = "{name} is empty: upload a file with a header row and at least one data row."
UPLOAD_SAVED = "Saved as {path}."
FILE_PATH = "File on this machine"
FILE_PATH_HELP = "Path of the uploaded copy (or any readable file on the server)."
FILE_PREVIEW = "Preview: first {rows} of the rows read"
HUB_DATASET = "Hub dataset name"
HUB_DATASET_PLACEHOLDER = "e.g. imdb"
HUB_SPLIT = "Split"
HUB_PREVIEW = "Load a preview"
HUB_NETWORK_NOTE = "Hub datasets need a network unless they are already in the local cache."
CURATED_PICK = "Curated dataset"
CURATED_NONE = "No curated datasets yet: build one on the **Data** page."
CURATED_OPTION = "{name} · {rows} rows"
TEXT_COLUMN = "Text column"
LABEL_COLUMN = "Label column"
# Setup: instruction data (task sft)
SFT_FORMAT_FOUND = "Instruction data recognised: {shape}."
SFT_PROMPT_COLUMN = "Prompt column"
SFT_RESPONSE_COLUMN = "Response column"
SFT_NOT_MAPPED = "(not mapped)"
SFT_MAP_COLUMNS = ("No prompt and answer fields were recognised: map the prompt and response columns, or pick the "
                   "text and label columns of a labelled set.")
SFT_LABELLED = "Labelled texts: each row becomes the prompt below, answered with the row's label."
SFT_PROMPT_TEMPLATE = "Prompt template"
SFT_TRAIN_ON_PROMPT = "Also train on the prompt"
SFT_ROWS = "{rows:,} conversations to train on."
SFT_EMPTY_ANSWER = "(an empty answer)"
COLUMN_MISSING = "Column {column!r} is not in the data; the columns are: {columns}."
LABEL_CLASSES = "{classes} classes in {rows:,} usable rows; the smallest has {balance:.0%} of the rows of the largest."
LABEL_CLASSES_IMBALANCED = (
    "{classes} classes in {rows:,} usable rows; the smallest has only {balance:.0%} of the rows of the "
    "largest: accuracy will flatter the model, so watch F1."
)
LABEL_ROWS_DROPPED = "{missing:,} rows without a label and {unparseable:,} with an unreadable one will not train."
DATA_PATH_HINTS = {
    "file": "Upload a table (CSV, TSV, JSON, JSONL or Parquet), or enter the path of a file on this machine.",
    "hub": "Enter the name of a Hub dataset, e.g. imdb.",
    "curated": "Pick a dataset saved from the **Data** page.",
}
FIELD_HINTS = {
    "model.source": "Enter a Hub model id such as distilbert-base-uncased, or the path of a model folder.",
}
DATA_ADVANCED = "Split and size"
VALIDATION_FRACTION = "Validation share"
MAX_ROWS = "Max training rows (0: all)"
EVAL_UPLOAD = "Upload an evaluation file (optional)"
EVAL_UPLOAD_HELP = ("Rows the run is evaluated on instead of a held-out share of the training data: the same "
                    "columns as the training data. CSV, TSV, JSON, JSONL or Parquet, stored next to the runs.")
EVAL_PATH_SERVER = "…or an evaluation file on this machine"
EVAL_PATH_HELP = "Path of a file on the server; empty: hold out the validation share of the training data."
EVAL_SAVED = "Evaluation file {name} saved as {path}."
EVAL_ROWS = "{rows:,} rows in the evaluation file, with the columns the run reads."
EVAL_MISSING = "There is no file at {path}: upload the evaluation file again or fix the path."

STRATEGY_LABEL = "Strategy"
STRATEGY_NAMES = {
    "full": "Full fine-tune",
    "feature-extraction": "Feature extraction (head only)",
    "freeze-layers": "Freeze bottom layers",
    "gradual-unfreeze": "Gradual unfreezing",
    "lora": "LoRA adapters",
    "prompt": "Prompting (no training)",
}
FREEZE_LAYERS = "Layers to freeze"
UNFREEZE_EVERY = "Unfreeze a block every N steps"
LORA_R = "Rank r"
LORA_ALPHA = "Alpha"
LORA_DROPOUT = "Dropout"
LORA_TARGETS = "Target modules"
LORA_TARGETS_PLACEHOLDER = "comma separated, empty: chosen per architecture"
LORA_MERGE = "Merge adapter on export"

TRAIN_FOR = "Train for"
TRAIN_FOR_OPTIONS = {"auto": "Enough for the data", "epochs": "Epochs", "steps": "Max steps"}
TRAIN_FOR_AUTO_NOTE = (
    "At least {steps} steps (and {per_class} rows seen per class), two passes for larger data, at most {epochs} "
    "passes; evaluated about {evaluations} times, the best kept, stopping after {patience} evaluations without a "
    "better one."
)
EPOCHS = "Epochs"
MAX_STEPS = "Max steps"
BATCH_SIZE = "Batch size"
GRAD_ACCUM = "Gradient accumulation"
LEARNING_RATE = "Learning rate"
SCHEDULER = "Schedule"
WARMUP = "Warmup share"
WEIGHT_DECAY = "Weight decay"
LOGGING_STEPS = "Log every N steps"
EVAL_STEPS = "Evaluate every N steps"
EVAL_STEPS_AUTO = "~{evaluations} times"  # a placeholder in a third of the form: ~9 characters fit; the help says more
SAVE_STEPS = "Checkpoint every N steps"
SAVE_LIMIT = "Checkpoints kept"
SEED = "Seed"
MLM_PROBABILITY = "Masking share"
DEVICE = "Device"
PRECISION = "Precision"
AUTO_BATCH = "Shrink batch on out-of-memory"
TRAINING_ADVANCED = "Logging, checkpoints and device"

PROBE_TEXTS = "Probe sentences (one per line)"
PROBE_TEXTS_MLM_HINT = "Masked-LM probes need a [MASK] where the model should guess."
# What top-k counts for each task's probes (sft answers by generation: one answer, no top-k).
PROBE_TOP_K = {"mlm": "Top-k words", "causal": "Top-k next tokens", "classification": "Labels shown"}
PROBE_TOP_K_HELP = {
    "mlm": "How many of the most likely words for the [MASK] to keep per probe.",
    "causal": "How many of the most likely next tokens to keep per probe.",
    "classification": "How many labels, most likely first, to show per probe.",
}
PROBE_ANSWERED = "Answered by generation: one answer per probe, so no top-k."
# Where default probes come from, by task, when the user has not typed their own (core.data.probe_texts).
PROBE_TEXTS_FROM_DATA = {
    "classification": "Chosen from your data: one text per class. Edit them to probe texts of your own.",
    "sft": "The first prompts of your data, as the model is asked them in training. Edit them to ask your own.",
    "mlm": "Texts from your data with a late word masked. Edit them to probe your own.",
    "causal": "Texts from your data cut before their last word, for the model to continue. Edit them to probe your own.",
}
PROBE_TEXTS_FROM_HUB = (
    "Left empty, the probes are chosen from the dataset's first rows when the run starts (Setup reads a Hub "
    "dataset only when asked). Type your own to choose them."
)
PROBE_TEXTS_SEPARATOR_HINT = "A probe of several lines ends at a line of three dashes (---)."

PARAMS_TRAINABLE = "Trainable parameters"
PARAMS_TOTAL = "Total parameters"
PARAMS_SHARE = "{share:.1%} of the model"
ESTIMATE = "Time estimate"
ESTIMATE_VALUE = "about {duration}"
ESTIMATE_MEASURED = "From the speed run {run_id} measured with this model, task and strategy on {device}."
ESTIMATE_COMPUTED = (
    "Computed from the model's size, {rows:,} training rows of ~{tokens:.0f} tokens and {device}'s speed; the "
    "first completed run of this kind calibrates it."
)
ESTIMATE_UNKNOWN = "—"
ESTIMATE_WHY_PROBLEMS = "No estimate until the problems below are fixed."
ESTIMATE_WHY_DATA = "No estimate yet: the data's size is known once it is read (Hub datasets are read at Start)."
ESTIMATE_WHY_MODEL = "No estimate yet: the model's size is not known (see the model section)."
DISK_USE = "Disk: up to {peak} while training, {kept} kept once it completes."
# Before Start, on Setup and from `python -m core train`: the rows that will train and why the others will not
# (core.plan.data_plan). The reasons follow core.data.integrity.REMOVAL_REASONS.
ROWS_PLAN = "Data: {rows:,} rows → {usable} {unit} after curation{why} → {train} to train on{held}."
ROWS_PLAN_UNITS = {"rows": "rows", "chats": "conversations"}
ROWS_PLAN_WHY = " (dropped: {reasons})"
ROWS_PLAN_NONE_DROPPED = " (none dropped)"
ROWS_PLAN_HELD = ", {eval} held out for evaluation"
ROWS_PLAN_EVAL_FILE = ", evaluated on the separate evaluation file"
ROWS_PLAN_CAPPED = " (capped by the max training rows)"
ROWS_PLAN_REASONS = {
    "null_text": "{n:,} empty",
    "missing_label": "{n:,} without a label",
    "unparseable_label": "{n:,} with an unreadable label",
    "unexpected_label": "{n:,} with a label the training data lacks",
    "duplicate": "{n:,} duplicates",
    "too_long": "{n:,} too long",
    "signal": "{n:,} by the curation signal",
}
ROWS_PLAN_ABOUT = "~{n:,}"
ROWS_PLAN_FLAGGED = "{n:,} duplicates are kept, only flagged (the integrity checks are set to flag)."
ROWS_PLAN_SAMPLED = "The signal was measured on a sample of {sample:,} rows: the counts after it are estimates."
ROWS_PLAN_AT_START = "The curation signal needs a model: the rows it removes are counted at Start, so fewer may train."
ROWS_PLAN_AT_LEAST = ("In a table this large only exact duplicates were counted: texts that differ only in case or "
                      "spacing are dropped at Start too.")
PLAN_STEPS = "Plan: {steps:,} optimizer steps of {per_step:,} rows, {epochs:g} passes over {rows} training rows ({why})"
PLAN_WHY = {"max_steps": "the max steps set", "epochs": "the epochs set", "auto": "the default length for this data"}
PLAN_EVALUATIONS = ", evaluated {evaluations} times"
PLAN_PROMPTING = "Plan: no training (prompting); the base model answers the evaluation prompts."
PLAN_TIME = "Time: about {duration} ({basis})."
PLAN_BASIS = {"measured": "the speed run {run_id} measured", "computed": "computed from the model's size and {device}"}
SERIES_PREDICTS = "{series}: {label}"
PREDICTED_LINE = "{side} predicts **{label}** ({score:.0%})"
HEADLINE_BEST = "{metrics} (best, step {step})"
KEEP_MODEL = "Model to keep"
KEEP_MODEL_OPTIONS = {"best": "Best evaluation", "last": "Last step"}
EARLY_STOPPING = "Early stopping patience (evaluations)"
EARLY_STOPPING_AUTO = "auto: {patience}"  # as short as EVAL_STEPS_AUTO, for the same reason
KEEP_CHECKPOINTS = "Keep checkpoints after completion"
LOG_TO = "Also log to"
LOG_TO_HELP = ("Open TensorBoard with `tensorboard --logdir runs/<run id>/tensorboard` (pip install tensorboard); "
               "MLflow's file store with `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri runs/<run id>/mlruns` "
               "(pip install mlflow).")
TRACKER_NAMES = {"tensorboard": "TensorBoard", "mlflow": "MLflow"}
TOO_LONG_SHARE = "About {share:.0%}"
TOO_LONG_FEW = "Fewer than 1%"  # "About 0%" read as a contradiction of the note it opens
TOO_LONG_NOTE = (
    "{share} of the texts are longer than the model's max length of {max_length} tokens: {action} "
    "Raise the max length in the model section, or choose on the Data page what happens to them."
)
TOO_LONG_TRUNCATED = "they will be cut to fit."
TOO_LONG_DROPPED = "those rows will be dropped."
CONFIG_INVALID = "Fix the highlighted setting before starting."
CONFIG_OK = "Ready to train."
START = "Start training"
START_HELP = "Queue this config as a new run and open the Train page."
SAVE_YAML = "Download config.yaml"
LOAD_YAML = "Load a config.yaml"
LOAD_YAML_HELP = "A config saved from Setup or taken from a run folder."
LOAD_YAML_OK = "Loaded {name}."
LOAD_YAML_NOT_TEXT = "{name} is not a text file: load a YAML config saved from Setup."
RESET_DEFAULTS = "Reset to defaults"

# ---- Data ----------------------------------------------------------------------------------
DATA_TITLE = "Curate the data"
DATA_CAPTION = (
    "Keep exactly the rows that teach what you want: combine signals with AND / OR / NOT, run the "
    "integrity checks, and use the result as the training set."
)
DATA_FROM_SETUP = "Dataset chosen on Setup: **{source}**. Change it there."
DATA_ROWS = "Rows"
DATA_COLUMNS = "Columns"
DATA_EMPTY_TEXT = "Empty texts"
DATA_PREVIEW = "Preview"
DATA_LOAD_FAILED = "The dataset could not be loaded; fix it on Setup."
SECTION_COLUMNS = "Column mapping"
SECTION_SIGNALS = "Signals"
SIGNALS_CAPTION = (
    "Rows must pass the tree to be kept. Each node shows how many rows pass it on its own "
    "(before the integrity checks)."
)
SIGNALS_EMPTY = "No signals: every row that passes the integrity checks is kept."
SIGNAL_EXAMPLE = "Load the example: Nike products, positive"
SIGNAL_CLEAR = "Clear"
SIGNAL_ADD = "Add"
SIGNAL_ADD_GROUP = "Add group"
SIGNAL_REMOVE = "Remove"
SIGNAL_NEW_KIND = "New signal"
SIGNAL_NOT = "NOT"
SIGNAL_NOT_HELP = "Keep the rows that do NOT pass this node."
SIGNAL_COMBINE = "Combine with"
SIGNAL_OPS = {"and": "AND: all must pass", "or": "OR: any may pass"}
SIGNAL_KINDS = {
    "keywords": "Contains keywords",
    "word_list": "Mentions a word list",
    "regex": "Matches a regex",
    "length": "Length within a range",
    "label": "Label is one of",
    "sentiment": "Sentiment",
    "confidence": "Model is unsure",
}
SIGNAL_WORDS = "Words (comma separated)"
SIGNAL_MATCH = "Match"
SIGNAL_MATCH_OPTIONS = {"any": "any word", "all": "all words"}
SIGNAL_LIST = "Word list"
SIGNAL_CUSTOM_LIST = "my own words"
SIGNAL_PATTERN = "Pattern"
SIGNAL_MIN = "Min"
SIGNAL_MAX = "Max (0: no limit)"
SIGNAL_UNIT = "Unit"
SIGNAL_VALUES = "Values"
SIGNAL_VALUES_HELP = "The column's most common values, with their row counts; rows whose value is one of them pass."
SIGNAL_COLUMN = "Column"
SIGNAL_VALUE_COUNT = "{value} ({count:,} rows)"
SIGNAL_POLARITY = "Polarity"
SIGNAL_METHOD = "Judged by"
SIGNAL_METHODS = {"lexicon": "word lexicon (offline)", "model": "a classifier model"}
SIGNAL_MODEL = "Model"
SIGNAL_MODEL_HELP = (
    "A finished run (a LoRA run's adapter is applied to its base model in memory), or another model "
    "folder with config.json."
)
SIGNAL_MODEL_OTHER = "Another model folder…"
SIGNAL_MODEL_FOLDER = "Model folder"
SIGNAL_MODEL_RUN = "{run_id} · {task} · {strategy}"
SIGNAL_BELOW = "Confidence below"
SIGNAL_PASS = "{count:,} of {total:,} rows pass"
SIGNAL_INVALID = "Incomplete, ignored: {error}"
SIGNAL_COUNT_FAILED = "The signal could not be evaluated."
SECTION_INTEGRITY = "Integrity checks"
INTEGRITY_CAPTION = (
    "Missing, empty and null-like texts ('nan', 'None', 'null') are always checked; for classification "
    "also missing and unparseable labels. Texts longer than the model's max length are handled when "
    "the run starts and knows the tokenizer."
)
DUPLICATES = "Remove duplicate texts"
NORMALISE = "Ignore case and whitespace when comparing"
TOO_LONG = "Texts longer than the model's max length"
TOO_LONG_OPTIONS = {"truncate": "truncate", "drop": "drop the row"}
CHECK_ACTION = "Rows failing a check"
CHECK_ACTION_OPTIONS = {"remove": "remove", "flag": "keep and flag"}
CURATE = "Curate"
CURATE_HELP = "Apply the integrity checks and the signal tree to every row."
CURATE_FIRST = "Press **Curate** to see which rows are kept."
CURATE_STALE = "The settings changed since the last curation: press **Curate** again."
SECTION_RESULT = "Result"
ROWS_IN = "Rows in"
ROWS_KEPT = "Rows kept"
ROWS_KEPT_SHARE = "{share:.0%} of the rows"
ROWS_REMOVED = "Rows removed"
ROWS_FLAGGED = "Rows flagged"
REPORT_TABLE = "Integrity report"
REPORT_CHECK = "Check"
REPORT_COUNT = "Rows"
REPORT_ACTION = "Action"
REPORT_DETAIL = "Why"
REPORT_EXAMPLES = "Examples"
CHECK_NAMES = {
    "null_text": "Missing or empty text",
    "missing_label": "Missing label",
    "unparseable_label": "Unparseable label",
    "unexpected_label": "Unexpected label",
    "duplicate": "Duplicate text",
    "too_long": "Too long",
    "signal": "Fails the signals",
}
MISSING_TEXT = "(missing)"
SAMPLE_KEPT = "Sample of kept rows"
SAMPLE_REMOVED = "Sample of removed rows"
NOTHING_REMOVED = "No row was removed."
NOTHING_KEPT = "No row was kept: loosen the signals."
DATASET_NAME = "Dataset name"
DATASET_NAME_HELP = "Letters, digits, '-', '_' and '.'; saved under the datasets folder with its lineage."
SAVE_DATASET = "Save as dataset"
SAVED_DATASET = "Saved {rows:,} rows as **{name}** ({path})."
USE_AS_TRAINING = "Use this as the training set"
USING_AS_TRAINING = "Setup now trains on the curated dataset **{name}** ({rows:,} rows)."
OPEN_SETUP_PAGE = "Back to Setup"

# ---- Train ---------------------------------------------------------------------------------
TRAIN_TITLE = "Train"
TRAIN_CAPTION = (
    "Runs continue in the background: closing or reloading this tab does not stop them, and any tab "
    "shows the same run."
)
START_NEW = "Start a new run"
START_NEW_HELP = "Queue the config from Setup as a new run."
STOP = "Stop"
STOP_HELP = "Save a checkpoint at the next step and stop. Resume continues from it."
CANCEL = "Cancel"
RESUME = "Resume"
RESUME_HELP = "Continue from the last complete checkpoint."
STOP_REQUESTED = "Stop requested: the run saves a checkpoint and stops at the next step."
STARTED = "Run {run_id} queued."
RESUMED = "Run {run_id} resumes from its last checkpoint."
METRIC_STATUS = "Status"
METRIC_STEP = "Step"
METRIC_EPOCH = "Epoch"
METRIC_ETA = "Time left"
METRIC_SPEED = "Samples / s"
METRIC_ELAPSED = "Elapsed"
PROGRESS_TEXT = "Step {step} of {max_steps} · epoch {epoch:.2f}"
PROGRESS_WAITING = "Waiting for the first step…"
QUEUED_NOTE = "Queued: it starts when the run ahead of it finishes."
LOG_SCALE = "Log scale"
SMOOTHING = "Smoothing"
SMOOTHING_HELP = "Exponential moving average of the training loss (0: raw only)."
CHART_LOSS = "Training loss"
CHART_EVAL = "Evaluation"
CHART_EMPTY = "No points yet: the first ones appear after {steps} steps."
CHART_NO_EVAL = "This run has no validation split (validation fraction 0), so it is not evaluated."
CHART_EMPTY_PLANNED = "No points yet: the run decides when it evaluates once its data is prepared."
# Train: a completed run whose last evaluation still beat every earlier one (core.training.run_length).
STILL_IMPROVING = (
    "**Still improving when it ended.** {metric} went from {before} to {value} at the last of {evaluations} "
    "evaluations, so more training would likely help. Train further starts a new run, with these settings, "
    "from this run's fine-tuned model."
)
TRAIN_FURTHER = "Train further"
TRAIN_FURTHER_HELP = (
    "Start a new run now from this run's fine-tuned model (run:{run_id}), with this run's settings. "
    "To change the settings first, use 'Fine-tune this model further' on the Runs page."
)
RUN_LOG = "Run log"
RUN_LOG_EMPTY = "The log is empty so far."
RUN_FAILED = "The run failed."
RUN_PARAMS = "{trainable} trainable of {total} parameters"

# ---- charts --------------------------------------------------------------------------------
AXIS_STEP = "Step"
AXIS_LOSS = "Loss"
AXIS_LR = "Learning rate"
AXIS_PROBABILITY = "Probability"
AXIS_SCORE = "Score (0-1)"
AXIS_ROWS = "rows"
SERIES_RAW = "loss"
SERIES_SMOOTHED = "smoothed"
SERIES_EVAL_LOSS = "eval loss"
SERIES_PERPLEXITY = "perplexity"
EVAL_LOSS_HOVER = "step %{x}: eval loss %{y:.3f} · perplexity %{customdata:,.3g}"
SERIES_ACCURACY = "accuracy"
SERIES_F1 = "F1"
SERIES_PRECISION = "precision"
SERIES_RECALL = "recall"
# The two models' names wherever they are drawn side by side: Evaluate's loss chart, the report, label bars.
SERIES_BASE_MODEL = "Base model"
SERIES_TUNED_MODEL = "Fine-tuned model"
SERIES_BEFORE = SERIES_BASE_MODEL
SERIES_AFTER = SERIES_TUNED_MODEL
EVENT_NAMES = {
    "unfreeze": "unfreeze",
    "checkpoint": "checkpoint",
    "oom_retry": "OOM retry",
    "resume": "resume",
    "stop": "stop",
    "phase": "phase",
    "warning": "warning",
}
METRIC_NAMES = {
    "loss": "Training loss",
    "eval_loss": "Eval loss",
    "eval_perplexity": "Perplexity",
    "eval_accuracy": "Accuracy",
    "eval_f1": "F1",
    "eval_precision": "Precision",
    "eval_recall": "Recall",
    "eval_exact_match": "Exact match",
    "learning_rate": "Learning rate",
    "grad_norm": "Gradient norm",
}

# ---- Compare -------------------------------------------------------------------------------
COMPARE_TITLE = "Compare before and after"
COMPARE_CAPTION = "What the base model predicted for each probe, next to a checkpoint of the fine-tune."
NO_PROBES = "No probe scores yet: the base model is scored when the run starts."
NO_TUNED_PROBES = "Only the base model has been scored so far; fine-tuned predictions appear at the first evaluation."
STEP_SLIDER = "Checkpoint step"
STEP_SLIDER_HELP = "Move through the evaluations to see how predictions changed during training."
COLUMN_BASE = "Base model"
COLUMN_TUNED = "Fine-tuned · step {step}"
COLUMN_TUNED_PENDING = "Fine-tuned"
COLUMN_TUNED_FINAL = "Fine-tuned · final (step {step})"
COLUMN_TUNED_LATEST = "Fine-tuned · latest saved model"
NEW_TOKENS = "New in the top-{k}: {tokens}"
DROPPED_TOKENS = "Dropped from the top-{k}: {tokens}"
NO_CHANGE = "Same top-{k} tokens as the base model."
LOAD_REPORT_TITLE = "The base model's head was not trained"
LOAD_REPORT_UNTRAINED = (
    "These weights were newly initialised when the model was loaded: {names}. The base model's "
    "predictions are therefore close to random; compare against the fine-tuned model, not the base."
)
LOAD_REPORT_WARNINGS = "Notes from loading the model"
LOAD_REPORT_ALL_NEW = "Every newly initialised weight:"
FREE_PROBE = "Probe any sentence"
FREE_PROBE_PLACEHOLDER_MLM = "e.g. Nike hoodies are really [MASK]"
FREE_PROBE_PLACEHOLDER = "e.g. Nike hoodies are really"
FREE_PROBE_BUTTON = "Probe"
FREE_PROBE_NEEDS_MASK = "Masked-LM probes need a [MASK] where the model should guess."
FREE_PROBE_EMPTY = "Type a sentence to probe."
FREE_PROBE_NO_MODEL = "The run has no fine-tuned model yet: wait for it to finish or stop it first."
FREE_PROBE_RUNNING = "Scoring with the base and fine-tuned models…"
STILL_TRAINING = "The run is still training: each evaluation adds its scores here as it happens."

# ---- Runs ----------------------------------------------------------------------------------
RUNS_TITLE = "Runs"
RUNS_CAPTION = "Every run folder under {root}: compare curves, reopen configs, export models."
COL_RUN = "Run"
COL_NAME = "Name"
COL_STATUS = "Status"
COL_TASK = "Task"
COL_MODEL = "Model"
COL_STRATEGY = "Strategy"
COL_CREATED = "Created"
COL_DURATION = "Duration"
COL_METRICS = "Final metrics"
COL_DISK = "Disk"
RUNS_HIDDEN_COLUMNS = "Task, strategy, model, creation time and disk use: show them with the table's eye button."
RUN_DETAILS = "{task} · {strategy} · {model} · created {created} · {disk} on disk"
OVERLAY = "Overlay curves"
OVERLAY_RUNS = "Runs to overlay"
OVERLAY_METRIC = "Metric"
OVERLAY_EMPTY = "None of the chosen runs has logged {metric} yet."
SELECTED = "Selected run"
OPEN_SETUP = "Open in Setup"
OPEN_SETUP_HELP = "Load this run's config into Setup to rerun or tweak it."
OPEN_TRAIN = "Open in Train"
OPEN_COMPARE = "Open in Compare"
DOWNLOADS = "Downloads"
DOWNLOAD_CONFIG = "config.yaml"
DOWNLOAD_MODEL = "Model (zip)"
DOWNLOAD_ADAPTER = "Adapter (zip)"
DOWNLOAD_MERGED = "Merged model (zip)"
MERGE_LORA = "Merge the LoRA adapter into the model"
PREPARE_EXPORT = "Prepare the model download"
PREPARE_GGUF = "Prepare a GGUF (llama.cpp, Ollama)"
PREPARE_GGUF_HELP = "One F16 GGUF file with the tokenizer and chat template inside, an Ollama Modelfile and the model card; the LoRA is merged first."
DOWNLOAD_GGUF = "GGUF + Modelfile (zip)"
EXPORT_READY = "Ready: {size}."
NO_MODEL_YET = "No trained model in this run yet (it saves one in final/ when it completes)."
COMMANDS = "Rerun it headless"
COMMAND_CPU = "One machine:"
COMMAND_MULTI = "Several GPUs:"
DELETE = "Delete run"
DELETE_CONFIRM = "Delete {run_id} and its folder ({size})? This cannot be undone."
DELETE_YES = "Yes, delete"
DELETE_NO = "Keep it"
DELETED = "Deleted {run_id}."
RESUME_RUN = "Resume run"
CANCEL_RUN = "Cancel run"
CANCEL_RUN_HELP = "Take this run out of the queue before it starts; its folder and config stay."
CANCELLED_RUN = "Cancelled {run_id}."
DURATION_UNKNOWN = "—"

# ---- generation and sequential runs
# Compare: generation side by side (causal-LM runs)
GENERATE_TITLE = "Generate side by side"
GENERATE_CAPTION = (
    "Both models continue the same prompt with the same settings; the text appears as it is generated, "
    "first the base model's, then the fine-tuned model's."
)
GENERATE_PROMPT = "Prompt"
GENERATE_PROMPT_PLACEHOLDER = "e.g. Nike shoes are very"
GENERATE_MAX_NEW = "Max new tokens"
GENERATE_MAX_NEW_HELP = "How many tokens each model adds to the prompt."
GENERATE_TEMPERATURE = "Temperature"
GENERATE_TEMPERATURE_HELP = "0 = greedy (always the likeliest token, same text every time); higher = more varied."
GENERATE_TOP_P = "Top-p"
GENERATE_TOP_P_HELP = "Sample only from the likeliest tokens whose probabilities add up to this (1 = all)."
GENERATE_SEED = "Seed"
GENERATE_SEED_HELP = "The same seed and settings give the same sampled text."
GENERATE_REPETITION = "Repetition penalty"
GENERATE_REPETITION_HELP = ("Scores of tokens already in the text are divided by this, so the models do not loop "
                            "(1 = off; 1.2 is the default).")
GENERATE_NO_REPEAT = "No repeated n-gram"
GENERATE_NO_REPEAT_HELP = "No this many tokens in a row appear twice (0 = off; 3 is the default)."
GENERATE_GUARD_CAPTION = "Repetition guard applied: {parts}."
GENERATE_GUARD_PENALTY = "repetition penalty {penalty:g}"
GENERATE_GUARD_NGRAM = "no {size}-token sequence twice"
GENERATE_GUARD_OFF = "Repetition guard off: small models may repeat themselves."
GENERATE_BUTTON = "Generate"
GENERATE_EMPTY = "Write a prompt for the models to continue."
GENERATE_NO_MODEL = "The run has no fine-tuned model yet: wait for it to finish or stop it first."
GENERATE_LOADING = "Loading the models…"
GENERATE_WAITING = "Waiting for the base model…"
# Compare: the "before" of a run fine-tuned from another run
BEFORE_LABEL = "Compare the fine-tuned model with"
BEFORE_HELP = (
    "This run continued from a finished run. 'Before' can be that run's model (what this run started "
    "from) or the original base model at the start of the chain."
)
BEFORE_PARENT = "The run it continued: {run}"
BEFORE_ORIGINAL = "The original base model: {model}"
COLUMN_BEFORE_PARENT = "Before · run {run}"
COLUMN_BEFORE_ORIGINAL = "Original base · {model}"
BEFORE_SCORING = "Scoring the probes with the original base model…"
# Runs: sequential fine-tuning
FINE_TUNE_FURTHER = "Fine-tune this model further"
FINE_TUNE_FURTHER_HELP = (
    "Start a new run from this run's fine-tuned model (LoRA adapters are merged into their base first), "
    "with this run's settings loaded into Setup to adjust."
)
FINE_TUNE_FURTHER_DISABLED = "Only a completed run with a saved model can be fine-tuned further."
FINE_TUNE_FURTHER_NAME = "{name} (further)"

# ---- Evaluate page and the shared report (core.insight.predictions, core.insight.report) ------------------------
PAGE_EVALUATE = "Evaluate"
ICON_EVALUATE = ":material/fact_check:"
EVALUATE_TITLE = "See what changed, example by example"
EVALUATE_CAPTION = ("Per-example predictions on the evaluation set, stored by the run before training, at each "
                    "evaluation and at the end.")
EVALUATE_NO_PREDICTIONS = ("This run has no per-example predictions. Runs store them when they have an evaluation "
                           "set (a validation fraction above 0 or an evaluation file) and were trained by this "
                           "version of Tuneboard: start the run again from its config to get them.")
EVALUATE_PENDING = "The base model's predictions are stored; the fine-tuned ones arrive with the first evaluation."
EVALUATE_ROWS = "Computed on all {used:,} evaluation rows."
EVALUATE_SAMPLED = "Computed on a fixed sample of {used:,} of the {total:,} evaluation rows."
EVALUATE_TUNED_FINAL = "Fine-tuned (final, step {step})"
EVALUATE_TUNED_EVAL = "Fine-tuned (evaluation at step {step})"
EVALUATE_BASE = "Base model"
CONFUSION_TITLE = "Confusion matrices"
CONFUSION_CAPTION = "Rows are the gold labels, columns the predicted ones; each cell shows its count and its share of the row."
CONFUSION_GOLD = "Gold label"
CONFUSION_PREDICTED = "Predicted label"
PER_CLASS_TITLE = "Per-class metrics"
PER_CLASS_CAPTION = "Change is the fine-tuned value minus the base model's."
COLUMN_LABEL = "Label"
COLUMN_PRECISION = "Precision"
COLUMN_RECALL = "Recall"
COLUMN_F1 = "F1"
COLUMN_SUPPORT = "Support"
COLUMN_CHANGE = "{metric} change"
EXAMPLES_TITLE = "Example browser"
EXAMPLES_FILTER = "Show"
EXAMPLES_FILTERS = {
    "all": "All examples",
    "misclassified": "Misclassified by the fine-tuned model",
    "fixed": "Fixed by fine-tuning",
    "broken": "Broken by fine-tuning",
    "least_confident": "Least confident first",
}
EXAMPLES_COUNT = "{count:,} of {total:,} examples."
EXAMPLES_NONE = "No example matches this filter."
EXAMPLES_DOWNLOAD = "Download as CSV"
COLUMN_TEXT = "Text"
COLUMN_GOLD = "Gold"
COLUMN_BASE_PREDICTION = "Base prediction"
COLUMN_TUNED_PREDICTION = "Fine-tuned prediction"
COLUMN_CONFIDENCE = "Confidence"
COLUMN_HUMAN = "Human label"
HUMAN_TITLE = "Agreement with human labels"
HUMAN_CAPTION = ("Upload texts with human labels (CSV, TSV, JSON, JSONL or Parquet), or take a label column of the "
                 "run's data file. Texts are matched to the evaluation examples exactly (spaces trimmed).")
HUMAN_SOURCE = "Human labels from"
HUMAN_SOURCE_UPLOAD = "An uploaded file"
HUMAN_SOURCE_RUN_DATA = "A column of the run's data file"
HUMAN_UPLOAD = "File with texts and human labels"
HUMAN_TEXT_COLUMN = "Text column"
HUMAN_LABEL_COLUMN = "Human label column"
HUMAN_ONE_COLUMN = "The file has one column: it needs the texts and the human labels in two columns."
HUMAN_NO_RUN_DATA = "The run's data is not a file on this server, so upload the human labels instead."
HUMAN_NO_MATCH = "None of the {rows:,} labelled texts is among this run's evaluation examples: check the text column."
HUMAN_MATCHED = "{matched:,} labelled texts matched evaluation examples ({unmatched:,} did not)."
HUMAN_ACCURACY = "Accuracy"
HUMAN_KAPPA = "Cohen's kappa"
HUMAN_BASE = "Base: {value}"
# A change of a share (accuracy, exact match) in percentage points: "+34.0 pts", never "+34.0%".
POINTS_DELTA = "{points:+.1f} pts"
# The pairs of core.insight.analysis.AGREEMENT_PAIRS, as `python -m core evaluate` names them.
HUMAN_PAIRS = {"base": "Base model vs human", "tuned": "Fine-tuned vs human", "gold": "Human vs gold (the ceiling)"}
HUMAN_PAIR_PROMPTED = "Prompted model vs human"  # a prompt run's one model, in place of the fine-tuned one
HUMAN_PAIR_CAPTIONS = {
    "base": "The base model's labels against the human labels.",
    "tuned": "The model's labels against the human labels; the change is from the base model.",
    "gold": "The human labels against the run's gold labels: a model that always matched gold would agree with "
            "the humans this much.",
}
HUMAN_DISAGREEMENTS = "Disagreements"
# The kinds of core.insight.analysis.DISAGREEMENT_KINDS.
HUMAN_KINDS = {"model_human": "Model ≠ human", "model_gold": "Model ≠ gold", "human_gold": "Human ≠ gold"}
HUMAN_KIND_COUNT = "{kind} ({count:,})"
HUMAN_DISAGREEMENTS_CAPTION = "Model: the fine-tuned model (the base model's label beside it). Gold: the run's label."
HUMAN_DISAGREEMENTS_CAPTION_PROMPTED = "Model: the prompted base model. Gold: the run's label."
HUMAN_NO_DISAGREEMENTS = "No matched text is a disagreement of this kind ({kind})."
HUMAN_READ_ERROR = "Could not read the file: {error}"
LOSS_TITLE = "Per-example loss"
LOSS_CAPTION = "Mean token loss of each evaluation example, for the base and the fine-tuned model."
# What the per-example loss is, by task (core.insight.example_pass); LOSS_CAPTION for any other task.
LOSS_CAPTIONS = {
    "mlm": ("Mean token loss of each evaluation example, on the same fixed 15% of its tokens masked for the base "
            "and the fine-tuned model."),
    "causal": "Mean next-token loss over each evaluation example's tokens, for the base and the fine-tuned model.",
    "sft": "Mean next-token loss over each evaluation example's answer tokens, for the base and the fine-tuned model.",
}
LOSS_AXIS = "Per-example loss"
LOSS_MEDIAN = "Median loss"
IMPROVEMENTS_TITLE = "Largest improvements"
REGRESSIONS_TITLE = "Largest regressions"
NO_IMPROVEMENTS = "No example's loss fell."
NO_REGRESSIONS = "No example's loss rose."
COLUMN_BASE_LOSS = "Base loss"
COLUMN_TUNED_LOSS = "Fine-tuned loss"
COLUMN_LOSS_CHANGE = "Change"
# core.insight.predictions.moved_examples' columns and parts, as Evaluate and the report show them.
LOSS_CHANGE_COLUMNS = {"text": COLUMN_TEXT, "base_loss": COLUMN_BASE_LOSS, "tuned_loss": COLUMN_TUNED_LOSS,
                       "change": COLUMN_LOSS_CHANGE}
MOVED_EXAMPLES = {"improvements": (IMPROVEMENTS_TITLE, NO_IMPROVEMENTS),
                  "regressions": (REGRESSIONS_TITLE, NO_REGRESSIONS)}
DOWNLOAD_REPORT = "Download report"
DOWNLOAD_REPORT_HELP = "One self-contained HTML file (opens offline in any browser) with this run's summary, curves, probes and per-example results."
# The report (core.insight.report): section titles and summary fields.
REPORT_TITLE = "Tuneboard report: {run_id}"
REPORT_GENERATED = "Generated {time} by Tuneboard."
REPORT_SUMMARY = "Summary"
REPORT_CURVES = "Curves"
REPORT_PROBES = "Probes before and after"
REPORT_CLASSIFICATION = "Classification results"
REPORT_TOP_MISCLASSIFIED = "Top misclassified examples (least confident first)"
REPORT_LANGUAGE_MODEL = "Per-example loss"
REPORT_NO_PREDICTIONS = "This run stored no per-example predictions."
REPORT_FIELDS = {
    "status": "Status", "task": "Task", "model": "Model", "data": "Data", "strategy": "Strategy",
    "hyperparameters": "Hyperparameters", "hardware": "Hardware", "started": "Started", "finished": "Finished",
    "duration": "Duration", "parameters": "Trainable / total parameters", "final_metrics": "Final metrics",
    "eval_rows": "Evaluation rows",
}
# Only the setting that decided a run's length: max steps, when set, overrides the epochs.
TRAINING_LENGTH_STEPS = "{steps:,} steps (max steps)"
TRAINING_LENGTH_EPOCHS = "{epochs:g} epochs"
TRAINING_LENGTH_RULE_STEPS = "{steps:,} steps at most (enough for the data, by the default rule)"
TRAINING_LENGTH_RULE = "enough steps for the data (the default rule)"
REPORT_NOT_A_RUN = "{path} is not a run folder (it has no config.yaml): pass a folder under runs/."
REPORT_WRITTEN = "Wrote {path} ({size})."
EXPORT_LOADING = "Exporting run {run_id}: loading its model from {source}…"
EXPORT_WRITTEN = "Wrote {path} ({size}): {files}."

# ---- strategy shoot-out and learning-rate finder ------------------------------------------------
PAGE_STRATEGIES = "Compare strategies"
ICON_STRATEGIES = ":material/leaderboard:"
# Setup: the shoot-out mode.
SWEEP_MODE = "Compare strategies"
SWEEP_MODE_HELP = (
    "Queue one group of runs, one per strategy (and learning rate), on the same data split, seed and "
    "probes, then compare them side by side: quality, time, parameters, disk."
)
SWEEP_STRATEGIES = "Strategies to compare"
SWEEP_STRATEGIES_HELP = "Pick at least two; each becomes one run with the settings above."
SWEEP_LEARNING_RATES = "Learning rates (optional, up to 3)"
SWEEP_LEARNING_RATES_HELP = (
    "Comma-separated, e.g. 1e-4, 5e-4: every strategy runs at each of them. Empty: the learning rate above, or, "
    "when none is set, each strategy's own default (LoRA and head-only runs take higher rates than full "
    "fine-tuning), or with 'auto' a range test per run."
)
SWEEP_RUN_COUNT = "{runs} runs will be queued, one after another."
SWEEP_START = "Start the comparison"
SWEEP_START_HELP = "Queue the group and open the Compare strategies page."
# The group page.
SWEEP_TITLE = "Compare strategies"
SWEEP_CAPTION = (
    "A group of runs that differ only in strategy (and learning rate): same data split, seed and probes. "
    "Quality is the main metric the runs keep: F1 for classification, eval loss for language models; for "
    "instruction tuning, once every finished run scored its generated answers, their F1 (answers from a small "
    "set of labels) or else their exact match, which puts prompting without training on the same scale."
)
SWEEP_NO_GROUPS = "No comparison yet. On Setup, switch on Compare strategies, pick the strategies and start."
SWEEP_PICK_GROUP = "Group"
SWEEP_GROUP_LABEL = "{name} · {task} · {runs} runs · {created}"
SWEEP_STATUS = "Status: {status} ({done} of {runs} runs finished)."
SWEEP_TABLE = "Results"
SWEEP_CURVES = "Curves"
SWEEP_CURVES_WAITING = "The curves appear once a run of the group has logged its first loss."
SWEEP_TRADEOFF_WAITING = "Quality against time appears once a run of the group has finished with an evaluation."
SWEEP_TRADEOFF = "Quality against time"
SWEEP_TRADEOFF_CAPTION = "Each point is a completed run; the line joins the Pareto front: no other run is both faster and better."
SWEEP_RECOMMENDATION = "Recommendation"
SWEEP_STOP = "Stop the group"
SWEEP_STOP_HELP = "Cancel the queued runs and stop the running one with a checkpoint."
SWEEP_RESUME = "Resume the group"
SWEEP_RESUME_HELP = "Resume stopped or interrupted runs and queue the ones that never started."
SWEEP_DELETE = "Delete the group"
SWEEP_DELETE_HELP = "Delete every run of the group and the group itself."
SWEEP_DELETE_CONFIRM = "Yes, delete these runs"
SWEEP_STOPPED = "Stop requested for {count} run(s)."
SWEEP_RESUMED = "Queued {count} run(s) again."
SWEEP_DELETED = "Group {group_id} deleted."
SWEEP_QUEUED = "Group {group_id} queued: {runs} runs."
SWEEP_NOT_FOUND = "There is no group {group_id} (deleted?): pick another one."
SWEEP_AXIS_TIME = "Wall time (s)"
SWEEP_FRONT = "Pareto front"
SWEEP_METRIC_NAMES = {"f1": "F1", "loss": "eval loss", "exact_match": "exact match"}
SWEEP_COLUMNS = {
    "label": "Run", "status": "Status", "eval_loss": "Eval loss", "wall_s": "Wall time (s)",
    "samples_per_s": "Samples/s", "trainable": "Trainable params", "share": "Trainable share",
    "peak_memory": "Peak memory", "disk": "Size on disk", "front": "Pareto front", "run_id": "Run id",
}
# The page's headers for SWEEP_COLUMNS (whose longer names the CLI prints), each with its tooltip.
SWEEP_SHORT_COLUMNS = {
    "wall_s": "Time", "samples_per_s": "Samples/s", "trainable": "Trainable",
    "peak_memory": "Memory", "disk": "Disk", "front": "Front",
}
SWEEP_COLUMN_HELP = {
    "wall_s": "Wall-clock time of the run.",
    "samples_per_s": "Training samples per second.",
    "trainable": "Trainable parameters, and their share of all the model's parameters.",
    "peak_memory": "Peak memory of the training process (GPU memory on a GPU).",
    "disk": "Size of the run's folder on disk.",
    "front": "★: on the Pareto front, where no other run is both faster and better.",
}
SWEEP_NO_RECOMMENDATION = "A recommendation appears once at least two runs have completed with an evaluation."
SWEEP_BEST_IS_FASTEST = (
    "{pick} gives the best {metric} ({value:.4g}), and no other run came within {tolerance:.0%} of it in less time."
)
SWEEP_REACHES = "{pick} reaches {share:.0%} of {reference}'s {metric}"
SWEEP_WITHIN = "{pick} gets within {share:.1%} of {reference}'s {metric} ({value:.4g} against {reference_value:.4g})"
SWEEP_IN_TIME = " in {share:.0%} of the time"
SWEEP_TRAINING_PARAMS = ", training {share:.1%} of the parameters"
SWEEP_CLI_GROUP = "Group file: {path}"
SWEEP_CLI_MEMBER = "[{index}/{runs}] {label}: run {run_id}"
SWEEP_CLI_MEMBER_DONE = "[{index}/{runs}] {label}: {status}"


# ---- bundled models and presets
BUNDLED_PICK = "Bundled model"
BUNDLED_OPTION = "{name} · {params} · {head}"
BUNDLED_TABLE_CAPTION = "Models shipped with Tuneboard (no network needed). The task's default is marked ★."
BUNDLED_COLUMNS = {
    "name": "Model",
    "architecture": "Architecture",
    "params": "Parameters",
    "disk": "On disk",
    "tasks": "Tasks",
    "head": "Head for this task",
    "licence": "Licence",
    "offline": "Offline",
}
BUNDLED_HEAD = {True: "pretrained", False: "new (starts random)", None: "does not serve this task"}
BUNDLED_YES = "yes"
BUNDLED_NO = "no"
BUNDLED_DEFAULT_MARK = "★ "
BUNDLED_UNTRAINED_HEAD = (
    "{name}'s head for {task} starts untrained: its 'before' predictions on the Compare page are random, "
    "not what the model knows."
)
BUNDLED_FIRST_USE = (
    "The first run with {name} converts its bundled file into a safetensors cache (about 25 s, once per machine)."
)
PROBE_TEXTS_SFT_HINT = (
    "Each probe is a user message: the model's greedy answer (up to 32 tokens) is stored before training, at each "
    "evaluation and at the end."
)
PROBE_TEXTS_CAUSAL_HINT = (
    "A causal LM predicts the next word only, so causal probes end where the model should continue "
    "(\"Nike shoes are very\"). A mask in the middle of a sentence (\"Nike [MASK] shoes are very "
    "comfortable\") needs the words on both sides: that takes a masked LM."
)
DEMO_TITLE = "Demos"
DEMO_CAPTION = "Load a whole scenario into this form, then press Start."
DEMO_BUTTONS = {"nike": "Load the Nike demo", "nike-mlm": "Load the Nike demo (masked LM)",
                "news": "Load the news demo (instruction tuning)"}
DEMO_LOADED = "Loaded the {title}."
# Setup: the learning-rate finder.
LR_FINDER_BUTTON = "Suggest a learning rate"
LR_FINDER_HELP = (
    "Runs a learning-rate range test on this model, data and strategy: a few dozen training steps with the "
    "learning rate rising exponentially from 1e-7 to 1, stopping once the loss climbs past 4x its best. The "
    "suggestion is one tenth of the rate at the lowest smoothed loss (clipped to 1e-6 to 1e-2): the fastest "
    "rate that is still safely below where training becomes unstable. It costs at most a third of the run's steps."
)
LR_FINDER_RUNNING = "Running the learning-rate range test on this model, data and strategy…"
LR_FINDER_RESULT = "Suggested learning rate: {rate:.1e} (lowest smoothed loss at {minimum:.1e}; {steps} steps, {seconds:.0f} s)."
LR_FINDER_NO_PICK = (
    "The loss did not fall during the range test, so there is no suggestion: check the data and labels, "
    "or train for longer steps with a larger batch."
)
LR_FINDER_USE = "Use {rate:.1e}"
LR_FINDER_USED = "Learning rate set to {rate:.1e}."
LR_FINDER_RAW = "Loss"
LR_FINDER_SMOOTHED = "Smoothed loss"
LR_FINDER_PICK_MARK = "pick {rate:.1e}"
LR_FINDER_CLI = "Learning-rate range test: {steps} steps, lowest smoothed loss at {minimum:.1e}; using {rate:.1e}."
LR_AUTO_FALLBACK = (
    "The learning-rate range test found no rate where the loss fell, so the run trains at the default learning "
    "rate for its task, strategy and model (the next log line says which). Check the data and labels if the "
    "loss does not fall during training either."
)
LR_AUTO_RESUMED = "Resuming at the learning rate the range test picked when the run started: {rate}."
LR_AUTO_DISTRIBUTED = (
    "learning_rate 'auto' runs its range test on one process: find the rate with a plain `python -m core train "
    "--learning-rate auto` (or Setup's Suggest a learning rate), then launch with that number."
)
LR_AUTO_LABEL = "auto (range test)"
LR_AUTO_HELP = (
    "Find the learning rate when the run starts: a range test of a few dozen steps on this model, data and "
    "strategy (about a third of the run's steps, at most 60). The curve and the pick go to the run folder's "
    "lr_finder.json and run log; without a pick the run uses the default."
)
# The field is narrow: the placeholder is the default rate alone (a longer one was cut off); the help says
# that an empty field means it.
LR_DEFAULT_PLACEHOLDER = "{rate:.0e}"
LR_DEFAULT_PLACEHOLDER_SCALED = "≤ {rate:.0e}"
LR_FIELD_HELP_DEFAULT = (
    " Empty (the grey value shown) means the default, measured per task and strategy (bench_lr_defaults in "
    "BENCHMARKS.md); for a model larger than the bundled MiniLM it is lowered by the model's size (≤). Clear "
    "the field to go back to it."
)
SWEEP_RATE_WORDS = {"default": "each strategy's default", "auto": "auto (a range test per run)"}

# ---- Chat playground (pages/playground.py, core.insight.chat) ----------------------------------
PAGE_CHAT = "Chat"
ICON_CHAT = ":material/forum:"
CHAT_TITLE = "Chat with the base and the fine-tuned model"
CHAT_CAPTION = (
    "Write a message: both models answer it side by side, the text appearing as it is generated (first the base "
    "model, then the fine-tuned one). Each side keeps its own conversation, so it sees its own earlier answers."
)
CHAT_SYSTEM = "System prompt (optional)"
CHAT_SYSTEM_PLACEHOLDER = "e.g. Answer in one word."
CHAT_SYSTEM_HELP = (
    "Sent to both models before the conversation. Empty means none, though some chat templates add a default one."
)
CHAT_MAX_NEW_HELP = (
    "The longest answer, in tokens (at most {limit}); an answer ends sooner when the model writes its end-of-turn token."
)
CHAT_CLEAR = "Clear"
CHAT_CLEAR_HELP = "Forget this run's conversation on both sides."
CHAT_INPUT = "Message both models"
CHAT_START = "No messages yet: write one in the box at the bottom of the page."
CHAT_LOADING = "Loading both models…"
CHAT_EMPTY_ANSWER = "(no answer: the model ended its turn at once)"
CHAT_STILL_TRAINING = "The run is still training: the fine-tuned side answers with its latest saved checkpoint."
CHAT_NOT_GENERATIVE = (
    "Run {run_id} is a {task} run, and only a model that writes text can chat. Pick a causal-LM or instruction-tuning "
    "run above, or set one up on **Setup** with the task *{causal}* or *{sft}*."
)
CHAT_NO_MODEL = (
    "Run {run_id} has no saved model yet, so there is no fine-tuned side to chat with: wait for it to finish, or "
    "stop it on **Train** to save a checkpoint."
)


# ---- Prompting without training, and generated answers before and after (core.training.prompting,
# core.insight.answer_pass; Setup, Evaluate) ------------------------------------------------------------
ZERO_SHOT_WORDS = "zero-shot"
FEW_SHOT_WORDS = "{k}-shot"
# The run log.
PROMPTING_START = "Prompting: no training; the base model answers {rows:,} of the {total:,} evaluation prompts, {shots}."
PROMPTING_DONE = "Prompting: no training; {shots}; {rows:,} eval prompts answered in {seconds:.0f} s; {scores}."
PROMPTING_STOPPED = "Stop requested: prompting stopped between two batches; no answers were stored."
ANSWERS_SCORED = "{who}, {shots}: {scores}, on {rows:,} evaluation prompts answered in {seconds:.0f} s."
ANSWERS_BASE = "Base model"
ANSWERS_TUNED = "Fine-tuned model"
ANSWERS_EXACT_MATCH = "exact match {value:.3f}"
ANSWERS_LABEL_SCORES = " (accuracy {accuracy:.3f}, F1 {f1:.3f}; {without:,} answers named no label)"
# Setup.
FEW_SHOT = "Few-shot examples per prompt"
FEW_SHOT_BEFORE = "Few-shot examples for the base model's score"
PROMPTING_NOTE = (
    "No training: the base model answers every evaluation prompt greedily, after this many worked examples drawn "
    "with the seed from the training data. Its exact match (and accuracy and F1 when the answers are labels) is the "
    "baseline a fine-tune has to beat; compare them side by side with Compare strategies."
)
FEW_SHOT_BEFORE_NOTE = (
    "Before training, the base model answers the evaluation prompts with this many worked examples: its score is "
    "the run's 'before'. The fine-tuned model answers without them, as it was trained."
)
PROMPTING_NO_TRAINING = (
    "Prompting trains nothing, so the length of training, batch, learning rate, schedule, checkpoints and "
    "trackers do not apply. The seed draws the few-shot examples."
)
# Evaluate.
EVALUATE_PROMPTED = "Prompted, no training ({shots})"
EVALUATE_BASE_PROMPTED = "Base model ({shots})"
ANSWERS_TITLE = "Generated answers"
ANSWERS_CAPTION = (
    "Each model's greedy answers to the evaluation prompts, scored against the reference answers: exact match "
    "(case, spacing and end punctuation ignored) and, when the references are a small set of labels, the label "
    "each answer names. The change is from the base model's."
)
ANSWERS_CAPTION_PROMPTED = (
    "The base model's greedy answers to the evaluation prompts, without training, scored against the reference "
    "answers: exact match (case, spacing and end punctuation ignored) and, when the references are a small set of "
    "labels, the label each answer names."
)
ANSWER_METRICS = {"exact_match": "Exact match", "accuracy": "Accuracy (labels)", "f1": "F1 (labels)"}
CONFUSION_NO_LABEL = "{no_label} counts the answers that name none of the labels (or several)."
COLUMN_REFERENCE = "Reference"
COLUMN_BASE_ANSWER = "Base answer"
COLUMN_TUNED_ANSWER = "Fine-tuned answer"
COLUMN_ANSWER = "Answer"
COLUMN_ANSWER_LABEL = "Answer's label"
ANSWER_FILTERS = {
    "all": "All examples",
    "misclassified": "Answered wrongly",
    "fixed": "Fixed by fine-tuning",
    "broken": "Broken by fine-tuning",
    "least_confident": "Least confident first",
}
