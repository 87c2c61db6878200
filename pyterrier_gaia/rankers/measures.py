"""How rankers compare rankings: top-k overlap, and nDCG@k through ir_measures (trec_eval's). R² is
scikit-learn's ``r2_score`` wherever it is reported."""
import numpy as np
import pandas as pd


def top_overlap(top, reference) -> float:
    """|top ∩ reference| / |top|: the share of ``top`` (ids, order ignored) found in ``reference``."""
    return len(np.intersect1d(top, reference)) / len(top)


def ndcg(rankings, qrels: pd.DataFrame, k: int) -> np.ndarray:
    """nDCG@k of each ranking of ``rankings`` (a list of ``(qid, docnos best first)``; several may
    rank the same query) against ``qrels`` (qid, docno, label; negative labels count as 0): trec_eval's
    measure through ir_measures, with linear gains; 0 for a query without relevant documents."""
    import ir_measures

    names = [str(i) for i in range(len(rankings))]
    run = pd.DataFrame([(name, str(docno), -float(position)) for name, (_, docnos) in zip(names, rankings)
                        for position, docno in enumerate(docnos)], columns=["query_id", "doc_id", "score"])
    ranked = pd.DataFrame({"query_id": names, "qid": [str(qid) for qid, _ in rankings]})
    judged = ranked.merge(qrels.astype({"qid": str, "docno": str}), on="qid")
    judged = pd.DataFrame({"query_id": judged["query_id"], "doc_id": judged["docno"],
                           "relevance": judged["label"].clip(lower=0).astype(int)})
    values = {m.query_id: m.value for m in (ir_measures.nDCG @ k).iter_calc(judged, run)}
    return np.array([values.get(name, 0.0) for name in names], dtype=float)
