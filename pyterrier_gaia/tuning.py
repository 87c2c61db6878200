"""Preparing and tuning a :class:`gaia.DiffusionReRanker`: calibrating the cost model its potential
reads (metered early-exit re-ranking at random budgets), and tracing the effectiveness–energy front
over its weights (a, c, u) with :func:`gaia.Experiment`."""
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import pyterrier as pt

from .cost.model import CostModel
from .energy.ledger import Ledger
from .energy.metered import Metered
from .experiment import Experiment


def calibrate_costs(ranker, candidates, *, queries: int = 24, seed: int = 0, ledger=None,
                    sensors="auto") -> CostModel:
    """A :class:`gaia.CostModel` with one stage per precision of ``ranker`` (a DiffusionReRanker), named
    as ``ranker.cost_stage(precision)`` expects, calibrated on metered early-exit re-rankings of up
    to ``queries`` queries of ``candidates`` per precision, each at a random budget (log-uniform
    depth, uniform threshold, drawn with ``seed``) so that the fit sees the counts vary.

    The records go to ``ledger`` (a Ledger, a JSONL path, or None for one in memory); each
    precision's re-ranker is warmed up on one query first, unmetered.
    """
    ranked = ranker.in_first_stage_order(candidates)
    qids = ranked["qid"].unique()
    if len(qids) == 0:
        raise ValueError("gaia.calibrate_costs: no candidates to calibrate on")
    rng = np.random.default_rng(seed)
    ledger = Ledger.coerce(ledger) if ledger is not None else Ledger()
    space = ranker.space
    for precision in space.precisions:
        early_exit = ranker.early_exit(precision)
        metered = Metered(early_exit, name=ranker.cost_stage(precision), sensors=sensors, ledger=ledger)
        chosen = rng.choice(qids, size=min(queries, len(qids)), replace=False)
        for step, qid in enumerate(chosen):
            own = ranked[ranked["qid"] == qid]
            depth = int(round(np.exp(rng.uniform(*np.log(space.depths)))))
            agreement = rng.uniform(*space.agreements)
            picked = own[own["position"] < depth].assign(agreement=agreement)
            if step == 0:
                early_exit(picked)  # warm-up, unmetered
            metered(picked)
    return CostModel.calibrate(ledger)


def tune(first_stage, ranker, topics, qrels, weights: Sequence[Sequence[float]], measures=None,
         names: Optional[Sequence[str]] = None, **experiment) -> pd.DataFrame:
    """Run ``first_stage >> ranker.with_weights(w)`` for every ``w`` = (a, c, u) of ``weights`` on
    ``topics`` (training topics) through :func:`gaia.Experiment`: one row per weighting with its
    measures (default nDCG@10 and AP), ``J/q``, ``gCO2e/q``, ``mrt`` and the weights as columns
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
