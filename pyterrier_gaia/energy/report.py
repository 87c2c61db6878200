"""A ledger for people: a table of one row per stage or per system, in a given width, with SI units,
and a bar chart of the energy per query of each row.

Values carry their own unit prefix (``812 mJ``, ``107 µg``, ``32.1 ms``) rather than one exponent per
column, so figures that span orders of magnitude stay readable.
"""
import math
import textwrap
from typing import Callable, Iterable, List, Tuple

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


#: how each sensing method gets its joules, as a figure's caption says it
_METHODS = {"rapl": "RAPL counters (CPU package and DRAM)", "nvml": "NVML counters (GPU)",
            "model": "modelled from CPU time: no RAPL or NVML counter was read"}


def methods_of(column) -> List[str]:
    """The sensing methods named in a column of method cells (``"rapl"``, ``"model,rapl"`` ...), sorted."""
    return sorted({m for cell in column if isinstance(cell, str) for m in cell.split(",") if m})


def method_caption(methods: Iterable[str]) -> str:
    """One line naming how the energy figures were obtained: "Energy: model (modelled from CPU time...)"."""
    methods = sorted(set(methods))
    if not methods:
        return "Energy: sensing method unknown"
    described = "; ".join(f"{m} ({_METHODS[m]})" if m in _METHODS else m for m in methods)
    return f"Energy: {described}" + ("; the methods differ between rows" if len(methods) > 1 else "")


def with_wh(joules: float) -> str:
    """An amount of energy in J and, from 1 J on, also in Wh: "12.3 kJ = 3.42 Wh"."""
    text = with_unit(joules, "J")
    return text + f" = {with_unit(joules / 3600, 'Wh')}" if joules is not None and abs(joules) >= 1 else text


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
    methods = methods_of(table["method"])
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
    records = ledger.to_frame()
    total = (f"Total: {with_wh(records['joules'].sum())}, {with_unit(records['gco2e'].sum(), 'g')} CO2e"
             f"{' (modelled)' if modelled else ''}.")
    note = "Per query: a row's totals over the queries its calls served."
    if by == "system":
        note += " Start-up rows (one-off work such as loading a model) are in no system's figures."
    rows = [line(by, [header for header, _ in columns])] + [line(name, values) for name, values in zip(names, cells)]
    return "\n".join([textwrap.fill(heading, width), *rows, textwrap.fill(f"{total} {note}", width)])


def draw_energy(axes, ledger: Ledger, by: str = "stage") -> List[str]:
    """Draw the energy per query of each row of ``ledger.summary(by=by)`` as horizontal bars on
    ``axes`` (start-up records' rows hatched; a log scale when they span more than two orders of magnitude).
    Returns the sensing methods of the rows, for the figure's caption."""
    table = ledger.summary(by=by)
    joules = table["J/q"].to_numpy(dtype=float)
    shown = [(name, value) for name, value in zip(table.index, joules) if math.isfinite(value) and value > 0]
    if not shown:
        raise ValueError(f"energy figure: no {by} of the ledger has an energy per query to plot "
                         "(no record served queries, or none has joules)")
    names = [_middle_cut(str(name), 40) for name, _ in shown][::-1]
    values = [value for _, value in shown][::-1]
    scale, prefix = next(((f, p) for f, p in _PREFIXES if max(values) >= f * 0.9995), _PREFIXES[-1])
    records = ledger.to_frame()
    startup = set(records.loc[records["startup"].fillna(False).astype(bool), "stage"])
    bars = axes.barh(names, [value / scale for value in values], color="tab:green")
    for bar, (name, _) in zip(bars, shown[::-1]):
        if name in startup:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
    axes.bar_label(bars, labels=[with_unit(value, "J") for value in values], fontsize=7, padding=2)
    if max(values) > 100 * min(values):
        axes.set_xscale("log")
    axes.margins(x=0.15)
    axes.set_xlabel(f"energy per query ({prefix}J)")
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(f"Energy per query, by {by}", fontsize=10)
    return methods_of(table["method"])
