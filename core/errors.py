"""Typed errors that carry a message a user can act on.

Every error a user can cause is one of these. They are caught once: at the worker-thread boundary
(core.service.jobs), in the CLI (core.__main__), or next to the widget that caused them (pages/).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator


class TuneboardError(Exception):
    """Base class: `str(err)` is a complete sentence with a next step for the user."""

    #: Where the problem is, e.g. "data.text_column", so the UI can show it next to its widget.
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class ConfigError(TuneboardError):
    """A RunConfig value is out of range, unknown or inconsistent."""


class DataError(TuneboardError):
    """A dataset cannot be read, mapped or used for the chosen task."""


class ModelError(TuneboardError):
    """A model cannot be resolved, loaded or used for the chosen task."""


class TrainingError(TuneboardError):
    """Training failed (NaN loss, out of memory, disk full, ...)."""


class RunError(TuneboardError):
    """A run folder is missing, locked or in a state that forbids the action."""


def out_of_memory_kind(err: BaseException) -> str | None:
    """'accelerator' (GPU / MPS memory), 'ram' (host memory) or None, looking through the causes.

    By name and message rather than by class, so this module needs no torch: CUDA raises
    torch.OutOfMemoryError, MPS a RuntimeError "MPS backend out of memory", the host MemoryError or
    "can't allocate memory"; wrappers (accelerate, Trainer) may chain the original as a cause.
    """
    for cause in causes(err):
        text = str(cause)
        if type(cause).__name__ == "OutOfMemoryError" or (
            isinstance(cause, RuntimeError) and "out of memory" in text.lower()
        ):
            return "accelerator"
        if isinstance(cause, MemoryError) or "can't allocate memory" in text:
            return "ram"
    return None


def causes(err: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from, outermost first (OOM and disk-full often arrive wrapped)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_out_of_memory(err: BaseException) -> bool:
    """True when `err` (or an exception it was raised from) is an out-of-memory error."""
    return out_of_memory_kind(err) is not None


def describe_failure(err: BaseException) -> str:
    """A sentence with a next step for an unexpected exception from training."""
    memory = out_of_memory_kind(err)
    if memory == "accelerator":
        return (
            "The GPU ran out of memory. Lower training.batch_size (raise "
            "training.gradient_accumulation_steps to keep the effective batch), lower "
            "model.max_length, or use the lora strategy; then start a new run from this config."
        )
    if memory == "ram":
        return (
            "The machine ran out of memory (RAM). Lower training.batch_size or model.max_length, "
            "or close other programs; then start a new run from this config."
        )
    for cause in causes(err):
        text = str(cause)
        if (isinstance(cause, OSError) and cause.errno == errno.ENOSPC) or "No space left on device" in text:
            where = f" while writing {cause.filename}" if getattr(cause, "filename", None) else ""
            return (
                f"The disk is full{where}. Free space (delete old runs on the Runs page) or lower "
                "training.save_total_limit, then resume this run if it saved a checkpoint, or start a "
                "new run from its config."
            )
    message = " ".join(str(err).split()).rstrip(".") or "no message"
    if len(message) > 300:
        message = message[:297] + "..."
    return f"Training crashed: {type(err).__name__}: {message}. The traceback is in run.log."
