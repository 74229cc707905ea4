"""Generated answers to chats, and how they score: the shared ground of probes, prompting and `core evaluate`.

reply_to_chats renders each chat with the model's chat template (the plain one when it has none),
adds the generation prompt and decodes greedily, in batches, left-padded so that every row continues
from its last real token, with the KV cache generate() keeps by default. score_answers compares
answers with references after normalise_answer, and, when the references come from a small set of
labels, maps every answer to one of them (or to none) so that the label metrics apply.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.data.instructions import map_to_label, normalise_answer

Chat = Sequence[Mapping[str, str]]

ANSWER_BATCH_SIZE = 32  # rows per generate() call: decode steps are overhead-bound, so 32 answered 1.26x faster than 16 (bench_generation)
ANSWER_NEW_TOKENS = 32  # a label or a sentence; a longer answer is cut


def render_prompts(tokenizer: Any, chats: Sequence[Chat]) -> list[str]:
    """Each chat as text ending in the assistant's generation prompt."""
    from core.data.instructions import PLAIN_CHAT_TEMPLATE

    template = getattr(tokenizer, "chat_template", None) or PLAIN_CHAT_TEMPLATE
    return [tokenizer.apply_chat_template([dict(m) for m in chat], chat_template=template, tokenize=False,
                                          add_generation_prompt=True) for chat in chats]


def reply_to_chats(model: Any, tokenizer: Any, chats: Sequence[Chat], *, max_new_tokens: int = ANSWER_NEW_TOKENS,
                   batch_size: int = ANSWER_BATCH_SIZE, max_length: int = 1024,
                   on_batch: Callable[[int, int], None] | None = None) -> list[str]:
    """The model's greedy reply to each chat (its last turn being the user's), stripped.

    A prompt longer than max_length tokens loses its oldest tokens, so that the generation prompt at its
    end survives. `on_batch(done, total)` is called after every batch (a CLI's progress line).
    """
    by_position: dict[int, str] = {}
    for batch in answer_batches(model, tokenizer, chats, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                max_length=max_length, with_probabilities=False):
        by_position.update(zip(batch.positions, batch.replies, strict=True))
        if on_batch is not None:
            on_batch(len(by_position), len(chats))
    return [by_position[i] for i in range(len(chats))]


def reply_to_prompts(model: Any, tokenizer: Any, prompts: Sequence[str], **kwargs: Any) -> list[str]:
    """Greedy replies to single user messages."""
    return reply_to_chats(model, tokenizer, [[{"role": "user", "content": p}] for p in prompts], **kwargs)


def exact_match(answer: Any, reference: Any) -> bool:
    """Whether two answers are the same after normalise_answer (case, spacing, end punctuation)."""
    return normalise_answer(answer) == normalise_answer(reference) != ""


def score_answers(answers: Sequence[Any], references: Sequence[Any],
                  label_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Exact match of answers against references; with label names, also each answer's label and accuracy/F1.

    Returns {"exact_match": share, "rows": n} and, with label_names, "labels" (each answer's label or
    None), "accuracy" (mapped label == reference's label) and "f1" (macro over the labels).
    """
    n = len(references)
    matches = [exact_match(a, r) for a, r in zip(answers, references, strict=True)]
    result: dict[str, Any] = {"rows": n, "exact_match": (sum(matches) / n) if n else 0.0}
    if label_names:
        mapped = [map_to_label(a, label_names) for a in answers]
        gold = [map_to_label(r, label_names) for r in references]
        result["labels"] = mapped
        result["accuracy"] = (sum(m is not None and m == g for m, g in zip(mapped, gold, strict=True)) / n) if n else 0.0
        result["f1"] = _macro_f1(mapped, gold, label_names)
        result["unmapped"] = sum(m is None for m in mapped)
    return result


def _macro_f1(predicted: Sequence[str | None], gold: Sequence[str | None], label_names: Sequence[str]) -> float:
    """Macro F1 over the labels that occur in gold or predictions; an unmapped answer is wrong for every label."""
    present = [name for name in label_names if name in set(gold) | set(predicted)]
    if not present:
        return 0.0
    scores = []
    for name in present:
        tp = sum(p == name and g == name for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == name and g != name for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != name and g == name for p, g in zip(predicted, gold, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def small_label_set(references: Sequence[Any], *, most: int = 20) -> list[str] | None:
    """The distinct references, when there are few enough of them (and repeated) to be labels; else None."""
    seen: dict[str, str] = {}
    for reference in references:
        key = normalise_answer(reference)
        if key:
            seen.setdefault(key, str(reference).strip())
    if not seen or len(seen) > most or len(seen) * 2 > len(references):
        return None
    return sorted(seen.values())


# ---- answering batch by batch, with each answer's probability -----------------------------------

@dataclass(frozen=True)
class AnsweredBatch:
    """One generate() call: the positions of its chats among those given, their replies, and how sure the model was."""

    positions: list[int]
    replies: list[str]
    probabilities: list[float]  # the model's probability of its whole greedy reply, its end of turn included


def answer_batches(model: Any, tokenizer: Any, chats: Sequence[Chat], *, max_new_tokens: int = ANSWER_NEW_TOKENS,
                   batch_size: int = ANSWER_BATCH_SIZE, max_length: int = 1024,
                   with_probabilities: bool = True, share_prefix: bool = True) -> Iterator[AnsweredBatch]:
    """The replies reply_to_chats gives, one batch at a time (shortest prompts first), each with its probability.

    A generator, so that a caller can stop or report progress between batches (the prompt strategy's pass,
    the per-example predictions). A prompt longer than max_length loses its oldest tokens: few-shot
    examples go before the question does. The tokens every prompt starts with (the system turn, an
    instruction and its list of labels) are run through the model once, and each batch continues from
    a copy of their KV cache: see SharedPrefix (share_prefix=False runs every row from its first token,
    the baseline bench_generation measures against).
    """
    import torch

    rows_ids = _left_truncated_ids(tokenizer, render_prompts(tokenizer, chats), max_length)
    # As example_pass finds it; probes.device_of is not imported, because probes imports this module.
    device = next(model.parameters()).device
    was_training = model.training
    order = sorted(range(len(rows_ids)), key=lambda i: len(rows_ids[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    try:
        with torch.no_grad():
            prefix = SharedPrefix.of(model, rows_ids if share_prefix else [], device)
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                input_ids, attention_mask = prefix.batch_inputs([rows_ids[i] for i in rows], pad_id)
                out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                     past_key_values=prefix.cache_for(len(rows)), max_new_tokens=max_new_tokens,
                                     do_sample=False, pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id,
                                     output_logits=with_probabilities, return_dict_in_generate=True)
                new = out.sequences[:, input_ids.shape[1]:]
                replies = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]
                probabilities = (_reply_probabilities(out.logits, new, tokenizer.eos_token_id) if with_probabilities
                                 else [float("nan")] * len(rows))
                yield AnsweredBatch(rows, replies, probabilities)
    finally:
        model.train(was_training)


MIN_SHARED_PREFIX = 8  # tokens: below this, prefilling them once saves less than copying their cache costs


@dataclass(frozen=True)
class SharedPrefix:
    """The tokens all prompts start with, and the model's KV cache after them (None when too few are shared).

    Evaluation prompts built from one template share their opening: the chat template's system turn,
    the instruction and the list of labels, often most of each prompt. Prefilling that once instead of
    once per row cuts the prompt work of a batch to its rows' own endings. Rows are then laid out as
    [prefix][left padding][own tokens]: the attention mask hides the padding and generate() numbers the
    positions from the mask, so every row sees exactly what it would see unpadded.
    """

    ids: list[int]
    cache: Any

    @classmethod
    def of(cls, model: Any, rows_ids: Sequence[Sequence[int]], device: Any) -> SharedPrefix:
        import torch

        if len(rows_ids) < 2:
            return cls([], None)
        shortest = min(len(ids) for ids in rows_ids)
        length = 0
        # Every row keeps at least one token of its own, which the first generation step runs.
        while length < shortest - 1 and all(ids[length] == rows_ids[0][length] for ids in rows_ids):
            length += 1
        if length < MIN_SHARED_PREFIX:
            return cls([], None)
        ids = list(rows_ids[0][:length])
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
        return cls(ids, out.past_key_values)

    def batch_inputs(self, rows_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
        """(input_ids, attention_mask) of a batch: the prefix, then each row's own tokens padded on the left."""
        import torch

        own = [list(ids[len(self.ids):]) for ids in rows_ids]
        width = max(len(ids) for ids in own)
        input_ids = torch.tensor([self.ids + [pad_id] * (width - len(ids)) + ids for ids in own], dtype=torch.long)
        attention_mask = torch.tensor([[1] * len(self.ids) + [0] * (width - len(ids)) + [1] * len(ids) for ids in own],
                                      dtype=torch.long)
        return input_ids, attention_mask

    def cache_for(self, rows: int) -> Any:
        """A copy of the prefix's cache with one row per prompt (generate() extends the cache it is given)."""
        if self.cache is None:
            return None
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def _left_truncated_ids(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Each text's token ids, cut on the left to max_length, so that every row ends in its generation prompt."""
    side = tokenizer.truncation_side
    tokenizer.truncation_side = "left"
    try:
        return [list(ids) for ids in tokenizer(texts, add_special_tokens=False, truncation=True,
                                               max_length=max_length)["input_ids"]]
    finally:
        tokenizer.truncation_side = side


def _reply_probabilities(logits: Sequence[Any], new: Any, eos_token_id: Any) -> list[float]:
    """Each row's probability of its generated tokens up to and including its first end of turn.

    logits: one [rows, vocabulary] tensor per generated position; new: [rows, positions] token ids.
    """
    import torch

    new = new.cpu()
    if not logits:
        return [1.0] * int(new.shape[0])
    chosen = torch.stack([torch.log_softmax(step.float().cpu(), dim=-1).gather(1, new[:, t:t + 1]).squeeze(1)
                          for t, step in enumerate(logits)], dim=1)  # [rows, positions]
    ends = torch.zeros(new.shape, dtype=torch.bool)
    for token in [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []):
        ends |= new == token
    # A row that has ended is padded after its end of turn: those positions are not part of its reply.
    after_end = (torch.cumsum(ends.int(), dim=1) - ends.int()) > 0
    return torch.exp(chosen.masked_fill(after_end[:, :chosen.shape[1]], 0.0).sum(dim=1)).tolist()
