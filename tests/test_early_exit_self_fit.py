"""Fitting on first use: one-off work metered as its own record (energy.metered.one_off), and fitted
state cached on disk and in memory by key (rankers.self_fit)."""
import time

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import report
from pyterrier_gaia.energy.metered import one_off
from pyterrier_gaia.energy.profile import DRAM_W_PER_GIB
from pyterrier_gaia.energy.sensors import resident_gib
from pyterrier_gaia.rankers.self_fit import SelfFit, collection_key, load_or_fit

TOPICS = pd.DataFrame({"qid": ["1", "2"], "query": ["light", "radio"]})


def _burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class FitsOnFirstUse(pt.Transformer):
    """A stage that works 0.1 CPU-s per call, and 0.4 CPU-s more on its first call inside one_off."""

    def __init__(self):
        self.fitted = False

    def transform(self, inp):
        if len(inp) == 0:       # PyTerrier's inspection calls it on an empty frame, outside any meter
            return inp
        if not self.fitted:
            with one_off("fit"):
                _burn(0.4)
                report(pairs=3)
            self.fitted = True
        _burn(0.1)
        report(pairs=5)
        return inp


def test_one_off_work_is_its_own_startup_record_and_left_out_of_the_call():
    stage = gaia.Metered(FitsOnFirstUse(), name="ranker", sensors="model")
    stage(TOPICS)
    stage(TOPICS)
    fit, first, second = stage.ledger.records
    assert (fit["stage"], fit["startup"], fit["queries"], fit["error"]) == ("ranker / fit", True, 0, None)
    assert (first["stage"], first["startup"]) == ("ranker", False)
    assert fit["counts"] == {"pairs": 3} and first["counts"] == {"pairs": 5}
    assert fit["cpu_s"] >= 0.4 and first["cpu_s"] < 0.3        # the call is charged its own 0.1 s only
    assert first["joules"] == pytest.approx(second["joules"], rel=0.5)
    assert first["joules"] == pytest.approx(sum(first["joules_by"].values()))
    assert first["kwh"] == pytest.approx(first["joules"] / 3.6e6)
    frame = stage.ledger.to_frame()
    assert frame.loc[~frame["startup"], "cpu_s"].max() < fit["cpu_s"]


class GrowsAfterItsFit(pt.Transformer):
    """A stage whose first call fits (0.4 CPU-s) and then holds 1 GiB more for the rest of the call."""

    def __init__(self):
        self.held = None

    def transform(self, inp):
        with one_off("fit"):
            _burn(0.4)
        self.held = np.ones(2 ** 27)                   # 1 GiB, touched: resident from here on
        _burn(0.1)
        return inp


@pytest.mark.parametrize("accounting", ["process", "machine-share"])
def test_memory_held_after_a_fit_is_not_charged_over_the_fit(accounting):
    """The DRAM term integrates the resident set over time, so the fit's part of it comes out whole; read
    at the end of the call instead, the 1 GiB held after the fit was charged over the fit's 0.4 s too."""
    stage = gaia.Metered(GrowsAfterItsFit(), name="ranker", sensors="model", accounting=accounting)
    stage(TOPICS)
    fit, call = stage.ledger.records
    most = DRAM_W_PER_GIB * resident_gib() * call["wall_s"]   # the most the call's own time can hold
    assert 0 < call["joules_by"]["dram"] <= most * 1.05
    assert fit["joules_by"]["dram"] > 0


def test_one_off_is_taken_out_of_every_enclosing_call_and_recorded_in_the_innermost_ledger():
    inner = gaia.Metered(FitsOnFirstUse(), name="inner", sensors="model")
    outer = gaia.Metered(pt.apply.generic(lambda frame: frame) >> inner, name="outer", sensors="model")
    outer(TOPICS)
    assert [r["stage"] for r in inner.ledger.records] == ["inner / fit", "inner"]
    [call] = outer.ledger.records
    assert call["cpu_s"] < 0.3 and call["counts"] == {"pairs": 5}


def test_one_off_outside_a_metered_call_just_runs_and_errors_are_recorded():
    with one_off("nothing metered"):
        done = True
    assert done

    class Fails(pt.Transformer):
        def transform(self, inp):
            with one_off("fit"):
                raise RuntimeError("cannot fit")
    stage = gaia.Metered(Fails(), name="failing", sensors="model")
    with pytest.raises(RuntimeError, match="cannot fit"):
        stage(TOPICS)
    fit, call = stage.ledger.records
    assert fit["startup"] and fit["error"] == "RuntimeError: cannot fit" and call["error"] == fit["error"]


def test_one_off_inside_an_experiment_is_never_in_j_per_query():
    candidates = pt.Transformer.from_df(TOPICS.assign(docno=["a", "b"], score=[1.0, 2.0]))
    qrels = pd.DataFrame({"qid": ["1"], "docno": ["a"], "label": [1]})
    ledger = gaia.Ledger()
    result = gaia.Experiment([candidates >> FitsOnFirstUse()], TOPICS, qrels, [pt.measures.P @ 1],
                             names=["fitting"], ledger=ledger, sensors="model", warmup=False)
    [fit] = [r for r in ledger.records if r["startup"]]
    [call] = [r for r in ledger.records if r["stage"] == "fitting / FitsOnFirstUse"]
    assert fit["stage"] == "fitting / FitsOnFirstUse / fit" and fit["cpu_s"] >= 0.4 and call["cpu_s"] < 0.3
    charged = sum(r["joules"] for r in ledger.records if not r["startup"]) / len(TOPICS)
    assert result["J/q"].iloc[0] == pytest.approx(charged)


def _state_io(calls):
    def fit():
        calls.append("fit")
        return {"weight": 2.5}

    def save(state, folder):
        (folder / "state.txt").write_text(str(state["weight"]))

    def load(folder):
        calls.append("load")
        return {"weight": float((folder / "state.txt").read_text())}
    return fit, save, load


def test_load_or_fit_fits_once_then_loads_from_disk_and_memory(tmp_path):
    calls = []
    fit, save, load = _state_io(calls)
    key = {"model": "tiny", "collection": collection_key("vaswani"), "queries": 8}
    assert load_or_fit("heads", key, fit, save, load, tmp_path) == {"weight": 2.5}
    assert load_or_fit("heads", key, fit, save, load, tmp_path) == {"weight": 2.5}
    assert calls == ["fit", "load"]
    assert not [p for p in (tmp_path / "heads").iterdir() if p.name.startswith(".")]   # no staging left
    cached = SelfFit("heads", save, load, tmp_path)
    cached.get(key, fit), cached.get(key, fit)
    assert calls == ["fit", "load", "load"]                 # from disk once, then from memory
    cached.get({**key, "queries": 9}, fit)
    assert calls[-1] == "fit"                               # another setting: another state


def test_a_damaged_cached_state_is_refitted_with_a_warning(tmp_path):
    calls = []
    fit, save, load = _state_io(calls)
    key = {"model": "tiny"}
    load_or_fit("heads", key, fit, save, load, tmp_path)
    [folder] = (tmp_path / "heads").iterdir()
    (folder / "state.txt").write_text("not a number")
    with pytest.warns(RuntimeWarning, match="cannot load the cached heads"):
        assert load_or_fit("heads", key, fit, save, load, tmp_path) == {"weight": 2.5}
    assert calls == ["fit", "load", "fit"]


def test_collection_key_names_or_fingerprints_the_documents():
    assert collection_key("vaswani") == "name:vaswani"
    one = collection_key(None, ["d1", "d2"], ["a text", "another"])
    assert one == collection_key(None, ["d1", "d2"], ["a text", "another"]).lower()
    assert one != collection_key(None, ["d1", "d2"], ["a text", "changed"])
