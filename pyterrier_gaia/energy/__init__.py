"""Energy: sensors, the power profile, carbon and water accounting, the ledger and the Metered wrapper.

The light names are importable from here (``from pyterrier_gaia.energy import Grid, PowerProfile, Record``);
``Metered``, ``meter`` and ``Ledger`` are at the top level (``gaia.Metered``...).
"""
from .carbon import Grid
from .profile import PowerProfile
from .record import RECORD_KEYS, Record
from .sensors import CpuPowerModel, NvmlSensor, RaplSensor, Sensor

__all__ = ["CpuPowerModel", "Grid", "NvmlSensor", "PowerProfile", "RECORD_KEYS", "RaplSensor", "Record", "Sensor"]
