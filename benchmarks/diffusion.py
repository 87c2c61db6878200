"""Diffusion-tuned re-ranking against fixed budgets: on each collection, one metered gaia.Experiment of
BM25; BM25 % 100 >> MiniLM fp32 fused with BM25 (interpolate=0.3, the reference); the same at depths
50, 20, 10; int8; early exit; plain fp32 re-ranking (no fusion); gaia.DiffusionReRanker at several
weights, with and without its exit lever. Columns nDCG@10, AP, J/q, gCO2e/q, ms/q; the Pareto front
and hypervolume of each family against one common reference point; a PNG per collection.

    .venv/bin/python benchmarks/diffusion.py [--collections vaswani cranfield cacm] [--topics 50]
                                             [--heads DIR] [--figures docs/figures] [--data ../shared/data]

No judgments are used to fit anything: exit heads (as in benchmarks/early_exit.py, reused from
``--heads``) and the diffusion re-ranker's usefulness model are fitted on pseudo-queries drawn from
each collection's documents, with their BM25 top 100; its cost model is calibrated on metered
early-exit re-rankings of those pseudo-queries. The systems are then evaluated on the collection's
topics (the first ``--topics`` with judgments). Energy is modelled (CPU seconds x per-core power +
static and DRAM shares; no RAPL or NVML here); every stage of every system is metered, the diffusion
re-ranker's Langevin draws and probe pass included. The machine's other load slows wall time.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

import pyterrier_gaia as gaia
from pyterrier_gaia.rankers.exit_heads import pseudo_queries
from early_exit import fit_heads

COLLECTIONS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield", "cacm": "cacm:{data}/cacm"}
MEASURES = [pt.measures.nDCG @ 10, pt.measures.AP, "mrt"]
FUSION = 0.3
REFERENCE = "fused fp32 top 100"
USEFULNESS_WEIGHTS = (0.5, 1, 2, 4, 8)  # u in (a, c, u) = (1, 0, u)
NO_EXIT_WEIGHTS = (1, 2, 4)
NO_EXIT = (1.1, 1.1)  # exit thresholds above 1 are never met: depth and precision are the only levers


def prepared_diffusion(encoder, heads_path, index, ds, queries, seed=1, **options):
    """A DiffusionReRanker with its usefulness fitted and costs calibrated on ``queries`` pseudo-queries."""
    ranker = gaia.DiffusionReRanker(encoder, heads=heads_path, interpolate=FUSION, seed=seed, **options)
    pseudo = pseudo_queries(ds.get_corpus_iter(), queries, (4, 12), np.random.default_rng(seed))
    candidates = index.bm25(num_results=100)(pseudo)
    started = time.perf_counter()
    ranker.fit(candidates)
    fitted = time.perf_counter()
    ranker.cost_model = gaia.calibrate_costs(ranker, candidates, sensors="model", seed=seed)
    info = ranker.usefulness.info
    print(f"diffusion {options or ''}: usefulness fitted on {info['queries']} pseudo-queries in {fitted - started:.0f} s "
          f"(R² train {info.get('r2_train', float('nan')):.3f}, held-out {info.get('r2_held_out', float('nan')):.3f}); "
          f"cost model calibrated in {time.perf_counter() - fitted:.0f} s")
    return ranker


def systems(encoder, heads_path, index, diffusion, no_exit):
    """(name, family, pipeline) of every system compared."""
    bm25 = index.bm25(num_results=100)
    fused = encoder.reranker(interpolate=FUSION)
    rows = [("BM25", "BM25", index.bm25(num_results=1000))]
    rows += [(f"fused fp32 top {depth}", "fixed depth (fused fp32)", bm25 % depth >> fused) for depth in (100, 50, 20, 10)]
    rows += [("fused int8 top 100", "int8 (fused)", bm25 >> encoder.reranker(interpolate=FUSION, precision="int8")),
             ("fused early exit top 100", "early exit (fused)",
              bm25 >> gaia.EarlyExitReRanker(encoder, heads=heads_path, exits=[1, 6], cascade_quantile=0.95,
                                             interpolate=FUSION)),
             ("plain fp32 top 100", "plain fp32 (no fusion)", bm25 >> encoder.reranker())]
    rows += [(f"diffusion u={u:g}", "diffusion", bm25 >> diffusion.with_weights((1, 0, u))) for u in USEFULNESS_WEIGHTS]
    rows += [(f"diffusion no-exit u={u:g}", "diffusion, no exits", bm25 >> no_exit.with_weights((1, 0, u)))
             for u in NO_EXIT_WEIGHTS]
    return rows


def warm_up(pipelines, topics):
    """One unmetered query through every pipeline (first calls pay one-off costs)."""
    for pipeline in pipelines:
        pipeline(topics.head(1))


def collection_table(name, spec, topic_count, heads_folder, tmp, pseudo):
    ds = gaia.datasets.get(spec)
    qrels = ds.get_qrels()
    topics = ds.get_topics()
    topics = topics[topics["qid"].isin(qrels["qid"])].head(topic_count)
    index = gaia.LuceneIndex(Path(tmp) / name).index(ds.get_corpus_iter())
    print(f"\n== {name}: {len(topics)} topics with judgments")
    heads_path, _ = fit_heads(name, ds, index, heads_folder, 300)
    encoder = gaia.BiEncoder()
    diffusion = prepared_diffusion(encoder, heads_path, index, ds, pseudo)
    no_exit = prepared_diffusion(encoder, heads_path, index, ds, pseudo, agreements=NO_EXIT)
    compared = systems(encoder, heads_path, index, diffusion, no_exit)
    warm_up([pipeline for _, _, pipeline in compared], topics)
    started = time.perf_counter()
    table = gaia.Experiment([p for _, _, p in compared], topics, qrels, MEASURES, names=[n for n, _, _ in compared],
                            sensors="model")
    print(f"experiment: {time.perf_counter() - started:.0f} s")
    table = table.rename(columns={"mrt": "ms/q"}).assign(family=[f for _, f, _ in compared], collection=name)
    candidates = index.bm25(num_results=100)(topics)
    print(pd.concat([budget_summary(diffusion, candidates, USEFULNESS_WEIGHTS),
                     budget_summary(no_exit, candidates, NO_EXIT_WEIGHTS)]).to_string(index=False))
    return table


def budget_summary(diffusion, candidates, weights):
    """What the diffusion re-ranker draws at each weighting: depth quartiles, int8 share, no-exit share."""
    rows = []
    for u in weights:
        drawn = diffusion.with_weights((1, 0, u)).budgets(candidates)
        rows.append({"agreements": str(diffusion.space.agreements), "weights": f"(1, 0, {u:g})", "depth q25/q50/q75": "/".join(
                         f"{d:.0f}" for d in drawn["depth"].quantile([0.25, 0.5, 0.75])),
                     "mean depth": round(drawn["depth"].mean(), 1),
                     "int8 share": round((drawn["precision"] == "int8").mean(), 2),
                     "no-exit share (threshold > 1)": round((drawn["agreement"] > 1).mean(), 2)})
    return pd.DataFrame(rows)


def front_summary(table, name, figures):
    """Per family: hypervolume against the collection's common reference; per diffusion point: how it
    compares with the fixed-budget front and with the fused fp32 reference. Writes the PNG."""
    reference = gaia.pareto(table).reference
    families = pd.DataFrame([{"collection": name, "family": family, "systems": len(rows),
                              "hypervolume": gaia.pareto(rows, reference=reference).hypervolume}
                             for family, rows in table.groupby("family", sort=False)])
    drawn = table["family"].str.startswith("diffusion")
    fixed = table[~drawn]
    families.loc[len(families)] = {"collection": name, "family": "all fixed-budget systems", "systems": len(fixed),
                                   "hypervolume": gaia.pareto(fixed, reference=reference).hypervolume}
    families.loc[len(families)] = {"collection": name, "family": "all systems", "systems": len(table),
                                   "hypervolume": gaia.pareto(table, reference=reference).hypervolume}
    full = table[table["name"] == REFERENCE].iloc[0]
    rows = []
    for _, point in table[drawn].iterrows():
        affordable = fixed[fixed["J/q"] <= point["J/q"]]
        rows.append({"collection": name, "system": point["name"],
                     "nDCG@10 / reference": point["nDCG@10"] / full["nDCG@10"],
                     "J/q ÷ (reference / this)": full["J/q"] / point["J/q"],
                     "best fixed nDCG@10 at ≤ its J/q": affordable["nDCG@10"].max() if len(affordable) else np.nan,
                     "dominated by a fixed budget": point["name"] not in set(
                         gaia.pareto(pd.concat([fixed, point.to_frame().T])).points["name"])})
    path = gaia.plot_pareto(table, Path(figures) / f"diffusion-{name}.png", family="family", logx=True,
                            reference=reference, title=f"{name}: nDCG@10 against modelled J/q (no RAPL/NVML)")
    print(f"figure: {path}")
    return families, pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=sorted(COLLECTIONS))
    parser.add_argument("--topics", type=int, default=50, help="topics per collection (the first with judgments)")
    parser.add_argument("--pseudo", type=int, default=60, help="pseudo-queries to fit the usefulness model on")
    parser.add_argument("--heads", help="folder to keep exit heads in (default: a temporary folder)")
    parser.add_argument("--figures", default=str(Path(__file__).resolve().parents[1] / "docs" / "figures"))
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    pd.set_option("display.width", 300)
    tables, families, diffusion = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.collections:
            table = collection_table(name, COLLECTIONS[name].format(data=args.data), args.topics,
                                     args.heads or Path(tmp) / "heads", tmp, args.pseudo)
            family, points = front_summary(table, name, args.figures)
            tables.append(table), families.append(family), diffusion.append(points)
    number = lambda v: f"{v:.4f}"  # noqa: E731
    columns = ["collection", "name", "family", "nDCG@10", "AP", "J/q", "gCO2e/q", "ms/q"]
    print("\nBM25 >> MiniLM (all-MiniLM-L6-v2): fixed budgets and diffusion-drawn budgets; "
          "energy modelled (no RAPL/NVML here)")
    print(pd.concat(tables)[columns].to_string(index=False, float_format=number))
    print("\nHypervolume (J/q x nDCG@10) per family, against each collection's worst J/q and worst nDCG@10")
    print(pd.concat(families).to_string(index=False, float_format=number))
    print(f"\nDiffusion points against the reference ({REFERENCE}) and the fixed-budget front")
    print(pd.concat(diffusion).to_string(index=False, float_format=number))


if __name__ == "__main__":
    main()
