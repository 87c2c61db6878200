"""What the first stage already says about each candidate: its place in its query's ranking, as
features an exit head reads beside a layer's states (a signal that is not the re-ranker's own, and
that is there before its first layer runs).

Per candidate, from the ``score`` column within its query:

- ``z``: the score's z-score among the query's candidates;
- ``below_top``: how far below the query's best score it is, in the same standard deviations;
- ``log_rank``: log(1 + its rank, 0 = best);
- ``reciprocal_rank``: 1 / (1 + its rank).
"""
import numpy as np
import pandas as pd

FEATURES = ("z", "below_top", "log_rank", "reciprocal_rank")


def first_stage_features(candidates: pd.DataFrame) -> np.ndarray:
    """The :data:`FEATURES` of each row of ``candidates`` (qid, score): rows x 4, float32. A query
    whose scores are all equal has z = below_top = 0."""
    score = pd.to_numeric(candidates["score"]).astype("float64")
    by_query = score.groupby(candidates["qid"].to_numpy(), sort=False)
    spread = by_query.transform("std", ddof=0).fillna(0.0).to_numpy()
    spread = np.where(spread > 0, spread, 1.0)
    rank = by_query.rank(method="first", ascending=False).to_numpy() - 1
    return np.stack([(score.to_numpy() - by_query.transform("mean").to_numpy()) / spread,
                     (score.to_numpy() - by_query.transform("max").to_numpy()) / spread,
                     np.log1p(rank), 1 / (1 + rank)], axis=1).astype(np.float32)
