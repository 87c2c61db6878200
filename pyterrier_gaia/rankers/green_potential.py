"""The green potential U(θ | q) = a·Ê(θ) + c·L̂(θ) − u·Û(θ | q) over the relaxed budget space, with
its gradient (what Langevin dynamics follow).

- :class:`LayerFraction` ℓ: the mean fraction of the layers a query runs at each exit threshold
  (piecewise linear in the threshold, measured when fitting).
- :class:`Usefulness` Û: how much of the full re-ranking's benefit a budget keeps for a query, a
  linear model over (query signals) ⊗ (polynomial terms of depth, rung and ℓ), fitted by ridge
  regression on replayed budgets (see :meth:`DiffusionReRanker.fit`); its target is the nDCG@k of
  the budget's ranking with the full budget's scores as graded pseudo-labels, so what it loses tracks
  what nDCG loses. Û reads the threshold
  through ℓ: what a looser threshold costs in quality follows how many layers it skips, which
  jumps where the encoder's layers start to agree (a polynomial in the threshold itself cannot
  follow that step).
- :class:`CostTerms` Ê and L̂: energy and latency per query predicted by a calibrated
  :class:`~pyterrier_gaia.cost.model.CostModel` from the operation counts a budget implies,
  relative to the full budget (so the weights compare fractions of the full cost with usefulness).
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from .budget_space import BudgetSpace
from .ridge import ridge_fit

#: the counts an early-exit re-ranking reports, all of which CostTerms can predict
PREDICTED_COUNTS = ("calls", "pairs", "tokens", "layer_tokens", "flops", "weight_bytes", "forward_passes")


def basis(x: np.ndarray):
    """Polynomial terms of relaxed budgets ``x`` (n x 3: depth d, rung p, layer fraction e) and their
    gradients: ``(terms n x 10, gradients n x 10 x 3)``. Cubic in depth (where benefit saturates),
    quadratic in the layer fraction, with the pairwise products."""
    d, p, e = x[:, 0], x[:, 1], x[:, 2]
    one, zero = np.ones_like(d), np.zeros_like(d)
    terms = np.stack([one, d, d ** 2, d ** 3, p, e, e ** 2, d * p, d * e, p * e], axis=1)
    gradients = np.stack([
        np.stack([zero, zero, zero], 1), np.stack([one, zero, zero], 1), np.stack([2 * d, zero, zero], 1),
        np.stack([3 * d ** 2, zero, zero], 1), np.stack([zero, one, zero], 1), np.stack([zero, zero, one], 1),
        np.stack([zero, zero, 2 * e], 1), np.stack([p, d, zero], 1), np.stack([e, zero, d], 1),
        np.stack([zero, e, p], 1)], axis=1)
    return terms, gradients


class LayerFraction:
    """ℓ(x): the mean fraction of layers run at the exit threshold of budget points ``x``,
    interpolated linearly between the thresholds of ``table`` (threshold -> fraction)."""

    def __init__(self, table: Dict[float, float], space: BudgetSpace):
        thresholds = sorted(table)
        self.thresholds = np.array(thresholds, dtype=float)
        self.fractions = np.array([table[t] for t in thresholds], dtype=float)
        self.space = space

    def __call__(self, x: np.ndarray):
        """ℓ at points ``x`` (n x 3) and dℓ/dx[2]."""
        agreement = self.space.agreement(x)
        fraction = np.interp(agreement, self.thresholds, self.fractions)
        if len(self.thresholds) < 2:
            return fraction, np.zeros_like(agreement)
        segment = np.clip(np.searchsorted(self.thresholds, agreement) - 1, 0, len(self.thresholds) - 2)
        slope = np.diff(self.fractions)[segment] / np.maximum(np.diff(self.thresholds)[segment], 1e-12)
        inside = (agreement >= self.thresholds[0]) & (agreement <= self.thresholds[-1])
        return fraction, np.where(inside, slope, 0.0) * self.space.agreement_slope

    def relax(self, x: np.ndarray):
        """The points with the threshold replaced by ℓ, and dℓ/dx[2]: what :func:`basis` reads."""
        fraction, slope = self(x)
        return np.stack([x[:, 0], x[:, 1], fraction], axis=1), slope


class CascadeWork:
    """ρ_r(d): the share of its candidates' layers that a budget of depth d at rung r runs under the
    per-document cascade (1 at every depth without it), measured at some depths per rung (``table``:
    precision -> {depth: share}) and interpolated linearly in depth (constant beyond them); a budget's
    layer work is d·ρ_r(d) candidates' worth."""

    def __init__(self, table: Dict[str, Dict[int, float]], space: BudgetSpace):
        self.table = {p: {int(d): float(v) for d, v in table.get(p, {}).items()} for p in space.precisions}
        self.space = space

    def __call__(self, rung: np.ndarray, depth: np.ndarray):
        """ρ at each row's ``rung`` (indices into the ladder) and continuous ``depth``, and dρ/d depth."""
        share, slope = np.ones(len(depth)), np.zeros(len(depth))
        for index, precision in enumerate(self.space.precisions):
            mine, measured = rung == index, self.table[precision]
            if not mine.any() or not measured:
                continue
            depths = np.array(sorted(measured), dtype=float)
            values = np.array([measured[d] for d in sorted(measured)])
            share[mine] = np.interp(depth[mine], depths, values)
            if len(depths) > 1:
                segment = np.clip(np.searchsorted(depths, depth[mine]) - 1, 0, len(depths) - 2)
                inside = (depth[mine] >= depths[0]) & (depth[mine] <= depths[-1])
                slope[mine] = np.where(inside, (np.diff(values) / np.diff(depths))[segment], 0.0)
        return share, slope


class Usefulness:
    """Û(x | q) = Σ_jk W[j, k]·s̃_j(q)·b_k(z): s̃ the query's signals, standardised, with a leading 1;
    b the :func:`basis` terms of z, the budget point with its threshold read as the layer fraction
    ``layers(x)``."""

    def __init__(self, weights, mean, std, layers: LayerFraction, info=None):
        self.weights = np.asarray(weights, dtype=float)  # (signals + 1) x terms, the constant row first
        self.mean, self.std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        self.layers = layers
        self.info = dict(info or {})

    def _signals(self, signals: np.ndarray) -> np.ndarray:
        standard = (np.asarray(signals, dtype=float) - self.mean) / self.std
        return np.hstack([np.ones((len(standard), 1)), standard])

    @staticmethod
    def _design(signals_tilde: np.ndarray, terms: np.ndarray) -> np.ndarray:
        return (signals_tilde[:, :, None] * terms[:, None, :]).reshape(len(terms), -1)

    @classmethod
    def fit(cls, signals: np.ndarray, x: np.ndarray, target: np.ndarray, layers: LayerFraction) -> "Usefulness":
        """Fit on rows of (query signals, budget point, usefulness); ``info["r2_train"]`` is its R²
        on them."""
        signals, target = np.asarray(signals, dtype=float), np.asarray(target, dtype=float)
        mean, std = signals.mean(axis=0), signals.std(axis=0)
        model = cls(np.zeros(1), mean, np.where(std > 0, std, 1.0), layers)
        design = cls._design(model._signals(signals), basis(layers.relax(x)[0])[0])
        # column 0 of the design is constant 1: ridge_fit adds its own unpenalised bias
        matrix, penalty = ridge_fit(design[:, 1:], target)
        weights = np.concatenate([[matrix[-1, 0]], matrix[:-1, 0]])
        model.weights = weights.reshape(len(mean) + 1, -1)
        model.info = {"rows": len(target), "ridge": penalty, "r2_train": r2(target, model.value(signals, x))}
        return model

    @classmethod
    def out_of_fold(cls, signals: np.ndarray, x: np.ndarray, target: np.ndarray, layers: LayerFraction,
                    queries: np.ndarray, folds: int, seed: int) -> np.ndarray:
        """Each row's Û from a model fitted without its query (``queries``: the query of each row,
        split into ``folds`` groups of whole queries): what held-out R² is measured on."""
        from sklearn.model_selection import GroupKFold

        predicted = np.full(len(target), np.nan)
        shuffled = np.random.default_rng(seed).permutation(int(queries.max()) + 1)[queries]
        for train, held in GroupKFold(n_splits=folds).split(x, groups=shuffled):
            model = cls.fit(signals[train], x[train], target[train], layers)
            predicted[held] = model.value(signals[held], x[held])
        return predicted

    def value(self, signals: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Û for each row (signals n x F, points n x 3)."""
        coefficients = self._signals(signals) @ self.weights
        return np.einsum("nk,nk->n", coefficients, basis(self.layers.relax(x)[0])[0])

    def gradient(self, signals: np.ndarray, x: np.ndarray) -> np.ndarray:
        """∂Û/∂x for each row (n x 3)."""
        coefficients = self._signals(signals) @ self.weights
        z, slope = self.layers.relax(x)
        gradient = np.einsum("nk,nkj->nj", coefficients, basis(z)[1])
        gradient[:, 2] *= slope
        return gradient


def r2(measured, predicted) -> float:
    """scikit-learn's R² (NaN when the measured values are constant: nothing to explain)."""
    from sklearn.metrics import r2_score

    if np.ptp(measured) == 0:
        return float("nan")
    return float(r2_score(measured, predicted))


@dataclass
class QueryCosts:
    """What a query's cost depends on besides its budget: the mean tokens and full-depth FLOPs of one
    of its candidates, and the tokens and FLOPs of encoding the query itself (bi-encoder; else 0)."""

    doc_tokens: np.ndarray
    doc_flops: np.ndarray
    query_tokens: np.ndarray
    query_flops: np.ndarray

    @classmethod
    def of(cls, encoder, doc_lengths: List[np.ndarray], query_lengths: np.ndarray):
        """From the token lengths of each query's candidates' inputs and of each query's own encoding
        (``encoder.input_tokens``, ``encoder.query_tokens``)."""
        per_doc = lambda n: encoder.flops(1, int(n), encoder.num_layers)  # noqa: E731
        query_lengths = np.asarray(query_lengths, dtype=float)
        return cls(np.array([lengths.mean() for lengths in doc_lengths]),
                   np.array([np.mean([per_doc(n) for n in lengths]) for lengths in doc_lengths]),
                   query_lengths, np.array([per_doc(n) if n else 0.0 for n in query_lengths]))


class CostTerms:
    """Ê(x) and L̂(x) per query, relative to the full budget, from a calibrated cost model.

    For a rung p, the counts of re-ranking d candidates of mean length t for a fraction ℓ of the
    layers are: pairs d, tokens d·t, layer_tokens d·t·L·ℓ, flops d·f·ℓ (f: a candidate's
    full-depth FLOPs), weight_bytes W_p·ℓ·d/B and forward_passes d/B (B: batch size), plus the
    query's own encoding; so each cost is c0 + d·(α + β·ℓ), linear in the cost model's coefficients.
    ℓ is the mean fraction of layers run at a threshold (``layers``). Under the per-document cascade the
    layer terms scale with d·ρ_r(d) instead of d (``cascade``, :class:`CascadeWork`; None: ρ = 1).

    The points ``x`` are the queries of one call, whose work is shared: the call's own cost
    (``calls``) is split between its queries, and a rung's pairs are batched together, so forward
    passes and weight reads are charged per batch the call fills: a rung that m pairs of the call
    use pays max(1, m/B) passes, not m/B, shared by those pairs in proportion (a precision few pairs
    use pays a nearly empty pass). The gradient holds each rung's fill fixed (one query's own share
    of it ignored), which is exact once the rung fills a batch.
    """

    def __init__(self, cost_model, stages: Sequence[str], space: BudgetSpace, encoder, weight_bytes: Sequence[int],
                 batch_size: int, layers: LayerFraction, cascade: CascadeWork = None):
        table = cost_model.coefficients()
        self.coefficients = []  # per rung: {count name: (seconds, joules) per unit}
        for stage in stages:
            rows = table.loc[stage]
            unknown = sorted(set(rows.index) - set(PREDICTED_COUNTS))
            if unknown:
                raise ValueError(f"DiffusionReRanker: the cost model's stage {stage!r} uses counts {unknown}, "
                                 f"which a budget does not determine; calibrate it on early-exit re-ranking "
                                 f"records (gaia.calibrate_costs)")
            self.coefficients.append({name: rows.loc[name].to_numpy() for name in rows.index})
        self.space, self.layer_count, self.batch_size = space, encoder.num_layers, batch_size
        self.weight_bytes = [float(w) for w in weight_bytes]
        self.layers, self.cascade = layers, cascade

    def _parts(self, rung: int, costs: QueryCosts, fill: float, queries: int):
        """(c0, α, β) per query for one rung, each n x 2 (seconds, joules); ``fill``: the rung's
        batches per B pairs in this call (at least 1), ``queries``: the call's queries."""
        get = lambda name: self.coefficients[rung].get(name, np.zeros(2))[None, :]  # noqa: E731
        c0 = get("calls") / queries + get("tokens") * costs.query_tokens[:, None] \
            + get("flops") * costs.query_flops[:, None]
        per_pass = fill / self.batch_size          # a pair's share of its batch
        alpha = get("pairs") + get("tokens") * costs.doc_tokens[:, None] + get("forward_passes") * per_pass
        beta = (get("layer_tokens") * (costs.doc_tokens * self.layer_count)[:, None]
                + get("flops") * costs.doc_flops[:, None] + get("weight_bytes") * self.weight_bytes[rung] * per_pass)
        return c0, alpha, beta

    def fill(self, x: np.ndarray) -> np.ndarray:
        """Per rung: forward passes per B pairs when the queries at ``x`` form one call, max(1, B/m)
        for a rung m > 0 of the call's pairs use (1 for an unused rung)."""
        depth = self.space.depth(x)
        lower, upper, w = self.space.rungs(x)
        pairs = np.zeros(len(self.coefficients))
        np.add.at(pairs, lower, depth * (1 - w))
        np.add.at(pairs, upper, depth * w)
        return np.where(pairs > 0, np.maximum(1.0, self.batch_size / np.maximum(pairs, 1e-12)), 1.0)

    def absolute(self, x: np.ndarray, costs: QueryCosts):
        """(seconds, joules) per query at points ``x`` (n x 2), and their gradients (n x 2 x 3)."""
        depth, slope = self.space.depth(x), self.space.depth_slope(x)
        fraction, fraction_slope = self.layers(x)
        lower, upper, w = self.space.rungs(x)
        rungs, fill = len(self.coefficients), self.fill(x)
        c0, alpha, beta = (np.stack(part) for part in zip(*(self._parts(r, costs, fill[r], len(x))
                                                             for r in range(rungs))))
        rows, at = np.arange(len(x)), fraction[:, None]
        value, grad = [], []
        for rung in (lower, upper):
            per_doc, per_layer = alpha[rung, rows], beta[rung, rows]   # n x 2 each
            share, share_slope = (np.ones(len(x)), np.zeros(len(x))) if self.cascade is None \
                else self.cascade(rung, depth)
            layered = (depth * share)[:, None]                          # candidates' worth of layer work
            value.append(c0[rung, rows] + depth[:, None] * per_doc + layered * per_layer * at)
            grad.append(np.stack([slope[:, None] * (per_doc + ((share + depth * share_slope)[:, None]) * per_layer * at),
                                  np.zeros_like(per_doc), layered * per_layer * fraction_slope[:, None]],
                                 axis=2))
        w2 = w[:, None]
        cost = (1 - w2) * value[0] + w2 * value[1]
        gradient = (1 - w2)[:, :, None] * grad[0] + w2[:, :, None] * grad[1]
        gradient[:, :, 1] = (value[1] - value[0]) * max(rungs - 1, 0)
        return cost, gradient

    def full_budget(self, costs: QueryCosts) -> np.ndarray:
        """(seconds, joules) per query at its full budget (the first rung, deepest, strictest), n x 2, a
        zero replaced by 1: what :meth:`relative` divides by."""
        full = np.tile(self.space.point(self.space.full), (len(costs.doc_tokens), 1))
        reference, _ = self.absolute(full, costs)
        return np.where(reference > 0, reference, 1.0)

    def relative(self, x: np.ndarray, costs: QueryCosts):
        """Costs and gradients relative to each query's full budget (:meth:`full_budget`)."""
        reference = self.full_budget(costs)
        cost, gradient = self.absolute(x, costs)
        return cost / reference, gradient / reference[:, :, None]


class GreenPotential:
    """U(x | q) = a·Ê + c·L̂ − u·Û for a batch of queries (their signals and costs fixed)."""

    def __init__(self, weights, usefulness: Usefulness, costs: CostTerms, signals: np.ndarray,
                 query_costs: QueryCosts):
        self.a, self.c, self.u = weights
        self.usefulness, self.costs, self.signals, self.query_costs = usefulness, costs, signals, query_costs

    def value(self, x: np.ndarray) -> np.ndarray:
        relative, _ = self.costs.relative(x, self.query_costs)
        return self.c * relative[:, 0] + self.a * relative[:, 1] - self.u * self.usefulness.value(self.signals, x)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        _, gradient = self.costs.relative(x, self.query_costs)
        return (self.c * gradient[:, 0] + self.a * gradient[:, 1]
                - self.u * self.usefulness.gradient(self.signals, x))
