"""How much can per-query budgets save at all? The diffusion re-ranker's budget space replayed on every
topic, against fixed budgets and two oracles.

    .venv/bin/python benchmarks/diffusion_headroom.py [--collection vaswani] [--topics 93]
                                                      [--interpolate 0.3] [--agreements 0.5 1.1]
                                                      [--probe-depth 20] [--keep scores.pkl]
                                                      [--data ../shared/data]

Each topic's BM25 top 100 is scored by the bundled cross-encoder (ms-marco-MiniLM-L-12-v2) after
every layer at fp32 and at int8 (``DiffusionReRanker.layer_scores``, what the ranker's fit does).
Every budget of a grid (11 depths from 10 to 100 x the two precisions x up to 6 exit thresholds
between ``--agreements``; the ranker's options ``--agreements`` and ``--probe-depth``) is then
replayed exactly per topic (``DiffusionReRanker.replay``) and scored three ways: nDCG@10 against the
judgments; nDCG@10 against the pseudo-judgments the ranker fits on without judgments (the full
budget's scores); and its cost, the layer FLOPs of the pairs it runs (the encoder's own counts), int8's
weighted by the CPU-time ratio of the two precisions' layer scores measured in this run.

Policies, each giving points (mean cost, mean nDCG@10) over the topics:

- **fixed**: one budget for every topic (every budget of the grid);
- **fitted Û, held out**: per topic, the budget minimising cost/full cost - u x Û, Û the ranker's
  usefulness model fitted without judgments on the other topics (4 folds; the ranker fits on up to 32
  topics of its first call), plus the cost of its probe: the green potential's minimum, without
  the Langevin noise, with FLOPs in place of the calibrated cost model;
- **pseudo oracle**: per topic, the budget minimising cost/full cost - u x pseudo nDCG@10, for a sweep
  of u: the green potential with a perfect usefulness model of the ranker's own target, so the best
  that any Û fitted without judgments can do;
- **true oracle**: the same with the judgments' nDCG@10: the headroom of per-query budgets at all (it
  reads the judgments, so no ranker can reach it).

Printed: per policy, the cheapest point keeping 99% of the full budget's nDCG@10 and its cost against
the cheapest fixed budget doing so (issue 13 asks the diffusion re-ranker for 1.5x less). Nothing is
metered: costs are operation counts, not energy; nothing is fitted.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import pyterrier_gaia as gaia
from pyterrier_gaia.rankers.measures import ndcg

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield", "cacm": "cacm:{data}/cacm"}
DEPTH, K, KEEP = 100, 10, 0.99
U_SWEEP = np.geomspace(0.01, 1000, 81)
FOLDS = 4


def layer_scores(ranker, ranked):
    """Every candidate's score after every layer, per precision, and the CPU seconds each precision took."""
    seconds, scores = {}, {}
    for precision in ranker.space.precisions:      # warm-up: loading and first calls are not what a FLOP costs
        ranker.layer_scores(precision, ranked[ranked["qid"] == ranked["qid"].iloc[0]])
    for precision in ranker.space.precisions:
        started = time.process_time()
        scores[precision] = ranker.layer_scores(precision, ranked)
        seconds[precision] = time.process_time() - started
    return scores, seconds


def replayed(name, spec, topic_count, tmp, keep=None, **options):
    """Per (topic, budget): its cost in fp32-equivalent layer GFLOPs and its nDCG@10 against the
    judgments and the pseudo-judgments; and the CPU-time ratio of int8 to fp32."""
    ds = gaia.datasets.get(spec)
    qrels = ds.get_qrels()
    topics = ds.get_topics()
    topics = topics[topics["qid"].isin(qrels["qid"])].head(topic_count)
    bm25 = gaia.LuceneIndex(Path(tmp) / name).index(ds.get_corpus_iter()).bm25(num_results=DEPTH)
    encoder = gaia.CrossEncoder()
    ranker = gaia.DiffusionReRanker(encoder, **options)
    ranked = ranker.in_first_stage_order(bm25(topics))
    if keep is not None and Path(keep).exists():
        ranked, scores, seconds = pd.read_pickle(keep)
        print(f"layer scores read from {keep}")
    else:
        scores, seconds = layer_scores(ranker, ranked)
        if keep is not None:
            pd.to_pickle((ranked, scores, seconds), keep)
    weight = {p: seconds[p] / seconds["fp32"] for p in seconds}
    grid = ranker.space.grid(depths=11)
    table, pseudo = ranker.replay(ranked, scores, grid)
    rankings = list(zip(table["qid"], table["ranking"]))
    table["true"] = ndcg(rankings, qrels, K)
    table["pseudo"] = ndcg(rankings, pseudo, K)
    tokens = encoder.input_tokens(ranked["query"], ranked["text"])
    per_layer = np.array([encoder.flops(1, int(n), 1) for n in tokens]) / 1e9
    cumulative = np.concatenate([[0.0], np.cumsum(per_layer)])     # GFLOPs of one layer over rows 0..i-1
    start = dict(zip(ranked["qid"][ranked["position"] == 0], ranked.index[ranked["position"] == 0]))
    size = ranked.groupby("qid", sort=True).size()
    runs = [cumulative[start[qid] + min(depth, size[qid])] - cumulative[start[qid]]
            for qid, depth in zip(table["qid"], table["depth"])]
    layers = table["fraction"].to_numpy() * encoder.num_layers
    table["cost"] = np.array(runs) * layers * table["precision"].map(weight).to_numpy()
    # Û fitted without judgments on the other folds' topics, as the ranker fits it; its probe is the
    # first probe_layer layers at fp32 over the top probe_depth, spent on every topic
    table["fitted"] = ranker.fit_usefulness(ranker.signals(ranked), table, grid, table["pseudo"], FOLDS)
    probed = per_layer * (ranked["position"].to_numpy() < ranker.probe_depth) * ranker.probe_layer
    table["probe"] = table["qid"].map(pd.Series(probed).groupby(ranked["qid"].to_numpy()).sum())
    print(f"\n== {name}: {ranked['qid'].nunique()} topics, {len(grid)} budgets; CPU seconds of every layer over "
          f"the top {DEPTH}: " + ", ".join(f"{p} {s:.0f} s" for p, s in seconds.items())
          + f" (int8 weighs {weight.get('int8', 1):.2f} of fp32 per FLOP)")
    info = ranker.usefulness.info
    print(f"Û held out (no judgments): R² {info['r2_held_out']:.3f} over (topic, budget), "
          f"{info['r2_across_queries']:.3f} across topics at {info['r2_budget']}")
    return table


def fronts(table, full_budget):
    """(policy, u or budget, mean cost, mean nDCG@10) of every point of the four policies."""
    budgets = table[["depth", "precision", "agreement"]].apply(tuple, axis=1)
    count = len(pd.unique(budgets))
    cost = table["cost"].to_numpy().reshape(-1, count)
    true, pseudo, fitted = (table[c].to_numpy().reshape(-1, count) for c in ("true", "pseudo", "fitted"))
    probe = table["probe"].to_numpy().reshape(-1, count)[:, 0]
    names = list(budgets.iloc[:count])
    full = cost[:, names.index(full_budget)][:, None]
    points = [("fixed", f"depth {d}, {p}, exit {a:g}", cost[:, b].mean(), true[:, b].mean())
              for b, (d, p, a) in enumerate(names)]
    rows = np.arange(len(cost))
    for policy, usefulness, extra in (("fitted Û, held out", fitted, probe), ("pseudo oracle", pseudo, 0),
                                      ("true oracle", true, 0)):
        for u in U_SWEEP:
            chosen = np.argmin(cost / full - u * usefulness, axis=1)
            points.append((policy, f"u={u:.3g}", (cost[rows, chosen] + extra).mean(), true[rows, chosen].mean()))
    return pd.DataFrame(points, columns=["policy", "setting", "GFLOPs/q", "nDCG@10"]), true[:, names.index(full_budget)].mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="vaswani", choices=sorted(COLLECTIONS))
    parser.add_argument("--topics", type=int, default=1000, help="topics (the first with judgments; default all)")
    parser.add_argument("--interpolate", type=float, default=0.3, help="fusion with BM25 (α), as the reference")
    parser.add_argument("--agreements", type=float, nargs=2, default=[0.5, 1.1],
                        help="the ranker's exit thresholds (lowest, highest); 1.1 1.1: no query-level exit")
    parser.add_argument("--probe-depth", type=int, default=20, help="the ranker's probe_depth (0: no probe)")
    parser.add_argument("--keep", help="a file to keep the layer scores in (read back if it exists)")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        spec = COLLECTIONS[args.collection].format(data=args.data)
        table = replayed(args.collection, spec, args.topics, tmp, args.keep, interpolate=args.interpolate,
                         agreements=tuple(args.agreements), probe_depth=args.probe_depth)
    full_budget = (DEPTH, "fp32", args.agreements[1])
    points, reference = fronts(table, full_budget)
    print(f"full budget (depth {DEPTH}, fp32, no exit, fused α={args.interpolate:g}): nDCG@10 {reference:.4f}; "
          f"costs are layer GFLOPs per topic (fp32-equivalent), not energy")
    keeping = points[points["nDCG@10"] >= KEEP * reference]
    best = keeping.loc[keeping.groupby("policy")["GFLOPs/q"].idxmin()].set_index("policy")
    best["vs cheapest fixed"] = best.loc["fixed", "GFLOPs/q"] / best["GFLOPs/q"]
    best["share of full"] = best["nDCG@10"] / reference
    print(f"\nCheapest point of each policy keeping {KEEP:.0%} of the full budget's nDCG@10")
    print(best.to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nEach policy's front (GFLOPs/q -> nDCG@10), up to 12 points")
    for policy, rows in points.groupby("policy"):
        front = gaia.pareto(rows, x="GFLOPs/q", y="nDCG@10", name="setting").points
        front = front.drop_duplicates(["GFLOPs/q", "nDCG@10"])
        shown = front.iloc[np.unique(np.linspace(0, len(front) - 1, 12).round().astype(int))]
        print(f"{policy}: " + "; ".join(f"{c:.1f} -> {v:.4f}" for c, v in zip(shown["GFLOPs/q"], shown["nDCG@10"])))


if __name__ == "__main__":
    main()
