"""Lucene retrieval under failure: Ctrl-C, failed and repeated builds, missing values, long queries, IO errors."""
import math
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import types
import time
from itertools import islice
from pathlib import Path

import pandas as pd
import pytest

import pyterrier_gaia as gaia

REPO = Path(__file__).resolve().parents[1]

CTRL_C_SCRIPT = textwrap.dedent("""
    import itertools, signal, sys, tempfile
    import pandas as pd
    import pyterrier_gaia as gaia

    # a shell's background job (cmd &) starts with SIGINT ignored, which Python keeps: restore Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # the JVM and pyserini's imports (transformers, torch: seconds on a busy machine) before "indexing", so
    # that the signal lands in the Java calls, not in an import it would leave half done
    from pyterrier_gaia.retrieval.java import start_pyserini
    start_pyserini()

    folder = tempfile.mkdtemp()
    docs = ({"docno": str(i), "text": f"green search number {i} carbon"} for i in itertools.count())
    try:
        print("indexing", flush=True)
        gaia.LuceneIndex(folder + "/endless").index(docs)
    except KeyboardInterrupt:
        print("interrupted indexing", flush=True)
    finally:
        print("finally indexing", flush=True)
    bm25 = gaia.LuceneIndex(folder + "/small").index(itertools.islice(docs, 2000)).bm25(num_results=1000)
    topics = pd.DataFrame({"qid": [str(i) for i in range(50)], "query": ["green search carbon"] * 50})
    try:
        print("searching", flush=True)
        while True:
            bm25(topics)
    except KeyboardInterrupt:
        print("interrupted searching", flush=True)
    finally:
        print("finally searching", flush=True)
""")


def _lines(process) -> "queue.Queue":
    """The child's stdout lines, read by a thread (select on a buffered pipe misses lines already buffered)."""
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in process.stdout], daemon=True).start()
    return lines


def _wait_for(process, lines, line, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if lines.get(timeout=max(0.0, deadline - time.monotonic())) == line:
                return
        except queue.Empty:
            raise AssertionError(f"no {line!r} from the child in {timeout} s (exit {process.poll()})") from None


def test_ctrl_c_reaches_the_caller_during_indexing_and_retrieval(tmp_path):
    """SIGINT after the JVM has started is a KeyboardInterrupt in Python, with finally blocks run."""
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT], cwd=REPO, text=True,
                                   stdout=subprocess.PIPE, stderr=stderr,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = _lines(process)
    try:
        for phase in ("indexing", "searching"):
            _wait_for(process, lines, phase)
            time.sleep(1)  # inside the Java calls
            process.send_signal(signal.SIGINT)
            _wait_for(process, lines, f"interrupted {phase}", timeout=30)
            _wait_for(process, lines, f"finally {phase}", timeout=5)
        assert process.wait(timeout=20) == 0
    except AssertionError as failure:
        raise AssertionError(f"{failure}; child's stderr: {errors.read_text()[-2000:]}") from None
    finally:
        process.kill()
        process.wait()


def _failing(docs, after):
    for position, doc in enumerate(docs):
        if position == after:
            raise OSError("malformed file")
        yield doc


def _docs(count):
    return [{"docno": f"d{i}", "text": f"green search {i}"} for i in range(count)]


def test_a_failed_build_leaves_no_index(tmp_path):
    index = gaia.LuceneIndex(tmp_path / "idx")
    with pytest.raises(OSError, match="malformed"):
        index.index(_failing(_docs(10), after=3))
    assert not index.built() and list(tmp_path.iterdir()) == []
    assert index.index(_docs(2)).texts() == {"d0": "green search 0", "d1": "green search 1"}
    with pytest.raises(OSError, match="malformed"):
        index.index(_failing(_docs(10), after=3), overwrite=True)
    assert index.texts() == {"d0": "green search 0", "d1": "green search 1"}  # the old index is intact
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_only_an_index_is_overwritten(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a LuceneIndex; refusing"):
            gaia.LuceneIndex(folder).index(_docs(2), overwrite=overwrite)
    assert (folder / "thesis.tex").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gaia.LuceneIndex(empty).index(_docs(1)).built()


def test_a_relative_path_is_taken_from_pythons_working_directory(tmp_path, monkeypatch):
    """Java resolves a relative path against the folder the JVM started in, which os.chdir (a notebook's
    %cd, a test's tmp folder) does not move: the index must still be built and opened where Python says."""
    gaia.LuceneIndex(tmp_path / "first").index(_docs(1)).bm25()  # the JVM is running, started elsewhere
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    gaia.LuceneIndex("idx").index(_docs(2))
    assert (tmp_path / "work" / "idx" / "gaia-index.json").is_file()
    run = gaia.LuceneIndex("idx").index(_docs(2)).bm25()(pd.DataFrame({"qid": ["1"], "query": ["green"]}))
    assert sorted(run["docno"]) == ["d0", "d1"]


def test_an_unfinished_older_index_needs_overwrite(tmp_path):
    index = gaia.LuceneIndex(tmp_path / "idx").index(_docs(2))
    (index.path / "gaia-index.json").unlink()  # as left by a version without the completion marker
    with pytest.raises(FileExistsError, match="unfinished index.*overwrite=True"):
        gaia.LuceneIndex(index.path).index(_docs(3))
    assert len(gaia.LuceneIndex(index.path).index(_docs(3), overwrite=True).texts()) == 3


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_missing_queries_name_the_qid(vaswani_index, missing):
    topics = pd.DataFrame({"qid": ["1", "q7"], "query": ["microwave", missing]})
    with pytest.raises(ValueError, match=r"query 'q7' is (None|nan)"):
        vaswani_index.bm25()(topics)


@pytest.mark.parametrize("doc, message", [
    ({"docno": "d9", "text": None}, "document 'd9' has text None"),
    ({"docno": "d9", "text": math.nan}, "document 'd9' has text nan"),
    ({"docno": None, "text": "x"}, "document 2 has docno None"),
    ({"docno": "d1", "text": "again"}, "docno 'd1' occurs twice"),
])
def test_bad_documents_name_the_docno(tmp_path, doc, message):
    with pytest.raises(ValueError, match=message):
        gaia.LuceneIndex(tmp_path / "idx").index([*_docs(2), doc])
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("num_results", [2.5, True, 0, -3, "10"])
def test_num_results_is_a_positive_int(vaswani_index, num_results):
    with pytest.raises(ValueError, match=r"LuceneBM25: num_results=.*; expected a positive integer"):
        vaswani_index.bm25(num_results=num_results)


def test_a_query_of_thousands_of_terms_is_searched(vaswani_index, words):
    """Lucene's default limit of 1,024 clauses is raised: long queries are searched whole, with the batch."""
    letters = "bcdfghjklmnpqrstvwxz"
    invented = ["".join(t) + "o" for t in islice(((a, b, c) for a in letters for b in letters for c in letters), 1500)]
    long_query = " ".join(invented + words)
    terms = vaswani_index.searcher(0.9, 0.4).index_reader.analyze(
        long_query, analyzer=vaswani_index.searcher(0.9, 0.4).object.get_analyzer())
    assert len(set(terms)) > 1024
    result = vaswani_index.bm25(num_results=5)(pd.DataFrame({"qid": ["long", "short"],
                                                             "query": [long_query, "microwave"]}))
    assert result.groupby("qid").size().to_dict() == {"long": 5, "short": 5}


def test_a_damaged_index_names_its_folder(tmp_path):
    index = gaia.LuceneIndex(tmp_path / "idx").index(_docs(3))
    for segment in index.path.glob("segments_*"):
        segment.unlink()
    with pytest.raises(OSError, match=f"could not open the Lucene index at {index.path}"):
        gaia.LuceneIndex(index.path).bm25()(pd.DataFrame({"qid": ["1"], "query": ["green"]}))


def test_starting_again_after_an_interrupted_start_does_not_reconfigure_the_running_jvm(vaswani_index, monkeypatch):
    """A start cut short by Ctrl-C after the JVM came up is finished by the next call, not refused by pyjnius."""
    import jnius_config

    from pyterrier_gaia.retrieval import java

    vaswani_index.bm25(num_results=1)  # the JVM runs
    assert jnius_config.vm_running
    monkeypatch.setattr(java, "_started", False)
    # as when Ctrl-C cut the import of jnius short: the JVM runs, the module is not registered
    monkeypatch.setattr(java, "sys", types.SimpleNamespace(modules={}))
    java.start_pyserini()
    assert java._started and jnius_config.get_options().count("-Xrs") == 1
