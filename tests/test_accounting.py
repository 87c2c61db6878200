"""Accounting modes: calls metered at once in threads and in processes sum to the whole, and say how."""
import hashlib
import multiprocessing
import threading
import time

import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.energy import accounting
from pyterrier_gaia.energy.accounting import MachineShare
from pyterrier_gaia.energy.profile import PowerProfile
from pyterrier_gaia.energy.sensors import CpuPowerModel, RaplSensor

FRAME = pd.DataFrame({"qid": ["1"], "query": ["q"]})
PROFILE = PowerProfile("Test CPU", tdp_w=20.0, tdp_source="given", logical_cpus=2)


def _burn(cpu_s: float) -> None:
    """Burn about ``cpu_s`` of this thread's CPU time in hashlib (which releases the GIL: threads run in parallel)."""
    block, end = b"x" * 65536, time.thread_time() + cpu_s
    while time.thread_time() < end:
        hashlib.sha256(block).digest()


def _burning(cpu_s: float, barrier: threading.Barrier, own: dict, key: str) -> pt.Transformer:
    def run(frame):
        barrier.wait()
        started = time.thread_time()
        _burn(cpu_s)
        own[key] = time.thread_time() - started
        return frame
    return pt.apply.generic(run)


def _metered_at_once(mode: str, seconds=(0.03, 0.06, 0.09)):
    """Three threads each metering a CPU-burning call at once; (records, own thread CPU, process CPU of the span)."""
    ledger, own = gaia.Ledger(), {}
    barrier = threading.Barrier(len(seconds))
    stages = [gaia.Metered(_burning(s, barrier, own, str(i)), name=str(i), sensors=CpuPowerModel(PROFILE),
                           ledger=ledger, accounting=mode) for i, s in enumerate(seconds)]
    threads = [threading.Thread(target=stage, args=(FRAME,)) for stage in stages]
    cpu0 = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {r["stage"]: r for r in ledger.records}, own, time.process_time() - cpu0


def test_threads_metering_at_once_share_the_process_cpu_time():
    records, own, whole = _metered_at_once("threads")
    assert {r["accounting"] for r in records.values()} == {"threads"}
    charged = sum(r["cpu_s"] for r in records.values())
    # the calls sum to the process's CPU time while any was open: within 10 % (+5 ms) of the span around them
    assert charged == pytest.approx(whole, rel=0.10, abs=0.005)
    for key, record in records.items():                 # each at least its own thread's work
        assert record["cpu_s"] >= own[key] * 0.98
        assert record["joules_by"]["cpu"] == pytest.approx(record["cpu_s"] * PROFILE.active_w_per_cpu)
    assert records["2"]["cpu_s"] > records["0"]["cpu_s"]
    # process mode charges each call everything the process did meanwhile: an overcount
    records, own, whole = _metered_at_once("process")
    assert {r["accounting"] for r in records.values()} == {"process"}
    assert sum(r["cpu_s"] for r in records.values()) > 1.5 * sum(own.values())


def _zone(root, zone, name, energy_uj):
    folder = root / zone
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text("1000000000\n")
    return folder / "energy_uj"


def _overlapping_rapl_calls(tmp_path, mode: str):
    """Calls A and B overlap: 1 J while only A is open, 2 J while both are, 4 J while only B is."""
    root = tmp_path / mode / "powercap"
    package = _zone(root, "intel-rapl:0", "package-0", 500_000)
    sensor, ledger = RaplSensor(root), gaia.Ledger()
    inside = {name: threading.Event() for name in "AB"}
    go = {name: threading.Event() for name in "AB"}

    def waiting(name):
        def run(frame):
            inside[name].set()
            go[name].wait(10)
            return frame
        return gaia.Metered(pt.apply.generic(run), name=name, sensors=sensor, ledger=ledger, accounting=mode)

    def add(joules):
        package.write_text(f"{int(package.read_text()) + int(joules * 1e6)}\n")
    threads = {name: threading.Thread(target=waiting(name), args=(FRAME,)) for name in "AB"}
    threads["A"].start()
    inside["A"].wait(10)
    add(1)
    threads["B"].start()
    inside["B"].wait(10)
    add(2)
    go["A"].set()
    threads["A"].join()
    add(4)
    go["B"].set()
    threads["B"].join()
    return {r["stage"]: r for r in ledger.records}


def test_rapl_counters_are_shared_between_overlapping_calls(tmp_path):
    records = _overlapping_rapl_calls(tmp_path, "threads")
    a, b = records["A"]["joules_by"]["cpu"], records["B"]["joules_by"]["cpu"]
    assert a + b == pytest.approx(7.0)                  # the whole, once
    assert 1.0 <= a <= 3.0 and 4.0 <= b <= 6.0          # each: its own interval, and a share of the common one
    assert records["A"]["accounting"] == "threads" and records["A"]["method"] == "rapl"
    records = _overlapping_rapl_calls(tmp_path, "process")
    assert records["A"]["joules_by"]["cpu"] == pytest.approx(3.0)   # 1 + 2: the machine's whole delta
    assert records["B"]["joules_by"]["cpu"] == pytest.approx(6.0)   # 2 + 4: the common 2 J counted twice


def _stat(path, busy_ticks, idle_ticks=0):
    path.write_text(f"cpu  {busy_ticks} 0 0 {idle_ticks} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")


def test_machine_share_is_process_over_busy_cpu_time_smoothed(tmp_path):
    stat = tmp_path / "stat"
    share = MachineShare(str(stat), period_s=0.1, memory_s=1.0)
    ticks = accounting._CLOCK_TICKS
    _stat(stat, 0)
    assert share.update(now=0.0, cpu=0.0) == 1.0        # no span yet: the whole
    _stat(stat, 4 * ticks)                              # 4 busy CPU-seconds on the machine...
    assert share.update(now=2.0, cpu=1.0) == pytest.approx(0.25)   # ...1 of them this process's
    _stat(stat, 5 * ticks)
    assert share.update(now=2.05, cpu=1.5) == pytest.approx(0.25)  # within period_s: not read again
    _stat(stat, 6 * ticks)
    assert share.update(now=3.0, cpu=3.0) == pytest.approx((0.3679 + 2) / (4 * 0.3679 + 2), rel=1e-3)  # smoothed
    _stat(stat, 6 * ticks)
    assert share.update(now=4.0, cpu=3.5) <= 1.0        # never above the whole
    assert accounting.machine_busy_s(str(tmp_path / "missing")) is None


def _child(mode, seconds, queue):
    ledger = gaia.Ledger()
    stage = gaia.Metered(pt.apply.generic(lambda frame: (_burn(seconds), frame)[1]), sensors=CpuPowerModel(PROFILE),
                         ledger=ledger, accounting=mode)
    stage(FRAME)
    record = ledger.records[0]
    queue.put(record["joules_by"]["static"] / PROFILE.static_w)


@pytest.mark.skipif(accounting.machine_busy_s() is None, reason="needs /proc/stat")
def test_processes_metering_at_once_share_the_machine_static_power():
    context = multiprocessing.get_context("fork")
    for mode, bound in (("machine-share", 1.2), ("threads", None)):
        queue = context.Queue()
        children = [context.Process(target=_child, args=(mode, 0.15, queue)) for _ in range(2)]
        started = time.perf_counter()
        for child in children:
            child.start()
        held = [queue.get(timeout=60) for _ in children]
        for child in children:
            child.join()
        span = time.perf_counter() - started
        if bound:   # at most the machine's static power over the span (less when other jobs share the CPUs)
            assert 0 < sum(held) <= bound * span
        else:       # each process charged static power for its whole wall time
            assert all(0.15 <= seconds <= span for seconds in held)


def test_bad_accounting_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="accounting='cpu'; expected 'auto', 'process', 'threads', 'machine-share'"):
        gaia.Metered(pt.apply.generic(lambda frame: frame), accounting="cpu")
