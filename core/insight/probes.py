"""Probes: what the model predicts for a few fixed sentences, before, during and after training.

mlm             top-k tokens for the (first) mask position, with softmax probabilities
causal          top-k next tokens after the text
classification  every label's probability (up to top_k), highest first
sft             the model's greedy answer to the probe as a user message (its chat template applied),
                as the single prediction {"answer": text, "score": 1.0}

All probe texts go through the model in one padded batch, in eval mode, without gradients, on the
model's own device; the model's previous train/eval mode is restored afterwards.
"""

from __future__ import annotations

import functools
from typing import Any

from core.config import MASK_SPELLINGS, has_mask
from core.errors import ModelError


def adapt_mask_token(text: str, tokenizer) -> str:
    """Write the mask as this tokenizer spells it: "[MASK]" -> "<mask>" for RoBERTa, and back."""
    mask = getattr(tokenizer, "mask_token", None)
    if not mask:
        return text
    for spelling in MASK_SPELLINGS:
        if spelling != mask:
            text = text.replace(spelling, mask)
    return text


def score_probes(
    model, tokenizer, task: str, texts: list[str], top_k: int, *, label_names: list[str] | None = None
) -> list[dict[str, Any]]:
    """Score each probe text; return [{"text", "predictions": [{"token"|"label", "score"}]}]."""
    import torch

    texts = [str(t) for t in texts]
    if not texts:
        return []
    if task not in ("mlm", "causal", "classification", "sft"):
        raise ModelError(f"Unknown task {task!r} for probes.", field="task")
    if task == "sft":
        return [{"text": text, "predictions": [{"answer": answer, "score": 1.0}]}
                for text, answer in zip(texts, generate_answers(model, tokenizer, texts), strict=True)]
    if task == "mlm":
        if getattr(tokenizer, "mask_token", None) is None:
            raise ModelError("This tokenizer has no mask token, so masked-LM probes cannot be scored.")
        texts = [adapt_mask_token(t, tokenizer) for t in texts]

    top_k = max(1, int(top_k))
    was_training = model.training
    device = device_of(model)
    encoded = _encode(tokenizer, texts, _max_length(tokenizer, model))
    batch = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    model.eval()
    try:
        with torch.no_grad():
            logits = model(**batch).logits.float()
    finally:
        model.train(was_training)

    if task == "classification":
        return [
            {"text": text, "predictions": _label_scores(row, model, label_names, top_k)}
            for text, row in zip(texts, logits, strict=True)
        ]
    results = []
    input_ids = encoded["input_ids"]
    for row, text in enumerate(texts):
        if task == "mlm":
            positions = (input_ids[row] == tokenizer.mask_token_id).nonzero()
            if len(positions) == 0:  # the mask was truncated away, or there never was one
                results.append({"text": text, "predictions": []})
                continue
            position = int(positions[0])
        else:
            # Last real token: padding may sit on either side.
            real = encoded["attention_mask"][row].nonzero()
            position = int(real[-1]) if len(real) else input_ids.shape[1] - 1
        probs = torch.softmax(logits[row, position], dim=-1)
        scores, ids = probs.topk(min(top_k, probs.shape[-1]))
        results.append({
            "text": text,
            "predictions": [
                {"token": _display_token(tokenizer, int(i)), "score": float(s)}
                for s, i in zip(scores.tolist(), ids.tolist(), strict=True)
            ],
        })
    return results


PROBE_NEW_TOKENS = 32  # a probe's answer: a label or a sentence, kept short so evaluations stay quick


def generate_answers(model, tokenizer, prompts: list[str], *, max_new_tokens: int = PROBE_NEW_TOKENS) -> list[str]:
    """Greedy answers to user messages, each rendered with the model's chat template (or the plain one)."""
    from core.insight.answers import reply_to_prompts

    return reply_to_prompts(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                            max_length=_max_length(tokenizer, model))


def _encode(tokenizer, texts: list[str], max_length: int):
    """Tokenise as one padded batch (tokenizers from core.models' loaders always have a pad token)."""
    if tokenizer.pad_token is None and len(texts) > 1:
        raise ModelError(
            "This tokenizer has no pad token, so probes cannot be batched; load the model with "
            "core.models (load_for_task / load_saved), which gives it one."
        )
    return tokenizer(texts, return_tensors="pt", padding=len(texts) > 1, truncation=True, max_length=max_length)


def _label_scores(row, model, label_names, top_k: int) -> list[dict[str, Any]]:
    import torch

    probs = torch.softmax(row, dim=-1).tolist()
    id2label = getattr(model.config, "id2label", None) or {}
    names = list(label_names) if label_names else [str(id2label.get(i, i)) for i in range(len(probs))]
    if len(names) != len(probs):
        names = [str(id2label.get(i, i)) for i in range(len(probs))]
    ranked = sorted(zip(names, probs, strict=True), key=lambda pair: -pair[1])
    return [{"label": str(name), "score": float(p)} for name, p in ranked[:top_k]]


def _display_token(tokenizer, token_id: int) -> str:
    """A readable token: WordPiece pieces keep their '##', byte-level BPE loses its 'Ġ' space marker."""
    raw = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(raw, str) and raw.startswith("##"):
        return raw
    text = tokenizer.decode([token_id]).strip()
    return text or (raw.strip() if isinstance(raw, str) and raw.strip() else repr(tokenizer.decode([token_id])))


def device_of(model):
    """The device the model's weights are on (CPU for a model without parameters)."""
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _max_length(tokenizer, model) -> int:
    # A probe is one sentence: 512 tokens is plenty, and keeps a long-context model's batch small.
    from core.models import position_limit

    return min(512, position_limit(getattr(model, "config", None), tokenizer) or 512)


# ---- free-text probes for the Compare page ---------------------------------------------------

def probe_text(run_path, text: str, top_k: int, *, before: str = "parent") -> dict[str, Any]:
    """Score one free-text probe with a run's base model and its newest saved model.

    Returns {"base": predictions, "tuned": predictions (empty until the run saved a model),
    "tuned_from": folder name or None}. Both models are cached, so repeated probes are quick.
    `before` picks the base of a run fine-tuned from another run (see base_model_for).
    """
    from pathlib import Path

    from core.models.export import tuned_model_path
    from core.run.folder import RunFolder

    folder = RunFolder(Path(run_path))
    cfg = folder.config()
    label_names = folder.status().get("label_names") or None
    if cfg.task == "mlm" and not has_mask(text):
        raise ModelError("A masked-LM probe needs a [MASK] where the model should guess a word.")
    base_model, base_tokenizer = base_model_for(cfg, before=before, label_names=label_names)
    names = list(label_names) if label_names else None
    base = score_probes(base_model, base_tokenizer, cfg.task, [text], top_k, label_names=names)[0]["predictions"]
    tuned: list[dict[str, Any]] = []
    source = tuned_model_path(folder)
    if source is not None:
        model, tokenizer = tuned_model_for(cfg, source, before=before, label_names=names)
        tuned = score_probes(model, tokenizer, cfg.task, [text], top_k, label_names=names)[0]["predictions"]
    return {"base": base, "tuned": tuned, "tuned_from": source.name if source is not None else None}


# What the "before" side of a comparison is, for a run fine-tuned from another run ('run:' source):
# its parent (the model it started from) or the original base model at the root of the chain.
BEFORE_PARENT = "parent"
BEFORE_ORIGINAL = "original"


def before_source(cfg, before: str = BEFORE_PARENT) -> str:
    """The model source of the 'before' side: the run's own base (its parent run), or the chain's original base."""
    if before == BEFORE_PARENT:
        return str(cfg.model.source)
    if before == BEFORE_ORIGINAL:
        from core.models.resolve import original_base_source

        return original_base_source(str(cfg.model.source))
    raise ModelError(f"Unknown 'before' model {before!r}: choose '{BEFORE_PARENT}' or '{BEFORE_ORIGINAL}'.")


def base_model_for(cfg, *, before: str = BEFORE_PARENT, label_names: list[str] | None = None):
    """(model, tokenizer) of a run's 'before' side, cached: its config's model, or the original base of a chain."""
    return _base_model_cached(
        before_source(cfg, before), cfg.task, tuple(label_names or ()), cfg.model.trust_remote_code,
        cfg.model.allow_pickle_weights, cfg.training.seed,
    )


def score_before(run_path, texts: list[str], top_k: int, *, before: str = BEFORE_ORIGINAL) -> list[dict[str, Any]]:
    """Score a run's probe texts with its 'before' model (e.g. the original base of a fine-tuned-further run)."""
    from pathlib import Path

    from core.run.folder import RunFolder

    folder = RunFolder(Path(run_path))
    cfg = folder.config()
    label_names = folder.status().get("label_names") or None
    model, tokenizer = base_model_for(cfg, before=before, label_names=label_names)
    return score_probes(model, tokenizer, cfg.task, texts, top_k, label_names=list(label_names) if label_names else None)


@functools.lru_cache(maxsize=2)
def _base_model_cached(
    source: str, task: str, label_names: tuple, trust_remote_code: bool, allow_pickle: bool, seed: int
):
    import torch

    from core.config import ModelConfig
    from core.models import load_for_task

    cfg = ModelConfig(source=source, trust_remote_code=trust_remote_code, allow_pickle_weights=allow_pickle)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # a newly initialised head is then the same on every load
        loaded = load_for_task(cfg, task, label_names=list(label_names) or None)
    loaded.model.eval()
    return loaded.model, loaded.tokenizer


# Tasks whose adapter is merged into a copy of the base already in memory (see tuned_model_for): their
# models are the big ones, and they carry no newly initialised head that a copy could get wrong.
SHARES_BASE_WEIGHTS = ("causal", "sft")


def tuned_model_for(cfg, source, *, before: str = BEFORE_PARENT, label_names: list[str] | None = None):
    """(model, tokenizer) of a run's saved model `source` (final/ or a checkpoint), cached like base_model_for.

    A LoRA adapter of a causal-LM or instruction-tuning run that was trained on the base this side
    shows is merged into a copy of that base, so its weights are read from disk once: SmolLM2's
    fine-tuned side loads in 1.5 s instead of 3.2 s. Anything else is load_saved_model_cached's.
    """
    import os
    from pathlib import Path

    from core.models.export import load_saved_model_cached

    source = Path(source)
    names = tuple(label_names) if label_names else None
    mtime_ns = os.stat(source).st_mtime_ns
    base_key = (before_source(cfg, before), cfg.task, tuple(label_names or ()), cfg.model.trust_remote_code,
                cfg.model.allow_pickle_weights, cfg.training.seed)
    adapter_base = _adapter_base(source) if cfg.task in SHARES_BASE_WEIGHTS else None
    if adapter_base is not None:
        base_model, _ = _base_model_cached(*base_key)
        if adapter_base == _resolved(getattr(base_model, "name_or_path", "")):
            return _merged_on_base_cached(str(source), mtime_ns, base_key)
    return load_saved_model_cached(str(source), cfg.task, mtime_ns, names)


def _adapter_base(source) -> str | None:
    """The resolved base path a LoRA adapter folder names, or None for a full model (or an unreadable config)."""
    import json

    config = source / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None
    return _resolved(base) if isinstance(base, str) and base else None


def _resolved(path: str) -> str:
    from pathlib import Path

    return str(Path(path).expanduser().resolve()) if path else ""


@functools.lru_cache(maxsize=2)
def _merged_on_base_cached(source: str, mtime_ns: int, base_key: tuple):
    from core.models.loading import load_adapter_merged_into

    return load_adapter_merged_into(*_base_model_cached(*base_key), source)
