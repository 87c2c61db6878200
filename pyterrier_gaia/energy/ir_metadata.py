"""A ledger as ir_metadata: the YAML that tirex-tracker writes (``ir_metadata`` 0.2-beta), plus gaia's energy.

ir_metadata (Breuer et al., SIGIR 2022) describes an IR run in PRIMAD sections; tirex-tracker's
0.2-beta proposal adds ``resources`` (``runtime``, ``cpu``, ``ram``, ``gpu``: ``energy used system``...).
This module writes the same sections, so a reader of tirex-tracker's files finds the same keys:

- ``platform``: CPU model, architecture and logical CPUs, RAM, kernel and distribution, library versions;
- ``implementation``: the command line and the Python version;
- ``resources``: ``runtime`` (start and stop time, wall-clock and CPU time of the metered calls), and
  ``energy used process`` under ``cpu`` (package, or the model's cpu + static terms), ``ram`` (DRAM)
  and ``gpu``: the energy *charged to the metered calls* under their accounting mode, not the
  machine's (tirex-tracker's ``energy used system``), hence the other name;
- ``resources: energy``: gaia's own section: sensing ``method``, ``modelled``, ``accounting``, totals
  (J, kWh, gCO2e, litres), the constants behind them, and one entry per stage.
- ``metadata``: free key-values (tirex-tracker's ``register_metadata``), e.g. the run's tag.
"""
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

from .record import plain

SCHEMA_VERSION = "0.2"
#: record components that are CPU package energy (RAPL ``cpu``; the model's ``cpu`` and ``static``), DRAM, GPU
_PARTS = {"cpu": ("cpu", "static"), "ram": ("dram",), "gpu": ("gpu",)}
_LIBRARIES = ("pyterrier-gaia", "python-terrier", "codecarbon", "torch", "transformers", "pyserini")


def ir_metadata(records: List[dict], summary, metadata: Optional[Mapping] = None) -> dict:
    """The ir_metadata document (a dict) of a ledger's ``records`` and its per-stage ``summary`` frame."""
    measured = [record for record in records if not record.get("startup")]
    constants = next((record["constants"] for record in records if record.get("constants")), {})
    starts = [record["start"] for record in records if record.get("start") is not None]
    stops = [record["start"] + (record.get("wall_s") or 0) for record in records if record.get("start") is not None]
    resources = {"runtime": {
        "start time": _iso(min(starts)) if starts else None,
        "stop time": _iso(max(stops)) if stops else None,
        "wallclock": f"{_total(records, 'wall_s') * 1e3:.3f} ms",
        "cpu time": f"{_total(records, 'cpu_s') * 1e3:.3f} ms",
    }}
    for section, components in _PARTS.items():
        joules = sum(_component(record, components) for record in records)
        if joules or section != "gpu":
            resources[section] = {"energy used process": f"{joules:.6g} J"}
    resources["energy"] = {
        "method": _joined(records, "method"),
        "modelled": any("model" in (record.get("method") or "").split("+") for record in records),
        "accounting": _joined(records, "accounting"),
        "joules": _total(records, "joules"),
        "kwh": _total(records, "kwh"),
        "gco2e": _total(records, "gco2e"),
        "water_l": _total(records, "water_l") if any(record.get("water_l") is not None for record in records) else None,
        "startup joules": _total(records, "joules") - _total(measured, "joules"),
        "constants": constants,
        "stages": {str(stage): _stage(row, [r for r in records if r.get("stage") == stage])
                   for stage, row in summary.iterrows()},
    }
    document = {"schema version": SCHEMA_VERSION, "platform": _platform(constants),
                "implementation": {"executable": {"cmd": list(sys.argv)},
                                   "python": {"version": platform.python_version()}},
                "resources": resources}
    if metadata:
        document["metadata"] = {str(key): plain(value) for key, value in metadata.items()}
    return document


def write_ir_metadata(document: dict, path: Union[str, os.PathLike, None] = None) -> str:
    """The document as YAML (written to ``path`` if given)."""
    import yaml

    text = f"# ir_metadata {SCHEMA_VERSION}-beta (tirex-tracker's layout) with pyterrier-gaia's energy\n"
    text += yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _stage(row, records: List[dict]) -> dict:
    """One stage's entry: the summary's figures and its joules by component."""
    entry = {key: plain(value) for key, value in row.items()}
    components: Dict[str, float] = {}
    for record in records:
        for component, joules in (record.get("joules_by") or {}).items():
            components[component] = components.get(component, 0.0) + joules
    entry["joules by component"] = components
    entry["accounting"] = _joined(records, "accounting")
    return entry


def _component(record: dict, names) -> float:
    parts = record.get("joules_by") or {}
    return sum(parts.get(name, 0.0) for name in names)


def _total(records: List[dict], key: str) -> float:
    return float(sum(record.get(key) or 0 for record in records))


def _joined(records: List[dict], key: str) -> Optional[str]:
    values = dict.fromkeys(record.get(key) for record in records if record.get(key))
    return ",".join(values) or None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def _platform(constants: dict) -> dict:
    """The platform section for this machine (CPU model and logical CPUs from the power profile when there is one)."""
    from importlib.metadata import PackageNotFoundError, version

    libraries = []
    for package in _LIBRARIES:
        try:
            libraries.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    model = constants.get("model") or {}
    cpu = {"model": model.get("cpu_model") or platform.processor() or "unknown",
           "architecture": platform.machine(), "number of cores": model.get("logical_cpus") or os.cpu_count()}
    try:
        ram = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2 ** 20} MB"
    except (AttributeError, ValueError, OSError):
        ram = None
    try:
        distribution = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        distribution = None
    return {"hardware": {"cpu": cpu, "ram": ram},
            "operating system": {"kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
                                 "distribution": distribution},
            "software": {"libraries": {"python": libraries}}}
