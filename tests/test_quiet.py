"""Quiet by default: no model-loading bars, no Lucene advice about the JVM, unless asked for."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyterrier_gaia as gaia
from pyterrier_gaia.retrieval import java

PACKAGE_ROOT = Path(gaia.__file__).resolve().parents[1]


def test_loading_a_model_draws_no_bar_unless_transformers_is_verbose(capsys):
    from transformers.utils import logging as hf_logging

    gaia.BiEncoder()
    assert "Loading weights" not in capsys.readouterr().err
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    try:
        gaia.BiEncoder()
    finally:
        hf_logging.set_verbosity(verbosity)
    assert "Loading weights" in capsys.readouterr().err
    assert hf_logging.set_tqdm_hook(None) is None  # no hook of ours left behind


def test_a_fresh_process_opening_a_lucene_index_prints_nothing(tmp_path):
    """The MMapDirectory advice is printed once per JVM, when an index is first opened: only a new
    process shows whether it is gone (with the default GAIA_LUCENE_LOG)."""
    script = textwrap.dedent("""
        import sys
        import pandas as pd
        from pyterrier_gaia.retrieval.lucene import LuceneIndex
        index = LuceneIndex(sys.argv[1]).index([{"docno": "d1", "text": "green search"},
                                                {"docno": "d2", "text": "carbon frugal ranking"}])
        print(len(index.bm25()(pd.DataFrame({"qid": ["1"], "query": ["green"]}))))
    """)
    env = {key: value for key, value in os.environ.items() if key != "GAIA_LUCENE_LOG"}
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + sys.path)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "index")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert done.stderr == ""


def test_lucene_advice_through_java_logging_shows_from_info_on(capfd):
    """Lucene's JVM advice goes through java.util.logging; a message on MMapDirectory's logger reaches
    stderr only when GAIA_LUCENE_LOG (here set_lucene_log_level) is INFO or finer."""
    java.start_pyserini()
    from jnius import autoclass

    logger = autoclass("java.util.logging.Logger").getLogger("org.apache.lucene.store.MMapDirectory")
    capfd.readouterr()
    logger.warning("gaia probe at WARN")
    assert "gaia probe" not in capfd.readouterr().err
    java.set_lucene_log_level("INFO")
    try:
        logger.warning("gaia probe at INFO")
        assert "gaia probe at INFO" in capfd.readouterr().err
    finally:
        java.set_lucene_log_level(os.environ.get("GAIA_LUCENE_LOG", "WARN"))


def test_progress_bars_follow_pyterriers_verbose_convention(capsys, minilm, slice_candidates, vaswani):
    """As in PyTerrier, work shows a bar (pt.tqdm or tqdm) only when asked with verbose=True."""
    import pyterrier as pt

    candidates = slice_candidates[slice_candidates["qid"] == slice_candidates["qid"].iloc[0]].head(10)
    minilm.reranker()(candidates)
    assert "encode" not in capsys.readouterr().err
    minilm.reranker(verbose=True)(candidates)
    assert "BiEncoder encode" in capsys.readouterr().err
    run = pt.Transformer.from_df(candidates)
    topics, qrels = vaswani.get_topics().head(1), vaswani.get_qrels()
    gaia.Experiment([run], topics, qrels, [pt.measures.P @ 5], names=["BM25"])
    assert "pt.Experiment" not in capsys.readouterr().err
    gaia.Experiment([run], topics, qrels, [pt.measures.P @ 5], names=["BM25"], verbose=True)
    assert "pt.Experiment" in capsys.readouterr().err
