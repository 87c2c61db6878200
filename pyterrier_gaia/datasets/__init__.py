"""Test collections: the embedded Vaswani and readers for TREC, SMART and BEIR folders.

>>> ds = gaia.datasets.get("vaswani")               # shipped inside the package
>>> ds = gaia.datasets.get("cranfield:/data/cran")  # FORMAT:FOLDER
"""
from . import formats
from .collection import Collection
from .textfile import MalformedFileError

EMBEDDED = {"vaswani": formats.vaswani}
FORMATS = {"trec": formats.trec, "cranfield": formats.cranfield, "cacm": formats.cacm,
           "medline": formats.medline, "beir": formats.beir}


def get(spec: str, **options) -> Collection:
    """A collection by name (``"vaswani"``) or as ``"FORMAT:FOLDER"`` with FORMAT one of
    ``trec``, ``cranfield``, ``cacm``, ``medline``, ``beir`` (``split="test"`` for BEIR)."""
    name, sep, folder = str(spec).partition(":")
    if not sep and name in EMBEDDED:
        return EMBEDDED[name](**options)
    if sep and name in FORMATS:
        if not folder:
            raise ValueError(f"dataset spec {spec!r}: give the folder after '{name}:'")
        return FORMATS[name](folder, **options)
    known = ", ".join([*EMBEDDED, *(f"{f}:PATH" for f in FORMATS)])
    raise ValueError(f"unknown dataset {spec!r}; known: {known}")


__all__ = ["get", "Collection", "MalformedFileError", "EMBEDDED", "FORMATS"]
