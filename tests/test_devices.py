"""bf16 only where the hardware runs it fast: the decision per CPU flag set, device and precision."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from core import devices


@pytest.fixture
def cpu_flags(monkeypatch):
    """Set what /proc/cpuinfo says, for the bf16 decision."""

    def set_flags(flags: str) -> None:
        devices._cpu_has_fast_bf16.cache_clear()
        monkeypatch.setattr("builtins.open", _fake_cpuinfo(flags))

    yield set_flags
    devices._cpu_has_fast_bf16.cache_clear()


def _fake_cpuinfo(flags: str):
    import io

    real_open = open

    def fake(path, *args, **kwargs):
        if str(path) == "/proc/cpuinfo":
            return io.StringIO(f"processor : 0\nflags : fpu sse2 avx2 {flags}\n")
        return real_open(path, *args, **kwargs)

    return fake


@pytest.mark.parametrize(
    ("flags", "precision", "expected"),
    [
        ("avx512f avx512_bf16", "auto", True),   # AMD EPYC / Intel Cooper Lake: bf16 ~2.5x fp32
        ("amx_bf16 amx_tile", "auto", True),     # Intel Sapphire Rapids AMX
        ("", "auto", False),                     # AVX2 only: bf16 ~160x slower, keep fp32
        ("avx512f", "auto", False),              # AVX-512 without its bf16 extension
        ("", "bf16", True),                      # the user insists
        ("avx512_bf16", "fp32", False),          # the user insists
        ("avx512_bf16", "fp16", False),          # fp16 is for GPUs; on a CPU it means fp32
    ],
)
def test_cpu_bf16_decision(cpu_flags, flags, precision, expected):
    cpu_flags(flags)
    assert devices.use_bf16("cpu", precision) is expected


def test_mps_keeps_fp32_unless_asked(cpu_flags):
    cpu_flags("avx512_bf16")
    assert devices.use_bf16("mps", "auto") is False
    assert devices.use_bf16("mps", "bf16") is True


# ---- the training process's memory (tune_training_process) ----------------------------------

TUNE_SCRIPT = """
import json, os, sys
if sys.argv[1] == "torch-first":
    import torch
from core.devices import tune_training_process
applied = tune_training_process()
print(json.dumps({"applied": applied, "env": os.environ.get("THP_MEM_ALLOC_ENABLE"),
                  "spins": os.environ.get("GOMP_SPINCOUNT"), "policy": os.environ.get("OMP_WAIT_POLICY")}))
"""


def _tuned_in_fresh_process(order: str, **env: str) -> dict:
    import json
    import subprocess

    inherited = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", TUNE_SCRIPT, order], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          check=True, env={**inherited, **env})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="glibc and transparent huge pages are Linux's")
def test_a_training_process_keeps_its_memory_when_tuned_before_torch():
    found = _tuned_in_fresh_process("tune-first")
    assert found == {"applied": {"huge_pages": True, "malloc_keeps_memory": True, "openmp_waiting": True},
                     "env": "1", "spins": "100000", "policy": "PASSIVE"}


@pytest.mark.skipif(sys.platform != "linux", reason="glibc and transparent huge pages are Linux's")
def test_huge_pages_are_not_claimed_once_torch_is_loaded_nor_against_the_users_setting():
    torch_first = _tuned_in_fresh_process("torch-first")
    assert torch_first["applied"]["huge_pages"] is False and torch_first["applied"]["openmp_waiting"] is False
    assert torch_first["spins"] is None and torch_first["policy"] is None  # libgomp has read its environment
    assert _tuned_in_fresh_process("tune-first", THP_MEM_ALLOC_ENABLE="0", GOMP_SPINCOUNT="0") == {
        "applied": {"huge_pages": False, "malloc_keeps_memory": True, "openmp_waiting": False}, "env": "0", "spins": "0",
        "policy": "PASSIVE"}
