"""gaia report's figure and messages, and the sensing method in the captions of the energy figures."""
import re

import pandas as pd
import pyterrier as pt
import pytest
import yaml
from matplotlib.image import imread

import pyterrier_gaia as gaia
from pyterrier_gaia.cli import main as gaia_cli, report_figure
from pyterrier_gaia.energy.report import method_caption, with_wh
from pyterrier_gaia.pareto import pareto_figure

TOPICS = pd.DataFrame({"qid": ["1", "2"], "query": ["light", "waves"]})
RESULTS = pd.DataFrame({"name": ["BM25", "BM25 >> MiniLM int8", "BM25 >> MiniLM"],
                        "nDCG@10": [0.44, 0.47, 0.48], "J/q": [0.03, 0.26, 0.52], "method": "model"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(tmp_path):
    """A ledger file as gaia.Experiment writes one: a start-up record and two stages of one system, one of another."""
    ledger = gaia.Ledger(tmp_path / "run.jsonl")
    for name, startup in [("fused / start-up", True), ("fused / LuceneBM25", False), ("fused / rerank", False),
                          ("BM25 / LuceneBM25", False)]:
        spin = pt.apply.generic(lambda frame: frame.assign(s=sum(range(100_000))))
        gaia.Metered(spin, name=name, ledger=ledger, startup=startup)(TOPICS)
    return ledger


def _texts(figure):
    return [text.get_text() for text in figure.texts]


def test_the_caption_names_each_sensing_method():
    assert method_caption(["model"]) == "Energy: model (modelled from CPU time: no RAPL or NVML counter was read)"
    assert "rapl (RAPL counters" in method_caption(["rapl"]) and "nvml (NVML counters (GPU))" in method_caption(["nvml"])
    both = method_caption(["rapl", "model", "rapl"])
    assert both.index("model") < both.index("rapl") and both.endswith("the methods differ between rows")
    assert method_caption([]) == "Energy: sensing method unknown"


def test_the_pareto_figure_carries_the_method_of_its_table_and_is_a_png(tmp_path):
    assert _texts(pareto_figure(RESULTS)) == [method_caption(["model"])]
    assert _texts(pareto_figure(RESULTS, method="rapl")) == [method_caption(["rapl"])]
    assert _texts(pareto_figure(RESULTS.drop(columns="method"))) == []   # nothing to say about the energy
    path = gaia.plot_pareto(RESULTS.assign(method="nvml"), tmp_path / "front.png", logx=True)
    assert path.read_bytes()[:8] == PNG_SIGNATURE and imread(path).shape[2] in (3, 4)


def test_report_plots_energy_per_stage_and_effectiveness_against_energy(run, tmp_path, capsys):
    figure = report_figure(run, "stage")
    assert len(figure.axes) == 1 and _texts(figure) == [method_caption(["model"])]
    bars = figure.axes[0]
    assert [label.get_text() for label in bars.get_yticklabels()][::-1] == list(run.summary().index)
    assert sum(bool(patch.get_hatch()) for patch in bars.patches) == 1          # the start-up record
    figure = report_figure(run, "system", RESULTS.assign(method="rapl"))
    assert len(figure.axes) == 2 and figure.axes[1].get_ylabel() == "nDCG@10"
    assert _texts(figure) == [method_caption(["model", "rapl"])]

    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    out = tmp_path / "figures" / "run.png"
    assert gaia_cli(["report", str(run.path), "--plot", str(out), "--results", str(results)]) == 0
    assert f"Figure written to {out}" in capsys.readouterr().out
    assert out.read_bytes()[:8] == PNG_SIGNATURE and imread(out).shape[1] > imread(out).shape[0]


def test_report_totals_in_joules_and_watt_hours(run, capsys):
    assert with_wh(12_345.0) == "12.3 kJ = 3.43 Wh" and with_wh(0.5) == "500 mJ" and with_wh(3.6) == "3.6 J = 1 mWh"
    assert gaia_cli(["report", str(run.path)]) == 0
    total = run.to_frame()["joules"].sum()
    assert re.search(rf"Total: {re.escape(with_wh(total))}, \d[\d.]* [nµm]?g CO2e \(modelled\)\.",
                     capsys.readouterr().out)


def test_report_writes_the_ledger_as_ir_metadata(run, tmp_path, capsys):
    out = tmp_path / "metadata" / "run.yml"
    assert gaia_cli(["report", str(run.path), "--ir-metadata", str(out)]) == 0
    assert f"ir_metadata written to {out}" in capsys.readouterr().out
    document = yaml.safe_load(out.read_text())
    energy = document["resources"]["energy"]
    assert document["metadata"] == {"tag": "run"} and energy["method"] == "model"
    assert energy["joules"] == pytest.approx(run.to_frame()["joules"].sum())
    (tmp_path / "a-file").write_text("")
    assert gaia_cli(["report", str(run.path), "--ir-metadata", str(tmp_path / "a-file" / "run.yml")]) == 2
    assert capsys.readouterr().err.startswith(f"gaia report: cannot write {tmp_path / 'a-file' / 'run.yml'}")


def test_report_files_it_cannot_use_are_one_line_and_exit_status_2(run, tmp_path, capsys):
    assert gaia_cli(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert capsys.readouterr().err == f"gaia report: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory\n"
    (tmp_path / "binary.jsonl").write_bytes(bytes(range(256)))
    assert gaia_cli(["report", str(tmp_path / "binary.jsonl")]) == 2
    assert "binary.jsonl holds no ledger records" in capsys.readouterr().err
    plot = ["--plot", str(tmp_path / "out.png")]
    assert gaia_cli(["report", str(run.path), *plot, "--results", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read the results table" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("name,MAP\nBM25,0.3\n")
    assert gaia_cli(["report", str(run.path), *plot, "--results", str(tmp_path / "other.csv")]) == 2
    assert "has no column 'J/q', 'nDCG@10' (its columns: name, MAP)" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
    indexing = gaia.Ledger(tmp_path / "index.jsonl")   # records that served no query: nothing per query
    indexing.append({**run.records[1], "queries": 0})
    assert gaia_cli(["report", str(indexing.path), *plot]) == 2
    assert capsys.readouterr().err.startswith("gaia report: energy figure: no stage of the ledger has an energy")
    with pytest.raises(SystemExit) as exit:
        gaia_cli(["report", str(run.path), "--results", str(tmp_path / "other.csv")])
    assert exit.value.code == 2 and "give --plot OUT.png too" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["demo"], ["report"]])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit):
        gaia_cli([*command, "--help"])
    help_text = capsys.readouterr().out
    assert "usage: gaia" in help_text
    assert not re.search(r"``|:(param|class|func|meth|data):|\*\*|\.\. \w+::", help_text)


def test_importing_the_pareto_module_leaves_gaia_pareto_the_function():
    """This file imports pyterrier_gaia.pareto (as gaia report does), which sets the package's attribute."""
    import sys
    assert gaia.pareto is sys.modules["pyterrier_gaia.pareto"].pareto and gaia.pareto(RESULTS).knee == "BM25 >> MiniLM int8"


def test_a_systems_energy_per_query_counts_its_queries_once(run):
    """Two stages of one system each serve the same two queries: J/q is their energy over 2, not 4."""
    records = run.to_frame()
    fused = records[records["stage"].isin(["fused / LuceneBM25", "fused / rerank"])]
    row = run.summary(by="system").loc["fused"]
    assert row["queries"] == 2 and row["J/q"] == pytest.approx(fused["joules"].sum() / 2)
