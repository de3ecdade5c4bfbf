"""What this CPU runs natively, from the kernel's list of its instruction-set flags.

Two choices hang on it, and neither changes a single bit of a file, only time: bf16
transforms (emulated bf16 is several times slower than float32) and the engine of the
integer parameter path's int8 GEMMs (torch's int8 GEMM is fast only where oneDNN has a
VNNI or AMX kernel; elsewhere oneDNN's u8 × s8 kernel or exact float32 GEMMs are tens of
times faster).
"""

from __future__ import annotations

import functools
from pathlib import Path

# the flags that make bfloat16 matrix maths native, and those of int8 dot products
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The x86 flags of this machine's CPU (:func:`parse_flags` of /proc/cpuinfo); empty where
    there is no such list (another OS, another architecture), which every caller reads as "not native"."""
    try:
        return parse_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def parse_flags(cpuinfo: str) -> frozenset[str]:
    """The ``flags`` line of the first processor in a /proc/cpuinfo text (ARM's is ``Features``,
    whose names differ: not read)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def bf16_supported() -> bool:
    """Does this CPU run bfloat16 matrix maths natively (AVX512-BF16 or AMX)?"""
    return bool(cpu_flags() & BF16_FLAGS)


def int8_gemm_supported() -> bool:
    """Does this CPU have int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX), the ones
    torch's int8 GEMM (oneDNN) runs fast on? Measured: on an AVX2 CPU without them, torch._int_mm
    ran at about 1 G multiply-adds a second against 400 G on one with AVX512-VNNI."""
    return bool(cpu_flags() & INT8_DOT_FLAGS)
