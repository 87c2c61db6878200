"""Signals of a query that say how much neural re-ranking will change its top k, read before any budget
is spent on it (the usefulness model's inputs). They separate queries, not only budgets: pre-retrieval
and post-retrieval query-performance predictors over the first-stage scores of its candidates, and a
cheap probe (the encoder's first ``probe_layer`` layers over the top ``probe_depth`` candidates; none
when ``probe_depth`` is 0).

First-stage score distribution (the candidates' scores stand in for the collection's):

- ``nqc``: normalised query commitment, the standard deviation of the top-k scores over the mean
  candidate score's magnitude (Shtok et al.);
- ``wig``: weighted information gain, the top k's mean score above the candidates' mean, per
  square root of the query's words (Zhou and Croft);
- ``top_gap``: the share of the score range the top k spans (a top k far ahead of the rest is seldom
  overturned);
- ``cut_gap``: the gap between the k-th and the (k+1)-th score, as a share of the range (a clear cut
  keeps deep candidates out);
- ``crowd``: the share of the candidates below the top k whose score lies within a tenth of the range
  of the k-th (how many could climb in);

the probe:

- ``probe_mean``: the candidates' mean probe score;
- ``probe_disagreement``: 1 − the Spearman correlation of the probe scores with the first-stage order;
- ``probe_agreement``: the top-k overlap of the probe's ranking with the first-stage one;

and ``query_length``: log(1 + words in the query).
"""
import numpy as np
import pandas as pd

from .exit_heads import in_order
from .measures import top_overlap

SIGNALS = ("nqc", "wig", "top_gap", "cut_gap", "crowd", "probe_mean", "probe_disagreement", "probe_agreement",
           "query_length")


def query_signals(scorer, ranked: pd.DataFrame, k: int, probe_depth: int, probe_layer: int,
                  batch_size: int) -> np.ndarray:
    """The :data:`SIGNALS` of each query of ``ranked`` (qid, query, text, score; grouped by qid in
    first-stage order, as :func:`pd.factorize` orders qids): a queries x signals array."""
    codes, qids = pd.factorize(ranked["qid"])
    position = ranked.groupby(codes, sort=False).cumcount().to_numpy()
    words = ranked.groupby(codes, sort=True)["query"].first().astype(str).str.split().str.len().to_numpy(float)
    signals = np.zeros((len(qids), len(SIGNALS)))
    all_scores = ranked["score"].to_numpy(dtype=float)
    for code, rows in pd.Series(np.arange(len(ranked))).groupby(codes).indices.items():
        signals[code, :5] = score_distribution(all_scores[rows], k, max(words[code], 1))
    signals[:, 8] = np.log1p(words)
    if probe_depth == 0:                          # no probe: its signals stay 0 (Û reads none of them)
        return signals
    probed = ranked[position < probe_depth]
    first_stage = scorer.first_stage(ranked)      # of all the candidates, as the heads were fitted on
    similarity = probe(scorer, probed, probe_layer, batch_size,
                       None if first_stage is None else first_stage[position < probe_depth])
    probe_codes = codes[position < probe_depth]
    for code, rows in pd.Series(np.arange(len(probed))).groupby(probe_codes).indices.items():
        scores = similarity[rows]
        signals[code, 5] = scores.mean()
        signals[code, 6] = 1 - _spearman(scores, -np.arange(len(rows), dtype=float))
        top = min(k, len(rows))
        signals[code, 7] = top_overlap(np.argsort(-scores, kind="stable")[:top], np.arange(top))
    return signals


def score_distribution(scores: np.ndarray, k: int, words: float) -> np.ndarray:
    """``nqc``, ``wig``, ``top_gap``, ``cut_gap`` and ``crowd`` of one query's first-stage ``scores``
    (best first)."""
    top = scores[:min(k, len(scores))]
    span = scores[0] - scores[-1]
    mean = scores.mean()
    nqc = top.std() / abs(mean) if mean else 0.0
    wig = (top.mean() - mean) / np.sqrt(words)
    if span <= 0:
        return np.array([nqc, wig, 0.0, 0.0, 0.0])
    kth = top[-1]
    rest = scores[len(top):]
    cut_gap = (kth - rest[0]) / span if len(rest) else 1.0
    crowd = float((rest >= kth - 0.1 * span).mean()) if len(rest) else 0.0
    return np.array([nqc, wig, (scores[0] - kth) / span, cut_gap, crowd])


def probe(scorer, candidates: pd.DataFrame, layer: int, batch_size: int, first_stage=None) -> np.ndarray:
    """Each candidate's score estimate after the encoder's first ``layer`` layers (``first_stage``:
    the candidates' first-stage features, if the scorer's heads read them)."""
    if len(candidates) == 0:
        return np.zeros(0)
    encoder = scorer.encoder
    inputs = encoder.inputs(candidates["query"], candidates["text"], batch_size)
    run = encoder.layer_run(inputs, batch_size)
    run.advance(layer, np.ones(len(inputs), dtype=bool))
    outputs = in_order(*run.features(scorer.reads(layer), layer))
    return encoder.pair_scores(scorer.outputs(layer, outputs, first_stage), inputs)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (0 when either side is constant or there is one item)."""
    if len(a) < 2:
        return 0.0
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
