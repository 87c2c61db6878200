"""DiffusionReRanker: per-query re-ranking budgets drawn by Langevin dynamics on a green potential
(after GaiaFlow), then re-ranking with the drawn budget."""
import copy

import numpy as np
import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from ..encoders import precision as ladder
from ..encoders.checks import positive_integer
from .budget_space import BudgetSpace
from .columns import require_columns, require_values
from .early_exit import EarlyExitReRanker
from .exit_heads import ExitHeads, LayerScorer, fitted_for, layer_outputs, model_label
from .fusion import check_weight, fuse
from .green_potential import CostTerms, GreenPotential, LayerFraction, QueryCosts, Usefulness
from .langevin import langevin, query_noise, temperatures
from .measures import ndcg, top_overlap
from .query_signals import query_signals

OUTPUT_COLUMNS = ("score", "rank", "depth", "precision", "agreement", "layers", "doc_layers", "steps")


class DiffusionReRanker(pt.Transformer):
    """Re-ranks candidates (qid, query, docno, text, score) spending, per query, only the budget that
    its ranking is likely to repay.

    For each query a budget θ = (re-rank depth, precision, exit threshold) is drawn by projected
    Langevin dynamics, θ ← θ − η∇U + √(2ηT)·ξ with T annealed from ``temperature[0]`` to
    ``temperature[1]`` over ``steps`` steps, on the relaxed budget space (see
    :mod:`~pyterrier_gaia.rankers.budget_space`; thresholds above 1 never exit early, so the
    default full budget, depth 100 at fp32 and threshold 1.1, is the full re-ranking), starting
    from the full budget, under the potential

        U(θ | q) = a·Ê(θ) + c·L̂(θ) − u·Û(θ | q),   ``weights=(a, c, u)``

    Ê, L̂: energy and latency per query predicted by ``cost_model`` (a calibrated
    :class:`gaia.CostModel` with a stage per precision, see :meth:`cost_stage` and
    :func:`gaia.calibrate_costs`), as fractions of the full budget's; Û: the usefulness model fitted
    by :meth:`fit` from the query's signals (first-stage score distribution, a one-layer probe of
    query–candidate similarity; see :mod:`~pyterrier_gaia.rankers.query_signals`). The draw is
    rounded to a runnable budget and the query's top ``depth`` candidates are re-ranked by a
    :class:`gaia.EarlyExitReRanker` at that precision and exit threshold; the others keep their
    first-stage order below them. With ``interpolate=α`` scores are fused as in ``ReRanker``.

    Output columns: ``score``, ``rank``, and per row its query's ``depth``, ``precision``,
    ``agreement``, ``layers`` (the exit layer) and ``steps`` (Langevin steps), and ``doc_layers``
    (layers that document ran; 0 below the depth). Draws are seeded per (``seed``, qid).

    >>> dr = gaia.DiffusionReRanker(gaia.BiEncoder(), weights=(1, 0, 4))
    >>> dr.fit(bm25 % 100 (pseudo_queries))            # usefulness, no judgments needed
    >>> dr.cost_model = gaia.calibrate_costs(dr, bm25 % 100 (pseudo_queries))
    >>> (bm25 % 100 >> dr)(topics)
    """

    def __init__(self, encoder, cost_model=None, *, weights=(1.0, 0.0, 4.0), depths=(10, 100),
                 precisions=("fp32", "int8"), agreements=(0.5, 1.1), k=10, heads=None, interpolate=None,
                 steps=40, step_size=0.1, temperature=(0.01, 1e-4), probe_depth=20, probe_layer=1, seed=0,
                 batch_size=32, verbose=False):
        where = "DiffusionReRanker"
        for p in precisions:
            ladder.check(p, encoder.device, where)
        self.space = BudgetSpace(depths, precisions, agreements, k)
        self.weights = _check_weights(weights)
        self.interpolate = check_weight(where, interpolate)
        self.probe_layer = positive_integer(f"{where} ({encoder.model_name!r} has {encoder.num_layers} layers)",
                                            "probe_layer", probe_layer, encoder.num_layers)
        self.k, self.probe_depth, self.batch_size = (
            positive_integer(where, name, value)
            for name, value in (("k", k), ("probe_depth", probe_depth), ("batch_size", batch_size)))
        self.schedule = temperatures(*temperature, positive_integer(where, "steps", steps))
        if not step_size > 0:
            raise ValueError(f"{where}: step_size={step_size!r}; expected a positive number")
        self.encoder, self.step_size, self.seed, self.verbose = encoder, float(step_size), int(seed), verbose
        self.heads = heads if heads is None or isinstance(heads, ExitHeads) else ExitHeads.load(heads, encoder)
        if self.heads is not None:
            self.heads.check(encoder)
        self._encoders = {encoder.precision: encoder}
        self._rankers = {}
        self.usefulness, self.layers = None, None
        self.cost_model = cost_model

    def __repr__(self):
        return (f"DiffusionReRanker({self.encoder!r}, weights={self.weights}, {self.space!r}, "
                f"fitted={self.usefulness is not None})")

    # ----- configuration
    @property
    def usefulness(self):
        """The fitted usefulness model Û (None until :meth:`fit`)."""
        return self._usefulness

    @usefulness.setter
    def usefulness(self, usefulness):
        if usefulness is not None and usefulness.info.get("encoder") != fitted_for(self.encoder):
            raise ValueError(f"DiffusionReRanker: the usefulness model was fitted for "
                             f"{usefulness.info.get('encoder', 'an unknown encoder')}, not for this ranker's "
                             f"{fitted_for(self.encoder)}; fit one for it with .fit(candidates)")
        self._usefulness = usefulness

    @property
    def cost_model(self):
        return self._cost_model

    @cost_model.setter
    def cost_model(self, cost_model):
        if cost_model is not None:
            missing = [s for s in map(self.cost_stage, self.space.precisions) if s not in cost_model.stages]
            if missing:
                raise ValueError(f"DiffusionReRanker: the cost model is not calibrated for this encoder: it lacks "
                                 f"stage(s) {missing} (it has {cost_model.stages}); calibrate one with "
                                 f"gaia.calibrate_costs(ranker, candidates)")
        self._cost_model = cost_model

    def cost_stage(self, precision: str) -> str:
        """The cost model's stage name for this encoder's early-exit re-ranking at ``precision``."""
        return f"{self.encoder.stage} {model_label(self.encoder)} {precision} early-exit"

    def with_weights(self, weights) -> "DiffusionReRanker":
        """The same fitted re-ranker (models shared) under other weights (a, c, u)."""
        other = copy.copy(self)
        other.weights = _check_weights(weights)
        return other

    def encoder_at(self, precision: str):
        """The encoder at ``precision`` (loaded once)."""
        if precision not in self._encoders:
            self._encoders[precision] = self.encoder.at_precision(precision)
        return self._encoders[precision]

    def early_exit(self, precision: str) -> EarlyExitReRanker:
        """The early-exit re-ranker that runs budgets at ``precision`` (thresholds per query, no cascade)."""
        if precision not in self._rankers:
            self._rankers[precision] = EarlyExitReRanker(
                self.encoder_at(precision), k=self.k, agreement=1.0, cascade=False,
                heads=self.heads, batch_size=self.batch_size)
        return self._rankers[precision]

    # ----- input
    def _required(self):
        return ["qid", "query", "docno", "text", "score"]

    def transform_outputs(self, inp_cols):
        self._check(inp_cols)
        return list(inp_cols) + [c for c in OUTPUT_COLUMNS if c not in inp_cols]

    def _check(self, columns):
        require_columns("DiffusionReRanker", self, columns, self._required(),
                        f"expected first-stage candidates with {', '.join(self._required())} "
                        f"(e.g. from gaia.LuceneIndex(...).bm25())")

    def in_first_stage_order(self, inp: pd.DataFrame) -> pd.DataFrame:
        """The input in first-stage order per query, with each row's ``position`` (0 = best)."""
        out = inp.drop(columns=[c for c in OUTPUT_COLUMNS if c != "score"] + ["agreement"], errors="ignore")
        require_values("DiffusionReRanker", out, ["query", "text", "score"],
                       {"score": "a first-stage score (a finite number) on every row: it orders the candidates"})
        out = out.assign(_first=pd.to_numeric(out["score"]))
        out = out.sort_values(["qid", "_first"], ascending=[True, False], kind="stable").reset_index(drop=True)
        return out.assign(position=out.groupby("qid", sort=False).cumcount())

    def _signals(self, ranked: pd.DataFrame) -> np.ndarray:
        scorer = LayerScorer(self.encoder_at(self.space.precisions[0]), self.heads)
        return query_signals(scorer, ranked, self.k, self.probe_depth, self.probe_layer, self.batch_size)

    # ----- fitting the usefulness model
    def fit(self, candidates: pd.DataFrame, qrels: pd.DataFrame = None, held_out: float = 0.25) -> "DiffusionReRanker":
        """Fit the usefulness model Û on ``candidates`` (first-stage results of training queries, or of
        pseudo-queries drawn from the collection): every precision scores each query's top
        ``depths[1]`` candidates at every layer once; every budget of :meth:`BudgetSpace.grid` is then
        replayed exactly from those scores. Û's target is the top-k agreement with the full budget's
        ranking (no judgments), or nDCG@k against ``qrels`` when given. A ``held_out`` fraction of the
        queries gives the fit's held-out R² (``usefulness.info``). Also fits ``layers``, the mean fraction of
        layers run at each threshold (read by Û and the cost terms). Returns ``self``."""
        self._check(list(candidates.columns))
        _check_qrels(qrels)
        if not 0 <= held_out < 1:
            raise ValueError(f"DiffusionReRanker.fit: held_out={held_out!r}; expected a fraction in [0, 1)")
        ranked = self.in_first_stage_order(candidates)
        ranked = ranked[ranked["position"] < self.space.depths[1]].reset_index(drop=True)
        if len(ranked) == 0:
            raise ValueError("DiffusionReRanker.fit: no candidates to fit on")
        signals = self._signals(ranked)
        layer_scores = {p: self._layer_scores(p, ranked) for p in self.space.precisions}
        rows, rankings = [], []
        groups = ranked.groupby(pd.factorize(ranked["qid"])[0], sort=True).indices
        for code, members in groups.items():
            first = ranked["_first"].to_numpy()[members]
            full = _replay(first, layer_scores[self.space.precisions[0]][members], len(members), 2.0, self.k,
                           self.interpolate)[0]
            docnos = ranked["docno"].to_numpy()[members]
            for budget in self.space.grid():
                order, exit_index = _replay(first, layer_scores[budget.precision][members],
                                            min(budget.depth, len(members)), budget.agreement, self.k,
                                            self.interpolate)
                rankings.append((ranked["qid"].iloc[members[0]], docnos[order]))
                rows.append((code, *self.space.point(budget), top_overlap(order[:self.k], full[:self.k]),
                             budget.agreement, (exit_index + 1) / self.encoder.num_layers))
        table = np.array(rows)
        if qrels is not None:
            table[:, 4] = ndcg(rankings, qrels, self.k)
        queries = np.array(sorted(groups))
        held = np.random.default_rng(self.seed).random(len(queries)) < held_out
        held_rows = held[table[:, 0].astype(int)] if held.any() and not held.all() else None
        frame = pd.DataFrame(table[:, 5:], columns=["agreement", "fraction"])
        self.layers = LayerFraction(frame.groupby("agreement")["fraction"].mean().to_dict(), self.space)
        usefulness = Usefulness.fit(signals[table[:, 0].astype(int)], table[:, 1:4], table[:, 4], self.layers,
                                    held_rows)
        usefulness.info.update(queries=len(queries), target="nDCG@k" if qrels is not None else "top-k agreement",
                               encoder=fitted_for(self.encoder))
        self.usefulness = usefulness
        return self

    def _layer_scores(self, precision: str, ranked: pd.DataFrame) -> np.ndarray:
        """Every candidate's score estimate after every layer at ``precision`` (rows x layers)."""
        encoder = self.encoder_at(precision)
        scorer = LayerScorer(encoder, self.heads)
        data = layer_outputs(scorer, ranked, self.batch_size, self.verbose)
        return np.stack([encoder.pair_scores(scorer.outputs(layer, data["own"][layer]), data["inputs"])
                         for layer in range(1, encoder.num_layers + 1)], axis=1)

    # ----- drawing budgets
    def potential(self, ranked_top: pd.DataFrame) -> GreenPotential:
        """The green potential of each query of ``ranked_top`` (its top candidates, first-stage order)."""
        self._require_fitted()
        terms = CostTerms(self.cost_model, [self.cost_stage(p) for p in self.space.precisions], self.space,
                          self.encoder, [self.encoder_at(p).weight_bytes for p in self.space.precisions],
                          self.batch_size, self.layers)
        return GreenPotential(self.weights, self.usefulness, terms, self._signals(ranked_top),
                              self._query_costs(ranked_top))

    def draw(self, potential: GreenPotential, qids) -> np.ndarray:
        """Langevin draws (queries x 3 points of the unit cube), from the full budget."""
        start = np.tile(self.space.point(self.space.full), (len(qids), 1))
        noise = query_noise(self.seed, qids, len(self.schedule), 3)
        report(langevin_steps=len(self.schedule) * len(qids))
        return langevin(potential.gradient, start, self.step_size, self.schedule, noise)

    def _query_costs(self, ranked_top: pd.DataFrame) -> QueryCosts:
        encoder = self.encoder
        lengths = encoder.input_tokens(ranked_top["query"], ranked_top["text"])
        groups = list(ranked_top.groupby(pd.factorize(ranked_top["qid"])[0], sort=True).indices.values())
        query_lengths = encoder.query_tokens([ranked_top["query"].iloc[rows[0]] for rows in groups])
        return QueryCosts.of(encoder, [lengths[rows] for rows in groups], query_lengths)

    def _require_fitted(self):
        if self.usefulness is None:
            raise ValueError("DiffusionReRanker: the usefulness model is not fitted; call .fit(candidates) first "
                             "(candidates of training queries or pseudo-queries)")
        if self.cost_model is None:
            raise ValueError("DiffusionReRanker: no cost model; set cost_model= to one calibrated with "
                             "gaia.calibrate_costs(ranker, candidates)")

    # ----- re-ranking
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._check(list(inp.columns))
        columns = self.transform_outputs(list(inp.columns))
        if len(inp) == 0:
            return pd.DataFrame({c: pd.Series(dtype=inp[c].dtype if c in inp else "float64") for c in columns})
        self._require_fitted()
        ranked = self.in_first_stage_order(inp)
        available = ranked.groupby("qid", sort=True).size()
        if self.space.depths[1] > available.max():
            raise ValueError(f"DiffusionReRanker: depths={self.space.depths} reach {self.space.depths[1]}, but no "
                             f"query has more than {available.max()} candidates; lower the depth range or "
                             f"retrieve more (e.g. bm25 % {self.space.depths[1]})")
        return self._rerank(ranked, self._budgets(ranked, available))[columns]

    def budgets(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """The budget drawn for each query of ``candidates`` (as :meth:`transform` would draw it, without
        re-ranking): one row per qid with its ``depth``, ``precision`` and ``agreement`` threshold."""
        self._check(list(candidates.columns))
        self._require_fitted()
        ranked = self.in_first_stage_order(candidates)
        drawn = self._budgets(ranked, ranked.groupby("qid", sort=True).size())
        return pd.DataFrame([{"qid": qid, "depth": b.depth, "precision": b.precision, "agreement": b.agreement}
                             for qid, b in drawn.items()])

    def _budgets(self, ranked: pd.DataFrame, available: pd.Series) -> dict:
        """qid -> the rounded Langevin draw for that query, its depth capped by its ``available`` candidates."""
        top = ranked[ranked["position"] < self.space.depths[1]].reset_index(drop=True)
        qids = list(available.index)
        points = self.draw(self.potential(top), qids)
        return {qid: self.space.round(point, int(available[qid])) for qid, point in zip(qids, points)}

    def _rerank(self, ranked: pd.DataFrame, budgets) -> pd.DataFrame:
        """Re-rank each query's top ``depth`` candidates with its budget; the rest keep their order below."""
        budget_of = ranked["qid"].map(budgets)
        ranked = ranked.assign(depth=[b.depth for b in budget_of], precision=[b.precision for b in budget_of],
                               agreement=[b.agreement for b in budget_of], steps=len(self.schedule),
                               doc_layers=0, layers=0, neural=np.nan)
        chosen = ranked["position"] < ranked["depth"]
        for precision in ranked.loc[chosen, "precision"].unique():
            rows = ranked.index[chosen & (ranked["precision"] == precision)]
            out = self.early_exit(precision)(ranked.loc[rows].assign(_row=rows))
            ranked.loc[out["_row"], ["neural", "doc_layers", "layers"]] = \
                out[["score", "doc_layers", "exit_layer"]].to_numpy()
        ranked["layers"] = ranked.groupby("qid")["layers"].transform("max").astype("int64")
        ranked["doc_layers"] = ranked["doc_layers"].astype("int64")
        score = ranked["neural"].copy()
        if self.interpolate is not None:
            picked = ranked[chosen]
            score[chosen] = fuse(self.interpolate, picked["_first"], picked["neural"], picked["qid"])
        floor = score.groupby(ranked["qid"]).transform("min")
        score[~chosen] = floor[~chosen] - 1 - (ranked["position"] - ranked["depth"])[~chosen]
        ranked["score"] = score.astype("float64")
        ranked = pt.model.add_ranks(ranked.drop(columns=["neural", "_first", "position"]))
        return ranked.sort_values(["qid", "rank"], kind="stable").reset_index(drop=True)


def _check_weights(weights):
    values = tuple(float(w) for w in weights)
    if len(values) != 3 or any(w < 0 for w in values) or not any(values) or any(np.isnan(values)):
        raise ValueError(f"DiffusionReRanker: weights={tuple(weights)!r}; expected (a, c, u): three "
                         f"non-negative weights of energy, latency and usefulness, not all zero")
    return values


def _replay(first: np.ndarray, layer_scores: np.ndarray, depth: int, agreement: float, k: int, interpolate):
    """The ranking (positions in first-stage order) and exit layer index that a budget gives a query,
    replayed from its candidates' scores at every layer (as EarlyExitReRanker without cascade)."""
    scores = layer_scores[:depth]
    previous, chosen = None, scores.shape[1] - 1
    for index in range(scores.shape[1]):
        top = np.argsort(-scores[:, index], kind="stable")[:k]
        if previous is not None and top_overlap(top, previous) >= agreement:
            chosen = index
            break
        previous = top
    final = scores[:, chosen]
    if interpolate is not None:
        final = fuse(interpolate, first[:depth], final)
    order = np.argsort(-final, kind="stable")
    return np.concatenate([order, np.arange(depth, len(first))]), chosen


def _check_qrels(qrels) -> None:
    if qrels is not None:
        missing = [c for c in ("qid", "docno", "label") if c not in qrels.columns]
        if missing:
            raise ValueError(f"DiffusionReRanker.fit: qrels lack column(s) {missing}; expected qid, docno, label")
