"""The package's layering (DESIGN.md), enforced by the import-linter contracts in setup.cfg: cost/ at
the bottom; datasets/ and retrieval/ know nothing of energy, encoders or rankers; encoders/ and
energy/ use only cost/; rankers/ use encoders/, cost/ and energy/ but not the first stage; the
top-level modules sit above (gaia.parallel below experiments, knowing no ranker or collection); and
rankers/ use the encoder protocol, never a concrete encoder class."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                          "lint_imports_command(['setup.cfg', '--no-cache'])"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "9 kept, 0 broken" in run.stdout
