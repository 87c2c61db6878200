"""Energy sensors: RAPL counters, NVML GPU counters, and the CPU power model.

A sensor measures one window: ``state = sensor.begin()`` before the work, then
``sensor.end(state, wall_s, cpu_s, held_s=None, counted=None, held_gib_s=None)`` after it, which returns
``(joules_by_component, short_window)``. ``held_s`` is the seconds of static power the window is charged
(its wall time unless an accounting mode shares it, see ``accounting.py``), ``held_gib_s`` the
GiB-seconds of resident memory it is charged DRAM power for (the resident set integrated over the
window: ``accounting.ResidentClock``; None: the resident set now x ``held_s``); a counter
sensor (``counter = True``: RAPL, NVML) is given in ``counted`` the joules its accounting mode charged
the window from its counters (read with ``read()`` and ``delta()``) instead of its own begin/end delta.
``short_window`` is True when the window was shorter than the sensor's update period; such a
reading is estimated (never silently zero) and flagged. Sensors are thread-safe and may be
shared by many metered stages.

- :class:`RaplSensor` (method ``rapl``): ``/sys/class/powercap/intel-rapl:*`` package and DRAM
  counters, with wrap-around at ``max_energy_range_uj``. Machine-wide: it sees every process.
- :class:`NvmlSensor` (method ``nvml``): ``nvmlDeviceGetTotalEnergyConsumption`` (mJ) summed over GPUs.
- :class:`CpuPowerModel` (method ``model``): process CPU seconds x active W per logical CPU, plus
  static W x wall, plus DRAM W/GiB x resident GiB-seconds, from a :class:`PowerProfile`.
"""
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .pickling import LockedState
from .profile import PowerProfile

Reading = Tuple[Dict[str, float], bool]


class Sensor:
    """One way of measuring the energy of a window of work (see the module docstring)."""

    method = "sensor"
    #: whether the sensor reads machine-wide energy counters (``read()``, ``delta(first, last)``)
    counter = False

    def begin(self):
        """Read the sensor before the work; the returned state is passed to :meth:`end`."""
        raise NotImplementedError

    def end(self, state, wall_s: float, cpu_s: float, held_s: Optional[float] = None,
            counted: Optional[Dict[str, float]] = None, held_gib_s: Optional[float] = None) -> Reading:
        """Joules by component over the window, and whether the window was shorter than the update period."""
        raise NotImplementedError

    def constants(self) -> Dict[str, object]:
        """What a record needs to know about this sensor (JSON-serialisable)."""
        return {}


class CpuPowerModel(Sensor):
    """The CPU power model, for machines with no readable energy counter.

    J = cpu_s x (1 - s) x TDP / logical CPUs  +  s x TDP x held_s  +  DRAM W/GiB x held_gib_s

    with s the static fraction, ``held_s`` the window's wall time or its share of it (accounting modes),
    ``held_gib_s`` the process's resident set integrated over the window, or its share of it.
    """

    method = "model"

    def __init__(self, profile: Optional[PowerProfile] = None):
        self.profile = profile or PowerProfile.detect()
        self._constants = {"model": self.profile.constants()}
        self._active_w, self._static_w = self.profile.active_w_per_cpu, self.profile.static_w
        self._dram_w_per_gib = self.profile.dram_w_per_gib

    def begin(self):
        return None

    def end(self, state, wall_s: float, cpu_s: float, held_s: Optional[float] = None, counted=None,
            held_gib_s: Optional[float] = None) -> Reading:
        held_s = wall_s if held_s is None else held_s
        held_gib_s = resident_gib() * held_s if held_gib_s is None else held_gib_s
        return {"cpu": cpu_s * self._active_w,
                "static": self._static_w * held_s,
                "dram": self._dram_w_per_gib * held_gib_s}, False

    def constants(self) -> Dict[str, object]:
        return self._constants


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


#: how long a reading of the resident set size is reused (three system calls, some 10-60 µs, which a
#: metered call of a few milliseconds should not pay each time)
RSS_MAX_AGE_S = 0.5
_rss = [float("-inf"), 0.0]                          # perf_counter of the last reading, GiB


def resident_gib() -> float:
    """This process's resident set size in GiB (/proc/self/statm, else psutil), read at most every
    :data:`RSS_MAX_AGE_S` seconds."""
    now = time.perf_counter()
    if now - _rss[0] < RSS_MAX_AGE_S:
        return _rss[1]
    try:
        descriptor = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            gib = int(os.read(descriptor, 128).split()[1]) * _PAGE_BYTES / 2 ** 30
        finally:
            os.close(descriptor)
    except OSError:
        import psutil
        gib = psutil.Process().memory_info().rss / 2 ** 30
    _rss[:] = now, gib
    return gib


class RaplSensor(LockedState, Sensor):
    """Intel/AMD RAPL through Linux powercap: package domains (``cpu``) and DRAM domains (``dram``).

    ``root`` is the powercap folder (injectable for tests). ``psys`` and the core/uncore
    sub-domains are left out: they overlap the package counters. A window shorter than
    ``update_period_s`` (RAPL counters tick about every millisecond) is flagged; if its counters
    did not move, its energy is the sensor's mean power over the windows it measured before x wall.
    """

    method = "rapl"
    counter = True

    def __init__(self, root="/sys/class/powercap", update_period_s: float = 0.001):
        self.root = Path(root)
        self.update_period_s = update_period_s
        self.domains = self._find_domains(self.root)
        if not any(component == "cpu" for _, component, _ in self.domains):
            raise RuntimeError(f"gaia RaplSensor (sensors='rapl'): no readable RAPL package domain under {self.root}; "
                               "it needs an Intel or AMD CPU whose intel-rapl:N/energy_uj this user can read (root "
                               "only since Linux 5.10). Use sensors='auto' or 'model' where it cannot be read")
        self._lock = threading.Lock()
        self._seen_j: Dict[str, float] = {}
        self._seen_s = 0.0

    @staticmethod
    def _find_domains(root: Path) -> List[Tuple[Path, str, int]]:
        """(energy_uj path, component, max_energy_range_uj) of each readable package or DRAM domain."""
        found, seen = [], set()
        for folder in sorted(root.glob("intel-rapl:*")) + sorted(root.glob("intel-rapl:*/intel-rapl:*")):
            if folder.resolve() in seen:  # sysfs lists sub-zones both flat and nested
                continue
            seen.add(folder.resolve())
            try:
                name = (folder / "name").read_text().strip()
                if name.startswith("package"):
                    component = "cpu"
                elif name == "dram":
                    component = "dram"
                else:
                    continue
                energy = folder / "energy_uj"
                int(energy.read_text())
                limit = int((folder / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            found.append((energy, component, limit))
        return found

    @classmethod
    def available(cls, root="/sys/class/powercap") -> bool:
        """Whether a RAPL package counter is readable under ``root``."""
        return any(component == "cpu" for _, component, _ in cls._find_domains(Path(root)))

    def read(self) -> List[int]:
        """Each domain's counter (µJ)."""
        return [int(path.read_text()) for path, _, _ in self.domains]

    def delta(self, first: Sequence[int], last: Sequence[int]) -> Dict[str, float]:
        """Joules by component between two :meth:`read` results (a counter that went down wrapped)."""
        joules: Dict[str, float] = {}
        for (_, component, limit), before, after in zip(self.domains, first, last):
            moved = after - before if after >= before else after + limit - before
            joules[component] = joules.get(component, 0.0) + moved / 1e6
        return joules

    def begin(self):
        return self.read()

    def end(self, state, wall_s: float, cpu_s: float, held_s: Optional[float] = None,
            counted: Optional[Dict[str, float]] = None, held_gib_s: Optional[float] = None) -> Reading:
        held_s = wall_s if held_s is None else held_s
        joules = self.delta(state, self.read()) if counted is None else dict(counted)
        for _, component, _ in self.domains:
            joules.setdefault(component, 0.0)
        short = wall_s < self.update_period_s
        with self._lock:
            if short and not any(joules.values()) and self._seen_s > 0:
                joules = {c: self._seen_j.get(c, 0.0) / self._seen_s * held_s for c in joules}
            elif not short and held_s > 0:
                for component, value in joules.items():
                    self._seen_j[component] = self._seen_j.get(component, 0.0) + value
                self._seen_s += held_s
        return joules, short

    def constants(self) -> Dict[str, object]:
        return {"rapl": {"root": str(self.root), "update_period_s": self.update_period_s,
                         "domains": [str(path.parent.name) for path, _, _ in self.domains]}}


class NvmlSensor(Sensor):
    """NVIDIA GPUs through NVML's total-energy counters (mJ, Volta and newer), summed as ``gpu``.

    ``nvml`` is the ``pynvml`` module (from ``nvidia-ml-py``) or a stand-in with the same functions.
    Counters refresh about every ``update_period_s`` (default 0.1 s, an assumption: NVML documents no
    period); a shorter window is flagged, and a GPU whose counter did not move in it is charged its
    instantaneous power (``nvmlDeviceGetPowerUsage``) x wall, as Zeus's ``approx_instant_energy`` does.
    """

    method = "nvml"
    counter = True

    def __init__(self, nvml=None, update_period_s: float = 0.1):
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        except Exception as error:  # no pynvml, no driver, no library: each raises its own type
            raise RuntimeError(f"gaia NvmlSensor (sensors='nvml'): NVML cannot be read here "
                               f"({type(error).__name__}: {error}); it needs an NVIDIA GPU, its driver and the "
                               "nvidia-ml-py package (pynvml). Use sensors='auto' or 'model' on machines without one"
                               ) from error
        if not handles:
            raise RuntimeError("gaia NvmlSensor (sensors='nvml'): NVML reports no GPU; it needs an NVIDIA GPU. "
                               "Use sensors='auto' or 'model' on machines without one")
        self.nvml = nvml
        self.update_period_s = update_period_s
        self.handles = handles

    def read(self) -> List[int]:
        """Each GPU's energy counter (mJ)."""
        return [self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle) for handle in self.handles]

    def delta(self, first: Sequence[int], last: Sequence[int]) -> Dict[str, float]:
        """Joules (``gpu``) between two :meth:`read` results."""
        return {"gpu": sum(after - before for before, after in zip(first, last)) / 1000}

    def begin(self):
        return self.read()

    def end(self, state, wall_s: float, cpu_s: float, held_s: Optional[float] = None,
            counted: Optional[Dict[str, float]] = None, held_gib_s: Optional[float] = None) -> Reading:
        held_s = wall_s if held_s is None else held_s
        short = wall_s < self.update_period_s
        if counted is not None:                       # shared by an accounting mode: per-GPU moves unknown
            total = counted.get("gpu", 0.0)
            if short and not total:
                total = sum(self.nvml.nvmlDeviceGetPowerUsage(handle) for handle in self.handles) / 1000 * held_s
            return {"gpu": total}, short
        total = 0.0
        for handle, first, last in zip(self.handles, state, self.read()):
            if short and last == first:
                total += self.nvml.nvmlDeviceGetPowerUsage(handle) / 1000 * held_s
            else:
                total += (last - first) / 1000
        return {"gpu": total}, short

    def constants(self) -> Dict[str, object]:
        return {"nvml": {"gpus": len(self.handles), "update_period_s": self.update_period_s}}


@lru_cache(maxsize=1)
def auto_sensors() -> Tuple[Sensor, ...]:
    """What this machine can read: RAPL if readable, else the CPU power model; plus NVML if it sees a GPU."""
    cpu = RaplSensor() if RaplSensor.available() else CpuPowerModel()
    try:
        gpu = NvmlSensor()
    except RuntimeError:  # no pynvml, no driver or no GPU
        return (cpu,)
    return (cpu, gpu)


_BY_NAME = {"model": CpuPowerModel, "rapl": RaplSensor, "nvml": NvmlSensor}


def resolve_sensors(spec) -> Tuple[Sensor, ...]:
    """Sensors from ``"auto"``, a method name (``"model"``, ``"rapl"``, ``"nvml"``), a Sensor, or a list of them."""
    if isinstance(spec, str):
        if spec == "auto":
            return auto_sensors()
        if spec in _BY_NAME:
            return (_BY_NAME[spec](),)
        raise ValueError(f"gaia: sensors={spec!r}; expected 'auto', 'model', 'rapl', 'nvml', a Sensor or a list")
    if isinstance(spec, Sensor):
        return (spec,)
    if isinstance(spec, Sequence) and spec and all(isinstance(s, (Sensor, str)) for s in spec):
        return tuple(sensor for item in spec for sensor in resolve_sensors(item))
    raise TypeError(f"gaia: sensors={spec!r} ({type(spec).__name__}); expected 'auto', 'model', 'rapl', "
                    "'nvml', a gaia Sensor or a list of them")


def method_of(sensors: Sequence[Sensor]) -> str:
    """The record's method: the sensors' methods joined by '+' (one of rapl, nvml, model on most machines)."""
    return "+".join(sensor.method for sensor in sensors)
