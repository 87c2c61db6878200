"""The package imports fast and light, and PyTerrier finds it as pt.gaia."""
import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_import_is_light_and_fast():
    out = _run("import time, sys; t = time.perf_counter(); import pyterrier_gaia; "
               "print(time.perf_counter() - t); print(sorted(m for m in ('torch', 'transformers', 'pyserini', "
               "'jnius') if m in sys.modules))")
    seconds, heavy = out.splitlines()
    assert float(seconds) < 1.0
    assert heavy == "[]"


def test_pyterrier_entry_point_exposes_gaia():
    assert _run("import pyterrier as pt, pyterrier_gaia; print(pt.gaia is pyterrier_gaia)") == "True"


def test_unknown_attribute_is_an_attribute_error():
    import pyterrier_gaia
    try:
        pyterrier_gaia.NoSuchThing
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("expected AttributeError")
