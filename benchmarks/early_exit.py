"""Early-exit re-ranking against full depth, on BM25's top 100.

Cross-encoder mode (the default, ``--encoder cross``): the bundled cross-encoder (ms-marco-MiniLM-L-12-v2,
12 layers) at fp32, full depth, against ``gaia.EarlyExitReRanker`` with its defaults (exit heads fitted by
itself on the first 12 queries it re-ranks, exactly, at full depth, the warm-up topic's included; no
judgments; cascade at its default error rate, 0.1), then one more instance per error rate of ``--error-rates``
(0.1, 0.2 and 0.3) that finds those heads in the gaia cache (as a second run would), in a second metered
``gaia.Experiment`` on the same ledger, per collection:
nDCG@10, layer FLOPs (the encoders' own counts), FLOPs ratio, the share of the full-depth top 10 kept (what
the error rate bounds), modelled J/q, the self-fit's own start-up
record, and per layer the heads' cross-fitted error and margin against the top-10 score gap (10th minus
11th full-depth score) of the topics.

    .venv/bin/python benchmarks/early_exit.py [--collections vaswani cranfield cacm] [--topics N] [--error-rates 0.1 0.2 0.3]
                                              [--depth 100] [--precision fp32] [--interpolate 0.3]

``--precision int8`` runs every system on the int8 rung; ``--interpolate α`` fuses every system's scores
with BM25's (and the cascade decides on the fused ranking).

Bi-encoder mode (``--encoder bi``): the bundled MiniLM (6 layers) under several policies, heads fitted
on pseudo-queries through BM25:

    .venv/bin/python benchmarks/early_exit.py --encoder bi [--collections vaswani cranfield] [--depth 100]
                                              [--queries 300] [--heads DIR] [--data ../shared/data]

Exit heads are fitted per collection on 300 pseudo-queries (BM25 top 20, no judgments) and saved in
``--heads`` (a temporary folder by default; heads found there are reused). Each system then runs in
a fresh process (so its peak resident memory, VmHWM, is its own), warmed up on 3 queries, then
metered by ``gaia.Metered`` over all queries in one call. Energy is modelled (CPU seconds x per-core
power + static and DRAM shares; no RAPL or NVML here). Other processes on the machine slow wall
time; the 1-minute load average after each run is shown. FLOPs are the encoders' own counts
(queries included, at full depth in every system); a bi-encoder encodes a document shared by several
queries once per call, as deep as the deepest of them needs.
"""
import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting
from pyterrier_gaia.rankers.early_exit import ERROR_RATE

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield", "cacm": "cacm:{data}/cacm"}
MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP]
FULL = "MiniLM fp32 full depth"
SYSTEMS = {  # name -> EarlyExitReRanker options (k=10 throughout)
    "EE own head, agreement 1.0": dict(heads=None, agreement=1.0, cascade=False),
    "EE heads, agreement 0.9, cascade 0.05": dict(agreement=0.9, error_rate=0.05),
    "EE heads, agreement 1.0, cascade 0.05": dict(agreement=1.0, error_rate=0.05),
    "EE heads, cascade 0.01": dict(error_rate=0.01),
    "EE heads, exits 1+6, cascade 0.1": dict(exits=[1, 6], error_rate=0.1),
    "EE heads, exits 1+6, cascade 0.2": dict(exits=[1, 6], error_rate=0.2),
}


def worker(candidates_path, heads_path, system, out_path):
    """Re-rank the pickled candidates with ``system``; write the run, its ledger record and peak memory."""
    candidates = pd.read_pickle(candidates_path)
    encoder = gaia.BiEncoder()
    if system == FULL:
        ranker = encoder.reranker(batch_size=32)
    else:
        options = dict(SYSTEMS[system])
        options.setdefault("heads", heads_path)
        ranker = gaia.EarlyExitReRanker(encoder, k=10, batch_size=32, **options)
    warm = candidates["qid"].drop_duplicates().head(3)
    ranker(candidates[candidates["qid"].isin(warm)])
    metered = gaia.Metered(ranker, name=system, sensors="model")
    run = metered(candidates)
    peak_mib = peak_resident_mib()
    with open(out_path, "wb") as f:
        pickle.dump({"run": run, "record": metered.ledger.records[-1], "peak_mib": peak_mib,
                     "load": os.getloadavg()[0]}, f)


def peak_resident_mib() -> float:
    """This process's peak resident memory since it started (VmHWM). Not ru_maxrss: Linux carries it
    over from the parent's memory across fork/vfork and exec, so a child would report the parent's."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def fit_heads(name, ds, index, folder, queries):
    """Load this collection's heads from ``folder``, or fit and save them; returns (path, fit figures)."""
    from pyterrier_gaia.rankers.exit_heads import ExitHeads

    encoder = gaia.BiEncoder()
    try:
        heads, figures = ExitHeads.load(folder, encoder, name), {"fit s": None, "fit GFLOPs": None}
    except FileNotFoundError:
        started = time.perf_counter()
        with counting() as scope:
            heads = ExitHeads.fit(encoder, ds.get_corpus_iter(), index.bm25(num_results=20), name, queries=queries)
        figures = {"fit s": time.perf_counter() - started, "fit GFLOPs": scope.counts["flops"] / 1e9}
    print(f"\n{name}: exit heads from {heads.info['queries']} pseudo-queries "
          f"({heads.info['fit_inputs']} texts fitted, cross-fitted in {heads.info['folds']} folds), "
          f"fit {figures['fit s'] or 0:.0f} s, {figures['fit GFLOPs'] or 0:.0f} GFLOPs (0: reused)")
    print(pd.DataFrame(heads.info["held_out"]).assign(
        margin_k10_rate05=list(heads.margins(range(1, heads.layers), 10, 0.05).values())).to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    return heads.save(folder), figures


def top_overlap(run, reference, k=10):
    """Mean share of each query's top k in ``run`` that is in ``reference``'s top k."""
    tops = [r[r["rank"] < k].groupby("qid")["docno"].apply(set) for r in (run, reference)]
    return float(np.mean([len(tops[0][q] & tops[1][q]) / len(tops[1][q]) for q in tops[1].index]))


def collection_table(name, spec, depth, queries, heads_folder, tmp):
    ds = gaia.datasets.get(spec)
    topics, qrels = ds.get_topics(), ds.get_qrels()
    index = gaia.LuceneIndex(Path(tmp) / name).index(ds.get_corpus_iter())
    heads_path, _ = fit_heads(name, ds, index, heads_folder, queries)
    candidates = index.bm25(num_results=depth)(topics)
    candidates_path = Path(tmp) / f"{name}.pkl"
    candidates.to_pickle(candidates_path)
    bm25 = pt.Evaluate(candidates, qrels, MEASURES)
    rows, runs = [{"collection": name, "system": f"BM25 top {depth}", **bm25}], {}
    for system in [FULL, *SYSTEMS]:
        out_path = Path(tmp) / f"{name}-{len(runs)}.out"
        subprocess.run([sys.executable, __file__, "--worker", str(candidates_path), str(heads_path), system,
                        str(out_path)], check=True)
        with open(out_path, "rb") as f:
            result = pickle.load(f)
        run, record = result["run"], result["record"]
        runs[system] = run
        per_query = run.groupby("qid")["exit_layer"].first() if "exit_layer" in run else None
        rows.append({"collection": name, "system": system, **pt.Evaluate(run, qrels, MEASURES),
                     "top10 overlap": top_overlap(run, runs[FULL]), "GFLOPs": record["counts"]["flops"] / 1e9,
                     "exit layer": per_query.mean() if per_query is not None else 6.0,
                     "doc layers": run["doc_layers"].mean() if per_query is not None else 6.0,
                     "docs/s": record["docs"] / record["wall_s"], "docs/cpu-s": record["docs"] / record["cpu_s"],
                     "J/q (model)": record["joules"] / record["queries"], "peak MiB": result["peak_mib"],
                     "load avg": result["load"]})
    table = pd.DataFrame(rows)
    full = table[table["system"] == FULL].iloc[0]
    table["ΔnDCG@10"] = table["nDCG@10"] - full["nDCG@10"]
    table["FLOPs ÷"] = full["GFLOPs"] / table["GFLOPs"]
    table["cpu speed-up"] = table["docs/cpu-s"] / full["docs/cpu-s"]
    return table


FITTING = "EE defaults (fits on its first 12 queries)"
CACHED_ERROR_RATES = (ERROR_RATE, 0.2, 0.3)   # of the early-exit systems from cached heads (the first: the default)


def cached_name(error_rate: float) -> str:
    return "EE defaults, heads cached" if error_rate == ERROR_RATE else f"EE error rate {error_rate:g}, heads cached"


def cross_encoder_table(name, spec, depth, topics_count, error_rates, tmp, precision="fp32", interpolate=None):
    """Two metered gaia.Experiments on one ledger: the cross-encoder at full depth and early exit fitting
    itself; then early exit from heads cached by that fit (as a second run finds them). The table and the
    heads' report."""
    ds = gaia.datasets.get(spec)
    topics, qrels = ds.get_topics(), ds.get_qrels()
    topics = topics[topics["qid"].isin(qrels["qid"])].head(topics_count)
    index = gaia.LuceneIndex(Path(tmp) / name).index(ds.get_corpus_iter())
    bm25 = index.bm25(num_results=depth)
    encoder = gaia.CrossEncoder().at_precision(precision)
    full = f"CE {precision} full depth"
    ledger = gaia.Ledger()
    runs = Path(tmp) / f"{name}-runs"
    runs.mkdir()                                             # pt.Experiment's save_dir must exist
    rankers, results = {}, []
    for systems in ({full: encoder.reranker(batch_size=32, interpolate=interpolate),
                     FITTING: gaia.EarlyExitReRanker(encoder, interpolate=interpolate)},
                    {cached_name(rate): gaia.EarlyExitReRanker(encoder, error_rate=rate, interpolate=interpolate)
                     for rate in error_rates}):
        rankers.update(systems)
        results.append(gaia.Experiment([bm25 >> ranker for ranker in systems.values()], topics, qrels,
                                       [pt.measures.nDCG @ 10], names=list(systems), ledger=ledger, sensors="model",
                                       save_dir=str(runs)))
    result = pd.concat(results, ignore_index=True)
    records = ledger.to_frame()
    table = result.set_index("name")
    for system in rankers:
        mine = records[records["stage"].str.startswith(f"{system} / ") & ~records["startup"]]
        table.loc[system, "GFLOPs"] = sum(c.get("flops", 0) for c in mine["counts"]) / 1e9
    table["FLOPs ÷"] = table.loc[full, "GFLOPs"] / table["GFLOPs"]
    table["ΔnDCG@10"] = table["nDCG@10"] - table.loc[full, "nDCG@10"]
    full_run = pt.io.read_results(str(runs / f"{full}.res.gz"))
    for system in rankers:     # the share of the full-depth top 10 kept: what error_rate bounds
        table.loc[system, "top10 kept"] = top_overlap(pt.io.read_results(str(runs / f"{system}.res.gz")), full_run)
    fits = records[records["stage"].str.endswith("fit exit heads")]
    print(f"\n{name}: {len(topics)} topics x BM25 top {depth}; self-fit records (start-up, not in J/q):")
    print(fits[["stage", "wall_s", "cpu_s", "joules"]].to_string(index=False))
    heads = rankers[FITTING].heads
    gaps = full_run.groupby("qid")["score"].apply(lambda s: np.sort(s.to_numpy())[::-1][9] - np.sort(s.to_numpy())[::-1][10]
                                              if len(s) > 10 else np.nan)
    margins = heads.margins(list(range(1, heads.layers + 1)), 10, ERROR_RATE)
    report = pd.DataFrame(heads.info["held_out"]).assign(margin_k10=[margins[l] for l in range(1, heads.layers)])
    print(f"heads from the first {heads.info['queries']} queries ({heads.info['fit_pairs']} pairs), cross-fitted by "
          f"query in {heads.info['folds']} folds; top-10 gap of the topics' full-depth scores: median "
          f"{gaps.median():.3f}, q25 {gaps.quantile(0.25):.3f}")
    print(report.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table.reset_index().assign(collection=name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", choices=("cross", "bi"), default="cross")
    parser.add_argument("--topics", type=int, default=None, help="first N judged topics (cross mode; default all)")
    parser.add_argument("--collections", nargs="+", default=None, choices=sorted(COLLECTIONS))
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--error-rates", type=float, nargs="+", default=CACHED_ERROR_RATES,
                        help="error rates of the early-exit systems from cached heads (cross mode)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="cross mode")
    parser.add_argument("--interpolate", type=float, default=None, help="fuse with BM25 at this α (cross mode)")
    parser.add_argument("--queries", type=int, default=300, help="pseudo-queries to fit exit heads on")
    parser.add_argument("--heads", help="folder to keep exit heads in (default: a temporary folder)")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    pd.set_option("display.width", 300)
    if args.encoder == "cross":
        with tempfile.TemporaryDirectory() as tmp:
            os.environ.setdefault("GAIA_CACHE", str(Path(tmp) / "cache"))   # a fresh fit, timed in its record
            tables = [cross_encoder_table(c, COLLECTIONS[c].format(data=args.data), args.depth, args.topics or 10 ** 6,
                                          args.error_rates, tmp, args.precision, args.interpolate)
                      for c in args.collections or ["vaswani", "cranfield", "cacm"]]
        fused = "" if args.interpolate is None else f", fused with BM25 at α={args.interpolate:g}"
        print(f"\nEarly exit vs full depth: BM25 top {args.depth} re-ranked by the bundled cross-encoder "
              f"(ms-marco-MiniLM-L-12-v2, {args.precision}{fused}), k=10; energy modelled (no RAPL/NVML here)")
        print(pd.concat(tables).to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep=""))
        return
    args.collections = args.collections or ["vaswani", "cranfield"]
    with tempfile.TemporaryDirectory() as tmp:
        tables = [collection_table(c, COLLECTIONS[c].format(data=args.data), args.depth, args.queries,
                                   args.heads or Path(tmp) / "heads", tmp) for c in args.collections]
    print(f"\nEarly exit vs full depth: BM25 top {args.depth} re-ranked by MiniLM (all-MiniLM-L6-v2, 6 layers), "
          f"k=10; energy modelled (no RAPL/NVML here)")
    print(pd.concat(tables).to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep=""))


if __name__ == "__main__":
    main()
