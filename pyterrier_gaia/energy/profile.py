"""This machine's power profile, the constants of the CPU power model.

The CPU's thermal design power (TDP) comes from CodeCarbon's maintained CPU table, read through
its own loader (``codecarbon.input.DataSource().get_cpu_power_data()``), never copied. A model the
table does not know gets CodeCarbon's own fallback for unknown CPUs: 4 W per logical CPU.

Every constant is stated in ``docs/energy.md`` and copied into each ledger record
(:meth:`PowerProfile.constants`), so a figure can always be traced to its assumptions.
"""
import os
import platform
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

#: W per logical CPU when the CPU model is not in CodeCarbon's table (CodeCarbon's DEFAULT_POWER_PER_CORE)
DEFAULT_W_PER_LOGICAL_CPU = 4.0
#: share of TDP drawn whatever the load: CodeCarbon's floor of its CPU-load model (10 % of TDP)
STATIC_FRACTION = 0.1
#: DRAM power per GiB resident: 3 W per 8 GB, CodeCarbon's rule for DDR3/DDR4 before its version 3
DRAM_W_PER_GIB = 3 / 8


@lru_cache(maxsize=1)
def codecarbon_data():
    """CodeCarbon's offline reference data (CPU table, grid intensities), through its own loader
    ``codecarbon.input.DataSource`` (loaded once, on first use)."""
    try:
        from codecarbon.input import DataSource
    except ImportError as error:
        raise ModuleNotFoundError("gaia energy: the codecarbon package (its CPU table and grid intensities) "
                                  f"cannot be imported ({error}); install it with pip install codecarbon") from error
    return DataSource()


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


def _tokens(name: str) -> Tuple[str, ...]:
    """Lower-case words of a CPU name without vendor marks, clock speed, core counts or filler words."""
    name = re.sub(r"\((r|tm)\)", " ", name.lower())
    name = re.sub(r"@\s*[\d.]+\s*[gm]hz", " ", name)
    name = re.sub(r"\b\d+-core\b", " ", name)
    return tuple(word for word in re.split(r"[\s,]+", name) if word and word not in {"cpu", "processor", "with"})


@lru_cache(maxsize=1)
def _tdp_table() -> Tuple[Tuple[Tuple[str, ...], float, str], ...]:
    """(name words, TDP W, name) for each row of CodeCarbon's table whose TDP is a number."""
    table = codecarbon_data().get_cpu_power_data()
    rows = []
    for name, tdp in zip(table["Name"], table["TDP"]):
        try:
            rows.append((_tokens(name), float(tdp), name))
        except (TypeError, ValueError):  # a few rows carry malformed TDPs such as "27.29.5"
            continue
    return tuple(rows)


def lookup_tdp(model: str) -> Optional[Tuple[float, str]]:
    """(TDP in W, table name) for a CPU model name from CodeCarbon's table, or None when unknown.

    An entry matches when its words are all in the model's name and it carries every word of the
    name that has a digit (the model number); the entry with the most words wins, and a tie
    between entries of different TDP is no match.
    """
    words = set(_tokens(model))
    numbered = {word for word in words if any(ch.isdigit() for ch in word)}
    if not numbered:
        return None
    matches = [(len(entry), tdp, name) for entry, tdp, name in _tdp_table()
               if set(entry) <= words and numbered <= set(entry)]
    if not matches:
        return None
    longest = max(size for size, _, _ in matches)
    best = {(tdp, name) for size, tdp, name in matches if size == longest}
    if len({tdp for tdp, _ in best}) > 1:
        return None
    return min(best, key=lambda pair: pair[1])


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
