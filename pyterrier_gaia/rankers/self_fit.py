"""State a ranker fits by itself on first use (exit heads, a usefulness model), cached on disk and in memory.

A ranker that needs fitted state and was given none fits it from what it is asked to rank, once:
:func:`load_or_fit` reads it from the gaia cache (``cache_dir()/KIND/DIGEST``) when a run already fitted
it under the same key, and otherwise calls ``fit`` inside :func:`~pyterrier_gaia.energy.metered.one_off`,
so that the fit is metered as its own start-up record, then writes it atomically (to a temporary
folder renamed into place: a crash or a concurrent run never leaves half a state to load).
A key says everything the state depends on: the model (:func:`model_key`), the collection
(:func:`collection_key`: a name the user gives, else a fingerprint of the documents the fit read)
and the fitting settings. :class:`SelfFit` adds a per-instance memory, so a ranker reads the disk once.
"""
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional, TypeVar

from ..cache import cache_dir
from ..energy.metered import one_off

State = TypeVar("State")
KEY_FILE = "key.json"


def digest(key: Dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def collection_key(collection: Optional[str], docnos=(), texts=()) -> str:
    """The collection part of a key: the ``collection`` name when given ("vaswani"), else a fingerprint
    of the documents (their docnos and texts, in order) the fit read."""
    if collection is not None:
        return f"name:{collection}"
    sha = hashlib.sha256()
    for docno, text in zip(docnos, texts):
        sha.update(f"{docno}\x1f{text}\x1e".encode())
    return f"documents:{sha.hexdigest()[:16]}"


def load_or_fit(kind: str, key: Dict[str, Any], fit: Callable[[], State], save: Callable[[State, Path], None],
                load: Callable[[Path], State], folder: Optional[Path] = None) -> State:
    """The state of ``kind`` under ``key``: loaded from ``folder/KIND/DIGEST`` if saved there, else
    ``fit()`` (metered as the one-off record "fit KIND") then saved there by ``save(state, path)``.

    ``folder`` defaults to the gaia cache (:func:`pyterrier_gaia.cache.cache_dir`). A saved state
    that cannot be loaded (written by an older version, damaged) is refitted, with a warning. A cache
    that cannot be written only costs the next run a fit: the state is returned all the same.
    """
    state = load_cached(kind, key, load, folder)
    if state is not None:
        return state
    with one_off(f"fit {kind}"):
        state = fit()
    target = _target(kind, key, folder)
    try:
        _save_atomically(state, key, target, save)
    except OSError as error:
        warnings.warn(f"gaia: cannot cache the fitted {kind} at {target} ({error}); it is used in memory, "
                      f"and the next run fits it again", RuntimeWarning, stacklevel=2)
    return state


def load_cached(kind: str, key: Dict[str, Any], load: Callable[[Path], State],
                folder: Optional[Path] = None) -> Optional[State]:
    """The state of ``kind`` under ``key`` if saved in ``folder`` (default: the gaia cache), loaded by
    ``load(path)`` (metered as the one-off record "load KIND"); None if not saved, or (with a warning)
    if it cannot be loaded."""
    target = _target(kind, key, folder)
    if not (target / KEY_FILE).is_file():
        return None
    try:
        with one_off(f"load {kind}"):
            return load(target)
    except Exception as error:  # any reader's failure: the caller fits again and replaces the file
        warnings.warn(f"gaia: cannot load the cached {kind} at {target} ({type(error).__name__}: {error}); "
                      f"fitting it again", RuntimeWarning, stacklevel=3)
        return None


def _target(kind: str, key: Dict[str, Any], folder: Optional[Path]) -> Path:
    return Path(folder or cache_dir()) / kind / digest(key)


def _save_atomically(state, key: Dict[str, Any], target: Path, save) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save(state, staging)
        (staging / KEY_FILE).write_text(json.dumps(key, sort_keys=True, indent=1, default=str))
        if target.exists():             # a stale or damaged state: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / KEY_FILE).is_file():   # not another process winning the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class SelfFit:
    """A ranker instance's self-fitted states of one ``kind``, by key: in memory, then on disk
    (:func:`load_or_fit`), fitted at most once per key and instance."""

    def __init__(self, kind: str, save: Callable[[Any, Path], None], load: Callable[[Path], Any],
                 folder: Optional[Path] = None):
        self.kind, self.save, self.load, self.folder = kind, save, load, folder
        self._states: Dict[str, Any] = {}

    def get(self, key: Dict[str, Any], fit: Callable[[], State]) -> State:
        """The state under ``key``, fitted by ``fit()`` if neither memory nor disk holds it."""
        name = digest(key)
        if name not in self._states:
            self._states[name] = load_or_fit(self.kind, key, fit, self.save, self.load, self.folder)
        return self._states[name]
