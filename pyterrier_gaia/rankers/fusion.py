"""Fusing first-stage and neural scores: α·minmax(first) + (1−α)·minmax(neural), each min-max
normalised within its query, and the ranked output every re-ranker returns (the one implementation of
each that the re-rankers use)."""
import numpy as np
import pandas as pd
import pyterrier as pt

from ..checks import unit_interval


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


def rescored_columns(input_columns) -> list:
    """The columns of :func:`rescored`'s output for input ``input_columns``: theirs, ``score``, then ``rank``."""
    columns = [c for c in input_columns if c != "rank"]
    return columns + ([] if "score" in columns else ["score"]) + ["rank"]


def rescored(candidates: pd.DataFrame, scores, interpolate=None) -> pd.DataFrame:
    """``candidates`` with ``score`` set to ``scores`` (or fused with their own score, α = ``interpolate``),
    ranked from 0 within each query and sorted by rank, the queries in input order."""
    out = candidates.copy()
    scores = np.asarray(scores, dtype="float64")
    if interpolate is None or len(out) == 0:
        out["score"] = scores
    else:
        out["score"] = fuse(interpolate, out["score"].astype("float64"), scores, out["qid"])
    return in_query_order(pt.model.add_ranks(out), "rank")


def in_query_order(frame: pd.DataFrame, column: str, ascending: bool = True, queries=None) -> pd.DataFrame:
    """``frame`` sorted by ``column`` within each query, the queries in the order of first appearance of
    ``queries`` (default: ``frame["qid"]``), as PyTerrier's own transformers keep them (sorting by qid would
    put "10" before "2", and gaia.parallel's batches, concatenated in input order, would then differ from
    the sequential run)."""
    order = pd.unique(frame["qid"] if queries is None else queries)
    codes = pd.Series(range(len(order)), index=order).reindex(frame["qid"]).to_numpy()
    return (frame.assign(_query=codes).sort_values(["_query", column], ascending=[True, ascending], kind="stable")
            .drop(columns="_query").reset_index(drop=True))
