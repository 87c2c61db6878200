"""BEIR-format readers: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""
import json
from typing import Iterator, Tuple

import pandas as pd

from .qrels import qrels_frame
from .textfile import MalformedFileError, UniqueIds, numbered_lines


def _json_lines(path, ids: UniqueIds, text_fields) -> Iterator[Tuple[str, dict, int]]:
    """Yield ``(id, record, line number)`` for each JSON object line; the id is unique, the text fields strings."""
    for line_no, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise MalformedFileError(path, line_no, f"not valid JSON ({error.msg})") from None
        except RecursionError:
            raise MalformedFileError(path, line_no, "JSON nested too deeply") from None
        if not isinstance(record, dict) or "_id" not in record:
            raise MalformedFileError(path, line_no, "expected a JSON object with an '_id' field")
        record_id = record["_id"]
        if isinstance(record_id, int) and not isinstance(record_id, bool):
            record_id = str(record_id)
        for field in text_fields:
            if not isinstance(record.get(field) or "", str):
                raise MalformedFileError(path, line_no, f"field {field!r} is {record[field]!r}, not text")
        yield ids.add(record_id, path, line_no), record, line_no
    if not ids:
        raise MalformedFileError(path, 1, "no JSON records: the file is empty or cut short")


def read_beir_corpus(path) -> Iterator[dict]:
    """Yield ``{"docno", "text"}``, the text being the title (if any) followed by the body.
    Docnos (``_id``, a string or an integer) must be non-empty and unique."""
    for docno, record, _ in _json_lines(path, UniqueIds("docno"), ("title", "text")):
        yield {"docno": docno, "text": " ".join(part for part in (record.get("title"), record.get("text")) if part)}


def read_beir_queries(path) -> pd.DataFrame:
    """A qid/query frame; qids must be non-empty and unique, and every query must have text."""
    rows = []
    for qid, record, line_no in _json_lines(path, UniqueIds("qid"), ("text",)):
        if not (record.get("text") or "").strip():
            raise MalformedFileError(path, line_no, f"query {qid!r} has no text")
        rows.append((qid, record["text"]))
    return pd.DataFrame(rows, columns=["qid", "query"])


def read_beir_qrels(path) -> pd.DataFrame:
    """A qid/docno/label frame from ``query-id<TAB>corpus-id<TAB>score`` lines (header optional)."""
    return qrels_frame(path, _beir_judgments(path))


def _beir_judgments(path):
    for line_no, line in numbered_lines(path):
        parts = line.split("\t")
        if (line_no == 1 and parts[0] == "query-id") or not line.strip():
            continue
        if len(parts) != 3:
            raise MalformedFileError(path, line_no, f"expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        yield line_no, parts[0], parts[1], parts[2]
