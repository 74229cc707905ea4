"""The model catalogue the Setup page offers: small, well-known models and what each is good for."""

from __future__ import annotations

from typing import Any

from core.config import BUNDLED_MODEL

POPULAR_MODELS: list[dict[str, Any]] = [
    {
        "id": BUNDLED_MODEL,
        "tasks": ["mlm", "classification"],
        "params": "22.7M",
        "note": "MiniLM-L6 (BERT) shipped with Tuneboard; works offline. Its masked-LM head is "
        "untrained, so 'before' MLM predictions are random.",
    },
    {
        "id": "distilbert-base-uncased",
        "tasks": ["mlm", "classification"],
        "params": "67M",
        "note": "Small, fast BERT distillate with a pretrained masked-LM head.",
    },
    {
        "id": "bert-base-uncased",
        "tasks": ["mlm", "classification"],
        "params": "110M",
        "note": "The classic BERT base (lower-cased).",
    },
    {
        "id": "roberta-base",
        "tasks": ["mlm", "classification"],
        "params": "125M",
        "note": "RoBERTa base; its mask token is <mask>.",
    },
    {
        "id": "distilgpt2",
        "tasks": ["causal", "classification"],
        "params": "82M",
        "note": "Small GPT-2 distillate for next-token prediction.",
    },
    {
        "id": "gpt2",
        "tasks": ["causal", "classification"],
        "params": "124M",
        "note": "GPT-2 small.",
    },
]
