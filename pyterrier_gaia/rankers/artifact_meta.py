"""What a saved ranker's ``pt_meta.json`` (PyTerrier's Artifact metadata) says beside its type and
format: the package and version that wrote it, and the encoder it was fitted with, so that
``pt.Artifact.load`` can build that encoder again (:mod:`pyterrier_gaia.artifacts`); and the one check
every ranker's ``load`` makes of it."""
import json
from pathlib import Path
from typing import Optional

from .. import __version__

PACKAGE = "pyterrier-gaia"
#: the artifact type of every saved gaia ranker (PyTerrier's Artifact ``type``)
RERANKER = "reranker"


def write_meta(folder: Path, format_: str, encoder, /, **more) -> None:
    """Write ``folder/pt_meta.json``: type, format, package hint and version, the encoder's kind, model and
    precision, and ``more``."""
    meta = {"type": RERANKER, "format": format_, "package_hint": PACKAGE, "package_version": __version__,
            "encoder_spec": {"kind": encoder.kind, "model": str(encoder.model_name),
                             "precision": getattr(encoder, "precision", "fp32")}, **more}
    (Path(folder) / "pt_meta.json").write_text(json.dumps(meta, indent=1))


def checked_meta(folder: Path, format_: str, ranker: str) -> dict:
    """``folder/pt_meta.json`` of a ``ranker`` (a class name) saved in ``format_`` by this package version.

    Raises FileNotFoundError when it is missing or unreadable, ValueError when it is another artifact or
    was saved by another version; each says what to do.
    """
    where = f"{ranker}.load"
    try:
        meta = read_meta(folder)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"{where}: {folder} is not a saved {ranker} (no readable pt_meta.json: {error}); "
                                f"save one with ranker.save(path)") from None
    if (meta.get("type"), meta.get("format")) != (RERANKER, format_):
        raise ValueError(f"{where}: {folder} holds a {meta.get('type')!r} artifact of format {meta.get('format')!r}, "
                         f"not {ranker}'s ({format_!r})")
    if meta.get("package_version") != __version__:
        raise ValueError(f"{where}: {folder} was saved by pyterrier-gaia {meta.get('package_version')}, and this "
                         f"is {__version__}; what it fitted may not mean the same here. Let a new {ranker} fit "
                         f"itself (or .fit it) and save it again")
    return meta


def read_meta(folder: Path) -> dict:
    """``folder/pt_meta.json`` as a dict (OSError or ValueError when missing or unreadable)."""
    return json.loads((Path(folder) / "pt_meta.json").read_text())


def saved_encoder(folder: Path) -> Optional[dict]:
    """The encoder spec (kind, model, precision) a saved ranker records, or None."""
    try:
        return read_meta(folder).get("encoder_spec")
    except (OSError, ValueError):
        return None
