"""The cross-encoder that practitioners run, at each precision rung, beside the bi-encoder over stored
vectors: on each collection, one metered gaia.Experiment of BM25, BM25 % DEPTH re-ranked by the bundled
cross-encoder (ms-marco-MiniLM-L-12-v2) at every precision that runs here, plain and fused with BM25
(α = 0.3), and the bundled MiniLM bi-encoder re-ranking from stored document vectors (gaia.VectorIndex),
plain and fused. Columns nDCG@10, AP, J/q, ms/q, pairs per CPU-second; peak memory per rung; the
Pareto front of all systems per collection (a PNG each).

    .venv/bin/python benchmarks/cross_encoder.py [--collections vaswani cranfield cacm] [--depth 100]
                                                 [--topics 0] [--figures docs/figures] [--data ../shared/data]

Nothing is fitted. Energy is modelled (CPU seconds x per-core power + static and DRAM shares; no RAPL or
NVML here); gaia.Experiment warms each system up on one topic as its own start-up record, left out of
J/q. The stored vectors' index-time energy (J per document) is its own figure. Peak memory: each rung
in a fresh process (ru_maxrss) scoring 256 pairs. Other load on the machine slows wall time.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyterrier as pt
import torch

import pyterrier_gaia as gaia
from pyterrier_gaia.encoders.precision import runnable

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield", "cacm": "cacm:{data}/cacm"}
MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP, "mrt"]
FUSION = 0.3
RUNGS = ("fp32", "bf16", "int8")  # the CPU rungs; those that cannot run here are left out


def peak_memory(precision: str) -> float:
    """MiB of resident memory at peak of a fresh process that loads the cross-encoder at ``precision``
    and scores 256 pairs."""
    code = ("import resource, pyterrier_gaia as gaia; "
            f"ce = gaia.CrossEncoder(precision={precision!r}); "
            "ce.score(['what is a microwave antenna'] * 256, ['a dish that focuses microwaves ' * 20] * 256); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def index_vectors(ds, folder, encoder) -> dict:
    """The stored-vector index of ``ds`` (built once, metered): the index and its J per document."""
    vectors = gaia.VectorIndex(folder, encoder)
    metered = gaia.Metered(vectors.indexer(), name="VectorIndex.index", sensors="model")
    metered.index(ds.get_corpus_iter())
    record = metered.ledger.records[-1]
    return {"index": vectors, "J/doc": record["joules"] / record["docs"], "docs/s": record["docs"] / record["wall_s"],
            "docs": record["docs"]}


def systems(index, vectors, depth):
    """(name, family, pipeline) of every system compared."""
    bm25 = index.bm25(num_results=depth)
    rows = [("BM25", "BM25", index.bm25(num_results=1000))]
    cross = gaia.CrossEncoder()
    for precision in [p for p in RUNGS if p in runnable(torch.device("cpu"))]:
        rows += [(f"CE {precision}", f"cross-encoder {precision}", bm25 >> cross.reranker(precision=precision)),
                 (f"CE {precision} fused", f"cross-encoder {precision}",
                  bm25 >> cross.reranker(precision=precision, interpolate=FUSION))]
    rows += [("MiniLM stored", "bi-encoder, stored vectors", bm25 >> vectors.reranker()),
             ("MiniLM stored fused", "bi-encoder, stored vectors", bm25 >> vectors.reranker(interpolate=FUSION))]
    return rows


def pairs_per_cpu_second(ledger, name) -> float:
    """Candidate pairs re-ranked per CPU-second by system ``name``'s re-ranking stage (NaN for BM25)."""
    records = [r for r in ledger.records if r["stage"].startswith(f"{name} / ") and not r.get("startup")
               and r["counts"].get("pairs")]
    cpu = sum(r["cpu_s"] for r in records)
    return sum(r["counts"]["pairs"] for r in records) / cpu if cpu else float("nan")


def collection_table(name, spec, depth, topic_count, tmp, figures):
    ds = gaia.datasets.get(spec)
    topics, qrels = ds.get_topics(), ds.get_qrels()
    topics = topics[topics["qid"].isin(qrels["qid"])]
    if topic_count:
        topics = topics.head(topic_count)
    index = gaia.LuceneIndex(Path(tmp) / f"{name}-lucene").index(ds.get_corpus_iter())
    stored = index_vectors(ds, Path(tmp) / f"{name}-vectors", gaia.BiEncoder())
    rows = systems(index, stored["index"], depth)
    ledger = gaia.Ledger()
    table = gaia.Experiment([pipeline for _, _, pipeline in rows], topics, qrels, MEASURES,
                            names=[n for n, _, _ in rows], ledger=ledger, sensors="model")
    table.insert(0, "collection", name)
    table["family"] = [family for _, family, _ in rows]
    table["pairs/cpu-s"] = [pairs_per_cpu_second(ledger, n) for n, _, _ in rows]
    reference = table.loc[table["name"] == "CE fp32 fused", "nDCG@10"].iloc[0]
    plain = table.loc[table["name"] == "CE fp32", "nDCG@10"].iloc[0]
    best = max(reference, plain)
    table["% of best CE fp32"] = 100 * table["nDCG@10"] / best
    front = gaia.pareto(table, x="J/q", y="nDCG@10")
    table["on front"] = table["name"].isin(front.points["name"])
    if figures:
        Path(figures).mkdir(parents=True, exist_ok=True)
        gaia.plot_pareto(table, Path(figures) / f"cross-encoder-{name}.png", x="J/q", y="nDCG@10", family="family",
                         title=f"{name}: BM25 top {depth} re-ranked (energy modelled)")
    stored.pop("index")
    return table, {"collection": name, **stored}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=sorted(COLLECTIONS))
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--topics", type=int, default=0, help="first N judged topics (0: all)")
    parser.add_argument("--figures", default=None, help="folder for the Pareto PNGs (e.g. docs/figures)")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    pd.set_option("display.width", 250)
    columns = ["collection", "name", "nDCG@10", "AP", "J/q", "mrt", "pairs/cpu-s", "% of best CE fp32", "on front"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in args.collections:   # each collection's table printed as soon as it is measured
            results.append(collection_table(c, COLLECTIONS[c].format(data=args.data), args.depth, args.topics, tmp,
                                            args.figures))
            print(results[-1][0][columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
    print(f"\nBM25 top {args.depth} re-ranked; {torch.get_num_threads()} torch threads; energy modelled "
          f"(no RAPL/NVML here)")
    print(pd.concat([t for t, _ in results])[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nStored vectors, index time (bundled MiniLM):")
    print(pd.DataFrame([s for _, s in results]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nPeak resident memory of the cross-encoder, fresh process, 256 pairs:")
    for precision in [p for p in RUNGS if p in runnable(torch.device("cpu"))]:
        print(f"  {precision}: {peak_memory(precision):.0f} MiB")


if __name__ == "__main__":
    main()
