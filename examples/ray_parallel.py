"""A metered pipeline on Ray workers: the same results as the sequential run, and one ledger.

    python examples/ray_parallel.py                          # 10 topics on 2 workers
    python examples/ray_parallel.py --topics 3 --workdir /tmp/gaia --workers 2

gaia.parallel(pipeline, workers=N) splits the queries into batches, runs them on N Ray workers (each
holding its own copy of the pipeline: the Lucene index reopened, the model loaded once), and puts the
results back in order. Each worker meters its own process; its records come back tagged host, pid and
batch into the driver's ledger. Needs the ray extra: pip install 'pyterrier-gaia[ray]'. Energy comes
from RAPL/NVML counters where readable, else it is modelled from CPU time and the CPU's TDP (method
"model"). Starting Ray and the workers takes a while (about a minute on 2 busy cores).
"""
import argparse
from pathlib import Path

import pandas as pd

import pyterrier_gaia as gaia

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--topics", type=int, default=10, help="first N of the 93 Vaswani topics (default 10)")
parser.add_argument("--workdir", type=Path, default=Path("gaia-examples"), help="indexes and ledgers")
parser.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
parser.add_argument("--depth", type=int, default=20, help="BM25 candidates re-ranked (default 20)")
args = parser.parse_args()
args.workdir.mkdir(parents=True, exist_ok=True)

ds = gaia.datasets.get("vaswani")
index = gaia.LuceneIndex(args.workdir / "vaswani-idx").index(ds.get_corpus_iter())
topics = ds.get_topics().head(args.topics)
ledger = gaia.Ledger(args.workdir / "ray_parallel.jsonl")

plain = index.bm25(num_results=args.depth) >> gaia.BiEncoder().reranker()
gaia.Metered(plain, name="start-up", ledger=ledger, startup=True)(topics.head(1))   # JVM, searcher, model
pipeline = gaia.meter(plain, ledger=ledger)
sequential = pipeline(topics)

par = gaia.parallel(pipeline, workers=args.workers)
par.warmup(topics.head(1))             # each worker opens the index and loads the model: start-up records
on_ray = par(topics)
par.close()

pd.testing.assert_frame_equal(on_ray, sequential)
print(f"{len(topics)} topics on {args.workers} Ray workers: the same {len(on_ray)} rows, in the same order, "
      f"as the sequential run")
print("\nTotals per host, process and sensing method (host NaN: the sequential run, in this process):")
print(ledger.summary(by=("host", "pid", "method")).to_string())
print("\nPer stage over both runs (the workers' start-up apart):")
print(ledger.summary().to_string())
print("energy: RAPL/NVML counters where readable, else modelled from CPU time and the CPU's TDP "
      "(the method column says which; 'model' is an estimate, not a measurement)")
