"""Calibrating the cost model a :class:`gaia.DiffusionReRanker`'s potential reads: metered early-exit
re-rankings at random budgets, one cost-model stage per precision (``gaia.calibrate_costs``; the
ranker also runs it by itself on first use)."""
import numpy as np

from ..cost.model import CostModel
from ..energy.ledger import Ledger
from ..energy.metered import Metered


def calibrate_costs(ranker, candidates, *, queries: int = 24, seed: int = 0, ledger=None,
                    sensors="auto") -> CostModel:
    """A :class:`gaia.CostModel` with one stage per precision of ``ranker`` (a DiffusionReRanker), named
    as ``ranker.cost_stage(precision)`` expects, calibrated on metered early-exit re-rankings of up
    ``queries`` queries of ``candidates`` per precision (drawn with replacement when there are fewer),
    each at a random budget (log-uniform depth, uniform threshold, drawn with ``seed``) so that the fit
    sees the counts vary.

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
        chosen = rng.choice(qids, size=queries, replace=len(qids) < queries)
        for step, qid in enumerate(chosen):
            own = ranked[ranked["qid"] == qid]
            depth = int(round(np.exp(rng.uniform(*np.log(space.depths)))))
            agreement = rng.uniform(*space.agreements)
            picked = own[own["position"] < depth].assign(agreement=agreement)
            if step == 0:
                early_exit(picked)  # warm-up, unmetered
            metered(picked)
    return CostModel.calibrate(ledger)
