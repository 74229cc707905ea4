"""The per-example passes over the evaluation set: label probabilities (classification) and each
example's mean token loss (masked and causal LMs; instruction tuning on its answer tokens only, as it
trains), on length-sorted batches. torch is imported when
a pass runs, not at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# The masked-LM pass draws its masks in row-order batches of this many rows (see mlm_example_masks).
LM_BATCH_SIZE = 8
# Per-example passes run length-sorted batches of about this many padded tokens (at most MAX_PASS_ROWS rows);
# where full [batch, tokens, vocabulary] logits are needed, their size bounds the batch instead.
LM_TOKENS_PER_BATCH = 8192
CLASSIFICATION_TOKENS_PER_BATCH = 8192
LOGITS_BYTES_PER_BATCH = 256 * 2**20
MAX_PASS_ROWS = 512
MLM_MASK_FRACTION = 0.15

def _length_batches(lengths: Sequence[int], tokens_per_batch: int, max_rows: int) -> list[np.ndarray]:
    """Row positions in batches of similar length, longest first, each about `tokens_per_batch` padded tokens.

    Sorted rows waste almost nothing on padding, and the budget keeps the activations (or logits) of
    a batch the same size whether the rows are 10 or 500 tokens long.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        size = max(1, min(max_rows, tokens_per_batch // longest))
        batches.append(order[start:start + size])
        start += size
    return batches


def _padded(rows: dict[str, list[Any]], positions: np.ndarray, tokenizer: Any) -> dict[str, Any]:
    """The rows at `positions` as right-padded tensors: each row keeps its own positions 0..n-1."""
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in rows]
    features = [{c: rows[c][p] for c in columns} for p in positions]
    batch = dict(tokenizer.pad(features, padding_side="right", return_attention_mask=True, return_tensors="pt"))
    out = {c: batch[c] for c in ("input_ids", "attention_mask", "token_type_ids") if c in batch}
    if "labels" in rows:  # instruction tuning: which tokens are trained; -100 on the prompt and the padding
        import torch

        width = out["input_ids"].shape[1]
        out["labels"] = torch.tensor([list(rows["labels"][p]) + [-100] * (width - len(rows["labels"][p]))
                                      for p in positions], dtype=torch.long)
    return out


def _read_columns(dataset: Any, columns: Sequence[str]) -> dict[str, list[Any]]:
    """The tokenised columns the pass needs, read once as Python lists."""
    plain = dataset.with_format(None) if hasattr(dataset, "with_format") else dataset
    present = [c for c in columns if c in plain.column_names]
    return {c: plain[c] for c in present}


def _autocast(device: Any, bf16: bool):
    """bf16 autocast on the model's device when the run trains in bf16; a no-op context otherwise."""
    import contextlib

    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def classification_pass(model: Any, dataset: Any, tokenizer: Any, *, bf16: bool = False,
                        tokens_per_batch: int = CLASSIFICATION_TOKENS_PER_BATCH) -> np.ndarray:
    """Class probabilities [rows, classes] of every example, in row order (computed in length-sorted batches)."""
    import torch

    device = next(model.parameters()).device
    rows = _read_columns(dataset, ("input_ids", "attention_mask", "token_type_ids"))
    lengths = [len(ids) for ids in rows["input_ids"]]
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    try:
        with torch.inference_mode(), _autocast(device, bf16):
            for positions in _length_batches(lengths, tokens_per_batch, MAX_PASS_ROWS):
                batch = _padded(rows, positions, tokenizer)
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                probabilities = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                if out is None:
                    out = np.empty((len(lengths), probabilities.shape[1]), dtype=np.float32)
                out[positions] = probabilities
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def mlm_example_masks(input_ids: Sequence[Sequence[int]], special_tokens_mask: Sequence[Sequence[int]] | None,
                      seed: int, padding_side: str = "right",
                      attention_mask: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
    """Per example, which of its tokens the masked-LM pass hides: a seeded ~15% of the non-special ones, at least one.

    The draws are made as the pass has always made them, batch by batch of LM_BATCH_SIZE rows in row
    order, each batch padded to its longest row on the tokenizer's padding side; so masks (and losses)
    do not depend on how the pass batches its work, and a base stage written before still matches.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    masks: list[np.ndarray] = []
    for start in range(0, len(input_ids), LM_BATCH_SIZE):
        chunk = range(start, min(len(input_ids), start + LM_BATCH_SIZE))
        width = max(len(input_ids[row]) for row in chunk)
        draws = torch.rand((len(chunk), width), generator=generator).numpy()
        for i, row in enumerate(chunk):
            n = len(input_ids[row])
            offset = width - n if padding_side == "left" else 0
            draw = draws[i, offset:offset + n]
            special = np.asarray(special_tokens_mask[row], dtype=bool) if special_tokens_mask is not None else np.zeros(n, bool)
            maskable = ~special
            if attention_mask is not None:
                maskable &= np.asarray(attention_mask[row], dtype=bool)
            chosen = maskable & (draw < MLM_MASK_FRACTION)
            if maskable.any():
                chosen[int(np.argmin(np.where(maskable, draw, 2.0)))] = True
            masks.append(chosen)
    return masks


def example_loss_pass(model: Any, dataset: Any, tokenizer: Any, task: str, seed: int, *, bf16: bool = False) -> np.ndarray:
    """Mean token loss of every example, in row order.

    Causal: next-token loss over the example's tokens; sft: over its answer tokens (labels not -100). Masked: loss on a fixed, seeded 15% of its
    non-special tokens (at least one; see mlm_example_masks), replaced by the mask token; the same seed
    gives the base and the fine-tuned model the same masks, so their losses compare example by example.
    Rows go through the model in length-sorted batches, right-padded, so each example's loss is its
    own whatever its neighbours; a masked LM projects only the masked positions onto the vocabulary
    (core.models.fast_mlm), which is most of the work saved.
    """
    import torch
    import torch.nn.functional as F

    from core.models.fast_mlm import answer_hidden, masked_only_parts

    device = next(model.parameters()).device
    wanted = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask") + (("labels",) if task == "sft" else ())
    rows = _read_columns(dataset, wanted)
    count = len(rows["input_ids"])
    lengths = [len(ids) for ids in rows["input_ids"]]
    parts = masked_only_parts(model) if task in ("mlm", "sft") else None
    masks = None
    if task == "mlm":
        masks = mlm_example_masks(rows["input_ids"], rows.get("special_tokens_mask"), seed,
                                  getattr(tokenizer, "padding_side", "right"), rows.get("attention_mask"))
    # Full [batch, tokens, vocabulary] logits are what bounds a batch unless only masked rows are projected.
    vocabulary = int(getattr(model.config, "vocab_size", 0) or 0) or 50_000
    budget = LM_TOKENS_PER_BATCH if parts is not None else max(64, LOGITS_BYTES_PER_BATCH // (4 * vocabulary))
    totals = np.zeros(count, dtype=np.float64)
    counted = np.zeros(count, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _autocast(device, bf16):
            for positions in _length_batches(lengths, budget, MAX_PASS_ROWS):
                batch = _padded(rows, positions, tokenizer)
                input_ids, attention = batch["input_ids"], batch["attention_mask"].bool()
                if task == "mlm":
                    chosen = torch.zeros_like(attention)
                    for i, p in enumerate(positions):
                        chosen[i, :lengths[p]] = torch.from_numpy(masks[p])
                    chosen &= attention
                    targets = input_ids[chosen]
                    batch["input_ids"] = torch.where(chosen, torch.full_like(input_ids, tokenizer.mask_token_id), input_ids)
                    inputs = {k: v.to(device) for k, v in batch.items()}
                    if parts is not None:
                        encoder, head = parts
                        hidden = encoder(**inputs, return_dict=True).last_hidden_state  # [B, T, H]
                        logits = head(hidden[chosen.to(device)])  # [M, V]: masked positions only
                    else:
                        logits = model(**inputs).logits[chosen.to(device)]
                elif parts is not None:
                    # sft: the answer tokens only, each predicted by the position before it, and the batch's shared
                    # opening (system turn, instruction) run once: the head projects a few positions a row.
                    decoder, head = parts
                    labels = batch.pop("labels")
                    inputs = {k: v.to(device) for k, v in batch.items()}
                    hidden, labels = answer_hidden(decoder, inputs, labels.to(device))
                    on_device = labels[:, 1:] != -100
                    targets = labels[:, 1:][on_device]
                    logits = head(hidden[:, :-1][on_device])
                    chosen = on_device.cpu()  # which rows own the scored tokens, read on the host below
                else:
                    # Position t predicts token t+1; both must be real tokens of the row.
                    labels = batch.pop("labels", None)
                    chosen = attention[:, 1:] & attention[:, :-1]
                    if labels is not None:
                        chosen &= labels[:, 1:] != -100
                    targets = input_ids[:, 1:][chosen]
                    logits = model(**{k: v.to(device) for k, v in batch.items()}).logits[:, :-1][chosen.to(device)]
                token_loss = F.cross_entropy(logits.float(), targets.to(device), reduction="none").double().cpu().numpy()
                owner = positions[chosen.nonzero()[:, 0].numpy()]  # [M]: the row each scored token belongs to
                np.add.at(totals, owner, token_loss)
                np.add.at(counted, owner, 1)
    finally:
        model.train(was_training)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counted > 0, totals / np.maximum(counted, 1), np.nan)
    return means.astype(np.float32)
