"""Early exit on the bundled 12-layer cross-encoder, with no set-up calls, against full depth.

    .venv/bin/python examples/early_exit.py [--topics 20] [--workdir DIR] [--depth 40]

BM25's top 40 (``--depth``) on the embedded Vaswani collection, re-ranked by the cross-encoder at full depth and by
``gaia.EarlyExitReRanker`` with its defaults, in one metered ``gaia.Experiment``. The early-exit ranker
fits its exit heads by itself on the first 12 queries it re-ranks (the experiment's warm-up topic
included), exactly, at full depth, with no judgments; the queries after them run the cascade. The
fit is its own start-up record in the ledger, never in a system's J/q; with fewer topics nothing is
fitted and early exit equals full depth. Energy is whatever the machine
lets us sense: RAPL/NVML counters where readable, else a power model (the ``method`` column says which).
"""
import os
from pathlib import Path

import pyterrier as pt

import pyterrier_gaia as gaia
from _shared import options, vaswani


def main():
    args = options(__doc__, topics=20, depth=40)
    os.chdir(args.workdir)
    ds, index = vaswani(Path("."))
    bm25 = index.bm25(num_results=args.depth)
    encoder = gaia.CrossEncoder()
    early_exit = gaia.EarlyExitReRanker(encoder, collection="vaswani")

    results = gaia.Experiment(
        [bm25, bm25 >> encoder.reranker(), bm25 >> early_exit],
        ds.get_topics().head(args.topics), ds.get_qrels(), [pt.measures.nDCG @ 10, "mrt"],
        names=[f"BM25 top {args.depth}", "cross-encoder, full depth", "cross-encoder, early exit"],
        ledger="early-exit-ledger.jsonl")
    print(results.to_string(index=False))

    ledger = gaia.Ledger.load("early-exit-ledger.jsonl").to_frame()
    flops = {name: sum(c.get("flops", 0) for c in ledger.loc[ledger["stage"].str.startswith(name + " /")
                                                             & ~ledger["startup"], "counts"])
             for name in ("cross-encoder, full depth", "cross-encoder, early exit")}
    print(f"\nlayer FLOPs, full depth / early exit: {flops['cross-encoder, full depth'] / flops['cross-encoder, early exit']:.2f}x")
    fit = ledger[ledger["stage"].str.endswith("exit heads")]
    print("exit heads (start-up records, not in J/q):")
    print(fit[["stage", "wall_s", "cpu_s", "joules", "method"]].to_string(index=False))
    print(f"exit heads: {early_exit.heads!r}" if early_exit.heads is not None else
          "exit heads: not fitted yet (the ranker fits them on its first 12 queries; run more --topics)")


if __name__ == "__main__":
    main()
