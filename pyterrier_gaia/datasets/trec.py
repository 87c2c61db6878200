"""TREC-format readers: SGML-style documents and topics, and four-column qrels."""
import bisect
import re
from typing import Iterator, Optional

import pandas as pd

from .qrels import qrels_frame
from .textfile import MalformedFileError, UniqueIds, numbered_lines

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_DOCNO = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.IGNORECASE)


def _clean(text: str) -> str:
    return _SPACE.sub(" ", _TAG.sub(" ", text)).strip()


def read_trec_docs(path, docnos: Optional[UniqueIds] = None) -> Iterator[dict]:
    """Yield ``{"docno", "text"}`` from ``<DOC><DOCNO>id</DOCNO> text </DOC>`` records.

    Each record needs one non-empty ``<DOCNO>``, unique in the collection (pass the same ``docnos``
    to the readers of a collection's files). Text outside records, a record opened inside another
    and a last record left open (a file cut short) are refused, naming the file and line.
    """
    docnos = docnos if docnos is not None else UniqueIds("docno")
    start, docno, body, records = None, None, [], 0
    for line_no, line in numbered_lines(path):
        tag = line.strip().upper()
        if tag == "<DOC>":
            if start is not None:
                raise MalformedFileError(path, line_no, f"<DOC> opened inside the record started at line {start}")
            start, docno, body = line_no, None, []
        elif tag == "</DOC>":
            if start is None:
                raise MalformedFileError(path, line_no, "</DOC> closes no open <DOC> record")
            if docno is None:
                raise MalformedFileError(path, line_no, f"record started at line {start} has no <DOCNO>")
            yield {"docno": docno, "text": _clean(" ".join(body))}
            start, records = None, records + 1
        elif start is None:
            if tag:
                raise MalformedFileError(path, line_no, "text outside any <DOC> record")
        else:
            for match in _DOCNO.finditer(line):
                if docno is not None:
                    raise MalformedFileError(path, line_no, f"a second <DOCNO> in the record started at line {start}")
                docno = docnos.add(match.group(1), path, line_no)
            body.append(_DOCNO.sub("", line))
    if start is not None:
        raise MalformedFileError(path, start, "record is not closed by </DOC>: the file looks cut short")
    if not records:
        raise MalformedFileError(path, 1, "no <DOC> records: the file is empty or cut short")


def read_trec_topics(path, field: str = "title") -> pd.DataFrame:
    """Read ``<top><num>..</num><title>..</title></top>`` topics into a qid/query frame.

    A topic left open (a file cut short), text outside topics, a topic without ``<num>`` or with an
    empty ``<title>`` and a repeated qid are refused, naming the file and line.
    """
    text = "\n".join(line for _, line in numbered_lines(path))
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_at(offset: int) -> int:
        return bisect.bisect_right(line_starts, offset)

    rows, qids, opened, outside_from = [], UniqueIds("qid"), None, 0
    for tag in re.finditer(r"<(/?)top>", text, re.IGNORECASE):
        if text[outside_from:tag.start()].strip() and opened is None:
            raise MalformedFileError(path, line_at(outside_from), "text outside any <top> topic")
        if not tag.group(1):
            if opened is not None:
                raise MalformedFileError(path, line_at(tag.start()),
                                         f"<top> opened inside the topic started at line {line_at(opened.start())}")
            opened = tag
            continue
        if opened is None:
            raise MalformedFileError(path, line_at(tag.start()), "</top> closes no open <top> topic")
        line_no = line_at(opened.start())
        topic = text[opened.end():tag.start()]
        num = re.search(r"<num>\s*(?:Number:)?\s*([^<\s]+)", topic, re.IGNORECASE)
        body = re.search(rf"<{field}>(.*?)(?=<[a-z/]|$)", topic, re.IGNORECASE | re.DOTALL)
        if not num or not body:
            raise MalformedFileError(path, line_no, f"topic without <num> or <{field}>")
        query = _clean(body.group(1))
        if not query:
            raise MalformedFileError(path, line_no, f"topic {num.group(1)} has an empty <{field}>")
        rows.append((qids.add(num.group(1), path, line_no), query))
        opened, outside_from = None, tag.end()
    if opened is not None:
        raise MalformedFileError(path, line_at(opened.start()), "topic is not closed by </top>: the file looks cut short")
    if text[outside_from:].strip():
        raise MalformedFileError(path, line_at(outside_from), "text outside any <top> topic")
    if not rows:
        raise MalformedFileError(path, 1, "no <top> topics: the file is empty or cut short")
    return pd.DataFrame(rows, columns=["qid", "query"])


def read_trec_qrels(path) -> pd.DataFrame:
    """Read ``qid iteration docno label`` lines into a qid/docno/label frame."""
    return qrels_frame(path, _trec_judgments(path))


def _trec_judgments(path):
    for line_no, line in numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise MalformedFileError(path, line_no, f"expected 'qid iteration docno label', got {line!r}")
        yield line_no, parts[0], parts[2], parts[3]
