"""gaia.parallel: pipelines on a local Ray cluster give the sequential results and one ledger, every record once."""
import os
import pickle
import subprocess
import sys
import threading
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.distribute import Delivery

ray_cloudpickle = pytest.importorskip("ray.cloudpickle")
# the stages below are defined here, a module Ray's workers cannot import: ship them by value
ray_cloudpickle.register_pickle_by_value(sys.modules[__name__])

QUERIES = pd.DataFrame({"qid": ["1", "2", "3", "4"], "query": ["alpha", "beta", "gamma", "delta"]})


class Dies(pt.Transformer):
    """Kills its worker process on the query ``qid``: every time, or once (a marker file remembers it)."""

    def __init__(self, qid: str, marker: Path = None):
        self.qid, self.marker = qid, marker

    def transform(self, inp):
        if self.qid in set(inp["qid"]) and not (self.marker and self.marker.exists()):
            if self.marker:
                self.marker.touch()
            os._exit(1)
        return inp.assign(seen=True)

    def __repr__(self):
        return "Dies()"


class Fails(pt.Transformer):
    def transform(self, inp):
        if "3" in set(inp["qid"]):
            raise ValueError("no gamma here")
        return inp

    def __repr__(self):
        return "Fails()"


class HoldsLock(pt.Transformer):
    def __init__(self):
        self.lock = threading.Lock()

    def transform(self, inp):
        return inp

    def __repr__(self):
        return "HoldsLock()"


def worker_records(ledger):
    """The records a worker made running batches (not its start-up)."""
    return [record for record in ledger.records if "host" in record and not is_start_up(record)]


def is_start_up(record) -> bool:
    """A worker's loading of the pipeline."""
    return record["stage"].endswith(" / worker start-up")


def start_ups(ledger):
    return [record for record in ledger.records if is_start_up(record)]


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'pyterrier-gaia\[ray\]'"):
        gaia.parallel(pt.Transformer.identity())


def test_a_stage_that_does_not_pickle_is_named_before_any_worker_starts():
    pipe = gaia.meter(pt.apply.generic(lambda frame: frame) >> HoldsLock())
    with pytest.raises(TypeError, match=r"stage HoldsLock\(\) does not pickle .*lock"):
        gaia.parallel(pipe, workers=2)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="workers=0"):
        gaia.parallel(pt.Transformer.identity(), workers=0)
    with pytest.raises(ValueError, match="threads_per_worker=0"):
        gaia.parallel(pt.Transformer.identity(), threads_per_worker=0)
    with pytest.raises(ValueError, match="engine='dask'"):
        gaia.parallel(pt.Transformer.identity(), engine="dask")
    with pytest.raises(ValueError, match="'qid'"):
        gaia.parallel(pt.Transformer.identity())(pd.DataFrame({"query": ["x"]}))


def test_a_batch_delivered_twice_is_kept_once():
    ledger = gaia.Ledger()
    par = gaia.parallel(gaia.meter(pt.Transformer.identity(), ledger=ledger))
    record = {"stage": "identity", "joules": 1.0, "queries": 1, "host": "h", "pid": 7, "batch": 0}
    delivery = Delivery(0, QUERIES.head(1), None, [(0, record)], "h", 7)
    results = {}
    assert par._deliver(delivery, results) and not par._deliver(delivery, results)
    assert len(results) == 1 and [(r["stage"], r["batch"]) for r in ledger.records] == [("identity", 0)]


def test_a_lucene_stage_pickles_without_its_searcher_and_reopens_it(vaswani_index, vaswani):
    bm25 = vaswani_index.bm25(num_results=5)
    topics = vaswani.get_topics().head(2)
    expected = bm25(topics)                                  # the searcher is open (a JVM object)
    copy = pickle.loads(pickle.dumps(bm25))
    assert copy.index._searchers == {}
    pd.testing.assert_frame_equal(copy(topics), expected)


def test_two_workers_match_the_sequential_run_in_order(ray_cluster, slice_candidates):
    topics = slice_candidates[["qid", "query"]].drop_duplicates()
    pipe = gaia.meter(pt.Transformer.from_df(slice_candidates) >> pt.apply.doc_score(lambda row: len(row["text"])))
    expected = pipe(topics)
    sequential = len(pipe.ledger)
    par = gaia.parallel(pipe, workers=2, batch_size=4)
    try:
        pd.testing.assert_frame_equal(par(topics), expected)
    finally:
        par.close()
    records = worker_records(pipe.ledger)
    loading = start_ups(pipe.ledger)                           # each worker's unpickling of the pipeline
    assert len(pipe.ledger) == sequential + len(records) + len(loading)   # the earlier records stayed in the driver
    assert len(loading) == 2 and len({r["pid"] for r in loading}) == 2
    assert all(r["startup"] and r["queries"] == 0 and r["wall_s"] > 0 and r["joules"] > 0 for r in loading)
    stages = {record["stage"] for record in records}
    assert sorted((r["stage"], r["batch"]) for r in records) == sorted((s, b) for s in stages for b in (0, 1, 2))
    assert os.getpid() not in {r["pid"] for r in records}
    assert [r["queries"] for r in records if r["batch"] == 2] == [2, 2]    # 10 queries: batches of 4, 4 and 2
    totals = pipe.ledger.summary(by=("host", "method"))
    assert totals["queries"].sum() == 2 * 2 * len(topics)    # 2 stages, once sequentially, once on Ray
    assert totals.index.names == ["host", "method"]


def test_a_worker_killed_once_is_retried_and_every_record_kept_once(ray_cluster, tmp_path):
    pipe = gaia.meter(pt.apply.generic(lambda frame: frame.assign(x=1)) >> Dies("2", tmp_path / "died"))
    par = gaia.parallel(pipe, workers=1, batch_size=1)
    try:
        out = par(QUERIES)
    finally:
        par.close()
    assert (tmp_path / "died").exists()                       # the worker did die once
    pd.testing.assert_frame_equal(out, QUERIES.assign(x=1, seen=True))
    assert sorted((r["stage"], r["batch"]) for r in worker_records(pipe.ledger)) == sorted(
        (stage, batch) for stage in ("pt.apply.generic()", "Dies()") for batch in range(4))
    assert len(start_ups(pipe.ledger)) == 2                   # the worker loaded the pipeline, and again when restarted


def test_a_worker_dying_every_time_names_the_batch_and_what_was_recorded(ray_cluster):
    pipe = gaia.meter(Dies("3"))
    par = gaia.parallel(pipe, workers=1, batch_size=2, attempts=2)
    try:
        with pytest.raises(RuntimeError, match=r"batch 1 \(qids 3, 4\) failed: its worker died 2 time.*records of "
                                               r"the 1 batch\(es\) that finished; batch 1 recorded nothing"):
            par(QUERIES)
    finally:
        par.close()
    assert [(r["batch"], r["queries"]) for r in worker_records(pipe.ledger)] == [(0, 2)]


def test_an_error_in_a_stage_is_raised_with_its_batch_and_its_records_kept(ray_cluster):
    pipe = gaia.meter(Fails())
    par = gaia.parallel(pipe, workers=1, batch_size=2)
    try:
        with pytest.raises(ValueError, match="no gamma here") as raised:
            par(QUERIES)
    finally:
        par.close()
    assert any("batch 1 (qids 3, 4)" in note for note in raised.value.__notes__)
    assert [(r["batch"], r["error"]) for r in worker_records(pipe.ledger)] == [(0, None), (1, "ValueError: no gamma here")]


def test_merged_ledgers_keep_a_record_found_twice_once(tmp_path):
    ledger = gaia.Ledger(tmp_path / "run.jsonl")
    for batch in (0, 1):
        ledger.append({"stage": "s", "joules": 1.0, "queries": 2, "start": float(batch), "host": "h", "pid": 1,
                       "batch": batch})
    ledger.append({"stage": "s", "joules": 3.0, "queries": 1, "start": 2.0})
    merged = gaia.Ledger.merge(ledger, tmp_path / "run.jsonl", ledger)
    assert [r.get("batch") for r in merged.records] == [0, 1, None]
    totals = merged.summary(by="host")
    assert totals.loc["h", "J"] == 2.0 and totals["J"].isna().sum() == 0 and len(totals) == 2
    with pytest.raises(ValueError, match=r"pid=-1, expected a non-negative integer"):
        ledger.append({"stage": "s", "joules": 1.0, "pid": -1})


def test_an_experiment_on_workers_measures_like_the_sequential_one(ray_cluster, slice_candidates, vaswani):
    topics = slice_candidates[["qid", "query"]].drop_duplicates()
    systems = [pt.Transformer.from_df(slice_candidates),
               pt.Transformer.from_df(slice_candidates) >> pt.apply.doc_score(lambda row: len(row["text"]))]
    arguments = (systems, topics, vaswani.get_qrels(), [pt.measures.nDCG @ 10])
    expected = gaia.Experiment(*arguments, names=["bm25", "length"])
    ledger = gaia.Ledger()
    table = gaia.Experiment(*arguments, names=["bm25", "length"], workers=1, ledger=ledger)
    pd.testing.assert_series_equal(table["nDCG@10"], expected["nDCG@10"])
    assert table["J/q"].gt(0).all() and table["method"].tolist() == expected["method"].tolist()
    records = ledger.records
    assert all("host" in r for r in records)
    assert sorted(r["stage"] for r in records if r["startup"]) == [
        "bm25 / SourceTransformer / start-up", "bm25 / SourceTransformer / worker start-up",
        "length / SourceTransformer / start-up", "length / SourceTransformer / worker start-up",
        "length / pt.apply.doc_score() / start-up"]


class Threads(pt.Transformer):
    """Adds the number of threads torch and BLAS may use where it runs (Ray sets it from a worker's CPUs)."""

    def transform(self, inp):
        return inp.assign(threads=os.environ.get("OMP_NUM_THREADS"))

    def __repr__(self):
        return "Threads()"


@pytest.mark.parametrize("workers, threads", [(1, 8), (3, 5), (16, 1), (40, 1)])
def test_threads_per_worker_share_out_the_alive_nodes_cpus(workers, threads):
    class Cluster:   # two alive nodes of 8 CPUs and a dead one: a worker never gets more than one node's
        @staticmethod
        def nodes():
            return [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 8.0}},
                    {"Alive": False, "Resources": {"CPU": 64.0}}]
    par = gaia.parallel(pt.Transformer.identity(), workers=workers)
    par._ray = Cluster()
    assert par._threads() == threads
    assert gaia.parallel(pt.Transformer.identity(), workers=workers, threads_per_worker=2)._threads() == 2


@pytest.mark.parametrize("workers, threads_per_worker, threads", [(1, None, "2"), (2, None, "1"), (1, 1, "1")])
def test_workers_share_out_the_cluster_cpus(ray_cluster, workers, threads_per_worker, threads):
    par = gaia.parallel(Threads(), workers=workers, threads_per_worker=threads_per_worker)
    try:
        assert set(par(QUERIES)["threads"]) == {threads}       # the cluster has 2 CPUs
    finally:
        par.close()


def test_a_vector_index_encoded_on_ray_data_holds_the_sequential_vectors(ray_cluster, tmp_path, vaswani):
    from tiny_models import tiny_bert

    from pyterrier_gaia.distribute import ray_encode

    encoder = gaia.BiEncoder(tiny_bert(tmp_path / "tiny", cross=False))
    docs = list(islice(vaswani.get_corpus_iter(), 200))
    sequential = gaia.VectorIndex(tmp_path / "one", encoder).index(docs, verbose=False)
    ledger = gaia.Ledger()
    on_ray = gaia.VectorIndex(tmp_path / "ray", encoder).index(docs, verbose=False,
                                                                encode=ray_encode(workers=1, ledger=ledger))
    assert len(on_ray) == 200 and list(on_ray.flex.docnos()) == list(sequential.flex.docnos())
    np.testing.assert_allclose(on_ray.vectors(), sequential.vectors(), atol=1e-5)
    # the actor metered its own process: loading the encoder once, then each shard (about 4 of 50 texts)
    records = ledger.records
    assert [r["stage"] for r in records if r["startup"]] == ["ray_encode / start-up"]
    shards = [r for r in records if not r["startup"]]
    assert sum(r["docs"] for r in shards) == 200 and len({r["batch"] for r in shards}) == len(shards) >= 4
    assert {r["stage"] for r in shards} == {"ray_encode / BiEncoder"} and os.getpid() not in {r["pid"] for r in records}
    assert all(r["joules"] > 0 and r["cpu_s"] > 0 for r in records)


def test_starting_and_stopping_ray_keep_the_fatal_signal_handlers_a_jvm_relies_on(tmp_path):
    # ray.init installs its crash logger as SIGSEGV handler and ray.shutdown resets SIGSEGV to the default;
    # in a process where Lucene's JVM runs, the next SIGSEGV the JVM raises on purpose then killed the
    # process (seen in this suite and in CI). init_ray and shutdown_ray keep them.
    script = tmp_path / "signals.py"
    script.write_text(
        "import faulthandler, signal\n"
        "from pyterrier_gaia.distribute import _signal_actions, init_ray, shutdown_ray\n"
        "faulthandler.enable()   # a handler of SIGSEGV, as a JVM would have installed\n"
        "def handlers():\n"
        "    return {n: bytes(action.raw[:8]) for n, (_, action) in _signal_actions().items()}\n"
        "before = handlers()\n"
        "init_ray(num_cpus=1, include_dashboard=False)\n"
        "started = handlers()\n"
        "shutdown_ray()\n"
        "installed = before[int(signal.SIGSEGV)] != bytes(8)\n"
        "print(installed and started == before and handlers() == before)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "True", done.stderr[-2000:]
