"""This machine's power profile, the constants of the CPU power model.

The CPU's thermal design power (TDP) comes from CodeCarbon's maintained CPU table, read through
its own loader (``codecarbon.input.DataSource().get_cpu_power_data()``), never copied. A model the
table does not know gets CodeCarbon's own fallback for unknown CPUs: 4 W per logical CPU.

Every constant is stated in ``docs/energy.md`` and copied into each ledger record
(:meth:`PowerProfile.constants`), so a figure can always be traced to its assumptions.
"""
import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

from ..cost.cpu_tdp import DEFAULT_W_PER_LOGICAL_CPU, codecarbon_data, lookup_tdp  # noqa: F401 (re-exported)

#: share of TDP drawn whatever the load: CodeCarbon's floor of its CPU-load model (10 % of TDP)
STATIC_FRACTION = 0.1
#: DRAM power per GiB resident: 3 W per 8 GB, CodeCarbon's rule for DDR3/DDR4 before its version 3
DRAM_W_PER_GIB = 3 / 8


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name: /proc/cpuinfo's "model name", else platform.processor(), else "unknown"."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class PowerProfile:
    """The constants of the CPU power model for one machine.

    >>> PowerProfile.detect()                      # this machine, TDP from CodeCarbon's table
    >>> PowerProfile.detect(tdp_w=65)              # any field can be given instead
    """

    cpu_model: str
    tdp_w: float
    tdp_source: str
    logical_cpus: int
    static_fraction: float = STATIC_FRACTION
    dram_w_per_gib: float = DRAM_W_PER_GIB

    def __post_init__(self):
        for field, value, ok, expected in [
            ("tdp_w", self.tdp_w, self.tdp_w > 0, "a positive number of watts"),
            ("logical_cpus", self.logical_cpus, self.logical_cpus >= 1, "at least 1"),
            ("static_fraction", self.static_fraction, 0 <= self.static_fraction < 1, "in [0, 1)"),
            ("dram_w_per_gib", self.dram_w_per_gib, self.dram_w_per_gib >= 0, "non-negative"),
        ]:
            if not ok:
                raise ValueError(f"gaia.PowerProfile: {field}={value!r}, expected {expected}")

    @classmethod
    def detect(cls, **overrides) -> "PowerProfile":
        """This machine's profile (CPU model, TDP, logical CPUs), with ``overrides`` for any field."""
        fields = dict(_detected())
        if "tdp_w" in overrides and "tdp_source" not in overrides:
            overrides["tdp_source"] = "given"
        fields.update(overrides)
        return cls(**fields)

    @property
    def active_w_per_cpu(self) -> float:
        """W drawn by one busy logical CPU above the static floor: (1 - static_fraction) x TDP / logical CPUs."""
        return (1 - self.static_fraction) * self.tdp_w / self.logical_cpus

    @property
    def static_w(self) -> float:
        """W drawn whatever the load: static_fraction x TDP."""
        return self.static_fraction * self.tdp_w

    def constants(self) -> Dict[str, object]:
        """The profile as a JSON-serialisable dict, for ledger records."""
        return asdict(self)


@lru_cache(maxsize=1)
def _detected() -> Tuple[Tuple[str, object], ...]:
    model = cpu_model_name()
    logical = os.cpu_count() or 1
    found = lookup_tdp(model)
    if found is None:
        tdp, source = DEFAULT_W_PER_LOGICAL_CPU * logical, (
            f"default: {DEFAULT_W_PER_LOGICAL_CPU:g} W x {logical} logical CPUs (model not in CodeCarbon's table)")
    else:
        tdp, source = found[0], f"CodeCarbon CPU table (cpu_power.csv): {found[1]}"
    return (("cpu_model", model), ("tdp_w", tdp), ("tdp_source", source), ("logical_cpus", logical))
