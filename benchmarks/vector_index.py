"""Documents encoded once: BM25 top 100 re-ranked by MiniLM from stored vectors (gaia.VectorIndex)
against MiniLM encoding every candidate per query (``BiEncoder.reranker()``), plain and fused (α=0.3),
and dense retrieval alone, on all 93 Vaswani topics, in one metered gaia.Experiment.

    .venv/bin/python benchmarks/vector_index.py [--depth 100] [--alpha 0.3] [--ledger vec.jsonl]

The index build is metered on its own (one record: J per document, documents/s); each re-ranker is
warmed up on 2 queries first, so that model loading and imports stay out of J/q. Energy is
modelled (CPU seconds x per-core power + static and DRAM shares; no RAPL or NVML here). J/q and
CPU s/q are given for the whole system and for its re-ranking stage alone.
"""
import argparse
import tempfile
from pathlib import Path

import pandas as pd
import pyterrier as pt

import pyterrier_gaia as gaia

MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP]


def build(vec: "gaia.VectorIndex", docs) -> dict:
    metered = gaia.Metered(vec.indexer(), name="VectorIndex build", sensors="model")
    metered.index(docs)
    record = metered.ledger.records[-1]
    return {"documents": record["docs"], "wall s": record["wall_s"], "cpu s": record["cpu_s"],
            "docs/s": record["docs"] / record["wall_s"], "docs/cpu-s": record["docs"] / record["cpu_s"],
            "J/doc (model)": record["joules"] / record["docs"], "J total (model)": record["joules"]}


def main(depth: int, alpha: float, ledger_path):
    ds = gaia.datasets.get("vaswani")
    topics, qrels = ds.get_topics(), ds.get_qrels()
    encoder = gaia.BiEncoder()
    with tempfile.TemporaryDirectory() as tmp:
        bm25 = gaia.LuceneIndex(Path(tmp) / "lucene").index(ds.get_corpus_iter()).bm25(num_results=depth)
        vec = gaia.VectorIndex(Path(tmp) / "vec", encoder)
        indexing = build(vec, ds.get_corpus_iter())
        rankers = {"per-query encoding": encoder.reranker(), "stored vectors": vec.reranker(),
                   f"per-query encoding, α={alpha}": encoder.reranker(interpolate=alpha),
                   f"stored vectors, α={alpha}": vec.reranker(interpolate=alpha)}
        warm = bm25(topics.head(2))
        for ranker in rankers.values():
            ranker(warm)
        vec.retriever(num_results=1000)(topics.head(2))
        systems = {f"BM25 top {depth}": bm25, **{name: bm25 >> ranker for name, ranker in rankers.items()},
                   "dense retrieval (stored vectors)": vec.retriever(num_results=1000)}
        ledger = gaia.Ledger(ledger_path)
        table = gaia.Experiment(list(systems.values()), topics, qrels, MEASURES, names=list(systems),
                                ledger=ledger, sensors="model")
    records = ledger.to_frame()
    records["system"] = records["stage"].str.split(" / ").str[0]
    records["reranking"] = ~records["stage"].str.contains("LuceneBM25")
    queries = topics["qid"].nunique()
    per_system = records.groupby("system")[["cpu_s", "joules"]].sum() / queries
    per_rerank = records[records["reranking"]].groupby("system")[["cpu_s", "joules"]].sum() / queries
    table = table.set_index("name")
    table["CPU s/q"] = per_system["cpu_s"]
    table["re-rank J/q"] = per_rerank["joules"]
    table["re-rank CPU s/q"] = per_rerank["cpu_s"]
    pd.set_option("display.width", 200)
    print("Index build (all documents, MiniLM fp32, energy modelled):")
    print(pd.Series(indexing).to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"\nVaswani, {queries} topics, energy modelled (J/q = whole system; re-rank = the re-ranking stage):")
    print(table[["nDCG@10", "AP", "J/q", "CPU s/q", "re-rank J/q", "re-rank CPU s/q", "method"]]
          .to_string(float_format=lambda v: f"{v:.4g}"))
    for fused in ("", f", α={alpha}"):
        stored, encoded = table.loc[f"stored vectors{fused}"], table.loc[f"per-query encoding{fused}"]
        print(f"stored vs per-query{fused or ' (plain)'}: ΔnDCG@10 = {stored['nDCG@10'] - encoded['nDCG@10']:+.4f}, "
              f"re-rank energy ratio = {encoded['re-rank J/q'] / stored['re-rank J/q']:.0f}x, "
              f"system energy ratio = {encoded['J/q'] / stored['J/q']:.1f}x")
    unseen = indexing["J total (model)"] / (table.loc["per-query encoding", "re-rank J/q"]
                                            - table.loc["stored vectors", "re-rank J/q"])
    print(f"the build pays for itself after {unseen:.0f} queries")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--ledger", default=None, help="a JSONL path for the experiment's ledger")
    args = parser.parse_args()
    main(args.depth, args.alpha, args.ledger)
