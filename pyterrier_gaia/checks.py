"""Checking arguments and inputs, with errors that name the stage, the value and what was expected.
A leaf module: every layer (retrieval, encoders, rankers, gaia.parallel) shares these checks."""
import numbers


def positive_integer(stage: str, name: str, value, maximum: int = None) -> int:
    """``value`` as an int if it is a whole number from 1 (to ``maximum``), else a ValueError naming it."""
    whole = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
    if not whole or value < 1 or (maximum is not None and value > maximum):
        expected = "a positive integer" if maximum is None else f"a whole number from 1 to {maximum}"
        raise ValueError(f"{stage}: {name}={value!r}; expected {expected}")
    return int(value)


def unit_interval(stage: str, name: str, value, expected: str = "a value between 0 and 1") -> float:
    """``value`` as a float if it is a number in [0, 1], else a ValueError naming it and ``expected``."""
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1):
        raise ValueError(f"{stage}: {name}={value!r}; expected {expected}")
    return float(value)


def strings(stage: str, what: str, values) -> list:
    """``values`` as a list of str; a None or NaN among them is a ValueError naming its positions (a
    missing text would otherwise be read as the word "None" or "nan")."""
    import pandas as pd

    values = list(values)
    missing = [i for i, value in enumerate(values) if pd.api.types.is_scalar(value) and pd.isna(value)]
    if missing:
        raise ValueError(f"{stage}: {what} at position(s) {missing[:5]} {'is' if len(missing) == 1 else 'are'} "
                         f"missing (None or NaN); expected a string for each")
    return [str(value) for value in values]
