"""Every ```python block of README.md and docs/*.md runs, not just parses, and is safe to run twice.

One test per file: its blocks run in order in one namespace, in a temporary working directory and
with an empty gaia cache ($GAIA_CACHE, shared by the session); then the file's blocks run a second time,
in a fresh namespace, in the same directory, so a page re-run over its own indexes, ledgers and figures
works. The pages' ``./vaswani-idx`` is the session's Vaswani index (a link to it), so that BM25 is built
once per session: pages open it as they would on their second run (building is tests/test_retrieval.py's).
Code not meant to run is fenced as ```text, ```console or ```bash, never as ```python.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def fences(page: Path):
    """(language, first line number of the code, code) of each fenced block of ``page``."""
    text = page.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        yield match.group(1).strip(), text.count("\n", 0, match.start(2)) + 1, match.group(2)


def python_blocks(page: Path):
    return [(line, code) for language, line, code in fences(page) if language == "python"]


def page_param(page: Path):
    return pytest.param(page, id=str(page.relative_to(ROOT)))


RUNNABLE = [page for page in PAGES if python_blocks(page)]


def run_blocks(page: Path):
    namespace = {"__name__": "__main__"}
    for line, code in python_blocks(page):
        # padded so that a traceback points at the page's own line numbers
        exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)


@pytest.mark.parametrize("page", [page_param(page) for page in RUNNABLE])
def test_page_code_runs_twice(page, tmp_path, vaswani_index, gaia_cache, monkeypatch):
    (tmp_path / "vaswani-idx").symlink_to(vaswani_index.path.resolve(), target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAIA_CACHE", str(gaia_cache))
    run_blocks(page)
    run_blocks(page)


def test_every_fence_names_its_language():
    untagged = [f"{page.relative_to(ROOT)}:{line}" for page in PAGES
                for language, line, _ in fences(page) if not language]
    assert not untagged, f"fences with no language (python if it runs, else text/console/bash): {untagged}"


def test_the_pages_with_code_are_found():
    assert {"README.md", "index.md", "retrieval.md", "energy.md"} <= {page.name for page in RUNNABLE}
