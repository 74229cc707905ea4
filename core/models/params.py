"""Parameter counts without torch: from a checkpoint's safetensors header and its config.json.

The Setup page shows trainable / total parameters on its first draw. Building the model on the meta
device (core.training.strategies.estimate_params) is exact for every strategy but needs torch and
transformers, ~6 s of imports on a 2-core CPU. For full fine-tuning of the families below the count
is plain arithmetic instead: the checkpoint's own tensors (a safetensors file starts with an 8-byte
length and a JSON header giving every tensor's dtype and shape), minus whatever head it was saved
with, plus the head the task's Auto class adds. A bundled GGUF that was never converted has no
safetensors yet: its recorded architecture (core.models.gguf) gives the Llama count from the config.

Anything else (another family, another strategy, a LoRA adapter, remote code) answers None, and the
caller falls back to the meta-device count. tests/test_import_hygiene.py checks both agree.
"""

from __future__ import annotations

import functools
import json
import re
import struct
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.errors import TuneboardError

# Encoders whose Auto classes put BERT's heads on top: the MLM / causal head is BertOnlyMLMHead
# (transform dense + LayerNorm + output bias; decoder tied), classification uses the pooler.
BERT_FAMILY = {"bert"}
# Decoders: causal LM adds lm_head (none when tied), classification a bias-free `score` layer.
DECODER_FAMILY = {"llama", "mistral", "qwen2", "gpt2"}
FAMILY_TASKS = {"bert": ("mlm", "classification", "causal", "sft"), "decoder": ("causal", "sft", "classification")}
# transformers' per-model defaults of tie_word_embeddings when config.json leaves it out.
TIED_BY_DEFAULT = {"bert": True, "gpt2": True, "llama": False, "mistral": False, "qwen2": False}
# Saved heads, left out of the base count: the task's own head is added back by arithmetic.
HEAD_PREFIXES = ("cls.", "classifier.", "lm_head.", "score.", "qa_outputs.")
# Buffers some checkpoints store under a parameter-like name (GPT-2's causal mask).
BUFFER_PATTERN = re.compile(r"(^|\.)attn\.(masked_)?bias$")
HEADER_LIMIT = 100 * 2**20  # a safetensors header is a few hundred KB even for large models


def safetensors_shapes(folder: str | Path) -> dict[str, tuple[int, ...]] | None:
    """Every tensor's shape in a model folder's safetensors file(s) (sharded too); None without any."""
    folder = Path(folder)
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map") or {}
        except (OSError, ValueError):
            return None
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        header = _header(path)
        if header is None:
            return None
        shapes.update({name: tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"})
    return shapes


def _header(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > HEADER_LIMIT:
                return None
            return json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None


def checkpoint_param_count(folder: str | Path) -> int | None:
    """Parameters stored in a folder's safetensors (weights and biases, buffers left out); None without any."""
    shapes = safetensors_shapes(folder)
    if shapes is None:
        return None
    return sum(_numel(shape) for name, shape in shapes.items() if _is_param(name))


def _is_param(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in ("weight", "bias") and not BUFFER_PATTERN.search(name)


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def task_param_count(config: dict[str, Any], shapes: dict[str, tuple[int, ...]] | None, task: str,
                     num_labels: int = 2) -> int | None:
    """Total parameters of the model `task` builds from this checkpoint; None for a family not covered."""
    model_type = str(config.get("model_type", ""))
    family = "bert" if model_type in BERT_FAMILY else "decoder" if model_type in DECODER_FAMILY else None
    if family is None or task not in FAMILY_TASKS[family]:
        return None
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
    vocab = int(config.get("vocab_size") or 0)
    if not hidden or not vocab:
        return None
    tied = bool(config.get("tie_word_embeddings", TIED_BY_DEFAULT[model_type]))
    if shapes is not None:
        base = sum(_numel(shape) for name, shape in shapes.items()
                   if _is_param(name) and not _is_head(name) and ".pooler." not in f".{name}")
    elif model_type == "llama":
        base = _llama_base(config)
    else:
        return None
    if family == "bert":
        dense = hidden * hidden + hidden
        if task == "classification":  # the pooler's dense layer, then the classifier
            return base + dense + hidden * num_labels + num_labels
        # No pooler; BertOnlyMLMHead: transform dense, its LayerNorm (2h), the output bias (V), and
        # the decoder matrix, which is the word embeddings unless untied.
        return base + dense + 2 * hidden + vocab + (0 if tied else vocab * hidden)
    if task == "classification":
        return base + hidden * num_labels  # `score`, without bias
    return base + (0 if tied else vocab * hidden)


def _is_head(name: str) -> bool:
    bare = name.split(".", 1)[1] if name.startswith(("bert.", "model.", "transformer.")) else name
    return name.startswith(HEAD_PREFIXES) or bare.startswith(HEAD_PREFIXES)


def _llama_base(config: dict[str, Any]) -> int:
    """Llama without its lm_head, from the config: embeddings, attention and MLP per layer, norms."""
    hidden, vocab = int(config["hidden_size"]), int(config["vocab_size"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    inter = int(config["intermediate_size"])
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o; k, v
    if config.get("attention_bias"):
        attention += heads * head_dim + 2 * kv_heads * head_dim + hidden
    mlp = 3 * hidden * inter + (2 * inter + hidden if config.get("mlp_bias") else 0)
    per_layer = attention + mlp + 2 * hidden  # two RMSNorms
    return vocab * hidden + int(config["num_hidden_layers"]) * per_layer + hidden


def quick_params(cfg: RunConfig, num_labels: int = 2) -> tuple[int, int] | None:
    """(trainable, total) of a full fine-tune without torch, where arithmetic is exact; else None."""
    if cfg.strategy.name != "full" or cfg.model.trust_remote_code:
        return None
    from core.models.resolve import resolve_model

    try:
        resolved = resolve_model(cfg.model.source)
    except TuneboardError:
        return None  # the page reports the model problem itself
    total = _folder_count(resolved.location, resolved.gguf, cfg.task, num_labels, _mtime(resolved.location))
    return None if total is None else (total, total)


def _mtime(location: str) -> int:
    try:
        return (Path(location) / "config.json").stat().st_mtime_ns
    except OSError:
        return 0


@functools.lru_cache(maxsize=64)
def _folder_count(location: str, gguf_source: str, task: str, num_labels: int, mtime_ns: int) -> int | None:
    """Cached on the folder and its config's mtime, so a converted or re-saved model is counted again."""
    if gguf_source:
        from core.models import gguf

        bundle = next((b for b in gguf.BUNDLED_GGUFS if b.filename == Path(gguf_source).name), None)
        return task_param_count(dict(bundle.architecture), None, task, num_labels) if bundle else None
    folder = Path(location)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    shapes = safetensors_shapes(folder)
    if shapes is None:
        return None
    return task_param_count(config, shapes, task, num_labels)
