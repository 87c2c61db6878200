"""A ledger as a table for people: one row per stage or per system, in a given width, with SI units.

Values carry their own unit prefix (``812 mJ``, ``107 µg``, ``32.1 ms``) rather than one exponent per
column, so figures that span orders of magnitude stay readable.
"""
import math
import textwrap
from typing import Callable, List, Tuple

from .ledger import Ledger

#: SI prefixes from mega to nano, largest first
_PREFIXES = ((1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))


def with_unit(value, unit: str) -> str:
    """``value`` to 3 significant figures with the SI prefix that keeps it in [1, 1000): "812 mJ", "3.1 µg"; "-" if missing."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return f"0 {unit}"
    factor, prefix = next(((f, p) for f, p in _PREFIXES if abs(value) >= f * 0.9995), _PREFIXES[-1])
    return f"{value / factor:.3g} {prefix}{unit}"


def _middle_cut(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by an ellipsis in the middle (both ends say the most)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def format_report(ledger: Ledger, by: str = "stage", width: int = 100, title: str = "ledger") -> str:
    """The ledger's :meth:`~Ledger.summary` (``by`` "stage" or "system") as lines of at most ``width`` characters.

    Columns: calls, queries, energy, CO2e and wall time per query served, total energy; the method
    column only when methods differ between rows (else it is named above the table), errors and
    short windows only when there are some.
    """
    table = ledger.summary(by=by)
    methods = sorted({m for cell in table["method"] for m in cell.split(",") if m})
    columns: List[Tuple[str, Callable]] = [
        ("calls", lambda row: f"{row['calls']:d}"),
        ("queries", lambda row: f"{row['queries']:d}"),
        ("energy/q", lambda row: with_unit(row["J/q"], "J")),
        ("CO2e/q", lambda row: with_unit(row["gCO2e/q"], "g")),
        ("time/q", lambda row: with_unit(row["ms/q"] / 1000, "s")),
        ("energy", lambda row: with_unit(row["J"], "J")),
    ]
    if len(set(table["method"])) > 1:
        columns.append(("method", lambda row: row["method"]))
    for column, label in (("errors", "errors"), ("short_windows", "short")):
        if table[column].sum():
            columns.append((label, lambda row, column=column: f"{row[column]:d}"))
    cells = [[cell(row) for _, cell in columns] for _, row in table.iterrows()]
    sizes = [max([len(header)] + [len(line[i]) for line in cells]) for i, (header, _) in enumerate(columns)]
    name_size = max(12, width - sum(size + 2 for size in sizes))
    names = [_middle_cut(str(name), name_size) for name in table.index]
    name_size = min(name_size, max([len(by)] + [len(name) for name in names]))

    def line(name: str, values: List[str]) -> str:
        return name.ljust(name_size) + "".join("  " + value.rjust(size) for value, size in zip(values, sizes))

    modelled = " (modelled: no RAPL or NVML counter was read)" if methods == ["model"] else ""
    heading = f"{title}: {len(ledger)} records, {len(table)} {by}s; method {', '.join(methods) or 'unknown'}{modelled}"
    note = "Per query: a row's totals over the queries its calls served."
    if by == "system":
        note += " Start-up rows (one-off work such as loading a model) are in no system's figures."
    rows = [line(by, [header for header, _ in columns])] + [line(name, values) for name, values in zip(names, cells)]
    return "\n".join([textwrap.fill(heading, width), *rows, textwrap.fill(note, width)])
