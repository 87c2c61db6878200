"""Builders that turn a folder in a known layout into a :class:`Collection`.

Each builder takes the folder and knows its file names (as distributed, and as laid out
in this project's shared data); the embedded Vaswani needs no folder.
"""
from importlib import resources
from pathlib import Path

import pandas as pd

from .beir import read_beir_corpus, read_beir_qrels, read_beir_queries
from .collection import Collection
from .qrels import qrels_frame
from .smart import read_smart
from .textfile import MalformedFileError, UniqueIds, numbered_lines, require_file
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


def _trec_corpus(doc_files):
    docnos = UniqueIds("docno")      # unique across all the files of the collection
    for path in doc_files:
        yield from read_trec_docs(path, docnos)


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
        corpus=lambda: _trec_corpus(doc_files),
        topics=lambda: read_trec_topics(topic_files[0]),
        qrels=lambda: read_trec_qrels(qrels_files[0]),
        provenance=_provenance(folder))


def _smart_docs(path, text_fields: str, fields: str, required: str):
    """``{"docno", "text"}`` from a SMART file, the text being ``text_fields`` joined (if present)."""
    for docno, record, _ in read_smart(path, fields, required):
        yield {"docno": docno, "text": " ".join(record[f] for f in text_fields if record.get(f))}


def _smart_topics(path, fields: str, qid_by_position: bool = False, sentinel=None) -> pd.DataFrame:
    """Topics from the ``.W`` field; qids are the positions or the ``.I`` numbers without leading zeros."""
    rows, qids = [], UniqueIds("qid")
    for position, (number, record, line_no) in enumerate(read_smart(path, fields, "W", sentinel), start=1):
        if not record["W"]:
            raise MalformedFileError(path, line_no, f"query {number} has no '.W' text")
        if not qid_by_position and not (number.isascii() and number.isdigit()):
            raise MalformedFileError(path, line_no, f"query id {number!r} is not a number")
        rows.append((qids.add(str(position) if qid_by_position else str(int(number)), path, line_no), record["W"]))
    return pd.DataFrame(rows, columns=["qid", "query"])


def _whitespace_qrels(path, qid_col, docno_col, label_col=None) -> pd.DataFrame:
    """Qrels given as whitespace-separated numeric columns; with no label column every pair is relevant (1)."""
    return qrels_frame(path, _whitespace_judgments(path, qid_col, docno_col, label_col))


def _whitespace_judgments(path, qid_col, docno_col, label_col):
    needed = max(c for c in (qid_col, docno_col, label_col) if c is not None) + 1
    for line_no, line in numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < needed:
            raise MalformedFileError(path, line_no, f"expected at least {needed} columns, got {line!r}")
        try:
            qid, docno = str(int(parts[qid_col])), str(int(parts[docno_col]))
        except ValueError:
            raise MalformedFileError(path, line_no, f"expected numeric ids, got {line!r}") from None
        yield line_no, qid, docno, "1" if label_col is None else parts[label_col]


def cranfield(folder) -> Collection:
    """Cranfield 1400. Queries are numbered by position (001..365 in the file are not the qrels' ids);
    labels are kept as distributed: 1..4 (4 = a complete answer) and -1 (of no interest)."""
    folder = Path(folder)
    docs, queries, qrels = (require_file(folder, n, "cranfield") for n in ("cran.all.1400", "cran.qry", "cranqrel"))
    return Collection("cranfield", corpus=lambda: _smart_docs(docs, "W", fields="TABW", required="TABW"),
                      topics=lambda: _smart_topics(queries, "W", qid_by_position=True),
                      qrels=lambda: _whitespace_qrels(qrels, 0, 1, 2), provenance=_provenance(folder))


def cacm(folder) -> Collection:
    """CACM: title and abstract as text; qrels list relevant pairs only (label 1)."""
    folder = Path(folder)
    docs, queries, qrels = (require_file(folder, n, "cacm") for n in ("cacm.all", "query.text", "qrels.text"))
    return Collection("cacm", corpus=lambda: _smart_docs(docs, "TW", fields="TWBAKCNX", required="TBNX"),
                      topics=lambda: _smart_topics(queries, "WAN", sentinel="0"),
                      qrels=lambda: _whitespace_qrels(qrels, 0, 1), provenance=_provenance(folder))


def medline(folder) -> Collection:
    """MEDLINE (MED): abstracts, 30 queries, judgments from MED.REL (the 2000 version, in TREC qrels layout)."""
    folder = Path(folder)
    docs, queries, qrels = (require_file(folder, n, "medline") for n in ("MED.ALL", "MED.QRY", "MED.REL"))
    return Collection("medline", corpus=lambda: _smart_docs(docs, "W", fields="W", required="W"),
                      topics=lambda: _smart_topics(queries, "W"),
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
