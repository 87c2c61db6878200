"""The ``gaia`` command: ``gaia demo`` runs the main job, ``gaia report`` prints (and plots) a ledger."""
import argparse
import sys
import warnings
from pathlib import Path

from .cache import cache_dir


def demo(dataset: str = "vaswani", depth: int = 100, alpha: float = 0.3, queries: int = 0,
         ledger=None, verbose: bool = True) -> "pd.DataFrame":
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
                           [pt.measures.nDCG @ 10, pt.measures.AP, pt.measures.R @ 100, "mrt"], ledger=ledger,
                           verbose=verbose)


DESCRIPTION = """pyterrier-gaia: energy, carbon and latency as measured columns of IR experiments.

  gaia demo     BM25, and BM25 re-ranked by a neural model, on a collection: effectiveness
                and the energy and carbon per query of each system
  gaia report   a ledger (the JSONL file of gaia.Metered, gaia.meter or gaia.Experiment)
                as a table per stage or per system, and as a figure (--plot OUT.png)

Energy is measured with RAPL or NVML where they can be read, else modelled from CPU time
(method "model"). Quiet by default: GAIA_LUCENE_LOG=INFO shows Lucene's log messages,
TRANSFORMERS_VERBOSITY=info the progress bars of model loading.
Run "gaia COMMAND --help" for a command's options."""


class ReportError(Exception):
    """A ledger or results file that ``gaia report`` cannot use: its message is the whole story."""


def report(path: str, by: str = "stage", width: int = 100, plot=None, results=None, y: str = "nDCG@10",
           ir_metadata=None) -> int:
    """Print a ledger's table (warnings about skipped lines to stderr); with ``plot``, write its figure,
    with ``ir_metadata``, its ir_metadata YAML (tagged with the ledger's file name); 2, with a one-line
    message, when a file cannot be read, written or used."""
    from .energy.report import format_report

    try:
        ledger = _read_ledger(path)
        table = None if results is None else _read_results(results, y)
        print(format_report(ledger, by=by, width=width, title=str(path)))
        if plot:
            from .pareto import save_png
            print(f"Figure written to {save_png(report_figure(ledger, by, table, y), plot)}")
        if ir_metadata:
            try:
                Path(ir_metadata).parent.mkdir(parents=True, exist_ok=True)
                ledger.to_ir_metadata(ir_metadata, tag=Path(path).stem)
            except OSError as error:
                raise ReportError(f"cannot write {ir_metadata}: {error.strerror or error}") from None
            print(f"ir_metadata written to {ir_metadata}")
    except ReportError as error:
        print(f"gaia report: {error}", file=sys.stderr)
        return 2
    return 0


def _read_ledger(path: str) -> "Ledger":
    from .energy.ledger import Ledger

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ledger = Ledger.load(path)
        except OSError as error:
            raise ReportError(f"cannot read {path}: {error.strerror or error}") from None
    for warning in caught:
        print(f"gaia report: warning: {warning.message}", file=sys.stderr)
    if not len(ledger):
        raise ReportError(f"{path} holds no ledger records" + ("" if caught else " (the file is empty)"))
    return ledger


def _read_results(path: str, y: str) -> "pd.DataFrame":
    """A results table saved as CSV (gaia.Experiment's, e.g. by ``gaia demo --results``), checked for J/q and ``y``."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        raise ReportError(f"cannot read the results table {path}: {getattr(error, 'strerror', None) or error}") \
            from None
    missing = [column for column in ("J/q", y) if column not in table.columns]
    if missing:
        raise ReportError(f"the results table {path} has no column {', '.join(map(repr, missing))} "
                          f"(its columns: {', '.join(map(str, table.columns))}); expected gaia.Experiment's table")
    return table


def report_figure(ledger, by: str = "stage", results=None, y: str = "nDCG@10"):
    """A figure of the ledger's energy per query by ``by`` and, given a results table (one row per
    system with ``J/q`` and ``y``), beside it ``y`` against energy per query with the Pareto front;
    its caption names the sensing method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .energy.report import draw_energy, method_caption, methods_of
    from .pareto import add_caption, draw_pareto

    rows = len(ledger.summary(by=by))
    figure = Figure(figsize=(13 if results is not None else 8, max(3.5, 1.5 + 0.3 * rows)), dpi=120)
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2 if results is not None else 1, squeeze=False)[0]
    try:
        methods = draw_energy(panels[0], ledger, by)
        if results is not None:
            draw_pareto(panels[1], results, "J/q", y, logx=True)
            panels[1].set_title(f"{y} against energy per query", fontsize=10)
            if "method" in results.columns:
                methods += methods_of(results["method"])
    except ValueError as error:
        raise ReportError(str(error)) from None
    add_caption(figure, method_caption(methods))
    return figure


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
    run.add_argument("--results", metavar="RESULTS.csv", default=None,
                     help="also save the table as CSV, for gaia report --results (default: not saved)")
    run.add_argument("--quiet", action="store_true", help="no progress bar over the systems run")
    table = commands.add_parser("report", help="print a ledger (JSONL) as a table per stage or per system",
                                description="Print a ledger as a table: calls, queries, energy, CO2e and time per "
                                            "query, and the total energy (in J and Wh) and CO2e. With --plot, "
                                            "also draw the energy per query as a bar chart, and with --results "
                                            "beside it the systems' effectiveness against their energy per query "
                                            "(the Pareto front marked); the caption names the sensing method. "
                                            "Lines of the file that are not records are skipped with a warning. "
                                            "Exit status 2, with a one-line message, if a file cannot be read "
                                            "or used.")
    table.add_argument("ledger", help="path of a ledger written by gaia.Metered, gaia.meter or gaia.Experiment")
    table.add_argument("--by", choices=("stage", "system"), default="stage",
                       help="one row per stage (default), or per system: the part of a stage's name before "
                            "' / ', as gaia.Experiment names them")
    table.add_argument("--width", type=int, default=100, help="maximum line width in characters (default 100)")
    table.add_argument("--plot", metavar="OUT.png", default=None, help="also write the figure to this PNG file")
    table.add_argument("--results", metavar="RESULTS.csv", default=None,
                       help="a results table with one row per system and columns J/q and the measure of "
                            "--y (gaia.Experiment's, saved as CSV, e.g. by gaia demo --results): adds "
                            "effectiveness against energy to the figure")
    table.add_argument("--y", metavar="MEASURE", default="nDCG@10", help="the measure of --results to plot (default nDCG@10)")
    table.add_argument("--ir-metadata", metavar="OUT.yml", default=None,
                       help="also write the ledger as ir_metadata (the YAML tirex-tracker writes): platform, "
                            "runtime, energy per stage, sensing method and accounting mode")
    args = parser.parse_args(argv)

    if args.command == "report":
        if args.results and not args.plot:
            parser.error("--results is drawn in the figure: give --plot OUT.png too")
        return report(args.ledger, args.by, args.width, args.plot, args.results, args.y, args.ir_metadata)
    import pandas as pd
    results = demo(args.dataset, args.depth, args.alpha, args.queries, args.ledger, verbose=not args.quiet)
    if args.results:
        results.to_csv(args.results, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(results.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
