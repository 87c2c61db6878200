"""The precision ladder: one re-ranker at fp32, bf16 (where this CPU runs it natively) and int8, side by side.

    python examples/precision_ladder.py                 # 10 topics, BM25's top 20 re-ranked by MiniLM
    python examples/precision_ladder.py --topics 93 --depth 100

One gaia.Experiment: nDCG@10, AP, mean response time, and the energy (J/q) and carbon (gCO2e/q) of
each rung, with its change in nDCG@10 against fp32. Energy comes from RAPL/NVML counters where
readable; without them (most VMs and containers) it is modelled from CPU time and the CPU's TDP,
and the method column says "model". Safe to run twice: the index in --workdir is opened, the ledger
appended to.
"""
import pyterrier as pt

import pyterrier_gaia as gaia
from pyterrier_gaia.encoders.precision import runnable
from _shared import MODELLED, options, vaswani

args = options(__doc__)
ds, index = vaswani(args.workdir)
candidates = index.bm25(num_results=1000) % args.depth
encoder = gaia.BiEncoder()                                  # the bundled all-MiniLM-L6-v2, fp32
rungs = [p for p in ("fp32", "bf16", "int8") if p in runnable(encoder.device)]
print(f"precisions that run on {encoder.device.type} here: {', '.join(runnable(encoder.device))}")

systems = {f"MiniLM {precision}": candidates >> encoder.reranker(precision=precision) for precision in rungs}
results = gaia.Experiment(systems, ds.get_topics().head(args.topics), ds.get_qrels(),
                          [pt.measures.nDCG @ 10, pt.measures.AP, "mrt"],
                          ledger=args.workdir / "precision-ladder.jsonl")
results["Δ nDCG@10 vs fp32"] = results["nDCG@10"] - results["nDCG@10"].iloc[0]
print(f"BM25's top {args.depth} re-ranked on {args.topics} topics:")
print(results.to_string(index=False))
print(MODELLED)
