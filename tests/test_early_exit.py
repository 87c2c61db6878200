"""EarlyExitReRanker mechanics on tiny random-weight BERTs (4 layers, hidden 32, own WordPiece vocab):
exits, cascade pruning, layer records, operation counts, exit heads' fitting (on a collection, and by
itself on first use), saving and reloading as one artifact, bad input."""
import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting
from pyterrier_gaia.encoders import flops
from pyterrier_gaia.rankers.early_exit import EarlyExitReRanker, layer_decision, query_output
from pyterrier_gaia.rankers.fusion import fuse
from pyterrier_gaia.rankers.exit_heads import (ExitHeads, LayerScorer, config_hash, head_features, in_order,
                                               layer_outputs, model_label)
from tiny_models import tiny_bert

@pytest.fixture(scope="module")
def tiny_cross(tmp_path_factory, words):
    return gaia.CrossEncoder(tiny_bert(tmp_path_factory.mktemp("tiny") / "cross", words, layers=4))


@pytest.fixture(scope="module")
def tiny_bi(tmp_path_factory, words):
    return gaia.BiEncoder(tiny_bert(tmp_path_factory.mktemp("tiny") / "bi", words, layers=4, cross=False))


@pytest.fixture(scope="module")
def candidates(vaswani_index, vaswani):
    """BM25's top 12 for 6 Vaswani topics."""
    return vaswani_index.bm25(num_results=12)(vaswani.get_topics().head(6))


@pytest.fixture(scope="module")
def cross_heads(tiny_cross, vaswani, vaswani_index):
    return ExitHeads.fit(tiny_cross, vaswani.get_corpus_iter(), vaswani_index.bm25(num_results=10), "vaswani",
                         queries=60, depth=10)


def _heads(encoder, exact):
    """Hand-made heads for a tiny cross-encoder: random maps; on their 50 held-out queries of 10 pairs
    each the estimates are the full-depth scores (``exact``: every margin is 0) or reverse their order
    a million times over (margins in the millions)."""
    rng = np.random.default_rng(1)
    # a head reads the [CLS] state and the layer's own logit, plus a bias
    weights = {layer: rng.normal(size=(encoder.hidden_size + 2, 1)) for layer in range(1, encoder.num_layers)}
    final = np.tile(np.arange(10.0), 50)
    held = {"query": np.repeat(np.arange(50), 10), "final": final,
            "estimates": {l: final if exact else -1e6 * final for l in weights}}
    return ExitHeads("cross", model_label(encoder), config_hash(encoder), "toy", encoder.num_layers, weights,
                     held, {})


def test_last_layer_only_is_the_full_depth_reranker(tiny_cross, tiny_bi, candidates):
    for encoder in (tiny_cross, tiny_bi):
        full = encoder.reranker(batch_size=8)(candidates)
        early = EarlyExitReRanker(encoder, exits=[4], cascade=False, batch_size=8)(candidates)
        assert list(early.columns) == list(candidates.columns) + ["exit_layer", "doc_layers"]
        merged = full.merge(early, on=["qid", "docno"], suffixes=("_full", "_early"))
        assert len(merged) == len(candidates)
        np.testing.assert_allclose(merged["score_early"], merged["score_full"], atol=1e-5)
        assert (early["exit_layer"] == 4).all() and (early["doc_layers"] == 4).all()
        for _, ranking in early.groupby("qid"):
            assert ranking["rank"].tolist() == list(range(12)) and ranking["score"].is_monotonic_decreasing


def test_fusion_with_the_first_stage_matches_the_reranker(tiny_cross, candidates):
    fused = tiny_cross.reranker(batch_size=8, interpolate=0.4)(candidates)
    early = EarlyExitReRanker(tiny_cross, exits=[4], cascade=False, batch_size=8, interpolate=0.4)(candidates)
    pd.testing.assert_frame_equal(early[fused.columns], fused, atol=1e-6)
    with pytest.raises(pt.validate.InputValidationError, match="lacks column\\(s\\) \\['score'\\]"):
        EarlyExitReRanker(tiny_cross, cascade=False, interpolate=0.4)(candidates.drop(columns=["score"]))


def test_agreement_zero_stops_every_query_at_the_second_exit_with_half_the_flops(tiny_cross, candidates):
    with counting() as full:
        tiny_cross.reranker(batch_size=8)(candidates)
    with counting() as early:
        out = EarlyExitReRanker(tiny_cross, agreement=0.0, cascade=False, batch_size=8)(candidates)
    assert (out["exit_layer"] == 2).all() and (out["doc_layers"] == 2).all()  # the first exit never stops a query
    # same length-sorted batches as the full-depth pass, 2 of 4 layers each
    assert early.counts["flops"] * 2 == full.counts["flops"]
    assert early.counts["layer_tokens"] * 2 == full.counts["layer_tokens"]
    for name in ("tokens", "forward_passes", "pairs"):
        assert early.counts[name] == full.counts[name]
    assert early.counts["weight_bytes"] == full.counts["weight_bytes"] // 2


def test_cascade_keeps_the_top_k_and_drops_the_rest_at_zero_margin(tiny_cross, candidates):
    k = 3

    def run(exact, **options):
        heads = _heads(tiny_cross, exact)
        return EarlyExitReRanker(tiny_cross, exits=[1, 4], k=k, heads=heads, batch_size=8, **options)(candidates)

    assert _heads(tiny_cross, True).margins([1, 4], k, 0.01) == {1: 0, 4: 0}
    # reversed: the top 3 (9, 8, 7) fall 5e6, 6e6, 7e6 below the 3rd estimate (-2e6); the median is 6e6
    assert _heads(tiny_cross, False).margins([1, 4], k, 0.5) == {1: pytest.approx(6e6), 4: 0}
    with counting() as kept_all:
        loose = run(False)
    with counting() as pruned:
        strict = run(True)
    pd.testing.assert_frame_equal(loose, run(False, cascade=False))  # margins too wide to drop anything
    assert (loose["doc_layers"] == 4).all()
    # zero margin: after layer 1 only each query's top k (by layer 1's estimate) run on
    for _, ranking in strict.groupby("qid"):
        assert (ranking["exit_layer"] == 4).all()
        assert sorted(ranking["doc_layers"]) == [1] * (12 - k) + [4] * k
    assert pruned.counts["flops"] < kept_all.counts["flops"]
    assert pruned.counts["tokens"] == kept_all.counts["tokens"] and pruned.counts["pairs"] == len(candidates)


def test_with_fusion_the_cascade_keeps_what_the_fused_top_k_may_take():
    """A candidate far below the k-th neural estimate but first in the first stage can still reach the
    fused top k: with ``interpolate`` the decision ranks by fused estimates, its margin scaled to them."""
    neural, first = np.array([10.0, 9.0, 8.0, 7.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.0, 100.0])
    _, top, drop = layer_decision(neural, None, np.inf, 1.5, 2, False)
    assert list(top) == [0, 1] and drop.tolist() == [False, False, False, True, True]   # below 9 - 1.5
    # fused at α = 0.5: [.5, .45, .4, .35, .5]; the margin 0.5 x 1.5 / 10 = 0.075 below the 2nd, 0.5
    _, top, drop = layer_decision(neural, None, np.inf, 1.5, 2, False, first, 0.5)
    assert list(top) == [0, 4] and drop.tolist() == [False, False, True, True, False]


def test_output_fuses_the_estimates_then_puts_dropped_candidates_below_the_survivors():
    scores, first = np.array([3.0, 2.0, 1.0, 5.0]), np.array([4.0, 3.0, 2.0, 1.0])
    layers = np.array([4, 4, 4, 1])                      # the last was dropped after layer 1
    plain = query_output(scores, None, None, layers, 4)
    assert plain[:3].tolist() == [3.0, 2.0, 1.0] and plain[3] < 1.0
    fused = query_output(scores, first, 0.5, layers, 4)
    assert fused[:3] == pytest.approx(fuse(0.5, first, scores)[:3]) and fused[3] < fused[:3].min()


def test_margins_bound_the_error_rate_on_held_out_queries_jointly(tiny_cross):
    """One λ for all layers, in units of each layer's spread, from the (n+1)(1-error_rate)-th smallest
    worst shortfall: with n = 150 top-3 documents of 50 held-out queries a rate of 0.01 is reachable
    and 0.005 is not (nothing dropped, with a warning)."""
    heads = _heads(tiny_cross, False)
    rng = np.random.default_rng(0)
    final = heads.held["final"]
    noise = rng.normal(size=final.shape)
    heads.held["estimates"] = {1: final + 4 * noise, 2: final + noise, 3: final + 0.25 * noise}
    margins = heads.margins([1, 2, 3, 4], 3, 0.01)
    assert margins[1] > margins[2] > margins[3] > margins[4] == 0     # wider where the estimates err more
    assert margins[1] / margins[2] == pytest.approx(4, rel=0.25)
    assert margins[2] / margins[3] == pytest.approx(4, rel=0.25)
    kept = 0
    for rows in np.split(np.arange(len(final)), 50):
        top = rows[np.argsort(-final[rows])[:3]]
        kth = {layer: np.sort(heads.held["estimates"][layer][rows])[-3] for layer in (1, 2, 3)}
        kept += sum(all(heads.held["estimates"][l][d] >= kth[l] - margins[l] for l in (1, 2, 3)) for d in top)
    assert kept >= 0.99 * 150                   # on the calibration queries themselves: at most 1 % lost
    with pytest.warns(RuntimeWarning, match=r"150 held-out top-3 documents are too few .*error rate at 0.005 "
                                            r"\(it needs at least 199\); the cascade drops nothing"):
        assert heads.margins([1, 4], 3, 0.005) == {1: np.inf, 4: 0}


def test_cascade_flops_follow_the_rows_and_positions_that_ran(tiny_cross):
    inp = pd.DataFrame({"qid": "1", "query": "radio", "docno": ["a", "b", "c"],
                        "text": ["radio waves in the ionosphere", "a short text", "the ionosphere"]})
    heads = _heads(tiny_cross, True)
    with counting() as scope:
        out = EarlyExitReRanker(tiny_cross, exits=[1, 4], k=1, heads=heads, batch_size=8, error_rate=0.05)(inp)
    survivor = out.loc[out["doc_layers"] == 4, "text"].item()
    assert sorted(out["doc_layers"]) == [1, 1, 4]
    whole = tiny_cross.tokenize(["radio"] * 3, inp["text"])
    alone = tiny_cross.tokenize(["radio"], [survivor])  # the cut batch keeps only the survivor's positions
    expected = flops.forward_flops(3, whole["input_ids"].shape[1], 1, 32, 64) + \
        flops.forward_flops(1, alone["input_ids"].shape[1], 3, 32, 64)
    assert scope.counts["flops"] == expected
    assert scope.counts["forward_passes"] == 1


def test_layer_outputs_holds_the_model_s_own_outputs_or_the_heads_inputs(tiny_cross, tiny_bi, candidates):
    pairs = candidates.head(12)
    for encoder, heads in ((tiny_cross, None), (tiny_bi, None), (tiny_cross, _heads(tiny_cross, True))):
        data = layer_outputs(LayerScorer(encoder, heads), pairs, 8, False)
        run = encoder.layer_run(data["inputs"], 8)
        for layer in range(1, encoder.num_layers + 1):
            run.advance(layer, np.ones(len(data["inputs"]), dtype=bool))
            own = in_order(*run.features(encoder.layer_output, layer))
            np.testing.assert_allclose(data["states"][layer], in_order(*run.features(head_features(encoder), layer)),
                                       atol=1e-5)
            if heads is not None and layer < encoder.num_layers:     # an exit head reads the whole features
                assert data["own"][layer] is data["states"][layer]
            else:
                np.testing.assert_allclose(data["own"][layer], own, atol=1e-5)
        np.testing.assert_allclose(data["target"], own, atol=1e-5)


def test_bi_encoder_encodes_each_shared_text_once(tiny_bi):
    inp = pd.DataFrame({"qid": ["1", "1", "2", "2"], "query": ["radio", "radio", "waves", "waves"],
                        "docno": ["a", "b", "a", "b"], "text": ["radio waves", "ionosphere layers"] * 2})
    with counting() as scope:
        out = EarlyExitReRanker(tiny_bi, exits=[4], cascade=False)(inp)
    docs = tiny_bi.tokenize(["radio waves", "ionosphere layers"])
    queries = tiny_bi.tokenize(["radio", "waves"])
    assert scope.counts["layer_tokens"] == 4 * (docs["input_ids"].numel() + queries["input_ids"].numel())
    assert len(out) == 4 and set(out["exit_layer"]) == {4}
    with counting() as apart:  # one query per group: each group encodes both texts again
        alone = EarlyExitReRanker(tiny_bi, exits=[4], cascade=False, group_size=1)(inp)
    pd.testing.assert_frame_equal(alone, out, atol=1e-6)
    assert apart.counts["forward_passes"] == 2 * scope.counts["forward_passes"]


def test_fitted_heads_save_reload_and_refuse_other_models(tiny_cross, cross_heads, candidates, tmp_path, words):
    info = cross_heads.info
    assert 50 <= info["queries"] <= 60 and info["folds"] == 2
    assert [row["layer"] for row in info["held_out"]] == [1, 2, 3]
    # [CLS] state (32) and the layer's own logit, then the four first-stage features, then the bias
    assert sorted(cross_heads.weights) == [1, 2, 3] and cross_heads.weights[1].shape == (32 + 1 + 4 + 1, 1)
    assert cross_heads.first_stage
    assert all(len(cross_heads.held["estimates"][layer]) == info["fit_pairs"] for layer in (1, 2, 3))
    loose, strict = cross_heads.margins([1, 2, 4], 3, 0.5), cross_heads.margins([1, 2, 4], 3, 0.05)
    assert all(0 <= loose[layer] <= strict[layer] < np.inf for layer in (1, 2)) and loose[4] == strict[4] == 0
    with pytest.raises(ValueError, match="no held-out query has more than k=10 candidates"):
        EarlyExitReRanker(tiny_cross, k=10, heads=cross_heads)(candidates)
    path = cross_heads.save(tmp_path)
    assert path.name == f"{cross_heads.key()}.npz" and "vaswani" in path.name
    again = ExitHeads.load(tmp_path, tiny_cross, "vaswani")
    for layer in (1, 2, 3):
        np.testing.assert_array_equal(again.weights[layer], cross_heads.weights[layer])
    assert again.info == info and again.margins([1, 2, 3, 4], 3, 0.1) == cross_heads.margins([1, 2, 3, 4], 3, 0.1)
    first = EarlyExitReRanker(tiny_cross, k=3, heads=cross_heads, batch_size=8)(candidates)
    second = EarlyExitReRanker(tiny_cross, k=3, heads=path, batch_size=8)(candidates)
    pd.testing.assert_frame_equal(first, second)
    with pytest.raises(FileNotFoundError, match="no heads for model .* on collection 'cranfield'.*saved there"):
        ExitHeads.load(tmp_path, tiny_cross, "cranfield")
    other = gaia.CrossEncoder(tiny_bert(tmp_path / "three", words, layers=3))
    with pytest.raises(ValueError, match="4 layers\\) cannot serve cross-encoder .*3 layers"):
        EarlyExitReRanker(other, heads=path)
    with pytest.raises(ValueError, match="holds heads for collection 'vaswani', not 'cacm'"):
        ExitHeads.load(path, tiny_cross, "cacm")
    # heads read one precision's states: fp32 heads do not serve the int8 model (nor are they found for it)
    int8 = tiny_cross.at_precision("int8")
    assert again.precision == "fp32"
    with pytest.raises(ValueError, match="fp32 states cannot serve it at int8"):
        EarlyExitReRanker(int8, heads=path)
    with pytest.raises(FileNotFoundError, match="int8\\) on collection 'vaswani'"):
        ExitHeads.load(tmp_path, int8, "vaswani")


def test_fit_through_the_ranker_and_its_pseudo_queries(tiny_cross, vaswani, vaswani_index):
    from pyterrier_gaia.rankers.exit_heads import pseudo_queries

    topics = pseudo_queries(vaswani.get_corpus_iter(), 5, (4, 6), np.random.default_rng(0))
    assert topics["qid"].tolist() == [f"pq{i}" for i in range(5)]
    assert all(4 <= len(q.split()) <= 6 for q in topics["query"])
    ranker = EarlyExitReRanker(tiny_cross).fit(vaswani.get_corpus_iter(), vaswani_index.bm25(num_results=5),
                                               "vaswani", queries=20, depth=5)
    assert ranker.heads.collection == "vaswani" and ranker.heads.info["depth"] == 5
    with pytest.raises(ValueError, match="retriever's output has no 'text' column"):
        ExitHeads.fit(tiny_cross, vaswani.get_corpus_iter(), vaswani_index.bm25(num_results=5, text=False),
                      "vaswani", queries=10)


def test_bad_input_gets_clear_errors(tiny_cross, candidates):
    with pytest.raises(ValueError, match="has 4 layers, so exits must be layer numbers from 1 to 4"):
        EarlyExitReRanker(tiny_cross, exits=[2, 6])
    with pytest.raises(ValueError, match="agreement=1.5; expected a value between 0 and 1"):
        EarlyExitReRanker(tiny_cross, agreement=1.5)
    with pytest.raises(ValueError, match="k=0; expected a positive integer"):
        EarlyExitReRanker(tiny_cross, k=0)
    with pytest.raises(ValueError, match="interpolate='0.3'; expected a weight between 0 and 1"):
        EarlyExitReRanker(tiny_cross, interpolate="0.3")
    with pytest.raises(ValueError, match="batch_size=None; expected a positive integer"):
        EarlyExitReRanker(tiny_cross, batch_size=None)
    with pytest.raises(ValueError, match=r"column 'text' has no usable value on 1 row\(s\) \(qid '1', docno"):
        EarlyExitReRanker(tiny_cross, cascade=False)(candidates.assign(text=candidates["text"].where(
            candidates.index != 0, None)))
    with pytest.raises(ValueError, match=r"column 'score' .*qid '1'"):
        EarlyExitReRanker(tiny_cross, cascade=False, interpolate=0.5)(candidates.assign(score=np.nan))
    with pytest.raises(ValueError, match=r"error_rate=2; expected a value between 0 and 1"):
        EarlyExitReRanker(tiny_cross, error_rate=2)
    with pytest.raises(pt.validate.InputValidationError, match="lacks column\\(s\\) \\['text'\\]"):
        EarlyExitReRanker(tiny_cross, cascade=False)(candidates.drop(columns=["text"]))


def test_empty_in_empty_out(tiny_cross, candidates):
    for ranker in (EarlyExitReRanker(tiny_cross, cascade=False), EarlyExitReRanker(tiny_cross)):
        out = ranker(candidates.head(0))
        assert len(out) == 0 and {"score", "rank", "exit_layer", "doc_layers"} <= set(out.columns)
    assert ranker.heads is None                                 # nothing to fit on: nothing fitted


# ----- no set-up calls: heads fitted on first use, one artifact, bad input
@pytest.fixture(scope="module")
def gaia_cache(tmp_path_factory):
    """A gaia cache of this module's own: the first test below fits heads into it, the next ones load them."""
    folder = tmp_path_factory.mktemp("gaia-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAIA_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def traffic(vaswani_index, vaswani):
    """BM25's top 12 for 16 Vaswani topics: the self-fit takes the first 12, the cascade the other 4."""
    return vaswani_index.bm25(num_results=12)(vaswani.get_topics().head(16))


def test_defaults_fit_heads_on_the_first_queries_metered_apart_and_cached(tiny_cross, traffic, gaia_cache):
    stage = gaia.Metered(EarlyExitReRanker(tiny_cross, batch_size=8), name="ee", sensors="model")
    out = stage(traffic)
    fit, call = stage.ledger.records
    assert (fit["stage"], fit["startup"], call["startup"]) == ("ee / fit exit heads", True, False)
    assert call["counts"]["flops"] > 0 and not fit["counts"].get("flops")   # the fit reuses the call's states
    heads = stage.stage.heads
    assert heads.info["source"] == "first queries at full depth" and heads.info["queries"] == 12
    assert heads.collection.startswith("documents:")               # no name given: the documents' fingerprint
    assert [p.name for p in (gaia_cache / "exit heads").iterdir()] and len(out) == len(traffic)
    fitting = out["qid"].isin(traffic["qid"].unique()[:12])
    assert (out.loc[fitting, "doc_layers"] == 4).all()             # the self-fit's queries: exact, full depth
    full = tiny_cross.reranker(batch_size=8)(traffic).merge(out[fitting], on=["qid", "docno"], suffixes=("", "_ee"))
    np.testing.assert_allclose(full["score_ee"], full["score"], atol=1e-5)
    cascaded = out[~fitting]
    assert cascaded.groupby("qid")["doc_layers"].max().eq(4).all() and (cascaded["doc_layers"] < 4).any()
    again = gaia.Metered(EarlyExitReRanker(tiny_cross, batch_size=8), name="ee", sensors="model")
    second = again(traffic)          # a new instance loads the cached heads and runs the cascade throughout
    assert [r["stage"] for r in again.ledger.records] == ["ee / load exit heads", "ee"]
    assert (second.loc[second["qid"].isin(cascaded["qid"]), "doc_layers"].to_numpy() ==
            cascaded["doc_layers"].to_numpy()).all()
    int8 = gaia.Metered(EarlyExitReRanker(tiny_cross.at_precision("int8"), batch_size=8), name="ee", sensors="model")
    int8(traffic)                    # the int8 model fits heads of its own states, not the fp32 ones cached
    assert int8.ledger.records[0]["stage"] == "ee / fit exit heads" and int8.stage.heads.precision == "int8"


def test_a_fitted_ranker_saves_and_loads_as_one_artifact(tiny_cross, traffic, gaia_cache, tmp_path, words):
    ranker = EarlyExitReRanker(tiny_cross, k=3, batch_size=8, error_rate=0.05)
    with pytest.raises(ValueError, match="nothing fitted to save yet; run the ranker once"):
        ranker.save(tmp_path / "artifact")
    ranker(traffic)
    out = ranker(traffic)                   # fitted: the cascade throughout
    path = ranker.save(tmp_path / "artifact")
    meta = pt._artifact._load_metadata(str(path))
    assert (meta["type"], meta["format"], meta["package_hint"]) == ("reranker", "gaia-early-exit", "pyterrier-gaia")
    loaded = EarlyExitReRanker.load(path, tiny_cross)
    assert (loaded.k, loaded.error_rate) == (3, 0.05)
    pd.testing.assert_frame_equal(loaded(traffic), out)
    generic = pt.Artifact.load(str(path))   # PyTerrier's loader, through the package's entry point
    assert isinstance(generic, EarlyExitReRanker) and generic.encoder.model_name == tiny_cross.model_name
    pd.testing.assert_frame_equal(generic(traffic), out)
    other = gaia.CrossEncoder(tiny_bert(tmp_path / "three", words, layers=3))
    with pytest.raises(ValueError, match=r"EarlyExitReRanker.load: .*cannot serve cross-encoder .*3 layers.*fit heads"):
        EarlyExitReRanker.load(path, other)
    meta["package_version"] = "0.0.1"
    (path / "pt_meta.json").write_text(__import__("json").dumps(meta))
    with pytest.raises(ValueError, match=r"saved by pyterrier-gaia 0.0.1, and this is .*EarlyExitReRanker fit itself"):
        EarlyExitReRanker.load(path, tiny_cross)
    with pytest.raises(FileNotFoundError, match="is not a saved EarlyExitReRanker"):
        EarlyExitReRanker.load(tmp_path, tiny_cross)


def test_self_fit_goes_on_across_calls_and_bad_input(tiny_cross, traffic, tmp_path, words, monkeypatch):
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path / "cache"))   # nothing cached: this ranker fits itself
    qids = traffic["qid"].unique()
    ranker = EarlyExitReRanker(tiny_cross, batch_size=8)
    first = ranker(traffic[traffic["qid"].isin(qids[:2])])         # 2 queries: exact, and kept for the fit
    assert (first["doc_layers"] == 4).all() and ranker.heads is None
    ranker(traffic[traffic["qid"].isin(qids[:2])])                 # the same 2 again (a warm-up's): not counted twice
    assert ranker.heads is None and ranker._kept_queries == set(qids[:2])
    rest = ranker(traffic[traffic["qid"].isin(qids[1:])])          # 10 new ones complete the fit; 4 are cascaded
    assert ranker.heads is not None and ranker.heads.info["queries"] == 12
    assert (rest.loc[rest["qid"].isin(qids[1:12]), "doc_layers"] == 4).all()
    assert rest.loc[rest["qid"].isin(qids[12:]), "doc_layers"].lt(4).any()
    few = EarlyExitReRanker(tiny_cross, k=12)(traffic)   # no query has more than k: nothing to drop or fit
    assert (few["doc_layers"] == 4).all()
    other = gaia.CrossEncoder(tiny_bert(tmp_path / "three", words, layers=3))
    with pytest.raises(ValueError, match=r"heads fitted for cross-encoder .*4 layers\) cannot serve .*3 layers"):
        EarlyExitReRanker(other, heads=ranker.heads)
    with pytest.raises(ValueError, match=r"3 queries are too few to fit on in 4 folds"):
        three = traffic[traffic["qid"].isin(qids[:3])]
        ExitHeads.from_outputs(tiny_cross, [(layer_outputs(LayerScorer(tiny_cross), three, 8, False), three["qid"])],
                               "vaswani")


def test_heads_read_the_first_stage_when_candidates_have_a_score(tiny_cross, traffic, gaia_cache):
    ranker = EarlyExitReRanker(tiny_cross, batch_size=8)
    ranker(traffic)
    heads = ranker.heads
    assert heads.first_stage
    scores = traffic.assign(score=traffic["score"][::-1].to_numpy())   # the same states, another first stage
    scorer = LayerScorer(tiny_cross, heads)
    data, moved = (layer_outputs(scorer, candidates, 8, False) for candidates in (traffic, scores))
    assert not np.allclose(scorer.outputs(1, data["own"][1], data["first_stage"]),
                           scorer.outputs(1, moved["own"][1], moved["first_stage"]))
    with pytest.raises(ValueError, match="these heads read the candidates' first-stage scores.*'score' column"):
        heads.apply(1, data["own"][1])
    with pytest.raises(pt.validate.InputValidationError, match=r"lacks column\(s\) \['score'\]"):
        EarlyExitReRanker(tiny_cross, heads=heads)(traffic.drop(columns=["score"]))
    with pytest.raises(ValueError, match=r"column 'score' has no usable value on \d+ row\(s\)"):
        EarlyExitReRanker(tiny_cross, heads=heads)(traffic.assign(score=np.nan))
    blind = EarlyExitReRanker(tiny_cross, batch_size=8)         # no score: heads of the states alone
    blind(traffic.drop(columns=["score"]))
    assert not blind.heads.first_stage and blind.heads.weights[1].shape == (tiny_cross.hidden_size + 2, 1)
