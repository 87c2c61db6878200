"""The documentation site builds with ``mkdocs build --strict``: no broken link or anchor, no docstring
mkdocstrings cannot render, every page in the nav, every public name in the API reference, no raw Sphinx
role in it (sitegen/sphinx_roles.py), and the build reads the source statically (it imports none of torch,
transformers or pyserini)."""
import re
import subprocess
import sys
from pathlib import Path

import yaml

import pyterrier_gaia as gaia

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "pyserini")

# runs the mkdocs command line, then prints which heavy packages the build imported
BUILD = f"""
import runpy, sys
try:
    runpy.run_module("mkdocs", run_name="__main__", alter_sys=True)
finally:
    print("imported:", sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


def nav_pages(nav):
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        yield from nav_pages(value) if isinstance(value, list) else [value]


def test_site_builds_strict_without_warnings_or_heavy_imports(tmp_path):
    run = subprocess.run([sys.executable, "-c", BUILD, "build", "--strict", "--site-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    assert "imported: []" in run.stdout, run.stdout
    api = (tmp_path / "api" / "index.html").read_text()
    assert not re.search(r":(meth|class|func|data|mod):", api), "raw Sphinx roles in the API page"


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = {path.name for path in (ROOT / config["docs_dir"]).glob("*.md")}
    assert pages == set(nav_pages(config["nav"]))


def test_api_reference_covers_every_public_name():
    directives = set(re.findall(r"^::: (\S+)$", (ROOT / "docs" / "api.md").read_text(), re.MULTILINE))
    assert directives == {target.replace(":", ".") for target in gaia._API.values()}
