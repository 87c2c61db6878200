"""The one implementation of each measure the rankers share: min-max fusion, top-k overlap, nDCG@k."""
import numpy as np
import pandas as pd
import pytest

from pyterrier_gaia.rankers.fusion import fuse, minmax
from pyterrier_gaia.rankers.measures import ndcg, top_overlap


def test_minmax_per_query_keeps_precision_and_gives_constant_queries_zero():
    scores = np.array([3.0, 1.0, 2.0, 5.0, 5.0], dtype=np.float32)
    scaled = minmax(scores, ["a", "a", "a", "b", "b"])
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, [1.0, 0.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(minmax([2, 4]), [0.0, 1.0])  # integers scale as float64, one query
    assert len(minmax(np.zeros(0), [])) == 0
    np.testing.assert_allclose(fuse(0.25, [10.0, 0.0], [0.0, 1.0]), [0.25, 0.75])


def test_top_overlap_ignores_order():
    assert top_overlap(["a", "b", "c", "d"], ["d", "x", "a", "y"]) == 0.5
    assert top_overlap(np.array([3, 1]), np.array([1, 3])) == 1.0


def test_ndcg_is_trec_evals_with_linear_gains():
    qrels = pd.DataFrame({"qid": ["1", "1", "1", "2"], "docno": ["a", "b", "c", "z"], "label": [0, 2, 1, -1]})
    rankings = [("1", ["a", "b", "c"]), ("1", ["b", "c", "a"]), (1, ["c"]), ("2", ["z"]), ("3", ["a"])]
    values = ndcg(rankings, qrels, k=2)
    ideal = 2 + 1 / np.log2(3)
    np.testing.assert_allclose(values, [(2 / np.log2(3)) / ideal, 1.0, 1 / ideal, 0.0, 0.0])
