"""Documents encoded once: re-ranking and dense retrieval from a gaia.VectorIndex, against per-query encoding.

    python examples/stored_vectors.py                   # 10 topics, BM25's top 20
    python examples/stored_vectors.py --topics 93 --depth 100

A bi-encoder re-ranker encodes every candidate document again for every query; a VectorIndex encodes
them once, at indexing time (metered as one ledger record: J per document), and a query then costs
one query encoding and dot products. One gaia.Experiment compares the two (same ranking, a fraction
of the energy) and dense retrieval from the stored vectors, float and int8. To keep a first run
short, only the documents BM25 returns for these topics are encoded (the whole collection, 11,429
documents, takes about 10 CPU minutes), so dense retrieval here searches those documents only.
Energy comes from RAPL/NVML counters where readable; without them (most VMs and containers) it is
modelled from CPU time and the CPU's TDP, and the method column says "model". Safe to run twice:
the indexes in --workdir are opened, not rebuilt, and the ledger is appended to.
"""
import pyterrier as pt

import pyterrier_gaia as gaia
from _shared import MODELLED, options, vaswani

args = options(__doc__)
ds, index = vaswani(args.workdir)
topics = ds.get_topics().head(args.topics)
bm25 = index.bm25(num_results=1000)
candidates = bm25 % args.depth
encoder = gaia.BiEncoder()                                  # the bundled all-MiniLM-L6-v2
ledger = gaia.Ledger(args.workdir / "stored-vectors.jsonl")

vec = gaia.VectorIndex(args.workdir / f"vaswani-minilm-top{args.depth}-of-{args.topics}-topics", encoder)
docs = candidates(topics).drop_duplicates("docno").to_dict("records")
building = not vec.built()
gaia.Metered(vec.indexer(), name="VectorIndex build", ledger=ledger).index(docs)
build = ledger.records[-1]
if building:
    print(f"encoded {build['docs']} documents once: {build['joules'] / build['docs']:.3f} J per document "
          f"({build['method']})")
else:
    print(f"opened {vec.path} ({len(vec)} documents encoded by an earlier run)")

systems = {
    "BM25": bm25,
    f"BM25 % {args.depth} >> MiniLM, per-query encoding": candidates >> encoder.reranker(),
    f"BM25 % {args.depth} >> MiniLM, stored vectors": candidates >> vec.reranker(),
    f"BM25 % {args.depth} >> MiniLM fused α=0.3, stored vectors": candidates >> vec.reranker(interpolate=0.3),
    "MiniLM dense retrieval, stored vectors": vec.retriever(num_results=1000),
    "MiniLM dense retrieval top 100, int8 codes, best 200 rescored": vec.retriever(100, quantized="int8", rescore=200),
}
results = gaia.Experiment(systems, topics, ds.get_qrels(), [pt.measures.nDCG @ 10, pt.measures.AP, "mrt"],
                          ledger=ledger)
print(f"{args.topics} topics; dense retrieval searches the {len(vec)} documents encoded, not the whole collection:")
print(results.to_string(index=False))
print(MODELLED)
