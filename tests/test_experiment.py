"""gaia.Experiment: pt.Experiment's table plus J/q, gCO2e/q, ms/q and method, each system charged its own stages."""
import time
import warnings

import pandas as pd
import pyterrier as pt
import pytest
import yaml

import pyterrier_gaia as gaia
from pyterrier_gaia.energy.metered import one_off

MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP]


@pytest.fixture(scope="module")
def setting(vaswani_index, vaswani):
    """Ten Vaswani topics, their qrels, and BM25 (top 50)."""
    return vaswani_index.bm25(num_results=50), vaswani.get_topics().head(10), vaswani.get_qrels()


def _counting(calls: list, label: str):
    """A re-ranking stage that records the qids of each call with input (not PyTerrier's inspections), halving scores."""
    def rescore(frame):
        if len(frame):
            calls.append((label, tuple(sorted(frame["qid"].unique()))))
        return pt.model.add_ranks(frame.assign(score=frame["score"] / 2))
    return pt.apply.generic(rescore)


def _run(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gaia.Experiment(*args, **kwargs)


def test_same_measures_as_pt_experiment_plus_energy_columns(setting):
    bm25, topics, qrels = setting
    systems = [bm25, bm25 % 5]
    ledger = gaia.Ledger()
    ours = _run(systems, topics, qrels, MEASURES, names=["BM25", "BM25 % 5"], ledger=ledger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # PyTerrier suggests plan="tree" for the shared BM25
        theirs = pt.Experiment(systems, topics, qrels, MEASURES, names=["BM25", "BM25 % 5"])
    pd.testing.assert_frame_equal(ours.drop(columns=["J/q", "gCO2e/q", "ms/q", "method"]), theirs)
    assert ours["method"].tolist() == [ledger.records[0]["method"]] * 2
    for name, row in ours.set_index("name").iterrows():
        own = [r for r in ledger.records if r["stage"].startswith(name + " / ") and not r["startup"]]
        assert row["J/q"] == pytest.approx(sum(r["joules"] for r in own) / 10) and row["J/q"] > 0
        assert row["gCO2e/q"] == pytest.approx(sum(r["gco2e"] for r in own) / 10)
        assert row["ms/q"] == pytest.approx(sum(r["wall_s"] for r in own) * 1000 / 10) and row["ms/q"] > 0
    assert ledger.summary().index.tolist() == ["BM25 / start-up", "BM25 % 5 / start-up", "BM25 / LuceneBM25",
                                               "BM25 % 5 / LuceneBM25"]  # % 5 fused into the retriever


@pytest.mark.parametrize("plan", [{"precompute_prefix": True}, {"plan": "tree", "verbose": False}])
def test_shared_prefix_runs_once_and_is_charged_once_to_each_system(setting, plan):
    bm25, topics, qrels = setting
    calls = []
    rerank = _counting(calls, "rerank")
    first, second = bm25 % 20 >> rerank, bm25 % 20 >> _counting(calls, "other")
    ledger = gaia.Ledger()
    result = _run([first, second], topics, qrels, MEASURES, names=["one", "two"], ledger=ledger, **plan)
    shared = [r for r in ledger.records if r["stage"].startswith("one & two / ")]
    assert [r["stage"] for r in shared] == ["one & two / LuceneBM25"]  # bm25 % 20: one retriever asking for 20
    assert calls[:2] == [("rerank", ("1",)), ("other", ("1",))]     # start-up: each system on the first topic
    assert [label for label, _ in calls[2:]] == ["rerank", "other"]
    prefix_j = sum(r["joules"] for r in shared)
    for name in ("one", "two"):
        own = sum(r["joules"] for r in ledger.records if r["stage"].startswith(name + " / ") and not r["startup"])
        assert result.set_index("name").loc[name, "J/q"] == pytest.approx((prefix_j + own) / 10)


def test_perquery_energy_per_query(setting, tmp_path):
    bm25, topics, qrels = setting
    calls = []
    ledger = gaia.Ledger()
    averages, per_query = _run([bm25 % 10 >> _counting(calls, "r")], topics, qrels, MEASURES, names=["sys"],
                               perquery="both", ledger=ledger, save_dir=str(tmp_path))
    assert calls[0] == ("r", ("1",))                                                         # start-up
    assert sorted(qids for _, qids in calls[1:]) == sorted((qid,) for qid in topics["qid"])   # one query per call
    energy = per_query[per_query.measure == "J/q"].set_index("qid")["value"]
    assert sorted(energy.index) == sorted(topics["qid"])
    for qid, joules in energy.items():
        assert joules == pytest.approx(sum(r["joules"] for r in ledger.records if r["qid"] == qid and not r["startup"]))
    assert averages.loc[0, "J/q"] == pytest.approx(energy.mean())
    latency = per_query[per_query.measure == "ms/q"].set_index("qid")["value"]
    assert averages.loc[0, "ms/q"] == pytest.approx(latency.mean())
    assert set(per_query.measure) == {"nDCG@10", "AP", "J/q", "gCO2e/q", "ms/q"}
    saved = pd.read_csv(tmp_path / "perquery.csv", dtype={"qid": str})                 # pt.Experiment's file too
    assert saved[saved.measure == "J/q"].set_index("qid")["value"].sort_index().tolist() == pytest.approx(
        energy.sort_index().tolist())
    with pytest.raises(ValueError, match="batch_size=5"):
        _run([bm25], topics, qrels, MEASURES, perquery=True, batch_size=5)


def test_baseline_correction_dict_systems_and_result_frames(setting):
    bm25, topics, qrels = setting
    run = bm25(topics)
    result = _run({"bm25": bm25, "saved": run, "cut": bm25 % 3}, topics, qrels, MEASURES, baseline="bm25",
                  correction="bonferroni", round={"J/q": 2})
    assert {"AP p-value", "AP p-value corrected", "AP reject"} <= set(result.columns)
    saved = result.set_index("name").loc["saved"]
    assert pd.isna(saved["J/q"]) and pd.isna(saved["method"])
    assert result.set_index("name").loc["cut", "J/q"] == round(result.set_index("name").loc["cut", "J/q"], 2)
    as_dict = _run([bm25], topics, qrels, MEASURES, names=["bm25"], dataframe=False)
    assert {"nDCG@10", "AP", "J/q", "gCO2e/q", "ms/q", "method"} <= set(as_dict["bm25"])


def test_highlight_keeps_a_styled_table(setting):
    bm25, topics, qrels = setting
    styled = _run([bm25, bm25 % 3], topics, qrels, MEASURES, names=["a", "b"], highlight="bold")
    assert {"J/q", "gCO2e/q", "ms/q", "method"} <= set(styled.data.columns)
    assert "font-weight: bold" in styled.to_html()


class OneOffLoad:
    """A stand-in for a model loaded on first use and shared by every system (as a JVM or a cached model is):
    the first call anywhere burns half a second of CPU."""
    loaded = False

    @classmethod
    def rescore(cls, frame):
        if not cls.loaded and len(frame):
            cls.loaded = True
            until = time.process_time() + 0.5
            while time.process_time() < until:
                pass
        return frame


def test_identical_systems_measure_alike_and_start_up_is_its_own_record(setting):
    bm25, topics, qrels = setting
    systems = [bm25 % 20 >> pt.apply.generic(OneOffLoad.rescore) for _ in range(3)]
    ledger = gaia.Ledger()
    result = _run(systems, topics, qrels, MEASURES, names=["a", "b", "c"], ledger=ledger, sensors="model")
    startup = {r["stage"]: r for r in ledger.records if r["startup"]}
    assert list(startup) == ["a / start-up", "b / start-up", "c / start-up"]
    assert startup["a / start-up"]["cpu_s"] >= 0.5 > startup["b / start-up"]["cpu_s"]   # the load fell on the start-up
    cpu = {}
    for name in "abc":
        own = [r for r in ledger.records if r["stage"].startswith(name + " / ") and not r["startup"]]
        assert result.set_index("name").loc[name, "J/q"] == pytest.approx(sum(r["joules"] for r in own) / 10)
        cpu[name] = sum(r["cpu_s"] for r in own)
    # the 0.5 CPU-s load is in no system's records (not a ratio between the systems' CPU times: BM25 over 10
    # topics takes 0.02-0.16 s here and the JVM's background threads made one system 7x another once)
    assert max(cpu.values()) < 0.5, cpu
    table = ledger.summary(by="system")
    assert table.index.tolist() == ["a / start-up", "b / start-up", "c / start-up", "a", "b", "c"]


def test_ms_per_query_leaves_out_one_off_work_that_mrt_includes(setting):
    bm25, topics, qrels = setting
    fitted = []

    def fit_on_first_call(frame):
        if len(frame) and not fitted:                                  # not PyTerrier's inspection (no rows)
            with one_off("fit"):
                time.sleep(0.3)
            fitted.append(True)
        return frame
    ledger = gaia.Ledger()
    result = _run([bm25 % 10 >> pt.apply.generic(fit_on_first_call)], topics, qrels, [*MEASURES, "mrt"],
                  names=["sys"], ledger=ledger, warmup=False).iloc[0]
    calls = [r for r in ledger.records if not r["startup"]]
    fit = [r for r in ledger.records if r["stage"].endswith(" / fit")]
    assert len(fit) == 1 and fit[0]["wall_s"] >= 0.3
    assert result["ms/q"] == pytest.approx(sum(r["wall_s"] for r in calls) * 1000 / 10)
    assert result["mrt"] - result["ms/q"] >= 0.3 * 1000 / 10        # PyTerrier's mean response time has the fit


def test_repeated_qids_are_an_error_naming_them(setting):
    bm25, topics, qrels = setting
    repeated = pd.concat([topics, topics.iloc[[3, 5]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"topics repeat the qid\(s\) '4', '6'.*drop_duplicates"):
        gaia.Experiment([bm25], repeated, qrels, MEASURES)


def test_save_dir_keeps_each_systems_energy_and_reuse_reads_it_back(setting, tmp_path):
    bm25, topics, qrels = setting
    systems, names = [bm25, bm25 % 5], ["bm25", "cut"]
    first = _run(systems, topics, qrels, MEASURES, names=names, save_dir=str(tmp_path), save_mode="overwrite")
    assert (tmp_path / "bm25.res.gz").exists() and (tmp_path / "bm25.ledger.jsonl").exists()
    saved = pd.read_csv(tmp_path / "aggregated.csv").set_index("name")   # pt.Experiment's file, plus energy
    assert saved.loc[names, "J/q"].tolist() == pytest.approx(first["J/q"].tolist())
    assert saved.loc[names, "method"].tolist() == first["method"].tolist()
    assert saved.loc[names, "ms/q"].tolist() == pytest.approx(first["ms/q"].tolist())
    metadata = yaml.safe_load((tmp_path / "cut.ir_metadata.yml").read_text())
    energy = metadata["resources"]["energy"]
    assert metadata["metadata"] == {"tag": "cut", "records": "cut.ledger.jsonl"}
    assert energy["joules"] - energy["startup joules"] == pytest.approx(first.set_index("name").loc["cut", "J/q"] * 10)
    assert energy["method"] == first["method"][1] and energy["accounting"] in ("threads", "machine-share")
    ledger = gaia.Ledger()
    again = _run(systems, topics, qrels, MEASURES, names=names, save_dir=str(tmp_path), save_mode="reuse",
                 ledger=ledger)
    assert len(ledger) == 0                                              # reused: nothing ran, nothing measured
    pd.testing.assert_frame_equal(again, first)
    (tmp_path / "cut.ledger.jsonl").unlink()                             # runs saved without their energy
    with pytest.warns(UserWarning, match=r"system 'cut' was reused .* not run.*NaN") as caught:
        result = gaia.Experiment(systems, topics, qrels, MEASURES, names=names, save_dir=str(tmp_path),
                                 save_mode="reuse")
    assert result["J/q"].isna().tolist() == [False, True]
    assert not [w for w in caught if "measures differ" in str(w.message)]   # our columns do not upset PyTerrier


def test_an_experiment_that_fails_keeps_what_it_measured(setting, tmp_path):
    """A system raising midway: the records of the systems PyTerrier saved before it are kept beside their
    runs (a rerun with save_mode="reuse" reads their energy back), and the energy columns of an earlier
    experiment's systems stay in aggregated.csv."""
    bm25, topics, qrels = setting
    earlier = _run([bm25], topics, qrels, MEASURES, names=["bm25"], save_dir=str(tmp_path))

    def boom(frame):
        if frame["qid"].nunique() > 1:                                 # not the one-topic warm-up
            raise RuntimeError("boom")
        return frame
    with pytest.raises(RuntimeError, match="boom"):
        _run([bm25 % 5, bm25 % 5 >> pt.apply.generic(boom)], topics, qrels, MEASURES, names=["cut", "broken"],
             save_dir=str(tmp_path))
    saved = pd.read_csv(tmp_path / "aggregated.csv").set_index("name")
    assert saved.loc["bm25", "J/q"] == pytest.approx(earlier["J/q"].iloc[0])
    assert (tmp_path / "cut.ledger.jsonl").exists() and not (tmp_path / "broken.ledger.jsonl").exists()
    again = _run([bm25 % 5], topics, qrels, MEASURES, names=["cut"], save_dir=str(tmp_path), save_mode="reuse")
    kept = gaia.Ledger.load(tmp_path / "cut.ledger.jsonl").records
    assert again["J/q"].iloc[0] > 0
    assert again["J/q"].iloc[0] == pytest.approx(sum(r["joules"] for r in kept if not r["startup"]) / 10)


def test_bad_systems_argument(setting):
    bm25, topics, qrels = setting
    with pytest.raises(TypeError, match="list or dict"):
        gaia.Experiment(bm25, topics, qrels, MEASURES)
    with pytest.raises(ValueError, match="1 names for 2 systems"):
        gaia.Experiment([bm25, bm25], topics, qrels, MEASURES, names=["x"])
