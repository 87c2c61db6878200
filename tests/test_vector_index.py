"""gaia.VectorIndex with the real MiniLM on Vaswani documents: stored-vector re-ranking equals re-encoding,
dense retrieval (float, int8, binary), reopening, a metered build, counts, and clear errors."""
import shutil
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting


@pytest.fixture(scope="module")
def indexed_docs(vaswani, slice_candidates):
    """The first 200 Vaswani documents and every document of ``slice_candidates`` (about 370)."""
    wanted = set(slice_candidates["docno"])
    return [doc for position, doc in enumerate(vaswani.get_corpus_iter()) if position < 200 or doc["docno"] in wanted]


@pytest.fixture(scope="module")
def build(tmp_path_factory, minilm, indexed_docs):
    """The index of ``indexed_docs``, built through gaia.Metered, and the meter."""
    vec = gaia.VectorIndex(tmp_path_factory.mktemp("vec") / "vaswani", minilm)
    metered = gaia.Metered(vec.indexer(verbose=False), name="vec build", sensors="model")
    assert metered.index(iter(indexed_docs)) is vec
    return vec, metered


@pytest.fixture(scope="module")
def vec(build):
    return build[0]


def _unread(what="the documents"):
    raise AssertionError(f"{what} should not have been read")
    yield


def test_build_is_one_metered_record_with_the_encoder_counts(build, indexed_docs):
    vec, metered = build
    record, = metered.ledger.records
    assert (record["stage"], record["docs"], record["queries"], record["error"]) == ("vec build", len(indexed_docs), 0, None)
    assert record["joules"] > 0 and record["counts"]["tokens"] > len(indexed_docs) and record["counts"]["flops"] > 0
    assert len(vec) == len(indexed_docs) and vec.vectors().shape == (len(indexed_docs), 384)
    assert vec.meta()["model"] == vec.encoder.model_name and vec.meta()["dim"] == 384


@pytest.mark.parametrize("interpolate", [None, 0.3])
def test_stored_vectors_rank_as_reencoding_does(vec, minilm, slice_candidates, interpolate):
    stored = vec.reranker(interpolate=interpolate)(slice_candidates.drop(columns="text"))
    encoded = minilm.reranker(interpolate=interpolate)(slice_candidates)
    assert stored["qid"].tolist() == encoded["qid"].tolist()
    assert stored["docno"].tolist() == encoded["docno"].tolist()
    assert stored["rank"].tolist() == encoded["rank"].tolist()
    np.testing.assert_allclose(stored["score"], encoded["score"], atol=1e-4)
    assert "text" not in stored.columns


def test_reranker_counts_pairs_and_vector_bytes(vec, slice_candidates):
    with counting() as scope:
        vec.reranker()(slice_candidates)
    assert scope.counts["pairs"] == len(slice_candidates)
    assert scope.counts["vector_bytes"] == len(slice_candidates) * 384 * 4
    assert scope.counts["tokens"] > 0  # the encoder's own counts, for the query encoding


def test_dense_retrieval_is_the_exhaustive_top_k(vec, vaswani, indexed_docs):
    topics = vaswani.get_topics().head(3)
    with counting() as scope:
        run = vec.retriever(num_results=5)(topics)
    assert scope.counts["docs_scored"] == 3 * len(vec)
    assert list(run.columns) == ["qid", "query", "docno", "score", "rank"]
    every = topics.merge(pd.DataFrame({"docno": [d["docno"] for d in indexed_docs]}), how="cross")
    best = vec.reranker()(every).groupby("qid").head(5).reset_index(drop=True)
    pd.testing.assert_frame_equal(run, best[run.columns], atol=1e-5)
    for _, ranking in run.groupby("qid"):
        assert ranking["rank"].tolist() == list(range(5)) and ranking["score"].is_monotonic_decreasing


def test_dense_retrieval_returns_every_document_when_asked_for_more(vec, vaswani):
    run = vec.retriever(num_results=10_000)(vaswani.get_topics().head(1))
    assert len(run) == len(vec) and run["rank"].tolist() == list(range(len(vec)))


def test_rank_cutoff_fuses_into_the_retriever(vec):
    compiled = (vec.retriever(num_results=100) % 7).compile()
    assert compiled.num_results == 7


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_quantized_retrieval(vec, vaswani, kind):
    topics = vaswani.get_topics().head(3)
    exact = vec.retriever(num_results=10)(topics)
    rescored = vec.retriever(num_results=10, quantized=kind, rescore=len(vec))(topics)
    pd.testing.assert_frame_equal(rescored, exact, atol=1e-5)  # every document rescored: the exact ranking
    codes = vec.quantized(kind)
    assert isinstance(codes, gaia.QuantizedVectors) and len(codes) == len(vec) and codes.kind == kind
    approximate = vec.retriever(num_results=10, quantized=kind)(topics)
    assert list(approximate.columns) == list(exact.columns) and len(approximate) == 30
    if kind == "binary":  # ranked by Hamming distance: scores are minus whole bit counts
        assert (approximate["score"] <= 0).all() and (approximate["score"] == approximate["score"].round()).all()
    overlap = len(set(zip(approximate.qid, approximate.docno)) & set(zip(exact.qid, exact.docno)))
    assert overlap >= 10  # at least a third of the exact top 10


def test_reopening_a_built_index(vec, minilm, vaswani):
    topics = vaswani.get_topics().head(2)
    reopened = gaia.VectorIndex(vec.path, minilm)
    pd.testing.assert_frame_equal(reopened.retriever(num_results=5)(topics), vec.retriever(num_results=5)(topics))
    assert reopened.index(_unread()) is reopened and len(reopened) == len(vec)


def test_overwrite_rebuilds_and_a_failed_build_leaves_no_index(tmp_path, minilm, indexed_docs):
    vec = gaia.VectorIndex(tmp_path / "v", minilm).index(indexed_docs[:3], verbose=False)
    duplicated = indexed_docs[3:5] + indexed_docs[3:4]
    with pytest.raises(ValueError, match=f"docno '{indexed_docs[3]['docno']}' appears twice"):
        vec.index(duplicated, overwrite=True)
    assert len(gaia.VectorIndex(tmp_path / "v", minilm)) == 3  # the old index is untouched
    assert vec.index(indexed_docs[3:5], overwrite=True) is vec and len(vec) == 2
    fresh = gaia.VectorIndex(tmp_path / "w", minilm)
    with pytest.raises(ValueError, match="appears twice"):
        fresh.index(duplicated)
    assert not fresh.built() and sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_bad_collections(tmp_path, minilm):
    vec = gaia.VectorIndex(tmp_path / "v", minilm)
    with pytest.raises(ValueError, match="empty"):
        vec.index([])
    with pytest.raises(KeyError, match=r"document 1 has no \['text'\]"):
        vec.index([{"docno": "1", "text": "a"}, {"docno": "2"}])
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.txt").write_text("not an index")
    with pytest.raises(FileExistsError, match="holds no VectorIndex"):
        vec.index([{"docno": "1", "text": "a"}])
    with pytest.raises(FileNotFoundError, match="no index"):
        vec.reranker()


def test_candidates_missing_from_the_index_are_named(vec, slice_candidates):
    strays = slice_candidates.head(3).assign(docno=["no-such-1", "no-such-2", "no-such-2"])
    with pytest.raises(ValueError, match=r"2 docno\(s\) are not in VectorIndex.*'no-such-1', 'no-such-2'"):
        vec.reranker()(pd.concat([slice_candidates, strays]))


class _OtherModel:
    """An encoder's identity without a model: enough to reach the checks."""
    def __init__(self, model_name, dim):
        self.model_name, self.dim = model_name, dim

    def encode(self, texts, batch_size=32, verbose=False):
        return np.zeros((len(texts), self.dim), dtype=np.float32)


def test_an_encoder_other_than_the_indexing_one_is_refused(vec, vaswani):
    other = gaia.VectorIndex(vec.path, _OtherModel("acme/other-model", 384))
    for make in (other.reranker, other.retriever, lambda: other.index(_unread())):
        with pytest.raises(ValueError, match=r"encoded by model '.*all_minilm.*' \(384 dims\).*'acme/other-model'"):
            make()
    narrower = gaia.VectorIndex(vec.path, _OtherModel(vec.encoder.model_name, 8))
    with pytest.raises(ValueError, match="8-dimensional query vectors; the vectors at .* have 384"):
        narrower.retriever()(vaswani.get_topics().head(1))


def test_the_same_model_from_another_folder_reads_the_index(vec, slice_candidates, tmp_path):
    """A model is known by its label, not its path: its copy in another virtual environment or cache
    (the index shared with a class, a clean clone) reads the vectors it encoded."""
    source = Path(vec.encoder.model_name)
    copy = tmp_path / "another-venv" / source.parent.name / source.name
    shutil.copytree(source, copy)
    moved = gaia.VectorIndex(vec.path, gaia.BiEncoder(str(copy)))
    pd.testing.assert_frame_equal(moved.reranker()(slice_candidates), vec.reranker()(slice_candidates))


def test_bad_arguments_and_columns(vec, slice_candidates):
    with pytest.raises(ValueError, match="interpolate=2"):
        vec.reranker(interpolate=2)
    with pytest.raises(ValueError, match="quantized='fp16'"):
        vec.retriever(quantized="fp16")
    with pytest.raises(ValueError, match="rescore=5 .* at least num_results=10"):
        vec.retriever(num_results=10, quantized="int8", rescore=5)
    with pytest.raises(ValueError, match="needs quantized="):
        vec.retriever(rescore=2000)
    with pytest.raises(pt.validate.InputValidationError, match="'score' column"):
        vec.reranker(interpolate=0.5)(slice_candidates.drop(columns="score"))


def test_empty_frames_and_transform_outputs(vec, vaswani, slice_candidates):
    topics = vaswani.get_topics().head(2)
    stages = [(vec.reranker(), slice_candidates), (vec.reranker(interpolate=0.3), slice_candidates.drop(columns="rank")),
              (vec.retriever(num_results=3), topics), (vec.retriever(3, quantized="binary", rescore=5), topics)]
    for stage, inp in stages:
        out, empty = stage(inp), stage(inp.head(0))
        assert len(empty) == 0 and list(empty.columns) == list(out.columns)
        assert pt.inspect.transformer_outputs(stage, list(inp.columns)) == list(out.columns)
