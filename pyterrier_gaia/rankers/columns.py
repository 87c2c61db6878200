"""Checking a re-ranker's input columns, with an error that names the stage and what to do."""
from typing import Sequence

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
