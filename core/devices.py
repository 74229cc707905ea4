"""Which device a run uses, and whether bf16 is worth it there.

torch is imported only where it is needed (a training process has it anyway). The pages ask
`pick_device` and `describe_device` on the script thread before anything has imported torch (~2 s,
~6 s with transformers): there the answer comes from the hardware itself (`probe_hardware`: the
installed torch build, nvidia-smi, /proc/cpuinfo), following the same rules as torch does.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NVIDIA_SMI_TIMEOUT_S = 5.0


@functools.lru_cache(maxsize=1)
def _cpu_has_fast_bf16() -> bool:
    # Without AVX512-BF16 or AMX, bf16 matmuls ran ~160x slower than fp32 on our CPUs.
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> set[str]:
    try:
        info = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return set()
    return {flag for line in info.splitlines() if line.startswith(("flags", "Features"))
            for flag in line.split(":", 1)[-1].split()}


def loaded_torch():
    """The torch module when some thread has finished importing it; None otherwise (never imports it)."""
    module = sys.modules.get("torch")
    spec = getattr(module, "__spec__", None)
    if module is None or getattr(spec, "_initializing", False):  # still being imported elsewhere
        return None
    return module


@dataclass(frozen=True)
class Hardware:
    """What the machine offers, found without importing torch."""

    gpu_name: str | None  # the first visible CUDA GPU, when the installed torch can use it
    gpu_memory_gib: float | None
    gpu_bf16: bool  # compute capability 8.0 or more (Ampere on), as torch.cuda.is_bf16_supported
    mps: bool
    cpu_capability: str  # as torch.backends.cpu.get_cpu_capability(): AVX512, AVX2, DEFAULT, ...


def torch_build_accelerator() -> str | None:
    """'cuda' or 'rocm' when the installed torch wheel was built for one, read from torch/version.py."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    try:
        source = (Path(locations[0]) / "version.py").read_text(encoding="utf-8") if locations else ""
    except OSError:
        return None
    for name, kind in (("cuda", "cuda"), ("hip", "rocm")):
        if re.search(rf"^{name}\b[^=]*=\s*['\"]", source, re.MULTILINE):
            return kind
    return None


def parse_nvidia_smi(output: str) -> list[tuple[str, float, float]]:
    """(name, memory GiB, compute capability) per GPU from `nvidia-smi --query-gpu=name,memory.total,
    compute_cap --format=csv,noheader,nounits`."""
    gpus = []
    for line in output.strip().splitlines():
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) != 3:
            continue
        try:
            gpus.append((parts[0], float(parts[1]) / 1024, float(parts[2])))
        except ValueError:
            continue
    return gpus


def _visible_gpu(gpus: list) -> tuple | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus[0] if gpus else None
    first = visible.split(",")[0].strip()
    if not first or first.startswith("-"):
        return None  # hidden from this process, as torch would see it
    index = int(first) if first.isdigit() else 0
    return gpus[index] if index < len(gpus) else None


def _cpu_capability(flags: set[str]) -> str:
    """ATen's CPU dispatch level (torch.backends.cpu.get_cpu_capability) from the CPU's flags."""
    override = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().upper()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"} <= flags:
        found = "AVX512"
    elif {"avx2", "fma"} <= flags:
        found = "AVX2"
    elif flags:
        found = "DEFAULT"
    else:
        return platform.machine() or "DEFAULT"
    order = ["DEFAULT", "AVX2", "AVX512"]
    return override if override in order and order.index(override) < order.index(found) else found


@functools.lru_cache(maxsize=1)
def probe_hardware() -> Hardware:
    """The machine's accelerator and CPU, without torch (nvidia-smi runs once, at most 5 s)."""
    gpu = None
    if torch_build_accelerator() == "cuda" and shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False,
            )
            gpu = _visible_gpu(parse_nvidia_smi(done.stdout)) if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    mps = sys.platform == "darwin" and platform.machine() == "arm64"
    return Hardware(
        gpu_name=gpu[0] if gpu else None, gpu_memory_gib=gpu[1] if gpu else None,
        gpu_bf16=bool(gpu and gpu[2] >= 8.0), mps=mps, cpu_capability=_cpu_capability(_cpu_flags()),
    )


def pick_device(requested: str = "auto") -> str:
    """'cuda', 'mps' or 'cpu' for a requested device; a missing accelerator falls back to CPU."""
    torch = loaded_torch()
    if torch is None:  # a page before the warm-up imported torch: ask the hardware
        hardware = probe_hardware()
        if requested in ("auto", "cuda") and hardware.gpu_name:
            return "cuda"
        if requested in ("auto", "mps") and hardware.mps:
            return "mps"
        return "cpu"
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
        import torch

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
    """One line for the sidebar, e.g. 'NVIDIA H100 (80 GiB, bf16)' or 'CPU: 2 cores, AVX2, fp32'."""
    torch = loaded_torch()
    if torch is None:
        return _describe_hardware(probe_hardware())
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


def _describe_hardware(hardware: Hardware) -> str:
    """describe_device's line from the torch-free probe (same wording)."""
    if hardware.gpu_name:
        precision = "bf16" if hardware.gpu_bf16 else "fp16/fp32"
        return f"{hardware.gpu_name} ({hardware.gpu_memory_gib:.0f} GiB, {precision})"
    if hardware.mps:
        return "Apple GPU (MPS)"
    precision = "bf16 capable" if _cpu_has_fast_bf16() else "fp32"
    return f"CPU: {physical_cores()} cores, {hardware.cpu_capability}, {precision}"


def rank_and_world_size() -> tuple[int, int]:
    """(this process's rank, number of processes) as torchrun / accelerate launch set them; (0, 1) alone."""
    return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)


# glibc's mallopt parameters (malloc.h) and the largest values it accepts on 64-bit Linux.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
KEEP_FREED_HEAP_BYTES = 2**31 - 1     # mallopt takes an int
HEAP_ALLOCATIONS_UP_TO_BYTES = 32 * 2**20  # glibc refuses more (half its 64 MiB heap size)
HEAP_GROWTH_PAD_BYTES = 256 * 2**20
# OpenMP threads that wait at a barrier sleep (PASSIVE) after a short spin: libgomp's GOMP_SPINCOUNT
# overrides the spin the policy implies (its default without a policy: 300,000 spins, ~3 ms).
OPENMP_WAIT_POLICY = "PASSIVE"
OPENMP_SPINS_BEFORE_SLEEP = "100000"


def tune_training_process() -> dict[str, bool]:
    """Keep a training process's memory mapped between steps, and its OpenMP threads from over-spinning.
    Call before torch is imported.

    Why: torch's CPU allocator has no cache. Every step frees its gradients and activations, glibc
    hands the big blocks back to the kernel, and the next step faults them in again, zero-filled,
    4 KiB at a time: ~20k page faults a MiniLM step, ~10-15% of its time on our 2-core CPU
    (bench/bench_levers.py, allocator). Two settings stop that: glibc keeps freed memory and serves
    blocks up to 32 MiB from its heap, and torch backs larger blocks (the 47 MB word-embedding
    gradient) with 2 MiB transparent huge pages. Faults fell to ~500 a step.

    libgomp's default spin at a barrier burns a core that the process's other threads (the status
    writer, the tokeniser) or another program then wait for. Sleeping after a third of that spin
    trained classification runs from the CLI at a median 96 samples/s against 87 with libgomp's
    default (two interleaved A/Bs, 4 runs each, on the 2-core EPYC; masked-LM the same within noise),
    and a watched dashboard run faster (bench_watching). A plain Trainer gained nothing. The
    dashboard's training process runs with the same settings. libgomp reads them when torch loads
    it; a user's settings are kept. Returns which settings applied.
    """
    applied = {"huge_pages": False, "malloc_keeps_memory": False, "openmp_waiting": False}
    if sys.platform != "linux":
        return applied
    if loaded_torch() is None and "torch" not in sys.modules:
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # read once, at torch's first allocation
        applied["huge_pages"] = os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
        os.environ.setdefault("OMP_WAIT_POLICY", OPENMP_WAIT_POLICY)
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPINS_BEFORE_SLEEP)
        applied["openmp_waiting"] = (os.environ["OMP_WAIT_POLICY"], os.environ["GOMP_SPINCOUNT"]) == (
            OPENMP_WAIT_POLICY, OPENMP_SPINS_BEFORE_SLEEP)
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt  # glibc only; musl has none
    except (OSError, AttributeError):
        return applied
    applied["malloc_keeps_memory"] = all(
        mallopt(option, value) == 1
        for option, value in ((_M_MMAP_THRESHOLD, HEAP_ALLOCATIONS_UP_TO_BYTES),
                              (_M_TRIM_THRESHOLD, KEEP_FREED_HEAP_BYTES),
                              (_M_TOP_PAD, HEAP_GROWTH_PAD_BYTES))
    )
    return applied
