"""What metering costs: metered vs unmetered BM25 over the Vaswani topics, alternated in one process.

Prints, for BM25 (top 1000) over the 93 Vaswani topics:

- the wall-time ratio metered / unmetered, median over rounds, for one call over all topics, for
  one call per topic (93 times more metered calls for the same work; alternated call by call), and
  for ``gaia.meter(bm25 % 10)`` one topic a call (one metered stage a call: PyTerrier fuses ``% 10``
  into the retriever; each query's record in a JSONL ledger), and the same ratios of process CPU
  time, which other jobs on a shared machine disturb much less;
- for scale, on the same calls: (d) a plain call against itself (how far the ratio strays with no
  meter at all), and (e) the floor of any meter that reads CPU time and writes each record before
  returning: a wrapper that only reads the process CPU clock before and after the call and writes one
  850-byte line holding the CPU seconds to a file opened for appending;
- the cost of one metered call in microseconds: a stage that does nothing, metered minus unmetered,
  on a one-row and a 1000-row frame, with an in-memory ledger and with a JSONL ledger, and the
  records' own ``sensing_s``;
- what the pieces of a call cost right after a BM25 call (caches cold), in microseconds: system
  calls, reading the qids, encoding the line;
- CodeCarbon's OfflineEmissionsTracker (process mode) started and stopped around each per-topic call
  on the same work, the reference a user would reach for today.

Energy here is modelled (see docs/energy.md): no RAPL or NVML counter is readable on most VMs.

    .venv/bin/python benchmarks/meter_overhead.py [--rounds 7] [--no-codecarbon]

It runs against main's API too (no new arguments), so one can alternate processes of two versions:
``PYTHONPATH=OTHER_CHECKOUT python benchmarks/meter_overhead.py``.
"""
import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt

import pyterrier_gaia as gaia
from pyterrier_gaia.cli import cache_dir


def vaswani_bm25(num_results: int):
    collection = gaia.datasets.get("vaswani")
    index = gaia.LuceneIndex(cache_dir() / "indexes" / "vaswani")
    if not index.built():
        index.index(collection.get_corpus_iter(), overwrite=True)
    return index.bm25(num_results=num_results), collection.get_topics()


def clocks(call):
    """(wall s, process CPU s) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def alternate(rounds: int, plain, metered):
    """Per round, ((wall, cpu) unmetered, (wall, cpu) metered), the order swapped every round so drift favours neither."""
    pairs = []
    for round_ in range(rounds):
        if round_ % 2:
            m, p = clocks(metered), clocks(plain)
        else:
            p, m = clocks(plain), clocks(metered)
        pairs.append((p, m))
    return pairs


def interleaved(rounds: int, calls, plain, metered):
    """Like :func:`alternate`, but alternating call by call within a round (each input once each way)."""
    pairs = []
    for round_ in range(rounds):
        p, m = [0.0, 0.0], [0.0, 0.0]
        for position, item in enumerate(calls):
            order = [(plain, p), (metered, m)] if (round_ + position) % 2 == 0 else [(metered, m), (plain, p)]
            for call, totals in order:
                wall, cpu = clocks(lambda: call(item))
                totals[0] += wall
                totals[1] += cpu
        pairs.append((tuple(p), tuple(m)))
    return pairs


def report(label: str, pairs) -> None:
    walls = [m[0] / p[0] for p, m in pairs]
    cpus = [m[1] / p[1] for p, m in pairs]
    print(f"{label}: unmetered {statistics.median(p[0] for p, _ in pairs):.3f} s, "
          f"metered {statistics.median(m[0] for _, m in pairs):.3f} s; wall ratio median {statistics.median(walls):.4f} "
          f"(min {min(walls):.4f}, max {max(walls):.4f}); CPU-time ratio median {statistics.median(cpus):.4f} "
          f"(min {min(cpus):.4f}, max {max(cpus):.4f}); {len(pairs)} rounds")


def floor_meter(stage, path: Path):
    """The least a meter that reads CPU time and writes its record before returning can do around
    ``stage``: the process CPU clock before and after, one line of about 850 bytes holding the CPU
    seconds, one ``write``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rest = b'"key":0.0,' * 82 + b'"end":0}\n'

    def call(row):
        started = time.process_time()
        out = stage(row)
        os.write(descriptor, b'{"cpu_s":%.9f,' % (time.process_time() - started) + rest)
        return out
    return call


def per_call_cost(calls: int, ledger, rows: int = 1, rounds: int = 10):
    """Microseconds (wall, CPU) a metered call adds to a stage that does nothing (a frame of ``rows`` rows, one qid)."""
    frame = pd.DataFrame({"qid": ["1"] * rows, "docno": [str(i) for i in range(rows)], "score": [0.0] * rows})
    nothing = pt.apply.generic(lambda f: f)
    metered = gaia.Metered(nothing, ledger=ledger)
    rounds = alternate(rounds, lambda: [nothing(frame) for _ in range(calls)], lambda: [metered(frame) for _ in range(calls)])
    return tuple(statistics.median((m[k] - p[k]) / calls * 1e6 for p, m in rounds) for k in (0, 1))


def cold_costs(bm25, rows, folder: Path, rounds: int = 5) -> str:
    """Median microseconds of each piece of a metered call's bookkeeping, each timed right after a
    ``bm25`` call (as in a metered call, where it follows the stage's work), not in a warm loop."""
    from pyterrier_gaia.energy.ledger import json_line
    from pyterrier_gaia.energy.metered import distinct_qids

    descriptor = os.open(folder / "cold.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    metered = gaia.Metered(bm25, ledger=gaia.Ledger())
    metered(rows[0])
    record = metered.ledger.records[0]
    line = json_line(record)
    pieces = {"process CPU clock": lambda row: time.process_time(), "thread CPU clock": lambda row: time.thread_time(),
              "getppid": lambda row: os.getppid(), "fstat": lambda row: os.fstat(descriptor),
              "write": lambda row: os.write(descriptor, line), "qids of a 1-row frame": distinct_qids,
              "JSON line (orjson)": lambda row: json_line(record)}
    spent = {name: [] for name in pieces}
    for _ in range(rounds):
        for row in rows:
            for name, piece in pieces.items():
                bm25(row)
                start = time.perf_counter()
                piece(row)
                spent[name].append(time.perf_counter() - start)
    os.close(descriptor)
    return ", ".join(f"{name} {statistics.median(times) * 1e6:.1f}" for name, times in spent.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--num-results", type=int, default=1000)
    parser.add_argument("--no-codecarbon", action="store_true", help="skip the CodeCarbon comparison")
    parser.add_argument("--quick", type=int, default=0, metavar="N",
                        help="only case (c) on the first N topics and the per-call costs (500 calls a round)")
    args = parser.parse_args(argv)

    bm25, topics = vaswani_bm25(args.num_results)
    metered = gaia.Metered(bm25, name="bm25")
    rows = [topics.iloc[[i]] for i in range(len(topics))]
    warm = topics.head(args.quick) if args.quick else topics
    for _ in range(2):                                   # JVM and caches warm
        bm25(warm)
        metered(warm)
    print(f"machine: {metered.sensors[0].constants()}; method {metered.ledger.records[0]['method']}")
    print(f"BM25 top {args.num_results}, {len(topics)} Vaswani topics")
    print(f"load average before: {os.getloadavg()}")
    if args.quick:
        rows = rows[:args.quick]
    else:
        report("(a) one call over all topics", alternate(args.rounds, lambda: bm25(topics), lambda: metered(topics)))
        report(f"(b) one call per topic ({len(rows)} calls, alternated call by call)",
               interleaved(args.rounds, rows, bm25, metered))
    sensing = [r["sensing_s"] for r in metered.ledger.records]
    print(f"sensing_s recorded by the meter: median {statistics.median(sensing) * 1e6:.1f} us over "
          f"{len(sensing)} calls; accounting {metered.ledger.records[-1].get('accounting', 'process (before the key existed)')}")
    calls = 500 if args.quick else 2000
    with tempfile.TemporaryDirectory() as folder:
        cut = bm25 % 10
        piped = gaia.meter(cut, ledger=Path(folder) / "cut.jsonl")
        for row in rows[:10]:
            piped(row)
        report(f"(c) gaia.meter(bm25 % 10), one call per topic ({len(rows)} calls, JSONL ledger)",
               interleaved(args.rounds, rows, cut, piped))
        report("(d) the same, unmetered against itself", interleaved(args.rounds, rows, cut, lambda row: cut(row)))
        report("(e) the floor: two process-clock reads and one 850-byte write a call",
               interleaved(args.rounds, rows, cut, floor_meter(cut, Path(folder) / "floor.jsonl")))
        print(f"cold costs, right after a BM25 call (us, medians): {cold_costs(cut, rows, Path(folder))}")
        for rows_ in (1, 1000):
            print(f"cost per metered call, {rows_}-row frame, in-memory ledger: %.1f us wall, %.1f us CPU"
                  % per_call_cost(calls, gaia.Ledger(), rows_, args.rounds))
            print(f"cost per metered call, {rows_}-row frame, JSONL ledger:     %.1f us wall, %.1f us CPU"
                  % per_call_cost(calls, Path(folder) / f"run{rows_}.jsonl", rows_, args.rounds))
    if args.no_codecarbon or args.quick:
        print(f"load average after: {os.getloadavg()}")
        return

    from codecarbon import OfflineEmissionsTracker
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, log_level="error",
                                      tracking_mode="process")
    first = clocks(tracker.start)[0]
    tracker.stop()

    def tracked(row):
        tracker.start()
        bm25(row)
        tracker.stop()
    pairs = interleaved(args.rounds, rows, bm25, tracked)
    report(f"CodeCarbon start/stop around each of {len(rows)} calls", pairs)
    added = statistics.median((m[0] - p[0]) / len(rows) * 1e3 for p, m in pairs)
    print(f"CodeCarbon: {added:.2f} ms added per call; its first start() took {first:.2f} s (hardware detection)")
    print(f"load average after: {os.getloadavg()}")

if __name__ == "__main__":
    main()
