"""Which device a run uses, and whether bf16 is worth it there."""

from __future__ import annotations

import functools
import os

import torch


@functools.lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    # Without AVX512-BF16 or AMX, bf16 matmuls ran ~160x slower than fp32 on our CPUs.
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(requested: str = "auto") -> str:
    """'cuda', 'mps' or 'cpu' for a requested device; a missing accelerator falls back to CPU."""
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if requested in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def use_bf16(device: str, precision: str = "auto") -> bool:
    """bf16 only where the hardware runs it fast, unless the user insists."""
    if precision == "bf16":
        return True
    if precision != "auto":
        return False
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    if device == "cpu":
        return _cpu_has_fast_bf16()  # AVX512-BF16 / AMX: bf16 matmuls ~2.5x fp32; elsewhere ~160x slower
    return False


def physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def describe_device() -> str:
    """One line for the sidebar, e.g. 'NVIDIA H100 (bf16)' or 'CPU: 2 cores, AVX2, fp32'."""
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16/fp32"
        return f"{name} ({memory:.0f} GiB, {precision})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    capability = torch.backends.cpu.get_cpu_capability()
    precision = "bf16 capable" if _cpu_has_fast_bf16() else "fp32"
    return f"CPU: {physical_cores()} cores, {capability}, {precision}"


def rank_and_world_size() -> tuple[int, int]:
    """(this process's rank, number of processes) as torchrun / accelerate launch set them; (0, 1) alone."""
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)
