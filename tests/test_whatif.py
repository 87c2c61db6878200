"""gaia.scaling: a job's parts on N nodes, from a calibrated cost model (Amdahl: what N shortens, what it
does not, and the idle power of nodes that wait)."""
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.scaling import Fixed, Split, Transfer, scale_out, summary

HOME = "epyc-9654"


@pytest.fixture(scope="module")
def model():
    """Exact records: 0.5 s + 1 ns per FLOP, 2 J + 4 nJ per FLOP, on a stated profile."""
    records = [{"stage": "enc", "queries": 1, "wall_s": 0.5 + 1e-9 * f, "joules": 2 + 4e-9 * f,
                "counts": {"flops": f}} for f in (1e9, 2e9, 5e9, 8e9)]
    return gaia.CostModel.calibrate(records, hardware=HOME)


def rows(table, part):
    return table[table.part == part].set_index("nodes")


def test_split_work_shrinks_with_nodes_while_fixed_and_shared_transfers_do_not(model):
    job = [Split("encode", "enc", {"flops": 1e12}), Fixed("start", 10.0),
           Transfer("index to each node", bytes=2e9, bandwidth=1e9, per_node=True),
           Transfer("shards to the driver", bytes=3e9, bandwidth=1e9)]
    table = scale_out(model, job, nodes=[1, 4])
    encode = rows(table, "encode")["seconds"]
    assert encode[1] == pytest.approx(0.5 + 1000) and encode[4] == pytest.approx(0.5 + 250)
    assert list(rows(table, "start")["seconds"]) == [10.0, 10.0]
    assert list(rows(table, "index to each node")["seconds"]) == pytest.approx([2.0, 8.0])
    assert list(rows(table, "shards to the driver")["seconds"]) == pytest.approx([3.0, 3.0])
    totals = rows(table, "total")["seconds"]
    assert totals[4] == pytest.approx(250.5 + 10 + 8 + 3)


def test_energy_counts_every_node_and_the_idle_power_of_those_that_wait(model):
    profile = gaia.hardware.get(HOME)
    job = [Split("encode", "enc", {"flops": 4e12}), Fixed("merge", 5.0, on="driver"),
           Transfer("shards", bytes=2e9, bandwidth=1e9)]
    table = scale_out(model, job, nodes=[4])
    joules = rows(table, "encode")["joules"][4], rows(table, "merge")["joules"][4], rows(table, "shards")["joules"][4]
    assert joules[0] == pytest.approx(4 * (2 + 4e-9 * 1e12))             # 4 nodes, each a quarter of the work
    assert joules[1] == pytest.approx(5 * profile.tdp_w + 3 * 5 * profile.idle_w)
    assert joules[2] == pytest.approx(4 * 2 * profile.idle_w)
    assert rows(table, "total")["joules"][4] == pytest.approx(sum(joules))


def test_workers_on_a_node_share_its_part_like_nodes_do(model):
    on_nodes = scale_out(model, [Split("encode", "enc", {"flops": 1e12})], nodes=[4])
    on_workers = scale_out(model, [Split("encode", "enc", {"flops": 1e12}, workers=4)], nodes=[1])
    assert on_workers.seconds.iloc[0] == pytest.approx(on_nodes.seconds.iloc[0])
    assert on_workers.joules.iloc[0] == pytest.approx(on_nodes.joules.iloc[0])


def test_a_part_on_other_hardware_is_the_cost_models_what_if(model):
    table = scale_out(model, [Split("encode", "enc", {"flops": 1e12}, hardware="h100")], nodes=[2])
    expected = model.predict({"flops": 5e11}, stage="enc", hardware="h100")
    assert table.seconds.iloc[0] == pytest.approx(expected.latency_s)
    assert expected.what_if and expected.latency_s < model.predict({"flops": 5e11}, stage="enc").latency_s
    job_profile = gaia.hardware.get(HOME)                               # waits meanwhile: its idle power
    assert table.joules.iloc[0] == pytest.approx(2 * expected.joules + 2 * table.seconds.iloc[0] * job_profile.idle_w)


def test_summary_names_the_part_that_stops_scaling(model):
    job = [Split("encode", "enc", {"flops": 1e11}), Transfer("index to each node", 4e9, 1e9, per_node=True)]
    table = summary(scale_out(model, job, nodes=[1, 2, 16])).set_index("nodes")
    assert table.loc[1, "speedup"] == 1.0 and table.loc[1, "slowest"] == "encode"
    assert table.loc[16, "slowest"] == "index to each node" and table.loc[16, "efficiency"] < 0.2
    assert table.loc[16, "fixed_share"] == pytest.approx(64 / (64 + 0.5 + 100 / 16))
    assert table["joules"].is_monotonic_increasing                      # waiting nodes draw idle power


@pytest.mark.parametrize("call, message", [
    (lambda m: scale_out(m, [Fixed("a", 1.0)], nodes=[0]), r"nodes contains 0"),
    (lambda m: scale_out(m, ["encode"], nodes=[1]), r"part 'encode' is a str; expected Split, Fixed or Transfer"),
    (lambda m: scale_out(m, [], nodes=[1]), r"no parts"),
    (lambda m: Transfer("index", bytes=-1, bandwidth=1e9), r"Transfer\('index'\): bytes=-1; expected a non-negative"),
    (lambda m: Transfer("index", bytes=1, bandwidth=0), r"bandwidth=0; expected a positive"),
    (lambda m: Fixed("merge", 1.0, on="everywhere"), r"on='everywhere'; expected 'each' or 'driver'"),
    (lambda m: Split("encode", "enc", workers=0), r"workers=0; expected a whole number >= 1"),
    (lambda m: scale_out(m, [Split("encode", "bm25")], nodes=[1]), r"stage 'bm25' was not calibrated"),
])
def test_bad_input_is_named(model, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(model)
