"""Quick start: BM25 against MiniLM re-ranking on the embedded Vaswani collection, with energy columns.

    python examples/quickstart.py                                 # 10 topics, BM25's top 20 re-ranked
    python examples/quickstart.py --topics 93 --depth 100 --workdir runs

One gaia.Experiment: nDCG@10, AP and mean response time, plus the energy (J/q), carbon (gCO2e/q)
and sensing method of each system. Energy comes from RAPL/NVML counters where readable; without
them (most VMs and containers) it is modelled from CPU time and the CPU's TDP, and the method
column says "model". Safe to run twice: the index in --workdir is opened, the ledger appended to.
"""
import pyterrier as pt

import pyterrier_gaia as gaia
from _shared import MODELLED, options, vaswani

args = options(__doc__)
ds, index = vaswani(args.workdir)
bm25 = index.bm25(num_results=1000)
candidates = bm25 % args.depth
encoder = gaia.BiEncoder()                          # the bundled all-MiniLM-L6-v2
ledger = args.workdir / "quickstart-ledger.jsonl"

results = gaia.Experiment(
    [bm25, candidates >> encoder.reranker(interpolate=0.3),
     candidates >> encoder.reranker(precision="int8", interpolate=0.3)],
    ds.get_topics().head(args.topics), ds.get_qrels(), [pt.measures.nDCG @ 10, pt.measures.AP, "mrt"],
    names=["BM25", f"BM25 % {args.depth} >> MiniLM fp32 (fused)", f"BM25 % {args.depth} >> MiniLM int8 (fused)"],
    ledger=ledger)
print(results.to_string(index=False))
print(MODELLED)
print(f"\nPer stage, every run so far (gaia report {ledger}):")
print(gaia.Ledger.load(ledger).summary().to_string())
