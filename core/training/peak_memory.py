"""A run's peak memory: what the accelerator held at most (CUDA), else the training process's peak RSS.

The engine calls `reset(device)` when a run starts and records `peak_bytes(device)` in status.json
(`peak_memory_bytes`) when it ends. The CPU figure is the process's resident-set high-water mark. A
process that trains several runs one after another (the CLI sweep, TUNEBOARD_TRAIN_IN_PROCESS) would
otherwise report the largest run for every later one, so on Linux the mark is reset at each start
through /proc/self/clear_refs; where that is not allowed, the figure is the process's peak so far.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def reset(device: str) -> None:
    """Start measuring this run's peak from the current usage."""
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    try:
        CLEAR_REFS.write_text("5")  # 5: reset the peak RSS ("high water mark") to the current RSS
    except OSError:
        pass  # not Linux, or not permitted: the process-wide peak stands in


def peak_bytes(device: str) -> int:
    """The peak since `reset`: CUDA's max allocated memory, else the process's peak RSS, in bytes."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    try:
        for line in STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):  # "VmHWM:   123456 kB", the mark clear_refs resets
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
