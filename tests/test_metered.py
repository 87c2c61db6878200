"""gaia.Metered and gaia.meter: same output as the stage, one record per call, errors, operators kept."""
import json

import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import report
from pyterrier_gaia.energy.ledger import RECORD_KEYS

TOPICS = pd.DataFrame({"qid": ["1", "2", "3"], "query": ["light scattering", "radio waves", "crystal growth"]})
RESULTS = pd.DataFrame({"qid": ["1", "1", "2", "2", "3"], "docno": ["a", "b", "a", "c", "d"],
                        "score": [3.0, 1.0, 2.0, 1.5, 0.5], "rank": [0, 1, 0, 1, 0]})


def _source():
    return pt.Transformer.from_df(RESULTS)


def _stages():
    return {
        "from_df": _source(),
        "apply.rename": pt.apply.rename({"query": "text"}),
        "apply.doc_score": _source() >> pt.apply.doc_score(lambda row: row["score"] * 2 + len(row["docno"])),
        "apply.generic": pt.apply.generic(lambda frame: frame.assign(n=len(frame))),
    }


@pytest.mark.parametrize("name", sorted(_stages()))
def test_output_identical_transform_and_transform_iter(name):
    plain, wrapped = _stages()[name], gaia.Metered(_stages()[name])
    pd.testing.assert_frame_equal(wrapped(TOPICS), plain(TOPICS))
    records = TOPICS.to_dict(orient="records")
    assert wrapped(records) == plain(records)
    assert len(wrapped.ledger) == 2


def test_output_identical_on_bm25_and_record_fields(vaswani_index, vaswani):
    bm25 = vaswani_index.bm25(num_results=20)
    topics = vaswani.get_topics().head(4)
    metered = gaia.Metered(bm25, name="bm25")
    pd.testing.assert_frame_equal(metered(topics), bm25(topics))
    [record] = metered.ledger.records
    assert tuple(record) == RECORD_KEYS
    assert (record["stage"], record["queries"], record["docs"], record["qid"]) == ("bm25", 4, 80, None)
    assert record["counts"]["docs_scored"] == 80 and record["counts"]["postings"] > 80
    assert record["method"] in {"model", "rapl"} and record["error"] is None
    assert record["joules"] == pytest.approx(sum(record["joules_by"].values())) and record["joules"] > 0
    assert record["wall_s"] > 0 and record["cpu_s"] >= 0 and 0 <= record["sensing_s"] < record["wall_s"]
    carbon = record["constants"]["carbon"]
    assert record["kwh"] == pytest.approx(record["joules"] / 3.6e6)
    assert record["gco2e"] == pytest.approx(record["kwh"] * carbon["pue"] * carbon["intensity_gco2e_per_kwh"])
    json.dumps(record, allow_nan=False)                               # strict JSON


def test_single_query_call_names_its_qid_and_empty_input_gives_empty_output():
    metered = gaia.Metered(_source())
    metered(TOPICS.head(1))
    empty = metered(TOPICS.head(0))
    assert len(empty) == 0
    first, second = metered.ledger.records
    assert (first["qid"], first["queries"], first["docs"]) == ("1", 1, 2)
    assert (second["qid"], second["queries"], second["docs"]) == (None, 0, 0)


class Failing(pt.Transformer):
    def __init__(self, error):
        self.error = error

    def transform(self, frame):
        report(pairs=7)
        raise self.error


def test_error_is_recorded_and_the_same_exception_propagates(tmp_path):
    path = tmp_path / "run.jsonl"
    error = KeyError("column 'score' missing")
    metered = gaia.Metered(Failing(error), name="broken", ledger=path)
    with pytest.raises(KeyError) as caught:
        metered(TOPICS)
    assert caught.value is error and error.__cause__ is None and error.__context__ is None
    assert caught.traceback[-1].name == "transform"
    [record] = metered.ledger.records
    assert record["error"] == "KeyError: \"column 'score' missing\"" and record["docs"] == 0
    assert record["counts"] == {"pairs": 7}
    [line] = path.read_text().splitlines()
    assert json.loads(line) == record


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected a pt.Transformer to meter, got function"):
        gaia.Metered(lambda frame: frame)
    with pytest.raises(TypeError, match="got DataFrame"):
        gaia.Metered(RESULTS)
    with pytest.raises(TypeError, match="gaia.meter: expected a pt.Transformer pipeline, got str"):
        gaia.meter("BM25")
    with pytest.raises(TypeError, match="ledger=42"):
        gaia.Metered(_source(), ledger=42)


def test_unwritable_ledger_fails_at_construction(tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file where the ledger's folder should be")
    calls = []
    stage = pt.apply.generic(lambda frame: calls.append(1) or frame)
    with pytest.raises(OSError, match="gaia.Ledger: cannot append records to .*notes.txt"):
        gaia.Metered(stage, ledger=not_a_folder / "run.jsonl")
    with pytest.raises(OSError, match="gaia.Ledger"):
        gaia.meter(stage >> stage, ledger=not_a_folder / "run.jsonl")
    assert calls == []


def test_meter_keeps_every_operator_and_its_results():
    src = _source()
    double = pt.apply.doc_score(lambda row: row["score"] * 2)
    other = pt.Transformer.from_df(RESULTS.assign(score=RESULTS["score"] + 1))
    pipelines = {
        ">> %": src % 1 >> double,
        "+": src + other,
        "**": src >> (double ** pt.Transformer.identity()),
        "|": src | other,
        "&": src & other,
        "^": (src % 1) ^ other,
        "*": src * 3,
    }
    for label, pipeline in pipelines.items():
        metered = gaia.meter(pipeline)
        assert type(metered) is type(pipeline), label
        pd.testing.assert_frame_equal(metered(TOPICS), pipeline(TOPICS), obj=label)
        stages = metered.ledger.summary().index.tolist()
        assert len(metered.ledger) == len(stages) >= 2, label


def test_meter_names_stages_uniquely_and_shares_one_ledger(tmp_path):
    double = pt.apply.doc_score(lambda row: row["score"] * 2)
    pipe = gaia.meter(_source() % 2 >> double >> double, ledger=tmp_path / "pipe.jsonl")
    pipe(TOPICS)
    assert pipe.ledger.summary().index.tolist() == ["SourceTransformer", "RankCutoff(2)",
                                                    "pt.apply.doc_score()", "pt.apply.doc_score() #2"]
    assert [stage.ledger for stage in pipe] == [pipe.ledger] * 4
    assert len((tmp_path / "pipe.jsonl").read_text().splitlines()) == 4


def test_already_metered_stage_keeps_its_ledger():
    inner = gaia.Metered(_source(), name="inner")
    pipe = gaia.meter(inner % 1)
    pipe(TOPICS)
    assert [r["stage"] for r in inner.ledger.records] == ["inner"]
    assert pipe.ledger.summary().index.tolist() == ["inner", "RankCutoff(1)"]


def test_metered_pipeline_is_inspectable_without_running():
    pipe = gaia.meter(_source() % 1)
    assert pt.inspect.transformer_outputs(pipe, ["qid", "query"]) == pt.inspect.transformer_outputs(
        _source() % 1, ["qid", "query"])
    assert len(pipe.ledger) == 0
