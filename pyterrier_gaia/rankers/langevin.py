"""Projected Langevin dynamics with an annealed temperature.

x ← Π(x − η·∇U(x) + √(2ηT_t)·ξ_t), ξ_t ~ N(0, I), Π the projection on the unit cube. At T = 0
this is projected gradient descent on U; at T > 0 its draws follow (approximately) exp(−U/T), so
annealing T down concentrates them near low-U points while still crossing shallow barriers.
"""
import zlib
from typing import Callable, Sequence

import numpy as np


def temperatures(start: float, end: float, steps: int) -> np.ndarray:
    """The annealing schedule: geometric from ``start`` to ``end`` over ``steps`` steps (linear when
    ``end`` is 0; all zeros when ``start`` is 0)."""
    if not 0 <= end <= start:
        raise ValueError(f"DiffusionReRanker: temperature=({start!r}, {end!r}); expected (start, end) "
                         f"with 0 <= end <= start")
    if start == 0:
        return np.zeros(steps)
    if end == 0:
        return start * (1 - np.arange(steps) / steps)
    return start * (end / start) ** (np.arange(steps) / max(steps - 1, 1))


def query_noise(seed: int, qids: Sequence[str], steps: int, dims: int) -> np.ndarray:
    """Standard normal noise (queries x steps x dims), each query's drawn from its own generator
    seeded by (``seed``, its qid): a query's draw does not depend on which others share its batch."""
    return np.stack([np.random.default_rng([seed, zlib.crc32(str(qid).encode())]).standard_normal((steps, dims))
                     for qid in qids]) if len(qids) else np.zeros((0, steps, dims))


def langevin(gradient: Callable[[np.ndarray], np.ndarray], start: np.ndarray, step_size: float,
             schedule: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Run projected Langevin dynamics from ``start`` (n x dims) for ``len(schedule)`` steps.

    ``gradient(x)`` gives ∇U for every row; ``noise`` (n x steps x dims) the ξ of every step.
    Returns the final points (n x dims), in the unit cube.
    """
    x = np.clip(np.asarray(start, dtype=float), 0, 1)
    for step, temperature in enumerate(schedule):
        x = x - step_size * gradient(x) + np.sqrt(2 * step_size * temperature) * noise[:, step]
        x = np.clip(x, 0, 1)
    return x
