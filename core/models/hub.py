"""The Hugging Face Hub: is it switched off, can it be reached, what is cached, fetching a snapshot.

The one home for these questions: model resolving (core.models.resolve) and Hub datasets
(core.data.hub_datasets) both ask here, so "offline" means the same thing everywhere.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.errors import ModelError

OFFLINE_ALTERNATIVES = (
    "Offline you can use 'bundled' (MiniLM-L6, shipped with Tuneboard) or the path of a local model "
    "folder (one with config.json, e.g. a folder saved by save_pretrained or exported from a run)."
)
# A Hub repo id: "name" or "namespace/name" (letters, digits, '-', '_', '.'; at most 96 characters).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95})?$")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "*.model", "added_tokens.json",
)

_REACHABLE: dict[str, Any] = {"value": None, "at": 0.0}


def hub_offline() -> bool:
    """Whether Hub access is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within `timeout` seconds (cached 60 s)."""
    now = time.monotonic()
    cached = _REACHABLE.get("value")
    if cached is not None and now - _REACHABLE["at"] < 60:
        return bool(cached)
    host, port = endpoint_address()
    result: list[bool] = []

    def probe() -> None:
        # getaddrinfo has no timeout of its own, hence the thread and the join below.
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, name="tuneboard-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    value = bool(result and result[0])
    _REACHABLE.update(value=value, at=now)
    return value


def endpoint_address() -> tuple[str, int]:
    """(host, port) of the Hub endpoint (HF_ENDPOINT, default huggingface.co:443)."""
    from huggingface_hub import constants

    parsed = urlparse(constants.ENDPOINT)
    return parsed.hostname or "huggingface.co", parsed.port or (80 if parsed.scheme == "http" else 443)


def looks_like_hub_id(text: str) -> bool:
    """Whether `text` has the shape of a Hub repo id ("name" or "namespace/name"), not of a path."""
    if text.startswith((".", "/", "~")) or "\\" in text or ".." in text:
        return False
    return bool(_HUB_ID.match(text))


def hub_cache_dir() -> str:
    """The Hub's model cache folder (read at call time: tests and users may point it elsewhere)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def cached_snapshot(hub_id: str) -> Path | None:
    """The cached snapshot folder of a Hub model (with config.json), or None; never touches the network."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(hub_id, cache_dir=hub_cache_dir(), local_files_only=True))
    except Exception:  # any failure here just means "not usable from the cache"
        return None
    return folder if (folder / "config.json").is_file() else None


def check_hub_repo(hub_id: str) -> None:
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
            f"Could not reach the Hub to check '{hub_id}' ({type(err).__name__}). {OFFLINE_ALTERNATIVES}",
            field="model.source",
        ) from None


def download_snapshot(hub_id: str, *, allow_pickle_weights: bool) -> Path:
    """Fetch only what loading needs (config, tokenizer, one weights format) into the Hub cache."""
    from huggingface_hub import snapshot_download

    weights = ["*.safetensors", "*.safetensors.index.json"]
    if allow_pickle_weights:
        weights += ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
    try:
        return Path(
            snapshot_download(
                hub_id,
                cache_dir=hub_cache_dir(),
                allow_patterns=["config.json", "generation_config.json", "*.py", *TOKENIZER_FILES, *weights],
            )
        )
    except Exception as err:  # download failures of any kind become one message
        raise ModelError(
            f"Downloading '{hub_id}' from the Hub failed ({type(err).__name__}: {err}). {OFFLINE_ALTERNATIVES}",
            field="model.source",
        ) from None
