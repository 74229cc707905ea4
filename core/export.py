"""Load what a run saved (full model or LoRA adapter) and export it for download."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from core.errors import TrainingError
from core.models import load_saved
from core.runs import RunFolder


def tuned_model_path(folder: RunFolder) -> Path | None:
    """The run's final model, else its newest complete checkpoint, else None."""
    if (folder.final_path / "config.json").exists() or (folder.final_path / "adapter_config.json").exists():
        return folder.final_path
    return folder.last_complete_checkpoint()


@functools.lru_cache(maxsize=4)
def load_saved_model_cached(path: str, task: str, mtime_ns: int) -> tuple[Any, Any]:
    """load_saved, cached by folder and modification time, so a newer checkpoint is picked up."""
    return load_saved(path, task)


def export_run(run_path: str | Path, *, merge: bool = True) -> Path:
    """A folder ready to zip: the run's model (LoRA merged if asked, else the adapter) and config.yaml."""
    folder = RunFolder(Path(run_path))
    source = tuned_model_path(folder)
    if source is None:
        raise TrainingError(f"Run {folder.run_id} has no saved model yet: let it finish, or stop it to save a checkpoint.")
    cfg = folder.config()
    is_adapter = (source / "adapter_config.json").exists()
    target = folder.path / ("export-merged" if merge and is_adapter else "export")
    if (target / "config.yaml").exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    model, tokenizer = load_saved(source, cfg.task)
    from core.strategies import export_model

    export_model(model, tokenizer, target, merge=merge and is_adapter)
    cfg.save(target / "config.yaml")
    return target
