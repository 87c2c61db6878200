"""Hardware profiles: peak throughput per precision, memory bandwidth, clock, TDP and idle power.

Figures are vendor datasheet values or derived from them (cores x base clock x operations per
cycle); idle powers are published measurements where one exists, else CodeCarbon's convention of
10 % of TDP. Every figure, its source and its derivation are in ``docs/cost-model.md``. The
cost model uses them for what-if predictions only (:meth:`pyterrier_gaia.CostModel.predict`
with ``hardware=``): ratios of throughput and power, never absolute times.

>>> gaia.hardware.get("h100").peak_flops["bf16"]
989000000000000.0
"""
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from . import host as _host
from .cpu_tdp import DEFAULT_W_PER_LOGICAL_CPU, lookup_tdp

#: which resource each operation count loads: "compute" scales with peak FLOP/s at the precision
#: in use, "memory" with memory bandwidth, "host" (Python, tokenisation, Lucene, per-call overhead)
#: with the CPU clock, and stays on the host CPU when the target is a GPU
RESOURCE = {"flops": "compute", "layer_tokens": "compute", "weight_bytes": "memory"}

#: precision -> the peak_flops entry it computes at (bitsandbytes NF4 dequantises to fp16)
COMPUTES_AT = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "int8": "int8", "nf4": "fp16"}


@dataclass(frozen=True)
class Profile:
    """One machine (a whole chip, or the slice of one a VM sees)."""

    name: str
    kind: str                                  # "cpu" or "gpu"
    description: str
    peak_flops: Dict[str, float]               # precision -> FLOP/s (int8: operations/s), dense
    memory_bw: float                           # bytes/s
    tdp_w: float
    idle_w: float
    clock_ghz: Optional[float] = None          # CPUs: base clock, the proxy for single-thread speed
    cores: Optional[int] = None                # CPUs: cores (vCPUs for a VM slice)
    cpuid: Optional[Tuple[str, int, int, int]] = field(default=None, repr=False)  # vendor, family, model, cpus
    #: figure -> where it comes from, for profiles detected on the host ("derived: ...", "measured: ...")
    sources: Dict[str, str] = field(default_factory=dict, compare=False)

    def flops_at(self, precision: str) -> Tuple[float, str]:
        """(peak FLOP/s, the entry used) for ``precision``; fp32's figure when it has no native one."""
        key = COMPUTES_AT.get(precision)
        if key is None:
            raise ValueError(f"hardware profile {self.name!r}: unknown precision {precision!r}; "
                             f"expected one of {', '.join(COMPUTES_AT)}")
        return (self.peak_flops[key], key) if key in self.peak_flops else (self.peak_flops["fp32"], "fp32")

    def to_dict(self) -> dict:
        """Every figure and its source, JSON-serialisable (a saved cost model keeps its home profile so)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, figures: dict) -> "Profile":
        """The profile :meth:`to_dict` wrote."""
        cpuid = figures.get("cpuid")
        return cls(**{**figures, "cpuid": None if cpuid is None else tuple(cpuid)})

    def power(self, utilisation: float) -> float:
        """Watts drawn at ``utilisation`` (0..1) of the span from idle to TDP."""
        return self.idle_w + (self.tdp_w - self.idle_w) * utilisation

    def utilisation(self, watts: float) -> float:
        """Where ``watts`` falls between idle (0) and TDP (1), clipped to 0..1."""
        return min(max((watts - self.idle_w) / (self.tdp_w - self.idle_w), 0.0), 1.0)


def _cpu(name, description, cores, base_ghz, per_cycle, memory_bw, tdp_w, idle_w=None, cpuid=None):
    """A CPU profile from its cores, base clock and operations per cycle and core per precision."""
    peak = {precision: cores * base_ghz * 1e9 * ops for precision, ops in per_cycle.items()}
    return Profile(name, "cpu", description, peak, memory_bw, tdp_w,
                   tdp_w / 10 if idle_w is None else idle_w, base_ghz, cores, cpuid)


# FLOP per cycle and core: AVX2/AVX-512 on two 256-bit FMA pipes (Zen 3, Zen 4) = 32 fp32;
# two 512-bit FMA units (Ice Lake-SP) = 64 fp32; AVX512-BF16 doubles fp32; AVX512-VNNI
# (VPDPBUSD) does 4 int8 multiply-adds per 32-bit lane, 4x fp32's operations.
_ZEN4 = {"fp32": 32, "bf16": 64, "int8": 128}
PROFILES: Dict[str, Profile] = {p.name: p for p in [
    _cpu("epyc-genoa-2vcpu", "2 vCPUs of an AMD EPYC 9004 (Zen 4, Genoa) under KVM: this project's machines",
         cores=2, base_ghz=2.6, per_cycle=_ZEN4, memory_bw=25.1e9, tdp_w=8.0,
         cpuid=("AuthenticAMD", 25, 17, 2)),
    _cpu("epyc-9654", "AMD EPYC 9654, 96 Zen 4 cores, 12 x DDR5-4800",
         cores=96, base_ghz=2.4, per_cycle=_ZEN4, memory_bw=460.8e9, tdp_w=360.0),
    _cpu("epyc-7763", "AMD EPYC 7763, 64 Zen 3 cores, 8 x DDR4-3200 (no bf16 or VNNI: fp32 rate)",
         cores=64, base_ghz=2.45, per_cycle={"fp32": 32}, memory_bw=204.8e9, tdp_w=280.0, idle_w=100.0),
    _cpu("xeon-8380", "Intel Xeon Platinum 8380, 40 Ice Lake-SP cores, 8 x DDR4-3200 (no bf16: fp32 rate)",
         cores=40, base_ghz=2.3, per_cycle={"fp32": 64, "int8": 256}, memory_bw=204.8e9, tdp_w=270.0,
         idle_w=27.0),
    Profile("a100", "gpu", "NVIDIA A100 SXM4 80 GB (dense tensor-core figures)",
            {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12, "int8": 624e12}, 2039e9, 400.0, 40.0),
    Profile("h100", "gpu", "NVIDIA H100 SXM5 80 GB (dense tensor-core figures)",
            {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12, "int8": 1979e12}, 3350e9, 700.0, 70.0),
    Profile("h200", "gpu", "NVIDIA H200 SXM 141 GB (dense tensor-core figures)",
            {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12, "int8": 1979e12}, 4800e9, 700.0, 70.0),
]}


def get(name) -> Profile:
    """The profile called ``name`` (a :class:`Profile` is returned as it is; the name of
    :func:`local`'s profile finds it too)."""
    if isinstance(name, Profile):
        return name
    key = str(name).lower()
    if key in PROFILES:
        return PROFILES[key]
    here = local() if key.startswith("local-") else None
    if here is not None and key == here.name:
        return here
    raise ValueError(f"unknown hardware {name!r}; known: {', '.join(PROFILES)}, or this host's local-... profile")


def local(root: Path = Path("/"), measure: Optional[bool] = None) -> Profile:
    """The profile of this host: the curated profile whose cpuid (vendor, CPU
    family and model, and the CPUs this process may use) matches, else one detected here by
    :func:`detected`. ``root``: where /proc and /sys are; ``measure``: see :func:`host.memory_bandwidth`."""
    here = _host.detect(root)
    return next((p for p in PROFILES.values() if p.cpuid == here.cpuid), None) or detected(here, measure)


#: GHz when neither sysfs nor /proc/cpuinfo states a clock
DEFAULT_GHZ = 2.0


def detected(here: "_host.Host", measure: Optional[bool] = None) -> Profile:
    """A CPU profile of ``here`` (a :class:`host.Host`), every figure with its source in ``sources``.

    - peak FLOP/s, **derived, not measured**: logical CPUs this process may use x base clock x
      operations per cycle and logical CPU for its SIMD width (:func:`host.ops_per_cycle`); bf16
      only with native bf16 (AVX512-BF16, AMX), int8 only with VNNI or AMX;
    - TDP: CodeCarbon's CPU table for the model name, for the share of the host's logical CPUs
      (x sockets) this process may use; else CodeCarbon's default of 4 W per logical CPU; idle:
      10 % of TDP (CodeCarbon's convention, as for the curated profiles);
    - memory bandwidth: **measured** by a numpy copy (:func:`host.memory_bandwidth`), or a default.
    """
    ghz = here.base_ghz or DEFAULT_GHZ
    clock = (f"{ghz:g} GHz ({here.clock_source})" if here.base_ghz else
             f"{ghz:g} GHz (default: no clock in sysfs or /proc/cpuinfo)")
    per_cycle, simd = _host.ops_per_cycle(here)
    peak = {precision: here.cpus * ghz * 1e9 * ops for precision, ops in per_cycle.items()}
    found = lookup_tdp(here.model_name)
    if found is None:
        tdp = DEFAULT_W_PER_LOGICAL_CPU * here.cpus
        tdp_source = (f"default: {DEFAULT_W_PER_LOGICAL_CPU:g} W x {here.cpus} logical CPUs (CodeCarbon's "
                      f"DEFAULT_POWER_PER_CORE; {here.model_name!r} is not in CodeCarbon's CPU table)")
    else:
        share = here.cpus / here.online
        tdp = found[0] * here.sockets * share
        tdp_source = (f"CodeCarbon CPU table (cpu_power.csv): {found[1]}, {found[0]:g} W x {here.sockets} "
                      f"socket(s) x {here.cpus}/{here.online} logical CPUs usable")
    bandwidth, bandwidth_source = _host.memory_bandwidth(measure)
    slug = re.sub(r"[^a-z0-9]+", "-", here.model_name.lower()).strip("-") or "cpu"
    return Profile(
        f"local-{slug}-{here.cpus}cpu", "cpu",
        f"this host: {here.model_name} ({here.vendor} family {here.family} model {here.model}), "
        f"{here.cpus} logical CPUs usable, {simd}", peak, bandwidth, tdp, tdp / 10, ghz, here.cpus,
        here.cpuid, {"peak_flops": f"derived, not measured: {here.cpus} logical CPUs x {clock} x "
                                   f"ops/cycle ({simd})",
                     "memory_bw": bandwidth_source, "tdp_w": tdp_source,
                     "idle_w": "10 % of TDP (CodeCarbon's convention)", "clock_ghz": clock})


def time_ratio(home: Profile, target: Profile, resource: str, precision: str) -> float:
    """How much longer (< 1: shorter) work on ``resource`` takes on ``target`` than on ``home``,
    assuming both reach the same fraction of their peak."""
    if resource == "compute":
        return home.flops_at(precision)[0] / target.flops_at(precision)[0]
    if resource == "memory":
        return home.memory_bw / target.memory_bw
    if stays_on_host(home, target, resource):
        return 1.0
    return home.clock_ghz / target.clock_ghz


def stays_on_host(home: Profile, target: Profile, resource: str) -> bool:
    """Whether work on ``resource`` stays where it is: host work when a GPU is involved (the
    host CPU is not profiled, so its speed and power are taken as unchanged)."""
    return resource == "host" and "gpu" in (home.kind, target.kind)


def power_share(home: Profile, target: Profile, resource: str) -> float:
    """The share of ``target``'s power that work on ``resource`` draws there: all of it for
    compute and memory (assumed to fill the chip, as for :func:`time_ratio`); for host work on
    a CPU, the share of its cores that ``home`` has (host work keeps its number of cores)."""
    if resource != "host" or stays_on_host(home, target, resource):
        return 1.0
    return min(1.0, home.cores / target.cores)
