"""EarlyExitReRanker on the bundled 12-layer cross-encoder (ms-marco-MiniLM-L-12-v2, fp32), with its
defaults but k=5, on one Vaswani topic x BM25 top 20: heads fitted on first use, the top 5 of full depth
kept, fewer layer FLOPs."""
import numpy as np
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting


@pytest.fixture(scope="module")
def cross():
    return gaia.CrossEncoder()


@pytest.mark.xfail(strict=True, reason="measured 2026-12-01: the cascade dropped document 9591 of the full-depth "
                   "top 5 (rank 4 became 4569): margins calibrated on 12 pseudo-queries x 20 candidates are too "
                   "narrow for this real topic; issue 13 item 3 still open")
def test_defaults_keep_the_full_depth_top_k_for_fewer_flops(cross, vaswani_index, vaswani, tmp_path, monkeypatch):
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path))     # a fresh fit (the model itself loaded before)
    candidates = vaswani_index.bm25(num_results=20)(vaswani.get_topics().head(1))
    with counting() as full_counts:
        full = cross.reranker()(candidates)
    stage = gaia.Metered(gaia.EarlyExitReRanker(cross, k=5), name="ee", sensors="model")
    early = stage(candidates)
    fit, call = stage.ledger.records
    assert fit["stage"] == "ee / fit exit heads" and fit["startup"] and not call["startup"]
    top = lambda run: run[run["rank"] < 5].sort_values("rank")["docno"].tolist()   # noqa: E731
    assert top(early) == top(full)
    exact = early[early["doc_layers"] == 12].merge(full, on="docno", suffixes=("", "_full"))
    np.testing.assert_allclose(exact["score"], exact["score_full"], atol=1e-4)
    assert call["counts"]["flops"] < full_counts.counts["flops"] * 0.8
