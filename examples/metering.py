"""Metering your own pipeline: every stage's energy, carbon and time in a ledger, and reading it back.

    python examples/metering.py                     # 10 topics, BM25's top 20 re-ranked by MiniLM
    python examples/metering.py --topics 3 --workdir /tmp/gaia

gaia.meter(pipeline) meters each stage of a composed pipeline into one ledger (a JSONL file, one
record per stage and call, written as soon as it is measured); gaia.Metered(stage) meters one
stage. Energy comes from RAPL/NVML counters where readable; without them (most VMs and
containers) it is modelled from CPU time and the CPU's TDP, and each record's method says "model".
Safe to run twice: the index in --workdir is opened, the ledger file appended to.
"""
import pyterrier_gaia as gaia
from _shared import MODELLED, options, vaswani

args = options(__doc__)
ds, index = vaswani(args.workdir)
topics = ds.get_topics().head(args.topics)
path = args.workdir / "metering.jsonl"
ledger = gaia.Ledger(path)               # records in memory, each also appended to the file as it is measured

plain = index.bm25(num_results=1000) % args.depth >> gaia.BiEncoder().reranker(interpolate=0.3)
# one-off work (starting the JVM, opening the searcher, loading the model) as a record of its own,
# marked start-up: it is left out of every per-query figure
gaia.Metered(plain, name="start-up", ledger=ledger, startup=True)(topics.head(1))

# every stage of the pipeline (here BM25 and the re-ranker) gets records of its own, in one ledger
pipeline = gaia.meter(plain, ledger=ledger, carbon="FRA")  # carbon: France's grid intensity (CodeCarbon's data)
for qid in topics["qid"]:                                   # one call per query: one record per stage and query
    pipeline(topics[topics["qid"] == qid])

# one stage, named, into the same ledger
stage = gaia.Metered(index.bm25(num_results=10), name="BM25 top 10", ledger=ledger, carbon="FRA")
stage(topics)

print(f"This run, per stage ({len(ledger)} records; start-up in no J/q):")
print(ledger.summary().to_string())
print(MODELLED)

records = ledger.to_frame()                                # one row per record: counts, constants ...
print("\nThe re-ranker's calls:")
print(records[records["stage"].str.startswith("ReRanker")][["qid", "docs", "wall_s", "cpu_s", "joules", "gco2e",
                                                              "method"]].to_string(index=False))

everything = gaia.Ledger.load(path)                          # the file holds every run's records
print(f"\n{path}: {len(everything)} records over every run so far (also: gaia report {path})")
