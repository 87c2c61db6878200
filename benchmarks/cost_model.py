"""The cost model on real per-query records: R² on held-out queries, EW-RLS against batch least
squares, tracking a throttled run, calibration from 10 % of the queries, what-if hardware.

    .venv/bin/python benchmarks/cost_model.py [--data ../shared/data] [--collections vaswani cranfield]
                                              [--ledgers DIR] [--threads N] [--repeat 3]

Per collection: a Lucene index; BM25 run one query per call at a depth drawn from DEPTHS, and the
bundled MiniLM bi-encoder re-ranking one query's BM25 top k per call, k drawn from RERANK_DEPTHS;
every query twice, every call metered by gaia.Metered (sensors="model": this machine has no RAPL
or NVML, so joules are modelled from CPU time and the CPU's TDP, not measured). Queries are split
in halves by a seeded shuffle: the model is calibrated on the records of one half, scored on the
other. Each call is made ``--repeat`` times in a row; R² is given on single calls and on the least
wall time of each repeated call (the one other work on the machine inflated least), which the
other figures use.

``--ledgers DIR``: the records are written there as JSONL ledgers, and read back instead of being
measured again when present. ``--threads``: torch's thread count (default: torch's own; one thread
scatters least when other work shares the machine). The load average is printed with each run.
"""
import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import pyterrier_gaia as gaia
from pyterrier_gaia.cost import records as rec
from pyterrier_gaia.cost.fit import EWRLS

DEPTHS = (10, 50, 100, 300, 1000)
RERANK_DEPTHS = (4, 8, 16, 32, 64)
SPECS = {"vaswani": "vaswani", "cranfield": "cranfield:{data}/cranfield"}


def metered_runs(calls, name: str, repeat: int) -> gaia.Ledger:
    """Run each (stage, frame) of ``calls`` ``repeat`` times in a row, each a call metered under ``name``."""
    ledger, metered = gaia.Ledger(), {}
    for stage, frame in calls:
        if id(stage) not in metered:
            metered[id(stage)] = gaia.Metered(stage, name=name, sensors="model", ledger=ledger)
        for _ in range(repeat):
            metered[id(stage)](frame)
    return ledger


def split(records, seed=0):
    """Records of a seeded random half of the queries, and of the other half."""
    qids = sorted({r["qid"] for r in records})
    train = set(np.random.default_rng(seed).permutation(qids)[: len(qids) // 2])
    return [r for r in records if r["qid"] in train], [r for r in records if r["qid"] not in train]


def bm25_records(index, topics, rng, repeat):
    """Every query twice, at a depth drawn at random; each call made ``repeat`` times in a row."""
    bm25 = {k: index.bm25(num_results=k) for k in DEPTHS}
    for stage in bm25.values():      # warm-up: JVM classes and JIT, searcher, docstore
        stage(topics)
    frames = [topics.iloc[[i]] for i in range(len(topics))] * 2
    return metered_runs([(bm25[rng.choice(DEPTHS)], frame) for frame in frames], "bm25", repeat).records


def rerank_records(index, topics, rng, repeat):
    """Every query twice: MiniLM re-ranking its BM25 top k, k drawn at random; each call made
    ``repeat`` times in a row."""
    candidates = index.bm25(num_results=max(RERANK_DEPTHS))(topics)
    reranker = gaia.BiEncoder().reranker()
    reranker(candidates[candidates["rank"] < 5].head(5))     # warm-up
    per_query = [candidates[candidates.qid == qid] for qid in topics.qid] * 2
    calls = [(reranker, c[c["rank"] < rng.choice(RERANK_DEPTHS)]) for c in per_query]
    return metered_runs(calls, "minilm", repeat).records


def least_of(records, repeat):
    """Of each run of ``repeat`` consecutive records (one call repeated), the one with the least wall time."""
    return [min(records[i:i + repeat], key=lambda r: r["wall_s"]) for i in range(0, len(records), repeat)]


def held_out_r2(records):
    train, test = split(records)
    model = gaia.CostModel.calibrate(train)
    return model, model.r2(test), model.r2(test, target="joules"), len(train), len(test)


def rls_vs_batch(records):
    """Largest relative difference between EW-RLS (λ=1, no clipping, unconstrained) updated record
    by record and the batch least-squares fit of all the records, on the model's own scaled design."""
    features = rec.feature_names(records)
    X, Y = rec.design(records, features), rec.targets(records)
    X = X / np.abs(X).max(axis=0)
    start = 2 * X.shape[1]
    rls = EWRLS.fit(X[:start], Y[:start], forgetting=1.0, clip=None, nonneg=False)
    for x, y in zip(X[start:], Y[start:]):
        rls.update(x, y)
    batch_fit = np.linalg.lstsq(X, Y, rcond=None)[0]
    predicted_rls, predicted_batch = X @ rls.theta, X @ batch_fit
    return float(np.max(np.abs(predicted_rls - predicted_batch) / np.abs(predicted_batch)))


def tracking(records, forgetting, factor=1.5):
    """Calibrate on the first half (in time order), then feed the second half with wall_s x factor
    (a throttled machine) by update(). Returns the updates until the predicted latency of the mean
    call first covers 50 % and 90 % of the jump (None: never), and the median |error| of that
    prediction against factor x its value before, over the last half of the throttled records."""
    half = len(records) // 2
    model = gaia.CostModel.calibrate(records[:half], forgetting=forgetting, clip=3.0)
    features = model.coefficients().loc["minilm"].index.drop("calls")
    mean_counts = {f: np.mean([r["counts"][f] for r in records]) for f in features}
    before = model.predict(mean_counts).latency_s
    covered = []
    for record in records[half:]:
        model.update({**record, "wall_s": factor * record["wall_s"]})
        covered.append((model.predict(mean_counts).latency_s - before) / ((factor - 1) * before))
    covered = np.array(covered)
    first = [next((i + 1 for i, c in enumerate(covered) if c >= share), None) for share in (0.5, 0.9)]
    late = covered[len(covered) // 2:]
    return (*first, float(np.median(np.abs(late - 1) * (factor - 1) / factor)))


def sample_distance(records):
    """Calibrated on 10 % of the training queries' records against on all of them: mean and max
    relative difference of their predicted latencies on the held-out records, and both R²."""
    train, test = split(records)
    full = gaia.CostModel.calibrate(train)
    tenth = gaia.CostModel.calibrate(train, sample=0.1, seed=0)
    a, b = full.compare(test)["pred_wall_s"], tenth.compare(test)["pred_wall_s"]
    distance = np.abs(b - a) / a
    return len(train), round(0.1 * len(train)), distance.mean(), distance.max(), full.r2(test), tenth.r2(test)


def hardware_check():
    """Achieved FP32/BF16 matmul FLOP/s and copy bandwidth here, against the local profile's peaks."""
    import torch

    profile = gaia.hardware.local()
    rows = []
    for dtype, key in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        started = time.perf_counter()
        for _ in range(5):
            a @ b
        achieved = 5 * 2 * 2048 ** 3 / (time.perf_counter() - started)
        rows.append((f"matmul {key} FLOP/s", achieved, profile.flops_at(key)[0]))
    x = np.ones(2 ** 27)
    y = np.empty_like(x)
    best = min(_timed(np.copyto, y, x) for _ in range(5))
    rows.append(("copy bytes/s (read + write)", 2 * x.nbytes / best, profile.memory_bw))
    return profile.name, pd.DataFrame(rows, columns=["what", "achieved", "profile"]).assign(
        fraction=lambda f: f.achieved / f.profile)


def _timed(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def measured(collection, data, seed, folder, repeat):
    """{"bm25": records, "minilm": records} for one collection, each read from ``folder`` when
    its ledger is there, else measured (and written there)."""
    rng = np.random.default_rng(seed)
    out, index = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for stage in ("bm25", "minilm"):
            path = Path(folder) / f"{collection}-{stage}.jsonl" if folder else None
            if path is not None and path.is_file():
                out[stage] = gaia.Ledger.load(path).records
                print(f"{collection} {stage}: {len(out[stage])} records read from {path}")
                continue
            if index is None:
                ds = gaia.datasets.get(SPECS[collection].format(data=data))
                index = gaia.LuceneIndex(Path(tmp) / collection).index(ds.get_corpus_iter())
            started = time.perf_counter()
            topics = ds.get_topics()
            out[stage] = (bm25_records if stage == "bm25" else rerank_records)(index, topics, rng, repeat)
            print(f"{collection} {stage}: {len(out[stage])} records in {time.perf_counter() - started:.0f} s, "
                  f"load average {os.getloadavg()[0]:.1f}")
            ledger = gaia.Ledger(path)
            for record in out[stage]:
                ledger.append(record)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--collections", nargs="+", default=list(SPECS), choices=list(SPECS))
    parser.add_argument("--ledgers", help="folder to write the measured ledgers to, or read them from")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=3, help="times each call is made in a row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)   # short-window flags of the energy model

    name, check = hardware_check()
    print(f"Hardware profile here: {name}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"torch threads {torch.get_num_threads()}")
    print(check.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    r2_rows, other_rows, runs = [], [], {}
    for collection in args.collections:
        runs[collection] = measured(collection, args.data, args.seed, args.ledgers, args.repeat)
        least = {stage: least_of(records, args.repeat) for stage, records in runs[collection].items()}
        for stage in ("bm25", "minilm"):
            for kind, records in (("single calls", runs[collection][stage]), (f"least of {args.repeat}", least[stage])):
                model, r2_wall, r2_joules, n_train, n_test = held_out_r2(records)
                walls = np.array([r["wall_s"] for r in records])
                r2_rows.append((collection, stage, kind, n_train, n_test,
                                f"{walls.min() * 1e3:.1f}-{walls.max() * 1e3:.0f}", r2_wall, r2_joules))
            print(f"\n{collection} {stage} (least of {args.repeat}): cost per unit")
            print(model.coefficients().droplevel("stage").to_string(float_format=lambda v: f"{v:.3e}"))
        minilm = least["minilm"]
        n_train, n_sample, mean_d, max_d, r2_full, r2_tenth = sample_distance(minilm)
        other_rows.append((collection, rls_vs_batch(minilm), n_train, n_sample, mean_d, max_d, r2_full, r2_tenth))

    print("\nR² of predicted against measured per-query cost on held-out queries (joules modelled)")
    print(pd.DataFrame(r2_rows, columns=["collection", "stage", "records", "train", "test", "wall ms", "R² wall_s",
                                         "R² joules"])
          .to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nRe-ranking records (least of {args.repeat}): EW-RLS (λ=1) vs batch LS; "
          f"calibration from 10 % of the training queries")
    print(pd.DataFrame(other_rows, columns=["collection", "RLS vs LS max rel diff", "train", "10 %",
                                            "mean rel dist", "max rel dist", "R² all", "R² 10 %"])
          .to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    first = args.collections[0]
    reranks = least_of(runs[first]["minilm"], args.repeat)
    print(f"\nThrottling ({first} re-ranking, {len(reranks) - len(reranks) // 2} records after the change, "
          f"time order): wall_s x 1.5 from the middle on")
    rows = [(forgetting, *tracking(reranks, forgetting)) for forgetting in (1.0, 0.99, 0.95, 0.9)]
    print(pd.DataFrame(rows, columns=["λ", "updates to 50 % of the jump", "updates to 90 %", "late median |error|"])
          .to_string(index=False, float_format=lambda v: f"{v:.3g}"))

    model = gaia.CostModel.calibrate(reranks, features=["flops", "weight_bytes"])
    print(f"\nWhat-if (predictions, not measurements): re-ranking one query of {first} at its mean counts, "
          f"fp32, roofline features (calls, flops, weight_bytes; R² on its own records "
          f"{model.r2(reranks):.3f})")
    for target in gaia.hardware.PROFILES:
        cost = model.predict(stage="minilm", queries=1, hardware=target)
        print(f"  {target:17s} {cost.latency_s * 1e3:10.2f} ms {cost.joules:9.4f} J")


if __name__ == "__main__":
    main()
