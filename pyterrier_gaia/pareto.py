"""The effectiveness–cost trade-off of a set of systems: the non-dominated ones (the Pareto front),
the area they dominate (hypervolume, against a stated reference point), the front's knee, and a plot.

Reads any table with one row per system, such as :func:`gaia.Experiment`'s (columns ``name``,
``nDCG@10``, ``J/q`` ...)::

    front = gaia.pareto(results, x="J/q", y="nDCG@10")
    front.points, front.hypervolume, front.knee
    gaia.plot_pareto(results, "pareto.png", family="family")
"""
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pandas as pd

from .energy.report import method_caption, methods_of


@dataclass(frozen=True)
class Front:
    """The Pareto front of a results table.

    ``points``: the non-dominated rows, cheapest (best ``x``) first. ``hypervolume``: the area of the
    (x, y) plane they dominate, bounded by ``reference`` (in the table's units: J/q × nDCG@10 with the
    defaults). ``knee``: the name of the front point farthest from the straight line joining its two
    ends, both axes scaled to [0, 1] over the front (the best trade-off by that rule); None when the
    front has fewer than three points."""
    points: pd.DataFrame
    hypervolume: float
    reference: Tuple[float, float]
    knee: Optional[str]
    x: str
    y: str


def pareto(results: pd.DataFrame, x: str = "J/q", y: str = "nDCG@10", *, reference=None, name: str = "name",
           maximize_y: bool = True, minimize_x: bool = True) -> Front:
    """The systems of ``results`` that no other system beats on both ``x`` (a cost, lower is better
    unless ``minimize_x=False``) and ``y`` (a quality, higher is better unless ``maximize_y=False``).

    ``reference``: the (x, y) point the hypervolume is measured from; default: the worst x and the
    worst y in ``results``. Pass the same reference to compare the hypervolumes of several tables
    (e.g. families of systems). Rows with a missing x or y are left out, with a warning."""
    table = _valid_rows(results, (x, y), "gaia.pareto")
    costs = _as_costs(table[[x, y]].to_numpy(dtype=float), minimize_x, maximize_y)
    if reference is None:
        reference_costs = costs.max(axis=0)
    else:
        reference_costs = _as_costs(_reference_point(reference), minimize_x, maximize_y)
    reference_point = tuple(float(v) for v in _as_costs(reference_costs, minimize_x, maximize_y))
    on_front = _non_dominated(costs)
    order = np.lexsort((costs[on_front, 1], costs[on_front, 0]))
    front_rows = np.flatnonzero(on_front)[order]
    points = table.iloc[front_rows]
    labels = _labels(table, name).iloc[front_rows]
    knee = _knee(costs[front_rows])
    return Front(points=points, hypervolume=_hypervolume(costs[front_rows], reference_costs),
                 reference=reference_point, knee=None if knee is None else str(labels.iloc[knee]), x=x, y=y)


def plot_pareto(results: pd.DataFrame, path, x: str = "J/q", y: str = "nDCG@10", *, family: str = None,
                name: str = "name", reference=None, logx: bool = False, title: str = None,
                maximize_y: bool = True, minimize_x: bool = True, method=None) -> Path:
    """Write a PNG of ``results`` in the (``x``, ``y``) plane to ``path``: every system as a labelled
    point (coloured by the ``family`` column when given), the Pareto front as a step line, its knee
    circled, and the hypervolume and reference point in the legend. Returns the path written.

    The caption names how the energy was sensed (rapl, nvml or model): the methods of the table's
    ``method`` column (as gaia.Experiment writes it), or ``method`` (a name or several) when given."""
    figure = pareto_figure(results, x, y, family=family, name=name, reference=reference, logx=logx, title=title,
                           maximize_y=maximize_y, minimize_x=minimize_x, method=method)
    return save_png(figure, path)


def pareto_figure(results: pd.DataFrame, x: str = "J/q", y: str = "nDCG@10", *, method=None,
                  **options) -> "matplotlib.figure.Figure":
    """The figure :func:`plot_pareto` writes (same arguments, no path), drawn on matplotlib's Agg canvas."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = Figure(figsize=(8, 5.5), dpi=120)
    FigureCanvasAgg(figure)
    title = options.pop("title", None)
    draw_pareto(figure.add_subplot(), results, x, y, **options)
    if title:
        figure.axes[0].set_title(title, fontsize=10)
    methods = _methods(results, method)
    if methods is not None:
        add_caption(figure, method_caption(methods))
    else:
        figure.tight_layout()
    return figure


def draw_pareto(axes, results: pd.DataFrame, x: str = "J/q", y: str = "nDCG@10", *, family: str = None,
                name: str = "name", reference=None, logx: bool = False, maximize_y: bool = True,
                minimize_x: bool = True) -> Front:
    """Draw :func:`plot_pareto`'s points, front and knee on matplotlib ``axes``; returns the front."""
    table = _valid_rows(results, (x, y) + ((family,) if family else ()), "gaia.plot_pareto")
    front = pareto(table, x, y, reference=reference, name=name, maximize_y=maximize_y, minimize_x=minimize_x)
    labels = _labels(table, name)
    groups = table.groupby(family, sort=False) if family else [(None, table)]
    for group, rows in groups:
        axes.scatter(rows[x], rows[y], s=28, label=group, zorder=3)
    for label, (px, py) in zip(labels, table[[x, y]].to_numpy(dtype=float)):
        axes.annotate(label, (px, py), fontsize=6, xytext=(3, 3), textcoords="offset points", alpha=0.8)
    fx, fy = front.points[x].to_numpy(dtype=float), front.points[y].to_numpy(dtype=float)
    axes.step(fx, fy, where="post", color="black", linewidth=1,
              label=f"front: hypervolume {front.hypervolume:.4g} from ({front.reference[0]:.3g}, "
                    f"{front.reference[1]:.3g})", zorder=2)
    if front.knee is not None:
        knee = front.points[_labels(front.points, name) == front.knee].iloc[0]
        axes.scatter([knee[x]], [knee[y]], s=160, facecolors="none", edgecolors="red", linewidths=1.5,
                     label=f"knee: {front.knee}", zorder=4)
    if logx:
        axes.set_xscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    return front


def add_caption(figure, caption: str) -> None:
    """``caption`` as a line of small text under the figure's axes (room made for it)."""
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.text(0.5, 0.015, caption, ha="center", va="bottom", fontsize=8, wrap=True)


def save_png(figure, path) -> Path:
    """Write ``figure`` as a PNG to ``path`` (its folder created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _methods(results: pd.DataFrame, method) -> Optional[list]:
    """The sensing methods to name: ``method`` (a name or names) if given, else the ``method`` column's."""
    if method is not None:
        return [method] if isinstance(method, str) else list(method)
    return methods_of(results["method"]) if "method" in results.columns else None


def _valid_rows(results, columns, where: str) -> pd.DataFrame:
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"{where}: expected a DataFrame with one row per system (e.g. from gaia.Experiment), "
                        f"got {type(results).__name__}")
    for column in columns:
        if column not in results.columns:
            raise ValueError(f"{where}: no column {column!r} in the results; they have {list(results.columns)}")
    table = results
    for column in columns[:2]:
        values = pd.to_numeric(results[column], errors="coerce")
        bad = values.isna() & results[column].notna()
        if bad.any():
            raise ValueError(f"{where}: column {column!r} must hold numbers; it has "
                             f"{results.loc[bad, column].iloc[0]!r}")
    missing = results[list(columns[:2])].isna().any(axis=1)
    if missing.any():
        warnings.warn(f"{where}: {int(missing.sum())} row(s) without {columns[0]!r} or {columns[1]!r} left out",
                      stacklevel=3)
        table = results[~missing]
    if table.empty:
        raise ValueError(f"{where}: no rows with both {columns[0]!r} and {columns[1]!r} to compare")
    return table


def _reference_point(reference) -> np.ndarray:
    point = np.asarray(reference, dtype=float)
    if point.shape != (2,) or not np.isfinite(point).all():
        raise ValueError(f"gaia.pareto: reference={reference!r}; expected an (x, y) pair of finite numbers")
    return point


def _as_costs(points: np.ndarray, minimize_x: bool, maximize_y: bool) -> np.ndarray:
    """Both axes turned into costs (lower is better); its own inverse."""
    return points * np.array([1.0 if minimize_x else -1.0, -1.0 if maximize_y else 1.0])


def _labels(table: pd.DataFrame, name: str) -> pd.Series:
    labels = table[name] if name in table.columns else pd.Series(table.index, index=table.index)
    return labels.astype(str)


def _non_dominated(costs: np.ndarray) -> np.ndarray:
    """Which rows no other row beats: as good on both costs and better on one."""
    as_good = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)
    better = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    dominated = (as_good & better).any(axis=0)
    return ~dominated


def _hypervolume(front_costs: np.ndarray, reference: np.ndarray) -> float:
    """Area dominated by ``front_costs`` (non-dominated, sorted by the first cost) and bounded by
    ``reference``; points not better than the reference on both costs add nothing."""
    area, ceiling = 0.0, reference[1]
    for cost_x, cost_y in front_costs:
        if cost_x < reference[0] and cost_y < ceiling:
            area += (reference[0] - cost_x) * (ceiling - cost_y)
            ceiling = cost_y
    return float(area)


def _knee(front_costs: np.ndarray) -> Optional[int]:
    """Index of the point farthest from the line joining the front's ends, axes scaled to [0, 1]."""
    if len(front_costs) < 3:
        return None
    span = front_costs.max(axis=0) - front_costs.min(axis=0)
    scaled = (front_costs - front_costs.min(axis=0)) / np.where(span > 0, span, 1.0)
    start, end = scaled[0], scaled[-1]
    direction = (end - start) / (np.linalg.norm(end - start) or 1.0)
    offsets = scaled - start
    distances = np.abs(offsets[:, 0] * direction[1] - offsets[:, 1] * direction[0])
    return int(np.argmax(distances))
