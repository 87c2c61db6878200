"""Diffusion-tuned re-ranking with the bundled cross-encoder against the reference and every fixed budget.

    .venv/bin/python benchmarks/diffusion.py [--collections vaswani cranfield cacm] [--topics 50]
                                             [--keeps 0.98 0.995] [--weights]
                                             [--depths 10 20 50 100]
                                             [--exits none query cascade]
                                             [--figures docs/figures] [--data ../shared/data]

Per collection, one metered ``gaia.Experiment`` of:

- the reference: BM25 top 100 re-ranked by the bundled cross-encoder (ms-marco-MiniLM-L-12-v2) at
  fp32, fused with BM25 at α = 0.3 when that is stronger on the collection (the script says which);
- every fixed budget: depth (``--depths``, default 10, 20, 50, 100) x precision (fp32, int8) x exit
  setting (``--exits``: ``none``, fp32 top 100 being the reference; ``query``, the early-exit re-ranker
  with the model's own head, no cascade, stopping a query at agreement 0.9; ``cascade``, the early-exit
  re-ranker's per-document cascade with its defaults, over depths above k), fused as the reference. The
  cascade's exit heads (one set per precision) are fitted by the ranker itself on the first 12 topics at
  depth 100 before the experiment and cached by collection name, so every cascade system runs as a
  second run would;
- ``gaia.DiffusionReRanker`` with its defaults (``keep=0.99``, no cascade inside its budgets, and
  ``interpolate`` as the reference),
  at each ``keep`` of ``--keeps``, and at fixed weights (1, 0, u) of ``--weights`` (none by default),
  all sharing one self-fit; with ``--cascade``, also with ``cascade=True`` and with ``cascade="auto"``
  (each its own self-fit; "auto" runs the way its first call predicts cheaper, the draws say which).

Nothing is fitted on judgments: each diffusion re-ranker fits itself as its first call would (the
experiment's own candidates, the full budget's scores as pseudo-labels), before the experiment and metered
as its own one-off records, so that every system of the experiment is measured in the same process: a fit
made inside the experiment would leave the systems after it a larger resident set, and the modelled DRAM
term charges each call the process's (docs/energy.md). The run uses a fresh gaia cache (unless
GAIA_CACHE is set), so the fits are this run's own. Judgments only
evaluate, and choose between the plain and the fused reference. Energy is modelled (CPU seconds x
per-core power + static and DRAM shares; no RAPL or NVML here), so J/q follows CPU time, and a busy
machine's wall times are long. The goals (issue 13): the diffusion re-ranker keeps >= 99% of the
reference's nDCG@10 for >= 3x less J/q, and >= 1.5x less than the cheapest fixed budget that keeps 99%.
"""
import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyterrier as pt

import pyterrier_gaia as gaia
from pyterrier_gaia.rankers.fusion import rescored

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield", "cacm": "cacm:{data}/cacm"}
FUSION = 0.3
DEPTHS = (10, 20, 50, 100)
PRECISIONS = ("fp32", "int8")
EXITS = ("none", "query", "cascade")
K = 10
KEEP = 0.99


def reference(ce, bm25, topics, qrels):
    """(name, α or None, nDCG@10) of the stronger of plain and fused fp32 re-ranking of the top 100 (one
    re-ranking, fused afterwards: the fusion needs only the scores)."""
    candidates = bm25(topics)
    plain = ce.reranker()(candidates)
    neural = candidates[["qid", "docno"]].merge(plain[["qid", "docno", "score"]], on=["qid", "docno"], how="left")
    fused = rescored(candidates, neural["score"], FUSION)
    table = pt.Experiment([plain, fused], topics, qrels, [pt.measures.nDCG @ 10], names=["plain", "fused"])
    plain, fused = table["nDCG@10"]
    print(f"reference candidates: plain fp32 top 100 {plain:.4f}, fused (α={FUSION}) {fused:.4f}")
    return ("fused", FUSION, fused) if fused > plain else ("plain", None, plain)


def fixed_budgets(ce, bm25, alpha, depths, exits, collection):
    """(name, family, pipeline) of every fixed budget: depth x precision x exit setting."""
    rows = []
    for precision in PRECISIONS:
        encoder = ce.at_precision(precision)
        for depth in depths:
            if "none" in exits and (precision, depth) != ("fp32", 100):     # that one is the reference
                rows.append((f"{precision} top {depth}", f"fixed {precision}",
                             bm25 % depth >> encoder.reranker(interpolate=alpha)))
            if "query" in exits:
                rows.append((f"{precision} top {depth} exit 0.9", f"fixed {precision} + exit",
                             bm25 % depth >> gaia.EarlyExitReRanker(encoder, cascade=False, agreement=0.9,
                                                                    interpolate=alpha)))
            if "cascade" in exits and depth > K:
                rows.append((f"{precision} top {depth} cascade", f"fixed {precision} + cascade",
                             bm25 % depth >> gaia.EarlyExitReRanker(encoder, interpolate=alpha,
                                                                    collection=collection)))
    return rows


def fit_cascade_heads(ce, bm25, topics, collection):
    """Let the cascade fit its exit heads on the first topics at depth 100, as its first run would, and
    cache them by ``collection`` (outside the experiment: its systems then run as a second run)."""
    from pyterrier_gaia.rankers.early_exit import SELF_FIT
    candidates = bm25(topics.head(SELF_FIT["queries"]))
    for precision in PRECISIONS:        # heads read one precision's states: each fits its own
        ranker = gaia.EarlyExitReRanker(ce.at_precision(precision), collection=collection)
        ranker(candidates)
        print(f"cascade exit heads at {precision}: fitted on {ranker.heads.info['queries']} queries, cached as "
              f"{collection!r}" if ranker.heads is not None else "cascade exit heads: too few topics to fit on")


def fit_diffusion(variants, candidates):
    """Let each diffusion ranker fit itself on ``candidates`` as its first call would (the same queries: u,
    and for "auto" the cascade, are solved on them too), metered into a ledger of its own. Returns that
    ledger's records and each system's draws (``budgets()``; the experiment draws the same: u is kept and
    draws are seeded per query)."""
    ledger = gaia.Ledger()
    drawn = {system: gaia.Metered(pt.apply.generic(ranker.budgets), name=system, sensors="model", ledger=ledger,
                                  startup=True)(candidates)
             for system, ranker in variants.items()}
    return ledger.to_frame(), drawn


def collection_table(name, spec, topic_count, keeps, weights, depths, exits, tmp, cascade=False):
    ds = gaia.datasets.get(spec)
    qrels = ds.get_qrels()
    topics = ds.get_topics()
    topics = topics[topics["qid"].isin(qrels["qid"])].head(topic_count)
    index = gaia.LuceneIndex(Path(tmp) / name).index(ds.get_corpus_iter())
    bm25 = index.bm25(num_results=100)
    ce = gaia.CrossEncoder()
    print(f"\n== {name}: {len(topics)} topics with judgments")
    kind, alpha, _ = reference(ce, bm25, topics, qrels)
    diffusion = gaia.DiffusionReRanker(ce, interpolate=alpha, collection=name)
    variants = {"diffusion (defaults)": diffusion}
    variants.update({f"diffusion keep={keep:g}": diffusion.with_weights(keep=keep) for keep in keeps})
    variants.update({f"diffusion u={u:g}": diffusion.with_weights((1, 0, u)) for u in weights})
    if cascade:                                                  # own self-fits: the cascade is a fitted option
        variants.update({f"diffusion cascade{'' if way is True else ' auto'}":
                         gaia.DiffusionReRanker(ce, interpolate=alpha, collection=name, cascade=way)
                         for way in (True, "auto")})
    compared = [("BM25", "BM25", bm25), ("reference", "reference", bm25 >> ce.reranker(interpolate=alpha))]
    if "cascade" in exits and any(depth > K for depth in depths):     # some fixed budget has the cascade
        fit_cascade_heads(ce, bm25, topics, name)
    compared += fixed_budgets(ce, bm25, alpha, depths, exits, name)
    compared += [(system, "diffusion", bm25 >> ranker) for system, ranker in variants.items()]
    fits, draws = fit_diffusion(variants, bm25(topics))
    ledger = gaia.Ledger()
    table = gaia.Experiment([p for _, _, p in compared], topics, qrels, [pt.measures.nDCG @ 10, "mrt"],
                            names=[n for n, _, _ in compared], sensors="model", ledger=ledger)
    table = table.assign(family=[f for _, f, _ in compared], collection=name, reference=kind)
    info = diffusion.usefulness.info
    fit = fits[fits["stage"].str.contains(" / fit diffusion")]          # Û and the cost calibration
    print(f"diffusion self-fits: {info['queries']} queries, {fit['wall_s'].sum():.0f} s, {fit['joules'].sum():.0f} J "
          f"(one-off records, modelled); Û held-out R² {info['r2_held_out']:.3f} over (query, budget), "
          f"{info['r2_across_queries']:.3f} across queries at {info['r2_budget']} "
          f"(target spread across queries {info['target_spread_across_queries']:.3f}); reads the query signals: "
          f"{info['reads_signals']} (held-out R² with {info['r2_held_out_with_signals']:.3f}, without "
          f"{info['r2_held_out_without_signals']:.3f})")
    for system, drawn in draws.items():
        print(f"{system} draws: u={drawn['u'].iloc[0]:g}, depth q25/q50/q75 "
              f"{'/'.join(f'{d:.0f}' for d in drawn['depth'].quantile([.25, .5, .75]))}, "
              f"int8 {(drawn['precision'] == 'int8').mean():.0%}, exits allowed (threshold <= 1) "
              f"{(drawn['agreement'] <= 1).mean():.0%}, cascade {drawn['cascade'].iloc[0]}")
    return table


def goals(table):
    """Per diffusion system: its share of the reference's nDCG@10, J/q saving against the reference and
    against the cheapest fixed budget keeping 99% of it."""
    ref = table[table["name"] == "reference"].iloc[0]
    fixed = table[table["family"].str.startswith("fixed") | (table["name"] == "reference")]
    keeping = fixed[fixed["nDCG@10"] >= KEEP * ref["nDCG@10"]]
    cheapest = keeping.loc[keeping["J/q"].idxmin()] if len(keeping) else None
    rows = []
    for _, point in table[table["family"] == "diffusion"].iterrows():
        rows.append({"collection": point["collection"], "system": point["name"],
                     "nDCG@10 / reference": point["nDCG@10"] / ref["nDCG@10"],
                     "J/q saving vs reference (goal >= 3)": ref["J/q"] / point["J/q"],
                     "cheapest fixed keeping 99%": None if cheapest is None else cheapest["name"],
                     "J/q saving vs it (goal >= 1.5)": None if cheapest is None else cheapest["J/q"] / point["J/q"]})
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=sorted(COLLECTIONS))
    parser.add_argument("--topics", type=int, default=50, help="topics per collection (the first with judgments)")
    parser.add_argument("--keeps", type=float, nargs="*", default=[0.98, 0.995],
                        help="keep= of further diffusion systems (u solved on their first call)")
    parser.add_argument("--weights", type=float, nargs="*", default=[],
                        help="u of diffusion systems at fixed weights (1, 0, u)")
    parser.add_argument("--depths", type=int, nargs="*", default=list(DEPTHS),
                        help="depths of the fixed budgets (none: the reference and the diffusion systems alone)")
    parser.add_argument("--exits", nargs="+", default=list(EXITS), choices=EXITS, help="exit settings of the fixed budgets")
    parser.add_argument("--cascade", action="store_true",
                        help="also the diffusion re-ranker with cascade=True and with cascade=\"auto\" (own self-fits)")
    parser.add_argument("--figures", default=str(Path(__file__).resolve().parents[1] / "docs" / "figures"))
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    pd.set_option("display.width", 300)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        # a fresh gaia cache: the ranker fits itself on this run's candidates (and the fit is timed in its
        # record), instead of loading a fit cached by an earlier run on the same collection name
        os.environ.setdefault("GAIA_CACHE", str(Path(tmp) / "cache"))
        for name in args.collections:
            table = collection_table(name, COLLECTIONS[name].format(data=args.data), args.topics, args.keeps,
                                     args.weights, args.depths, args.exits, tmp, args.cascade)
            path = gaia.plot_pareto(table, Path(args.figures) / f"diffusion-{name}.png", family="family", logx=True,
                                    title=f"{name}: nDCG@10 against modelled J/q (no RAPL/NVML)")
            front = gaia.pareto(table)
            print(f"Pareto front: {list(front.points['name'])}; figure: {path}")
            tables.append(table)
    every = pd.concat(tables)
    number = lambda v: f"{v:.4f}"  # noqa: E731
    print("\nBM25 >> the bundled cross-encoder: reference, fixed budgets and diffusion; energy modelled "
          "(no RAPL/NVML here)")
    print(every[["collection", "name", "family", "reference", "nDCG@10", "J/q", "gCO2e/q", "ms/q", "mrt"]]
          .to_string(index=False, float_format=number))
    print("\nGoals")
    print(pd.concat([goals(t) for t in tables]).to_string(index=False, float_format=number))


if __name__ == "__main__":
    main()
