"""A max length that follows the data: what model.max_length means when it is left empty.

The training rows are tokenised (all of them up to LENGTH_SAMPLE_ROWS, a seeded sample past it) as
the engine will tokenise them: plain texts with the tokenizer's special tokens, chats rendered with
the chat template. The fitted length covers AUTO_MAX_LENGTH_COVERAGE of them, rounded up to a
multiple of 8, at least 16, capped by the ceiling the loader gives (the model's positions and
AUTO_MAX_LENGTH_CAP). The run log says what was chosen and how many rows are still cut.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import AUTO_MAX_LENGTH_COVERAGE

LENGTH_SAMPLE_ROWS = 2000  # tokenising (sft: rendering) this many rows takes well under a second; past it a sample estimates well
SHORTEST_FITTED_LENGTH = 16


@dataclass(frozen=True)
class FittedLength:
    """The chosen max length and what it leaves out, for the run log and the data report."""

    max_length: int
    longest: int
    rows_measured: int
    rows_cut: int  # among the measured rows
    sampled: bool

    def log_line(self, *, fitted: bool) -> str:
        how = (f"follows the data ({AUTO_MAX_LENGTH_COVERAGE:.0%} of the training rows fit)" if fitted
               else "as configured")
        share = self.rows_cut / self.rows_measured if self.rows_measured else 0.0
        counted = (f"about {share:.1%} of the training rows" if self.sampled
                   else f"{self.rows_cut} of {self.rows_measured} training row{'s' if self.rows_measured != 1 else ''}")
        cut = (f"{counted} are longer and will be cut (the longest has {self.longest} tokens)" if self.rows_cut
               else f"no training row is cut (the longest has {self.longest} tokens)")
        return f"Max length {self.max_length} tokens, {how}: {cut}."


def token_lengths(tokenizer: Any, texts: list[str], task: str, *, chat_template: str | None = None) -> np.ndarray:
    """Tokens per row as the engine encodes it, untruncated (chats rendered whole, answers included)."""
    if task == "sft":
        from core.data.instructions import rendered_length

        return np.asarray([rendered_length(tokenizer, json.loads(text), chat_template) for text in texts],
                          dtype=np.int64)
    encoded = tokenizer([str(t) for t in texts], truncation=False, verbose=False)
    return np.asarray([len(ids) for ids in encoded["input_ids"]], dtype=np.int64)


def measure(dataset: Any, tokenizer: Any, task: str, max_length: int | None, ceiling: int, *, seed: int = 0,
            chat_template: str | None = None) -> FittedLength:
    """Fit a max length to the training rows (max_length None), or count what a configured one cuts."""
    rows = len(dataset)
    sampled = rows > LENGTH_SAMPLE_ROWS
    if sampled:
        positions = np.sort(np.random.default_rng(seed).choice(rows, LENGTH_SAMPLE_ROWS, replace=False))
        texts = [str(t) for t in dataset.select(positions.tolist())["text"]]
    else:
        texts = [str(t) for t in dataset["text"]]
    lengths = token_lengths(tokenizer, texts, task, chat_template=chat_template)
    longest = int(lengths.max()) if len(lengths) else 0
    chosen = fitted_length(lengths, ceiling) if max_length is None else int(max_length)
    return FittedLength(max_length=chosen, longest=longest, rows_measured=len(lengths),
                        rows_cut=int((lengths > chosen).sum()), sampled=sampled)


def fitted_length(lengths: np.ndarray, ceiling: int) -> int:
    """The coverage quantile of the lengths, rounded up to a multiple of 8, within [16, ceiling]."""
    if not len(lengths):
        return min(ceiling, SHORTEST_FITTED_LENGTH)
    covering = float(np.quantile(lengths, AUTO_MAX_LENGTH_COVERAGE, method="inverted_cdf"))  # the shortest that fits 99%
    rounded = int(math.ceil(covering / 8) * 8)
    return max(min(SHORTEST_FITTED_LENGTH, ceiling), min(rounded, ceiling))
