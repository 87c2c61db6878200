"""Every ``examples/*.py`` runs as a user runs it: ``python examples/NAME.py --topics 3 --workdir DIR`` in a
fresh interpreter (the venv's, with this worktree's package first on PYTHONPATH and an empty session
gaia cache), exits 0, and prints its table or figures. One example runs twice in the same folder, to
show a second run opens what the first built. ``examples/_*.py`` are their shared helpers, not examples.

The folder's ``vaswani-idx`` is the session's Vaswani index (a link), so that BM25 is built once.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path for path in (ROOT / "examples").glob("*.py") if not path.name.startswith("_"))
NUMBER = r"-?\d+\.\d+(?:e[-+]?\d+)?"

# each example's system rows (a name, then its figures) and other lines its output must show
ROWS = {
    "quickstart.py": ["BM25", "BM25 % 20 >> MiniLM fp32 (fused)", "BM25 % 20 >> MiniLM int8 (fused)"],
    "precision_ladder.py": ["MiniLM fp32", "MiniLM int8"],
    "stored_vectors.py": ["BM25 % 20 >> MiniLM, per-query encoding", "BM25 % 20 >> MiniLM, stored vectors",
                          "MiniLM dense retrieval, stored vectors"],
    "metering.py": ["LuceneBM25", "ReRanker", "BM25 top 10"],
}
LINES = {
    "quickstart.py": ["nDCG@10", "J/q", "gCO2e/q", "Per stage, every run so far"],
    "precision_ladder.py": ["precisions that run on cpu here: fp32", "Δ nDCG@10 vs fp32", "J/q"],
    "stored_vectors.py": ["J/q", "dense retrieval searches the"],
    "metering.py": ["This run, per stage", "J/q", "gCO2e/q", "The re-ranker's calls", "records over every run so far"],
}
TWICE = "metering.py"   # run twice in the same folder
FLAGS = {"diffusion.py": ["--depth", "20"]}   # its default, BM25's top 100, took 7 minutes of the suite
METHOD = re.compile(r"\b(model|rapl|nvml)\b")   # every energy figure comes with how it was sensed


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, vaswani_index):
    folder = tmp_path_factory.mktemp("examples")
    (folder / "vaswani-idx").symlink_to(vaswani_index.path.resolve(), target_is_directory=True)
    return folder


def run_example(example: Path, workdir: Path, gaia_cache: Path) -> str:
    env = dict(os.environ, GAIA_CACHE=str(gaia_cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, str(example), "--topics", "3", "--workdir", str(workdir),
                          *FLAGS.get(example.name, [])],
                         cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"{example.name} exited {run.returncode}:\n{run.stdout}\n{run.stderr[-4000:]}"
    return run.stdout


def check_output(name: str, output: str):
    assert METHOD.search(output), f"{name}: no sensing method beside its energy figures:\n{output}"
    for line in LINES.get(name, []):
        assert line in output, f"{name}: {line!r} not in its output:\n{output}"
    for system in ROWS.get(name, []):
        rows = [row for row in output.splitlines() if row.strip().startswith(system)]
        assert rows and len(re.findall(NUMBER, rows[0][len(system) + rows[0].index(system):])) >= 3, \
            f"{name}: no row of figures for {system!r}:\n{output}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs_and_prints_its_figures(example, workdir, gaia_cache):
    outputs = [run_example(example, workdir, gaia_cache) for _ in range(2 if example.name == TWICE else 1)]
    for output in outputs:
        check_output(example.name, output)
    if example.name == TWICE:   # the second run opened the first one's index and appended to its ledger
        first, second = (int(re.search(r"(\d+) records over every run so far", output).group(1))
                         for output in outputs)
        assert second > first, f"the second run did not append to the first one's ledger:\n{outputs[1]}"


def test_the_examples_are_found():
    assert {"quickstart.py", "metering.py", "precision_ladder.py", "stored_vectors.py"} <= \
        {path.name for path in EXAMPLES}
