"""Saving a model folder, and keeping transformers quiet while it loads or saves.

Every `save_pretrained` of a model goes through here, as every `from_pretrained` goes through
core.models.loading.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path


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


def is_peft_model(model) -> bool:
    """True for a peft-wrapped model."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def export_model(model, tokenizer, out_dir, *, merge: bool) -> Path:
    """Save a loadable model folder (safetensors). LoRA: merged full model, or adapter only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_peft_model(model):
        if merge:
            # Merge a copy: the caller's peft model stays usable (final probes, further saves).
            merged = copy.deepcopy(model).merge_and_unload()
            save_full(merged, out)
        else:
            model.save_pretrained(out)  # adapter_config.json + adapter_model.safetensors
    else:
        save_full(model, out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def save_full(model, out: Path) -> None:
    """save_pretrained for a plain model, with every tensor made contiguous (safetensors refuses views)."""
    for param in model.parameters():
        if not param.data.is_contiguous():
            param.data = param.data.contiguous()
    with quiet_transformers():
        model.save_pretrained(out)
