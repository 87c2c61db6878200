"""SMART-format reader (Cranfield, CACM, Medline): records opened by ``.I id``, fields by ``.X``."""
import re
from typing import Dict, Iterator, Optional, Tuple

from .textfile import MalformedFileError, UniqueIds, numbered_lines

_MARKER = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


def read_smart(path, fields: str, required: str = "",
               sentinel: Optional[str] = None) -> Iterator[Tuple[str, Dict[str, str], int]]:
    """Yield ``(id, {field letter: text}, line number of .I)`` for every record of a SMART file.

    ``fields`` are the field letters the format has (a marker with another letter is refused);
    every record must hold each letter of ``required``. Field text is whitespace-normalised; a field
    that repeats (as in a few Cranfield records) is joined with a space. Ids must be unique. A file
    cut short is refused when the cut leaves a line without its line break, a record without one
    of its required fields, or an empty field at the very end; a cut between two records or at a
    line break inside the last field's text cannot be told from a complete file, unless the format
    closes its files with a ``sentinel``: an empty last record with that id (CACM's query file
    ends with ``.I 0``), which is then required and not yielded.
    """
    ids = UniqueIds("record id")
    record_id, record, current, start = None, {}, None, 0

    def finished():
        missing = [f for f in required if f not in record]
        if missing:
            raise MalformedFileError(path, start, f"record {record_id} has no "
                                     + ", ".join(f"'.{f}'" for f in missing) + " field")
        return record_id, {k: " ".join(" ".join(v).split()) for k, v in record.items()}, start

    for line_no, line in numbered_lines(path, complete=True):
        marker = _MARKER.match(line.rstrip())
        if marker and marker.group(1) == "I":
            if record_id is not None:
                yield finished()
            record_id = ids.add((marker.group(2) or "").strip(), path, line_no)
            record, current, start = {}, None, line_no
        elif marker:
            if record_id is None:
                raise MalformedFileError(path, line_no, f"field '.{marker.group(1)}' before the first '.I' record")
            current = marker.group(1)
            if current not in fields:
                raise MalformedFileError(path, line_no, f"unknown field '.{current}' (this format has "
                                         + " ".join(f".{f}" for f in "I" + fields) + ")")
            record.setdefault(current, []).append(marker.group(2) or "")
        elif line.strip():
            if current is None:
                raise MalformedFileError(path, line_no, "text outside any '.I'/field marker")
            record[current].append(line)
    if record_id is None:
        raise MalformedFileError(path, 1, "no '.I' records: the file is empty or cut short")
    if sentinel is not None:
        if record_id != sentinel or record:
            raise MalformedFileError(path, line_no, f"the file does not end with its '.I {sentinel}' sentinel"
                                     " record: it looks cut short")
        return
    if current is not None and not "".join(record[current]).strip():
        raise MalformedFileError(path, line_no, f"the file ends with an empty '.{current}' field: it looks cut short")
    yield finished()
