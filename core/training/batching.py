"""How a run's training rows become batches: the length-grouped order, and the tokens a padded batch costs.

The Trainer's sampler (core.training.trainer) draws the order here; core.plan.estimate, which Setup calls on
every rerun, prices a run's batches with the same grouping, so nothing here imports torch at import.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

MEGABATCH_BATCHES = 50  # transformers' LengthGroupedSampler


def length_grouped_indices(lengths: Sequence[int], batch_size: int, generator: Any = None) -> list[int]:
    """transformers' `get_length_grouped_indices`, the same order from the same random state, sorted by numpy.

    Rows are shuffled (torch.randperm, which a distributed sampler seeds), cut into mega-batches of up to
    MEGABATCH_BATCHES batches, each sorted longest first (stably, as Python's sorted() is), and the longest
    row of all leads. transformers sorts each mega-batch in Python with a key function: ~0.5 s at 900k
    rows, paid before the first step of every epoch; one stable numpy sort does it in a tenth of that.
    """
    import numpy as np
    import torch

    n = len(lengths)
    if n == 0:
        return []
    per_megabatch = (min(n // (batch_size * 4), MEGABATCH_BATCHES) or 1) * batch_size
    shuffled = torch.randperm(n, generator=generator).numpy()
    sizes = np.asarray(lengths, dtype=np.int64)[shuffled]
    # One key orders by mega-batch, then longest first; a stable sort keeps equal rows in shuffled order.
    longest_size = int(sizes.max())
    key = (np.arange(n, dtype=np.int64) // per_megabatch) * (longest_size + 1) + (longest_size - sizes)
    placed = np.argsort(key, kind="stable")
    order, sizes = shuffled[placed], sizes[placed]
    firsts = np.arange(0, n, per_megabatch)  # each mega-batch's longest row
    lead = firsts[int(np.argmax(sizes[firsts]))]  # the first of equals, as torch.argmax picks
    order[[0, lead]] = order[[lead, 0]]
    return order.tolist()


def length_grouped_sampler(batch_size: int, lengths: Sequence[int]) -> Any:
    """transformers' LengthGroupedSampler over `lengths`, its order computed by `length_grouped_indices`."""
    return _sampler_class()(batch_size, lengths=lengths)


@functools.cache
def _sampler_class() -> type:
    """The sampler class, built on first use (its base class needs torch and transformers)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class LengthGroupedOrder(LengthGroupedSampler):
        """transformers' length-grouped sampler, its order computed by numpy."""

        def __iter__(self):
            return iter(length_grouped_indices(self.lengths, self.batch_size, self.generator))

    return LengthGroupedOrder


# ---- what a batch costs ----------------------------------------------------------------------

def sampled_lengths(dataset: Any, limit: int = 2000) -> list[int]:
    """Token lengths of up to `limit` training rows (a seeded sample of larger sets).

    Reading the rows through the dataset tokenises just the sample when the set is tokenised lazily.
    """
    rows = len(dataset)
    picked = sorted(random.Random(0).sample(range(rows), limit)) if rows > limit else list(range(rows))
    return [len(ids) for ids in dataset[picked]["input_ids"]] if picked else []


def padded_tokens_per_row(lengths: Sequence[int], batch_size: int, seed: int = 0, *, rows: int | None = None) -> float:
    """Tokens each row costs once batches are padded to their longest row, batched as the engine does.

    The engine groups by length (Trainer's group_by_length): shuffled rows are cut into mega-batches
    of up to MEGABATCH_BATCHES batches (fewer when that leaves under four mega-batches), each sorted
    by length, so a batch's rows are of similar length. `lengths` may be a sample of the `rows`
    the run trains on; the grouping follows the run's size.
    """
    if not lengths:
        return 0.0
    order = list(lengths)
    random.Random(seed).shuffle(order)
    batch = max(1, batch_size)
    mega = batch * max(1, min((rows or len(order)) // (batch * 4), MEGABATCH_BATCHES))
    total = 0
    for start in range(0, len(order), mega):
        group = sorted(order[start:start + mega], reverse=True)
        for first in range(0, len(group), batch):
            chunk = group[first:first + batch]
            total += chunk[0] * len(chunk)
    return total / len(order)
