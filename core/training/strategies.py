"""Training strategies: which parameters train. Full, feature extraction, freeze N, gradual, LoRA; prompt: none.

Every strategy works on any Hugging Face model by splitting its parameters into four parts, found
generically (see `model_parts`):

    embeddings  base-model modules before the blocks (token/position embeddings, their norm)
    blocks      the repeated transformer layers (bert.encoder.layer.*, transformer.h.*, ...)
    top         base-model parameters after the blocks (BERT's pooler, GPT-2's final ln_f)
    head        everything outside the base model (cls.*, classifier, score, lm_head)

Tied weights: BERT's masked-LM decoder and GPT-2's lm_head share their matrix with the word
embeddings. `named_parameters()` lists a shared tensor once, under its embeddings name, so a tied
decoder counts as *embeddings*: it stays frozen whenever the embeddings are frozen. Feature
extraction on an MLM therefore trains the head's transform (dense + LayerNorm) and output bias on
top of the frozen vocabulary matrix; training that matrix would change the embeddings, i.e. the
backbone. LoRA keeps the same rule: untied head modules are saved/trained, tied ones are not.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from core.config import PROMPT_STRATEGY, ModelConfig, RunConfig, StrategyConfig
from core.errors import ConfigError, ModelError

# LoRA target modules per model type (attention query/value projections, as in the LoRA paper).
LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "deberta": ["in_proj"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
    "albert": ["query", "value"],
    "mpnet": ["q", "v"],
    "gpt2": ["c_attn"],
    "gpt_neo": ["q_proj", "v_proj"],
    "gptj": ["q_proj", "v_proj"],
    "opt": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "phi": ["q_proj", "v_proj"],
}


@dataclass
class UnfreezeGroup:
    """One step of gradual unfreezing: a label for the log and the parameter names it unfreezes."""

    label: str
    params: list[str]


@dataclass
class StrategyPlan:
    """What a strategy did: parameter counts, a one-line description, gradual-unfreeze groups."""

    trainable_params: int
    total_params: int
    description: str
    unfreeze_groups: list[UnfreezeGroup] = field(default_factory=list)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (without the per-parameter names)."""
        return {
            "name": self.name,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "description": self.description,
            "unfreeze_groups": [g.label for g in self.unfreeze_groups],
        }


@dataclass
class ModelParts:
    """A model's parameter names split into embeddings, blocks (bottom to top), top and head."""

    embeddings: list[str]
    blocks: list[list[str]]
    top: list[str]
    head: list[str]
    block_kind: str  # "encoder" or "decoder", for messages


# ---- parameter bookkeeping -------------------------------------------------------------------

def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tied tensor counts once."""
    trainable = total = 0
    for _, param in model.named_parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def human_count(n: int) -> str:
    """3_215_000 -> '3.2M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def model_parts(model) -> ModelParts:
    """Split `model`'s parameters into embeddings / blocks / top / head (see module docstring)."""
    from torch import nn

    base = getattr(model, "base_model", model)
    base_name = next((name for name, module in model.named_modules() if module is base), "")
    base_prefix = f"{base_name}." if base_name else ""

    blocks_name, blocks = _find_blocks(base, getattr(model, "config", None))
    block_prefixes = [f"{base_prefix}{blocks_name}.{i}." for i in range(len(blocks))]
    # Children of the base model before the blocks: anything holding an nn.Embedding, or named like
    # one (ELECTRA's embeddings_project sits between the embeddings and the first block).
    embedding_children = {
        name for name, child in base.named_children()
        if name != blocks_name.split(".")[0]
        and ("embed" in name.lower() or any(isinstance(m, nn.Embedding) for m in child.modules()))
    }

    parts = ModelParts([], [[] for _ in blocks], [], [], _block_kind(model))
    for name, _ in model.named_parameters():
        if not name.startswith(base_prefix):
            parts.head.append(name)
            continue
        block = next((i for i, p in enumerate(block_prefixes) if name.startswith(p)), None)
        if block is not None:
            parts.blocks[block].append(name)
            continue
        child = name[len(base_prefix):].split(".")[0]
        rest = name[len(base_prefix):]
        if child in embedding_children or "." not in rest:  # direct base params: cls tokens etc.
            parts.embeddings.append(name)
        else:
            parts.top.append(name)
    return parts


def _find_blocks(base, config) -> tuple[str, list]:
    """The ModuleList of transformer layers: the one with num_hidden_layers entries, else the longest."""
    from torch import nn

    want = getattr(config, "num_hidden_layers", None) if config is not None else None
    lists = [(name, module) for name, module in base.named_modules() if isinstance(module, nn.ModuleList) and name]
    for name, module in lists:
        if want and len(module) == want:
            return name, list(module)
    if lists:
        name, module = max(lists, key=lambda item: len(item[1]))
        return name, list(module)
    return "", []


def _block_kind(model) -> str:
    from core.models import is_encoder

    return "encoder" if is_encoder(getattr(getattr(model, "config", None), "model_type", "")) else "decoder"


def _set_trainable(model, trainable: set[str]) -> None:
    for name, param in model.named_parameters():
        param.requires_grad = name in trainable


# ---- applying a strategy ---------------------------------------------------------------------

def apply_strategy(model, strategy_cfg: StrategyConfig, task: str):
    """Freeze / adapt `model` per the strategy; return (model or peft model, StrategyPlan)."""
    name = strategy_cfg.name
    if name == "lora":
        return _apply_lora(model, strategy_cfg, task)
    parts = model_parts(model)
    all_names = [n for n, _ in model.named_parameters()]
    head_and_top = set(parts.head) | set(parts.top)
    groups: list[UnfreezeGroup] = []

    if name == "full":
        trainable = set(all_names)
        text = "full fine-tuning: every parameter trains"
    elif name in ("feature-extraction", "gradual-unfreeze"):
        _require_head(parts, name)
        trainable = head_and_top
        text = f"{name}: backbone frozen, the task head trains ({_head_summary(parts)})"
        if _tied_to_embeddings(model, parts):
            text += "; its output matrix is tied to the word embeddings and stays frozen with them"
        if name == "gradual-unfreeze":
            _require_blocks(parts, name)
            groups = [
                UnfreezeGroup(f"{parts.block_kind} block {i}", list(parts.blocks[i]))
                for i in reversed(range(len(parts.blocks)))
            ]
            if parts.embeddings:
                groups.append(UnfreezeGroup("embeddings", list(parts.embeddings)))
            text += f"; then unfreezes one {parts.block_kind} block per phase from the top, embeddings last"
    elif name == PROMPT_STRATEGY:
        # Nothing trains: the base model answers the evaluation prompts as it is (core.training.prompting).
        trainable = set()
        shots = f"{strategy_cfg.few_shot}-shot" if strategy_cfg.few_shot else "zero-shot"
        text = f"prompt: no training, the base model answers {shots}"
    elif name == "freeze-layers":
        _require_blocks(parts, name)
        n = strategy_cfg.freeze_layers
        if n > len(parts.blocks):
            raise ConfigError(
                f"strategy.freeze_layers is {n} but this model has only {len(parts.blocks)} "
                f"{parts.block_kind} blocks; use at most {len(parts.blocks)}.",
                field="strategy.freeze_layers",
            )
        frozen = set(parts.embeddings).union(*parts.blocks[:n]) if n else set(parts.embeddings)
        trainable = set(all_names) - frozen
        text = f"freeze-layers: embeddings and the bottom {n} of {len(parts.blocks)} {parts.block_kind} blocks frozen"
    else:
        raise ConfigError(f"Unknown strategy {name!r}.", field="strategy.name")

    _set_trainable(model, trainable)
    trainable_n, total_n = count_params(model)
    text += f" — {human_count(trainable_n)} of {human_count(total_n)} parameters train."
    return model, StrategyPlan(trainable_n, total_n, text, groups, name)


def _require_head(parts: ModelParts, name: str) -> None:
    if not parts.head and not parts.top:
        raise ModelError(f"{name} needs a task head, and this model has none: choose 'full' or 'lora'.")


def _require_blocks(parts: ModelParts, name: str) -> None:
    if not parts.blocks:
        raise ModelError(
            f"{name} needs the model's layer blocks, and Tuneboard could not find them in this "
            "architecture: choose 'full', 'feature-extraction' or 'lora'.",
            field="strategy.name",
        )


def _head_summary(parts: ModelParts) -> str:
    modules = (name.rsplit(".", 1)[0] for name in parts.head + parts.top)
    roots = sorted({".".join(module.split(".")[:2]) for module in modules})
    return ", ".join(roots) or "no head parameters"


def _tied_to_embeddings(model, parts: ModelParts) -> bool:
    """Whether some head module (an output decoder / lm_head) shares its matrix with the embeddings."""
    embeddings = set(parts.embeddings)
    base = getattr(model, "base_model", model)
    base_ids = {id(p) for p in base.parameters()}
    canonical = {id(p): name for name, p in model.named_parameters()}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in base_ids and canonical.get(id(param)) in embeddings and name != canonical[id(param)]:
            return True
    return False


# ---- LoRA ------------------------------------------------------------------------------------

def default_lora_targets(model, task: str | None = None) -> list[str]:
    """LoRA target module names for this architecture: query/value projections, every linear layer for sft.

    Instruction tuning adapts every linear layer of the blocks (attention and MLP, not the output head), as
    QLoRA found it needs to match a full fine-tune: on unseen 8-way chat routing (bench/bench_sft.py), 120
    LoRA steps of SmolLM2 at rank 8 reached 80% exact match on q/v alone and 100% on every linear layer
    (BENCHMARKS.md, "Instruction tuning"), training 1.8% of the weights.
    """
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    if task == "sft":
        return block_linear_names(model)
    model_type = getattr(model.config, "model_type", "")
    targets = LORA_TARGETS.get(model_type) or PEFT_TARGETS.get(model_type)
    if not targets:
        raise ConfigError(
            f"Tuneboard has no default LoRA targets for {model_type} models; set strategy.lora_targets "
            f"to some of its linear layers, e.g. {', '.join(_linear_names(model)[:6])}.",
            field="strategy.lora_targets",
        )
    return list(targets)


def block_linear_names(model) -> list[str]:
    """Names of the linear layers inside the model's blocks: every linear layer but the output head."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {name.split(".")[-1] for name, m in model.named_modules()
             if isinstance(m, nn.Linear | Conv1D) and m is not head}
    return sorted(names)


def _linear_names(model) -> list[str]:
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    names = {name.split(".")[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear | Conv1D)}
    return sorted(names)


def _untied_head_modules(model, parts: ModelParts) -> list[str]:
    """Largest head modules whose parameters are not shared with the backbone (tied decoders)."""
    head_names = set(parts.head)
    # Shared tensors appear once in named_parameters(); list every alias to spot the tied ones.
    owner: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owner.setdefault(id(param), name)

    def untied(module) -> bool:
        params = list(module.parameters())
        return bool(params) and all(owner[id(p)] in head_names for p in params)

    base = getattr(model, "base_model", model)
    found: list[str] = []

    def walk(module, prefix: str) -> None:
        for child_name, child in module.named_children():
            full = f"{prefix}{child_name}"
            if child is base:
                continue
            if untied(child):
                found.append(full)
            else:
                walk(child, f"{full}.")

    walk(model, "")
    return found


def _apply_lora(model, strategy_cfg: StrategyConfig, task: str):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers.pytorch_utils import Conv1D

    parts = model_parts(model)
    targets = list(strategy_cfg.lora_targets or default_lora_targets(model, task))
    module_names = [name for name, _ in model.named_modules()]
    matched = [n for n in module_names if any(n == t or n.endswith("." + t) for t in targets)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in module_names)]
    if missing:
        raise ConfigError(
            f"LoRA target module(s) {', '.join(missing)} do not exist in this model; linear layers "
            f"it has: {', '.join(_linear_names(model)[:12])}.",
            field="strategy.lora_targets",
        )
    fan_in_fan_out = any(isinstance(model.get_submodule(n), Conv1D) for n in matched)
    # The head stays trainable (its untied modules are trained and saved with the adapter). Causal
    # LMs keep their (usually tied, vocabulary-sized) lm_head frozen, as is usual with LoRA.
    head_modules = [] if task in ("causal", "sft") else _untied_head_modules(model, parts)
    task_type = {"classification": TaskType.SEQ_CLS, "causal": TaskType.CAUSAL_LM, "sft": TaskType.CAUSAL_LM}.get(task)
    lora_config = LoraConfig(
        r=strategy_cfg.lora_r,
        lora_alpha=strategy_cfg.lora_alpha,
        lora_dropout=strategy_cfg.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=fan_in_fan_out,
        modules_to_save=list(head_modules) or None,  # a copy: peft appends its own names
        task_type=task_type,
    )
    try:
        peft_model = get_peft_model(model, lora_config)
    except ValueError as err:
        raise ConfigError(f"LoRA could not be applied: {err}", field="strategy.lora_targets") from None
    trainable_n, total_n = count_params(peft_model)
    head = f"; head trained: {', '.join(head_modules)}" if head_modules else ""
    text = (
        f"lora: rank {strategy_cfg.lora_r}, alpha {strategy_cfg.lora_alpha} on {', '.join(targets)}{head}"
        f" — {human_count(trainable_n)} of {human_count(total_n)} parameters train."
    )
    return peft_model, StrategyPlan(trainable_n, total_n, text, [], "lora")


# ---- gradual unfreezing ----------------------------------------------------------------------

class GradualUnfreezer:
    """Unfreezes the plan's groups one at a time (top block first, embeddings last).

    It only flips `requires_grad`. The engine's optimizer already holds every parameter, frozen ones
    included (see core.training.trainer.TuneboardTrainer.create_optimizer): AdamW skips a parameter while its grad
    is None, and once thawed it trains on the same schedule, with optimizer state that a resumed run
    restores like any other.
    """

    def __init__(self, model, plan: StrategyPlan):
        self.model = model
        self.groups = list(plan.unfreeze_groups)
        self.phase = 0  # how many groups are unfrozen

    @property
    def done(self) -> bool:
        """True once every group trains."""
        return self.phase >= len(self.groups)

    def unfreeze_next(self) -> str | None:
        """Unfreeze the next group; return a log message, or None when everything already trains."""
        if self.done:
            return None
        group = self.groups[self.phase]
        self.phase += 1
        names = set(group.params)
        for name, param in self.model.named_parameters():
            if name in names:
                param.requires_grad = True
        trainable, total = count_params(self.model)
        return f"Unfroze {group.label} (trainable {human_count(trainable)} / {human_count(total)})"


# ---- estimating (Setup page) -----------------------------------------------------------------

def estimate_params(cfg: RunConfig, num_labels: int = 2) -> tuple[int, int]:
    """(trainable, total) for cfg's model/task/strategy without loading weights (meta device, cached)."""
    s = cfg.strategy
    return _estimate_cached(
        str(cfg.model.source),
        cfg.task,
        s.name,
        s.freeze_layers,
        s.lora_r,
        s.lora_alpha,
        s.lora_dropout,
        tuple(s.lora_targets or ()),
        num_labels,
        cfg.model.trust_remote_code,
    )


@functools.lru_cache(maxsize=64)
def _estimate_cached(source, task, name, freeze_layers, r, alpha, dropout, targets, num_labels, remote_code):
    from core.models import empty_model

    model = empty_model(ModelConfig(source=source, trust_remote_code=remote_code), task, num_labels=num_labels)
    strategy = StrategyConfig(
        name=name, freeze_layers=freeze_layers, lora_r=r, lora_alpha=alpha, lora_dropout=dropout,
        lora_targets=list(targets) or None,
    )
    _, plan = apply_strategy(model, strategy, task)
    return plan.trainable_params, plan.total_params
