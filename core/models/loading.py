"""The one model loader: task -> Auto class, a tokenizer that can pad, and the load report.

Every model Tuneboard loads comes through here:
    load_for_task   the base model of a run (engine, Compare-page base probes), with a load report
                    saying which weights were newly initialised, so nobody demos a random head as
                    "the original model"
    load_saved      what a run saved: a full model or a LoRA adapter on its base (export, Compare
                    page, curation signals)
    load_tokenizer  the tokenizer alone and the model's length limit (the curation's too-long check)
    empty_model     a model on the meta device, shapes only (parameter estimates on the Setup page)

Rules: safetensors only unless the user allows pickled weights (pickles can run code when loaded);
remote code only when the user enables it for that model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import AUTO_MAX_LENGTH_CAP, TASKS, ModelConfig
from core.errors import ModelError
from core.models import gguf
from core.models.resolve import ResolvedModel, local_folder, resolve_model
from core.models.saving import export_model, quiet_transformers
from core.models.tasks import (
    PEFT_CLASSES,
    TASK_NAMES,
    auto_class,
    needs_decoder_switch,
    saved_task,
    supported_tasks,
)

# Past this many positions a tokenizer's model_max_length is transformers' "no limit" sentinel.
_NO_LIMIT = 1_000_000


@dataclass
class LoadedModel:
    """A model loaded for a task, its tokenizer, and the JSON-serialisable load report."""

    model: Any
    tokenizer: Any
    report: dict[str, Any] = field(default_factory=dict)


# ---- the tokenizer ---------------------------------------------------------------------------

def ensure_pad_token(tokenizer, warnings: list[str] | None = None) -> bool:
    """Batches need padding: reuse EOS as the pad token (GPT-2 style), else add one. True if added.

    When a token is added the model's embeddings must grow to match (load_for_task does it).
    """
    if tokenizer.pad_token is not None:
        return False
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        if warnings is not None:
            warnings.append(
                f"The tokenizer has no pad token; using its end-of-text token {tokenizer.eos_token!r} for padding."
            )
        return False
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    if warnings is not None:
        warnings.append("The tokenizer has no pad or end-of-text token; added a new [PAD] token (embeddings resized).")
    return True


def position_limit(config: Any, tokenizer: Any = None) -> int | None:
    """How many tokens the model can embed: its positions, or the tokenizer's limit; None if unknown."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(config, "n_positions", None)]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < _NO_LIMIT:
        limits.append(tokenizer_limit)
    limits = [n for n in limits if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    return min(limits) if limits else None


def effective_max_length(model_cfg: ModelConfig, model, tokenizer, warnings: list[str] | None = None) -> int:
    """model.max_length capped by what the model can embed (its positions / the tokenizer's limit)."""
    return _capped_max_length(model_cfg, getattr(model, "config", None), tokenizer, warnings)


def _capped_max_length(model_cfg: ModelConfig, config: Any, tokenizer: Any, warnings: list[str] | None) -> int:
    if model_cfg.max_length is None:  # follows the data (core.data.lengths): this is only its ceiling
        return min(position_limit(config, tokenizer) or AUTO_MAX_LENGTH_CAP, AUTO_MAX_LENGTH_CAP)
    limit = position_limit(config, tokenizer) or model_cfg.max_length
    if model_cfg.max_length > limit:
        if warnings is not None:
            warnings.append(
                f"model.max_length {model_cfg.max_length} is more than this model's {limit} positions; "
                f"texts are cut to {limit} tokens."
            )
        return limit
    return model_cfg.max_length


def load_tokenizer(model_cfg: ModelConfig) -> tuple[Any, int]:
    """(tokenizer with a pad token, max length in tokens) of the configured model, without its weights.

    Cheap (config and tokenizer files only, once the model is local): what the curation's too-long
    check needs before the model itself is loaded.
    """
    resolved = resolve_model(model_cfg.source)
    with quiet_transformers():
        folder = _model_folder(resolved, model_cfg)
        config = _load_config(folder, model_cfg)
        tokenizer = _load_tokenizer(folder, model_cfg)
    ensure_pad_token(tokenizer)
    return tokenizer, _capped_max_length(model_cfg, config, tokenizer, None)


# ---- loading for a task ----------------------------------------------------------------------

def load_for_task(model_cfg: ModelConfig, task: str, *, label_names: list[str] | None = None) -> LoadedModel:
    """Load model + tokenizer for `task` with the Auto classes and build the load report."""
    if task not in TASKS:
        raise ModelError(f"Unknown task {task!r}; choose one of: {', '.join(TASKS)}.", field="task")
    resolved = resolve_model(model_cfg.source)
    parent_run = check_parent_run(resolved, task)
    with quiet_transformers():
        folder = _model_folder(resolved, model_cfg)
        config = _load_config(folder, model_cfg)
        model_type = getattr(config, "model_type", "unknown")
        tasks = _check_task(config, task)
        weights_format = _check_weights(folder, model_cfg)
        tokenizer = _load_tokenizer(folder, model_cfg)
        warnings: list[str] = []
        converted = gguf.take_conversion_note(folder)  # why this first load was slow
        if converted:
            warnings.append(converted)
        if task == "mlm" and tokenizer.mask_token is None:
            raise ModelError(
                f"The tokenizer of {resolved.display} has no mask token, so it cannot do masked-LM. "
                "Choose task 'causal' or 'classification', or a BERT-family model.",
                field="task",
            )
        added_pad = ensure_pad_token(tokenizer, warnings)
        extra: dict[str, Any] = {}
        if needs_decoder_switch(config, task, tasks):
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
    if parent_run is not None:
        report["parent_run"] = parent_run
    return LoadedModel(model=model, tokenizer=tokenizer, report=report)


def empty_model(model_cfg: ModelConfig, task: str, *, num_labels: int = 2):
    """The model `task` would load, on the meta device: shapes and parameter names only, no memory."""
    import torch

    resolved = resolve_model(model_cfg.source)
    with quiet_transformers():
        # Online and not cached, location is a Hub id: the config alone is a small download.
        if resolved.gguf:  # a bundled GGUF not converted yet: its header holds the config
            config = gguf.header_config(Path(resolved.gguf))
        elif check_parent_run(resolved, task) is not None:
            config = _load_config(run_model_folder(resolved), model_cfg)
        else:
            config = _load_config(resolved.location, model_cfg)
        tasks = _check_task(config, task)
        if task == "classification":
            config.num_labels = num_labels
        if needs_decoder_switch(config, task, tasks):
            config.is_decoder = True
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            return auto_class(task).from_config(config, trust_remote_code=model_cfg.trust_remote_code)


def _check_task(config: Any, task: str) -> list[str]:
    """The tasks this config supports; ModelError when `task` is not one of them."""
    model_type = getattr(config, "model_type", "unknown")
    tasks = supported_tasks(model_type, getattr(config, "auto_map", None))
    if task not in tasks:
        can = ", ".join(TASK_NAMES[t] for t in tasks) or "none of Tuneboard's tasks"
        raise ModelError(
            f"A {model_type} model cannot be loaded for {TASK_NAMES[task]} (it does not support that "
            f"task): it supports {can}. Choose another task or model (e.g. a BERT-family model for "
            "masked-LM, GPT-2 for causal).",
            field="model.source",
        )
    return tasks


def _load_config(folder: str | Path, model_cfg: ModelConfig):
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


def _load_model(folder: Path, task: str, model_cfg: ModelConfig, label_names, weights_format: str, extra: dict):
    kwargs: dict[str, Any] = {
        "output_loading_info": True,
        "use_safetensors": weights_format == "safetensors",
        "trust_remote_code": model_cfg.trust_remote_code,
        **extra,
    }
    if task == "classification":
        names = [str(n) for n in label_names] if label_names else ["0", "1"]
        kwargs.update(
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            # A checkpoint fine-tuned for another label set has a classifier of another shape:
            # start a fresh one instead of failing (reported as newly initialised).
            ignore_mismatched_sizes=True,
        )
    try:
        model, info = auto_class(task).from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(
            f"Loading {model_cfg.source} for {TASK_NAMES[task]} failed: {_first_line(str(err))}.",
            field="model.source",
        ) from None
    return model, info


def _build_report(model_cfg, resolved: ResolvedModel, model, task, info, tasks, weights_format, warnings) -> dict[str, Any]:
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


# ---- what a run saved ------------------------------------------------------------------------

def load_saved(path: str | Path, task: str | None = None, label_names: Sequence[str] | None = None) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a folder a run saved; a LoRA adapter loads onto its base.

    `task` None reads it from the folder's config.json. Only safetensors are loaded: Tuneboard
    itself never saves pickles. An adapter folder has no config.json, so a classification adapter
    needs the run's `label_names` to rebuild its head with the right classes and names.
    """
    path = Path(path)
    try:
        if (path / "adapter_config.json").exists():
            import peft

            if task is None:
                raise ModelError(f"{path} holds a LoRA adapter: say which task it was trained for.")
            labels = {}
            if task == "classification" and label_names:
                names = [str(name) for name in label_names]
                labels = {"num_labels": len(names), "id2label": dict(enumerate(names)),
                          "label2id": {name: i for i, name in enumerate(names)}}
            model = getattr(peft, PEFT_CLASSES[task]).from_pretrained(str(path), **labels)
            base_path = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        else:
            task = task or saved_task(path)
            with quiet_transformers():
                model = auto_class(task).from_pretrained(str(path), use_safetensors=True)
            base_path = None
        tokenizer_path = path if (path / "tokenizer_config.json").exists() else base_path
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"Cannot load the saved model in {path}: {err}") from None
    # A run saves the tokenizer it trained with, pad token included; this covers folders from elsewhere.
    if ensure_pad_token(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.eval()
    return model, tokenizer


def load_adapter_merged_into(base_model: Any, base_tokenizer: Any, adapter: str | Path) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer): the LoRA adapter folder `adapter` merged into a copy of `base_model`,
    the model in memory it was trained on; `base_model` itself is left as it was.

    load_saved reads an adapter's base weights from disk again; this copies them in memory instead.
    """
    import copy

    import peft
    from transformers import AutoTokenizer

    adapter = Path(adapter)
    try:
        model = peft.PeftModel.from_pretrained(copy.deepcopy(base_model), str(adapter)).merge_and_unload()
        has_tokenizer = (adapter / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(str(adapter)) if has_tokenizer else copy.deepcopy(base_tokenizer)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelError(f"Cannot load the saved model in {adapter}: {err}") from None
    if ensure_pad_token(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.eval()
    return model, tokenizer


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.rstrip(".")


# ---- a finished run as the base model ('run:FOLDER') -----------------------------------------

def check_parent_run(resolved: ResolvedModel, task: str) -> dict[str, Any] | None:
    """For a 'run:' source, what a child run records about its parent; ModelError if its task differs. None otherwise."""
    if resolved.kind != "run":
        return None
    from core.models.resolve import original_base_source
    from core.run.folder import RunFolder

    final = Path(resolved.location)
    parent = RunFolder(final.parent)
    try:
        cfg = parent.config()
    except Exception as err:  # a config edited by hand into something unreadable
        raise ModelError(f"Cannot read the config of run {parent.run_id}: {err}", field="model.source") from None
    if cfg.task != task:
        raise ModelError(
            f"Run {parent.run_id} fine-tuned a {TASK_NAMES[cfg.task]} model, so a {TASK_NAMES[task]} run cannot "
            f"continue from it. Set the task to {TASK_NAMES[cfg.task]}, or choose a {TASK_NAMES[task]} run.",
            field="model.source",
        )
    return {
        "id": parent.run_id,
        "path": str(parent.path),
        "task": cfg.task,
        "strategy": cfg.strategy.name,
        "model_source": str(cfg.model.source),
        "original_base": original_base_source(str(cfg.model.source)),
        "adapter": (final / "adapter_config.json").is_file(),
    }


def run_model_folder(resolved: ResolvedModel) -> Path:
    """A plain model folder for a 'run:' source: the run's final/, or its LoRA adapter merged into its base.

    The merged model is written once into the parent's export-merged/ (where the Runs page's merged
    download goes too) and reused while it is newer than the adapter.
    """
    final = Path(resolved.location)
    if (final / "config.json").is_file():
        return final
    target = final.parent / "export-merged"
    if (target / "config.yaml").is_file() and target.stat().st_mtime >= final.stat().st_mtime:
        return target
    return _merge_parent_adapter(final, target)


def _merge_parent_adapter(final: Path, target: Path) -> Path:
    """Load the parent's base with the usual loader, apply its adapter (peft), merge, save into `target`."""
    import os
    import secrets
    import shutil

    from peft import PeftModel

    from core.run.folder import RunFolder

    parent = RunFolder(final.parent)
    cfg = parent.config()
    label_names = parent.status().get("label_names") or None
    base = load_for_task(cfg.model, cfg.task, label_names=label_names)
    try:
        with quiet_transformers():
            model = PeftModel.from_pretrained(base.model, str(final)).merge_and_unload()
            tokenizer = base.tokenizer
            if (final / "tokenizer_config.json").is_file():  # the tokenizer the parent trained with
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(final))
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelError(
            f"Cannot apply the LoRA adapter of run {parent.run_id} to its base model ({_first_line(str(err))}). "
            "Check that its base model is still available, or fine-tune from another run.",
            field="model.source",
        ) from None
    # Written beside the target, then renamed: a crash or a second child merging at the same time
    # never leaves a half-written folder that looks complete.
    scratch = target.parent / f".{target.name}-{secrets.token_hex(4)}"
    try:
        export_model(model, tokenizer, scratch, merge=False)
        cfg.save(scratch / "config.yaml")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(scratch, target)
        except OSError:  # another child renamed its merge into place first: use that one
            if not (target / "config.yaml").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _model_folder(resolved: ResolvedModel, model_cfg: ModelConfig) -> Path:
    """The folder to load a model from; a 'run:' source is the run's (merged) saved model."""
    if resolved.kind == "run":
        return run_model_folder(resolved)
    return local_folder(resolved, allow_pickle_weights=model_cfg.allow_pickle_weights)
