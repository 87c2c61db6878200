"""Checks a student's answers to the classroom assignment against the figures of the student's own run.

    python check.py WORKDIR                        # the notebook's WORKDIR, e.g. classroom-work
    python check.py WORKDIR --answers other.json   # answers from another file

The notebook (assignment.ipynb) leaves in WORKDIR:

    run/results.csv    gaia.Experiment's table: one row per system (name, nDCG@10, AP, mrt, J/q, gCO2e/q, ms/q, method)
    run/ledger.jsonl   that experiment's ledger: one record per metered call
    run/run.json       the run's parameters (collection, topics, depth, shallow depth, fusion weight)
    run/answers.json   the student's ANSWERS
    builds.jsonl       the ledger of the index builds (the stored vectors' build energy)

Each answer is recomputed from those files and judged within a tolerance (see QUESTIONS): "agrees",
"disagrees", "unanswered", "cannot check" (the run lacks a figure it needs), or "for the teacher"
(answers in words). The expected figure is printed beside each verdict. Exit status: 0 when every
checked answer agrees, 1 when one does not (or is unanswered, or cannot be checked), 2 when the run's files are missing.
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pandas as pd

REFERENCE = "MiniLM fp32"    # the full re-ranker every rung is compared with
FIRST_STAGE = "BM25"
WORDS = ("why_same_ndcg", "with_rapl")   # answers in words, read by the teacher


@dataclass
class Run:
    """What a run of the notebook left in WORKDIR."""
    results: pd.DataFrame    # indexed by system name
    records: List[dict]      # the experiment's ledger records
    builds: List[dict]       # the index builds' ledger records
    params: dict

    @classmethod
    def load(cls, workdir: Path) -> "Run":
        run = workdir / "run"
        results = pd.read_csv(run / "results.csv").set_index("name")
        return cls(results=results, records=_jsonl(run / "ledger.jsonl"), builds=_jsonl(workdir / "builds.jsonl"),
                   params=json.loads((run / "run.json").read_text(encoding="utf-8")))

    def jq(self, system: str) -> float:
        return float(self.results.loc[system, "J/q"])

    def ndcg(self, system: str) -> float:
        return float(self.results.loc[system, "nDCG@10"])


@dataclass
class Expected:
    """An answer recomputed from the run: its value, and a function saying whether a given answer agrees."""
    value: object
    agrees: Callable[[object], bool]
    how: str          # how the value was computed, and the tolerance


@dataclass
class Verdict:
    question: str
    status: str       # agrees | disagrees | unanswered | cannot check | for the teacher
    given: object
    expected: object
    how: str


class CannotCheck(Exception):
    """The run lacks a figure the question needs."""


def _jsonl(path: Path) -> List[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _number(given) -> float:
    if isinstance(given, bool) or not isinstance(given, (int, float)):
        raise TypeError(f"expected a number, got {given!r}")
    return float(given)


def within_relative(value: float, tolerance: float) -> Callable[[object], bool]:
    return lambda given: abs(_number(given) - value) <= tolerance * abs(value)


def within_absolute(value: float, tolerance: float) -> Callable[[object], bool]:
    return lambda given: abs(_number(given) - value) <= tolerance


def _name(given) -> str:
    if not isinstance(given, str):
        raise TypeError(f"expected a system's name, got {given!r}")
    return given.strip().lower()


# ----- the questions: each recomputes its answer from the run

def method(run: Run) -> Expected:
    methods = sorted(set(run.results["method"].dropna()))
    if not methods:
        raise CannotCheck("results.csv has no method")
    value = ",".join(methods)
    spellings = {value, value + "led", value + "ed"}   # "model", "modelled", "modeled"
    return Expected(value, lambda given: _name(given) in spellings,
                    "the method column of results.csv (model: energy modelled from CPU time, not measured)")


def reranker_vs_bm25(run: Run) -> Expected:
    value = run.jq(REFERENCE) / run.jq(FIRST_STAGE)
    return Expected(value, within_relative(value, 0.10),
                    f"J/q {REFERENCE} {run.jq(REFERENCE):.4g} / {FIRST_STAGE} {run.jq(FIRST_STAGE):.4g}; "
                    "tolerance ±10%")


def first_stage_share_pct(run: Run) -> Expected:
    own = [r for r in run.records if r["stage"].startswith(f"{REFERENCE} / ") and not r.get("startup")]
    if not own:
        raise CannotCheck(f"the ledger has no records of {REFERENCE!r}")
    first = own[0]["stage"]    # records are appended as calls end: the first stage's call ends first
    joules = sum(r["joules"] for r in own)
    value = 100 * sum(r["joules"] for r in own if r["stage"] == first) / joules
    return Expected(value, within_absolute(value, max(0.25, 0.10 * value)),
                    f"J of the ledger's {first!r} records / J of all {REFERENCE!r} records (start-up left out); "
                    "tolerance ±10% of the value or ±0.25 points, whichever is larger")


def int8_saving_pct(run: Run) -> Expected:
    value = 100 * (1 - run.jq("MiniLM int8") / run.jq(REFERENCE))
    return Expected(value, within_absolute(value, 2.0),
                    f"100 x (1 - J/q MiniLM int8 {run.jq('MiniLM int8'):.4g} / {REFERENCE} "
                    f"{run.jq(REFERENCE):.4g}); tolerance ±2 points")


def int8_ndcg_change(run: Run) -> Expected:
    value = run.ndcg("MiniLM int8") - run.ndcg(REFERENCE)
    return Expected(value, within_absolute(value, 0.0015),
                    f"nDCG@10 MiniLM int8 {run.ndcg('MiniLM int8'):.4f} - {REFERENCE} {run.ndcg(REFERENCE):.4f}; "
                    "tolerance ±0.0015 (figures rounded to 3 decimals)")


def depth_energy_ratio(run: Run) -> Expected:
    shallow = f"MiniLM depth {run.params['shallow']}"
    value = run.jq(shallow) / run.jq(REFERENCE)
    return Expected(value, within_relative(value, 0.10),
                    f"J/q {shallow} {run.jq(shallow):.4g} / {REFERENCE} {run.jq(REFERENCE):.4g} "
                    f"(depth ratio {run.params['shallow']}/{run.params['depth']}); tolerance ±10%")


def cheapest_99(run: Run) -> Expected:
    table = run.results
    keeps = table[table["nDCG@10"] >= 0.99 * run.ndcg(REFERENCE) - 1e-12]
    least = keeps["J/q"].min()
    near = keeps[keeps["J/q"] <= 1.05 * least].sort_values("J/q")   # near-ties within 5% are accepted too
    accepted = {name.lower() for name in near.index}
    return Expected(near.index[0], lambda given: _name(given) in accepted,
                    f"least J/q among the systems with nDCG@10 >= 0.99 x {run.ndcg(REFERENCE):.4f} "
                    f"({', '.join(keeps.index)}); any within 5% of the least J/q accepted: {', '.join(near.index)}")


def pareto_front(run: Run) -> Expected:
    import pyterrier_gaia as gaia

    names = list(gaia.pareto(run.results.reset_index(), x="J/q", y="nDCG@10").points["name"])

    def agrees(given) -> bool:
        if not isinstance(given, (list, tuple, set)):
            raise TypeError(f"expected a list of system names, got {given!r}")
        return {_name(name) for name in given} == {name.lower() for name in names}
    return Expected(names, agrees, "gaia.pareto(results, x='J/q', y='nDCG@10'): the same set of names, in any order")


def payback_queries(run: Run) -> Expected:
    stage = f"{run.params['collection']} / stored vectors build"
    built = [r for r in run.builds if r["stage"] == stage and not r.get("error")]
    if not built:
        raise CannotCheck(f"builds.jsonl has no record {stage!r} (was the stored-vector index built elsewhere?)")
    build_joules = built[-1]["joules"]
    saved = run.jq(REFERENCE) - run.jq("stored vectors")
    if saved <= 0:
        raise CannotCheck(f"stored vectors saved no energy per query in this run ({saved:.4g} J/q)")
    value = build_joules / saved
    return Expected(value, within_relative(value, 0.10),
                    f"build {build_joules:.4g} J / ({REFERENCE} {run.jq(REFERENCE):.4g} - stored vectors "
                    f"{run.jq('stored vectors'):.4g} J/q); tolerance ±10%")


QUESTIONS: Dict[str, Callable[[Run], Expected]] = {
    question.__name__: question for question in (
        method, reranker_vs_bm25, first_stage_share_pct, int8_saving_pct, int8_ndcg_change,
        depth_energy_ratio, cheapest_99, pareto_front, payback_queries)}


def judge(run: Run, answers: dict) -> List[Verdict]:
    """One verdict per question, in the notebook's order (the answers in words last)."""
    verdicts = []
    for question, expect in QUESTIONS.items():
        given = answers.get(question)
        try:
            expected = expect(run)
        except (CannotCheck, KeyError) as error:
            verdicts.append(Verdict(question, "cannot check", given, None, f"{type(error).__name__}: {error}"))
            continue
        if given is None:
            status = "unanswered"
        else:
            try:
                status = "agrees" if expected.agrees(given) else "disagrees"
            except TypeError as error:
                status, expected.how = "disagrees", f"{error}; {expected.how}"
        verdicts.append(Verdict(question, status, given, expected.value, expected.how))
    for question in WORDS:
        given = answers.get(question)
        answered = isinstance(given, str) and given.strip()
        verdicts.append(Verdict(question, "for the teacher" if answered else "unanswered", given, None,
                                "an answer in words"))
    return verdicts


def _shown(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:37] + "...")
    return repr(value)


def report(verdicts: List[Verdict]) -> str:
    lines = []
    for number, v in enumerate(verdicts, start=1):
        figures = "" if v.expected is None else f"  yours {_shown(v.given)}, your run's {_shown(v.expected)}"
        lines.append(f"{number:2d}. {v.question:22s} {v.status:15s}{figures}\n      {v.how}")
    counts = pd.Series([v.status for v in verdicts]).value_counts()
    lines.append("summary: " + ", ".join(f"{count} {status}" for status, count in counts.items()))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir", type=Path, help="the notebook's WORKDIR (holds run/ and builds.jsonl)")
    parser.add_argument("--answers", type=Path, help="the answers (default: WORKDIR/run/answers.json)")
    args = parser.parse_args(argv)
    answers_path = args.answers or args.workdir / "run" / "answers.json"
    try:
        run = Run.load(args.workdir)
        answers = json.loads(answers_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        print(f"check.py: {error.filename} is missing; run the notebook (assignment.ipynb) to the end first",
              file=sys.stderr)
        return 2
    verdicts = judge(run, answers)
    methods = ",".join(sorted(set(run.results["method"].dropna())))
    print(f"run: {args.workdir / 'run'} ({run.params['collection']}, {run.params['topics']} topics, depth "
          f"{run.params['depth']}); energy method: {methods}"
          + (" (modelled from CPU time, not measured)" if methods == "model" else ""))
    print(report(verdicts))
    checked = [v for v in verdicts if v.question not in WORDS]
    return 0 if all(v.status == "agrees" for v in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
