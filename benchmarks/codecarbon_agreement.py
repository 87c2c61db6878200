"""Agreement: gaia's modelled joules against CodeCarbon's estimate for the same windows of work.

Each workload runs once per repeat inside a fresh CodeCarbon OfflineEmissionsTracker (offline,
PUE 1), in ``process`` and in ``machine`` tracking mode, while gaia meters the same call. Printed per
run: gaia's J (cpu + static + dram), CodeCarbon's J (cpu + ram), both components, and mean power
over each tool's own window. Workloads on the embedded Vaswani collection:

- BM25 (Lucene, top 1000) over the 93 topics;
- BM25 top 20 re-ranked by the bundled MiniLM bi-encoder for the first 20 topics (torch, all cores).

Both figures are modelled (no RAPL or NVML on this machine); docs/energy.md explains where the
two models differ.

    .venv/bin/python benchmarks/codecarbon_agreement.py [--repeats 3]
"""
import argparse
import logging
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyterrier_gaia as gaia  # noqa: E402
from pyterrier_gaia.cli import cache_dir  # noqa: E402
from pyterrier_gaia.energy.sensors import auto_sensors  # noqa: E402

JOULES_PER_KWH = 3.6e6


def workloads():
    collection = gaia.datasets.get("vaswani")
    index = gaia.LuceneIndex(cache_dir() / "indexes" / "vaswani")
    if not index.built():
        index.index(collection.get_corpus_iter(), overwrite=True)
    topics = collection.get_topics()
    bm25 = index.bm25(num_results=1000)
    rerank = index.bm25(num_results=20) >> gaia.BiEncoder().reranker()
    return {"BM25, 93 topics": (bm25, topics), "BM25 top 20 >> MiniLM, 20 topics": (rerank, topics.head(20))}


def measure(pipeline, topics, mode: str):
    from codecarbon import OfflineEmissionsTracker

    ledger = gaia.Ledger()
    metered = gaia.meter(pipeline, ledger=ledger)
    tracker = OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, log_level="error",
                                      tracking_mode=mode, measure_power_secs=1)
    tracker.start()
    metered(topics)
    tracker.stop()
    ours = {key: sum(r["joules_by"].get(key, 0.0) for r in ledger.records) for key in ("cpu", "static", "dram")}
    wall = sum(r["wall_s"] for r in ledger.records)
    cpu = sum(r["cpu_s"] for r in ledger.records)
    data = tracker.final_emissions_data
    theirs = {"cpu": data.cpu_energy * JOULES_PER_KWH, "ram": data.ram_energy * JOULES_PER_KWH}
    return ours, wall, cpu, theirs, data.duration


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    print(f"gaia sensors: {[sensor.constants() for sensor in auto_sensors()]}")
    for label, (pipeline, topics) in workloads().items():
        pipeline(topics.head(2))                         # JVM, model and caches warm
        for mode in ("process", "machine"):
            for repeat in range(args.repeats):
                ours, wall, cpu, theirs, duration = measure(pipeline, topics, mode)
                total, their_total = sum(ours.values()), sum(theirs.values())
                print(f"{label} | CodeCarbon {mode:7s} #{repeat + 1}: "
                      f"gaia {total:7.2f} J (cpu {ours['cpu']:.2f}, static {ours['static']:.2f}, dram {ours['dram']:.3f}; "
                      f"{wall:.2f} s wall, {cpu:.2f} s CPU, {total / wall:.2f} W) | "
                      f"CodeCarbon {their_total:7.2f} J (cpu {theirs['cpu']:.2f}, ram {theirs['ram']:.2f}; "
                      f"{duration:.2f} s, {their_total / duration:.2f} W) | ratio gaia/CodeCarbon {total / their_total:.3f}, "
                      f"CPU only {(ours['cpu'] + ours['static']) / theirs['cpu']:.3f}")


if __name__ == "__main__":
    main()
