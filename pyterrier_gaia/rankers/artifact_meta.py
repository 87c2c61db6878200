"""What a saved ranker's ``pt_meta.json`` (PyTerrier's Artifact metadata) says beside its type and
format: the package that reads it, and the encoder it was fitted with, so that ``pt.Artifact.load``
can build that encoder again (:mod:`pyterrier_gaia.artifacts`)."""
import json
from pathlib import Path
from typing import Optional

PACKAGE = "pyterrier-gaia"


def write_meta(folder: Path, type_: str, format_: str, encoder, /, **more) -> None:
    """Write ``folder/pt_meta.json``: type, format, package hint, the encoder's kind, model and precision,
    and ``more``."""
    meta = {"type": type_, "format": format_, "package_hint": PACKAGE,
            "encoder_spec": {"kind": encoder.kind, "model": str(encoder.model_name),
                             "precision": getattr(encoder, "precision", "fp32")}, **more}
    (Path(folder) / "pt_meta.json").write_text(json.dumps(meta, indent=1))


def read_meta(folder: Path) -> dict:
    """``folder/pt_meta.json`` as a dict (OSError or ValueError when missing or unreadable)."""
    return json.loads((Path(folder) / "pt_meta.json").read_text())


def saved_encoder(folder: Path) -> Optional[dict]:
    """The encoder spec (kind, model, precision) a saved ranker records, or None."""
    try:
        return read_meta(folder).get("encoder_spec")
    except (OSError, ValueError):
        return None
