"""Checking a re-ranker's input: its columns, and the values it cannot do without, with errors that
name the stage, the rows and what to do."""
from typing import Dict, Sequence

import pandas as pd
import pyterrier as pt


def require_columns(stage: str, transformer, columns: Sequence[str], required: Sequence[str], hint: str) -> None:
    """Raise ``pt.validate.InputValidationError`` naming ``stage``, the missing columns, the columns
    present and ``hint`` (what to put before the stage) unless ``columns`` include ``required``."""
    try:
        pt.validate.columns(list(columns), includes=list(required), context=transformer)
    except pt.validate.InputValidationError as err:
        missing = [c for c in required if c not in columns]
        raise pt.validate.InputValidationError(
            f"{stage}: input lacks column(s) {missing} (has {list(columns)}); {hint}", err.modes) from None


#: what each column a re-ranker reads must hold, for the error when a row lacks it
EXPECTED = {"query": "the query's text on every row",
            "text": "each candidate's text (a document without text must be given as '')",
            "score": "a first-stage score (a finite number) on every row"}


def require_values(stage: str, frame: pd.DataFrame, columns: Sequence[str], expected: Dict[str, str] = None) -> None:
    """Raise a ValueError naming ``stage``, the column and the first rows (qid, docno) where one of
    ``columns`` is missing (None or NaN; for ``score``, also not a finite number). A missing text
    would otherwise be re-ranked as the word "None", a missing score fused as the query's lowest."""
    expected = {**EXPECTED, **(expected or {})}
    for column in columns:
        values = frame[column]
        if column == "score":
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            missing = ~numbers.abs().lt(float("inf"))
        else:
            missing = values.isna()
        if missing.any():
            rows = frame.loc[missing, [c for c in ("qid", "docno") if c in frame.columns]].head(3)
            value = values[missing].iloc[0]
            value = value.item() if hasattr(value, "item") else value  # nan, not np.float64(nan)
            where = "; ".join(", ".join(f"{c} {v!r}" for c, v in row.items()) for _, row in rows.iterrows())
            raise ValueError(f"{stage}: column {column!r} has no usable value on {int(missing.sum())} row(s) "
                             f"({where}{'; ...' if missing.sum() > 3 else ''}): {value!r}; "
                             f"expected {expected[column]}")
