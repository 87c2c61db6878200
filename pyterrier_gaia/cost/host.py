"""What this host's CPU is, read from ``/proc/cpuinfo`` and sysfs, and its copy bandwidth, measured.

Every reader takes the root of the file system (``root / "proc/cpuinfo"``,
``root / "sys/devices/system/cpu"``) so that tests can hand it a fake tree.
:func:`pyterrier_gaia.cost.hardware.local` turns a :class:`Host` into a hardware profile.
"""
import os
import platform
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, FrozenSet, Optional, Tuple

#: the /proc/cpuinfo flags that decide the vector rates (see :func:`ops_per_cycle`)
SIMD_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
#: bytes per array of the copy benchmark: 128 MiB read and 128 MiB written per copy
COPY_BYTES = 128 * 2**20
#: set to 0 (or call with ``measure=False``) to skip the copy benchmark and use DEFAULT_MEMORY_BW
MEASURE_ENV = "GAIA_MEASURE_BANDWIDTH"
#: B/s when bandwidth is not measured: one DDR4-3200 channel (3200 MT/s x 8 bytes)
DEFAULT_MEMORY_BW = 25.6e9


@dataclass(frozen=True)
class Host:
    """The CPU as this process sees it."""

    vendor: str                    # vendor_id, e.g. "AuthenticAMD", "GenuineIntel"
    model_name: str
    family: int
    model: int
    cpus: int                      # logical CPUs this process may use (its affinity)
    online: int                    # logical CPUs the kernel sees
    sockets: int
    flags: FrozenSet[str]          # the SIMD_FLAGS present
    base_ghz: Optional[float]
    max_ghz: Optional[float]
    clock_source: str

    @property
    def cpuid(self) -> Tuple[str, int, int, int]:
        return self.vendor, self.family, self.model, self.cpus


def _cpuinfo_blocks(root: Path):
    """One dict per processor of ``root/proc/cpuinfo``."""
    text = (root / "proc/cpuinfo").read_text(errors="replace")
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        fields = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def _khz(path: Path) -> Optional[float]:
    """GHz from a sysfs frequency file in kHz, or None."""
    try:
        return int(path.read_text().strip()) / 1e6
    except (OSError, ValueError):
        return None


def _clocks(root: Path, first: Dict[str, str]) -> Tuple[Optional[float], Optional[float], str]:
    """(base GHz, max GHz, where they come from): sysfs cpufreq (base_frequency, cpuinfo_max_freq),
    else the "@ 2.50GHz" of the model name, else /proc/cpuinfo's "cpu MHz" (current clock)."""
    cpufreq = root / "sys/devices/system/cpu/cpu0/cpufreq"
    base, peak = _khz(cpufreq / "base_frequency"), _khz(cpufreq / "cpuinfo_max_freq")
    if base or peak:
        return base or peak, peak or base, "sysfs cpufreq"
    named = re.search(r"@\s*([\d.]+)\s*GHz", first.get("model name", ""))
    if named:
        return float(named.group(1)), None, "model name"
    try:
        return float(first["cpu MHz"]) / 1e3, None, "/proc/cpuinfo cpu MHz"
    except (KeyError, ValueError):
        return None, None, "unknown"


def detect(root: Path = Path("/")) -> Host:
    """The host CPU under ``root``; what /proc/cpuinfo does not say (it may be absent: not Linux)
    is "unknown" or 0, the model name then from platform.processor()."""
    root = Path(root)
    try:
        blocks = _cpuinfo_blocks(root)
    except OSError:
        blocks = []
    first = blocks[0] if blocks else {}
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        cpus = os.cpu_count() or 1
    base, peak, source = _clocks(root, first)
    return Host(first.get("vendor_id", "unknown"), first.get("model name") or platform.processor() or "unknown",
                _integer(first.get("cpu family")), _integer(first.get("model")), cpus, max(len(blocks), cpus),
                len({b.get("physical id", "0") for b in blocks}) or 1,
                frozenset(first.get("flags", "").split()) & frozenset(SIMD_FLAGS), base, peak, source)


def _integer(text: Optional[str]) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


def ops_per_cycle(host: Host) -> Tuple[Dict[str, float], str]:
    """(operations per cycle and logical CPU per precision, how) from the SIMD flags.

    fp32: 2 FMA pipes x 2 FLOP (multiply-add) x lanes: 256-bit AVX2+FMA = 32; AVX-512 on Intel
    (two 512-bit units, as on Xeon Scalable Gold/Platinum) = 64; AMD family 25 (Zen 4) runs AVX-512
    on its 256-bit pipes in two halves = 32; AVX without FMA = 16; SSE only = 8.
    bf16 only with native bf16: AVX512-BF16 (VDPBF16PS) = 2x fp32; AMX-BF16 tiles = 1024.
    int8 only with VNNI: AVX512-VNNI / AVX-VNNI (VPDPBUSD, 4 int8 multiply-adds per 32-bit lane) =
    4x the fp32 rate of that vector width; AMX-INT8 = 2048.
    """
    flags = host.flags
    half_width = host.vendor == "AuthenticAMD" and host.family <= 25     # Zen 4 and older
    if "avx512f" in flags:
        fp32, width = (32, "AVX-512 on 256-bit pipes") if half_width else (64, "AVX-512, 2 x 512-bit FMA")
    elif {"avx2", "fma"} <= flags:
        fp32, width = 32, "AVX2+FMA, 2 x 256-bit FMA"
    elif "avx" in flags:
        fp32, width = 16, "AVX, no FMA"
    else:
        fp32, width = 8, "SSE"
    rates = {"fp32": float(fp32)}
    if "amx_bf16" in flags:
        rates["bf16"] = 1024.0
    elif "avx512_bf16" in flags:
        rates["bf16"] = 2.0 * fp32
    if "amx_int8" in flags:
        rates["int8"] = 2048.0
    elif "avx512_vnni" in flags:
        rates["int8"] = 4.0 * fp32
    elif "avx_vnni" in flags:
        rates["int8"] = 4.0 * 32
    how = width + "".join(f", {key} {rates[key]:g}" for key in ("bf16", "int8") if key in rates)
    return rates, how


def _measure_wanted(measure: Optional[bool]) -> bool:
    if measure is not None:
        return measure
    return os.environ.get(MEASURE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def memory_bandwidth(measure: Optional[bool] = None) -> Tuple[float, str]:
    """(B/s, where it comes from): a numpy copy of COPY_BYTES, bytes read + written, best of 3,
    once per process; or DEFAULT_MEMORY_BW when ``measure`` is False (default: unless the
    environment variable GAIA_MEASURE_BANDWIDTH is 0)."""
    if not _measure_wanted(measure):
        return DEFAULT_MEMORY_BW, (f"default: {DEFAULT_MEMORY_BW / 1e9:g} GB/s, one DDR4-3200 channel "
                                   f"(not measured: {MEASURE_ENV}=0 or measure=False)")
    return _measured_bandwidth()


@lru_cache(maxsize=1)
def _measured_bandwidth() -> Tuple[float, str]:
    import numpy as np

    source = np.ones(COPY_BYTES // 8)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    bandwidth = 2 * COPY_BYTES / best
    return bandwidth, (f"measured: numpy copy of {COPY_BYTES // 2**20} MiB, read + write, best of 3, "
                       f"one thread: {bandwidth / 1e9:.1f} GB/s")
