"""gaia.parallel on 1 and 2 local Ray workers against the sequential run: BM25 top K re-ranked by the bundled
cross-encoder (or MiniLM from its bi-encoder, cheaper) on Vaswani topics.

    .venv/bin/python benchmarks/ray_parallel.py [--topics 10] [--depth 100] [--reranker cross|minilm]

Per run: queries/s, J/q of the pipeline's own records (summed over the workers: their processes' CPU
time, and each worker's static and DRAM shares), and Ray's own overhead: the wall time not spent in the
pipeline's stages, the CPU seconds of the worker processes outside the stages (read from /proc through
psutil, same host), and the driver's CPU seconds while it waits (gaia.Metered around the parallel stage).
Start-up (Ray, the workers, loading the model, the JVM) is timed apart and left out of every per-query
figure. Energy is modelled (CPU seconds x per-core power + static and DRAM shares; no RAPL or NVML here).
"""
import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

import pyterrier_gaia as gaia


def run_sequential(pipe, topics) -> dict:
    pipe(topics.head(1))                                # start-up: JVM, searcher, model
    before = len(pipe.ledger)
    start = time.perf_counter()
    result = pipe(topics)
    wall = time.perf_counter() - start
    return {"result": result, **figures(pipe.ledger.records[before:], wall, len(topics))}


def run_parallel(pipe, topics, workers: int) -> dict:
    start, first = time.perf_counter(), len(pipe.ledger)
    par = gaia.parallel(pipe, workers=workers)
    par.warmup(topics.head(1))
    startup = time.perf_counter() - start
    # this run's workers (the ledger also holds the records of an earlier run's workers, since stopped)
    pids = {record["pid"] for record in pipe.ledger.records[first:] if record.get("startup") and "pid" in record}
    processes = [psutil.Process(pid) for pid in pids]
    cpu_before = sum(sum(process.cpu_times()[:2]) for process in processes)
    driver = gaia.Metered(par, name=f"driver, {workers} worker(s)", sensors="model")
    before = len(pipe.ledger)
    start = time.perf_counter()
    result = driver(topics)
    wall = time.perf_counter() - start
    worker_cpu = sum(sum(process.cpu_times()[:2]) for process in processes) - cpu_before
    par.close()
    records = pipe.ledger.records[before:]
    row = figures(records, wall, len(topics))
    staged = pd.DataFrame(records).groupby("pid")[["wall_s", "cpu_s"]].sum()
    driver_record = driver.ledger.records[-1]
    row.update({"start-up s": startup,
                "overhead wall s": wall - staged["wall_s"].max(),
                "overhead worker CPU s": worker_cpu - staged["cpu_s"].sum(),
                "driver CPU s": driver_record["cpu_s"], "driver J (model)": driver_record["joules"],
                "result": result})
    return row


def figures(records, wall: float, queries: int) -> dict:
    joules = sum(record["joules"] for record in records)
    cpu = sum(record["cpu_s"] for record in records)
    return {"queries/s": queries / wall, "wall s": wall, "CPU s/q (stages)": cpu / queries,
            "J/q (model)": joules / queries}


def main(topics_wanted: int, depth: int, reranker: str):
    from pyterrier_gaia.distribute import init_ray

    start = time.perf_counter()
    init_ray(include_dashboard=False)          # first, while this process is still light (a busy machine
    print(f"Ray started in {time.perf_counter() - start:.1f} s")   # can miss Ray's 30 s start-up deadline)
    ds = gaia.datasets.get("vaswani")
    topics = ds.get_topics().head(topics_wanted)
    with tempfile.TemporaryDirectory() as tmp:
        index = gaia.LuceneIndex(Path(tmp) / "vaswani").index(ds.get_corpus_iter())
        ranker = gaia.CrossEncoder().reranker() if reranker == "cross" else gaia.BiEncoder().reranker()
        pipe = gaia.meter(index.bm25(num_results=depth) >> ranker, sensors="model")
        runs = {"sequential": run_sequential(pipe, topics)}
        for workers in (1, 2):
            runs[f"Ray, {workers} worker(s)"] = run_parallel(pipe, topics, workers)
    expected = runs["sequential"].pop("result")
    largest = 0.0
    for run in list(runs.values())[1:]:   # the same rows in the same order; scores up to float32 noise
        got = run.pop("result")           # (a batch of other pairs pads and sums differently)
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-4, atol=1e-4)
        largest = max(largest, float((got["score"] - expected["score"]).abs().max()))
    table = pd.DataFrame(runs).T
    print(f"Vaswani, first {len(topics)} topics, BM25 top {depth} >> {reranker} re-ranker; every run gave the "
          f"sequential run's rows in order (largest score difference {largest:.1e}, float32 batching)")
    print(table.to_string(float_format=lambda value: f"{value:.3g}"))
    print("energy modelled (CPU s x per-core power + static and DRAM shares; no RAPL/NVML): J/q sums the "
          "workers' records, each worker charged its own static share (see docs/parallel.md)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--reranker", choices=("cross", "minilm"), default="cross")
    arguments = parser.parse_args()
    main(arguments.topics, arguments.depth, arguments.reranker)
