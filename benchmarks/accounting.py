"""How repeatable a warm BM25 run's J/q is under each accounting mode, on a machine shared with other jobs.

The same per-query calls are metered three times over, by meters nested around one another (one
``process``, one ``threads``, one ``machine-share``), so each round gives the three modes' figures for
the very same work; rounds repeat the 93 Vaswani topics, one query per call, through ``bm25 % 10``.
Prints per mode the J/q of each round (modelled), its spread (min, max, max/min, coefficient of
variation) and the static + DRAM part of it, with the load average.

    .venv/bin/python benchmarks/accounting.py [--rounds 8] [--warmup 2]
"""
import argparse
import os
import statistics

import pandas as pd

import pyterrier_gaia as gaia
from pyterrier_gaia.cli import cache_dir

MODES = ("process", "threads", "machine-share")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2, help="passes over the topics before measuring")
    args = parser.parse_args(argv)

    collection = gaia.datasets.get("vaswani")
    index = gaia.LuceneIndex(cache_dir() / "indexes" / "vaswani")
    if not index.built():
        index.index(collection.get_corpus_iter(), overwrite=True)
    topics = collection.get_topics()
    stage = index.bm25(num_results=1000) % 10
    ledgers = {mode: gaia.Ledger() for mode in MODES}
    for mode in MODES:
        stage = gaia.Metered(stage, name=mode, sensors="model", ledger=ledgers[mode], accounting=mode)
    rows = [topics.iloc[[i]] for i in range(len(topics))]
    for _ in range(args.warmup):                                     # JVM, its JIT and caches warm
        for row in rows:
            stage(row)
    figures = {mode: [] for mode in MODES}
    loads = []
    for _ in range(args.rounds):
        before = {mode: len(ledgers[mode]) for mode in MODES}
        for row in rows:
            stage(row)
        loads.append(os.getloadavg()[0])
        for mode in MODES:
            frame = pd.DataFrame(ledgers[mode].records[before[mode]:])
            held = frame["joules_by"].map(lambda parts: parts["static"] + parts["dram"]).sum()
            figures[mode].append((frame["joules"].sum() / len(rows), held / len(rows),
                                  frame["cpu_s"].sum() / len(rows)))
    print(f"BM25 top 1000 % 10, {len(rows)} Vaswani topics one per call, {args.rounds} rounds; energy MODELLED "
          f"({ledgers['process'].records[0]['constants']['model']['cpu_model']}, "
          f"{ledgers['process'].records[0]['constants']['model']['tdp_w']:g} W TDP); load average "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    for mode in MODES:
        for label, values in (("J/q", [j for j, _, _ in figures[mode]]),
                              ("static+DRAM J/q", [h for _, h, _ in figures[mode]])):
            print(f"{mode:>13} {label:>15}: " + " ".join(f"{v:.4f}" for v in values)
                  + f"; min {min(values):.4f} max {max(values):.4f} max/min {max(values) / min(values):.2f} "
                  f"CV {statistics.stdev(values) / statistics.mean(values):.1%}")
        print(f"{mode:>13} CPU ms/q median {statistics.median(c for _, _, c in figures[mode]) * 1e3:.2f}")


if __name__ == "__main__":
    main()
