"""The precision ladder on CPU: BM25 top-100 re-ranked by the bundled MiniLM at each precision
that runs here, against fp32: nDCG@10, AP, documents/s, FLOPs, modelled J/q and peak memory.

    .venv/bin/python benchmarks/precision.py [--collections vaswani cranfield] [--depth 100]
                                             [--data ../shared/data] [--embeddings]

BM25 runs once per collection; each precision then runs in a fresh process (so its peak resident
memory, ru_maxrss, is its own), warmed up on 3 queries, then metered by ``gaia.Metered`` over all
queries in one call. Other processes on the machine slow wall time: the table gives documents
per wall second and per CPU second of the process, and the 1-minute load average after each run.
A last table times the precisions interleaved, best of ``--rounds`` rounds, on the same documents.
Energy is modelled (CPU seconds x per-core power + static and DRAM shares;
no RAPL or NVML here). docs/s counts candidate rows; a document that is a candidate of several
queries is encoded once per call. With ``--embeddings`` it also measures quantized stored
embeddings on Vaswani: dense retrieval over the whole corpus with float32, int8 and binary vectors.
"""
import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt
import torch

import pyterrier_gaia as gaia
from pyterrier_gaia.encoders.precision import runnable

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield",
               "cacm": "cacm:{data}/cacm", "medline": "medline:{data}/medline"}
MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP]


def worker(candidates_path, precision, out_path, threads):
    """Re-rank the pickled candidates at ``precision``; write the run and its ledger record."""
    torch.set_num_threads(int(threads))
    candidates = pd.read_pickle(candidates_path)
    reranker = gaia.BiEncoder(precision=precision).reranker(batch_size=32)
    warm = candidates["qid"].drop_duplicates().head(3)
    reranker(candidates[candidates["qid"].isin(warm)])
    metered = gaia.Metered(reranker, name=f"minilm-{precision}", sensors="model")
    run = metered(candidates)
    record = metered.ledger.records[-1]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out_path, "wb") as f:
        pickle.dump({"run": run, "record": record, "peak_mib": peak_mib, "load": os.getloadavg()[0]}, f)


def precision_table(name, spec, depth, tmp):
    ds = gaia.datasets.get(spec)
    topics, qrels = ds.get_topics(), ds.get_qrels()
    index = gaia.LuceneIndex(Path(tmp) / name).index(ds.get_corpus_iter())
    candidates = (index.bm25(num_results=depth))(topics)
    candidates_path = Path(tmp) / f"{name}.pkl"
    candidates.to_pickle(candidates_path)
    bm25 = pt.Evaluate(candidates, qrels, MEASURES)
    rows = [{"collection": name, "system": f"BM25 top {depth}", **{str(m): bm25[str(m)] for m in MEASURES}}]
    for precision in runnable(torch.device("cpu")):
        out_path = Path(tmp) / f"{name}-{precision}.out"
        subprocess.run([sys.executable, __file__, "--worker", str(candidates_path), precision, str(out_path),
                        str(torch.get_num_threads())], check=True)
        with open(out_path, "rb") as f:
            result = pickle.load(f)
        record, scores = result["record"], pt.Evaluate(result["run"], qrels, MEASURES)
        rows.append({"collection": name, "system": f"MiniLM {precision}", **{str(m): scores[str(m)] for m in MEASURES},
                     "docs/s": record["docs"] / record["wall_s"], "docs/cpu-s": record["docs"] / record["cpu_s"],
                     "load avg": result["load"], "GFLOPs": record["counts"]["flops"] / 1e9,
                     "weight MB/pass": record["counts"]["weight_bytes"] / record["counts"]["forward_passes"] / 1e6,
                     "J/q (model)": record["joules"] / record["queries"], "peak MiB": result["peak_mib"],
                     "wall s": record["wall_s"]})
    table = pd.DataFrame(rows)
    fp32 = table[table["system"] == "MiniLM fp32"].iloc[0]
    table["ΔnDCG@10 vs fp32"] = table["nDCG@10"] - fp32["nDCG@10"]
    table["speed-up"] = table["docs/s"] / fp32["docs/s"]
    table["cpu speed-up"] = table["docs/cpu-s"] / fp32["docs/cpu-s"]
    return table


def interleaved_speed(texts, rounds=3):
    """Documents/s of encoding ``texts`` at each CPU precision, best of ``rounds`` interleaved rounds
    (on a busy machine every precision then meets the same other load)."""
    encoders = {p: gaia.BiEncoder(precision=p) for p in runnable(torch.device("cpu"))}
    best = {p: float("inf") for p in encoders}
    for encoder in encoders.values():
        encoder.encode(texts[:64])  # warm-up
    for _ in range(rounds):
        for precision, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts)
            best[precision] = min(best[precision], time.perf_counter() - started)
    table = pd.DataFrame({"precision": list(best), "docs/s (best of %d)" % rounds: [len(texts) / best[p] for p in best]})
    table["speed-up"] = table.iloc[:, 1] / table.iloc[0, 1]
    return table


def embeddings_table(depth=10):
    """Dense retrieval over all of Vaswani with float32, int8 and binary document vectors."""
    import numpy as np

    from pyterrier_gaia.rankers.quantize import QuantizedVectors

    ds = gaia.datasets.get("vaswani")
    docs = list(ds.get_corpus_iter())
    topics, qrels = ds.get_topics(), ds.get_qrels()
    encoder = gaia.BiEncoder()
    vectors = encoder.encode([d["text"] for d in docs], batch_size=64, verbose=True)
    queries = encoder.encode(topics["query"])
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :depth]

    def evaluate(name, found, scores, nbytes):
        run = pd.DataFrame([{"qid": qid, "docno": docs[i]["docno"], "score": float(s)}
                            for qid, rows, row_scores in zip(topics["qid"], found, scores)
                            for i, s in zip(rows, row_scores)])
        overlap = np.mean([len(set(a) & set(b)) / depth for a, b in zip(found, exact)])
        return {"vectors": name, "index MB": nbytes / 1e6, f"top-{depth} overlap with float": overlap,
                **{str(m): v for m, v in pt.Evaluate(run, qrels, [pt.measures.nDCG @ 10]).items()}}

    rows = [evaluate("float32", exact, np.take_along_axis(queries @ vectors.T, exact, axis=1), vectors.nbytes)]
    for kind in ("int8", "binary"):
        store = QuantizedVectors(vectors, kind)
        for rescore in (None, 100):
            found, scores = store.search(queries, depth, rescore=rescore)
            label = kind if rescore is None else f"{kind}, float rescoring of top {rescore}"
            rows.append(evaluate(label, found, scores, store.nbytes))
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=["vaswani", "cranfield"], choices=sorted(COLLECTIONS))
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--embeddings", action="store_true", help="also benchmark quantized stored embeddings")
    parser.add_argument("--speed-docs", type=int, default=400, help="documents for the interleaved speed test")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the interleaved speed test")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    if args.threads:
        torch.set_num_threads(args.threads)
    pd.set_option("display.width", 250)
    with tempfile.TemporaryDirectory() as tmp:
        tables = [precision_table(c, COLLECTIONS[c].format(data=args.data), args.depth, tmp) for c in args.collections]
    print(f"\nMiniLM (all-MiniLM-L6-v2) re-ranking BM25 candidates, {torch.get_num_threads()} torch threads; "
          f"energy modelled (no RAPL/NVML here)")
    print(pd.concat(tables).to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep=""))
    texts = [d["text"] for _, d in zip(range(args.speed_docs), gaia.datasets.get("vaswani").get_corpus_iter())]
    print(f"\nEncoding the first {len(texts)} Vaswani documents, precisions interleaved "
          f"(1-minute load average {os.getloadavg()[0]:.1f} before)")
    print(interleaved_speed(texts, args.rounds).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.embeddings:
        print("\nQuantized stored embeddings: dense retrieval over Vaswani (11,429 docs, 93 queries)")
        print(embeddings_table().to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
