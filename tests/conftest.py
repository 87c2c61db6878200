"""Shared fixtures: the test collections beside the repo, and one Vaswani Lucene index per session."""
import os
import re
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: Vaswani, Cranfield, CACM and Medline as distributed, each with PROVENANCE.txt."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"test collections not found at {SHARED_DATA} (CI clones the repo with shared/ beside it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vaswani():
    import pyterrier_gaia as gaia
    return gaia.datasets.get("vaswani")


@pytest.fixture(scope="session")
def vaswani_index(tmp_path_factory, vaswani):
    """A Lucene index of the embedded Vaswani collection, built once for the whole session."""
    import pyterrier_gaia as gaia
    index = gaia.LuceneIndex(tmp_path_factory.mktemp("indexes") / "vaswani")
    return index.index(vaswani.get_corpus_iter())


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 bi-encoder at fp32, loaded once."""
    import pyterrier_gaia as gaia
    return gaia.BiEncoder()


@pytest.fixture(scope="session")
def slice_candidates(vaswani_index, vaswani):
    """BM25's top 20 for the first 10 Vaswani topics (with text)."""
    return vaswani_index.bm25(num_results=20)(vaswani.get_topics().head(10))


@pytest.fixture(scope="session")
def words(vaswani):
    """The 500 commonest words of the first 2,000 Vaswani documents (a tiny model's vocabulary)."""
    docs = islice(vaswani.get_corpus_iter(), 2000)
    counts = Counter(w for d in docs for w in re.findall(r"[a-z]+", d["text"].lower()))
    return [w for w, _ in counts.most_common(500)]


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for gaia.parallel, started once per session (about 13 s)."""
    import ray

    from pyterrier_gaia.distribute import init_ray, shutdown_ray
    # both keep the JVM's SIGSEGV handler, which ray.init replaces and ray.shutdown resets (see init_ray)
    if ray.is_initialized():   # e.g. started by gaia.parallel in docs/parallel.md's example: ours has 2 CPUs
        shutdown_ray()
    try:
        init_ray(num_cpus=2, include_dashboard=False)
    except Exception:   # Ray gives its raylet a fixed 30 s to start, which a busy machine can miss: once more
        shutdown_ray()
        init_ray(num_cpus=2, include_dashboard=False)
    yield ray
    shutdown_ray()


@pytest.fixture(scope="session", autouse=True)
def gaia_cache(tmp_path_factory):
    """An empty gaia cache folder for the session, set as $GAIA_CACHE (also for the docs' and examples'
    subprocesses): the bundled cross-encoder is converted into it once, what the re-rankers fit on first
    use is cached there, and the user's cache is neither read nor written."""
    folder = tmp_path_factory.mktemp("gaia_cache")
    previous = os.environ.get("GAIA_CACHE")
    os.environ["GAIA_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("GAIA_CACHE", None)
    else:
        os.environ["GAIA_CACHE"] = previous
