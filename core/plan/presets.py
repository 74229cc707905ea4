"""Presets: a whole scenario as one named RunConfig (Setup's demo buttons, `train --preset NAME`).

    nike      the seed demo: synthetic reviews curated to positive Nike product reviews, fine-tuned
              into SmolLM2-135M (a pretrained causal LM), probed with the seed's sentences cut at
              the mask; its base column holds real words
    nike-mlm  the same scenario as masked-LM on MiniLM, whose masked-LM head starts untrained
    news      instruction tuning: SmolLM2-135M-Instruct prompted for the category of built-in news
              headlines (the baseline), then LoRA-tuned on them; a second annotator's labels beside

The training defaults are sized for a 2-core CPU: Start -> finished run within 3 minutes, the final
probes leaning positive (bench/bench_presets.py measures both). `sentiment_mass` is that measure.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.config import BUNDLED_MODEL, RunConfig
from core.errors import ConfigError

# The seed's curation: the text mentions Nike AND one of Nike's products AND is positive.
NIKE_SIGNAL: dict[str, Any] = {
    "op": "and",
    "children": [
        {"kind": "word_list", "list": "brand:Nike"},
        {"kind": "word_list", "list": "brand_products:Nike"},
        {"kind": "sentiment", "polarity": "positive"},
    ],
}


@dataclass(frozen=True)
class Preset:
    """A named scenario: a title and description for people, and the RunConfig it stands for."""

    name: str
    title: str
    description: str
    build: Callable[[], RunConfig]

    def config(self) -> RunConfig:
        """A fresh, validated RunConfig for this preset (callers may change it freely)."""
        return self.build().validate()


def _nike_data(cfg: RunConfig) -> RunConfig:
    """The seed's data: synthetic reviews, the null-text check removing rows, the Nike signal tree."""
    cfg.data.source = "synthetic"
    cfg.data.synthetic.rows = 2000  # ~270 rows pass the signal: a few passes fit the time budget
    cfg.data.synthetic.seed = 0
    cfg.data.synthetic.null_fraction = 0.05  # some empty rows, for the null check to remove
    cfg.data.validation_fraction = 0.1
    cfg.data.curation.signal = copy.deepcopy(NIKE_SIGNAL)
    cfg.data.curation.check_action = "remove"
    cfg.data.curation.drop_duplicates = True
    cfg.probes.texts = None  # the task's defaults: the seed's probe sentences
    cfg.probes.top_k = 10
    return cfg


def _nike() -> RunConfig:
    from core.models.catalogue import BUNDLED_SMOLLM2

    cfg = _nike_data(RunConfig(task="causal", name="nike-demo"))
    cfg.model.source = BUNDLED_SMOLLM2
    cfg.model.max_length = 32  # the reviews are 6-20 tokens
    cfg.strategy.name = "full"
    t = cfg.training
    # Measured (bench/bench_presets.py): after 10 steps of 8 rows the probes already lean ~6x more
    # positive than the base model's; each full fine-tuning step costs 1-3 s on 2 CPU cores.
    t.max_steps = 12
    t.batch_size = 8
    t.learning_rate = 1e-4
    t.warmup_ratio = 0.1
    t.logging_steps = 2
    t.eval_steps = 6
    # No checkpoint at all (each is 1.6 GB with the optimizer state): the run keeps its last model,
    # which after this short a run is also its best.
    t.save_steps = 1000
    t.keep_model = "last"
    t.precision = "auto"  # fp32 on a CPU: bf16 pays only on some (see core.devices)
    return cfg


def _nike_mlm() -> RunConfig:
    cfg = _nike_data(RunConfig(task="mlm", name="nike-mlm-demo"))
    cfg.model.source = BUNDLED_MODEL
    cfg.model.max_length = 32
    cfg.strategy.name = "full"
    t = cfg.training
    t.max_steps = 150
    t.batch_size = 32
    t.learning_rate = 5e-4  # the head starts untrained and must learn fast
    t.logging_steps = 5
    t.eval_steps = 25
    t.save_steps = 1000
    t.keep_model = "last"
    return cfg


# The news preset's size (bench/bench_presets.py measures it end to end on a 2-core CPU).
NEWS_ROWS = 1000
NEWS_VALIDATION_FRACTION = 0.08
NEWS_STEPS = 100
NEWS_BATCH_SIZE = 8

# Headlines written for the probes, not drawn from the generator: what a stakeholder would type.
NEWS_PROBE_HEADLINES = (
    "Parliament votes down the new housing bill",
    "Chipmaker unveils a faster processor for AI",
    "Pop star announces a farewell world tour",
)


def _news() -> RunConfig:
    from core.config import DEFAULT_PROMPT_TEMPLATE
    from core.data.news import NEWS_CATEGORIES
    from core.models.catalogue import BUNDLED_SMOLLM2
    from core.plan.task_switch import apply_task_defaults

    cfg = RunConfig(task="sft", name="news-demo")
    cfg.model.source = BUNDLED_SMOLLM2
    cfg.data.source = "synthetic"
    cfg.data.synthetic.kind = "news"
    cfg.data.synthetic.rows = NEWS_ROWS
    cfg.data.synthetic.seed = 0
    cfg.data.validation_fraction = NEWS_VALIDATION_FRACTION
    cfg.data.curation.drop_duplicates = True
    apply_task_defaults(cfg, "sft")  # LoRA without dropout
    labels = ", ".join(NEWS_CATEGORIES)
    cfg.probes.texts = [DEFAULT_PROMPT_TEMPLATE.format(text=headline, labels=labels)
                        for headline in NEWS_PROBE_HEADLINES]
    t = cfg.training
    t.max_steps = NEWS_STEPS
    t.batch_size = NEWS_BATCH_SIZE
    t.learning_rate = None  # the measured default for sft with LoRA
    t.logging_steps = 5
    t.eval_steps = NEWS_STEPS // 2
    t.save_steps = 1000
    t.keep_model = "last"
    return cfg


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "nike",
            "Nike demo (SmolLM2, causal LM)",
            "The seed demo: synthetic reviews curated to positive reviews of Nike products (Nike AND a "
            "Nike product AND positive sentiment, empty rows removed), fine-tuned into SmolLM2-135M, a "
            "pretrained causal LM. The probes are the seed's sentences cut where the mask was, so the base "
            "column shows the real words SmolLM2 predicts and the fine-tuned column leans positive. About "
            "1-2 minutes on a 2-core CPU; the very first use adds 25-50 s to convert the bundled model.",
            _nike,
        ),
        Preset(
            "nike-mlm",
            "Nike demo (MiniLM, masked LM)",
            "The same scenario as masked-LM on the bundled MiniLM. Its base head is untrained: MiniLM "
            "ships without a pretrained masked-LM head, so the 'before' column is random tokens, not what a "
            "real masked LM would say. Compare the fine-tuned column with the training data, not with the base.",
            _nike_mlm,
        ),
        Preset(
            "news",
            "News headlines (SmolLM2, instruction tuning)",
            "The prompting-versus-fine-tuning walkthrough: built-in news headlines in eight categories, with "
            "a second annotator's labels in a 'human' column. SmolLM2-135M-Instruct is first asked for each "
            "headline's category (the prompting baseline, scored as the 'before'), then LoRA-tuned on "
            "prompt -> category pairs; Evaluate compares both with the gold and the human labels.",
            _news,
        ),
    )
}


def preset_names() -> list[str]:
    """The preset names, in the order they are offered."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called `name`; ConfigError listing the presets otherwise."""
    preset = PRESETS.get(str(name or "").strip().lower())
    if preset is None:
        raise ConfigError(
            f"There is no preset {name!r}; choose one of: {', '.join(PRESETS)}.", field="preset"
        )
    return preset


def preset_config(name: str) -> RunConfig:
    """A fresh RunConfig for the preset called `name`."""
    return get_preset(name).config()


# ---- how positive the probes lean ------------------------------------------------------------

def sentiment_mass(predictions: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Summed probability of positive and of negative words among one probe's top-k predictions.

    A prediction counts when its token, lower-cased and stripped, is a word of the curation's
    sentiment lexicon (the synthetic adjectives plus common review words).
    """
    from core.data.lexicon import NEGATIVE_WORDS, POSITIVE_WORDS

    positive = negative = 0.0
    for prediction in predictions:
        word = str(prediction.get("token", "")).strip().lower()
        score = float(prediction.get("score", 0.0))
        if word in POSITIVE_WORDS:
            positive += score
        elif word in NEGATIVE_WORDS:
            negative += score
    return {"positive": positive, "negative": negative}


def probe_lean(records: Iterable[Mapping[str, Any]], phase: str) -> dict[str, float]:
    """Positive and negative mass summed over the probes of one phase ('base' or 'final') of probes.jsonl."""
    chosen = [r for r in records if r.get("phase") == phase]
    total = {"positive": 0.0, "negative": 0.0, "probes": float(len(chosen))}
    for record in chosen:
        mass = sentiment_mass(record.get("predictions") or [])
        total["positive"] += mass["positive"]
        total["negative"] += mass["negative"]
    return total
