"""Models: where a model comes from and the one loader every part of Tuneboard uses.

    catalogue  the models the Setup page offers
    hub        Hub questions asked everywhere: offline? reachable? cached? (also for Hub datasets)
    resolve    what a source means: 'bundled', a local folder or a Hub id, answered within seconds
    tasks      the task -> Auto class table (and peft's), which tasks a model type supports
    loading    the pad-token fix, the length cap, the load report,
               and loading a base model, a run's saved model, a tokenizer alone or a weightless model
    saving     saving a model folder (LoRA merged or not); transformers kept quiet while loading
    export     what a run saved: its final model, label names and model card, for the Runs page
    gguf       the bundled SmolLM2 GGUF, converted once into a safetensors cache
    fast_mlm   masked-LM loss on the masked positions only (training and the per-example pass)

Import from here: `from core.models import load_for_task, resolve_model, ...`.
"""

from __future__ import annotations

from core.models.catalogue import POPULAR_MODELS
from core.models.hub import hub_offline, hub_reachable
from core.models.loading import (
    LoadedModel,
    effective_max_length,
    empty_model,
    ensure_pad_token,
    load_for_task,
    load_saved,
    load_tokenizer,
    position_limit,
)
from core.models.resolve import ResolvedModel, bundled_model_path, is_cached, resolve_model
from core.models.saving import export_model, quiet_transformers
from core.models.tasks import (
    AUTO_CLASSES,
    TASK_NAMES,
    auto_class,
    is_encoder,
    needs_decoder_switch,
    saved_task,
    supported_tasks,
)

__all__ = [
    "AUTO_CLASSES",
    "POPULAR_MODELS",
    "TASK_NAMES",
    "LoadedModel",
    "ResolvedModel",
    "auto_class",
    "bundled_model_path",
    "effective_max_length",
    "empty_model",
    "export_model",
    "ensure_pad_token",
    "hub_offline",
    "hub_reachable",
    "is_cached",
    "is_encoder",
    "load_for_task",
    "load_saved",
    "load_tokenizer",
    "needs_decoder_switch",
    "position_limit",
    "quiet_transformers",
    "resolve_model",
    "saved_task",
    "supported_tasks",
]
