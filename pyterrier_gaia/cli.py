"""The ``gaia`` command: ``gaia demo`` runs the main job, ``gaia report`` prints a ledger."""
import argparse
import sys
import warnings

from .cache import cache_dir


def demo(dataset: str = "vaswani", depth: int = 100, alpha: float = 0.3, queries: int = 0,
         ledger=None) -> "pd.DataFrame":
    """What practitioners run, and cheaper ways to the same effect, in one gaia.Experiment: BM25;
    BM25's top ``depth`` re-ranked by the bundled cross-encoder (ms-marco-MiniLM-L-12-v2), plain and
    fused with BM25 (α); the same fused at int8 (a cheaper rung of the precision ladder); and the
    bundled MiniLM bi-encoder re-ranking from document vectors stored once (gaia.VectorIndex), fused.
    Columns nDCG@10, AP, R@100, mean response time, and the energy and carbon per query of each system
    (with the sensing method: ``model`` where no RAPL/NVML is readable). Indexes are built once into
    the gaia cache; gaia.Experiment runs each system on one query first (its start-up record), so the
    table shows steady-state costs."""
    import pyterrier as pt
    import pyterrier_gaia as gaia

    collection = gaia.datasets.get(dataset)
    folder = cache_dir() / "indexes" / dataset.replace(":", "_").replace("/", "_")
    index = gaia.LuceneIndex(folder)
    if not index.built():
        print(f"Indexing {dataset} into {index.path} (once; reused next time)", flush=True)
    index.index(collection.get_corpus_iter(), verbose=True)
    vectors = gaia.VectorIndex(folder.with_name(folder.name + "-minilm"), gaia.BiEncoder())
    if not vectors.built():
        print(f"Encoding {dataset} into {vectors.path} (once; reused next time)", flush=True)
    vectors.index(collection.get_corpus_iter())
    topics = collection.get_topics()
    if queries:
        topics = topics.head(queries)
    bm25 = index.bm25(num_results=1000)
    cross = gaia.CrossEncoder()
    systems = {
        "BM25": bm25,
        f"BM25 % {depth} >> cross-encoder": bm25 % depth >> cross.reranker(),
        f"... fused α={alpha}": bm25 % depth >> cross.reranker(interpolate=alpha),
        f"... fused α={alpha}, int8": bm25 % depth >> cross.reranker(interpolate=alpha, precision="int8"),
        f"BM25 % {depth} >> stored MiniLM, fused": bm25 % depth >> vectors.reranker(interpolate=alpha),
    }
    return gaia.Experiment(systems, topics, collection.get_qrels(),
                           [pt.measures.nDCG @ 10, pt.measures.AP, pt.measures.R @ 100, "mrt"], ledger=ledger)


DESCRIPTION = """pyterrier-gaia: energy, carbon and latency as measured columns of IR experiments.

  gaia demo     BM25, and BM25 re-ranked by a neural model, on a collection: effectiveness
                and the energy and carbon per query of each system
  gaia report   a ledger (the JSONL file of gaia.Metered, gaia.meter or gaia.Experiment)
                as a table per stage or per system

Energy is measured with RAPL or NVML where they can be read, else modelled from CPU time
(method "model"). Run "gaia COMMAND --help" for a command's options."""


def report(path: str, by: str = "stage", width: int = 100) -> int:
    """Print a ledger's table (warnings about skipped lines to stderr); 1 when it cannot be read or holds no record."""
    from .energy.ledger import Ledger
    from .energy.report import format_report

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ledger = Ledger.load(path)
        except OSError as error:
            print(f"gaia report: cannot read {path}: {error.strerror or error}", file=sys.stderr)
            return 1
    for warning in caught:
        print(f"gaia report: warning: {warning.message}", file=sys.stderr)
    if not len(ledger):
        print(f"gaia report: {path} holds no ledger records" + ("" if caught else " (the file is empty)"),
              file=sys.stderr)
        return 1
    print(format_report(ledger, by=by, width=width, title=str(path)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gaia", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("demo", help="BM25 and neural re-ranking on a collection (default: embedded Vaswani)",
                              description="BM25; BM25 re-ranked by the bundled cross-encoder, plain, fused with BM25, "
                                          "and fused at int8; and the bundled MiniLM bi-encoder over document "
                                          "vectors stored once, fused: nDCG@10, AP, R@100, mean response time, "
                                          "and energy and carbon per query.")
    run.add_argument("--dataset", default="vaswani", help="'vaswani' or FORMAT:FOLDER (see gaia.datasets.get)")
    run.add_argument("--depth", type=int, default=100, help="BM25 candidates re-ranked per query")
    run.add_argument("--alpha", type=float, default=0.3, help="weight of BM25 in the fused system")
    run.add_argument("--queries", type=int, default=0, help="use only the first N topics (0: all)")
    run.add_argument("--ledger", default=None, help="also write every stage's energy record to this JSONL file")
    table = commands.add_parser("report", help="print a ledger (JSONL) as a table per stage or per system",
                                description="Print a ledger as a table: calls, queries, energy, CO2e and time per "
                                            "query, total energy. Lines of the file that are not records are "
                                            "skipped with a warning; exit status 1 if the file cannot be read or "
                                            "holds no record.")
    table.add_argument("ledger", help="path of a ledger written by gaia.Metered, gaia.meter or gaia.Experiment")
    table.add_argument("--by", choices=("stage", "system"), default="stage",
                       help="one row per stage (default), or per system: the part of a stage's name before "
                            "' / ', as gaia.Experiment names them")
    table.add_argument("--width", type=int, default=100, help="maximum line width in characters (default 100)")
    args = parser.parse_args(argv)

    if args.command == "report":
        return report(args.ledger, args.by, args.width)
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(demo(args.dataset, args.depth, args.alpha, args.queries, args.ledger).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
