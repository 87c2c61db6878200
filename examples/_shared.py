"""What the examples share: their two options, and the embedded Vaswani collection with its BM25 index.

Not an example itself (tests/test_examples.py runs every ``examples/*.py`` but this one).
"""
import argparse
from pathlib import Path

MODELLED = ("energy: RAPL/NVML counters where readable, else modelled from CPU time and the CPU's TDP "
            "(the method column says which; 'model' here is an estimate, not a measurement)")


def options(doc: str, topics: int = 10, depth: int = 20) -> argparse.Namespace:
    """``--topics N`` (the first N Vaswani topics), ``--workdir DIR`` (indexes, ledgers and figures; made if
    missing) and ``--depth K`` (BM25 candidates re-ranked per query)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topics", type=int, default=topics, help=f"first N of the 93 topics (default {topics})")
    parser.add_argument("--workdir", type=Path, default=Path("gaia-examples"),
                        help="indexes, ledgers and figures; a second run reuses them (default ./gaia-examples)")
    parser.add_argument("--depth", type=int, default=depth, help=f"BM25 candidates re-ranked (default {depth})")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


def vaswani(workdir: Path):
    """The embedded Vaswani collection and its Lucene index in ``workdir/vaswani-idx`` (built on the first
    run, about 15 s; opened on the next ones)."""
    import pyterrier_gaia as gaia

    dataset = gaia.datasets.get("vaswani")
    return dataset, gaia.LuceneIndex(workdir / "vaswani-idx").index(dataset.get_corpus_iter())
