"""Three identical BM25 systems in gaia.Experiment: does the first one pay for the process's start-up?

Prints, for three separately built but identical BM25 (top 1000) systems over the 93 Vaswani topics,
each system's J/q, and the ledger's table per system (with the start-up records when warmed up).
Run it once per mode, each in a fresh process (the JVM starts with the first search):

    .venv/bin/python benchmarks/fair_start.py               # gaia.Experiment's default: warm-up
    .venv/bin/python benchmarks/fair_start.py --no-warmup   # everything charged to the systems

The Vaswani index is built (in the gaia cache folder) by the first run; that run's JVM is already
warm when the experiment starts, so measure on a later run. Energy here is modelled (docs/energy.md).
"""
import argparse
import os
import warnings

import pyterrier as pt

import pyterrier_gaia as gaia
from pyterrier_gaia.cli import cache_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-warmup", action="store_true", help="gaia.Experiment(..., warmup=False)")
    args = parser.parse_args(argv)

    collection = gaia.datasets.get("vaswani")
    index = gaia.LuceneIndex(cache_dir() / "indexes" / "vaswani")
    if not index.built():
        print("building the index first: the JVM will be warm, run again to measure")
        index.index(collection.get_corpus_iter(), overwrite=True)
    systems = [index.bm25(num_results=1000) for _ in range(3)]
    ledger = gaia.Ledger()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gaia.Experiment(systems, collection.get_topics(), collection.get_qrels(), [pt.measures.AP],
                                 names=["A", "B", "C"], ledger=ledger, warmup=not args.no_warmup, sensors="model")
    print(f"{'no warm-up' if args.no_warmup else 'warm-up'}; load average {os.getloadavg()}; energy modelled")
    print(result.to_string(index=False))
    print(ledger.summary(by="system")[["calls", "queries", "cpu_s", "J", "J/q"]].to_string())


if __name__ == "__main__":
    main()
