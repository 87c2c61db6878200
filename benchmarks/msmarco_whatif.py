"""What-if: encoding MS MARCO's 8.8 M passages and re-ranking 10,000 queries on N nodes.

    .venv/bin/python benchmarks/msmarco_whatif.py [--ledger whatif.jsonl] [--topics 24]
                                                  [--profiles local epyc-9654 h100] [--nodes 1 2 4 8 16 64 256]
                                                  [--time cpu]

1. Calibration, measured here: on Vaswani (embedded), every call metered by gaia.Metered with the
   energy model (no RAPL or NVML on this machine: joules MODELLED): BM25 top 100 one query a call;
   the bundled MiniLM bi-encoder encoding documents into a VectorIndex, 16 to 128 a call; the
   cross-encoder (ms-marco-MiniLM-L-12-v2) re-ranking one query's BM25 top k a call, k from 5 to
   40. A CostModel is fitted on them with roofline features (calls, flops, weight_bytes; calls,
   postings, docs_scored for BM25); its R² is on the calibration records themselves (in-sample).
2. The MS MARCO workload as operation counts, from the encoders' own FLOP formula and what was
   measured here (tokens per word, padding, bytes per document), and stated assumptions
   (ASSUMED below) for what cannot be measured here.
3. gaia.cost.scaling.scale_out on N nodes of each hardware profile; carbon by gaia.Grid.

``--ledger FILE``: the calibration records are written there (JSONL) and the other figures measured
here to FILE.facts.json; when both exist they are read instead of measured again. torch runs on one
thread (it scatters least on a busy machine).

``--time cpu`` (default): a call's time is calibrated on its CPU time, not its wall time. The
machine this runs on is shared (load average far above its 2 CPUs): most of a call's wall time is
spent waiting for a CPU, which a dedicated node would not. Torch runs on one thread and a Lucene
search on one, so CPU time is the time of the call on an idle core. ``--time wall`` for wall time;
the script prints the totals the other way too.

This host's memory bandwidth, by which what-ifs scale the time of weight bytes, is the stated default
of ``gaia.hardware`` (25.6 GB/s) unless GAIA_MEASURE_BANDWIDTH=1 asks for it to be measured.
"""
import argparse
import json
import math
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import pyterrier_gaia as gaia
import pyterrier_gaia.cost.host
from pyterrier_gaia.cost.scaling import Fixed, Split, Transfer, scale_out, summary

# ASSUMED: figures this machine cannot measure, each with its source
PASSAGES = 8_841_823            # MS MARCO v1 passage collection (collection.tsv), Nguyen et al. 2016
PASSAGE_WORDS = 60              # mean words per passage: "avg ~60 words" (commonly cited; 56-60 in papers)
QUERY_WORDS = 6                 # mean words per MS MARCO query (Bing queries, short: about 6 words)
QUERIES = 10_000
DEPTH = 100                     # BM25 top 100, all re-ranked by the cross-encoder
BATCH = 32                      # inputs a forward pass: VectorIndex's and ReRanker's default batch_size
LINK_BYTES_S = 1.25e9           # one shared 10 Gb/s link between the nodes and the storage / driver
WORKER_START_S = 13.0           # Ray: a local cluster starts in about 13 s here (issue 14's own figure)
GPU_HOST = "epyc-9654"           # the host CPU of a GPU node, for BM25 (the GPU profile has none)
GRID = dict(intensity=None, pue=1.0)   # CodeCarbon's world-average intensity, IT energy only (PUE 1.0)

ENCODE_SIZES = (16, 32, 64, 128)
BM25_CONCAT = (2, 4, 8, 16)      # topics run as one query, to widen the postings range
REPEAT = 3                       # each long BM25 query is run 3 times; the fit keeps the fastest
RERANK_DEPTHS = (5, 10, 20, 40)
FEATURES = ["postings", "docs_scored", "flops", "weight_bytes"]


def folder_bytes(path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def words(texts) -> int:
    return sum(len(str(t).split()) for t in texts)


def calibrate_here(n_topics, tmp, ledger_path=None):
    """Measured here: the records, and what the workload needs from this machine."""
    ds = gaia.datasets.get("vaswani")
    docs = list(ds.get_corpus_iter())
    all_topics = ds.get_topics()
    topics = all_topics.head(n_topics)
    ledger, facts = gaia.Ledger(ledger_path), {"docs": len(docs), "doc_words": words(d["text"] for d in docs) / len(docs)}

    index = gaia.LuceneIndex(Path(tmp) / "lucene").index(iter(docs))
    facts["lucene_bytes_per_doc"] = folder_bytes(Path(tmp) / "lucene") / len(docs)
    facts["text_bytes_per_word"] = sum(len(d["text"].encode()) for d in docs) / (facts["doc_words"] * len(docs))
    started = time.perf_counter()
    bm25 = index.bm25(num_results=DEPTH)
    bm25(topics.head(1))
    enc, ce = gaia.BiEncoder(), gaia.CrossEncoder()
    rr = ce.reranker()
    enc.encode(["warm up"]), rr(bm25(topics.head(1)).head(2))
    facts["load_s"] = time.perf_counter() - started
    facts["query_words"] = words(topics["query"]) / len(topics)

    metered_bm25 = gaia.Metered(bm25, name="bm25", sensors="model", ledger=ledger)
    for i in range(len(topics)):
        metered_bm25(topics.iloc[[i]])
    facts["postings_per_query_word"] = np.mean([r["counts"]["postings"] for r in ledger.records]) / facts["query_words"]
    # longer queries (k topics run as one) widen the range of postings the BM25 fit sees
    for k in BM25_CONCAT:
        for group in range(3):
            chosen = all_topics.iloc[group * k:(group + 1) * k]
            query = pd.DataFrame({"qid": [f"concat-{k}-{group}"], "query": [" ".join(chosen["query"])]})
            for _ in range(REPEAT):
                metered_bm25(query)
    start = 0
    for round_ in range(2):
        for size in ENCODE_SIZES:
            chunk = docs[start:start + size]
            start += size
            facts["encoded_words"] = facts.get("encoded_words", 0) + words(d["text"] for d in chunk)
            vec = gaia.VectorIndex(Path(tmp) / f"vec-{start}", enc)
            gaia.Metered(vec.indexer(verbose=False), name="encode", sensors="model", ledger=ledger).index(chunk)
    facts["vector_bytes_per_doc"] = folder_bytes(Path(tmp) / f"vec-{start}") / size
    candidates = bm25(topics)
    metered_rr = gaia.Metered(rr, name="rerank", sensors="model", ledger=ledger)
    for i, qid in enumerate(topics.qid[:2 * len(RERANK_DEPTHS)]):
        pairs = candidates[(candidates.qid == qid) & (candidates["rank"] < RERANK_DEPTHS[i % len(RERANK_DEPTHS)])]
        facts["pair_words"] = facts.get("pair_words", 0) + words(pairs["query"]) + words(pairs["text"])
        metered_rr(pairs)
    started = time.perf_counter()
    pd.concat([candidates.head(DEPTH)] * QUERIES, ignore_index=True)   # the driver's concatenation of results
    facts["concat_s"] = time.perf_counter() - started
    return fastest_of_repeats(ledger.records), facts, enc, ce


def fastest_of_repeats(records):
    """The records with each repeated call (same stage and qid, in a row) kept once: its fastest run."""
    kept = []
    for record in records:
        last = kept[-1] if kept else None
        if last is not None and str(record["qid"]).startswith("concat-") and (last["stage"], last["qid"]) == (
                record["stage"], record["qid"]):
            kept[-1] = min(last, record, key=lambda r: r["wall_s"])
        else:
            kept.append(record)
    return kept


def encoder_facts(records, stage, layers):
    """(padding: positions computed / real tokens, real tokens) over the records of ``stage``."""
    counts = [r["counts"] for r in records if r["stage"] == stage]
    tokens = sum(c["tokens"] for c in counts)
    return sum(c["layer_tokens"] for c in counts) / (layers * tokens), tokens


def workload(records, facts, enc, ce):
    """The whole job's counts for each Split part, and the bytes moved, with how they were derived."""
    enc_pad, enc_tokens = encoder_facts(records, "encode", enc.num_layers)
    enc_per_word = enc_tokens / facts["encoded_words"]
    ce_pad, ce_tokens = encoder_facts(records, "rerank", ce.num_layers)
    ce_per_word = ce_tokens / facts["pair_words"]

    passage_len = round(PASSAGE_WORDS * enc_per_word * enc_pad)
    pair_len = round((QUERY_WORDS + PASSAGE_WORDS) * ce_per_word * ce_pad)
    passes_per_query = math.ceil(DEPTH / BATCH)
    postings_per_word = facts["postings_per_query_word"]
    scale = (PASSAGES * PASSAGE_WORDS) / (facts["docs"] * facts["doc_words"])
    counts = {
        "encode": {"flops": enc.flops(PASSAGES, passage_len, enc.num_layers),
                   "weight_bytes": enc.weight_bytes * math.ceil(PASSAGES / BATCH)},
        "bm25": {"calls": QUERIES, "postings": QUERIES * QUERY_WORDS * postings_per_word * scale,
                 "docs_scored": QUERIES * DEPTH},
        "rerank": {"calls": QUERIES, "flops": ce.flops(QUERIES * DEPTH, pair_len, ce.num_layers),
                   "weight_bytes": ce.weight_bytes * passes_per_query * QUERIES},
    }
    bytes_ = {"vectors": PASSAGES * facts["vector_bytes_per_doc"],
              "corpus": PASSAGES * PASSAGE_WORDS * facts["text_bytes_per_word"],
              "lucene": PASSAGES * facts["lucene_bytes_per_doc"] * PASSAGE_WORDS / facts["doc_words"],
              "models": enc.weight_bytes + ce.weight_bytes}
    derived = {"bi-encoder tokens per word (measured)": enc_per_word, "bi-encoder padding (measured)": enc_pad,
               "passage length, padded positions": passage_len,
               "cross-encoder tokens per (query + passage) word (measured)": ce_per_word,
               "cross-encoder padding (measured)": ce_pad, "pair length, padded positions": pair_len,
               "BM25 postings per query word on Vaswani (measured)": postings_per_word,
               "postings scale, words of MS MARCO / of Vaswani": scale}
    return counts, bytes_, derived


def parts(counts, bytes_, facts, bm25_hardware, bm25_workers):
    """The job, one part after another; BM25 runs ``bm25_workers`` workers a node on ``bm25_hardware``."""
    return [
        Fixed("start workers (Ray)", WORKER_START_S, on="each"),
        Transfer("models to each node", bytes_["models"], LINK_BYTES_S, per_node=True),
        Fixed("load models, open index", facts["load_s"], on="each"),
        Transfer("corpus shards to the nodes", bytes_["corpus"], LINK_BYTES_S),
        Split("encode 8.8 M passages", "encode", counts["encode"]),
        Transfer("vector shards to the driver", bytes_["vectors"], LINK_BYTES_S),
        Transfer("Lucene index to each node", bytes_["lucene"], LINK_BYTES_S, per_node=True),
        Split("BM25 top 100", "bm25", counts["bm25"], workers=bm25_workers, hardware=bm25_hardware),
        Split("cross-encoder top 100", "rerank", counts["rerank"]),
        Fixed("driver: concatenate results", facts["concat_s"], on="driver"),
    ]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


def measured_or_read(args):
    """(records, facts, bi-encoder, cross-encoder): measured here, or read from ``--ledger`` and its
    facts file when both exist."""
    facts_path = Path(f"{args.ledger}.facts.json") if args.ledger else None
    if facts_path is not None and facts_path.is_file() and Path(args.ledger).is_file():
        print(f"calibration read from {args.ledger} and {facts_path} (not measured again)")
        return (fastest_of_repeats(gaia.Ledger.load(args.ledger).records), json.loads(facts_path.read_text()),
                gaia.BiEncoder(), gaia.CrossEncoder())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        records, facts, enc, ce = calibrate_here(args.topics, tmp, args.ledger)
        print(f"calibration measured in {time.perf_counter() - started:.0f} s; load average "
              f"{os.getloadavg()[0]:.1f}")
    if facts_path is not None:
        facts_path.write_text(json.dumps({k: float(v) for k, v in facts.items()}, indent=1))
    return records, facts, enc, ce


def calibrated(records, basis):
    """The cost model fitted with each call's ``wall_s`` (basis "wall") or its CPU time ("cpu")
    as its time."""
    if basis == "cpu":
        records = [{**r, "wall_s": r["cpu_s"]} for r in records]
    return gaia.CostModel.calibrate(records, features=FEATURES), records


def scenario(model, counts, bytes_, facts, name, nodes):
    """(profile, BM25's CPU profile, BM25 workers a node, scale_out table) on profile ``name``."""
    profile = gaia.hardware.local() if name == "local" else gaia.hardware.get(name)
    cpu = profile if profile.kind == "cpu" else gaia.hardware.get(GPU_HOST)
    workers = max(1, cpu.cores // gaia.hardware.get(model.hardware).cores)
    job = parts(counts, bytes_, facts, cpu.name, workers)
    return profile, cpu, workers, scale_out(model, job, nodes=nodes, hardware=profile.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", help="JSONL file to write the calibration records to, or read them from")
    parser.add_argument("--topics", type=int, default=24, help="Vaswani topics for BM25 calibration (>= 8)")
    parser.add_argument("--profiles", nargs="+", default=["local", "epyc-9654", "h100"])
    parser.add_argument("--nodes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 64, 256])
    parser.add_argument("--time", choices=["cpu", "wall"], default="cpu",
                        help="what a call's time is calibrated on (default: its CPU time; see above)")
    args = parser.parse_args()
    # this host's memory bandwidth: a stated default unless asked for (a copy timed on a machine this
    # busy measures the other jobs: 2-25 GB/s here), as what-ifs scale weight-byte time by it
    os.environ.setdefault(gaia.cost.host.MEASURE_ENV, "0")
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", UserWarning)     # short-window flags of the energy model
    print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a busy, "
          f"shared machine); torch threads 1; joules MODELLED (no RAPL or NVML here)")
    records, facts, enc, ce = measured_or_read(args)
    model, fitted = calibrated(records, args.time)
    print(f"\nCost model calibrated here on {model.hardware}, time = each call's {args.time} time "
          f"({len(records)} records; R² in-sample, on the calibration records themselves):")
    for stage in model.stages:
        mine = [r for r in fitted if r["stage"] == stage]
        times = [r["wall_s"] for r in mine]
        print(f"  {stage:7s} {len(mine):3d} calls, {min(times):.3g}-{max(times):.3g} s: "
              f"R² time {model.r2(mine):.3f}, R² joules {model.r2(mine, target='joules'):.3f}")
    print(model.coefficients().to_string(float_format=lambda v: f"{v:.3e}"))
    home = gaia.hardware.get(model.hardware)
    print(f"{home.name}: peak FLOP/s {home.sources.get('peak_flops', 'curated')}; memory bandwidth "
          f"{home.sources.get('memory_bw', 'curated')} (what-ifs scale weight bytes by it)")

    counts, bytes_, derived = workload(records, facts, enc, ce)
    print("\nMeasured here:", {k: round(v, 4) for k, v in facts.items()})
    print("Derived:", {k: round(float(v), 4) for k, v in derived.items()})
    print("Counts of the whole job:", {s: {k: f"{v:.3g}" for k, v in c.items()} for s, c in counts.items()})
    print("Bytes moved:", {k: f"{v / 1e9:.3g} GB" for k, v in bytes_.items()})
    grid = gaia.Grid(**{k: v for k, v in GRID.items() if v is not None})
    print(f"Grid: {grid.intensity:.0f} gCO2e/kWh ({grid.source}), PUE {grid.pue:g}")

    for name in args.profiles:
        profile, cpu, workers, table = scenario(model, counts, bytes_, facts, name, args.nodes)
        wide = table.pivot_table(index="part", columns="nodes", values="seconds", sort=False)
        totals = summary(table)
        totals["kWh"] = totals["joules"] / 3.6e6
        totals["kgCO2e"] = [grid.account(j)["gco2e"] / 1e3 for j in totals["joules"]]
        print(f"\n{profile.name}: {profile.description}; BM25 on {cpu.name}, {workers} workers a node. "
              f"Predicted seconds per part (what-if, not a measurement; energy MODELLED)")
        print(wide.to_string(float_format=lambda v: f"{v:.4g}"))
        print(totals.drop(columns="joules").to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    other = "wall" if args.time == "cpu" else "cpu"
    model, _ = calibrated(records, other)
    print(f"\nThe same, calibrated on each call's {other} time instead: total hours at N = 1 and 16")
    for name in args.profiles:
        profile, _, _, table = scenario(model, counts, bytes_, facts, name, [1, 16])
        print(f"  {profile.name:22s}", "  ".join(f"N={n}: {s / 3600:.3g} h" for n, s in
                                                 summary(table).set_index("nodes")["seconds"].items()))

if __name__ == "__main__":
    main()
