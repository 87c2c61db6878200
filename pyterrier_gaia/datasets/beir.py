"""BEIR-format readers: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""
import json
from typing import Iterator

import pandas as pd

from .textfile import MalformedFileError, numbered_lines


def _json_lines(path) -> Iterator[dict]:
    for line_no, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise MalformedFileError(path, line_no, f"not valid JSON ({error.msg})") from None
        if "_id" not in record:
            raise MalformedFileError(path, line_no, "record has no '_id' field")
        yield record


def read_beir_corpus(path) -> Iterator[dict]:
    """Yield ``{"docno", "text"}``, the text being the title (if any) followed by the body."""
    for record in _json_lines(path):
        text = " ".join(part for part in (record.get("title"), record.get("text")) if part)
        yield {"docno": str(record["_id"]), "text": text}


def read_beir_queries(path) -> pd.DataFrame:
    return pd.DataFrame([(str(r["_id"]), r.get("text", "")) for r in _json_lines(path)], columns=["qid", "query"])


def read_beir_qrels(path) -> pd.DataFrame:
    rows = []
    for line_no, line in numbered_lines(path):
        parts = line.split("\t")
        if line_no == 1 and parts[0] == "query-id":
            continue
        if not line.strip():
            continue
        if len(parts) != 3:
            raise MalformedFileError(path, line_no, f"expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        try:
            rows.append((parts[0], parts[1], int(float(parts[2]))))
        except ValueError:
            raise MalformedFileError(path, line_no, f"score {parts[2]!r} is not a number") from None
    return pd.DataFrame(rows, columns=["qid", "docno", "label"])
