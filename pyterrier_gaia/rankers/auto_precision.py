"""precision="auto": the cheapest precision whose rankings stay within a tolerance of fp32's."""
import logging
import time
from dataclasses import dataclass

import pandas as pd

from ..encoders import precision as ladder
from .measures import top_overlap
from .reranker import ReRanker

log = logging.getLogger(__name__)

MEASURE = "nDCG@10"


@dataclass
class PrecisionChoice:
    """What ``precision="auto"`` chose, and why.

    ``table`` has one row per precision tried: its ``loss`` against fp32 (nDCG@10 drop with
    qrels, else ``1 - mean top-10 overlap``), ``within`` tolerance, and the measured ``docs_per_s``.
    """
    precision: str
    reason: str
    table: pd.DataFrame


def choose_precision(encoder, *, tolerance, validation, qrels=None, batch_size=32, interpolate=None):
    """Pick the cheapest precision (fewest weight bytes: nf4, int8, fp16, bf16, fp32) that can run
    on the encoder's device and whose loss against fp32 on ``validation`` is at most ``tolerance``.

    ``validation``: candidates (qid, query, docno, text[, score]) of validation queries, as a
    re-ranker takes them. With ``qrels`` (qid, docno, label) the loss is the drop in mean
    nDCG@10; without, it is ``1 -`` the mean overlap of the top 10 with fp32's top 10.
    ``tolerance`` is in 0..1. Returns a :class:`PrecisionChoice` and logs it.
    """
    stage = "ReRanker(precision='auto')"
    if not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
        raise ValueError(f"{stage}: tolerance={tolerance!r}; expected a number between 0 and 1 "
                         f"(the largest {'nDCG@10 drop' if qrels is not None else 'loss of top-10 overlap'} accepted)")
    if not isinstance(validation, pd.DataFrame) or validation.empty:
        raise ValueError(f"{stage}: validation= must be a non-empty DataFrame of candidates "
                         f"(qid, query, docno, text[, score]) for validation queries")
    if qrels is not None:
        missing = [c for c in ("qid", "docno", "label") if c not in qrels.columns]
        if missing:
            raise ValueError(f"{stage}: qrels lack column(s) {missing}; expected qid, docno, label")
        if not set(validation["qid"].astype(str)) & set(qrels["qid"].astype(str)):
            raise ValueError(f"{stage}: qrels judge none of the validation queries; pass qrels for them, "
                             f"or none to compare rankings with fp32's")

    candidates = [p for p in ladder.CHEAPEST_FIRST if p in ladder.runnable(encoder.device)]
    runs, rows = {}, []
    for precision in ["fp32"] + [p for p in candidates if p != "fp32"]:
        ranker = ReRanker(encoder.at_precision(precision), batch_size, interpolate)
        start = time.perf_counter()
        runs[precision] = ranker.transform(validation)
        elapsed = time.perf_counter() - start
        loss = _loss(runs["fp32"], runs[precision], qrels)
        rows.append({"precision": precision, "loss": loss, "within": loss <= tolerance,
                     "docs_per_s": len(validation) / elapsed if elapsed > 0 else float("inf")})
    table = pd.DataFrame(rows).set_index("precision").loc[candidates].reset_index()
    chosen = table[table["within"]].iloc[0]
    what = f"{MEASURE} drop" if qrels is not None else "1 - top-10 overlap"
    reason = (f"{chosen['precision']}: {what} vs fp32 {chosen['loss']:.4f} <= tolerance {tolerance} on "
              f"{validation['qid'].nunique()} validation queries; cheapest within tolerance of "
              f"{', '.join(candidates)} (runnable on {encoder.device.type})")
    log.info("precision='auto' chose %s", reason)
    return PrecisionChoice(chosen["precision"], reason, table)


def _loss(reference: pd.DataFrame, run: pd.DataFrame, qrels) -> float:
    if qrels is not None:
        return _ndcg10(reference, qrels) - _ndcg10(run, qrels)
    return 1.0 - top10_overlap(reference, run)


def _ndcg10(run: pd.DataFrame, qrels: pd.DataFrame) -> float:
    import ir_measures

    qrels = qrels.rename(columns={"qid": "query_id", "docno": "doc_id", "label": "relevance"})
    qrels = qrels.astype({"query_id": str, "doc_id": str, "relevance": int})
    scored = run.rename(columns={"qid": "query_id", "docno": "doc_id"}).astype({"query_id": str, "doc_id": str})
    return ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, scored)[ir_measures.nDCG @ 10]


def top10_overlap(reference: pd.DataFrame, run: pd.DataFrame) -> float:
    """The mean over queries of the share of ``reference``'s top 10 found in ``run``'s top 10."""
    top_ref = reference[reference["rank"] < 10].groupby("qid")["docno"].apply(list)
    top_run = run[run["rank"] < 10].groupby("qid")["docno"].apply(list)
    return sum(top_overlap(top_ref[q], top_run[q]) for q in top_ref.index) / len(top_ref)
