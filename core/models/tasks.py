"""Tasks and the classes that load a model for them: the one task -> Auto class table.

By class name, so that importing this module does not import transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.config import TASKS
from core.errors import ModelError

TASK_NAMES = {"mlm": "masked-LM", "classification": "classification", "causal": "causal LM",
              "sft": "instruction tuning (SFT)"}
AUTO_CLASSES = {
    "mlm": "AutoModelForMaskedLM",
    "classification": "AutoModelForSequenceClassification",
    "causal": "AutoModelForCausalLM",
    "sft": "AutoModelForCausalLM",  # instruction tuning trains a causal LM's own next-token head
}
# peft's counterparts, for a saved LoRA adapter (AutoPeftModel keeps the base model's own head).
PEFT_CLASSES = {
    "mlm": "AutoPeftModel",
    "classification": "AutoPeftModelForSequenceClassification",
    "causal": "AutoPeftModelForCausalLM",
    "sft": "AutoPeftModelForCausalLM",
}

def auto_class(task: str):
    """The transformers Auto class that loads a model for `task`."""
    import transformers

    return getattr(transformers, AUTO_CLASSES[task])


def supported_tasks(model_type: str, auto_map: dict | None = None) -> list[str]:
    """Tasks (mlm / classification / causal / sft) the Auto classes offer for a model type (sft wherever causal)."""
    from transformers.models.auto import modeling_auto as ma

    mappings = {
        "mlm": ma.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        "classification": ma.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        "causal": ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        "sft": ma.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    }
    auto_map = auto_map or {}
    return [task for task in TASKS if model_type in mappings[task] or AUTO_CLASSES[task] in auto_map]


def is_encoder(model_type: str) -> bool:
    """Whether a model type is an encoder (it has a masked-LM head class: BERT and its family)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def needs_decoder_switch(config: Any, task: str, tasks: list[str]) -> bool:
    """An encoder (BERT family) used as a causal LM must mask future tokens, else it "cheats"."""
    return task in ("causal", "sft") and "mlm" in tasks and getattr(config, "is_decoder", None) is False


def saved_task(folder: str | Path) -> str:
    """The task a saved model folder's head is for, read from its config.json `architectures`."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"Cannot read the config of the model in {folder}: {err}.") from None
    archs = " ".join(config.get("architectures") or [])
    if "MaskedLM" in archs:
        return "mlm"
    if "CausalLM" in archs or "LMHead" in archs:
        return "causal"
    return "classification"
