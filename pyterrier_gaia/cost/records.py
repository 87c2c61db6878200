"""Ledger records as the cost model reads them: which are usable, and their design matrices.

A record is a dict of the ledger contract (``stage``, ``queries``, ``wall_s``, ``joules``,
``error``, ``counts`` ...). The cost model takes a ``gaia.Ledger`` (anything with
``.records``), a list of such dicts, or a DataFrame with those columns (``Ledger.to_frame()``).
"""
import math
import warnings
from typing import Dict, List, Sequence

import numpy as np

#: the operation counts stages report (see pyterrier_gaia.cost.counts), in a fixed order
COUNT_NAMES = ("postings", "docs_scored", "tokens", "layer_tokens", "flops", "weight_bytes",
               "forward_passes", "pairs", "langevin_steps")
#: the intercept: one per metered call
CALLS = "calls"
TARGETS = ("wall_s", "joules")


def as_records(ledger) -> List[dict]:
    """The records of a Ledger, a list of dicts or a DataFrame, as a list of dicts."""
    if hasattr(ledger, "records"):
        ledger = ledger.records
    if hasattr(ledger, "to_dict") and hasattr(ledger, "columns"):
        ledger = ledger.to_dict("records")
    if isinstance(ledger, dict):
        raise TypeError("cost model: got one record (a dict); pass a list of records, a Ledger or a DataFrame")
    records = list(ledger)
    bad = next((r for r in records if not isinstance(r, dict)), None)
    if bad is not None:
        raise TypeError(f"cost model: expected ledger records (dicts), got a {type(bad).__name__}")
    return records


def is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def usable(records: Sequence[dict], where: str) -> List[dict]:
    """The records that can be fitted: no ``error``, a ``stage``, ``wall_s`` and ``joules`` finite and
    non-negative. The others are skipped with one warning saying how many, why, and which."""
    kept, failed, unmeasured = [], 0, []
    for position, record in enumerate(records):
        stage, error = record.get("stage"), record.get("error")
        if isinstance(error, str) and error:
            failed += 1
        elif not (isinstance(stage, str) and stage and all(is_number(record.get(t)) and record[t] >= 0
                                                           for t in TARGETS)):
            unmeasured.append(f"record {position} (stage {stage!r}: " + ", ".join(
                f"{t}={record.get(t)!r}" for t in TARGETS) + ")")
        else:
            kept.append(record)
    if failed or unmeasured:
        shown = "; ".join(unmeasured[:3]) + ("; ..." if len(unmeasured) > 3 else "")
        warnings.warn(f"{where}: skipped {failed + len(unmeasured)} of {len(records)} records: {failed} failed "
                      f"(an 'error' is set), {len(unmeasured)} without a stage or finite, non-negative wall_s "
                      f"and joules" + (f" ({shown})" if unmeasured else ""), stacklevel=3)
    return kept


def by_stage(records: Sequence[dict]) -> Dict[str, List[dict]]:
    """Records grouped by stage name, in order of first appearance."""
    groups: Dict[str, List[dict]] = {}
    for record in records:
        groups.setdefault(str(record["stage"]), []).append(record)
    return groups


def counts_of(record: dict) -> dict:
    counts = record.get("counts")
    return counts if isinstance(counts, dict) else {}


def feature_names(records: Sequence[dict], wanted=None) -> List[str]:
    """The count names to fit for one stage: those its records report that are not always zero
    (restricted to ``wanted`` when given), in :data:`COUNT_NAMES` order, then by name."""
    seen = {name for record in records for name, value in counts_of(record).items() if value}
    if wanted is not None:
        seen &= set(wanted)
    return sorted(seen, key=lambda name: (COUNT_NAMES.index(name) if name in COUNT_NAMES else len(COUNT_NAMES), name))


def with_counts(records: Sequence[dict], features: Sequence[str], where: str, stage: str) -> List[dict]:
    """The records that report every one of ``features`` (finite, non-negative); the others are skipped
    with a warning."""
    kept = [r for r in records if all(is_number(counts_of(r).get(f)) and counts_of(r)[f] >= 0 for f in features)]
    missing = len(records) - len(kept)
    if missing:
        warnings.warn(f"{where}: skipped {missing} of {len(records)} records of stage {stage!r} with missing "
                      f"or negative counts (each needs {', '.join(features)})", stacklevel=3)
    return kept


def independent(records: Sequence[dict], features: Sequence[str]) -> List[str]:
    """``features`` without those whose column is exactly proportional to an earlier one or to the
    calls column (e.g. ``forward_passes`` when every pass reads the same ``weight_bytes``): such a
    count adds nothing a fit could tell apart, and the earlier name is kept."""
    X = design(records, features)
    kept = [0]
    for j in range(1, X.shape[1]):
        column = X[:, j]
        if not any(np.allclose(column * X[:, k].sum(), X[:, k] * column.sum(), rtol=1e-9, atol=0) for k in kept):
            kept.append(j)
    return [features[j - 1] for j in kept[1:]]


def design(records: Sequence[dict], features: Sequence[str]) -> np.ndarray:
    """The design matrix: a column of ones (:data:`CALLS`), then one column per count."""
    rows = [[1.0, *(float(counts_of(r)[f]) for f in features)] for r in records]
    return np.array(rows).reshape(-1, 1 + len(features))


def targets(records: Sequence[dict]) -> np.ndarray:
    """Measured ``wall_s`` and ``joules``, one row per record."""
    return np.array([[float(r[t]) for t in TARGETS] for r in records]).reshape(-1, len(TARGETS))
