"""gaia.CostModel on synthetic ledgers: fitting, EW-RLS, what-if hardware, persistence, bad input, monotonicity."""
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.fit import EWRLS
from pyterrier_gaia.encoders.flops import forward_flops

HIDDEN, FFN, LAYER_PARAMS = 384, 1536, 4 * 384 * 384 + 2 * 384 * 1536


def encoder_counts(depth, layers=6, bits=32, length=64, batch=32):
    """The counts a MiniLM-shaped re-ranker reports for ``depth`` candidates (as encoders/base.py does)."""
    passes = math.ceil(depth / batch)
    return {"tokens": depth * length, "layer_tokens": depth * length * layers,
            "flops": forward_flops(depth, length, layers, HIDDEN, FFN),
            "weight_bytes": passes * layers * LAYER_PARAMS * bits // 8, "forward_passes": passes, "pairs": depth}


def encoder_ledger(n=120, seed=0, slowdown=1.0):
    """Records whose latency is a known non-negative function of the counts, plus noise; energy at ~3 W."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        counts = encoder_counts(int(rng.integers(5, 200)), int(rng.integers(1, 7)), int(rng.choice([8, 16, 32])),
                                int(rng.integers(16, 128)))
        wall = slowdown * (2e-3 + 4e-11 * counts["flops"] + 2e-10 * counts["weight_bytes"] + 1e-6 * counts["tokens"])
        wall *= 1 + rng.normal(0, 0.01)
        records.append({"stage": "minilm", "queries": 1, "docs": counts["pairs"], "wall_s": wall,
                        "cpu_s": 2 * wall, "joules": 3.0 * wall, "error": None, "counts": counts})
    return records


def bm25_ledger(n=60, seed=1):
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        postings, docs = int(rng.integers(500, 10_000)), int(rng.choice([10, 100, 1000]))
        wall = (8e-3 + 2e-7 * postings + 2e-5 * docs) * (1 + rng.normal(0, 0.01))
        records.append({"stage": "bm25", "queries": 1, "wall_s": wall, "joules": 2.5 * wall, "error": None,
                        "counts": {"postings": postings, "docs_scored": docs}})
    return records


@pytest.fixture(scope="module")
def model():
    return gaia.CostModel.calibrate(encoder_ledger() + bm25_ledger(), hardware="epyc-genoa-2vcpu")


# ----- calibration and prediction
def test_calibrate_fits_each_stage_and_predicts_held_out_records(model):
    assert model.stages == ["minilm", "bm25"]
    assert model.r2(encoder_ledger(seed=5)) > 0.99
    assert model.r2(bm25_ledger(seed=6)) > 0.99
    coefficients = model.coefficients()
    assert (coefficients.to_numpy() >= 0).all()
    assert coefficients.loc[("bm25", "docs_scored"), "wall_s"] == pytest.approx(2e-5, rel=0.1)


def test_ledger_objects_lists_and_frames_give_the_same_model():
    records = bm25_ledger()

    class Ledger:  # anything with .records
        pass

    ledger = Ledger()
    ledger.records = records
    models = [gaia.CostModel.calibrate(x, hardware=None) for x in (records, ledger, pd.DataFrame(records))]
    predictions = [m.predict({"postings": 3000, "docs_scored": 100}).latency_s for m in models]
    assert predictions[0] == predictions[1] == predictions[2]


def test_predict_from_counts_and_from_queries(model):
    counts = encoder_counts(100)
    one = model.predict(counts, stage="minilm")
    assert one.latency_s > 0 and one.joules > 0 and not one.what_if
    assert model.predict(stage="bm25", queries=20).latency_s > model.predict(stage="bm25", queries=2).latency_s
    pipeline = model.predict(stage=["bm25", "minilm"], queries=5)
    parts = [model.predict(stage=s, queries=5) for s in ("bm25", "minilm")]
    assert pipeline.latency_s == pytest.approx(sum(p.latency_s for p in parts))
    assert pipeline.joules == pytest.approx(sum(p.joules for p in parts))


def test_nnls_keeps_coefficients_non_negative_when_a_count_seems_to_save_time():
    rng = np.random.default_rng(3)
    records = []
    for _ in range(50):
        postings, docs = int(rng.integers(500, 10_000)), int(rng.integers(10, 1000))
        wall = 0.05 + 1e-6 * postings - 1e-5 * docs   # more docs "faster": impossible, must not be learnt
        records.append({"stage": "s", "queries": 1, "wall_s": wall, "joules": wall, "error": None,
                        "counts": {"postings": postings, "docs_scored": docs}})
    coefficients = gaia.CostModel.calibrate(records, hardware=None).coefficients()
    assert coefficients.loc[("s", "docs_scored"), "wall_s"] == 0
    assert (coefficients.to_numpy() >= 0).all()


def test_calibration_from_a_sample_of_records():
    records = encoder_ledger(200)
    full = gaia.CostModel.calibrate(records, hardware=None)
    tenth = gaia.CostModel.calibrate(records, sample=0.1, seed=7, hardware=None)
    assert tenth._stages["minilm"].totals["calls"] == 20
    counts = encoder_counts(100)
    assert tenth.predict(counts).latency_s == pytest.approx(full.predict(counts).latency_s, rel=0.05)
    assert gaia.CostModel.calibrate(records, sample=12, hardware=None)._stages["minilm"].totals["calls"] == 12


def test_save_and_load_round_trip(model, tmp_path):
    path = model.save(tmp_path / "cost.json")
    again = gaia.CostModel.load(path)
    counts = encoder_counts(50)
    assert again.predict(counts, stage="minilm") == model.predict(counts, stage="minilm")
    assert again.hardware == model.hardware
    record = encoder_ledger(1, seed=9)[0]
    again.update(record)
    copy = gaia.CostModel.load(path).update(record)
    assert copy.predict(counts, stage="minilm") == again.predict(counts, stage="minilm")


def test_a_model_calibrated_on_a_detected_host_profile_keeps_it_when_saved(tmp_path):
    """A host's detected profile ("local-...") is only found on that host: a saved model carries its
    figures, so its what-ifs and scale-outs work wherever it is loaded."""
    elsewhere = gaia.hardware.Profile(
        "local-some-other-host", "cpu", "4 vCPUs detected on another host", {"fp32": 2.6e11, "int8": 1.0e12},
        20e9, 16.0, 1.6, 2.5, 4, ("GenuineIntel", 6, 143, 4), {"tdp_w": "CodeCarbon's table"})
    with pytest.raises(ValueError, match="unknown hardware 'local-some-other-host'"):
        gaia.hardware.get(elsewhere.name)
    model = gaia.CostModel.calibrate(encoder_ledger(), hardware=elsewhere)
    again = gaia.CostModel.load(model.save(tmp_path / "cost.json"))
    assert again.hardware == elsewhere.name and again.home == elsewhere
    assert again.home.cpuid == elsewhere.cpuid and again.home.sources == elsewhere.sources
    counts = encoder_counts(50)
    assert again.predict(counts, stage="minilm", hardware="h100") == model.predict(counts, stage="minilm",
                                                                                   hardware="h100")
    plan = gaia.scaling.scale_out(again, [gaia.scaling.Split("encode", "minilm", encoder_counts(1000))], nodes=[1, 2])
    total = plan[plan["part"] == "total"].set_index("nodes")["seconds"]
    assert total[1] > total[2] > 0
    older = json.loads((tmp_path / "cost.json").read_text())
    del older["profile"]                                  # as written before models kept their profile
    (tmp_path / "older.json").write_text(json.dumps(older))
    with pytest.raises(ValueError, match="names the hardware it was calibrated on but does not hold its figures"):
        gaia.CostModel.load(tmp_path / "older.json")


# ----- what-if hardware
def test_what_if_scales_compute_by_throughput_and_leaves_host_work_on_the_host(model):
    counts = encoder_counts(100)
    home = model.predict(counts, stage="minilm")
    h100 = model.predict(counts, stage="minilm", hardware="h100")
    assert h100.what_if and "not a measurement" in h100.basis and h100.hardware == "h100"
    assert h100.latency_s < home.latency_s
    assert model.predict(counts, stage="minilm", hardware="h100", precision="bf16").latency_s < h100.latency_s
    bm25 = {"postings": 4000, "docs_scored": 1000}
    assert model.predict(bm25, stage="bm25", hardware="h100").latency_s == pytest.approx(
        model.predict(bm25, stage="bm25").latency_s)            # Lucene stays on the host CPU
    assert model.predict(counts, stage="minilm", hardware="epyc-genoa-2vcpu") == home   # home: no what-if


def test_hardware_profiles():
    assert gaia.hardware.get("H100") is gaia.hardware.PROFILES["h100"]
    for profile in gaia.hardware.PROFILES.values():
        assert 0 < profile.idle_w < profile.tdp_w and profile.memory_bw > 0
        assert profile.flops_at("nf4")[0] >= profile.flops_at("fp32")[0]
    milan = gaia.hardware.get("epyc-7763")          # no native bf16: counted at its fp32 rate
    assert milan.flops_at("bf16") == (milan.peak_flops["fp32"], "fp32")


def test_local_profile_matches_vendor_family_model_and_cpus(tmp_path, monkeypatch):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(
        "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\n" * 2)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert gaia.hardware.local(tmp_path, measure=False).name == "epyc-genoa-2vcpu"
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert gaia.hardware.local(tmp_path, measure=False).name == "local-amd-epyc-8cpu"     # detected instead


# ----- EW-RLS
def _stream(n=300, p=5, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.uniform(0, 1, (n, p - 1))])
    truth = np.array([[0.5, 1.0], [2.0, 0.1], [1.0, 3.0], [0.3, 0.2], [1.5, 0.7]])[:p]
    Y = X @ truth + rng.normal(0, 0.05, (n, 2))
    return X, Y


def test_ewrls_with_forgetting_one_equals_batch_least_squares():
    X, Y = _stream()
    Y[:, 1] -= 2.5 * X[:, 2]    # a negative true coefficient: only the unconstrained path can match lstsq
    rls = EWRLS.fit(X[:10], Y[:10], forgetting=1.0, clip=None, nonneg=False)
    for x, y in zip(X[10:], Y[10:]):
        rls.update(x, y)
    np.testing.assert_allclose(rls.theta, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=0, atol=1e-6)


def test_ewrls_projection_is_inactive_when_least_squares_is_already_non_negative():
    X, Y = _stream(seed=1)
    assert (np.linalg.lstsq(X, Y, rcond=None)[0] > 0.05).all()
    rls = EWRLS.fit(X[:10], Y[:10], forgetting=1.0, clip=None, nonneg=True)
    for x, y in zip(X[10:], Y[10:]):
        rls.update(x, y)
    np.testing.assert_allclose(rls.theta, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=0, atol=1e-6)


def _steps_to_recover(forgetting, factor=1.5, tolerance=0.05):
    """Updates after a slow-down by ``factor`` until predictions are within ``tolerance`` of the new truth."""
    X, Y = _stream(600, seed=2)
    Y = Y[:, :1]
    rls = EWRLS.fit(X[:50], Y[:50], forgetting=forgetting, clip=3.0)
    for step, (x, y) in enumerate(zip(X[50:], Y[50:] * factor)):
        rls.update(x, y)
        if abs(rls.predict(X.mean(axis=0))[0, 0] / (factor * Y[:, 0].mean()) - 1) < tolerance:
            return step + 1
    return len(X)


def test_ewrls_with_forgetting_follows_a_slow_down_faster():
    assert _steps_to_recover(0.95) < _steps_to_recover(1.0)


def test_ewrls_clipping_limits_an_outlier():
    X, Y = _stream(seed=3)
    clipped = EWRLS.fit(X, Y, clip=3.0)
    free = EWRLS.fit(X, Y, clip=None)
    before = clipped.theta.copy()
    outlier = (X[0], Y[0] + 100.0)
    clipped.update(*outlier)
    free.update(*outlier)
    assert np.abs(clipped.theta - before).max() < np.abs(free.theta - before).max() / 10


def test_update_moves_the_model_towards_new_records():
    model = gaia.CostModel.calibrate(encoder_ledger(), hardware=None, forgetting=0.9)
    counts = encoder_counts(100)
    before = model.predict(counts).latency_s
    for record in encoder_ledger(200, seed=4, slowdown=2.0):
        model.update(record)
    assert model.predict(counts).latency_s == pytest.approx(2 * before, rel=0.1)


# ----- bad input
def test_too_few_records_says_how_many_are_needed():
    with pytest.raises(ValueError, match=r"stage 'bm25' has 2 usable records.*needs at least 3"):
        gaia.CostModel.calibrate(bm25_ledger(2), hardware=None)
    with pytest.raises(ValueError, match=r"has 1 usable records.*needs at least 3.*sample more"):
        gaia.CostModel.calibrate(bm25_ledger(10), sample=0.1, hardware=None)


def test_records_with_missing_counts_or_failures_are_skipped_with_a_warning():
    records = bm25_ledger(20)
    records[0] = {**records[0], "counts": {"postings": 10}}
    records[1] = {**records[1], "counts": None}
    records[2] = {**records[2], "error": "RuntimeError: boom"}
    with pytest.warns(UserWarning, match="skipped 2 of 19 records of stage 'bm25' with missing or negative counts"):
        with pytest.warns(UserWarning, match="skipped 1 of 20 records: 1 failed"):
            model = gaia.CostModel.calibrate(records, hardware=None)
    assert model._stages["bm25"].totals["calls"] == 17
    with pytest.warns(UserWarning, match="missing or negative counts"):
        model.update(records[1])
    assert model._stages["bm25"].totals["calls"] == 17


def test_unknown_hardware_lists_the_known_profiles(model):
    with pytest.raises(ValueError, match=r"unknown hardware 'tpu-v5'; known: epyc-genoa-2vcpu, .*h100"):
        model.predict(encoder_counts(10), stage="minilm", hardware="tpu-v5")
    with pytest.raises(ValueError, match="unknown hardware"):
        gaia.CostModel.calibrate(bm25_ledger(), hardware="cray-1")


def test_what_if_needs_the_calibration_hardware():
    model = gaia.CostModel.calibrate(bm25_ledger(), hardware=None)
    with pytest.raises(ValueError, match="calibrated on unknown hardware"):
        model.predict({"postings": 1, "docs_scored": 1}, hardware="a100")


def test_predict_bad_arguments(model):
    with pytest.raises(ValueError, match="say which stage"):
        model.predict(queries=1)
    with pytest.raises(ValueError, match="stage 'rerank' was not calibrated; known stages: minilm, bm25"):
        model.predict(queries=1, stage="rerank")
    with pytest.raises(ValueError, match="either counts= or queries="):
        model.predict({"postings": 1}, stage="bm25", queries=3)
    with pytest.raises(ValueError, match=r"counts lack \['docs_scored'\]"):
        model.predict({"postings": 1}, stage="bm25")
    with pytest.raises(ValueError, match="non-negative"):
        model.predict({"postings": -1, "docs_scored": 1}, stage="bm25")
    with pytest.raises(ValueError, match="for a pipeline"):
        model.predict({"postings": 1, "docs_scored": 1}, stage=["bm25", "minilm"])


def test_r2_skips_unknown_stages_with_a_warning(model):
    other = [{**r, "stage": "splade"} for r in bm25_ledger(5)]
    with pytest.warns(UserWarning, match="skipped 5 records of stages the model was not calibrated on"):
        assert model.r2(bm25_ledger(20, seed=8) + other) > 0.99


def test_bad_inputs_to_calibrate_and_load(tmp_path):
    with pytest.raises(ValueError, match=r"features \['flops'\] appear in no record"):
        gaia.CostModel.calibrate(bm25_ledger(), features=["postings", "flops"], hardware=None)
    with pytest.raises(TypeError, match="one record"):
        gaia.CostModel.calibrate(bm25_ledger(1)[0])
    with pytest.raises(ValueError, match="sample=1.5"):
        gaia.CostModel.calibrate(bm25_ledger(), sample=1.5, hardware=None)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a saved cost model"):
        gaia.CostModel.load(tmp_path / "x.json")
    (tmp_path / "cut.json").write_text('{"format": "pyterrier-gaia cost model", "stag')
    with pytest.raises(ValueError, match=r"cut.json is not a saved cost model \(not JSON"):
        gaia.CostModel.load(tmp_path / "cut.json")
    (tmp_path / "partial.json").write_text('{"format": "pyterrier-gaia cost model", "stages": {"bm25": {}}}')
    with pytest.raises(ValueError, match="partial.json is a damaged cost model"):
        gaia.CostModel.load(tmp_path / "partial.json")


def test_negative_or_nan_measurements_never_enter_the_fit():
    records = bm25_ledger(20)
    clean = gaia.CostModel.calibrate(records[2:], hardware=None)
    records[0] = {**records[0], "wall_s": -0.5}
    records[1] = {**records[1], "joules": float("nan")}
    with pytest.warns(UserWarning, match=r"skipped 2 of 20 records.*record 0 \(stage 'bm25': wall_s=-0.5.*"
                                         r"record 1 \(stage 'bm25': .*joules=nan"):
        model = gaia.CostModel.calibrate(records, hardware=None)
    pd.testing.assert_frame_equal(model.coefficients(), clean.coefficients())
    with pytest.warns(UserWarning, match="wall_s=-0.5"):
        model.update(records[0])
    assert model._stages["bm25"].totals["calls"] == 18


# ----- monotonicity (hypothesis)
budgets = st.tuples(st.integers(1, 1000), st.integers(1, 6), st.sampled_from([4, 8, 16, 32]), st.integers(8, 256))
targets = st.sampled_from([None, *gaia.hardware.PROFILES])


@settings(max_examples=200, deadline=None)
@given(small=budgets, extra=st.tuples(st.integers(0, 1000), st.integers(0, 6), st.integers(0, 3)),
       hardware=targets, precision=st.sampled_from(["fp32", "bf16", "int8"]))
def test_predicted_cost_never_decreases_when_a_budget_grows(model, small, extra, hardware, precision):
    depth, layers, bits, length = small
    grown_bits = [4, 8, 16, 32][min(3, [4, 8, 16, 32].index(bits) + extra[2])]
    low = model.predict(encoder_counts(depth, layers, bits, length), stage="minilm",
                        hardware=hardware, precision=precision)
    high = model.predict(encoder_counts(depth + extra[0], min(6, layers + extra[1]), grown_bits, length),
                         stage="minilm", hardware=hardware, precision=precision)
    assert high.latency_s >= low.latency_s and high.joules >= low.joules


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.lists(st.floats(0, 1e3), min_size=3, max_size=3), st.floats(-1e3, 1e3)),
                min_size=1, max_size=40), st.sampled_from([0.9, 0.99, 1.0]))
def test_ewrls_coefficients_stay_non_negative_whatever_it_sees(stream, forgetting):
    X, Y = _stream(20, p=3)
    rls = EWRLS.fit(X, Y[:, :1], forgetting=forgetting)
    for x, y in stream:
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # no overflow or invalid values on the way
            rls.update([1.0, *x[1:]], [y])
        assert (rls.theta >= 0).all()


def test_a_count_proportional_to_another_is_left_out():
    records = [{**r, "counts": {**r["counts"], "weight_bytes": r["counts"]["forward_passes"] * 1000}}
               for r in encoder_ledger()]      # one precision: every pass reads the same weights
    model = gaia.CostModel.calibrate(records, hardware=None)
    assert "weight_bytes" in model._stages["minilm"].features
    assert "forward_passes" not in model._stages["minilm"].features
    assert model.r2(records) > 0.99
