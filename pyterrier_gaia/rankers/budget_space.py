"""The re-ranking budget θ = (depth, precision, exit threshold) and its continuous relaxation.

A point ``x`` of the unit cube [0, 1]³ stands for a budget:

- ``x[0]``: re-rank depth on a log scale, from ``depths[0]`` (0) to ``depths[1]`` (1);
- ``x[1]``: position on the precision ladder, from ``precisions[0]`` (0, the most precise) to the
  last one (1); between two rungs a cost is interpolated linearly;
- ``x[2]``: the early-exit agreement threshold, from ``agreements[0]`` (0) to ``agreements[1]`` (1);
  a threshold above 1 is never met (the top-k overlap is at most 1), so the top of a range that
  reaches past 1 runs every layer: the full budget is then the full re-ranking itself.

Langevin dynamics move ``x`` in the cube (projection = clipping); :meth:`BudgetSpace.round` turns a
point into a budget that can run: a whole depth (no more than the candidates a query has), a rung
of the ladder, and a threshold that is a multiple of 1/k (the top-k overlap takes no other values).
"""
import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Budget:
    """One runnable configuration: re-rank the top ``depth`` candidates at ``precision``, exiting
    when the top k of two consecutive exits overlap by at least ``agreement``."""

    depth: int
    precision: str
    agreement: float


class BudgetSpace:
    """The box of budgets a :class:`~pyterrier_gaia.rankers.diffusion.DiffusionReRanker` draws from."""

    def __init__(self, depths: Tuple[int, int], precisions: Sequence[str], agreements: Tuple[float, float], k: int):
        where = "DiffusionReRanker"
        low, high = (int(d) for d in depths)
        if not 1 <= low <= high or low != depths[0] or high != depths[1]:
            raise ValueError(f"{where}: depths={tuple(depths)!r}; expected (smallest, largest) re-rank depths, "
                             f"whole numbers with 1 <= smallest <= largest")
        if not precisions or len(set(precisions)) != len(precisions):
            raise ValueError(f"{where}: precisions={list(precisions)!r}; expected distinct precisions, "
                             f"the most precise first (e.g. ['fp32', 'int8'])")
        lo, hi = (float(a) for a in agreements)
        if not 0 <= lo <= hi:
            raise ValueError(f"{where}: agreements={tuple(agreements)!r}; expected (lowest, highest) exit "
                             f"thresholds with 0 <= lowest <= highest (above 1: never exit early)")
        self.depths, self.precisions, self.agreements, self.k = (low, high), list(precisions), (lo, hi), int(k)

    def __repr__(self):
        return f"BudgetSpace(depths={self.depths}, precisions={self.precisions}, agreements={self.agreements})"

    # ----- from the cube to budgets (continuous)
    @property
    def _log_span(self) -> float:
        return math.log(self.depths[1]) - math.log(self.depths[0])

    def depth(self, x: np.ndarray) -> np.ndarray:
        """Continuous depth of points ``x`` (n x 3)."""
        return self.depths[0] * np.exp(x[:, 0] * self._log_span)

    def depth_slope(self, x: np.ndarray) -> np.ndarray:
        """d depth / d x[0]."""
        return self.depth(x) * self._log_span

    def agreement(self, x: np.ndarray) -> np.ndarray:
        """Continuous exit threshold of points ``x``."""
        return self.agreements[0] + x[:, 2] * (self.agreements[1] - self.agreements[0])

    @property
    def agreement_slope(self) -> float:
        """d agreement / d x[2]."""
        return self.agreements[1] - self.agreements[0]

    def rungs(self, x: np.ndarray):
        """The two ladder rungs around each point and the weight of the upper one: ``(lower, upper, w)``
        with a cost at ``x`` = (1 − w)·cost[lower] + w·cost[upper]; ``dw/dx[1]`` = number of rungs − 1."""
        position = x[:, 1] * (len(self.precisions) - 1)
        lower = np.minimum(np.floor(position).astype(int), max(len(self.precisions) - 2, 0))
        upper = np.minimum(lower + 1, len(self.precisions) - 1)
        return lower, upper, position - lower

    # ----- between budgets and the cube
    def round(self, x: np.ndarray, available: int) -> Budget:
        """The runnable budget nearest to one point ``x`` (3,), with at most ``available`` candidates."""
        x = np.clip(np.asarray(x, dtype=float), 0, 1)[None]
        depth = int(min(max(round(float(self.depth(x)[0])), 1), available))
        rung = int(round(float(x[0, 1]) * (len(self.precisions) - 1)))
        agreement = round(float(self.agreement(x)[0]) * self.k) / self.k
        return Budget(depth, self.precisions[rung], min(max(agreement, self.agreements[0]), self.agreements[1]))

    def point(self, budget: Budget) -> np.ndarray:
        """The point of the cube that stands for ``budget`` (3,)."""
        depth = 0.0 if self._log_span == 0 else (math.log(budget.depth) - math.log(self.depths[0])) / self._log_span
        rung = self.precisions.index(budget.precision) / max(len(self.precisions) - 1, 1)
        span = self.agreements[1] - self.agreements[0]
        agreement = 0.0 if span == 0 else (budget.agreement - self.agreements[0]) / span
        return np.clip([depth, rung, agreement], 0, 1)

    @property
    def full(self) -> Budget:
        """The most expensive budget: the deepest re-ranking, the most precise rung, the strictest exit."""
        return Budget(self.depths[1], self.precisions[0], self.agreements[1])

    def grid(self, depths: int = 6, agreements: int = 6):
        """Budgets spread over the box (log-spaced depths, every rung, evenly spaced thresholds):
        what the usefulness model is fitted on."""
        depth_values = sorted({int(round(d)) for d in np.geomspace(*self.depths, depths)})
        agreement_values = sorted({round(a * self.k) / self.k for a in np.linspace(*self.agreements, agreements)})
        return [Budget(d, p, a) for d in depth_values for p in self.precisions for a in agreement_values]
