"""CPU thermal design power (TDP) from CodeCarbon's maintained CPU table.

Read through CodeCarbon's own loader (``codecarbon.input.DataSource().get_cpu_power_data()``),
never copied. Shared by the hardware profiles (:mod:`.hardware`) and the energy model
(:mod:`pyterrier_gaia.energy.profile`); it lives in cost/ because cost/ imports nothing else of
the package (the import-linter contracts in setup.cfg).
"""
import re
from functools import lru_cache
from typing import Optional, Tuple

#: W per logical CPU when the CPU model is not in CodeCarbon's table (CodeCarbon's DEFAULT_POWER_PER_CORE)
DEFAULT_W_PER_LOGICAL_CPU = 4.0


@lru_cache(maxsize=1)
def codecarbon_data():
    """CodeCarbon's offline reference data (CPU table, grid intensities), through its own loader
    ``codecarbon.input.DataSource`` (loaded once, on first use)."""
    try:
        from codecarbon.input import DataSource
    except ImportError as error:
        raise ModuleNotFoundError("gaia: the codecarbon package (its CPU table and grid intensities) "
                                  f"cannot be imported ({error}); install it with pip install codecarbon") from error
    return DataSource()


def _tokens(name: str) -> Tuple[str, ...]:
    """Lower-case words of a CPU name without vendor marks, clock speed, core counts or filler words."""
    name = re.sub(r"\((r|tm)\)", " ", name.lower())
    name = re.sub(r"@\s*[\d.]+\s*[gm]hz", " ", name)
    name = re.sub(r"\b\d+-core\b", " ", name)
    return tuple(word for word in re.split(r"[\s,]+", name) if word and word not in {"cpu", "processor", "with"})


@lru_cache(maxsize=1)
def _tdp_table() -> Tuple[Tuple[Tuple[str, ...], float, str], ...]:
    """(name words, TDP W, name) for each row of CodeCarbon's table whose TDP is a number."""
    table = codecarbon_data().get_cpu_power_data()
    rows = []
    for name, tdp in zip(table["Name"], table["TDP"]):
        try:
            rows.append((_tokens(name), float(tdp), name))
        except (TypeError, ValueError):  # a few rows carry malformed TDPs such as "27.29.5"
            continue
    return tuple(rows)


def lookup_tdp(model: str) -> Optional[Tuple[float, str]]:
    """(TDP in W, table name) for a CPU model name from CodeCarbon's table, or None when unknown.

    An entry matches when its words are all in the model's name and it carries every word of the
    name that has a digit (the model number); the entry with the most words wins, and a tie
    between entries of different TDP is no match.
    """
    words = set(_tokens(model))
    numbered = {word for word in words if any(ch.isdigit() for ch in word)}
    if not numbered:
        return None
    matches = [(len(entry), tdp, name) for entry, tdp, name in _tdp_table()
               if set(entry) <= words and numbered <= set(entry)]
    if not matches:
        return None
    longest = max(size for size, _, _ in matches)
    best = {(tdp, name) for size, tdp, name in matches if size == longest}
    if len({tdp for tdp, _ in best}) > 1:
        return None
    return min(best, key=lambda pair: pair[1])
