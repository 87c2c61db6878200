"""Builders that turn a folder in a known layout into a :class:`Collection`.

Each builder takes the folder and knows its file names (as distributed, and as laid out
in this project's shared data); the embedded Vaswani needs no folder.
"""
from importlib import resources
from pathlib import Path

import pandas as pd

from .beir import read_beir_corpus, read_beir_qrels, read_beir_queries
from .collection import Collection
from .smart import read_smart
from .textfile import MalformedFileError, numbered_lines, require_file
from .trec import read_trec_docs, read_trec_qrels, read_trec_topics


def _provenance(folder: Path) -> str:
    path = folder / "PROVENANCE.txt"
    return path.read_text(errors="replace") if path.is_file() else ""


def vaswani() -> Collection:
    """The Vaswani (NPL) collection shipped inside this package: 11,429 docs, 93 topics."""
    data = resources.files("pyterrier_gaia.datasets") / "data"
    return Collection(
        "vaswani",
        corpus=lambda: read_trec_docs(data / "vaswani-docs.trec.gz"),
        topics=lambda: read_trec_topics(data / "vaswani-topics.trec.gz"),
        qrels=lambda: read_trec_qrels(data / "vaswani-qrels.gz"),
        provenance=(data / "vaswani-PROVENANCE.txt").read_text())


def trec(folder) -> Collection:
    """A TREC-format folder: documents in ``corpus/`` (``*.trec``, ``*.gz``), a topics file and a qrels file."""
    folder = Path(folder)
    doc_files = sorted(p for p in (folder / "corpus").glob("*") if p.is_file())
    if not doc_files:
        raise FileNotFoundError(f"trec collection at {folder}: expected document files in {folder / 'corpus'}")
    topic_files = sorted(p for p in folder.iterdir() if "quer" in p.name.lower() or "topic" in p.name.lower())
    if not topic_files:
        raise FileNotFoundError(f"trec collection at {folder}: expected a topics file named like 'query*' or 'topics*'")
    qrels_files = sorted(p for p in folder.iterdir() if p.name.lower().startswith("qrels"))
    if not qrels_files:
        raise FileNotFoundError(f"trec collection at {folder}: expected a qrels file named 'qrels*'")
    return Collection(
        folder.name,
        corpus=lambda: (doc for path in doc_files for doc in read_trec_docs(path)),
        topics=lambda: read_trec_topics(topic_files[0]),
        qrels=lambda: read_trec_qrels(qrels_files[0]),
        provenance=_provenance(folder))


def _smart_docs(path, fields):
    for docno, record, _ in read_smart(path):
        yield {"docno": docno, "text": " ".join(record[f] for f in fields if record.get(f))}


def _smart_topics(path, qid_by_position=False):
    rows = []
    for position, (qid, record, line_no) in enumerate(read_smart(path), start=1):
        text = record.get("W", "")
        if not text:
            if qid == "0":      # CACM's query file closes with an empty '.I 0' sentinel record
                continue
            raise MalformedFileError(path, line_no, f"query {qid} has no '.W' text")
        rows.append((str(position) if qid_by_position else str(int(qid)), text))
    return pd.DataFrame(rows, columns=["qid", "query"])


def _whitespace_qrels(path, qid_col, docno_col, label_col=None):
    """Qrels given as whitespace-separated columns; with no label column every pair is relevant (1)."""
    rows = []
    needed = max(c for c in (qid_col, docno_col, label_col) if c is not None) + 1
    for line_no, line in numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < needed:
            raise MalformedFileError(path, line_no, f"expected at least {needed} columns, got {line!r}")
        try:
            label = 1 if label_col is None else int(float(parts[label_col]))
            rows.append((str(int(parts[qid_col])), str(int(parts[docno_col])), label))
        except ValueError:
            raise MalformedFileError(path, line_no, f"expected numbers, got {line!r}") from None
    return pd.DataFrame(rows, columns=["qid", "docno", "label"])


def cranfield(folder) -> Collection:
    """Cranfield 1400. Queries are numbered by position (001..365 in the file are not the qrels' ids);
    labels are kept as distributed: 1..4 (4 = a complete answer) and -1 (of no interest)."""
    folder = Path(folder)
    docs, queries, qrels = (require_file(folder, n, "cranfield") for n in ("cran.all.1400", "cran.qry", "cranqrel"))
    return Collection("cranfield", corpus=lambda: _smart_docs(docs, "W"),
                      topics=lambda: _smart_topics(queries, qid_by_position=True),
                      qrels=lambda: _whitespace_qrels(qrels, 0, 1, 2), provenance=_provenance(folder))


def cacm(folder) -> Collection:
    """CACM: title and abstract as text; qrels list relevant pairs only (label 1)."""
    folder = Path(folder)
    docs, queries, qrels = (require_file(folder, n, "cacm") for n in ("cacm.all", "query.text", "qrels.text"))
    return Collection("cacm", corpus=lambda: _smart_docs(docs, "TW"), topics=lambda: _smart_topics(queries),
                      qrels=lambda: _whitespace_qrels(qrels, 0, 1), provenance=_provenance(folder))


def medline(folder) -> Collection:
    """MEDLINE (MED): abstracts, 30 queries, judgments from MED.REL (the 2000 version, in TREC qrels layout)."""
    folder = Path(folder)
    docs, queries, qrels = (require_file(folder, n, "medline") for n in ("MED.ALL", "MED.QRY", "MED.REL"))
    return Collection("medline", corpus=lambda: _smart_docs(docs, "W"), topics=lambda: _smart_topics(queries),
                      qrels=lambda: read_trec_qrels(qrels), provenance=_provenance(folder))


def beir(folder, split: str = "test") -> Collection:
    """A BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` (topics: the judged queries)."""
    folder = Path(folder)
    corpus = require_file(folder, "corpus.jsonl", "beir")
    queries = require_file(folder, "queries.jsonl", "beir")
    qrels = require_file(folder, f"qrels/{split}.tsv", "beir")

    def topics():
        judged = set(read_beir_qrels(qrels)["qid"])
        frame = read_beir_queries(queries)
        return frame[frame["qid"].isin(judged)].reset_index(drop=True)

    return Collection(folder.name, corpus=lambda: read_beir_corpus(corpus), topics=topics,
                      qrels=lambda: read_beir_qrels(qrels), provenance=_provenance(folder))
