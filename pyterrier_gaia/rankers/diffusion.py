"""DiffusionReRanker: per-query re-ranking budgets drawn by Langevin dynamics on a green potential
(after GaiaFlow), then re-ranking with the drawn budget."""
import copy
import numbers
import platform
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from ..encoders import precision as ladder
from ..energy.metered import in_startup_call
from ..checks import positive_integer, unit_interval
from .. import __version__
from . import diffusion_artifact
from .budget_space import Budget, BudgetSpace
from .columns import require_columns, require_values
from .cost_calibration import calibrate_costs
from .early_exit import EarlyExitReRanker, layer_decision, query_output
from .exit_heads import ExitHeads, LayerScorer, fitted_for, layer_outputs, model_label
from .fusion import check_weight, in_query_order
from .green_potential import CascadeWork, CostTerms, GreenPotential, LayerFraction, QueryCosts, Usefulness, r2
from .langevin import langevin, query_noise, temperatures
from .measures import ndcg
from .query_signals import query_signals
from .self_fit import SelfFit, collection_key

FITTED_OPTIONS = diffusion_artifact.FITTED_OPTIONS
SAMPLING_OPTIONS = ("fit_queries", "seed")  # what else a self-fitted usefulness model depends on
#: what a self-calibrated cost model depends on besides the encoder, its heads and the host (not the collection:
#: it predicts from operation counts, which carry the documents' lengths)
COST_OPTIONS = ("depths", "precisions", "agreements", "k", "cascade", "error_rate", "batch_size",
                "calibration_queries", "seed")
MIN_FIT_QUERIES = 3     # queries a fit needs (Û is fitted across queries)
MIN_FIT_CANDIDATES = 2  # candidates each of them needs (a single candidate has nothing to re-rank)
HEAD_FOLDS = 4          # the cascade's exit heads are cross-fitted in up to this many folds of whole queries
PSEUDO_LABELS = "min-max graded full-budget scores"   # what pseudo_qrels grades by (self-fits are cached by it)
USEFULNESS_FIT = "query signals only where they predict out of fold"   # how Û is fitted (also in the cache key)
OUTPUT_COLUMNS = ("score", "rank", "depth", "precision", "agreement", "layers", "doc_layers", "steps")
#: the usefulness weights u tried, smallest first, when u is solved for ``keep`` (see DiffusionReRanker)
U_CHOICES = tuple(float(u) for u in np.geomspace(0.25, 4096, 29))
#: the potential's total weight a + c + u up to which a Langevin step is ``step_size``; above it the step
#: shrinks in proportion (the same target density exp(−U/T), a step that cannot cross the cube): the gradient
#: grows with u, and on Vaswani one step's drift stayed below 0.25 of the cube up to u = 64 and reached 15
#: at u = 4096 (the draws then bounced between the cube's walls); up to this weight draws are as before
FULL_STEP_WEIGHT = 64.0


class DiffusionReRanker(pt.Transformer):
    """Re-ranks candidates (qid, query, docno, text, score) spending, per query, only the budget that
    its ranking is likely to repay.

    For each query a budget θ = (re-rank depth, precision, exit threshold) is drawn by projected
    Langevin dynamics, θ ← θ − η∇U + √(2ηT)·ξ with T annealed from ``temperature[0]`` to
    ``temperature[1]`` over ``steps`` steps (η = ``step_size``, shrunk when the weights sum past
    :data:`FULL_STEP_WEIGHT`), on the relaxed budget space (see
    :mod:`~pyterrier_gaia.rankers.budget_space`; thresholds above 1 never exit early, so the
    default full budget, depth 100 at fp32 and threshold 1.1, is the full re-ranking; by default
    ``agreements=(1.1, 1.1)``: budgets are depth x precision, as query-level exits were on no
    collection's Pareto front, docs/diffusion.md), starting from the full budget, under the potential

        U(θ | q) = a·Ê(θ) + c·L̂(θ) − u·Û(θ | q),   ``weights=(a, c, u)``

    Ê, L̂: energy and latency per query predicted by ``cost_model`` (a calibrated
    :class:`gaia.CostModel` with a stage per precision, see :meth:`cost_stage` and
    :func:`gaia.calibrate_costs`), as fractions of the full budget's; Û: the usefulness model fitted
    by :meth:`fit` from the query's signals (query-performance predictors over its first-stage
    scores; with ``probe_depth`` > 0 also a ``probe_layer``-layer probe of that many candidates, off by
    default: it cost more than it told; see :mod:`~pyterrier_gaia.rankers.query_signals`): the nDCG@k its
    ranking keeps of the full budget's. With ``u=None`` (the default) u is solved once, on the first
    call that draws budgets, and kept (``solved_u``; saved with the ranker): the smallest of
    :data:`U_CHOICES` whose rounded draws keep, by Û, at least ``keep`` of the full budget's nDCG@k on
    average over that call's queries (a Lagrange multiplier for "keep 99 %, spend least": queries whose
    rankings gain least from more work get least; the largest u when none does). So the budget adapts
    to the collection without judgments, shallow where the first stage already ranks well, deeper
    where it does not, and a query's budget does not depend on the queries it is called with. A number
    u is used as given. The draw is rounded to a runnable budget and the query's top ``depth``
    candidates are re-ranked by a :class:`gaia.EarlyExitReRanker` at that precision and exit threshold,
    and with ``cascade=True`` its per-document cascade: a candidate stops once its exit head's estimate
    falls more than a margin below the query's k-th, the margins calibrated so that a document of
    the full top k is dropped with probability at most ``error_rate`` (default ``1 - keep``: the
    cascade may lose a top-k document no more often than the budget may lose effectiveness); each
    precision's heads are fitted with Û, from the same run, and Û and the cost terms see what the
    cascade saves and loses. With ``cascade="auto"`` Û is fitted both ways from that one run, and the
    first call that draws budgets keeps the way whose draws the cost model predicts cheaper for
    ``keep`` (``solved_cascade``, saved with the ranker): which is cheaper depends on the collection,
    and on the host whose timings calibrate the cost model (docs/diffusion.md).
    The others keep their first-stage order below them. With ``interpolate=α`` scores are fused as in
    ``ReRanker``.

    Output columns: ``score``, ``rank``, and per row its query's ``depth``, ``precision``,
    ``agreement``, ``layers`` (the exit layer) and ``steps`` (Langevin steps of its draw), and ``doc_layers``
    (layers that document ran; 0 below the depth). Draws are seeded per (``seed``, qid).

    No set-up calls: what is not given is fitted on the first call, from up to ``fit_queries`` of its
    queries' candidates and ``calibration_queries`` metered re-rankings, without judgments, metered as
    a one-off record and cached by model and ``collection`` (a name; default: a fingerprint of the
    documents fitted on; see :meth:`fit_on_first_use`); :meth:`fit`, ``cost_model=`` and
    :func:`gaia.calibrate_costs` remain for explicit control, and :meth:`save` / :meth:`load` keep a
    fitted ranker as one artifact.

    >>> (bm25 % 100 >> gaia.DiffusionReRanker(gaia.CrossEncoder()))(topics)
    """

    def __init__(self, encoder, cost_model=None, *, weights=(1.0, 0.0, None), keep=0.99, depths=(10, 100),
                 precisions=("fp32", "int8"), agreements=(1.1, 1.1), k=10, cascade=False, error_rate=None,
                 heads=None, interpolate=None,
                 steps=40, step_size=0.1, temperature=(0.01, 1e-4), probe_depth=0, probe_layer=1, seed=0,
                 batch_size=32, fit_queries=32, calibration_queries=12, collection=None, verbose=False):
        where = "DiffusionReRanker"
        self.options = dict(weights=weights, keep=keep, depths=depths, precisions=precisions, agreements=agreements,
                            k=k, cascade=cascade, error_rate=error_rate, interpolate=interpolate, steps=steps, step_size=step_size, temperature=temperature,
                            probe_depth=probe_depth, probe_layer=probe_layer, seed=seed, batch_size=batch_size,
                            fit_queries=fit_queries, calibration_queries=calibration_queries, collection=collection)
        for p in precisions:
            ladder.check(p, encoder.device, where)
        self.space = BudgetSpace(depths, precisions, agreements, k)
        self.weights = _check_weights(weights)
        self.keep = unit_interval(where, "keep", keep)
        # the cascade may lose a top-k document at most as often as the budget may lose effectiveness
        self.error_rate = round(1 - self.keep, 12) if error_rate is None else unit_interval(where, "error_rate", error_rate)
        self.cascade_option = _check_cascade(cascade)
        # whether the cascade runs: with "auto", while fitting (its heads are fitted), then as chosen
        self.cascade = self.cascade_option is not False
        # what a fit depends on (its cache key, the saved options): the rate only when the cascade runs,
        # so that without it rankers that differ only in keep share one self-fit
        self.options["error_rate"] = self.error_rate if self.cascade else None
        self.interpolate = check_weight(where, interpolate)
        self.probe_layer = positive_integer(f"{where} ({encoder.model_name!r} has {encoder.num_layers} layers)",
                                            "probe_layer", probe_layer, encoder.num_layers)
        self.k, self.batch_size, self.fit_queries, self.calibration_queries = (
            positive_integer(where, name, value)
            for name, value in (("k", k), ("batch_size", batch_size), ("fit_queries", fit_queries),
                                ("calibration_queries", calibration_queries)))
        # 0: no probe, Û reads the first-stage signals alone
        self.probe_depth = 0 if probe_depth == 0 else positive_integer(where, "probe_depth", probe_depth)
        if self.fit_queries < MIN_FIT_QUERIES:
            raise ValueError(f"{where}: fit_queries={fit_queries!r}; expected at least {MIN_FIT_QUERIES} (the "
                             f"usefulness model is fitted across queries)")
        self.schedule = temperatures(*temperature, positive_integer(where, "steps", steps))
        if not step_size > 0:
            raise ValueError(f"{where}: step_size={step_size!r}; expected a positive number")
        self.encoder, self.step_size, self.seed, self.verbose = encoder, float(step_size), int(seed), verbose
        self.heads = heads if heads is None or isinstance(heads, ExitHeads) else ExitHeads.load(heads, encoder)
        if self.heads is not None:
            self.heads.check(encoder)
        self.collection = None if collection is None else str(collection)
        self._self_fit = SelfFit("diffusion", diffusion_artifact.save_state,
                                 lambda folder: diffusion_artifact.load_state(folder, self.space))
        self._self_calibration = SelfFit("diffusion-costs", diffusion_artifact.save_cost_model,
                                         diffusion_artifact.load_cost_model)
        self._encoders = {encoder.precision: encoder}
        self._rankers = {}
        self.usefulness, self.layers = None, None
        self.cascade_heads, self.cascade_work = {}, None   # fitted with Û when the cascade is on
        self.variants = {}   # cascade on/off -> its fitted Û, layers and cascade work (both ways for "auto")
        self.solved_cascade = None   # "auto": whether the cascade runs, chosen on the first call
        self.cost_model = cost_model
        self.solved_u = None   # u solved for keep on the first call (when weights leave u None)

    def __repr__(self):
        return (f"DiffusionReRanker({self.encoder!r}, weights={self.weights}, keep={self.keep}, {self.space!r}, "
                f"fitted={self.usefulness is not None})")

    # ----- configuration
    @property
    def usefulness(self):
        """The fitted usefulness model Û (None until :meth:`fit` or the first call)."""
        return self._usefulness

    @usefulness.setter
    def usefulness(self, usefulness):
        if usefulness is not None and usefulness.info.get("encoder") != fitted_for(self.encoder):
            raise ValueError(f"DiffusionReRanker: the usefulness model was fitted for "
                             f"{usefulness.info.get('encoder', 'an unknown encoder')}, not for this ranker's "
                             f"{fitted_for(self.encoder)}; fit one for it with .fit(candidates), or leave it unset: "
                             f"the ranker fits one by itself on its first call")
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

    @property
    def u(self):
        """The usefulness weight the ranker draws with: the weights' u, else the one solved for ``keep``
        (``solved_u``), else None (not solved yet)."""
        return self.weights[2] if self.weights[2] is not None else self.solved_u

    def cost_stage(self, precision: str) -> str:
        """The cost model's stage name for this encoder's early-exit re-ranking at ``precision``."""
        return f"{self.encoder.stage} {model_label(self.encoder)} {precision} early-exit"

    def save(self, path):
        """Save the fitted ranker as one artifact folder (PyTerrier's layout: ``pt_meta.json`` beside the
        models) and return its path; :meth:`load` reads it back."""
        return diffusion_artifact.save(self, path)

    @classmethod
    def load(cls, path, encoder, **options) -> "DiffusionReRanker":
        """A ranker saved by :meth:`save`, for the ``encoder`` it was fitted with (another encoder, or
        another package version, is refused); ``options`` such as ``weights=`` override the saved ones."""
        return diffusion_artifact.load(cls, path, encoder, **options)

    def with_weights(self, weights=None, keep=None) -> "DiffusionReRanker":
        """The same fitted re-ranker (models shared) under other ``weights`` (a, c, u; u=None: solved for
        ``keep``) and/or another ``keep``; what is not given stays (u and, for ``cascade="auto"``, the
        cascade are chosen again on its first call)."""
        other = copy.copy(self)
        other.weights = self.weights if weights is None else _check_weights(weights)
        other.keep = self.keep if keep is None else unit_interval("DiffusionReRanker", "keep", keep)
        other.options = {**self.options, "weights": other.weights, "keep": other.keep}
        other.solved_u = other.solved_cascade = None
        return other

    def encoder_at(self, precision: str):
        """The encoder at ``precision`` (loaded once)."""
        if precision not in self._encoders:
            self._encoders[precision] = self.encoder.at_precision(precision)
        return self._encoders[precision]

    def early_exit(self, precision: str) -> EarlyExitReRanker:
        """The early-exit re-ranker that runs budgets at ``precision`` (thresholds per query; the
        per-document cascade when it is on and there are heads at ``precision``)."""
        heads = self.heads_at(precision)
        key = (precision, None if heads is None else id(heads), self.cascade)
        if key not in self._rankers:
            self._rankers[key] = EarlyExitReRanker(
                self.encoder_at(precision), k=self.k, agreement=1.0, cascade=self.cascade and heads is not None,
                heads=heads, error_rate=self.error_rate, batch_size=self.batch_size, interpolate=self.interpolate)
        return self._rankers[key]

    def heads_at(self, precision: str):
        """The exit heads at ``precision`` (they read that precision's states): the ``heads`` given if
        fitted at it, else those fitted with Û for the cascade, else None (the model's own head on
        each layer)."""
        if self.heads is not None and self.heads.precision == precision:
            return self.heads
        return self.cascade_heads.get(precision)

    def margins(self, precision: str):
        """The cascade's margin per layer at ``precision`` (see :meth:`ExitHeads.margins`), or None
        when the cascade does not run there (off, or no heads)."""
        heads = self.heads_at(precision)
        if not self.cascade or heads is None:
            return None
        return heads.margins(range(1, self.encoder.num_layers + 1), self.k, self.error_rate)

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

    def signals(self, ranked: pd.DataFrame) -> np.ndarray:
        """The query signals Û reads (:data:`~pyterrier_gaia.rankers.query_signals.SIGNALS`), a row per query
        of ``ranked`` (first-stage order, as :meth:`in_first_stage_order` gives it), in qid order."""
        first = self.space.precisions[0]
        scorer = LayerScorer(self.encoder_at(first), self.heads_at(first))
        return query_signals(scorer, ranked, self.k, self.probe_depth, self.probe_layer, self.batch_size)

    # ----- fitting the usefulness model
    def fit(self, candidates: pd.DataFrame, qrels: pd.DataFrame = None, folds: int = 4) -> "DiffusionReRanker":
        """Fit the usefulness model Û on ``candidates`` (first-stage results of training queries, of
        pseudo-queries, or of a first call: :meth:`transform` fits itself this way when unfitted).

        Every precision scores each query's top ``depths[1]`` candidates at every layer once; every
        budget of :meth:`BudgetSpace.grid` is then replayed exactly from those scores. Û's target is
        the nDCG@k of the budget's ranking with the full budget's scores as graded pseudo-labels
        (:func:`pseudo_qrels`; no judgments), or with ``qrels`` when given. Out-of-fold predictions
        over ``folds`` groups of whole queries give ``usefulness.info``'s held-out R² over every
        (query, budget), and ``r2_across_queries``: across queries at one fixed budget
        (``r2_budget``), which only signals that separate queries can raise above 0. Also fits
        ``layers``, the mean fraction of layers run at each threshold. With the cascade (``cascade=True``),
        the same run first fits each precision's exit heads (unless ``heads`` serve it), the replay
        runs the cascade, so Û sees what it loses, and ``cascade_work`` is fitted: the share of its
        candidates' layers a budget runs. Needs at least :data:`MIN_FIT_QUERIES` queries with at least
        :data:`MIN_FIT_CANDIDATES` candidates each. Returns ``self``."""
        self._check(list(candidates.columns))
        _check_qrels(qrels)
        folds = positive_integer("DiffusionReRanker.fit", "folds", folds)
        ranked = self._fit_sample(self.in_first_stage_order(candidates), "DiffusionReRanker.fit")
        self.cascade_heads, self.variants, self.solved_cascade = {}, {}, None
        self.cascade = self.cascade_option is not False     # "auto" fits the heads too
        scores = {p: self.layer_scores(p, ranked) for p in self.space.precisions}
        signals = self.signals(ranked)
        grid = self.space.grid()
        against = "qrels" if qrels is not None else "the full budget's scores"
        for cascade in self._cascade_ways():
            self.cascade = cascade
            table, pseudo = self.replay(ranked, scores, grid)
            target = ndcg(list(zip(table["qid"], table["ranking"])), qrels if qrels is not None else pseudo, self.k)
            self.fit_usefulness(signals, table, grid, target, folds, f"nDCG@{self.k} against {against}"
                                + (" (with the cascade)" if cascade else ""))
            self.variants[cascade] = self._variant()
        return self

    def _cascade_ways(self):
        """The ways a fit replays budgets: with the cascade and without for "auto", else the one asked for."""
        return (True, False) if self.cascade_option == "auto" else (self.cascade_option,)

    def _variant(self) -> dict:
        return {"usefulness": self.usefulness, "layers": self.layers, "cascade_work": self.cascade_work}

    def use_variant(self, cascade: bool) -> None:
        """Run with the cascade on or off (``cascade``), with what was fitted for that way."""
        fitted = self.variants[cascade]
        self.cascade = cascade
        self.usefulness, self.layers, self.cascade_work = (fitted[name] for name in ("usefulness", "layers",
                                                                                      "cascade_work"))

    def fit_usefulness(self, signals: np.ndarray, table: pd.DataFrame, grid, target, folds: int = 4,
                       described: str = "") -> np.ndarray:
        """Fit Û and the layer fractions on replayed budgets (``table`` and ``grid`` as :meth:`replay` gives
        them, ``signals`` as :meth:`signals`) to ``target`` (one value per row of ``table``; ``described``
        says what it is in ``usefulness.info``). Û reads the query signals only if that predicts the
        target better for queries it was not fitted on (out of fold) than one curve over budgets for
        every query does (``info["reads_signals"]``; both held-out R² in ``info``): signals that do not
        separate queries would only scatter their budgets around the one that keeps ``keep``. Returns
        Û's out-of-fold predictions of ``target``, each from a model fitted on the other folds' queries
        (``folds`` groups of whole queries)."""
        target = np.asarray(target, dtype=float)
        self.layers = LayerFraction(table.groupby("agreement")["fraction"].mean().to_dict(), self.space)
        strictest = table[table["agreement"] == table["agreement"].max()]
        work = strictest.groupby(["precision", "depth"])[["work", "run"]].sum()
        self.cascade_work = CascadeWork({p: (rows["work"] / rows["run"]).droplevel(0).to_dict()
                                         for p, rows in work.groupby(level=0)}, self.space)
        queries = table["query"].to_numpy()
        x = np.array([self.space.point(budget) for budget in grid])[np.arange(len(table)) % len(grid)]
        count = int(queries.max()) + 1
        folds = min(folds, count)
        # with the query signals, and without them (one curve over budgets for every query): the one
        # whose out-of-fold predictions err less is fitted
        rows = {True: signals[queries], False: np.zeros(signals[queries].shape)}
        held = {reads: Usefulness.out_of_fold(rows[reads], x, target, self.layers, queries, folds, self.seed)
                for reads in rows}
        reads = bool(np.mean((held[True] - target) ** 2) < np.mean((held[False] - target) ** 2))
        usefulness, predicted = Usefulness.fit(rows[reads], x, target, self.layers), held[reads]
        if not reads:
            usefulness.weights[1:] = 0.0      # fitted on zeros they are 0 up to rounding: exactly, then
        fixed = grid.index(self.reference_budget(grid))
        at_fixed = np.arange(len(table)) % len(grid) == fixed
        usefulness.info.update(
            queries=count, folds=folds, encoder=fitted_for(self.encoder), target=described,
            reads_signals=reads, r2_held_out=r2(target, predicted),
            r2_held_out_with_signals=r2(target, held[True]), r2_held_out_without_signals=r2(target, held[False]),
            r2_budget=repr(grid[fixed]), r2_across_queries=r2(target[at_fixed], predicted[at_fixed]),
            target_spread_across_queries=float(target[at_fixed].std()))
        self.usefulness = usefulness
        return predicted

    def replay(self, ranked: pd.DataFrame, layer_scores: dict, grid) -> tuple:
        """Every budget of ``grid`` replayed exactly on every query of ``ranked`` (first-stage order, as
        :meth:`in_first_stage_order` gives it) from ``layer_scores`` (precision -> :meth:`layer_scores`).

        Returns a table with one row per (query, budget), the budgets of ``grid`` in order within each
        query: the query's ``query`` code (0, 1, ... in qid order) and ``qid``, the budget's ``depth``,
        ``precision`` and ``agreement``, the ``fraction`` of layers its query runs (its exit layer over
        all), the candidates it ``run`` s and their layer ``work`` in candidates' worth (layers run over
        all layers, summed: below ``run`` x ``fraction`` where the cascade drops some), and its
        ``ranking`` (docnos, best first); and the pseudo-judgments of every query from its full budget
        at full precision, every layer run (:func:`pseudo_qrels`)."""
        rows, pseudo = [], []
        first_scores, qids, docnos = ranked["_first"].to_numpy(), ranked["qid"].to_numpy(), ranked["docno"].to_numpy()
        margins = {p: self.margins(p) for p in self.space.precisions}
        layers = self.encoder.num_layers
        for code, members in ranked.groupby(pd.factorize(ranked["qid"])[0], sort=True).indices.items():
            first, qid, docs = first_scores[members], qids[members[0]], docnos[members]
            *_, full, _ = _replay(first, layer_scores[self.space.precisions[0]][members], len(members), 2.0, self.k,
                                  self.interpolate)
            pseudo.append(pseudo_qrels(qid, docs, full))
            for budget in grid:
                run = min(budget.depth, len(members))
                order, exit_index, _, doc_layers = _replay(first, layer_scores[budget.precision][members], run,
                                                           budget.agreement, self.k, self.interpolate,
                                                           margins[budget.precision])
                rows.append((code, qid, budget.depth, budget.precision, budget.agreement,
                             (exit_index + 1) / layers, run, doc_layers.sum() / layers, docs[order]))
        table = pd.DataFrame(rows, columns=["query", "qid", "depth", "precision", "agreement", "fraction", "run",
                                            "work", "ranking"])
        return table, pd.concat(pseudo, ignore_index=True)

    def reference_budget(self, grid) -> Budget:
        """The fixed budget ``usefulness.info["r2_across_queries"]`` is measured at: of the grid's
        budgets, the middle-but-one depth (25 of 10..100) at the first precision, never exiting early."""
        depths = sorted({b.depth for b in grid})
        return Budget(depths[(len(depths) - 1) // 2], self.space.precisions[0], max(b.agreement for b in grid))

    def _fit_sample(self, ranked: pd.DataFrame, where: str, limit: int = None) -> pd.DataFrame:
        """The queries of ``ranked`` to fit on (up to ``limit``, drawn with the seed), each cut to its top
        ``depths[1]``; a ValueError saying what is needed when too few queries have enough candidates."""
        ranked = ranked[ranked["position"] < self.space.depths[1]]
        sizes = ranked.groupby("qid", sort=True).size()
        usable = sizes.index[sizes >= MIN_FIT_CANDIDATES]
        if len(usable) < MIN_FIT_QUERIES:
            raise ValueError(
                f"{where}: fitting the usefulness model needs the first-stage candidates of at least "
                f"{MIN_FIT_QUERIES} queries with at least {MIN_FIT_CANDIDATES} candidates each; got {len(usable)} "
                f"such queries (of {len(sizes)}). Give its first call a batch of queries (e.g. "
                f"(bm25 % 100 >> ranker)(topics) with {MIN_FIT_QUERIES} or more topics), fit it on such a batch "
                f"with .fit(candidates) (pseudo-queries will do), or load a fitted ranker with "
                f"DiffusionReRanker.load(path, encoder)")
        if limit is not None and len(usable) > limit:
            usable = np.random.default_rng(self.seed).choice(usable, size=limit, replace=False)
        return ranked[ranked["qid"].isin(set(usable))].reset_index(drop=True)

    def layer_scores(self, precision: str, ranked: pd.DataFrame) -> np.ndarray:
        """Every candidate's score estimate after every layer at ``precision`` (rows of ``ranked`` x layers),
        as the re-ranking at ``precision`` sees them: through the exit heads at ``precision``
        (:meth:`heads_at`), else the model's own head on each layer. With the cascade on and no heads
        at ``precision`` yet, they are fitted first on this very run (``ExitHeads.from_outputs``;
        when :data:`MIN_FIT_QUERIES` of its queries have more than k candidates, else the cascade has
        nothing to calibrate on), and the estimates are their cross-fitted ones: each from heads
        fitted without its query."""
        encoder = self.encoder_at(precision)
        sizes = ranked.groupby("qid").size()
        fitting = self.cascade and self.heads_at(precision) is None and (sizes > self.k).sum() >= MIN_FIT_QUERIES
        scorer = LayerScorer(encoder, None if fitting else self.heads_at(precision))
        data = layer_outputs(scorer, ranked, self.batch_size, self.verbose)
        if fitting:
            heads = ExitHeads.from_outputs(encoder, [(data, ranked["qid"].to_numpy())],
                                           self.collection or "the diffusion ranker's fit",
                                           folds=min(HEAD_FOLDS, len(sizes)), seed=self.seed,
                                           info={"source": "the diffusion ranker's fit sample"})
            self.cascade_heads[precision] = heads
            held = heads.held["estimates"]
            return np.stack([held[layer] for layer in range(1, encoder.num_layers)] + [heads.held["final"]], axis=1)
        return np.stack([encoder.pair_scores(scorer.outputs(layer, data["own"][layer], data["first_stage"]),
                                             data["inputs"])
                         for layer in range(1, encoder.num_layers + 1)], axis=1)

    # ----- drawing budgets
    def potential(self, ranked_top: pd.DataFrame) -> GreenPotential:
        """The green potential of each query of ``ranked_top`` (its top candidates, first-stage order), at the
        ranker's :attr:`u` (the smallest of :data:`U_CHOICES` while u is still to be solved for ``keep``)."""
        return self._potential(self.signals(ranked_top), self._query_costs(ranked_top))

    def _potential(self, signals: np.ndarray, query_costs: QueryCosts) -> GreenPotential:
        """:meth:`potential` from the queries' ``signals`` and ``query_costs`` (the same whether the cascade runs)."""
        self._require_fitted()
        terms = CostTerms(self.cost_model, [self.cost_stage(p) for p in self.space.precisions], self.space,
                          self.encoder, [self.encoder_at(p).weight_bytes for p in self.space.precisions],
                          self.batch_size, self.layers, self.cascade_work if self.cascade else None)
        a, c, _ = self.weights
        return GreenPotential((a, c, U_CHOICES[0] if self.u is None else self.u), self.usefulness, terms,
                              signals, query_costs)

    def draw(self, potential: GreenPotential, qids) -> np.ndarray:
        """Langevin draws (queries x 3 points of the unit cube), from the full budget, with a step of
        ``step_size`` shrunk in proportion to the potential's total weight above :data:`FULL_STEP_WEIGHT`."""
        start = np.tile(self.space.point(self.space.full), (len(qids), 1))
        noise = query_noise(self.seed, qids, len(self.schedule), 3)
        report(langevin_steps=len(self.schedule) * len(qids))
        step = self.step_size * min(1.0, FULL_STEP_WEIGHT / (potential.a + potential.c + potential.u))
        return langevin(potential.gradient, start, step, self.schedule, noise)

    def _query_costs(self, ranked_top: pd.DataFrame) -> QueryCosts:
        encoder = self.encoder
        lengths = encoder.input_tokens(ranked_top["query"], ranked_top["text"])
        groups = list(ranked_top.groupby(pd.factorize(ranked_top["qid"])[0], sort=True).indices.values())
        query_lengths = encoder.query_tokens([ranked_top["query"].iloc[rows[0]] for rows in groups])
        return QueryCosts.of(encoder, [lengths[rows] for rows in groups], query_lengths)

    def _require_fitted(self):
        if self.usefulness is None or self.cost_model is None:
            raise ValueError("DiffusionReRanker.potential: the ranker is not fitted yet; call it on first-stage "
                             "candidates once (it fits itself), or call .fit_on_first_use(candidates)")

    # ----- re-ranking
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._check(list(inp.columns))
        columns = self.transform_outputs(list(inp.columns))
        if len(inp) == 0:
            return pd.DataFrame({c: pd.Series(dtype=inp[c].dtype if c in inp else "float64") for c in columns})
        ranked = self.in_first_stage_order(inp)
        available = ranked.groupby("qid", sort=True).size()
        if not self._fitted() and not self._enough_to_fit(ranked):
            if not in_startup_call():     # a warm-up of one topic is expected to be too small
                warnings.warn(f"DiffusionReRanker: {len(available)} queries are too few to fit on (it needs "
                              f"{MIN_FIT_QUERIES} with {MIN_FIT_CANDIDATES} candidates or more); re-ranked them at "
                              f"the full budget; it fits itself on its first call with enough (or call .fit, or "
                              f".load a fitted ranker)", RuntimeWarning, stacklevel=2)
            full = self.space.full
            budgets = {qid: Budget(min(full.depth, int(n)), full.precision, full.agreement)
                       for qid, n in available.items()}
            return self._rerank(ranked, budgets, 0, inp["qid"])[columns]
        self.fit_on_first_use(ranked)
        budgets, _ = self._budgets(ranked, available)
        return self._rerank(ranked, budgets, len(self.schedule), inp["qid"])[columns]

    def _fitted(self) -> bool:
        return self.usefulness is not None and self.cost_model is not None

    def _enough_to_fit(self, ranked: pd.DataFrame) -> bool:
        sizes = ranked.groupby("qid").size()
        return int((sizes >= MIN_FIT_CANDIDATES).sum()) >= MIN_FIT_QUERIES

    def fit_on_first_use(self, candidates: pd.DataFrame) -> None:
        """Fit what is missing from ``candidates`` (a call's first-stage results), no judgments needed:
        the usefulness model on up to ``fit_queries`` of its queries (:meth:`fit`), the cost model on
        ``calibration_queries`` metered re-rankings at random budgets (:func:`calibrate_costs`).

        Each is metered as its own one-off ledger record (never in a query's J/q) and cached on disk
        (the gaia cache) and in memory, by model, exit heads, the options it depends on, the package
        version and the host; the usefulness model also by collection (``collection=``, else a
        fingerprint of the documents fitted on). The cost model predicts from operation counts, so a
        ranker of the same model on another collection reuses it."""
        if self._fitted():
            return
        ranked = self.in_first_stage_order(candidates)
        sample = self._fit_sample(ranked, "DiffusionReRanker (fitting itself on its first call)", self.fit_queries)
        common = {"model": fitted_for(self.encoder), "heads": None if self.heads is None else self.heads.key(),
                  "version": __version__, "host": platform.node()}
        if self.usefulness is None:
            key = {**common, "collection": collection_key(self.collection, sample["docno"], sample["text"]),
                   "options": {name: self.options[name] for name in FITTED_OPTIONS + SAMPLING_OPTIONS},
                   "target": PSEUDO_LABELS, "fit": USEFULNESS_FIT, "ways": list(self._cascade_ways())}
            self.use_state(self._self_fit.get(key, lambda: {**self.fit(sample).fitted_state(), "cost_model": None}))
        if self.cost_model is None:
            key = {**common, "options": {name: self.options[name] for name in COST_OPTIONS}}
            self.cost_model = self._self_calibration.get(key, lambda: calibrate_costs(
                self, sample, queries=self.calibration_queries, seed=self.seed))

    def fitted_state(self) -> dict:
        """What the ranker fitted: ``variants`` (cascade on/off -> the ``usefulness``, ``layers`` and
        ``cascade_work`` fitted for that way; both ways for ``cascade="auto"``), the cascade's ``heads``
        (precision -> its exit heads) and ``cost_model``."""
        variants = dict(self.variants)
        if self.usefulness is not None:
            variants[self.cascade] = self._variant()
        return {"variants": variants, "heads": self.cascade_heads, "cost_model": self.cost_model}

    def use_state(self, state: dict) -> None:
        """Take a fitted state (:meth:`fitted_state`; a None cost model leaves the ranker's own), running
        the way ``solved_cascade`` says, else without the cascade if that was fitted."""
        self.variants, self.cascade_heads = dict(state["variants"]), dict(state["heads"])
        way = self.solved_cascade if self.solved_cascade is not None else False
        self.use_variant(way if way in self.variants else next(iter(self.variants)))
        if state["cost_model"] is not None:
            self.cost_model = state["cost_model"]

    def budgets(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """The budget drawn for each query of ``candidates`` (as :meth:`transform` would draw it, without
        re-ranking): one row per qid with its ``depth``, ``precision`` and ``agreement`` threshold, and the
        usefulness weight ``u`` drawn with (solved for ``keep`` unless the ranker's weights fix it) and
        whether the ``cascade`` runs (chosen on the first call for ``cascade="auto"``)."""
        self._check(list(candidates.columns))
        ranked = self.in_first_stage_order(candidates)
        self.fit_on_first_use(ranked)
        drawn, u = self._budgets(ranked, ranked.groupby("qid", sort=True).size())
        return pd.DataFrame([{"qid": qid, "depth": b.depth, "precision": b.precision, "agreement": b.agreement,
                              "u": u, "cascade": self.cascade} for qid, b in drawn.items()])

    def _budgets(self, ranked: pd.DataFrame, available: pd.Series):
        """(qid -> the rounded Langevin draw for that query, its depth capped by its ``available``
        candidates; the u drawn with). u: :attr:`u`, else solved now for ``keep`` over these queries and
        kept as ``solved_u``; with ``cascade="auto"``, the cascade is chosen now too (:meth:`_choose_cascade`)."""
        top = ranked[ranked["position"] < self.space.depths[1]].reset_index(drop=True)
        if self.cascade_option == "auto" and self.solved_cascade is None:
            draws = self._choose_cascade(top, available)
        else:
            draws = self._draws(self.potential(top), available)
        if self.weights[2] is None:
            self.solved_u = draws.u
        return draws.budgets, draws.u

    def _draws(self, potential: GreenPotential, available: pd.Series) -> "_Draws":
        """The rounded draws of the queries of ``available`` (qid order, as ``potential``'s) at :attr:`u`, or,
        while u is to be solved, at the smallest of :data:`U_CHOICES` whose draws keep ``keep`` by Û on average."""
        qids = list(available.index)
        for u in U_CHOICES if self.u is None else (self.u,):
            potential.u = u
            budgets = {qid: self.space.round(point, int(available[qid]))
                       for qid, point in zip(qids, self.draw(potential, qids))}
            points = np.array([self.space.point(budget) for budget in budgets.values()])
            kept = float(potential.usefulness.value(potential.signals, points).mean())
            if self.u is not None or kept >= self.keep:
                break
        return _Draws(budgets, u, potential, points, kept)

    def _choose_cascade(self, top: pd.DataFrame, available: pd.Series) -> "_Draws":
        """``cascade="auto"``: draw both ways and keep (``solved_cascade``) the way whose draws keep ``keep``
        by its Û for the least a·Ê + c·L̂ the cost model predicts (relative to the full budget without
        the cascade, for both), or, when neither way keeps it, the way that keeps more; ties, no cascade."""
        signals, query_costs, drawn = self.signals(top), self._query_costs(top), {}
        for cascade in (False, True):
            self.use_variant(cascade)
            drawn[cascade] = self._draws(self._potential(signals, query_costs), available)
        reference = drawn[False].potential.costs.full_budget(query_costs)
        a, c, _ = self.weights

        def rank(cascade):
            draws = drawn[cascade]
            cost, _ = draws.potential.costs.absolute(draws.points, query_costs)
            seconds, joules = (cost / reference).mean(axis=0)
            keeps = draws.kept >= self.keep
            return (not keeps, a * joules + c * seconds if keeps else -draws.kept)
        self.solved_cascade = min((False, True), key=rank)
        self.use_variant(self.solved_cascade)
        return drawn[self.solved_cascade]

    def _rerank(self, ranked: pd.DataFrame, budgets, steps: int, queries: pd.Series) -> pd.DataFrame:
        """Re-rank each query's top ``depth`` candidates with its budget (drawn in ``steps`` Langevin
        steps); the rest keep their order below. Ranked, the queries in the order of ``queries``."""
        budget_of = ranked["qid"].map(budgets)
        ranked = ranked.assign(depth=[b.depth for b in budget_of], precision=[b.precision for b in budget_of],
                               agreement=[b.agreement for b in budget_of], steps=steps,
                               doc_layers=0, layers=0, reranked=np.nan)
        chosen = ranked["position"] < ranked["depth"]
        for precision in ranked.loc[chosen, "precision"].unique():
            rows = ranked.index[chosen & (ranked["precision"] == precision)]
            out = self.early_exit(precision)(ranked.loc[rows].assign(_row=rows))
            ranked.loc[out["_row"], ["reranked", "doc_layers", "layers"]] = \
                out[["score", "doc_layers", "exit_layer"]].to_numpy()
        ranked["layers"] = ranked.groupby("qid")["layers"].transform("max").astype("int64")
        ranked["doc_layers"] = ranked["doc_layers"].astype("int64")
        score = ranked["reranked"].copy()        # the early-exit re-ranker's output (fused if interpolate)
        floor = score.groupby(ranked["qid"]).transform("min")
        score[~chosen] = floor[~chosen] - 1 - (ranked["position"] - ranked["depth"])[~chosen]
        ranked["score"] = score.astype("float64")
        return in_query_order(pt.model.add_ranks(ranked.drop(columns=["reranked", "_first", "position"])), "rank",
                              queries=queries)


class _Draws(NamedTuple):
    """One call's rounded draws (qid -> budget), the u and potential drawn with, their points and Û's mean."""
    budgets: dict
    u: float
    potential: GreenPotential
    points: np.ndarray
    kept: float


def _check_cascade(cascade):
    """True, False or "auto"; else a ValueError."""
    if isinstance(cascade, (bool, np.bool_)):
        return bool(cascade)
    if isinstance(cascade, str) and cascade == "auto":
        return cascade
    raise ValueError(f"DiffusionReRanker: cascade={cascade!r}; expected True, False or \"auto\" (the ranker "
                     f"chooses per collection, on its first call, the way the cost model predicts cheaper)")


def _check_weights(weights):
    """(a, c, u) as floats, u None (solved for ``keep`` on the first call) or a number; else a ValueError."""
    weights = tuple(weights)
    valid = lambda w: isinstance(w, numbers.Real) and not isinstance(w, bool) and w >= 0  # noqa: E731 (NaN fails)
    if len(weights) != 3 or not (valid(weights[0]) and valid(weights[1])) \
            or not (weights[2] is None or valid(weights[2])) or not any(w is None or w > 0 for w in weights):
        raise ValueError(f"DiffusionReRanker: weights={weights!r}; expected (a, c, u): non-negative weights of "
                         f"energy, latency and usefulness, not all zero (u=None: solved for keep= on the first call)")
    return tuple(None if w is None else float(w) for w in weights)


def _replay(first: np.ndarray, layer_scores: np.ndarray, depth: int, agreement: float, k: int, interpolate,
            margins=None):
    """The ranking (positions in first-stage order), exit layer index, re-ranked scores and layers run
    per candidate (of the top ``depth``) that a budget gives a query, replayed from its candidates'
    scores at every layer as EarlyExitReRanker runs it (the same decisions, :func:`layer_decision`;
    ``margins``: the cascade's per layer, None for no cascade)."""
    scores = layer_scores[:depth]
    layers = scores.shape[1]
    current, doc_layers = np.zeros(depth), np.zeros(depth, dtype=np.int64)
    live, previous, chosen = np.ones(depth, dtype=bool), None, layers - 1
    for index in range(layers):
        current[live], doc_layers[live] = scores[live, index], index + 1
        exits, previous, drop = layer_decision(current, previous, agreement,
                                               None if margins is None else margins[index + 1], k,
                                               index == layers - 1, first[:depth], interpolate)
        if exits:
            chosen = index
            break
        live &= ~drop
    current = query_output(current, first[:depth], interpolate, doc_layers, chosen + 1)
    order = np.argsort(-current, kind="stable")
    return np.concatenate([order, np.arange(depth, len(first))]), chosen, current, doc_layers


def pseudo_qrels(qid, docnos, scores: np.ndarray, grades: int = 100) -> pd.DataFrame:
    """Graded pseudo-judgments of one query from its full budget's ``scores``: a candidate's label is
    its score min-max scaled over the query's candidates, in whole ``grades``-ths. A budget that puts
    another candidate in a document's place loses only the difference of their grades, so nDCG@k
    against these loses what the full ranking's own scores say the swap is worth: near-ties across
    the cut cost almost nothing, and a deep document lifted into the top k is worth what its score
    says, not all of it (grading from the (k+1)-th score up, as this package first did, gave every
    replacement 0 and overstated what shallow budgets lose threefold on Vaswani: docs/diffusion.md)."""
    scores = np.asarray(scores, dtype="float64")
    span = scores.max() - scores.min() if len(scores) else 0.0
    labels = np.ones(len(scores)) if span <= 0 else np.round(grades * (scores - scores.min()) / span)
    return pd.DataFrame({"qid": qid, "docno": docnos, "label": labels.astype(int)})


def _check_qrels(qrels) -> None:
    if qrels is not None:
        missing = [c for c in ("qid", "docno", "label") if c not in qrels.columns]
        if missing:
            raise ValueError(f"DiffusionReRanker.fit: qrels lack column(s) {missing}; expected qid, docno, label")
