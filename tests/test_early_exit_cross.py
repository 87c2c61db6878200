"""EarlyExitReRanker on the bundled 12-layer cross-encoder (ms-marco-MiniLM-L-12-v2, fp32), with its
self-fit, on Vaswani topics x BM25 top 30: the first 12 queries re-ranked exactly while the heads fit
themselves, then the cascade keeps the full-depth top 10 of the next queries for fewer layer FLOPs."""
import numpy as np
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting


@pytest.fixture(scope="module")
def cross():
    return gaia.CrossEncoder()


def test_self_fit_at_error_rate_001_keeps_the_full_depth_top_k_for_fewer_flops(cross, vaswani_index, vaswani, tmp_path, monkeypatch):
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path))     # a fresh fit (the model itself loaded before)
    topics = vaswani.get_topics().head(14)
    candidates = vaswani_index.bm25(num_results=30)(topics)
    fitting, after = (candidates[candidates["qid"].isin(part["qid"])] for part in (topics.head(12), topics.tail(2)))
    # at error rate 0.01 (the default is 0.1: about one full-depth top-10 document in ten may be dropped)
    stage = gaia.Metered(gaia.EarlyExitReRanker(cross, error_rate=0.01), name="ee", sensors="model")
    exact = stage(fitting)
    assert [r["stage"] for r in stage.ledger.records] == ["ee / fit exit heads", "ee"]
    assert (exact["doc_layers"] == 12).all() and stage.stage.heads.info["queries"] == 12
    with counting() as full_counts:
        full = cross.reranker()(after)
    early = stage(after)
    top = lambda run: run[run["rank"] < 10].sort_values(["qid", "rank"])["docno"].tolist()   # noqa: E731
    assert top(early) == top(full)
    survivors = early[early["doc_layers"] == 12].merge(full, on=["qid", "docno"], suffixes=("", "_full"))
    np.testing.assert_allclose(survivors["score"], survivors["score_full"], atol=1e-4)
    assert stage.ledger.records[-1]["counts"]["flops"] < full_counts.counts["flops"] * 0.9   # 0.83 measured
