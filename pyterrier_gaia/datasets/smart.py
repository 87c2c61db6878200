"""SMART-format reader (Cranfield, CACM, Medline): records opened by ``.I id``, fields by ``.X``."""
import re
from typing import Dict, Iterator, Tuple

from .textfile import MalformedFileError, numbered_lines

_MARKER = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


def read_smart(path) -> Iterator[Tuple[str, Dict[str, str], int]]:
    """Yield ``(id, {field letter: text}, line number of .I)`` for every record of a SMART file.

    Field text is whitespace-normalised; a field that repeats is joined with a space.
    """
    record_id, fields, current, start = None, {}, None, 0

    def finished():
        return record_id, {k: " ".join(" ".join(v).split()) for k, v in fields.items()}, start

    for line_no, line in numbered_lines(path):
        marker = _MARKER.match(line.rstrip())
        if marker and marker.group(1) == "I":
            if record_id is not None:
                yield finished()
            record_id = (marker.group(2) or "").strip()
            if not record_id:
                raise MalformedFileError(path, line_no, "'.I' without a record id")
            fields, current, start = {}, None, line_no
        elif marker:
            if record_id is None:
                raise MalformedFileError(path, line_no, f"field '.{marker.group(1)}' before the first '.I' record")
            current = marker.group(1)
            fields.setdefault(current, []).append(marker.group(2) or "")
        elif line.strip():
            if current is None:
                raise MalformedFileError(path, line_no, "text outside any '.I'/field marker")
            fields[current].append(line)
    if record_id is not None:
        yield finished()
