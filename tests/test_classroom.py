"""The classroom assignment (examples/classroom): the notebook runs end to end on a small slice of
Vaswani, in a kernel of this venv's Python importing this checkout's package, and check.py judges
answers against the figures that run wrote: answers computed here from the run's files are accepted,
wrong ones rejected, missing ones reported."""
import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "examples" / "classroom"
# 2 topics, BM25's top 5 re-ranked (the shallow rung: top 2), over the documents judged for those topics
SLICE = "TOPICS = 2\nDEPTH = 5\nSHALLOW = 2\nFUSION = 0.3\nDOCS = 0\nWORKDIR = {workdir!r}\n"
WHERE = "import sys, pyterrier_gaia\nprint(sys.executable)\nprint(pyterrier_gaia.__file__)"


def tagged(notebook, tag: str) -> int:
    return next(i for i, cell in enumerate(notebook.cells) if tag in cell.metadata.get("tags", []))


def kernel(tmp_path: Path):
    """A kernel manager for THIS venv's Python with this checkout first on its path (not a kernelspec
    found elsewhere, nor the copy of pyterrier_gaia the venv has installed)."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec = tmp_path / "kernels" / "gaia-classroom"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gaia classroom test", "language": "python",
        "env": {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}}))
    specs = KernelSpecManager(kernel_dirs=[str(spec.parent)])
    return KernelManager(kernel_name="gaia-classroom", kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """The notebook executed once on the slice, then its cells up to the index build run again (as a
    student re-running it would): (workdir, executed notebook, builds.jsonl after the first run)."""
    tmp = tmp_path_factory.mktemp("classroom")
    workdir = tmp / "work"
    notebook = nbformat.read(CLASSROOM / "assignment.ipynb", as_version=4)
    notebook.cells[tagged(notebook, "parameters")].source = SLICE.format(workdir=str(workdir))
    notebook.cells.append(nbformat.v4.new_code_cell(WHERE))
    client = nbclient.NotebookClient(notebook, timeout=900, km=kernel(tmp),
                                     resources={"metadata": {"path": str(CLASSROOM)}})
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        builds = (workdir / "builds.jsonl").read_text()
        again = copy.deepcopy(notebook)
        for index in range(tagged(again, "build") + 1):
            client.execute_cell(again.cells[index], index)
    return workdir, notebook, builds


def text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def answers_from(workdir: Path) -> dict:
    """The answers to questions 1-9, computed here from the run's files, independently of check.py."""
    results = pd.read_csv(workdir / "run" / "results.csv").set_index("name")
    params = json.loads((workdir / "run" / "run.json").read_text())
    jq, ndcg = results["J/q"], results["nDCG@10"]
    records = [json.loads(line) for line in (workdir / "run" / "ledger.jsonl").read_text().splitlines()]
    fp32 = [r for r in records if r["stage"].startswith("MiniLM fp32 / ") and not r["startup"]]
    bm25_joules = sum(r["joules"] for r in fp32 if "LuceneBM25" in r["stage"])
    keeps = results[ndcg >= 0.99 * ndcg["MiniLM fp32"]]
    cheapest = keeps["J/q"].idxmin()
    build = json.loads((workdir / "builds.jsonl").read_text().splitlines()[-1])
    import pyterrier_gaia as gaia
    return {
        "method": results["method"].iloc[0],
        "reranker_vs_bm25": round(jq["MiniLM fp32"] / jq["BM25"], 1),
        "first_stage_share_pct": round(100 * bm25_joules / sum(r["joules"] for r in fp32), 2),
        "int8_saving_pct": round(100 * (1 - jq["MiniLM int8"] / jq["MiniLM fp32"]), 1),
        "int8_ndcg_change": round(ndcg["MiniLM int8"] - ndcg["MiniLM fp32"], 3),
        "depth_energy_ratio": round(jq[f"MiniLM depth {params['shallow']}"] / jq["MiniLM fp32"], 3),
        "cheapest_99": cheapest,
        "pareto_front": list(gaia.pareto(results.reset_index()).points["name"])[::-1],
        "payback_queries": round(build["joules"] / (jq["MiniLM fp32"] - jq["stored vectors"]), 1),
        "why_same_ndcg": "the same model scores the same texts; only when the documents are encoded differs",
        "with_rapl": "joules measured, not modelled; the ratios between systems move less than the joules",
    }


def check(workdir: Path, answers: dict, tmp_path: Path, capsys):
    """check.py's main() in this process (the notebook's last cell runs it as a command): exit status,
    output, and the verdict of each question."""
    spec = importlib.util.spec_from_file_location("classroom_check", CLASSROOM / "check.py")
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(answers))
    status = checker.main([str(workdir), "--answers", str(path)])
    out, err = capsys.readouterr()
    verdicts = re.findall(r"^ *\d+\. (\w+) +(agrees|disagrees|unanswered|cannot check|for the teacher)",
                          out, flags=re.MULTILINE)
    return status, out + err, dict(verdicts)


def test_the_notebook_runs_in_this_venv_on_this_checkout(classroom):
    _, notebook, _ = classroom
    executable, package = text(notebook.cells[-1]).split()
    assert Path(executable) == Path(sys.executable)
    assert Path(package) == ROOT / "pyterrier_gaia" / "__init__.py"


def test_the_notebook_writes_a_metered_run_and_reopens_its_indexes(classroom):
    workdir, notebook, builds = classroom
    results = pd.read_csv(workdir / "run" / "results.csv")
    assert list(results["name"]) == ["BM25", "MiniLM fp32", "MiniLM int8", "MiniLM fused", "MiniLM depth 2",
                                     "stored vectors", "stored vectors fused"]
    assert (results["J/q"] > 0).all() and results["method"].notna().all()
    ndcg = results.set_index("name")["nDCG@10"]
    assert ndcg["stored vectors"] == pytest.approx(ndcg["MiniLM fp32"], abs=1e-4)   # same model, same scores
    assert (workdir / "run" / "pareto.png").stat().st_size > 0
    # the second pass reopened both indexes: no second build record
    assert (workdir / "builds.jsonl").read_text() == builds and len(builds.splitlines()) == 1
    # the notebook tells students when their energy is modelled
    markdown = " ".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "**modelled**" in markdown and "`method`" in markdown
    # the notebook's own last cell ran check.py on the unfilled ANSWERS
    verdicts = text(notebook.cells[tagged(notebook, "answers") + 1])
    assert "11 unanswered" in verdicts, verdicts


def test_the_checker_accepts_answers_from_the_run_s_own_figures(classroom, tmp_path, capsys):
    workdir, _, _ = classroom
    status, out, statuses = check(workdir, answers_from(workdir), tmp_path, capsys)
    assert status == 0, out
    assert set(statuses.values()) == {"agrees", "for the teacher"} and len(statuses) == 11, out


def test_the_checker_rejects_wrong_answers_and_reports_missing_ones(classroom, tmp_path, capsys):
    workdir, _, _ = classroom
    right = answers_from(workdir)
    wrong = dict(right, method="rapl", reranker_vs_bm25=right["reranker_vs_bm25"] * 2,
                 first_stage_share_pct=right["first_stage_share_pct"] + 10, int8_saving_pct="a lot",
                 int8_ndcg_change=-right["int8_ndcg_change"] - 0.01, cheapest_99="MiniLM fp32",
                 pareto_front=right["pareto_front"][1:], payback_queries=right["payback_queries"] / 3)
    del wrong["depth_energy_ratio"], wrong["with_rapl"]
    status, out, statuses = check(workdir, wrong, tmp_path, capsys)
    assert status == 1
    assert statuses.pop("depth_energy_ratio") == statuses.pop("with_rapl") == "unanswered", out
    assert statuses.pop("why_same_ndcg") == "for the teacher"
    assert set(statuses.values()) == {"disagrees"} and len(statuses) == 8, out


def test_the_checker_says_which_file_is_missing(tmp_path, capsys):
    status, out, _ = check(tmp_path, {}, tmp_path, capsys)
    assert status == 2 and "results.csv is missing" in out
