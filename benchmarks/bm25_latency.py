"""BM25 latency on Vaswani (93 topics): milliseconds per query at top 1000 and at ``% 10``, with one query
per call and with all topics in one call.

    .venv/bin/python benchmarks/bm25_latency.py [--repeats 5]

The index (Terrier stopwords, Porter) is built in a temporary folder. Each figure is the median over
``--repeats`` passes over the topics, after a warm-up pass (JVM classes, searcher, docstore). ``bm25 % 10``
asks Lucene for 10 hits (PyTerrier's fuse_rank_cutoff), so only 10 texts are looked up.
For comparison, PISA's BM25 reaches about 1.5 ms a query on this machine.
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Tuple

import pandas as pd

import pyterrier_gaia as gaia


def ms_per_query(retriever, topics: pd.DataFrame, one_by_one: bool, repeats: int) -> Tuple[float, float]:
    """Median wall and process-CPU milliseconds per query (CPU time counts the JVM's threads too, and is
    less inflated than wall time when other work shares the cores)."""
    calls = [topics.iloc[[i]] for i in range(len(topics))] if one_by_one else [topics]
    for call in calls:
        retriever(call)  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        for call in calls:
            retriever(call)
        wall.append((time.perf_counter() - started) / len(topics) * 1000)
        cpu.append((time.process_time() - cpu_started) / len(topics) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    collection = gaia.datasets.get("vaswani")
    topics = collection.get_topics()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = gaia.LuceneIndex(Path(tmp) / "vaswani").index(collection.get_corpus_iter())
        for text in (True, False):
            bm25 = index.bm25(num_results=1000, text=text)
            for name, retriever in (("top 1000", bm25), ("% 10", bm25 % 10)):
                for one_by_one in (True, False):
                    wall, cpu = ms_per_query(retriever, topics, one_by_one, args.repeats)
                    rows.append({"retriever": name, "text": text,
                                 "calls": "one query per call" if one_by_one else f"{len(topics)} queries per call",
                                 "ms/query": round(wall, 2), "CPU ms/query": round(cpu, 2)})
    print(f"BM25 (k1=0.9, b=0.4) on Vaswani, {len(topics)} topics, median of {args.repeats} passes; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
