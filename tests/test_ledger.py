"""gaia.Ledger: concurrent appends, JSONL round trip, merge, per-stage summary, CSV and YAML exports."""
import json
import threading

import pandas as pd
import pyterrier as pt
import pytest
import yaml

import pyterrier_gaia as gaia
from pyterrier_gaia.cli import main as gaia_cli
from pyterrier_gaia.energy.ledger import RECORD_KEYS

TOPICS = pd.DataFrame({"qid": ["1", "2"], "query": ["light", "waves"]})


def test_many_threads_metering_at_once_lose_and_interleave_nothing(tmp_path):
    path = tmp_path / "run.jsonl"
    ledger = gaia.Ledger(path)
    threads, calls = 8, 40
    stages = [gaia.Metered(pt.apply.generic(lambda frame: frame.assign(t=1)), name=f"stage-{t}", ledger=ledger)
              for t in range(threads)]
    barrier = threading.Barrier(threads)

    def work(stage):
        barrier.wait()
        for _ in range(calls):
            stage(TOPICS)

    workers = [threading.Thread(target=work, args=(stage,)) for stage in stages]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    lines = path.read_text().splitlines()
    assert len(lines) == len(ledger) == threads * calls
    loaded = [json.loads(line) for line in lines]
    assert loaded == ledger.records
    assert pd.Series([r["stage"] for r in loaded]).value_counts().to_dict() == {f"stage-{t}": calls for t in range(threads)}


def _ledger_with_calls(path=None) -> gaia.Ledger:
    ledger = gaia.Ledger(path)
    fast = gaia.Metered(pt.apply.generic(lambda frame: frame), name="fast", ledger=ledger, carbon="FRA")
    slow = gaia.Metered(pt.apply.generic(lambda frame: frame.assign(s=sum(range(200_000)))), name="slow",
                        ledger=ledger, carbon=100)
    fast(TOPICS)
    fast(TOPICS.head(1))
    slow(TOPICS)
    return ledger


def test_summary_per_stage(tmp_path):
    ledger = _ledger_with_calls()
    table = ledger.summary()
    assert table.index.tolist() == ["fast", "slow"]
    assert table.loc["fast", "calls"] == 2 and table.loc["fast", "queries"] == 3
    records = ledger.to_frame()
    fast = records[records.stage == "fast"]
    assert table.loc["fast", "J/q"] == pytest.approx(fast["joules"].sum() / 3)
    assert table.loc["fast", "gCO2e/q"] == pytest.approx(fast["gco2e"].sum() / 3)
    assert table.loc["slow", "ms/q"] == pytest.approx(records[records.stage == "slow"]["wall_s"].sum() * 1000 / 2)
    assert (table["method"] == records["method"].iloc[0]).all() and (table["errors"] == 0).all()
    assert list(records.columns) == list(RECORD_KEYS)
    assert gaia.Ledger().summary().empty


def test_jsonl_round_trip_merge_and_cli_report(tmp_path, capsys):
    first = _ledger_with_calls(tmp_path / "a.jsonl")
    second = _ledger_with_calls(tmp_path / "b.jsonl")
    loaded = gaia.Ledger.load(tmp_path / "a.jsonl")
    assert loaded.records == first.records and loaded.path is None
    merged = gaia.Ledger.merge(first, tmp_path / "b.jsonl")
    assert len(merged) == 6
    assert [r["start"] for r in merged.records] == sorted(r["start"] for r in first.records + second.records)
    assert merged.summary().loc["fast", "calls"] == 4
    assert gaia_cli(["report", str(tmp_path / "a.jsonl")]) == 0
    printed = capsys.readouterr().out
    assert "fast" in printed and "J/q" in printed and "gCO2e/q" in printed


def test_reopening_a_path_appends(tmp_path):
    _ledger_with_calls(tmp_path / "run.jsonl")
    _ledger_with_calls(tmp_path / "run.jsonl")
    assert len(gaia.Ledger.load(tmp_path / "run.jsonl")) == 6


def test_load_rejects_what_is_not_a_ledger(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"stage": "x", "joules": 1.0}\n{"stage": \n')
    with pytest.raises(ValueError, match="broken.jsonl line 2 is not JSON"):
        gaia.Ledger.load(broken)
    broken.write_text('{"stage": "x", "joules": 1.0}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2 is not a ledger record"):
        gaia.Ledger.load(broken)


def test_branch_records_reach_the_parent(tmp_path):
    parent = gaia.Ledger(tmp_path / "all.jsonl")
    child = parent.branch()
    gaia.Metered(pt.apply.generic(lambda frame: frame), ledger=child)(TOPICS)
    assert len(child) == len(parent) == 1
    assert len(gaia.Ledger.load(tmp_path / "all.jsonl")) == 1


def test_csv_and_ir_metadata_yaml_exports(tmp_path):
    ledger = _ledger_with_calls()
    ledger.to_csv(tmp_path / "run.csv")
    table = pd.read_csv(tmp_path / "run.csv")
    assert len(table) == 3
    assert {"stage", "joules", "joules_by.cpu", "constants.carbon.pue"} <= set(table.columns)
    assert table["joules"].tolist() == pytest.approx([r["joules"] for r in ledger.records])
    text = ledger.to_yaml(tmp_path / "run.yaml", tag="bm25-run")
    document = yaml.safe_load((tmp_path / "run.yaml").read_text())
    assert yaml.safe_load(text) == document
    assert document["tag"] == "bm25-run"
    assert document["platform"]["hardware"]["cpu"]["number of cores"] >= 1
    assert any(lib.startswith("python-terrier==") for lib in document["platform"]["software"]["libraries"]["python"])
    energy = document["resources"]["energy"]
    assert energy["joules"] == pytest.approx(sum(r["joules"] for r in ledger.records))
    assert set(energy["stages"]) == {"fast", "slow"}
    assert energy["stages"]["slow"]["J/q"] == pytest.approx(ledger.summary().loc["slow", "J/q"])


def test_a_pickled_metered_stage_appends_to_the_same_file(tmp_path):
    import pickle
    path = tmp_path / "run.jsonl"
    stage = gaia.Metered(pt.Transformer.from_df(pd.DataFrame({"qid": ["1"], "docno": ["d"], "score": [1.0]})),
                         name="copied", ledger=path)
    copy = pickle.loads(pickle.dumps(stage))
    copy(TOPICS)
    stage(TOPICS)
    assert len(copy.ledger) == len(stage.ledger) == 1
    assert [r["stage"] for r in gaia.Ledger.load(path).records] == ["copied", "copied"]
