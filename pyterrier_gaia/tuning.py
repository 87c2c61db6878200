"""Tuning a :class:`gaia.DiffusionReRanker`: tracing the effectiveness–energy front over its weights
(a, c, u) with :func:`gaia.Experiment`. ``gaia.calibrate_costs`` (the cost model its potential reads)
lives beside the ranker, in :mod:`pyterrier_gaia.rankers.cost_calibration`, and is re-exported here."""
from typing import Optional, Sequence

import pandas as pd
import pyterrier as pt

from .experiment import Experiment
from .rankers.cost_calibration import calibrate_costs

__all__ = ["calibrate_costs", "tune"]


def tune(first_stage, ranker, topics, qrels, weights: Sequence[Sequence[float]], measures=None,
         names: Optional[Sequence[str]] = None, **experiment) -> pd.DataFrame:
    """Run ``first_stage >> ranker.with_weights(w)`` for every ``w`` = (a, c, u) of ``weights`` on
    ``topics`` (training topics) through :func:`gaia.Experiment`: one row per weighting with its
    measures (default nDCG@10 and AP), ``J/q``, ``gCO2e/q``, ``ms/q``, ``mrt`` and the weights as columns
    ``a``, ``c``, ``u``. Pass the result to :func:`gaia.pareto` for the front and its knee."""
    weights = [tuple(float(v) for v in w) for w in weights]
    if not weights:
        raise ValueError("gaia.tune: no weights given; expected a list of (a, c, u) triples")
    names = list(names) if names is not None else [f"diffusion a={a:g} c={c:g} u={u:g}" for a, c, u in weights]
    systems = [first_stage >> ranker.with_weights(w) for w in weights]
    measures = list(measures) if measures is not None else [pt.measures.nDCG @ 10, pt.measures.AP]
    if "mrt" not in measures:
        measures.append("mrt")
    result = Experiment(systems, topics, qrels, measures, names=names, **experiment)
    for column, values in zip("acu", zip(*weights)):
        result[column] = values
    return result
