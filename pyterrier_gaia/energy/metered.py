"""The energy-wrapper operator: ``gaia.Metered`` meters one stage, ``gaia.meter`` every stage of a pipeline.

A metered stage returns exactly what the stage returns; around each call it reads its sensors,
the wall clock and the process CPU clock, opens an operation-count scope, and appends one record
to its ledger. Its accounting mode (``accounting.py``) says which share of the process's and the
machine's work a call is charged when calls overlap. A call that raises is recorded with its error,
and the exception propagates unchanged.

One-off work done inside a metered call (fitting a model on first use, a calibration) is marked with
:func:`one_off`: it gets a record of its own, marked ``startup``, and is left out of the records of
the metered calls around it, so that a system's J/q never includes it.
"""
import time
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import pandas as pd
import pyterrier as pt
from pyterrier._ops import Compose, Concatenate, FeatureUnion, SetIntersection, SetUnion, Sum

from ..cost.counts import counting
from .accounting import Accounting
from .carbon import Grid
from .ledger import Ledger
from .record import Record
from .sensors import method_of, resolve_sensors

_NARY = (Compose, FeatureUnion)                             # built from *transformers
_BINARY = (Sum, SetUnion, SetIntersection, Concatenate)     # built from (left, right)


def default_name(stage: pt.Transformer) -> str:
    """A stage's name in the ledger: a metered stage's own name, else its repr when short and free of
    memory addresses, else its class name."""
    if isinstance(stage, Metered):
        return stage.name
    text = repr(stage)
    return text if len(text) <= 60 and " at 0x" not in text else type(stage).__name__


class Metered(pt.Transformer):
    """Meters a stage: same output, one ledger record per call (``transform`` and ``transform_iter``).

    >>> rr = gaia.Metered(reranker, name="minilm-int8", ledger="run.jsonl")
    >>> rr(candidates); rr.ledger.summary()

    :param stage: any ``pt.Transformer``
    :param name: the stage's name in the ledger (default: a short repr, else the class name)
    :param sensors: ``"auto"`` (RAPL if readable, else the CPU power model; plus NVML if it sees a GPU),
        ``"model"``, ``"rapl"``, ``"nvml"``, a sensor object, or a list of them
    :param ledger: a :class:`~pyterrier_gaia.Ledger`, a JSONL path, or None (a new in-memory ledger)
    :param carbon: a :class:`~pyterrier_gaia.energy.carbon.Grid`, a country code ("FRA"), an
        intensity in gCO2e/kWh, or None (CodeCarbon's world average, PUE 1)
    :param startup: the calls are one-off start-up work (warming a JVM, loading a model): their
        records are marked ``startup`` and left out of per-system and per-query figures
    :param accounting: which share of the process's and the machine's work a call is charged:
        ``"process"``, ``"threads"``, ``"machine-share"``, or ``"auto"`` (``machine-share`` where
        ``/proc/stat`` and per-thread CPU clocks can be read); named in each record (docs/energy.md)
    """

    def __init__(self, stage, name: Optional[str] = None, sensors="auto", ledger=None, carbon=None, *,
                 startup: bool = False, accounting: str = "auto"):
        if not isinstance(stage, pt.Transformer):
            raise TypeError(f"gaia.Metered: expected a pt.Transformer to meter, got {type(stage).__name__} "
                            f"{_short(stage)}; wrap functions with pt.apply and frames with pt.Transformer.from_df")
        self.stage = stage
        self.name = name if name is not None else default_name(stage)
        self.sensors = resolve_sensors(sensors)
        self.ledger = Ledger.coerce(ledger)
        self.carbon = Grid.coerce(carbon)
        self.startup = bool(startup)
        self.accounting = Accounting(accounting, self.sensors)
        self._method = method_of(self.sensors)
        self._constants = {key: value for sensor in self.sensors for key, value in sensor.constants().items()}
        self._constants["carbon"] = self.carbon.constants()

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        return self._call(self.stage.transform, inp, distinct_qids(inp))

    def transform_iter(self, inp: pt.model.IterDict) -> pt.model.IterDict:
        rows = list(inp)
        qids = list(dict.fromkeys(row["qid"] for row in rows if "qid" in row))
        return self._call(lambda records: list(self.stage.transform_iter(records)), rows, qids)

    def index(self, docs):
        """Meters a ``pt.Indexer`` stage's ``index(docs)``: one record, docs = documents it read, queries 0."""
        if not isinstance(self.stage, pt.Indexer):
            raise TypeError(f"gaia.Metered({self.name}).index: the stage is a {type(self.stage).__name__}, "
                            f"not a pt.Indexer")
        counted = _CountedDocs(docs)

        def run(items):
            counted.result = self.stage.index(items)
            return counted  # its len() is the record's docs
        self._call(run, counted, [])
        return counted.result

    def _call(self, call: Callable, inp, qids):
        entered = time.perf_counter()
        start = time.time()
        opened = self.accounting.open()
        scope = counting()
        frame = _Call(self)
        token = _calls.set(_calls.get() + (frame,))
        wall0 = time.perf_counter()
        try:
            with scope:
                out = call(inp)
        except BaseException as error:
            wall1 = time.perf_counter()
            _calls.reset(token)
            self._record(opened, start, qids, 0, wall1 - wall0, scope.counts, error, wall0 - entered, wall1,
                         less=frame)
            raise
        wall1 = time.perf_counter()
        _calls.reset(token)
        docs = len(out) if hasattr(out, "__len__") else 0    # e.g. an indexer's .index() returns no rows
        self._record(opened, start, qids, docs, wall1 - wall0, scope.counts, None, wall0 - entered, wall1,
                     less=frame)
        return out

    def _record(self, opened, start, qids, docs, wall_s, counts, error, sensing_before, ended, *,
                less: "_Call" = None, stage: Optional[str] = None,
                startup: Optional[bool] = None) -> Tuple[float, Dict[str, float]]:
        """Append the record of a window opened with ``opened``; ``less``: the one-off work inside it,
        taken out of it. Returns the window's CPU seconds and joules by component, as measured."""
        joules_by, short, cpu_s = self.accounting.close(opened, wall_s)
        measured = (cpu_s, dict(joules_by))
        if less is not None and less.wall_s:                # one-off work was done inside the call
            wall_s, cpu_s = max(0.0, wall_s - less.wall_s), max(0.0, cpu_s - less.cpu_s)
            joules_by = {c: max(0.0, value - less.joules_by.get(c, 0.0)) for c, value in joules_by.items()}
        joules = sum(joules_by.values())
        record = Record(
            stage=self.name if stage is None else stage, start=start, queries=len(qids),
            qid=str(qids[0]) if len(qids) == 1 else None, docs=int(docs), wall_s=wall_s, cpu_s=cpu_s,
            joules=joules, joules_by=joules_by, method=self._method, accounting=self.accounting.mode,
            **self.carbon.account(joules), error=None if error is None else f"{type(error).__name__}: {error}",
            counts={name: _number(value) for name, value in counts.items()},
            short_window=short, constants=self._constants, startup=self.startup if startup is None else startup)
        record.sensing_s = sensing_before + (time.perf_counter() - ended)
        self.ledger.append(record)
        return measured

    def transform_inputs(self):
        return pt.inspect.transformer_inputs(self.stage)

    def transform_outputs(self, input_columns):
        return pt.inspect.transformer_outputs(self.stage, input_columns)

    def __repr__(self):
        return f"Metered({self.stage!r}, name={self.name!r})"


@dataclass
class _Call:
    """A metered call under way on this thread, and the one-off work measured inside it so far."""

    metered: Metered
    wall_s: float = 0.0
    cpu_s: float = 0.0
    joules_by: Dict[str, float] = field(default_factory=dict)

    def take_out(self, wall_s: float, cpu_s: float, joules_by: Dict[str, float]) -> None:
        self.wall_s += wall_s
        self.cpu_s += cpu_s
        for component, value in joules_by.items():
            self.joules_by[component] = self.joules_by.get(component, 0.0) + value


#: the metered calls under way in this thread (or task), outermost first
_calls: ContextVar = ContextVar("pyterrier_gaia_metered_calls", default=())


def in_startup_call() -> bool:
    """Whether this thread is inside a metered call marked ``startup`` (e.g. ``gaia.Experiment``'s warm-up)."""
    return any(frame.metered.startup for frame in _calls.get())


@contextmanager
def one_off(name: str):
    """Mark the work inside as one-off (fitting on first use, a calibration), not part of the call.

    >>> with one_off("fit exit heads"):
    ...     heads = fit(...)

    Inside a metered call (``gaia.Metered``, ``gaia.meter``, ``gaia.Experiment``), the work gets its
    own record, named "STAGE / NAME" and marked ``startup``, in the ledger of the innermost metered
    call of this thread; its wall time, CPU time and energy are taken out of the records of every
    metered call around it (its operation counts are its own), so no system's J/q includes it. Outside
    any metered call it just runs. Work that raises is recorded with its error, and the error propagates.
    """
    frames = _calls.get()
    if not frames:
        yield
        return
    innermost = frames[-1].metered
    entered = time.perf_counter()
    start = time.time()
    opened = innermost.accounting.open()
    scope = counting(detached=True)
    wall0 = time.perf_counter()
    error = None
    try:
        with scope:
            yield
    except BaseException as raised:
        error = raised
        raise
    finally:
        wall_s = time.perf_counter() - wall0
        cpu_s, joules_by = innermost._record(opened, start, [], 0, wall_s, scope.counts, error, wall0 - entered,
                                             wall0 + wall_s, stage=f"{innermost.name} / {name}", startup=True)
        for frame in frames:
            frame.take_out(wall_s, cpu_s, joules_by)


def meter(pipeline, ledger=None, sensors="auto", carbon=None, accounting: str = "auto") -> pt.Transformer:
    """The same pipeline with every stage metered into one ledger (also at ``.ledger`` on the result).

    Operators (``>>``, ``+``, ``**``, ``|``, ``&``, ``^``) are rebuilt around metered operands, so the
    structure and results are unchanged; ``% k`` and ``* w`` are stages of their own. Stages are named
    as by :class:`Metered`, with " #2", " #3"... on repeated names. An already metered stage keeps its
    own ledger and is metered again into this one. ``accounting``: as for :class:`Metered`.
    """
    if not isinstance(pipeline, pt.Transformer):
        raise TypeError(f"gaia.meter: expected a pt.Transformer pipeline, got {type(pipeline).__name__} "
                        f"{_short(pipeline)}")
    ledger, sensors, carbon = Ledger.coerce(ledger), resolve_sensors(sensors), Grid.coerce(carbon)
    name = unique_names()
    metered = rebuild(pipeline, lambda stage: Metered(stage, name(stage), sensors, ledger, carbon,
                                                      accounting=accounting))
    metered.ledger = ledger
    return metered


def unique_names(prefix: str = "") -> Callable[[pt.Transformer], str]:
    """A namer giving each stage ``prefix + default_name(stage)``, with " #2", " #3"... on repeats."""
    seen = Counter()

    def name(stage: pt.Transformer) -> str:
        base = prefix + default_name(stage)
        seen[base] += 1
        return base if seen[base] == 1 else f"{base} #{seen[base]}"
    return name


def rebuild(node: pt.Transformer, leaf: Callable[[pt.Transformer], pt.Transformer]) -> pt.Transformer:
    """``node`` with each stage (a transformer that is not one of PyTerrier's operators) replaced by ``leaf(stage)``."""
    if type(node) in _NARY:
        return type(node)(*[rebuild(child, leaf) for child in node])
    if type(node) in _BINARY:
        return type(node)(rebuild(node.left, leaf), rebuild(node.right, leaf))
    return leaf(node)


def parts(node: pt.Transformer) -> tuple:
    """What ``node`` is made of: an operator's operands, a metered stage's stage, else nothing (a plain stage)."""
    if type(node) in _NARY:
        return tuple(node)
    if type(node) in _BINARY:
        return node.left, node.right
    return (node.stage,) if isinstance(node, Metered) else ()


def distinct_qids(frame: pd.DataFrame) -> list:
    """A frame's distinct qids in order of first appearance, at a fraction of ``frame["qid"].unique()``'s cost
    (paid on every metered call): the column's array is read without building a Series."""
    if "qid" not in frame.columns:
        return []
    try:
        values = frame._get_column_array(frame.columns.get_loc("qid"))
    except (AttributeError, TypeError):                    # another pandas, or repeated "qid" columns
        values = frame["qid"].array
    if len(values) == 1:
        return [values[0]]
    if hasattr(values, "__arrow_array__"):                 # pyarrow-backed strings (pandas' default str)
        import pyarrow
        return pyarrow.array(values).unique().to_pylist()
    return pd.unique(values).tolist()


class _CountedDocs:
    """An iterable of documents that counts those read (a frame is read as its rows)."""

    def __init__(self, docs):
        self.docs = docs.to_dict(orient="records") if isinstance(docs, pd.DataFrame) else docs
        self.read, self.result = 0, None

    def __iter__(self):
        for doc in self.docs:
            self.read += 1
            yield doc

    def __len__(self):
        return self.read


def _number(value):
    """A plain int or float from a count (numpy scalars included)."""
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, (int, float)) else float(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

