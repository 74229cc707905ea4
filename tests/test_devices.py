"""bf16 only where the hardware runs it fast: the decision per CPU flag set, device and precision."""

from __future__ import annotations

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
