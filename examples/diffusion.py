"""Diffusion-tuned re-ranking with the bundled cross-encoder, against fixed budgets, and its Pareto front.

    .venv/bin/python examples/diffusion.py [--topics 20] [--workdir DIR] [--depth 100]

On the embedded Vaswani collection: BM25's top 100 (``--depth``) re-ranked by the bundled cross-encoder
(ms-marco-MiniLM-L-12-v2) at fp32 (the reference), at int8, at depth 20, and by
``gaia.DiffusionReRanker``, which picks a budget per query (depth x precision), spending so that
the queries keep 99 % of the full re-ranking by its own estimate (``keep=0.99``).
The diffusion re-ranker is used with no set-up call: its first call fits what it needs from that
call's own candidates, without judgments, metered as a one-off record of its own (and cached, so a
second run of this script reads it back). Then ``gaia.tune`` runs it at several weights (a, c, u)
and ``gaia.pareto`` / ``gaia.plot_pareto`` draw the effectiveness-energy front of every system.

Energy is whatever the machine lets us sense: RAPL/NVML counters where readable, else a power model
(the ``method`` column says which). Nothing is fitted on judgments; they only evaluate.
"""

import pandas as pd
import pyterrier as pt

import pyterrier_gaia as gaia
from _shared import options, vaswani


def main():
    args = options(__doc__, topics=20, depth=100)
    workdir = args.workdir
    pd.set_option("display.width", 200)
    ds, index = vaswani(workdir)
    bm25 = index.bm25(num_results=args.depth)
    topics, qrels = ds.get_topics().head(args.topics), ds.get_qrels()
    ce = gaia.CrossEncoder()

    diffusion = gaia.DiffusionReRanker(ce, collection="vaswani")     # no set-up call: fits on first use
    systems = {"BM25": bm25,
               f"CE fp32 top {args.depth} (reference)": bm25 >> ce.reranker(),
               f"CE int8 top {args.depth}": bm25 >> ce.reranker(precision="int8"),
               "CE fp32 top 20": bm25 % 20 >> ce.reranker(),
               "diffusion (defaults)": bm25 >> diffusion}
    ledger = gaia.Ledger(workdir / "ledger.jsonl")
    fixed = gaia.Experiment(list(systems.values()), topics, qrels, [pt.measures.nDCG @ 10, "mrt"],
                            names=list(systems), ledger=ledger)
    print(fixed.to_string(index=False))
    one_off = ledger.to_frame()
    print("\none-off records (warm-up, the diffusion ranker's own fit and cost calibration), left out of J/q:")
    print(one_off.loc[one_off["startup"], ["stage", "wall_s", "joules", "method"]].to_string(index=False))
    info = diffusion.usefulness.info
    print(f"\nusefulness model: fitted on {info['queries']} queries, target {info['target']}; held-out R² "
          f"{info['r2_held_out']:.3f} over (query, budget), {info['r2_across_queries']:.3f} across queries at "
          f"{info['r2_budget']}")
    print(diffusion.budgets(bm25(topics)).describe(include="all").to_string())

    tuned = gaia.tune(bm25, diffusion, topics, qrels, [(1, 0, u) for u in (2, 8, 32)], sensors="model")
    every = pd.concat([fixed, tuned[fixed.columns.intersection(tuned.columns)]], ignore_index=True)
    front = gaia.pareto(every, x="J/q", y="nDCG@10")
    print(f"\nPareto front (J/q against nDCG@10): {list(front.points['name'])}; knee: {front.knee}")
    path = gaia.plot_pareto(every, workdir / "diffusion-front.png", logx=True,
                            title=f"Vaswani, {len(topics)} topics: nDCG@10 against J/q")
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
