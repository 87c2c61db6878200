"""BM25 (Lucene through pyserini) on the four test collections: nDCG@10, AP, R@100 and ms per query.

    .venv/bin/python benchmarks/bm25_collections.py [--data ../shared/data] [--k1 0.9 --b 0.4] [--stopwords lucene]

Indexes are built in a temporary folder. Queries are timed one by one (one BM25 call each).
"""
import argparse
import tempfile
import time
from pathlib import Path

import pyterrier as pt

import pyterrier_gaia as gaia

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield",
               "cacm": "cacm:{data}/cacm", "medline": "medline:{data}/medline"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--k1", type=float, default=0.9)
    parser.add_argument("--b", type=float, default=0.4)
    parser.add_argument("--stopwords", default="terrier", choices=["terrier", "lucene", "none"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in COLLECTIONS.items():
            ds = gaia.datasets.get(spec.format(data=args.data))
            started = time.perf_counter()
            index = gaia.LuceneIndex(Path(tmp) / name, stopwords=args.stopwords).index(ds.get_corpus_iter())
            index_s = time.perf_counter() - started
            bm25 = index.bm25(num_results=1000, k1=args.k1, b=args.b)
            topics, qrels = ds.get_topics(), ds.get_qrels()
            bm25(topics.head(3))  # warm-up: JVM classes, searcher, docstore
            started = time.perf_counter()
            for _, topic in topics.iterrows():
                bm25(topic.to_frame().T)
            per_query_ms = (time.perf_counter() - started) / len(topics) * 1000
            scores = pt.Experiment([bm25], topics, qrels, [pt.measures.nDCG @ 10, pt.measures.AP,
                                                           pt.measures.R @ 100], names=[name])
            rows.append(scores.assign(queries=len(topics), index_s=round(index_s, 1),
                                      ms_per_query=round(per_query_ms, 1)))
    import pandas as pd
    print(f"BM25 k1={args.k1} b={args.b}, {args.stopwords} stopwords, Porter, top 1000")
    print(pd.concat(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
