"""Scaling a job out to N nodes: time and energy of each part, and which part stops scaling first.

A job is a sequence of parts, run one after another on N identical nodes (one of them the driver):

- :class:`Split`: work divided evenly among the nodes (encoding a corpus shard, re-ranking a batch of
  queries); each node's share is predicted by a calibrated :class:`~pyterrier_gaia.cost.model.CostModel`
  from the part's operation counts divided by N, on the target hardware profile.
- :class:`Fixed`: a stated time that N does not change: on every node at once (starting a worker,
  loading a model, opening an index) or on the driver alone (splitting the queries, concatenating
  the results).
- :class:`Transfer`: bytes through one shared link (a storage server, the driver's network card):
  every node fetching the same bytes (an index, a model: the time grows with N), or a fixed total
  (the vector shards sent to the driver for merging).

Energy: the nodes are held for the whole job. A node draws the cost model's predicted joules while
it works on a Split part, its profile's TDP while it works on a Fixed part (an upper bound), and its
profile's idle power whenever it waits (for the driver, for a transfer, or for a Split part run on
other hardware, such as BM25 on the host CPU of a GPU node). What the network and the storage
server draw is not modelled.

>>> table = scale_out(model, [Split("encode", stage="encode", counts={...}),
...                           Fixed("load models", seconds=4.2, on="each"),
...                           Transfer("vectors to the driver", bytes=13.6e9, bandwidth=1.25e9)],
...                   nodes=[1, 2, 4, 8, 16], hardware="epyc-9654")
"""
import numbers
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Sequence

from . import hardware as hw
from .model import CostModel

COLUMNS = ["nodes", "part", "kind", "seconds", "joules", "busy_node_s"]


def _check_number(where, name, value, zero_ok=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value >= 0 if zero_ok else value > 0):
        raise ValueError(f"{where}: {name}={value!r}; expected a {'non-negative' if zero_ok else 'positive'} number")


@dataclass(frozen=True)
class Split:
    """Work divided evenly among the nodes: the whole job's ``counts`` of cost-model stage ``stage``
    (``calls``: the metered calls the whole job makes, default one per worker), run at ``precision``
    by ``workers`` concurrent workers on each node, each like the calibrated one (e.g. BM25, host
    work that keeps the calibrated machine's cores: a 96-core node runs 96 / 2 workers of a 2-core
    calibration), on ``hardware`` (default: the job's profile; e.g. the host CPU of a GPU node)."""

    name: str
    stage: str
    counts: Dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"
    workers: int = 1
    hardware: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"Split({self.name!r}): workers={self.workers!r}; expected a whole number >= 1")

    def cost(self, model: CostModel, nodes: int, profile: hw.Profile):
        """(seconds, joules, busy node-seconds) on ``nodes`` nodes."""
        workers = nodes * self.workers
        share = {name: value / workers for name, value in self.counts.items()}
        share["calls"] = max(self.counts.get("calls", workers) / workers, 1.0)   # a call per worker at least
        elsewhere = self.hardware is not None and hw.get(self.hardware).name != profile.name
        one = model.predict(share, stage=self.stage, hardware=self.hardware if elsewhere else profile,
                            precision=self.precision)
        # on other hardware (the host CPU of a GPU node), the job's profile waits meanwhile
        return one.latency_s, workers * one.joules, 0.0 if elsewhere else nodes * one.latency_s


@dataclass(frozen=True)
class Fixed:
    """``seconds`` that N does not change, on every node at once (``on="each"``) or on the driver
    alone (``on="driver"``, the other nodes waiting)."""

    name: str
    seconds: float
    on: str = "each"

    def __post_init__(self):
        _check_number(f"Fixed({self.name!r})", "seconds", self.seconds, zero_ok=True)
        if self.on not in ("each", "driver"):
            raise ValueError(f"Fixed({self.name!r}): on={self.on!r}; expected 'each' or 'driver'")

    def cost(self, model: CostModel, nodes: int, profile: hw.Profile):
        working = nodes if self.on == "each" else 1
        return self.seconds, working * self.seconds * profile.tdp_w, working * self.seconds


@dataclass(frozen=True)
class Transfer:
    """``bytes`` through one shared link of ``bandwidth`` bytes/s; ``per_node``: every node fetches
    ``bytes`` (through the same link, so the time grows with N), else ``bytes`` is the total."""

    name: str
    bytes: float
    bandwidth: float
    per_node: bool = False

    def __post_init__(self):
        _check_number(f"Transfer({self.name!r})", "bytes", self.bytes, zero_ok=True)
        _check_number(f"Transfer({self.name!r})", "bandwidth", self.bandwidth)

    def cost(self, model: CostModel, nodes: int, profile: hw.Profile):
        total = self.bytes * (nodes if self.per_node else 1)
        return total / self.bandwidth, 0.0, 0.0


def scale_out(model: CostModel, parts: Sequence, nodes: Iterable[int] = (1, 2, 4, 8, 16),
              hardware: Optional[str] = None):
    """Predicted time and energy of ``parts`` (run one after another) on each number of ``nodes``
    of ``hardware`` (a profile or its name; default: the one ``model`` was calibrated on).

    A DataFrame, one row per (nodes, part): ``seconds`` (wall time of the part), ``joules`` (all the
    nodes, idle power of the waiting ones included), ``busy_node_s``; then one row per N with part
    ``"total"``. Predictions, not measurements: see :func:`summary` for speed-up and efficiency.
    """
    import pandas as pd

    where = "scale_out"
    if not parts:
        raise ValueError(f"{where}: no parts; expected Split, Fixed and Transfer parts")
    bad = next((p for p in parts if not isinstance(p, (Split, Fixed, Transfer))), None)
    if bad is not None:
        raise TypeError(f"{where}: part {bad!r} is a {type(bad).__name__}; expected Split, Fixed or Transfer")
    profile = hw.get(hardware) if hardware else model.home
    if profile is None:
        raise ValueError(f"{where}: the model was calibrated on unknown hardware; pass hardware=NAME")
    rows = []
    for n in nodes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: nodes contains {n!r}; expected whole numbers >= 1")
        for part in parts:
            seconds, joules, busy = part.cost(model, n, profile)
            idle = profile.idle_w * max(n * seconds - busy, 0.0)
            rows.append((n, part.name, type(part).__name__, seconds, joules + idle, busy))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    totals = frame.groupby("nodes", sort=False)[["seconds", "joules", "busy_node_s"]].sum().reset_index()
    totals.insert(1, "part", "total")
    totals.insert(2, "kind", "total")
    return pd.concat([frame, totals], ignore_index=True).sort_values("nodes", kind="stable", ignore_index=True)


def summary(table):
    """Per number of nodes: total ``seconds`` and ``joules``, ``speedup`` over the smallest N,
    ``efficiency`` (speed-up / N relative to it), ``fixed_share`` (of the time, in the Fixed and
    Transfer parts, which N does not shorten), and the part taking the largest share of the time
    (``slowest``, ``slowest_share``), from a :func:`scale_out` table."""
    parts = table[table.part != "total"]
    totals = table[table.part == "total"].set_index("nodes")[["seconds", "joules"]]
    base_n = totals.index.min()
    base = totals.loc[base_n, "seconds"]
    totals["speedup"] = base / totals["seconds"]
    totals["efficiency"] = totals["speedup"] * base_n / totals.index
    fixed = parts[parts.kind != "Split"].groupby("nodes")["seconds"].sum()
    totals["fixed_share"] = fixed.reindex(totals.index, fill_value=0.0) / totals["seconds"]
    slowest = parts.loc[parts.groupby("nodes")["seconds"].idxmax()].set_index("nodes")
    totals["slowest"] = slowest["part"]
    totals["slowest_share"] = slowest["seconds"] / totals["seconds"]
    return totals.reset_index()

