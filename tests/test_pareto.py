"""gaia.pareto and gaia.plot_pareto: the front, its hypervolume (against a brute-force union of
rectangles) and knee, in every orientation of the axes; bad input; the PNG."""
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import pyterrier_gaia as gaia

SYSTEMS = pd.DataFrame({  # a cost (J/q) and a quality (nDCG@10) per system
    "name": ["bm25", "top10", "top20", "top50", "top100", "plain100", "int8"],
    "J/q": [0.01, 0.7, 1.3, 3.2, 6.5, 6.5, 3.1],
    "nDCG@10": [0.437, 0.49, 0.505, 0.515, 0.520, 0.473, 0.519],
})


def brute_hypervolume(points, reference):
    """Area of the union of the boxes [x, rx] x [ry, y] (min x, max y), by coordinate compression."""
    boxes = [(x, y) for x, y in points if x < reference[0] and y > reference[1]]
    xs = sorted({x for x, _ in boxes} | {reference[0]})
    ys = sorted({y for _, y in boxes} | {reference[1]})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(x <= x0 and y >= y1 for x, y in boxes):
            area += (x1 - x0) * (y1 - y0)
    return area


def test_front_is_the_non_dominated_systems_cheapest_first():
    front = gaia.pareto(SYSTEMS)
    assert list(front.points["name"]) == ["bm25", "top10", "top20", "int8", "top100"]  # int8 beats top50
    assert front.reference == (6.5, 0.437)  # worst J/q, worst nDCG@10
    assert front.x == "J/q" and front.y == "nDCG@10"
    points = SYSTEMS[["J/q", "nDCG@10"]].to_numpy()
    assert front.hypervolume == pytest.approx(brute_hypervolume(points, front.reference))


def test_knee_is_the_point_farthest_from_the_line_joining_the_ends():
    front = gaia.pareto(SYSTEMS)
    # scaled to [0, 1]: top10 (0.106, 0.639), top20 (0.199, 0.819), int8 (0.476, 0.988); the line
    # joining the ends is the diagonal, so the knee maximises y - x
    assert front.knee == "top20"
    assert gaia.pareto(SYSTEMS.head(2)).knee is None  # two points: no interior knee


def test_a_common_reference_makes_family_hypervolumes_comparable():
    reference = (10.0, 0.4)
    fixed = gaia.pareto(SYSTEMS[SYSTEMS["name"].str.startswith("top")], reference=reference)
    everything = gaia.pareto(SYSTEMS, reference=reference)
    assert fixed.reference == everything.reference == reference
    assert everything.hypervolume >= fixed.hypervolume > 0
    # a point beyond the reference on either axis adds nothing
    beyond = gaia.pareto(SYSTEMS, reference=(0.5, 0.4))
    assert beyond.hypervolume == pytest.approx((0.5 - 0.01) * (0.437 - 0.4))


@pytest.mark.parametrize("minimize_x, maximize_y", [(True, True), (True, False), (False, True), (False, False)])
def test_every_orientation_is_the_same_front_mirrored(minimize_x, maximize_y):
    mirrored = SYSTEMS.assign(**{"J/q": SYSTEMS["J/q"] * (1 if minimize_x else -1),
                                 "nDCG@10": SYSTEMS["nDCG@10"] * (1 if maximize_y else -1)})
    front = gaia.pareto(mirrored, minimize_x=minimize_x, maximize_y=maximize_y)
    expected = gaia.pareto(SYSTEMS)
    assert list(front.points["name"]) == list(expected.points["name"])
    assert front.hypervolume == pytest.approx(expected.hypervolume)
    assert front.knee == expected.knee


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12))
def test_hypervolume_and_front_match_brute_force(points):
    table = pd.DataFrame(points, columns=["J/q", "nDCG@10"]).assign(name=[f"s{i}" for i in range(len(points))])
    front = gaia.pareto(table, reference=(21, -1))
    assert front.hypervolume == pytest.approx(brute_hypervolume(points, (21, -1)))
    on_front = set(front.points["name"])
    for i, (x, y) in enumerate(points):
        beaten = any(ox <= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points)
        assert (f"s{i}" in on_front) == (not beaten)
    assert front.points["J/q"].is_monotonic_increasing


def test_rows_without_a_value_are_left_out_with_a_warning():
    table = pd.concat([SYSTEMS, pd.DataFrame({"name": ["failed"], "J/q": [np.nan], "nDCG@10": [0.9]})])
    with pytest.warns(UserWarning, match="1 row"):
        front = gaia.pareto(table)
    assert "failed" not in set(front.points["name"])


@pytest.mark.parametrize("call, error, message", [
    (lambda: gaia.pareto([1, 2]), TypeError, "expected a DataFrame"),
    (lambda: gaia.pareto(SYSTEMS, x="kWh"), ValueError, "no column 'kWh'"),
    (lambda: gaia.pareto(SYSTEMS.assign(**{"J/q": "lots"})), ValueError, "'J/q' must hold numbers"),
    (lambda: gaia.pareto(SYSTEMS, reference=(1, 2, 3)), ValueError, "reference="),
    (lambda: gaia.pareto(SYSTEMS.iloc[:0]), ValueError, "no rows"),
    (lambda: gaia.plot_pareto(SYSTEMS, "x.png", family="kind"), ValueError, "gaia.plot_pareto: no column 'kind'"),
])
def test_bad_input_is_a_clear_error(call, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            call()


def test_plot_writes_a_png(tmp_path):
    table = SYSTEMS.assign(family=["bm25", "fixed", "fixed", "fixed", "fixed", "plain", "int8"])
    path = gaia.plot_pareto(table, tmp_path / "figures" / "front.png", family="family", logx=True, title="Vaswani")
    assert path == tmp_path / "figures" / "front.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
