"""Load what a run saved (full model or LoRA adapter) and export it for download."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from core.config import describe_learning_rate
from core.errors import TrainingError
from core.files import atomic_write_text
from core.models import load_saved
from core.models.tasks import PEFT_CLASSES
from core.run.folder import RunFolder


def tuned_model_path(folder: RunFolder) -> Path | None:
    """The run's final model, else its newest complete checkpoint, else None."""
    if (folder.final_path / "config.json").exists() or (folder.final_path / "adapter_config.json").exists():
        return folder.final_path
    return folder.last_complete_checkpoint()


@functools.lru_cache(maxsize=4)
def load_saved_model_cached(path: str, task: str, mtime_ns: int, label_names: tuple[str, ...] | None = None) -> tuple[Any, Any]:
    """load_saved, cached by folder and modification time, so a newer checkpoint is picked up."""
    return load_saved(path, task, label_names)


def run_label_names(folder: RunFolder) -> tuple[str, ...] | None:
    """The class names a classification run trained with (status.json), for loading its adapter."""
    names = folder.status().get("label_names")
    return tuple(str(name) for name in names) if isinstance(names, list) and names else None


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
    model, tokenizer = load_saved(source, cfg.task, run_label_names(folder))
    from core.models.saving import export_model

    export_model(model, tokenizer, target, merge=merge and is_adapter)
    cfg.save(target / "config.yaml")
    atomic_write_text(target / "README.md", model_card(folder, adapter=is_adapter and not merge))
    return target


PIPELINE_TASKS = {"classification": "text-classification", "mlm": "fill-mask", "causal": "text-generation",
                  "sft": "text-generation"}


def model_card(folder: RunFolder, *, adapter: bool = False) -> str:
    """The export's README.md: what the model is, how it was trained and measured, how to load it."""
    cfg, status = folder.config(), folder.status()
    t = cfg.training
    generated = "synthetic news headlines" if cfg.data.synthetic.kind == "news" else "synthetic product reviews"
    data = generated if cfg.data.source == "synthetic" else f"{cfg.data.source}: {cfg.data.path}"
    if cfg.data.source == "synthetic":
        data += f" ({cfg.data.synthetic.rows:,} rows generated, seed {cfg.data.synthetic.seed})"
    if cfg.data.curation.signal:
        data += ", curated by a signal tree"
    metrics = status.get("final_metrics") or {}
    best = status.get("best_metric")
    lines = [
        f"# {cfg.name or folder.run_id}",
        "",
        f"Fine-tuned with Tuneboard (run `{folder.run_id}`).",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| Task | {cfg.task} |",
        f"| Base model | `{cfg.model.source}` |",
        f"| Data | {data} |",
        f"| Strategy | {cfg.strategy.name} |",
        f"| Epochs / max steps | {t.epochs:g} / {t.max_steps or 'by epochs'} |",
        f"| Batch size | {t.batch_size} × {t.gradient_accumulation_steps} accumulation |",
        f"| Learning rate | {describe_learning_rate(status.get('learning_rate') or t.learning_rate)} ({t.lr_scheduler}, warmup {t.warmup_ratio:g}) |",
        f"| Seed | {t.seed} |",
        f"| Hardware | {status.get('device') or 'not recorded'} |",
        f"| Training time | {float(status.get('elapsed_s') or 0):.0f} s |",
    ]
    if best:
        lines.append(f"| Kept checkpoint | best {best.get('name')} at step {best.get('step')} |")
    if metrics:
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {key.removeprefix('eval_')} | {value:.4g} |" for key, value in metrics.items()
                  if isinstance(value, (int, float))]
    labels = status.get("label_names")
    if cfg.task == "classification" and labels:
        lines += ["", "Labels: " + ", ".join(f"`{name}`" for name in labels) + "."]
    lines += ["", "## Use it", "", "```python"]
    if adapter:
        lines += [
            f"from peft import {PEFT_CLASSES[cfg.task]}",
            "from transformers import AutoTokenizer",
            "",
            f'model = {PEFT_CLASSES[cfg.task]}.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        ]
    else:
        example = cfg.probe_texts()[0]
        lines += [
            "from transformers import pipeline",
            "",
            f'model = pipeline("{PIPELINE_TASKS[cfg.task]}", model="path/to/this/folder")',
            f"print(model({example!r}))",
        ]
    lines += ["```", "", "`config.yaml` in this folder is the run's full Tuneboard config: "
              "`python -m core train --config config.yaml` trains it again.", ""]
    return "\n".join(lines)
