"""Operation counts: what a stage did, in units that do not depend on the hardware.

Stages call :func:`report` as they work (``report(postings=1200, docs_scored=1000)``);
whoever wants the counts opens a :class:`counting` scope around the work and reads
``scope.counts`` afterwards. Scopes nest: when an inner scope closes, its counts are
added to the enclosing one, so a meter around a whole pipeline sees the counts of
every stage inside it. With no scope open, :func:`report` costs one context-variable
lookup and does nothing.

This module is a leaf (standard library only): retrieval, encoders and rankers report
into it without knowing who listens (the energy meter and the cost model do).

Count names in use:

- ``postings``, ``docs_scored``: BM25 (postings of the query terms; documents returned)
- ``tokens``, ``layer_tokens``, ``flops``, ``weight_bytes``, ``forward_passes``: encoders
- ``pairs``: (query, candidate) pairs re-ranked
- ``vector_bytes``: stored document vectors (or their quantized codes) read, in bytes; with
  ``docs_scored`` (each stored vector scored against each query), VectorIndex's dense retrieval
- ``langevin_steps``: the diffusion re-ranker
"""
from collections import Counter
from contextvars import ContextVar

_scope: ContextVar = ContextVar("pyterrier_gaia_counts", default=None)


def report(**counts) -> None:
    """Add operation counts to the innermost open :class:`counting` scope, if any."""
    current = _scope.get()
    if current is not None:
        for name, value in counts.items():
            current[name] += value


class counting:
    """A context manager that collects the counts reported inside it.

    >>> with counting() as scope:
    ...     report(pairs=3)
    >>> scope.counts["pairs"]
    3

    A ``detached`` scope keeps its counts to itself (one-off work inside a metered call).
    """

    def __init__(self, detached: bool = False):
        self.counts = Counter()
        self.detached = detached
        self._token = None

    def __enter__(self) -> "counting":
        self._token = _scope.set(self.counts)
        return self

    def __exit__(self, *exc) -> None:
        _scope.reset(self._token)
        outer = _scope.get()
        if outer is not None and not self.detached:
            outer.update(self.counts)
