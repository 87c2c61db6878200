"""Does a no-judgment usefulness target track what a shallower re-ranking really loses?

The diffusion re-ranker's Û is fitted, without judgments, to the nDCG@10 a budget keeps against the
full budget's own scores as graded pseudo-labels. This script checks such targets against the judgments
(which only evaluate here; nothing is fitted): BM25's top 100 (Lucene) re-ranked by the bundled
cross-encoder at fp32, fused with BM25 at α = 0.3, every candidate scored once; the ranking of a fixed
depth d re-ranks BM25's top d and keeps the rest in BM25's order. Printed per collection:

- per depth, mean nDCG@10 against the judgments and against each pseudo-label scheme, and its share of
  depth 100's: ``min-max`` (``pseudo_qrels``: the full budget's scores min-max scaled in hundredths, the
  package's target) and ``above the 11th`` (graded from the 11th score up, 0 below: the first target,
  kept here for comparison);
- per query, the correlation between what depth d loses against depth 100 on the judgments and on each
  target, and with query signals (how many of the top 10 come from below rank d, BM25's score spread):
  how far a per-query budget could follow the real loss without judgments.

    .venv/bin/python benchmarks/usefulness_target.py [--collections vaswani cacm] [--topics N] [--data ../shared/data]
"""
import argparse
import tempfile
from pathlib import Path
from typing import Dict, NamedTuple

import numpy as np
import pandas as pd

import pyterrier_gaia as gaia
from pyterrier_gaia.rankers.diffusion import pseudo_qrels
from pyterrier_gaia.rankers.fusion import fuse
from pyterrier_gaia.rankers.measures import ndcg

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield", "cacm": "cacm:{data}/cacm"}
FUSION, K, DEPTHS = 0.3, 10, (10, 20, 30, 50, 100)


def above_the_cut(qid, docnos, scores) -> pd.DataFrame:
    """The first target's labels: how far a score lies above the (K+1)-th, in hundredths of the best's lead."""
    floor = np.sort(scores)[::-1][min(K, len(scores) - 1)]
    span = scores.max() - floor
    labels = np.ones(len(scores)) if span <= 0 else np.clip(np.round(100 * (scores - floor) / span), 0, None)
    return pd.DataFrame({"qid": qid, "docno": docnos, "label": labels.astype(int)})


def scored_candidates(spec: str, topic_count: int, tmp: str):
    """BM25's top 100 of the judged topics, each with its cross-encoder score (``neural``); and the qrels."""
    ds = gaia.datasets.get(spec)
    topics, qrels = ds.get_topics(), ds.get_qrels()
    topics = topics[topics["qid"].isin(qrels["qid"])].head(topic_count)
    bm25 = gaia.LuceneIndex(Path(tmp) / spec.split(":")[0]).index(ds.get_corpus_iter()).bm25(num_results=100)
    candidates = bm25(topics)
    neural = gaia.CrossEncoder().reranker(batch_size=32)(candidates)[["qid", "docno", "score"]]
    return candidates.merge(neural.rename(columns={"score": "neural"}), on=["qid", "docno"]), qrels


class Query(NamedTuple):
    qid: str
    docnos: np.ndarray      # BM25's order
    first: np.ndarray       # BM25's scores
    full: np.ndarray        # the full budget's fused scores
    top: Dict[int, np.ndarray]   # depth -> that depth's top 10


def per_query(candidates: pd.DataFrame):
    """Each query's :class:`Query`."""
    for qid, group in candidates.groupby("qid", sort=False):
        group = group.sort_values("rank", kind="stable")
        docnos, first, neural = group["docno"].to_numpy(), group["score"].to_numpy(), group["neural"].to_numpy()
        rankings = {}
        for depth in DEPTHS:
            fused = fuse(FUSION, first[:depth], neural[:depth])
            order = np.concatenate([np.argsort(-fused, kind="stable"), np.arange(depth, len(docnos))])
            rankings[depth] = docnos[order][:K]
        yield Query(qid, docnos, first, fuse(FUSION, first, neural), rankings)


def report(name: str, candidates: pd.DataFrame, qrels: pd.DataFrame) -> None:
    queries = list(per_query(candidates))
    labels = {"judgments": qrels,
              "min-max (pseudo_qrels)": pd.concat([pseudo_qrels(q.qid, q.docnos, q.full) for q in queries]),
              "above the 11th": pd.concat([above_the_cut(q.qid, q.docnos, q.full) for q in queries])}
    values = {target: {depth: ndcg([(q.qid, q.top[depth]) for q in queries], judged, K) for depth in DEPTHS}
              for target, judged in labels.items()}
    print(f"\n{name}: {len(queries)} judged topics, BM25 top 100 re-ranked by the cross-encoder fp32 fused "
          f"with BM25 (α={FUSION}); nDCG@10 per depth (share of depth 100's)")
    for target, by_depth in values.items():
        print(f"  {target:24s} " + "  ".join(f"d{d} {v.mean():.4f} ({100 * v.mean() / by_depth[100].mean():.1f}%)"
                                             for d, v in by_depth.items()))
    spread = np.array([q.first.std() / q.first.mean() for q in queries])
    for depth in DEPTHS[:-1]:
        real = values["judgments"][100] - values["judgments"][depth]
        columns = {target: by_depth[100] - by_depth[depth] for target, by_depth in values.items() if target != "judgments"}
        columns["top 10 from below d"] = np.array([(~np.isin(q.top[100], q.docnos[:depth])).sum() for q in queries],
                                                  dtype=float)
        columns["BM25 score spread (std / mean)"] = spread
        print(f"  depth {depth}: judged loss {real.mean():+.4f} (lost on {np.mean(real > 0):.0%} of topics, gained on "
              f"{np.mean(real < 0):.0%}); per-topic correlation with it: " +
              ", ".join(f"{label} {np.corrcoef(value, real)[0, 1]:+.2f}" for label, value in columns.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=["vaswani"], choices=sorted(COLLECTIONS))
    parser.add_argument("--topics", type=int, default=10 ** 6, help="first N judged topics (default all)")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.collections:
            report(name, *scored_candidates(COLLECTIONS[name].format(data=args.data), args.topics, tmp))


if __name__ == "__main__":
    main()
