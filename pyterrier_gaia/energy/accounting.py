"""Accounting modes: which share of the process's and the machine's work one metered call is charged.

Named in every record (key ``accounting``), as CodeCarbon names its ``tracking_mode``:

- ``process``: a call is charged what the whole process did during it (its CPU seconds, every
  counter's whole delta) and static and DRAM power for its wall time. Calls that overlap in one
  process are each charged everything: right for one call at a time, an overcount otherwise.
- ``threads``: the calls open at once in a process share what it did. Time is cut at every start and
  end of a call; in each interval, each open call is charged the CPU time of the thread that runs it
  (its per-thread CPU clock), plus a share of the CPU time of the process's other threads (torch and
  BLAS pools, the JVM...) in proportion to its own thread's, and the same share of the interval's
  counter energy (RAPL, NVML) and of its static and DRAM seconds. The calls' figures sum to the
  process's over the time any call was open; one call at a time is charged as in ``process``.
  Calls nested in one thread (a metered stage inside another) are each charged their thread's share.
- ``machine-share``: ``threads``, and of what is machine-wide (RAPL and NVML counters, static power)
  and of the DRAM term, the process is charged only its share of the machine's busy CPU time
  (``/proc/stat``), smoothed over about a second: processes metering at once sum to the machine's
  whole, and a call is not charged for the time other jobs held the CPUs.

In every mode the DRAM term reads :class:`ResidentClock`, the GiB-seconds the process has held resident,
advanced at every start and end of a call: a call is charged the resident set over its time, not the
one at its end, and one-off work inside it (``metered.one_off``) comes out of it whole.

:class:`Accounting` applies a mode for one metered stage; :data:`ACCOUNTANT` is the process-wide
bookkeeping of the calls open at once, shared by every stage of the process.
"""
import math
import os
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from .sensors import resident_gib

MODES = ("process", "threads", "machine-share")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_clock() -> Optional[int]:
    """The CPU-time clock of the calling thread (``pthread_getcpuclockid``), or None where there is none."""
    try:
        return time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return None


def machine_busy_s(path: str = "/proc/stat") -> Optional[float]:
    """CPU seconds the machine spent busy since boot (user, nice, system, irq, softirq; not idle, iowait or
    steal), from the first line of ``/proc/stat``; None where it cannot be read."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            fields = os.read(descriptor, 256).split(b"\n", 1)[0].split()
        finally:
            os.close(descriptor)
        user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[1:8])
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS


def resolve_mode(mode: str) -> str:
    """A mode of :data:`MODES` from ``mode``; ``"auto"`` is ``machine-share`` where ``/proc/stat`` and
    per-thread CPU clocks can be read, else ``threads`` where the clocks can, else ``process``."""
    if mode == "auto":
        if thread_clock() is None:
            return "process"
        return "machine-share" if machine_busy_s() is not None else "threads"
    if mode not in MODES:
        raise ValueError(f"gaia: accounting={mode!r}; expected 'auto', " + ", ".join(map(repr, MODES)))
    if mode != "process" and thread_clock() is None:
        raise RuntimeError(f"gaia: accounting={mode!r} needs per-thread CPU clocks (pthread_getcpuclockid), "
                           "which this platform lacks; use accounting='process'")
    if mode == "machine-share" and machine_busy_s() is None:
        raise RuntimeError("gaia: accounting='machine-share' needs the machine's busy CPU time from /proc/stat, "
                           "which cannot be read here; use accounting='threads' or 'process'")
    return mode


class ResidentClock:
    """The GiB-seconds this process has held resident since the clock started: the trapezoid over readings
    of its resident set (``sensors.resident_gib``), one per :meth:`read`. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.restart()

    def restart(self) -> None:
        """Start again from zero (in a forked child)."""
        self._at: Optional[float] = None
        self._gib = self._total = 0.0

    def read(self) -> float:
        """GiB-seconds held so far, up to now."""
        now, gib = time.perf_counter(), resident_gib()
        with self._lock:
            if self._at is not None:
                self._total += (now - self._at) * (self._gib + gib) / 2
            self._at, self._gib = now, gib
            return self._total


#: the resident set this process has held over time, read at every start and end of a metered call
RESIDENT = ResidentClock()


class Usage:
    """What one call is charged: CPU seconds, held seconds (of static power), held GiB-seconds of resident
    memory (of DRAM power), and per counter sensor its joules by component (None in ``process`` mode: the
    sensor's own begin/end delta)."""

    __slots__ = ("cpu_s", "held_s", "held_gib_s", "counted")

    def __init__(self, cpu_s: float, held_s: float, held_gib_s: float,
                 counted: Optional[List[Dict[str, float]]] = None):
        self.cpu_s, self.held_s, self.held_gib_s, self.counted = cpu_s, held_s, held_gib_s, counted


class _Window:
    """One open call in ``threads`` or ``machine-share`` mode, and what it has been charged so far."""

    __slots__ = ("thread", "counters", "machine", "cpu_s", "held_s", "held_gib_s", "counted")

    def __init__(self, thread: int, counters: Sequence, machine: bool):
        self.thread, self.counters, self.machine = thread, counters, machine
        self.cpu_s = self.held_s = self.held_gib_s = 0.0
        self.counted = [{} for _ in counters]


class MachineShare:
    """This process's share of the machine's busy CPU time: process CPU seconds over busy CPU seconds
    (``/proc/stat``, in 10 ms ticks), both exponentially smoothed with a time constant of ``memory_s``.

    ``/proc/stat`` is read at most every ``period_s`` (it costs some 30 µs); after an idle gap longer
    than that (no call open), the next span starts afresh, so a process's sleep is not read as a low share.
    """

    def __init__(self, path: str = "/proc/stat", period_s: float = 0.1, memory_s: float = 1.0):
        self.path, self.period_s, self.memory_s = path, period_s, memory_s
        self.estimate: Optional[float] = None
        self._stamp: Optional[float] = None
        self._cpu = self._busy = 0.0
        self._process_s = self._machine_s = 0.0

    def restart(self) -> None:
        """Forget the current span (after an idle gap); the smoothed share is kept."""
        self._stamp = None

    def update(self, now: float, cpu: float) -> float:
        """The share to apply to the interval ending ``now`` (``cpu``: process CPU seconds now)."""
        if self._stamp is not None and now - self._stamp < self.period_s and self.estimate is not None:
            return self.estimate
        busy = machine_busy_s(self.path)
        if busy is None:
            return 1.0 if self.estimate is None else self.estimate
        if self._stamp is not None:
            decay = math.exp(-(now - self._stamp) / self.memory_s)
            self._process_s = self._process_s * decay + (cpu - self._cpu)
            self._machine_s = self._machine_s * decay + (busy - self._busy)
            if self._machine_s > 0:
                self.estimate = min(1.0, max(0.0, self._process_s / self._machine_s))
        self._stamp, self._cpu, self._busy = now, cpu, busy
        return 1.0 if self.estimate is None else self.estimate


class Accountant:
    """The calls open at once in this process, charged interval by interval (see the module docstring).

    Thread-safe; one per process (:data:`ACCOUNTANT`, reset in a forked child).
    """

    def __init__(self, machine: Optional[MachineShare] = None):
        self._lock = threading.Lock()
        self.machine = machine or MachineShare()
        self._reset()

    def _reset(self) -> None:
        self._open: List[_Window] = []
        self._clocks: Dict[int, List] = {}        # thread -> [clock id, last reading or None, open windows]
        self._counters: Dict[int, List] = {}      # id(sensor) -> [sensor, last reading, open windows]
        self._now = self._cpu = self._gib_s = 0.0
        self._closed_at: Optional[float] = None

    def open(self, counters: Sequence, machine: bool) -> _Window:
        """Start charging a call run by the calling thread; ``counters``: its counter sensors (RAPL, NVML)."""
        thread, clock = threading.get_ident(), thread_clock()
        window = _Window(thread, counters, machine)
        with self._lock:
            self._advance()
            if not self._open and (self._closed_at is None or self._now - self._closed_at > self.machine.period_s):
                self.machine.restart()
            if machine:
                self.machine.update(self._now, self._cpu)
            entry = self._clocks.get(thread)
            if entry is None:
                self._clocks[thread] = [clock, None, 1]
            else:
                entry[2] += 1
            self._read_new_clocks()
            for sensor in counters:
                entry = self._counters.get(id(sensor))
                if entry is None:
                    self._counters[id(sensor)] = [sensor, sensor.read(), 1]
                else:
                    entry[2] += 1
            self._open.append(window)
        return window

    def close(self, window: _Window) -> Usage:
        """Stop charging ``window``; what it was charged."""
        with self._lock:
            self._advance()
            self._open.remove(window)
            self._release(self._clocks, window.thread)
            for sensor in window.counters:
                self._release(self._counters, id(sensor))
            if not self._open:
                self._closed_at = self._now
            elif len(self._clocks) == 1:                  # one thread left: its clock is not read until another opens
                next(iter(self._clocks.values()))[1] = None
        return Usage(window.cpu_s, window.held_s, window.held_gib_s, window.counted)

    def _read_new_clocks(self) -> None:
        """Per-thread clocks are read only while calls are open on several threads (one thread takes all)."""
        if len(self._clocks) > 1:
            for entry in self._clocks.values():
                if entry[1] is None:
                    entry[1] = time.clock_gettime(entry[0])

    @staticmethod
    def _release(entries: dict, key: int) -> None:
        entries[key][2] -= 1
        if not entries[key][2]:
            del entries[key]

    def _advance(self) -> None:
        """Charge the interval since the last event to the calls open during it (under the lock)."""
        now, cpu, gib_s = time.perf_counter(), time.process_time(), RESIDENT.read()
        elapsed, process_s, resident_s = now - self._now, cpu - self._cpu, gib_s - self._gib_s
        self._now, self._cpu, self._gib_s = now, cpu, gib_s
        if not self._open:
            return
        machine = self.machine.update(now, cpu) if any(window.machine for window in self._open) else 1.0
        if len(self._clocks) == 1 and not self._counters:  # the usual case, kept cheap: one thread takes everything
            for window in self._open:
                part = machine if window.machine else 1.0
                window.cpu_s += process_s
                window.held_s += elapsed * part
                window.held_gib_s += resident_s * part
            return
        if len(self._clocks) == 1:                         # one thread has calls open: it takes everything
            charged, share = dict.fromkeys(self._clocks, process_s), dict.fromkeys(self._clocks, 1.0)
        else:
            charged, share = self._shares(process_s)
        deltas = {}
        for key, entry in self._counters.items():
            reading = entry[0].read()
            users = {window.thread for window in self._open if any(s is entry[0] for s in window.counters)}
            deltas[key] = entry[0].delta(entry[1], reading), sum(share[thread] for thread in users)
            entry[1] = reading
        for window in self._open:
            part = share[window.thread] * (machine if window.machine else 1.0)
            window.cpu_s += charged[window.thread]
            window.held_s += elapsed * part
            window.held_gib_s += resident_s * part
            for sensor, counted in zip(window.counters, window.counted):
                delta, users = deltas[id(sensor)]
                weight = part / users if users > 0 else 0.0
                for component, joules in delta.items():
                    counted[component] = counted.get(component, 0.0) + joules * weight

    def _shares(self, process_s: float) -> Tuple[Dict[int, float], Dict[int, float]]:
        """Each thread's CPU seconds (its own, plus the other threads' in proportion to it) and share."""
        own = {}
        for thread, entry in self._clocks.items():
            reading = time.clock_gettime(entry[0])
            own[thread], entry[1] = reading - entry[1], reading
        threads_s = sum(own.values())
        rest = max(process_s - threads_s, 0.0)
        charged = {thread: s + (rest * s / threads_s if threads_s > 0 else rest / len(own))
                   for thread, s in own.items()}
        whole = sum(charged.values())
        return charged, {thread: c / whole if whole > 0 else 1 / len(own) for thread, c in charged.items()}

    def after_fork(self) -> None:
        """In a forked child: no call is open, the lock is free, and the machine share starts afresh
        (a child's CPU clock starts from zero)."""
        self._lock = threading.Lock()
        self.machine = MachineShare(self.machine.path, self.machine.period_s, self.machine.memory_s)
        RESIDENT.restart()
        self._reset()


#: the bookkeeping of this process's open calls
ACCOUNTANT = Accountant()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=ACCOUNTANT.after_fork)


class Accounting:
    """A mode applied to one metered stage's sensors: :meth:`open` before its call, :meth:`close` after."""

    def __init__(self, mode: str, sensors: Sequence):
        self.mode = resolve_mode(mode)
        self.sensors = tuple(sensors)
        self._counters = tuple(sensor for sensor in self.sensors if getattr(sensor, "counter", False))
        self._states = [None] * len(self.sensors)

    def open(self):
        """Start a call: the sensors' states, the process CPU clock and the resident clock (``process``), or
        the call's window in the accountant."""
        if self.mode == "process":
            return [sensor.begin() for sensor in self.sensors], time.process_time(), RESIDENT.read()
        return ACCOUNTANT.open(self._counters, self.mode == "machine-share")

    def close(self, opened, wall_s: float) -> Tuple[Dict[str, float], bool, float]:
        """End a call of ``wall_s`` seconds: (joules by component, short window, CPU seconds charged)."""
        if self.mode == "process":
            states, started, resident_from = opened
            usage = Usage(time.process_time() - started, wall_s, RESIDENT.read() - resident_from)
        else:
            usage = ACCOUNTANT.close(opened)
            states = self._states
        counted = iter(usage.counted or ())
        joules_by, short = {}, False
        for sensor, state in zip(self.sensors, states):
            given = next(counted) if usage.counted is not None and getattr(sensor, "counter", False) else None
            reading, flagged = sensor.end(state, wall_s, usage.cpu_s, held_s=usage.held_s, counted=given,
                                          held_gib_s=usage.held_gib_s)
            short = short or flagged
            for component, value in reading.items():
                joules_by[component] = joules_by.get(component, 0.0) + value
        return joules_by, short, usage.cpu_s
