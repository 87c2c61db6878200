"""gaia.CostModel: latency and energy of each stage as non-negative linear functions of its
operation counts, calibrated on a ledger and updated online."""
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from . import hardware as hw
from . import records as rec
from .fit import EWRLS

FORMAT = "pyterrier-gaia cost model"


@dataclass(frozen=True)
class Cost:
    """A predicted cost: ``latency_s`` and ``joules``, on ``hardware``; ``what_if`` when the
    hardware is not the one the model was calibrated on; ``basis`` says how it was obtained."""

    latency_s: float
    joules: float
    hardware: Optional[str]
    what_if: bool
    basis: str

    def __str__(self):
        where = f" on {self.hardware}" if self.hardware else ""
        return f"{self.latency_s:.4g} s, {self.joules:.4g} J{where} (predicted: {self.basis})"


class _Stage:
    """One stage's fit: its features, their scales, the EW-RLS state and running totals."""

    def __init__(self, features, scale, rls: EWRLS, totals: Dict[str, float]):
        self.features = list(features)
        self.scale = np.asarray(scale, dtype=float)
        self.rls = rls
        self.totals = totals

    @classmethod
    def fit(cls, records, features, forgetting, clip) -> "_Stage":
        X = rec.design(records, features)
        scale = np.abs(X).max(axis=0)
        scale[scale == 0] = 1.0
        rls = EWRLS.fit(X / scale, rec.targets(records), forgetting=forgetting, clip=clip, nonneg=True)
        stage = cls(features, scale, rls, {})
        for record in records:
            stage.add_totals(record)
        return stage

    def add_totals(self, record):
        counts = rec.counts_of(record)
        queries = record.get("queries")
        for name, value in [("calls", 1), ("queries", queries if rec.is_number(queries) else 0),
                            *((t, record[t]) for t in rec.TARGETS), *((f, counts[f]) for f in self.features)]:
            self.totals[name] = self.totals.get(name, 0.0) + float(value)

    @property
    def coefficients(self) -> np.ndarray:
        """Seconds and joules per unit of each column (calls first), natural units."""
        return self.rls.theta / self.scale[:, None]

    @property
    def watts(self) -> float:
        """Mean power over the calls seen: total joules over total wall time."""
        return self.totals["joules"] / self.totals["wall_s"] if self.totals["wall_s"] > 0 else 0.0

    def per_query(self, queries: float) -> np.ndarray:
        """Counts of one call serving ``queries`` queries: the mean counts per query seen, times ``queries``."""
        if not self.totals.get("queries"):
            raise ValueError("CostModel.predict: the records of this stage carry no 'queries', "
                             "so counts per query are unknown; pass counts= instead")
        return np.array([1.0, *(queries * self.totals[f] / self.totals["queries"] for f in self.features)])

    def state(self) -> dict:
        return {"features": self.features, "scale": self.scale.tolist(), "rls": self.rls.state(),
                "totals": self.totals}


class CostModel:
    """Predicts what a stage (or a pipeline of stages) costs in latency and energy from its
    operation counts, per stage, as non-negative linear functions (an intercept per call plus a
    cost per posting, per FLOP, per weight byte ...), so predictions never decrease when a count
    grows.

    >>> cm = gaia.CostModel.calibrate(ledger)                 # batch NNLS per stage
    >>> cm.predict({"postings": 5000, "docs_scored": 1000}, stage="bm25")
    >>> cm.predict(stage=["bm25", "minilm"], queries=50)      # a pipeline, mean counts per query
    >>> cm.predict(stage="minilm", queries=50, hardware="h100")   # what-if on other hardware
    >>> cm.update(record)                                     # online EW-RLS
    >>> cm.r2(held_out_ledger)
    """

    def __init__(self, stages: Dict[str, _Stage], hardware=None):
        self._stages = dict(stages)
        #: the profile of the machine calibrated on (None: unknown)
        self.home: Optional[hw.Profile] = None if hardware is None else hw.get(hardware)

    @property
    def hardware(self) -> Optional[str]:
        """The name of the profile calibrated on (None: unknown)."""
        return None if self.home is None else self.home.name

    # ----- fitting
    @classmethod
    def calibrate(cls, ledger, features=None, *, sample=None, seed=0, hardware="auto",
                  forgetting=0.99, clip=3.0) -> "CostModel":
        """Fit every stage of ``ledger`` (a Ledger, a list of records or a DataFrame) by NNLS of
        ``wall_s`` and ``joules`` on its counts plus an intercept per call.

        ``features``: the count names to use (default: every count a stage reports that is not
        always zero; a count exactly proportional to an earlier one, or constant, is left out).
        ``sample``: calibrate from a fraction (0 < float <= 1) or a number (int) of
        each stage's records, drawn with ``seed``. ``hardware``: the profile (or its name) of the
        machine the ledger was measured on (``"auto"``: :func:`hardware.local`, None: unknown), needed
        for what-if predictions; saved with the model, so a model calibrated on a host's detected
        profile makes what-ifs on any other host too. ``forgetting`` (λ) and ``clip`` (k, in σ) govern :meth:`update`.
        """
        where = "CostModel.calibrate"
        if hardware == "auto":
            hardware = hw.local()
        records = rec.as_records(ledger)
        if features is not None:
            features = [features] if isinstance(features, str) else list(features)
            unknown = sorted(set(features) - {n for r in records for n in rec.counts_of(r)})
            if unknown:
                raise ValueError(f"{where}: features {unknown} appear in no record's counts")
        groups = rec.by_stage(rec.usable(records, where))
        if not groups:
            raise ValueError(f"{where}: no usable records (each needs a stage, wall_s, joules and no error)")
        rng = np.random.default_rng(seed)
        stages = {}
        for name, records in groups.items():
            names = rec.feature_names(records, features)
            records = _sample(rec.with_counts(records, names, where, name), sample, rng, where)
            needed = 1 + len(names)
            if len(records) < needed:
                raise ValueError(f"{where}: stage {name!r} has {len(records)} usable records, but fitting "
                                 f"{needed} coefficients ({', '.join([rec.CALLS, *names])}) needs at least "
                                 f"{needed}; meter more calls" + (" or sample more of them" if sample else ""))
            names = rec.independent(records, names)
            stages[name] = _Stage.fit(records, names, forgetting, clip)
        return cls(stages, hardware)

    def update(self, record: dict) -> "CostModel":
        """Fold one more ledger record into its stage's fit by EW-RLS (forgetting, clipping,
        coefficients kept >= 0). A record without measurements or counts is skipped with a warning."""
        where = "CostModel.update"
        usable = rec.usable([record], where)
        if not usable:
            return self
        stage = self._stage(record["stage"], where)
        if rec.with_counts(usable, stage.features, where, record["stage"]):
            x = rec.design(usable, stage.features)[0] / stage.scale
            stage.rls.update(x, rec.targets(usable)[0])
            stage.add_totals(record)
        return self

    # ----- predicting
    @property
    def stages(self) -> List[str]:
        """The stage names the model was calibrated on."""
        return list(self._stages)

    def _stage(self, name, where) -> _Stage:
        if name not in self._stages:
            raise ValueError(f"{where}: stage {name!r} was not calibrated; known stages: {', '.join(self._stages)}")
        return self._stages[name]

    def predict(self, counts=None, *, stage=None, queries=None, hardware=None, precision="fp32") -> Cost:
        """Predicted latency and energy of one call.

        Either ``counts`` (count name -> value, for one stage; ``calls`` defaults to 1) or
        ``queries`` (the stage's mean counts per query, times ``queries``). ``stage``: a stage
        name (optional when the model has one), or a list of them for a pipeline (with
        ``queries``). ``hardware``: a profile (or its name) for a what-if on other hardware, scaled by
        the profiles' throughput (at ``precision``), bandwidth, clock and power ratios.
        """
        where = "CostModel.predict"
        if (counts is None) == (queries is None):
            raise ValueError(f"{where}: give either counts= or queries=")
        if stage is None:
            if len(self._stages) != 1:
                raise ValueError(f"{where}: say which stage (stage=...); known stages: {', '.join(self._stages)}")
            stage = self.stages[0]
        names = [stage] if isinstance(stage, str) else list(stage)
        if counts is not None and len(names) != 1:
            raise ValueError(f"{where}: counts= describe one stage; for a pipeline of {names} pass queries=")
        if queries is not None and not (rec.is_number(queries) and queries >= 0):
            raise ValueError(f"{where}: queries={queries!r}; expected a non-negative number")
        home, target = self._hardware_pair(hardware, where)
        latency = joules = 0.0
        for name in names:
            fit = self._stage(name, where)
            x = fit.per_query(queries) if counts is None else _counts_vector(counts, fit, name, where)
            parts = fit.coefficients * x[:, None]       # seconds and joules contributed by each column
            if target is None:
                latency += parts[:, 0].sum()
                joules += parts[:, 1].sum()
            else:
                t, e = _what_if(parts, fit, home, target, precision)
                latency += t
                joules += e
        if target is None:
            return Cost(latency, joules, self.hardware, False,
                        f"calibrated model of {', '.join(names)}" + (f" on {self.hardware}" if self.hardware else ""))
        key = target.flops_at(precision)[1]
        return Cost(latency, joules, target.name, True,
                    f"what-if, not a measurement: the model calibrated on {home.name} scaled to {target.name} "
                    f"by peak {key} FLOP/s, memory bandwidth and clock ratios, energy at the utilisation "
                    f"measured on {home.name}; host work " + ("stays on the host CPU" if hw.stays_on_host(
                        home, target, "host") else "moves too"))

    def _hardware_pair(self, hardware, where):
        """(home profile, target profile), or (None, None) for a plain prediction."""
        if hardware is None:
            return None, None
        target = hw.get(hardware)
        if target.name == self.hardware:
            return None, None
        if self.hardware is None:
            raise ValueError(f"{where}: the model was calibrated on unknown hardware, so a what-if on "
                             f"{target.name!r} has no baseline; calibrate(..., hardware=NAME) with one of "
                             f"{', '.join(hw.PROFILES)}")
        return self.home, target

    def compare(self, ledger):
        """Measured and predicted ``wall_s`` and ``joules`` for each usable record of ``ledger``
        (a DataFrame: stage, wall_s, joules, pred_wall_s, pred_joules). Records of stages the model
        does not know, or missing counts, are skipped with a warning."""
        import pandas as pd

        where = "CostModel.compare"
        rows = []
        groups = rec.by_stage(rec.usable(rec.as_records(ledger), where))
        unknown = sum(len(records) for name, records in groups.items() if name not in self._stages)
        if unknown:
            warnings.warn(f"{where}: skipped {unknown} records of stages the model was not calibrated on "
                              f"(known: {', '.join(self._stages)})", stacklevel=2)
        for name, records in groups.items():
            if name in self._stages:
                fit = self._stages[name]
                records = rec.with_counts(records, fit.features, where, name)
                if records:
                    predicted = rec.design(records, fit.features) @ fit.coefficients
                    measured = rec.targets(records)
                    rows.append(pd.DataFrame({"stage": name, "wall_s": measured[:, 0], "joules": measured[:, 1],
                                              "pred_wall_s": predicted[:, 0], "pred_joules": predicted[:, 1]}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            columns=["stage", "wall_s", "joules", "pred_wall_s", "pred_joules"])

    def r2(self, ledger, target="wall_s") -> float:
        """R² of predicted against measured ``target`` (``wall_s`` or ``joules``) over the records
        of ``ledger`` (typically held out from calibration)."""
        if target not in rec.TARGETS:
            raise ValueError(f"CostModel.r2: target={target!r}; expected one of {', '.join(rec.TARGETS)}")
        frame = self.compare(ledger)
        if len(frame) < 2:
            raise ValueError(f"CostModel.r2: {len(frame)} usable records; R² needs at least 2")
        from sklearn.metrics import r2_score

        return float(r2_score(frame[target], frame["pred_" + target], force_finite=False))

    def coefficients(self):
        """A DataFrame of the fitted costs per unit: one row per (stage, feature), columns
        ``wall_s`` (seconds per unit) and ``joules`` (joules per unit); ``calls`` is the intercept."""
        import pandas as pd

        rows = [(name, feature, *values) for name, fit in self._stages.items()
                for feature, values in zip([rec.CALLS, *fit.features], fit.coefficients)]
        return pd.DataFrame(rows, columns=["stage", "feature", *rec.TARGETS]).set_index(["stage", "feature"])

    # ----- persistence
    def save(self, path) -> Path:
        """Write the model (coefficients and EW-RLS state) to a JSON file."""
        path = Path(path)
        state = {"format": FORMAT, "version": 1, "hardware": self.hardware,
                 "profile": None if self.home is None else self.home.to_dict(),
                 "stages": {name: fit.state() for name, fit in self._stages.items()}}
        path.write_text(json.dumps(state, indent=1))
        return path

    @classmethod
    def load(cls, path) -> "CostModel":
        """Read a model written by :meth:`save`."""
        try:
            state = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"CostModel.load: {path} is not a saved cost model (not JSON: {error})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"CostModel.load: {path} is not a saved cost model (no format {FORMAT!r})")
        try:
            stages = {name: _Stage(s["features"], s["scale"], EWRLS(**s["rls"]), s["totals"])
                      for name, s in state["stages"].items()}
            profile = state.get("profile")
            home = hw.Profile.from_dict(profile) if profile else state["hardware"]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"CostModel.load: {path} is a damaged cost model ({type(error).__name__}: {error})"
                             ) from None
        try:
            return cls(stages, home)
        except ValueError as error:         # written before models kept their profile, on another host
            raise ValueError(f"CostModel.load: {path} names the hardware it was calibrated on but does not hold "
                             f"its figures ({error}); load it on that host and save it again, or calibrate "
                             f"again") from None

    def __repr__(self):
        return f"CostModel(stages={self.stages}, hardware={self.hardware!r})"


def _sample(records, sample, rng, where):
    """A random subset of ``records``: a fraction (float in (0, 1]) or a number (int) of them."""
    if sample is None:
        return records
    if isinstance(sample, (int, np.integer)) and not isinstance(sample, bool) and sample >= 1:
        size = min(int(sample), len(records))
    elif isinstance(sample, float) and 0 < sample <= 1:
        size = max(1, round(sample * len(records)))
    else:
        raise ValueError(f"{where}: sample={sample!r}; expected a fraction in (0, 1] or a number of records >= 1")
    chosen = np.sort(rng.choice(len(records), size=size, replace=False))
    return [records[i] for i in chosen]


def _counts_vector(counts, fit: _Stage, stage: str, where: str) -> np.ndarray:
    missing = [f for f in fit.features if f not in counts]
    if missing:
        raise ValueError(f"{where}: counts lack {missing}, which the model of stage {stage!r} uses "
                         f"(it uses {', '.join(fit.features)})")
    values = [counts.get(rec.CALLS, 1), *(counts[f] for f in fit.features)]
    bad = [(n, v) for n, v in zip([rec.CALLS, *fit.features], values) if not (rec.is_number(v) and v >= 0)]
    if bad:
        raise ValueError(f"{where}: counts must be non-negative numbers; got {dict(bad)}")
    return np.array(values, dtype=float)


def _what_if(parts: np.ndarray, fit: _Stage, home: hw.Profile, target: hw.Profile, precision: str):
    """(seconds, joules) on ``target`` from the per-column contributions ``parts`` on ``home``.

    Each column's time is scaled by the ratio of the resource it loads. Work that moves to
    ``target`` draws its share of the target's power at the utilisation measured on ``home``;
    host work that stays on the host CPU (a GPU target) keeps its calibrated energy.
    """
    columns = [rec.CALLS, *fit.features]
    resources = [hw.RESOURCE.get(c, "host") for c in columns]
    seconds = np.array([hw.time_ratio(home, target, r, precision) for r in resources]) * parts[:, 0]
    watts = target.power(home.utilisation(fit.watts))
    joules = 0.0
    for resource, time, calibrated in zip(resources, seconds, parts[:, 1]):
        stays = hw.stays_on_host(home, target, resource)
        joules += calibrated if stays else time * watts * hw.power_share(home, target, resource)
    return float(seconds.sum()), float(joules)
