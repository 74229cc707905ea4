"""Every user-facing string of the app, in one place.

Templates use str.format placeholders; pages fill them in. Keeping them here makes wording
consistent across pages and lets tests assert on the same constants the pages show.
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
}
RUN_NAME = "Run name"
RUN_NAME_PLACEHOLDER = "e.g. nike-positive-lora"

MODEL_KIND = "Where the model comes from"
MODEL_KINDS = {
    "bundled": "Bundled MiniLM (offline)",
    "popular": "Popular Hub model",
    "hub": "Any Hub id",
    "local": "Local folder",
}
MODEL_BUNDLED_NOTE = (
    "all-MiniLM-L6-v2 (22.7M parameters) ships with Tuneboard and works without a network. "
    "It is a sentence-embedding model: its masked-LM head starts untrained, which the Compare page "
    "points out."
)
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
EVAL_PATH = "Separate evaluation file (optional)"

STRATEGY_LABEL = "Strategy"
STRATEGY_NAMES = {
    "full": "Full fine-tune",
    "feature-extraction": "Feature extraction (head only)",
    "freeze-layers": "Freeze bottom layers",
    "gradual-unfreeze": "Gradual unfreezing",
    "lora": "LoRA adapters",
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
TRAIN_FOR_OPTIONS = {"epochs": "Epochs", "steps": "Max steps"}
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
PROBE_TOP_K = "Top-k predictions"

PARAMS_TRAINABLE = "Trainable parameters"
PARAMS_TOTAL = "Total parameters"
PARAMS_SHARE = "{share:.1%} of the model"
ESTIMATE = "Time estimate"
ESTIMATE_VALUE = "about {minutes} min"
ESTIMATE_DEVICE = "on {device}"
ESTIMATE_UNKNOWN = "Estimate unavailable"
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
SIGNAL_VALUES = "Values (comma separated)"
SIGNAL_POLARITY = "Polarity"
SIGNAL_METHOD = "Judged by"
SIGNAL_METHODS = {"lexicon": "word lexicon (offline)", "model": "a classifier model"}
SIGNAL_MODEL = "Model folder or run id"
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
CHART_LR = "Learning rate"
CHART_EMPTY = "No points yet: the first ones appear after {steps} steps."
CHART_NO_EVAL = "This run has no validation split (validation fraction 0), so it is not evaluated."
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
SERIES_BEFORE = "base"
SERIES_AFTER = "fine-tuned"
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
