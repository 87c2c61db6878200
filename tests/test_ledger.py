"""gaia.Ledger: concurrent appends, JSONL round trip, merge, per-stage summary, CSV and YAML exports."""
import json
import os
import re
import threading
import warnings

import pandas as pd
import pyterrier as pt
import pytest
import yaml
from hypothesis import given, settings, strategies as st

import pyterrier_gaia as gaia
from pyterrier_gaia.cli import main as gaia_cli
from pyterrier_gaia.energy.ledger import RECORD_KEYS
from pyterrier_gaia.energy.record import Record
from pyterrier_gaia.energy.report import with_unit

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
    assert "fast" in printed and "energy/q" in printed and "CO2e/q" in printed


def test_units_keep_three_figures_with_an_si_prefix():
    assert with_unit(3e-05, "g") == "30 µg" and with_unit(0.8123, "J") == "812 mJ"
    assert with_unit(1234.5, "J") == "1.23 kJ" and with_unit(0.99996, "J") == "1 J" and with_unit(0, "J") == "0 J"
    assert with_unit(float("nan"), "J") == "-" and with_unit(None, "g") == "-"


def test_cli_report_fits_100_columns_with_units_and_groups_by_system(tmp_path, capsys):
    path = tmp_path / "run.jsonl"
    ledger = gaia.Ledger(path)
    long = "BM25 % 100 >> MiniLM re-ranker at int8, fused with BM25 at α=0.3"
    for name, startup in [(f"{long} / start-up", True), (f"{long} / LuceneBM25", False), (f"{long} / rerank", False),
                          ("BM25 / LuceneBM25", False)]:
        gaia.Metered(pt.apply.generic(lambda frame: frame), name=name, ledger=ledger, startup=startup)(TOPICS)
    assert gaia_cli(["report", str(path)]) == 0
    by_stage = capsys.readouterr().out.splitlines()
    assert max(map(len, by_stage)) <= 100 and len(by_stage) >= 6
    text = "\n".join(by_stage)
    assert not re.search(r"\de[-+]\d", text) and re.search(r"\d [nµm]g ", text) and re.search(r"\d [nµm]?J\n", text)
    assert gaia_cli(["report", str(path), "--by", "system"]) == 0
    by_system = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(by_system) if line.startswith("system "))
    start_up, system, bm25 = by_system[header + 1:header + 4]
    assert "start-up" in start_up and system.startswith(long[:20]) and bm25.startswith("BM25 ")
    assert system.split()[-10:-8] == ["2", "2"]          # 2 calls (one per stage) serving the 2 queries


def test_cli_report_on_a_missing_or_bad_file_says_so_and_exits_2(tmp_path, capsys):
    assert gaia_cli(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "gaia report: cannot read" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a ledger\n")
    assert gaia_cli(["report", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert "skipped 1 line(s)" in err and "notes.txt holds no ledger records" in err
    (tmp_path / "empty.jsonl").write_text("")
    assert gaia_cli(["report", str(tmp_path / "empty.jsonl")]) == 2
    assert "(the file is empty)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gaia_cli(["report", "--help"])
    assert "``" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        gaia_cli(["--help"])
    assert "``" not in capsys.readouterr().out


def test_reopening_a_path_appends(tmp_path):
    _ledger_with_calls(tmp_path / "run.jsonl")
    _ledger_with_calls(tmp_path / "run.jsonl")
    assert len(gaia.Ledger.load(tmp_path / "run.jsonl")) == 6


def test_load_skips_lines_that_are_not_records_and_says_where(tmp_path):
    good = _ledger_with_calls(tmp_path / "run.jsonl").records
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], '{"stage": ', "", "[1, 2]", lines[1], '{"stage": "x"}', lines[2]]) + "\n")
    with pytest.warns(UserWarning, match=r"skipped 3 line\(s\) of .*broken.jsonl .*line 2: not JSON.*"
                                         r"line 4: not a record: a JSON array.*line 6: not a record: no 'joules'"):
        loaded = gaia.Ledger.load(broken)
    assert loaded.records == good


def test_a_record_is_one_typed_dataclass_with_the_file_format_of_record_keys():
    ledger = _ledger_with_calls()
    record = ledger.records[0]
    typed = Record.from_dict(record)
    assert typed.stage == "fast" and typed.queries == 2 and typed.startup is False
    assert typed.to_dict() == record and tuple(typed.to_dict()) == RECORD_KEYS
    old = {key: value for key, value in record.items() if key not in ("startup", "sensing_s")}   # an older writer
    assert Record.from_dict({**old, "host": "node-1"}).to_dict() == {**record, "sensing_s": None, "host": "node-1"}
    with pytest.raises(ValueError, match="queries=-1, expected a non-negative integer"):
        Record.from_dict({**record, "queries": -1})
    with pytest.raises(ValueError, match="gaia.Ledger.append: not a ledger record: no 'stage'"):
        ledger.append({"joules": 1.0})


def test_a_ledger_whose_file_goes_away_keeps_the_output_and_the_records(tmp_path):
    folder = tmp_path / "runs"
    stage = gaia.Metered(pt.apply.generic(lambda frame: frame.assign(seen=1)), name="s", ledger=folder / "run.jsonl")
    stage(TOPICS)
    (folder / "run.jsonl").unlink()
    folder.rmdir()                                    # the folder removed while the experiment runs
    with pytest.warns(RuntimeWarning, match=r"cannot append to .*runs/run.jsonl any more.*record 2 and the next"):
        out = stage(TOPICS)
    assert out["seen"].tolist() == [1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # warned once, not at every call
        stage(TOPICS)
    assert len(stage.ledger) == 3
    stage.ledger.to_jsonl(tmp_path / "rescued.jsonl")
    assert gaia.Ledger.load(tmp_path / "rescued.jsonl").records == stage.ledger.records


def test_a_short_write_stops_writing_and_warns(tmp_path, monkeypatch):
    ledger = gaia.Ledger(tmp_path / "run.jsonl")
    monkeypatch.setattr(os, "write", lambda descriptor, data: len(data) // 2)   # a full disk
    with pytest.warns(RuntimeWarning, match="wrote .* bytes"):
        gaia.Metered(pt.apply.generic(lambda frame: frame), ledger=ledger)(TOPICS)
    assert len(ledger) == 1


def test_appending_after_a_half_written_line_starts_a_fresh_line(tmp_path):
    path = tmp_path / "run.jsonl"
    first = _ledger_with_calls(path).records
    path.write_bytes(path.read_bytes()[:-25])         # the last record cut by a crash
    second = _ledger_with_calls(path).records
    with pytest.warns(UserWarning, match=r"skipped 1 line\(s\).*line 3: not JSON"):
        loaded = gaia.Ledger.load(path)
    assert loaded.records == first[:2] + second


def test_summary_by_system_keeps_start_up_records_apart():
    ledger = gaia.Ledger()
    for name, startup in [("A / start-up", True), ("A / bm25", False), ("A / rerank", False), ("B / bm25", False)]:
        gaia.Metered(pt.apply.generic(lambda frame: frame), name=name, ledger=ledger, startup=startup)(TOPICS)
    table = ledger.summary(by="system")
    assert table.index.tolist() == ["A / start-up", "A", "B"]
    assert table.loc["A", "calls"] == 2 and table.loc["A", "queries"] == 2  # its stages served the same 2
    assert table.loc["A", "J"] == pytest.approx(sum(r["joules"] for r in ledger.records[1:3]))
    with pytest.raises(ValueError, match="by='query'"):
        ledger.summary(by="query")


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
    text = ledger.to_ir_metadata(tmp_path / "run.yml", tag="bm25-run", metadata={"dataset": "vaswani"})
    document = yaml.safe_load((tmp_path / "run.yml").read_text())
    assert yaml.safe_load(text) == document
    assert document["schema version"] == "0.2"                          # tirex-tracker's ir_metadata 0.2-beta
    assert document["metadata"] == {"tag": "bm25-run", "dataset": "vaswani"}
    assert document["platform"]["hardware"]["cpu"]["number of cores"] >= 1
    assert any(lib.startswith("python-terrier==") for lib in document["platform"]["software"]["libraries"]["python"])
    records, resources = ledger.records, document["resources"]
    assert resources["runtime"]["wallclock"] == f"{sum(r['wall_s'] for r in records) * 1e3:.3f} ms"
    cpu = sum(r["joules_by"]["cpu"] + r["joules_by"]["static"] for r in records)
    assert float(resources["cpu"]["energy used process"].removesuffix(" J")) == pytest.approx(cpu, rel=1e-5)
    assert float(resources["ram"]["energy used process"].removesuffix(" J")) == pytest.approx(
        sum(r["joules_by"]["dram"] for r in records), rel=1e-5)
    energy = resources["energy"]
    assert (energy["method"], energy["modelled"], energy["accounting"]) == ("model", True, records[0]["accounting"])
    assert energy["joules"] == pytest.approx(sum(r["joules"] for r in records))
    assert set(energy["stages"]) == {"fast", "slow"}
    slow = energy["stages"]["slow"]
    assert slow["J/q"] == pytest.approx(ledger.summary().loc["slow", "J/q"])
    assert sum(slow["joules by component"].values()) == pytest.approx(slow["J"])


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


# ----- the reader on mangled files (property-based)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
_records = st.builds(
    lambda stage, joules, queries, qid, wall, counts: Record(
        stage=stage, joules=joules, queries=queries, qid=qid, wall_s=wall, counts=counts).to_dict(),
    _text, _finite, st.integers(0, 10 ** 6), st.none() | _text, st.none() | _finite,
    st.dictionaries(_text, st.integers(0, 10 ** 9) | _finite, max_size=3))
# lines that are never records: each a single line, not blank
_bad_lines = st.one_of(
    st.binary(min_size=1, max_size=40).map(lambda raw: b"\xff" + raw.replace(b"\n", b"")),     # garbage bytes
    st.sampled_from([b"[1, 2]", b"3", b'"text"', b"null", b"true", b"{}", b"[[[[[[[[", b"{\"stage\": "]),
    _records.map(lambda r: json.dumps({k: v for k, v in r.items() if k != "joules"}).encode()),   # a missing key
    _records.map(lambda r: json.dumps({**r, "docs": "many"}).encode()),                           # a wrong type
    _records.map(lambda r: json.dumps(r).encode()).flatmap(                                       # truncated
        lambda line: st.integers(1, len(line) - 1).map(lambda cut: line[:cut])),
)
_blank_lines = st.sampled_from([b"", b"  ", b"\t", b"\r"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(_records.map(lambda r: ("good", r)), _bad_lines.map(lambda b: ("bad", b)),
                          _blank_lines.map(lambda b: ("blank", b))), max_size=12),
       st.booleans())
def test_reader_keeps_every_good_line_and_counts_the_rest(tmp_path_factory, lines, final_newline):
    from pyterrier_gaia.energy.ledger import read_jsonl
    data = b"\n".join(json.dumps(item).encode() if kind == "good" else item for kind, item in lines)
    data += b"\n" if final_newline else b""
    records, skipped = read_jsonl(data)
    assert records == [item for kind, item in lines if kind == "good"]
    assert [number for number, _ in skipped] == [i for i, (kind, _) in enumerate(lines, start=1) if kind == "bad"]
    path = tmp_path_factory.mktemp("mangled") / "run.jsonl"
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert gaia.Ledger.load(path).records == records
    assert len(caught) == (1 if skipped else 0)
