"""The ``gaia`` command: ``gaia demo`` runs the main job, ``gaia report`` prints a ledger."""
import argparse
import sys

from .cache import cache_dir


def demo(dataset: str = "vaswani", depth: int = 100, alpha: float = 0.3, queries: int = 0,
         ledger=None) -> "pd.DataFrame":
    """BM25, BM25 re-ranked by the bundled MiniLM bi-encoder, and the same fused with BM25 (α),
    evaluated with gaia.Experiment: nDCG@10, AP, R@100, mean response time, and the energy and
    carbon per query of each system (with the sensing method: ``model`` where no RAPL/NVML is readable).
    One query is run through BM25 and the encoder first, so the table shows steady-state costs."""
    import pyterrier as pt
    import pyterrier_gaia as gaia

    collection = gaia.datasets.get(dataset)
    index = gaia.LuceneIndex(cache_dir() / "indexes" / dataset.replace(":", "_").replace("/", "_"))
    if not index.built():
        print(f"Indexing {dataset} into {index.path} (once; reused next time)", flush=True)
        index.index(collection.get_corpus_iter(), overwrite=True, verbose=True)
    topics = collection.get_topics()
    if queries:
        topics = topics.head(queries)
    bm25 = index.bm25(num_results=1000)
    encoder = gaia.BiEncoder()
    systems = [bm25, bm25 % depth >> encoder.reranker(), bm25 % depth >> encoder.reranker(interpolate=alpha)]
    # warm-up, so that no system is charged the one-off start of the JVM, the searcher and the model
    (bm25 % 10 >> encoder.reranker())(topics.head(1))
    names = ["BM25", f"BM25 % {depth} >> MiniLM", f"BM25 % {depth} >> MiniLM, fused α={alpha}"]
    return gaia.Experiment(systems, topics, collection.get_qrels(),
                           [pt.measures.nDCG @ 10, pt.measures.AP, pt.measures.R @ 100, "mrt"], names=names,
                           ledger=ledger)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gaia", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="BM25 and neural re-ranking on a collection (default: embedded Vaswani)")
    run.add_argument("--dataset", default="vaswani", help="'vaswani' or FORMAT:FOLDER (see gaia.datasets.get)")
    run.add_argument("--depth", type=int, default=100, help="BM25 candidates re-ranked per query")
    run.add_argument("--alpha", type=float, default=0.3, help="weight of BM25 in the fused system")
    run.add_argument("--queries", type=int, default=0, help="use only the first N topics (0: all)")
    run.add_argument("--ledger", default=None, help="also write every stage's energy record to this JSONL file")
    report = commands.add_parser("report", help="print the per-stage table of a ledger (JSONL)")
    report.add_argument("ledger", help="path of a ledger written by gaia.Metered / gaia.meter")
    args = parser.parse_args(argv)

    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        if args.command == "demo":
            print(demo(args.dataset, args.depth, args.alpha, args.queries, args.ledger).to_string(index=False))
        else:
            from .energy.ledger import Ledger
            print(Ledger.load(args.ledger).summary().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
