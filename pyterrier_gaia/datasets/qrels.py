"""Judgments, whatever their file layout, into one qid/docno/label frame with the same checks."""
import math
from typing import Dict, Iterable, Tuple

import pandas as pd

from .textfile import MalformedFileError


def qrels_frame(path, judgments: Iterable[Tuple[int, str, str, str]]) -> pd.DataFrame:
    """A qid/docno/label frame from ``(line number, qid, docno, label text)`` tuples.

    Labels are numbers, kept as integers (``2.0`` -> 2); an empty id, a label that is not a finite
    number, a (qid, docno) pair judged twice or no judgment at all raises :class:`MalformedFileError`
    naming the file and line.
    """
    rows, first_line = [], {}   # type: list, Dict[Tuple[str, str], int]
    for line_no, qid, docno, label in judgments:
        if not qid or not docno:
            raise MalformedFileError(path, line_no, f"empty qid or docno ({qid!r}, {docno!r})")
        try:
            value = float(label)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise MalformedFileError(path, line_no, f"label {label!r} is not a finite number")
        if (qid, docno) in first_line:
            raise MalformedFileError(path, line_no, f"qid {qid!r}, docno {docno!r} is judged again "
                                     f"(first at line {first_line[qid, docno]})")
        first_line[qid, docno] = line_no
        rows.append((qid, docno, int(value)))
    if not rows:
        raise MalformedFileError(path, 1, "no judgments: the file is empty or cut short")
    return pd.DataFrame(rows, columns=["qid", "docno", "label"])
