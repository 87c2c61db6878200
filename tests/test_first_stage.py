"""First-stage features of each candidate, as exit heads read them, on tiny frames."""
import numpy as np
import pandas as pd

from pyterrier_gaia.rankers.first_stage import FEATURES, first_stage_features


def test_features_place_each_candidate_within_its_own_query():
    frame = pd.DataFrame({"qid": ["a", "b", "a", "a", "b"], "score": [3.0, 5.0, 1.0, 2.0, 5.0]})
    values = first_stage_features(frame)
    assert values.shape == (5, len(FEATURES)) and values.dtype == np.float32
    spread = np.std([3.0, 1.0, 2.0])                        # query a: 3, 1, 2 (mean 2)
    np.testing.assert_allclose(values[[0, 2, 3], 0], [1 / spread, -1 / spread, 0], rtol=1e-6)     # z
    np.testing.assert_allclose(values[[0, 2, 3], 1], [0, -2 / spread, -1 / spread], rtol=1e-6)    # below_top
    np.testing.assert_allclose(values[[0, 2, 3], 2], np.log1p([0, 2, 1]), rtol=1e-6)              # log_rank
    np.testing.assert_allclose(values[[0, 2, 3], 3], [1, 1 / 3, 1 / 2], rtol=1e-6)                # reciprocal
    # query b: equal scores have no spread (z = below_top = 0) and take ranks in input order
    np.testing.assert_allclose(values[[1, 4]], [[0, 0, 0, 1], [0, 0, np.log1p(1), 1 / 2]], rtol=1e-6)


def test_a_query_s_features_do_not_depend_on_the_other_queries():
    frame = pd.DataFrame({"qid": ["a"] * 3 + ["b"] * 2, "score": [9.0, 4.0, 1.0, 100.0, -7.0]})
    np.testing.assert_array_equal(first_stage_features(frame)[:3], first_stage_features(frame.head(3)))
