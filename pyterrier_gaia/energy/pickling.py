"""Pickling objects that hold a lock (ledgers, RAPL sensors), for process pools and Ray workers."""
import threading


class LockedState:
    """A mixin for classes keeping a ``threading.Lock`` in ``self._lock``: pickled without it, the copy
    gets a fresh one."""

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
