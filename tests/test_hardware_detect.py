"""gaia.hardware.local() on any host: detection from fake /proc/cpuinfo and sysfs trees, and on this host."""
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost import host

EPYC = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "1", "cpu MHz": "2445.404",
        "model name": "AMD EPYC 7763 64-Core Processor", "flags": "fpu sse sse2 avx fma avx2 bmi2"}
SAPPHIRE = {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "143", "cpu MHz": "3799.998",
            "model name": "Intel(R) Xeon(R) Platinum 8468",
            "flags": "sse2 avx fma avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni"}
UNKNOWN = {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "999",
           "model name": "Imaginary Core Z9 9999X @ 3.10GHz", "flags": "sse2 avx fma avx2 avx_vnni"}


def fake_host(tmp_path, fields, processors, cpufreq=None):
    """A root with proc/cpuinfo listing ``processors`` copies of ``fields`` and, optionally,
    sys/devices/system/cpu/cpu0/cpufreq files (name -> kHz)."""
    blocks = ["\n".join([f"processor\t: {i}", *(f"{key}\t: {value}" for key, value in fields.items())])
              for i in range(processors)]
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("\n\n".join(blocks) + "\n")
    for name, khz in (cpufreq or {}).items():
        folder = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"{khz}\n")
    return tmp_path


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})


def test_amd_epyc_with_avx2_only(tmp_path, two_cpus):
    profile = gaia.hardware.local(fake_host(tmp_path, EPYC, 8), measure=False)
    assert profile.name == "local-amd-epyc-7763-64-core-processor-2cpu" and profile.kind == "cpu"
    assert profile.peak_flops == {"fp32": pytest.approx(2 * 2.445404e9 * 32)}       # no bf16, no int8 rate
    assert profile.flops_at("bf16") == (profile.peak_flops["fp32"], "fp32")
    assert profile.tdp_w == pytest.approx(280 * 2 / 8)                              # 2 of 8 CPUs of a 280 W chip
    assert "AMD EPYC 7763" in profile.sources["tdp_w"] and profile.sources["peak_flops"].startswith("derived")
    assert profile.memory_bw == host.DEFAULT_MEMORY_BW and "default" in profile.sources["memory_bw"]
    assert profile.cpuid == ("AuthenticAMD", 25, 1, 2)


def test_intel_xeon_with_avx512_bf16_and_amx(tmp_path, two_cpus):
    root = fake_host(tmp_path, SAPPHIRE, 4, cpufreq={"base_frequency": 2000000, "cpuinfo_max_freq": 3800000})
    here = host.detect(root)
    assert (here.base_ghz, here.max_ghz, here.clock_source) == (2.0, 3.8, "sysfs cpufreq")
    assert {"avx512f", "avx512_bf16", "amx_bf16", "amx_int8"} <= here.flags
    rates, how = host.ops_per_cycle(here)
    assert rates == {"fp32": 64, "bf16": 1024, "int8": 2048} and "AVX-512" in how
    without_amx = host.ops_per_cycle(host.Host(**{**here.__dict__, "flags": here.flags - {"amx_bf16", "amx_int8"}}))
    assert without_amx[0] == {"fp32": 64, "bf16": 128, "int8": 256}                # AVX512-BF16 and -VNNI
    profile = gaia.hardware.detected(here, measure=False)
    assert profile.peak_flops["bf16"] == pytest.approx(2 * 2.0e9 * 1024)
    assert profile.clock_ghz == 2.0 and "Xeon Platinum 8468" in profile.sources["tdp_w"]
    assert profile.tdp_w == pytest.approx(350 * 2 / 4)


def test_cpu_codecarbon_does_not_know_gets_the_stated_default(tmp_path, two_cpus):
    here = host.detect(fake_host(tmp_path, UNKNOWN, 2))
    assert here.base_ghz == 3.1 and here.clock_source == "model name"
    profile = gaia.hardware.detected(here, measure=False)
    assert profile.tdp_w == 2 * gaia.hardware.DEFAULT_W_PER_LOGICAL_CPU and "not in CodeCarbon" in profile.sources["tdp_w"]
    assert profile.peak_flops == {"fp32": pytest.approx(2 * 3.1e9 * 32), "int8": pytest.approx(2 * 3.1e9 * 128)}


def test_known_cpuid_keeps_its_curated_profile(tmp_path, two_cpus):
    genoa = {**EPYC, "model": "17", "model name": "AMD EPYC"}
    assert gaia.hardware.local(fake_host(tmp_path, genoa, 2), measure=False) is gaia.hardware.PROFILES["epyc-genoa-2vcpu"]


def test_no_cpuinfo_still_gives_a_profile(tmp_path, two_cpus):
    profile = gaia.hardware.local(tmp_path, measure=False)
    assert profile.cores == 2 and profile.peak_flops["fp32"] > 0 and "default" in profile.sources["clock_ghz"]


def test_this_host_has_a_profile_with_positive_figures():
    profile = gaia.hardware.local()
    assert profile is not None and gaia.hardware.get(profile.name) == profile
    assert profile.cores >= 1 and profile.clock_ghz > 0 and profile.memory_bw > 0 and 0 < profile.idle_w < profile.tdp_w
    assert all(rate > 0 for rate in profile.peak_flops.values())
