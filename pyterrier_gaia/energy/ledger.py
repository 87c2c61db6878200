"""The ledger: an append-only, thread-safe list of metered calls, optionally mirrored to a JSONL file.

One record per metered call (a :class:`~pyterrier_gaia.energy.record.Record`, kept as its dict: the
keys of :data:`RECORD_KEYS`). With a path, each record is appended to the file as one JSON line, in a
single ``write`` to a file kept open for appending, as soon as it is measured (before the metered call
returns): a crash loses nothing already recorded, and several threads or processes can share one file
without interleaving lines.
A file that can no longer be written never costs a stage its output: the records stay in memory.
"""
import csv
import json
import os
import threading
import warnings
from pathlib import Path
from typing import List, Mapping, Optional, Tuple, Union

import orjson
import pandas as pd

from .pickling import LockedState
from .record import RECORD_KEYS, WORKER_KEYS, Record, plain

#: how many skipped lines a warning describes one by one
_SHOWN = 5

_LINE_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_line(record: Mapping, sort_keys: bool = False) -> bytes:
    """One record as a JSON line (UTF-8, newline-terminated). Written by orjson: a metered call pays
    for it, and it costs a third of ``json.dumps`` there (benchmarks/meter_overhead.py)."""
    return orjson.dumps(record, default=plain, option=_LINE_OPTIONS | (orjson.OPT_SORT_KEYS if sort_keys else 0))


class Ledger(LockedState):
    """Records of metered calls: ``records``, :meth:`to_frame`, :meth:`summary`, CSV, JSONL and ir_metadata exports.

    >>> ledger = gaia.Ledger("run.jsonl")    # in memory, and appended to run.jsonl record by record
    >>> gaia.Ledger.load("run.jsonl").summary()

    An existing file is appended to (its old records are not loaded; use :meth:`load`); if its last
    line was left half written (a crash), new records start on a fresh line. A path that cannot be
    written raises OSError here, before any work is metered. If the file cannot be written later
    (made read-only, its folder removed, disk full), the ledger warns once, naming the file, and
    keeps this record and the next ones in memory only (save them with :meth:`to_jsonl`).
    """

    def __init__(self, path: Union[str, os.PathLike, None] = None):
        self.path = None if path is None else Path(path)
        self._records: List[dict] = []
        self._parents: List["Ledger"] = []
        self._lock = threading.Lock()
        self._write_error: Optional[str] = None
        self._descriptor: Optional[int] = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "ab+") as handle:
                    if handle.seekable() and handle.tell() > 0:
                        handle.seek(-1, os.SEEK_END)
                        if handle.read(1) != b"\n":      # a half-written last line: end it
                            handle.write(b"\n")
            except OSError as error:
                raise OSError(f"gaia.Ledger: cannot append records to {self.path}: {error}") from error

    @classmethod
    def coerce(cls, ledger) -> "Ledger":
        """A Ledger from a Ledger, a path (str or PathLike), or None (a new in-memory ledger)."""
        if isinstance(ledger, Ledger):
            return ledger
        if ledger is None or isinstance(ledger, (str, os.PathLike)):
            return cls(ledger)
        raise TypeError(f"gaia: ledger={ledger!r} ({type(ledger).__name__}); expected a gaia.Ledger, a path or None")

    def append(self, record: Union[Record, Mapping]) -> None:
        """Add one record (a :class:`Record`, or a dict checked by :meth:`Record.from_dict`), and write it
        as one JSON line when the ledger has a path."""
        if not isinstance(record, Record):
            try:
                record = Record.from_dict(record)
            except ValueError as error:
                raise ValueError(f"gaia.Ledger.append: not a ledger record: {error}") from None
        self._add(record.to_dict())

    def _add(self, record: dict) -> None:
        with self._lock:
            self._records.append(record)
            if self.path is not None and self._write_error is None:
                self._write(record)
        for parent in self._parents:
            parent._add(record)

    def _write(self, record: dict) -> None:
        """Append one JSON line; on failure, warn once and keep records in memory from now on."""
        line = json_line(record)
        try:
            descriptor = self._open()
            written = os.write(descriptor, line)
            if written != len(line):
                raise OSError(f"wrote {written} of {len(line)} bytes (disk full?)")
        except OSError as error:
            self._write_error = str(error)
            self._close()
            warnings.warn(f"gaia.Ledger: cannot append to {self.path} any more ({error}); record "
                          f"{len(self._records)} and the next ones are kept in memory only "
                          f"(ledger.records); save them with ledger.to_jsonl(path)", RuntimeWarning, stacklevel=5)

    def _open(self) -> int:
        """The file, opened for appending once and kept open; opened again (created) if it was deleted."""
        if self._descriptor is not None and os.fstat(self._descriptor).st_nlink == 0:
            self._close()
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._descriptor

    def _close(self) -> None:
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)

    def __getstate__(self):
        state = super().__getstate__()
        state["_descriptor"] = None                          # a copy opens the file for itself
        return state

    def __del__(self):
        try:
            self._close()
        except (AttributeError, OSError):
            pass

    def branch(self) -> "Ledger":
        """A new in-memory ledger whose records are also appended to this one (to attribute a part's records)."""
        child = Ledger()
        child._parents.append(self)
        return child

    @property
    def records(self) -> List[dict]:
        """A copy of the list of records, oldest first."""
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self):
        return f"Ledger({str(self.path) if self.path else None!r}, records={len(self)})"

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Ledger":
        """An in-memory ledger with the records of a JSONL file (the file is not appended to).

        Lines that are not records (half written, not JSON, not a record) are skipped with one
        warning saying how many and which; blank lines are ignored. A file that cannot be read
        raises the OSError of ``open``, which names it.
        """
        ledger = cls()
        ledger._records, skipped = read_jsonl(Path(path).read_bytes())
        if skipped:
            shown = "; ".join(f"line {number}: {why}" for number, why in skipped[:_SHOWN])
            more = f"; and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
            warnings.warn(f"gaia.Ledger.load: skipped {len(skipped)} line(s) of {path} that are not ledger "
                          f"records ({shown}{more}); read {len(ledger._records)} record(s)", stacklevel=2)
        return ledger

    @classmethod
    def merge(cls, *ledgers: Union["Ledger", str, os.PathLike]) -> "Ledger":
        """An in-memory ledger with the records of all ``ledgers`` (Ledger objects or JSONL paths), by start time.

        A record found in several of them (the same file merged twice, a worker's file beside the
        driver's that already holds its records) is kept once.
        """
        records = {}
        for ledger in ledgers:
            for record in (ledger if isinstance(ledger, Ledger) else cls.load(ledger)).records:
                records.setdefault(json_line(record, sort_keys=True), record)
        merged = cls()
        merged._records = sorted(records.values(), key=lambda record: record.get("start") or 0)
        return merged

    def to_frame(self) -> pd.DataFrame:
        """One row per record, the columns of :data:`RECORD_KEYS` (dict columns kept as dicts)."""
        records = self.records
        extra = [key for record in records for key in record if key not in RECORD_KEYS]
        return pd.DataFrame(records, columns=list(RECORD_KEYS) + list(dict.fromkeys(extra)))

    def summary(self, by: Union[str, Tuple[str, ...]] = "stage") -> pd.DataFrame:
        """One row per stage (``by="stage"``) or per system (``by="system"``), in order of first appearance:
        calls, queries, docs, J, J/q, gCO2e/q, ms/q, method...

        ``by`` may also be ``"method"`` or a key of records from ``gaia.parallel`` workers (``"host"``,
        ``"pid"``, ``"batch"``), or a tuple of these: ``by=("host", "method")`` gives the totals per
        host and sensing method (records not made on a worker have no host: NaN).

        A system is the part of a stage's name before " / " (gaia.Experiment names stages
        "SYSTEM / STAGE"); start-up records are never folded into a system: they keep a row of
        their own, named after their stage. Per-query figures divide the totals by the queries the
        calls served (NaN when none did); a system served the queries of its busiest stage.
        """
        keys = [by] if isinstance(by, str) else list(by)
        if not keys or not set(keys) <= {"stage", "system", "method", *WORKER_KEYS}:
            raise ValueError(f"gaia.Ledger.summary: by={by!r}; expected 'stage' or 'system', or one or more of "
                             f"'method', {', '.join(map(repr, WORKER_KEYS))}")
        columns = ["calls", "queries", "docs", "wall_s", "cpu_s", "J", "J/q", "gCO2e/q", "ms/q", "method",
                   "errors", "short_windows"]
        frame = self.to_frame()
        if frame.empty:
            return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=keys) if len(keys) > 1
                                else pd.Index([], name=keys[0]))
        if "system" in keys:
            system = frame["stage"].str.split(" / ", n=1).str[0]
            frame["system"] = system.where(~frame["startup"].fillna(False).astype(bool), frame["stage"])
        for key in set(WORKER_KEYS) - set(frame.columns):
            frame[key] = None
        grouped = frame.groupby(keys if len(keys) > 1 else keys[0], sort=False, dropna=False)
        table = pd.DataFrame({
            "calls": grouped.size(),
            "queries": grouped["queries"].sum(),
            "docs": grouped["docs"].sum(),
            "wall_s": grouped["wall_s"].sum(),
            "cpu_s": grouped["cpu_s"].sum(),
            "J": grouped["joules"].sum(),
        })
        if by == "system":  # every stage of a system serves its queries: count them once, not once per stage
            table["queries"] = frame.groupby([by, "stage"], sort=False)["queries"].sum().groupby(level=0).max()
        served = table["queries"].where(table["queries"] > 0)
        table["J/q"] = table["J"] / served
        table["gCO2e/q"] = grouped["gco2e"].sum() / served
        table["ms/q"] = table["wall_s"] * 1000 / served
        table["method"] = grouped["method"].agg(lambda methods: ",".join(dict.fromkeys(methods.dropna())))
        table["errors"] = grouped["error"].agg(lambda errors: int(errors.notna().sum()))
        table["short_windows"] = grouped["short_window"].agg(lambda flags: int(sum(map(bool, flags))))
        return table[columns]

    def to_jsonl(self, path: Union[str, os.PathLike]) -> None:
        """Write every record to ``path`` as one JSON line each (the file is replaced)."""
        Path(path).write_bytes(b"".join(json_line(record) for record in self.records))

    def to_csv(self, path: Union[str, os.PathLike]) -> None:
        """Write one row per record; ``joules_by``, ``counts`` and ``constants`` become dotted columns."""
        flat = pd.json_normalize(self.records, sep=".")
        flat.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)

    def to_ir_metadata(self, path: Union[str, os.PathLike, None] = None, tag: Optional[str] = None,
                       metadata: Optional[Mapping] = None) -> str:
        """The ledger as ir_metadata YAML in tirex-tracker's layout (0.2-beta): platform, implementation,
        resources (runtime, energy of cpu, ram and gpu), plus gaia's energy per stage, sensing method and
        accounting mode (see :mod:`pyterrier_gaia.energy.ir_metadata`); written to ``path`` if given.
        ``tag`` and ``metadata`` go to its ``metadata`` section.
        """
        from .ir_metadata import ir_metadata, write_ir_metadata

        extra = {**({"tag": tag} if tag is not None else {}), **(metadata or {})}
        return write_ir_metadata(ir_metadata(self.records, self.summary(), extra), path)


def read_jsonl(data: bytes) -> Tuple[List[dict], List[Tuple[int, str]]]:
    """The records of a JSONL ledger's bytes, and (line number, reason) for each line that is not one.

    Blank lines are ignored; a line that is not UTF-8, not JSON, or not a record
    (:meth:`Record.from_dict`) is skipped. Never raises.
    """
    records, skipped = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = Record.from_dict(json.loads(line.decode("utf-8"))).to_dict()
        except UnicodeDecodeError:
            skipped.append((number, "not UTF-8 text"))
        except json.JSONDecodeError as error:
            skipped.append((number, f"not JSON ({error.msg} at column {error.colno})"))
        except RecursionError:
            skipped.append((number, "JSON nested too deeply"))
        except ValueError as error:
            skipped.append((number, f"not a record: {error}"))
        else:
            records.append(record)
    return records, skipped
