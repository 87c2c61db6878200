"""One PyTerrier conformance suite run over every gaia transformer (issue 16, "Habits").

Each property is a test parametrised over every transformer, built through the public API only
(``gaia.*`` names, ``index.bm25()``, ``encoder.reranker()``) on tiny inputs: 3 Vaswani topics and
BM25's top 5 for them. The properties are PyTerrier's conventions: an empty frame in gives an empty
frame out with the output columns; ``transform_outputs`` tells the real output columns; a missing
input column raises ``pt.validate.InputValidationError`` naming it; a frame and ``transform_iter``
agree; ranks count from 0 in score order within each query; a second call gives the same result;
and PyTerrier's own ``pt.testing.TransformerTestCase`` (inspection and schematic) passes.

Every transformer passes every property with its defaults (the early-exit and diffusion re-rankers
fit what they need on their first call).
"""
import unittest

import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from tiny_models import tiny_bert

QUERY = ["qid", "query"]
RERANK = ["qid", "query", "docno", "text"]

# name -> (builder from the fixtures' objects, "Q" (topics in) or "R" (candidates in), required input columns)
CASES = {
    "bm25": (lambda c: c.index.bm25(), "Q", QUERY),
    "bm25 % 10": (lambda c: c.index.bm25() % 10, "Q", QUERY),
    "reranker": (lambda c: c.minilm.reranker(), "R", RERANK),
    "reranker interpolate=0.3": (lambda c: c.minilm.reranker(interpolate=0.3), "R", RERANK + ["score"]),
    "reranker int8": (lambda c: c.minilm.reranker(precision="int8"), "R", RERANK),
    "cross-encoder reranker": (lambda c: c.cross.reranker(), "R", RERANK),
    "EarlyExitReRanker defaults": (lambda c: gaia.EarlyExitReRanker(c.cross), "R", RERANK),
    "EarlyExitReRanker cascade=False": (lambda c: gaia.EarlyExitReRanker(c.cross, cascade=False), "R", RERANK),
    "DiffusionReRanker defaults": (lambda c: gaia.DiffusionReRanker(c.cross), "R", RERANK),
    "DiffusionReRanker fitted": (lambda c: _fitted_diffusion(c), "R", RERANK),
    "stored-vector reranker": (lambda c: c.vectors.reranker(), "R", ["qid", "query", "docno"]),
    "stored-vector reranker interpolate=0.3": (lambda c: c.vectors.reranker(interpolate=0.3), "R",
                                               ["qid", "query", "docno", "score"]),
    "dense retriever": (lambda c: c.vectors.retriever(num_results=5), "Q", QUERY),
    "Metered(reranker)": (lambda c: gaia.Metered(c.minilm.reranker()), "R", RERANK),
    "meter(bm25 % 5 >> reranker)": (lambda c: gaia.meter(c.index.bm25() % 5 >> c.minilm.reranker()), "Q", QUERY),
}


def _fitted_diffusion(context):
    """A diffusion re-ranker set up through the public API: usefulness fitted, costs calibrated."""
    ranker = gaia.DiffusionReRanker(context.cross, depths=(2, 5)).fit(context.slice_candidates)
    ranker.cost_model = gaia.calibrate_costs(ranker, context.slice_candidates, queries=12)
    return ranker


class Context:
    """The shared objects the builders use: an index of Vaswani, MiniLM, a tiny cross-encoder, and
    MiniLM's stored vectors of the candidates in ``inputs`` and the first 50 documents."""

    def __init__(self, index, minilm, cross, slice_candidates, vectors):
        self.index, self.minilm, self.cross, self.slice_candidates = index, minilm, cross, slice_candidates
        self.vectors = vectors


@pytest.fixture(scope="module")
def context(vaswani_index, vaswani, minilm, slice_candidates, inputs, tmp_path_factory, words):
    cross = gaia.CrossEncoder(tiny_bert(tmp_path_factory.mktemp("tiny") / "cross", words, layers=4))
    wanted = set(inputs["R"]["docno"])
    docs = [d for i, d in enumerate(vaswani.get_corpus_iter()) if i < 50 or d["docno"] in wanted]
    vectors = gaia.VectorIndex(tmp_path_factory.mktemp("vectors") / "vaswani", minilm).index(docs, verbose=False)
    return Context(vaswani_index, minilm, cross, slice_candidates, vectors)


@pytest.fixture(scope="module")
def inputs(vaswani_index, vaswani):
    """{"Q": 3 Vaswani topics, "R": BM25's top 5 for them (with text)}."""
    topics = vaswani.get_topics().head(3)
    return {"Q": topics, "R": vaswani_index.bm25(num_results=5)(topics)}


@pytest.fixture(scope="module")
def built(context):
    """Each transformer built once (building may load or quantize a model), on first use."""
    cache = {}

    def build(name):
        if name not in cache:
            cache[name] = CASES[name][0](context)
        return cache[name]
    return build


@pytest.fixture(scope="module")
def first_run(built, inputs):
    """(transformer, its input, its output on that input): each case run once, on first use."""
    cache = {}

    def run(name):
        if name not in cache:
            transformer, inp = built(name), inputs[CASES[name][1]]
            cache[name] = transformer, inp, transformer(inp)
        return cache[name]
    return run


@pytest.mark.parametrize("name", list(CASES))
def test_empty_input_gives_an_empty_frame_with_the_output_columns(first_run, name):
    transformer, inp, out = first_run(name)
    empty = transformer(inp.head(0))
    assert isinstance(empty, pd.DataFrame) and len(empty) == 0
    assert set(empty.columns) == set(out.columns)


@pytest.mark.parametrize("name", list(CASES))
def test_transform_outputs_tells_the_real_output_columns(first_run, name):
    transformer, inp, out = first_run(name)
    assert pt.inspect.transformer_outputs(transformer, list(inp.columns)) == list(out.columns)


@pytest.mark.parametrize("name", list(CASES))
def test_a_missing_input_column_is_named(built, inputs, name):
    transformer, inp = built(name), inputs[CASES[name][1]]
    for column in CASES[name][2]:
        with pytest.raises(pt.validate.InputValidationError, match=rf"\b{column}\b") as raised:
            transformer(inp.drop(columns=[column]))
        assert any(column in mode.missing_columns for mode in raised.value.modes), raised.value


@pytest.mark.parametrize("name", list(CASES))
def test_a_frame_and_transform_iter_agree(first_run, name):
    transformer, inp, out = first_run(name)
    records = list(transformer.transform_iter(inp.to_dict(orient="records")))
    from_iter = pd.DataFrame(records, columns=list(records[0]) if records else None)
    assert set(from_iter.columns) == set(out.columns)
    pd.testing.assert_frame_equal(_by_rank(from_iter[out.columns]), _by_rank(out), check_dtype=False, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_ranks_count_from_zero_in_score_order(first_run, name):
    _, _, out = first_run(name)
    assert len(out) > 0
    for qid, ranking in out.groupby("qid"):
        ranking = ranking.sort_values("rank")
        assert ranking["rank"].tolist() == list(range(len(ranking))), qid
        assert ranking["score"].is_monotonic_decreasing, qid


@pytest.mark.parametrize("name", list(CASES))
def test_calling_twice_gives_the_same_result(first_run, name):
    transformer, inp, out = first_run(name)
    pd.testing.assert_frame_equal(transformer(inp), out)


@pytest.mark.parametrize("name", list(CASES))
def test_pyterrier_transformer_test_case_passes(built, name, monkeypatch):
    """PyTerrier's own ``pt.testing.TransformerTestCase``: inputs and outputs inspectable, a short schematic."""
    monkeypatch.setenv("PT_TEST_TRANSFORMER_REPORTS", "0")
    # offline: a schematic links each class to PyTerrier's online documentation index (objects.inv,
    # downloaded on first use); an empty index gives no link instead of a failed download
    monkeypatch.setattr(pt.documentation, "_cached_objects_inv", {})
    transformer = built(name)
    case = pt.testing.transformer_test_class(lambda: transformer)
    result = unittest.TestResult()
    unittest.TestSuite([case("test_inspect_io"), case("test_schematic")]).run(result)
    problems = [f"{test}: {trace.strip().splitlines()[-1]}" for test, trace in result.failures + result.errors]
    assert not problems, problems


def _by_rank(frame: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in ("qid", "rank", "docno") if c in frame.columns]
    return frame.sort_values(key).reset_index(drop=True)

