"""``gaia.Experiment``: ``pt.Experiment`` with energy, carbon, metered latency and the sensing method as columns.

Every stage of every system is metered (as by :func:`gaia.meter`) and PyTerrier runs the
experiment as usual; a system's energy is that of the records of its own stages. Each system is
first run once on one topic, metered as its own start-up record, so that no system is charged the
one-off start of a JVM or the loading of a model. When PyTerrier shares a prefix between systems
(``plan="tree"``; also PyTerrier's deprecated ``precompute_prefix=True``), the prefix's stages are
one metered object that runs once; each system that uses it is charged its energy once, as
PyTerrier charges its time to each system's ``mrt``. With ``save_dir``, each system's records are
saved beside its run (with their ir_metadata), read back when ``save_mode="reuse"`` reuses the run,
and PyTerrier's ``aggregated.csv`` and ``perquery.csv`` gain the energy columns.
"""
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd
import pyterrier as pt
from pyterrier._ops import Compose

from .distribute import Parallel, parallel
from .energy.carbon import Grid
from .energy.ledger import Ledger
from .energy.metered import Metered, rebuild, unique_names
from .energy.sensors import resolve_sensors

#: the measures gaia.Experiment adds per system, and per query with ``perquery``: joules, grams of CO2e and
#: milliseconds of the system's metered calls per query (start-up and one-off work left out, unlike ``mrt``)
PER_QUERY_MEASURES = ("J/q", "gCO2e/q", "ms/q")
#: the columns gaia.Experiment adds to pt.Experiment's table of averages
MEASURED_COLUMNS = (*PER_QUERY_MEASURES, "method")


def Experiment(retr_systems, topics, qrels, eval_metrics, names: Optional[Sequence[str]] = None, *,
               ledger=None, sensors="auto", carbon=None, warmup: bool = True, workers: Optional[int] = None,
               accounting: str = "auto", **kwargs):
    """``pt.Experiment`` plus, per system, ``J/q``, ``gCO2e/q``, ``ms/q`` and ``method`` measured during its own run.

    ``ms/q`` is the wall time of the system's metered calls per query: unlike PyTerrier's ``mrt``, it
    leaves out start-up and one-off work (a ranker fitting itself on its first call); on Ray workers
    (``workers``) it is worker time per query.

    Takes every argument of ``pt.Experiment`` (``perquery``, ``baseline``, ``correction``, ``batch_size``,
    ``plan``, ``highlight``, ``round``, ``save_dir``...), plus:

    :param ledger: where the records of every metered stage go (a Ledger, a JSONL path, or None);
        stages are named "SYSTEM / STAGE" ("A & B / STAGE" for a prefix shared by systems A and B)
    :param sensors: as for :class:`gaia.Metered`
    :param carbon: as for :class:`gaia.Metered`
    :param accounting: as for :class:`gaia.Metered` (which share of the process and the machine a call is charged)
    :param warmup: run each system once on the first topic before the experiment, recorded as
        "SYSTEM / start-up" (marked ``startup``) and left out of its J/q, so that one-off start-up
        costs (JVM, model loading) do not fall on whichever system runs first
    :param workers: run each system on this many Ray workers (:func:`gaia.parallel`, docs/parallel.md):
        its records come back tagged host, pid and batch; the warm-up runs once on every worker; systems
        run whole (a common prefix is not shared)

    With ``perquery``, the per-query table gains the measures ``J/q``, ``gCO2e/q`` and ``ms/q`` (each
    query's own): systems then run one query per call (``batch_size=1``, the only batch size allowed).
    Systems given as result frames ran before the experiment: their added columns are NaN. An integer
    ``round`` applies to the measures only; round the added columns with ``round={"J/q": 3, ...}``.
    Topics with a repeated qid are a ValueError (PyTerrier would merge their rankings).
    With ``save_dir``, each system's records go to ``save_dir/NAME.ledger.jsonl`` and their ir_metadata
    (energy per stage, sensing method, accounting mode) to ``save_dir/NAME.ir_metadata.yml``; a run reused
    (``save_mode="reuse"``) is not run again, and its energy is read back from that file. PyTerrier's
    ``aggregated.csv`` gains the columns J/q, gCO2e/q, ms/q and method, its ``perquery.csv`` the measures
    J/q, gCO2e/q and ms/q of queries measured one per call.
    """
    if isinstance(retr_systems, dict):
        names, systems = list(retr_systems), list(retr_systems.values())
    elif isinstance(retr_systems, list):
        systems = retr_systems
        names = [str(system) for system in systems] if names is None else list(names)
    else:
        raise TypeError(f"gaia.Experiment: retr_systems must be a list or dict of transformers, "
                        f"got {type(retr_systems).__name__}")
    if len(names) != len(systems):
        raise ValueError(f"gaia.Experiment: {len(names)} names for {len(systems)} systems")
    perquery = kwargs.get("perquery", False)
    if perquery:
        if kwargs.get("batch_size") not in (None, 1):
            raise ValueError(f"gaia.Experiment: perquery energy needs one query per call, got "
                             f"batch_size={kwargs['batch_size']}; leave it unset (it becomes 1) or set it to 1")
        kwargs["batch_size"] = 1
    if isinstance(topics, str):
        topics = pt.io.read_topics(topics)
    if isinstance(qrels, str):
        qrels = pt.io.read_qrels(qrels)
    _check_unique_qids(topics)
    sharing = "tree" if kwargs.get("plan") == "tree" else "all" if kwargs.get("precompute_prefix") else "none"
    if workers is not None:
        sharing = "none"
    served = topics
    if kwargs.get("filter_by_qrels"):
        served = topics[topics["qid"].isin(qrels["qid"])]
    saved = _SavedEnergy(kwargs, names)

    ledger, sensors, carbon = Ledger.coerce(ledger), resolve_sensors(sensors), Grid.coerce(carbon)
    meter = partial(Metered, sensors=sensors, carbon=carbon, accounting=accounting)
    metered, parts = _meter_systems(systems, names, sharing, ledger, meter)
    if workers is not None:
        metered = [run if isinstance(run, pd.DataFrame) else parallel(run, workers) for run in metered]
    if warmup:
        for name, system, run in zip(names, systems, metered):
            if isinstance(run, Parallel) and not saved.reused(name):
                run.warmup(served.head(1))
            elif not isinstance(system, pd.DataFrame) and not saved.reused(name):
                meter(system, f"{name} / start-up", ledger=ledger, startup=True)(served.head(1))
    pt_systems = dict(zip(names, metered)) if isinstance(retr_systems, dict) else metered
    saved.set_energy_aside()
    try:
        result = pt.Experiment(pt_systems, topics, qrels, eval_metrics, names=names, **kwargs)
    except BaseException:
        # keep what was measured: the records of each system whose run PyTerrier saved, and the energy
        # columns of the systems of earlier experiments
        for name, system, own in zip(names, systems, parts):
            if not isinstance(system, pd.DataFrame) and saved.ran_now(name):
                saved.store(name, Ledger.merge(*own))
        saved.put_energy_back()
        raise
    finally:
        for run in metered:
            if isinstance(run, Parallel):
                run.close()

    energy = []
    for name, system, own in zip(names, systems, parts):
        if saved.reused(name):
            records = saved.load(name)
        else:
            ran = Ledger.merge(*own)
            records = ran.records
            if not isinstance(system, pd.DataFrame):
                saved.store(name, ran)
        energy.append(_energy(records, served["qid"].nunique()))
    saved.add_columns(names, energy)
    if perquery == "both":
        averages, per_query = result
        return type(result)(_add_averages(averages, names, energy, kwargs.get("round")),
                            _add_per_query(per_query, names, energy))
    if perquery:
        return _add_per_query(result, names, energy)
    return _add_averages(result, names, energy, kwargs.get("round"))


def _check_unique_qids(topics: pd.DataFrame) -> None:
    """A ValueError naming the qids that appear more than once (PyTerrier would merge their results)."""
    if "qid" not in topics.columns:
        return                                   # pt.Experiment's own validation says what is missing
    repeated = topics["qid"][topics["qid"].duplicated()].unique().tolist()
    if repeated:
        shown = ", ".join(map(repr, repeated[:10])) + (f" and {len(repeated) - 10} more" if len(repeated) > 10 else "")
        raise ValueError(f"gaia.Experiment: topics repeat the qid(s) {shown}; PyTerrier would merge their "
                         "rankings and evaluate them as one query. Give each topic its own qid, or keep one "
                         "of each with topics.drop_duplicates('qid')")


class _SavedEnergy:
    """Each system's records beside its saved run (``save_dir/NAME.ledger.jsonl``), for runs PyTerrier reuses."""

    def __init__(self, kwargs: dict, names: Sequence[str]):
        self.folder = kwargs.get("save_dir")
        self._reused = set()
        self._aside: Optional[pd.DataFrame] = None
        self._extension = _run_extension(kwargs.get("save_format", "trec"))
        self._started = time.time()
        if self.folder is not None and kwargs.get("save_mode", "warn") == "reuse":
            self._reused = {name for name in names if self._run(name).exists()}

    def _run(self, name: str) -> Path:
        return Path(self.folder) / f"{name}.{self._extension}"

    def ran_now(self, name: str) -> bool:
        """Whether PyTerrier saved this system's run during this experiment (it saves each as it finishes)."""
        if self.folder is None or self.reused(name):
            return False
        run = self._run(name)
        return run.exists() and run.stat().st_mtime >= self._started

    def reused(self, name: str) -> bool:
        """Whether PyTerrier will read this system's run from save_dir instead of running it."""
        return name in self._reused

    def path(self, name: str) -> Path:
        return Path(self.folder) / f"{name}.ledger.jsonl"

    def store(self, name: str, ledger: Ledger) -> None:
        """Save a system's records, and their ir_metadata beside them."""
        if self.folder is not None:
            ledger.to_jsonl(self.path(name))
            ledger.to_ir_metadata(Path(self.folder) / f"{name}.ir_metadata.yml", tag=name,
                                  metadata={"records": self.path(name).name})

    def set_energy_aside(self) -> None:
        """Take the energy columns out of an existing aggregated.csv while pt.Experiment updates it (it warns
        when the file's columns are not its measures), to put them back in :meth:`add_columns` (or
        :meth:`put_energy_back`, when the experiment fails)."""
        aggregated = self._aggregated()
        if aggregated is not None and aggregated.exists():
            table = pd.read_csv(aggregated)
            present = [column for column in MEASURED_COLUMNS if column in table.columns]
            if present and "name" in table.columns:
                self._aside = table[["name", *present]]
                table.drop(columns=present).to_csv(aggregated, index=False)

    def put_energy_back(self) -> None:
        """Put the columns :meth:`set_energy_aside` took out back into aggregated.csv (the experiment failed)."""
        aggregated = self._aggregated()
        if self._aside is not None and aggregated.exists():
            self._with_aside(pd.read_csv(aggregated)).to_csv(aggregated, index=False)

    def _aggregated(self) -> Optional[Path]:
        return None if self.folder is None else Path(self.folder) / "aggregated.csv"

    def _with_aside(self, table: pd.DataFrame, leaving_out: Sequence[str] = ()) -> pd.DataFrame:
        """``table`` (an aggregated.csv) with the columns set aside in place of any it has, but for the
        systems ``leaving_out``."""
        table = table.drop(columns=[column for column in MEASURED_COLUMNS if column in table.columns])
        return table.merge(self._aside[~self._aside["name"].isin(leaving_out)], on="name", how="left")

    def add_columns(self, names: Sequence[str], energy: List[dict]) -> None:
        """Add each system's energy to the aggregated.csv and perquery.csv pt.Experiment wrote in save_dir."""
        if self.folder is None:
            return
        aggregated, perquery = self._aggregated(), Path(self.folder) / "perquery.csv"
        if aggregated.exists():
            table = pd.read_csv(aggregated)
            if self._aside is not None:                  # systems of earlier experiments keep their energy
                table = self._with_aside(table, leaving_out=names)
            for name, figures in zip(names, energy):
                for column in MEASURED_COLUMNS:
                    table.loc[table["name"] == name, column] = figures[column]
            table.to_csv(aggregated, index=False)
        if perquery.exists():
            table = pd.read_csv(perquery, dtype={"qid": str})
            table = table[~(table["name"].isin(names) & table["measure"].isin(PER_QUERY_MEASURES))]
            pd.concat([table, _per_query_rows(names, energy)], ignore_index=True).to_csv(perquery, index=False)

    def load(self, name: str) -> List[dict]:
        """The saved records of a reused system (a warning, and none, when there are none)."""
        try:
            return Ledger.load(self.path(name)).records
        except FileNotFoundError:
            warnings.warn(f"gaia.Experiment: system {name!r} was reused from save_dir (save_mode='reuse') and not "
                          f"run, and {self.path(name)} holds no energy records for it: its J/q, gCO2e/q and method "
                          "are NaN. Run it once with save_mode='overwrite' to measure it", stacklevel=3)
            return []


def _run_extension(save_format) -> str:
    """The extension pt.Experiment gives a saved run ("trec": res.gz, a module: mod, a (read, write) pair: custom)."""
    return "res.gz" if save_format == "trec" else "custom" if isinstance(save_format, tuple) else "mod"


def _meter_systems(systems, names, sharing, ledger, meter) -> Tuple[list, List[List[Ledger]]]:
    """Metered copies of the systems (``meter(stage, name, ledger=...)`` meters one stage), and for each
    system the ledgers of the parts it is charged for.

    Parts are the positions of a system's ``>>`` chain. Equal positions are one metered object (and one
    ledger) only where PyTerrier will run them once: the prefix common to all systems (``"all"``), or
    any common prefix (``"tree"``); with ``"none"`` each system has its own.
    """
    chains = [None if isinstance(s, pd.DataFrame) else list(s) if type(s) is Compose else [s] for s in systems]
    common = 0
    if sharing == "all" and len(chains) > 1 and all(chain is not None for chain in chains):
        while all(len(chain) > common and chain[common] == chains[0][common] for chain in chains):
            common += 1

    def key(i: int, j: int):
        if sharing == "tree":
            return tuple(chains[i][:j + 1])
        return ("common", j) if j < common else (i, j)

    owners: Dict[object, List[int]] = {}
    for i, chain in enumerate(chains):
        for j in range(len(chain or ())):
            owners.setdefault(key(i, j), []).append(i)
    namers, built, metered, parts = {}, {}, [], []
    for i, chain in enumerate(chains):
        if chain is None:
            metered.append(systems[i])
            parts.append([])
            continue
        for j, stage in enumerate(chain):
            k = key(i, j)
            if k not in built:
                label = " & ".join(dict.fromkeys(names[owner] for owner in owners[k]))
                name = namers.setdefault(label, unique_names(f"{label} / "))
                branch = ledger.branch()
                built[k] = branch, rebuild(stage, lambda leaf: meter(leaf, name(leaf), ledger=branch))
        own = [built[key(i, j)] for j in range(len(chain))]
        metered.append(own[0][1] if len(own) == 1 else Compose(*[stage for _, stage in own]))
        parts.append(list(dict.fromkeys(branch for branch, _ in own)))
    return metered, parts


def _energy(records: List[dict], queries: int) -> dict:
    """A system's :data:`MEASURED_COLUMNS` from its records, and ``by_qid``: each query's own joules,
    grams and milliseconds (from the records of calls that served that query alone)."""
    records = [record for record in records if not record.get("startup")]
    if not records:
        return {**dict.fromkeys(PER_QUERY_MEASURES, float("nan")), "method": None, "by_qid": {}}
    measured = [_measured(record) for record in records]
    by_qid: Dict[str, List[float]] = {}
    for record, values in zip(records, measured):
        if record.get("qid") is not None:
            totals = by_qid.setdefault(record["qid"], [0.0, 0.0, 0.0])
            for position, value in enumerate(values):
                totals[position] += value
    sums = [sum(column) for column in zip(*measured)]
    return {**{measure: total / queries for measure, total in zip(PER_QUERY_MEASURES, sums)},
            "method": ",".join(dict.fromkeys(r["method"] for r in records)), "by_qid": by_qid}


def _measured(record: dict) -> Tuple[float, float, float]:
    """A record's joules, grams of CO2e and milliseconds (the terms of :data:`PER_QUERY_MEASURES`)."""
    return record["joules"], record["gco2e"], 1000 * (record.get("wall_s") or 0.0)


def _add_averages(averages, names, energy, rounding):
    """pt.Experiment's averages (frame, styled frame or dict) with the energy columns added."""
    values = {column: [e[column] for e in energy] for column in MEASURED_COLUMNS}
    if isinstance(rounding, dict):
        for column in PER_QUERY_MEASURES:
            if column in rounding:
                values[column] = [round(v, rounding[column]) for v in values[column]]
    if isinstance(averages, dict):
        for i, name in enumerate(names):
            averages[name].update({column: values[column][i] for column in MEASURED_COLUMNS})
        return averages
    styled = not isinstance(averages, pd.DataFrame)
    frame = averages.data if styled else averages  # a pandas Styler when highlight= was given
    for column in MEASURED_COLUMNS:
        frame[column] = values[column]
    if styled:
        averages.highlight_min(subset=list(PER_QUERY_MEASURES), props="font-weight: bold")
    return averages


def _add_per_query(per_query, names, energy):
    """pt.Experiment's per-query results (long frame or nested dict) with each query's :data:`PER_QUERY_MEASURES`."""
    if isinstance(per_query, dict):
        for sysid, e in enumerate(energy):
            for qid, totals in e["by_qid"].items():
                per_query.setdefault(sysid, {}).setdefault(qid, {}).update(zip(PER_QUERY_MEASURES, totals))
        return per_query
    extra = _per_query_rows(names, energy)
    return pd.concat([per_query, extra], ignore_index=True).sort_values(["name", "qid"], kind="stable")


def _per_query_rows(names, energy) -> pd.DataFrame:
    """Each query's :data:`PER_QUERY_MEASURES` as rows of pt.Experiment's long per-query table (name, qid,
    measure, value)."""
    rows = [(name, qid, measure, value) for name, e in zip(names, energy)
            for qid, totals in e["by_qid"].items() for measure, value in zip(PER_QUERY_MEASURES, totals)]
    return pd.DataFrame(rows, columns=["name", "qid", "measure", "value"])
