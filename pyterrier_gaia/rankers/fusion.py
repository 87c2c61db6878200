"""Fusing first-stage and neural scores: α·minmax(first) + (1−α)·minmax(neural), each min-max
normalised within its query (the one implementation every re-ranker uses)."""
import numpy as np
import pandas as pd

from ..encoders.checks import unit_interval


def check_weight(stage: str, interpolate):
    """``interpolate`` as a float in [0, 1], or None (the neural score alone)."""
    if interpolate is None:
        return None
    return unit_interval(stage, "interpolate", interpolate,
                         "a weight between 0 and 1 (or None for the neural score alone)")


def minmax(scores, queries=None) -> np.ndarray:
    """Scores scaled to 0..1 within each query (``queries``: one label per score; None: one query), in
    their own float precision; a query whose scores are all equal gets 0."""
    scores = np.asarray(scores)
    scores = scores if np.issubdtype(scores.dtype, np.floating) else scores.astype("float64")
    if len(scores) == 0:
        return scores
    codes = np.zeros(len(scores), dtype=int) if queries is None else pd.factorize(np.asarray(queries))[0]
    low = np.full(codes.max() + 1, np.inf, dtype=scores.dtype)
    high = np.full(codes.max() + 1, -np.inf, dtype=scores.dtype)
    np.minimum.at(low, codes, scores)
    np.maximum.at(high, codes, scores)
    low, span = low[codes], (high - low)[codes]
    return np.where(span > 0, (scores - low) / np.where(span > 0, span, 1.0), 0.0)


def fuse(interpolate: float, first, neural, queries=None) -> np.ndarray:
    """α·minmax(first) + (1−α)·minmax(neural), normalised per query (α = ``interpolate``)."""
    return interpolate * minmax(first, queries) + (1 - interpolate) * minmax(neural, queries)
