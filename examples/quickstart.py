"""Quick start: BM25 vs. MiniLM re-ranking on the embedded Vaswani collection, with energy columns.

    .venv/bin/python examples/quickstart.py            # 10 topics, a few minutes on 2 CPU cores

Energy here is whatever the machine lets us sense: RAPL/NVML counters where readable, else a power
model (the `method` column says which).
"""
import pyterrier as pt

import pyterrier_gaia as gaia

ds = gaia.datasets.get("vaswani")
index = gaia.LuceneIndex("./vaswani-idx")
if not index.built():
    index.index(ds.get_corpus_iter(), verbose=True)
bm25 = index.bm25(num_results=1000)
encoder = gaia.BiEncoder()

topics = ds.get_topics().head(10)
results = gaia.Experiment(
    [bm25, bm25 % 50 >> encoder.reranker(interpolate=0.3), bm25 % 50 >> encoder.reranker(precision="int8",
                                                                                          interpolate=0.3)],
    topics, ds.get_qrels(), [pt.measures.nDCG @ 10, pt.measures.AP, "mrt"],
    names=["BM25", "BM25 % 50 >> MiniLM fp32 (fused)", "BM25 % 50 >> MiniLM int8 (fused)"],
    ledger="quickstart-ledger.jsonl")
print(results.to_string(index=False))
print("\nPer stage (gaia report quickstart-ledger.jsonl):")
print(gaia.Ledger.load("quickstart-ledger.jsonl").summary().to_string())
