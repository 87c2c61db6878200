"""Sensors on fake powercap trees and a fake NVML; the CPU power model; the power profile; carbon accounting."""
import os
import re
from pathlib import Path

import pytest
from codecarbon.input import DataSource

from pyterrier_gaia.energy.carbon import Grid
from pyterrier_gaia.energy.profile import PowerProfile, codecarbon_data, lookup_tdp
from pyterrier_gaia.energy.sensors import CpuPowerModel, NvmlSensor, RaplSensor, resolve_sensors


def _zone(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = 262143328850) -> Path:
    folder = root / zone
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


def _set(folder: Path, energy_uj: int):
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path):
    """A powercap tree laid out as Linux does: every zone flat, sub-zones also nested under their package."""
    root = tmp_path / "powercap"
    zones = {
        "pkg0": _zone(root, "intel-rapl:0", "package-0", 5_000_000),
        "core": _zone(root, "intel-rapl:0:0", "core", 1_000_000),
        "dram": _zone(root, "intel-rapl:0:1", "dram", 2_000_000),
        "pkg1": _zone(root, "intel-rapl:1", "package-1", 999_000_000, max_uj=1_000_000_000),
        "psys": _zone(root, "intel-rapl:2", "psys", 7_000_000),
    }
    os.symlink("../intel-rapl:0:1", root / "intel-rapl:0" / "intel-rapl:0:1")
    os.symlink("../intel-rapl:0:0", root / "intel-rapl:0" / "intel-rapl:0:0")
    return root, zones


def test_rapl_reads_packages_and_dram_once_with_wraparound(powercap):
    root, zones = powercap
    sensor = RaplSensor(root)
    assert sorted(path.parent.name for path, _, _ in sensor.domains) == ["intel-rapl:0", "intel-rapl:0:1", "intel-rapl:1"]
    state = sensor.begin()
    _set(zones["pkg0"], 5_000_000 + 3_000_000)       # +3 J
    _set(zones["pkg1"], 1_000_000)                    # wrapped at 1e9 uJ: +2 J
    _set(zones["dram"], 2_000_000 + 500_000)          # +0.5 J
    _set(zones["core"], 9_000_000)                    # sub-domain of the package: not added
    _set(zones["psys"], 99_000_000)                   # overlaps the packages: not added
    joules, short = sensor.end(state, wall_s=0.5, cpu_s=0.4)
    assert joules == pytest.approx({"cpu": 5.0, "dram": 0.5})
    assert short is False
    assert sensor.method == "rapl"


def test_rapl_short_window_is_flagged_and_not_zero(powercap):
    root, zones = powercap
    sensor = RaplSensor(root, update_period_s=0.001)
    state = sensor.begin()
    _set(zones["pkg0"], 5_000_000 + 2_000_000)        # 2 J package over 1 s: 2 W
    _set(zones["dram"], 2_000_000 + 1_000_000)        # 1 J DRAM over 1 s: 1 W
    sensor.end(state, wall_s=1.0, cpu_s=1.0)
    joules, short = sensor.end(sensor.begin(), wall_s=0.0002, cpu_s=0.0002)   # counters did not move
    assert short is True
    assert joules == pytest.approx({"cpu": 2 * 0.0002, "dram": 1 * 0.0002})


def test_rapl_unavailable_without_readable_package(tmp_path):
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "psys", 1)
    assert not RaplSensor.available(root)
    assert not RaplSensor.available(tmp_path / "missing")
    with pytest.raises(RuntimeError, match="sensors='rapl'.*no readable RAPL package domain"):
        RaplSensor(root)


class FakeNvml:
    """The few pynvml functions NvmlSensor uses; counters in mJ, power in mW."""

    def __init__(self, gpus=2):
        self.energy_mj = [1000 * (i + 1) for i in range(gpus)]
        self.power_mw = [50_000 * (i + 1) for i in range(gpus)]
        self.initialised = False

    def nvmlInit(self):
        self.initialised = True

    def nvmlDeviceGetCount(self):
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.energy_mj[handle]

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.power_mw[handle]


def test_nvml_sums_gpu_counters():
    nvml = FakeNvml()
    sensor = NvmlSensor(nvml, update_period_s=0.1)
    assert nvml.initialised and sensor.method == "nvml"
    state = sensor.begin()
    nvml.energy_mj[0] += 1500
    nvml.energy_mj[1] += 250
    joules, short = sensor.end(state, wall_s=2.0, cpu_s=0.1)
    assert joules == pytest.approx({"gpu": 1.75})
    assert short is False


def test_nvml_short_window_uses_instant_power_where_counter_did_not_move():
    nvml = FakeNvml()
    sensor = NvmlSensor(nvml, update_period_s=0.1)
    state = sensor.begin()
    nvml.energy_mj[1] += 4                            # GPU 1 ticked, GPU 0 did not
    joules, short = sensor.end(state, wall_s=0.02, cpu_s=0.01)
    assert short is True
    assert joules["gpu"] == pytest.approx(50.0 * 0.02 + 0.004)


def test_nvml_without_gpu_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="sensors='nvml'.*no GPU"):
        NvmlSensor(FakeNvml(gpus=0))

    class NVMLError_LibraryNotFound(Exception):
        pass

    class NoDriver(FakeNvml):
        def nvmlInit(self):
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")
    with pytest.raises(RuntimeError, match=r"sensors='nvml'.*NVMLError_LibraryNotFound.*needs an NVIDIA GPU"):
        NvmlSensor(NoDriver())
    with pytest.raises(RuntimeError, match="sensors='nvml'.*needs an NVIDIA GPU"):   # this machine has none
        resolve_sensors("nvml")


def test_cpu_power_model_formula():
    profile = PowerProfile("Test CPU", tdp_w=100.0, tdp_source="given", logical_cpus=4,
                           static_fraction=0.2, dram_w_per_gib=0.5)
    sensor = CpuPowerModel(profile)
    joules, short = sensor.end(sensor.begin(), wall_s=2.0, cpu_s=3.0)
    assert joules["cpu"] == pytest.approx(3.0 * 0.8 * 100 / 4)          # busy CPU-seconds x active W per CPU
    assert joules["static"] == pytest.approx(0.2 * 100 * 2.0)            # static share of TDP x wall
    resident_gib = joules["dram"] / (0.5 * 2.0)
    assert 0.01 < resident_gib < 64                                       # this test process's RSS
    assert short is False
    assert sensor.constants()["model"]["tdp_w"] == 100.0


def test_power_profile_from_codecarbon_table_and_default():
    assert lookup_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz") == (150.0, "Intel Xeon Gold 6248")
    assert lookup_tdp("AMD EPYC 7763 64-Core Processor") == (280.0, "AMD EPYC 7763")
    assert lookup_tdp("AMD EPYC") is None                                  # no model number: no guess
    assert lookup_tdp("Imaginary 9Z99") is None
    detected = PowerProfile.detect()
    assert detected.logical_cpus == os.cpu_count()
    if lookup_tdp(detected.cpu_model) is None:
        assert detected.tdp_w == 4.0 * detected.logical_cpus and detected.tdp_source.startswith("default")
    given = PowerProfile.detect(tdp_w=65)
    assert given.tdp_w == 65 and given.tdp_source == "given"
    assert given.active_w_per_cpu == pytest.approx(0.9 * 65 / given.logical_cpus)
    with pytest.raises(ValueError, match="static_fraction"):
        PowerProfile.detect(static_fraction=1.5)


def test_codecarbon_data_is_read_through_its_loader_not_its_file_paths():
    source = Path(__file__).parents[1] / "pyterrier_gaia" / "energy"
    for path in source.glob("*.py"):
        assert not re.search(r"private_infra/|hardware/cpu_power|codecarbon/data", path.read_text()), path
    from codecarbon.input import DataSource
    assert isinstance(codecarbon_data(), DataSource)


def test_grid_intensity_from_codecarbon_data_and_accounting():
    mix = DataSource().get_global_energy_mix_data()
    france = Grid("fra", pue=1.5, wue=2.0)
    assert france.intensity == mix["FRA"]["carbon_intensity"]
    account = france.account(3.6e6)                                       # 1 kWh
    assert account == pytest.approx({"kwh": 1.0, "gco2e": 1.5 * mix["FRA"]["carbon_intensity"], "water_l": 2.0})
    world = DataSource().get_carbon_intensity_per_source_data()
    assert Grid().intensity == world["world_average"] and Grid().account(1.0)["water_l"] is None
    assert Grid.coerce(100).intensity == 100 and Grid.coerce("DEU").country == "DEU"
    with pytest.raises(ValueError, match="ISO 3166-1 alpha-3"):
        Grid("Atlantis")
    with pytest.raises(ValueError, match="pue"):
        Grid(pue=0.5)
    with pytest.raises(TypeError, match="carbon="):
        Grid.coerce([1])


def test_resolve_sensors():
    assert resolve_sensors("model")[0].method == "model"
    sensor = CpuPowerModel()
    assert resolve_sensors([sensor, NvmlSensor(FakeNvml())])[0] is sensor
    assert resolve_sensors("auto")[0].method in {"rapl", "model"}
    with pytest.raises(ValueError, match="sensors='gpu'"):
        resolve_sensors("gpu")
    with pytest.raises(TypeError, match="sensors=42"):
        resolve_sensors(42)


def test_rapl_sensor_survives_pickling(powercap):
    import pickle
    root, zones = powercap
    copy = pickle.loads(pickle.dumps(RaplSensor(root)))
    state = copy.begin()
    _set(zones["pkg0"], 5_000_000 + 1_000_000)
    assert copy.end(state, wall_s=1.0, cpu_s=1.0)[0]["cpu"] == pytest.approx(1.0)
