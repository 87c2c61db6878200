"""TREC-format readers: SGML-style documents and topics, and four-column qrels."""
import re
from typing import Iterator

import pandas as pd

from .textfile import MalformedFileError, numbered_lines

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", _TAG.sub(" ", text)).strip()


def read_trec_docs(path) -> Iterator[dict]:
    """Yield ``{"docno", "text"}`` from ``<DOC><DOCNO>id</DOCNO> text </DOC>`` records."""
    docno, body, start = None, [], 0
    for line_no, line in numbered_lines(path):
        stripped = line.strip()
        if stripped.upper() == "<DOC>":
            if docno is not None or body:
                raise MalformedFileError(path, line_no, f"<DOC> opened inside the record started at line {start}")
            docno, body, start = None, [], line_no
            continue
        if stripped.upper() == "</DOC>":
            if docno is None:
                raise MalformedFileError(path, line_no, f"record started at line {start} has no <DOCNO>")
            yield {"docno": docno, "text": _clean(" ".join(body))}
            docno, body = None, []
            continue
        match = re.search(r"<DOCNO>\s*(.*?)\s*</DOCNO>", line, re.IGNORECASE)
        if match:
            docno = match.group(1)
            line = line[:match.start()] + line[match.end():]
        body.append(line)
    if docno is not None:
        raise MalformedFileError(path, start, "record is not closed by </DOC>")


def read_trec_topics(path, field: str = "title") -> pd.DataFrame:
    """Read ``<top><num>..</num><title>..</title></top>`` topics into a qid/query frame."""
    text = "\n".join(line for _, line in numbered_lines(path))
    rows = []
    for match in re.finditer(r"<top>(.*?)</top>", text, re.IGNORECASE | re.DOTALL):
        topic = match.group(1)
        num = re.search(r"<num>\s*(?:Number:)?\s*([^<\s]+)", topic, re.IGNORECASE)
        body = re.search(rf"<{field}>(.*?)(?=<[a-z/]|$)", topic, re.IGNORECASE | re.DOTALL)
        if not num or not body:
            line_no = text.count("\n", 0, match.start()) + 1
            raise MalformedFileError(path, line_no, f"topic without <num> or <{field}>")
        rows.append((num.group(1), _clean(body.group(1))))
    if not rows:
        raise MalformedFileError(path, 1, "no <top> topics found")
    return pd.DataFrame(rows, columns=["qid", "query"])


def read_trec_qrels(path) -> pd.DataFrame:
    """Read ``qid iteration docno label`` lines into a qid/docno/label frame."""
    rows = []
    for line_no, line in numbered_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise MalformedFileError(path, line_no, f"expected 'qid iteration docno label', got {line!r}")
        try:
            label = int(float(parts[3]))
        except ValueError:
            raise MalformedFileError(path, line_no, f"label {parts[3]!r} is not a number") from None
        rows.append((parts[0], parts[2], label))
    return pd.DataFrame(rows, columns=["qid", "docno", "label"])
