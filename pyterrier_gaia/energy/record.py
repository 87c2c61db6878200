"""One ledger record: what a metered call measured, as a typed dataclass.

:class:`Record` is the only place a record is built: ``gaia.Metered`` fills one per call, and
:meth:`Record.from_dict` checks a record read back from a JSONL file. The ledger keeps and writes
``record.to_dict()``: a plain dict with the keys of :data:`RECORD_KEYS`, in that order (one JSON
line each), so ledgers written before this class existed load unchanged.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

#: the keys of every record, in order (see docs/energy.md for their meaning and units)
RECORD_KEYS = ("stage", "start", "queries", "qid", "docs", "wall_s", "cpu_s", "joules", "joules_by", "method",
               "accounting", "kwh", "gco2e", "water_l", "error", "counts", "sensing_s", "short_window", "constants",
               "startup")

#: the keys added to a record measured on a worker of ``gaia.parallel`` (kept in ``extra``): host name,
#: process id, batch number
WORKER_KEYS = ("host", "pid", "batch")


@dataclass(kw_only=True)
class Record:
    """What one metered call measured (units in docs/energy.md); ``stage`` and ``joules`` are required.

    ``startup`` marks one-off start-up work (a JVM, a model loading...), which per-query figures
    leave out. Keys a reader does not know (e.g. added by a later version) are kept in ``extra``.
    """

    # in the order of RECORD_KEYS: to_dict copies the instance's __dict__, the cheapest way to a dict
    stage: str
    start: Optional[float] = None
    queries: int = 0
    qid: Optional[str] = None
    docs: int = 0
    wall_s: Optional[float] = None
    cpu_s: Optional[float] = None
    joules: float
    joules_by: Dict[str, float] = field(default_factory=dict)
    method: Optional[str] = None
    accounting: Optional[str] = None
    kwh: Optional[float] = None
    gco2e: Optional[float] = None
    water_l: Optional[float] = None
    error: Optional[str] = None
    counts: Dict[str, float] = field(default_factory=dict)
    sensing_s: Optional[float] = None
    short_window: bool = False
    constants: Dict[str, Any] = field(default_factory=dict)
    startup: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The record as the ledger keeps and writes it: the keys of :data:`RECORD_KEYS` in order, then ``extra``."""
        plain = self.__dict__.copy()
        plain.update(plain.pop("extra"))
        return plain

    @classmethod
    def from_dict(cls, data: Mapping) -> "Record":
        """A record from a dict read back (e.g. one JSON line); missing keys take their defaults.

        Raises ValueError saying what is wrong when ``data`` is not a record: not an object, no
        text ``stage``, no numeric ``joules``, or a key of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a JSON {_json_kind(data)}, not an object")
        for key, check, expected in _CHECKS:
            if key in data and not check(data[key]):
                raise ValueError(f"{key}={_short(data[key])}, expected {expected}")
        for key in ("stage", "joules"):
            if data.get(key) is None:
                raise ValueError(f"no {key!r}")
        known = {key: data[key] for key in RECORD_KEYS if key in data and data[key] is not None}
        return cls(**known, extra={key: value for key, value in data.items() if key not in _KEYS})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional(check):
    return lambda value: value is None or check(value)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers_by_name(value) -> bool:
    return isinstance(value, dict) and all(_number(v) for v in value.values())


_CHECKS = (
    ("stage", _optional(lambda v: isinstance(v, str)), "text"),
    ("joules", _optional(_number), "a number"),
    *((key, _optional(_number), "a number or null")
      for key in ("start", "wall_s", "cpu_s", "kwh", "gco2e", "water_l", "sensing_s")),
    *((key, _optional(_count), "a non-negative integer") for key in ("queries", "docs")),
    *((key, _optional(lambda v: isinstance(v, str)), "text or null")
      for key in ("qid", "method", "accounting", "error")),
    *((key, _optional(_numbers_by_name), "an object of numbers") for key in ("joules_by", "counts")),
    ("constants", _optional(lambda v: isinstance(v, dict)), "an object"),
    *((key, _optional(lambda v: isinstance(v, bool)), "true or false") for key in ("short_window", "startup")),
    ("host", _optional(lambda v: isinstance(v, str)), "text or null"),
    *((key, _optional(_count), "a non-negative integer") for key in ("pid", "batch")),
)
_KEYS = frozenset(RECORD_KEYS)


def _json_kind(value) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number" if _number(value) else type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def plain(value):
    """A JSON/YAML-friendly version of a value: numpy scalars as Python numbers, NaN as None, others as text."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
