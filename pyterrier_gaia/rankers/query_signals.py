"""Semantic signals of a query that say how much neural re-ranking will change its ranking, read
before any budget is spent on it (the usefulness model's inputs):

- ``first_stage_gap``: how much of its candidates' score range the first-stage top k spans (a top k
  far ahead of the rest is seldom overturned);
- ``first_stage_spread``: the first-stage scores' coefficient of variation;
- ``probe_similarity``: the mean query–candidate score of a cheap pass (the encoder's first
  ``probe_layer`` layers over the top ``probe_depth`` candidates);
- ``probe_disagreement``: 1 − the Spearman correlation between that cheap pass and the first-stage
  order (the more they disagree, the more a full pass is likely to move);
- ``query_length``: log(1 + words in the query).
"""
import numpy as np
import pandas as pd

from .exit_heads import in_order

SIGNALS = ("first_stage_gap", "first_stage_spread", "probe_similarity", "probe_disagreement", "query_length")


def query_signals(scorer, ranked: pd.DataFrame, k: int, probe_depth: int, probe_layer: int,
                  batch_size: int) -> np.ndarray:
    """The :data:`SIGNALS` of each query of ``ranked`` (qid, query, text, score; grouped by qid in
    first-stage order, as :func:`pd.factorize` orders qids): a queries x signals array."""
    codes, qids = pd.factorize(ranked["qid"])
    position = ranked.groupby(codes, sort=False).cumcount().to_numpy()
    signals = np.zeros((len(qids), len(SIGNALS)))
    for code, rows in pd.Series(np.arange(len(ranked))).groupby(codes).indices.items():
        scores = ranked["score"].to_numpy(dtype=float)[rows]
        top = scores[min(k, len(scores)) - 1]
        signals[code, 0] = (scores[0] - top) / (scores[0] - scores[-1]) if scores[0] > scores[-1] else 0.0
        signals[code, 1] = scores.std() / abs(scores.mean()) if scores.mean() else 0.0
    probed = ranked[position < probe_depth]
    similarity = probe(scorer, probed, probe_layer, batch_size)
    probe_codes = codes[position < probe_depth]
    for code, rows in pd.Series(np.arange(len(probed))).groupby(probe_codes).indices.items():
        signals[code, 2] = similarity[rows].mean()
        signals[code, 3] = 1 - _spearman(similarity[rows], -np.arange(len(rows), dtype=float))
    words = ranked.groupby(codes, sort=True)["query"].first().astype(str).str.split().str.len()
    signals[:, 4] = np.log1p(words.to_numpy(dtype=float))
    return signals


def probe(scorer, candidates: pd.DataFrame, layer: int, batch_size: int) -> np.ndarray:
    """Each candidate's score estimate after the encoder's first ``layer`` layers."""
    if len(candidates) == 0:
        return np.zeros(0)
    encoder = scorer.encoder
    inputs = encoder.inputs(candidates["query"], candidates["text"], batch_size)
    run = encoder.layer_run(inputs, batch_size)
    run.advance(layer, np.ones(len(inputs), dtype=bool))
    outputs = in_order(*run.features(scorer.reads(layer), layer))
    return encoder.pair_scores(scorer.outputs(layer, outputs), inputs)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (0 when either side is constant or there is one item)."""
    if len(a) < 2:
        return 0.0
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
