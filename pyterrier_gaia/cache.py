"""Where gaia keeps what it builds once and reuses between runs (indexes, converted models)."""
import os
from pathlib import Path


def cache_dir() -> Path:
    """$GAIA_CACHE, else $XDG_CACHE_HOME/pyterrier-gaia (``~/.cache/pyterrier-gaia``)."""
    if os.environ.get("GAIA_CACHE"):
        return Path(os.environ["GAIA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pyterrier-gaia"
