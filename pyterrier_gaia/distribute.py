"""``gaia.parallel``: any pipeline run on Ray workers, with the sequential run's results and one ledger.

The queries are split into batches by qid. Each worker (a Ray actor) unpickles its own copy of the
pipeline once, so a Lucene index is reopened and a model loaded once per worker, then runs batch after
batch. The stages of a metered pipeline meter the worker's own process: each record returns with its
batch's result, tagged with the keys ``host``, ``pid`` and ``batch``, and the driver appends it to the
ledger the stage had in the driver (ledgers are never shipped: a worker's stages write to fresh
in-memory ledgers). Ray retries a batch whose worker died, on the restarted worker; the driver keeps
the first delivery of each batch, so every record is in the ledger once (at-least-once delivery,
deduplicated by batch). See docs/parallel.md.

(The module is not named ``parallel``: importing it would then replace the function ``gaia.parallel``
with the module of that name.)
"""
import io
import json
import math
import os
import pickle
import socket
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import pandas as pd
import pyterrier as pt

from .checks import positive_integer
from .energy.ledger import Ledger, json_line
from .energy.metered import Metered, default_name, parts

#: how to install what ``engine="ray"`` needs
RAY_EXTRA = "pip install 'pyterrier-gaia[ray]'"


def parallel(pipeline: pt.Transformer, workers: int = 2, engine: str = "ray", batch_size: Optional[int] = None,
             attempts: int = 3, verbose: bool = False, threads_per_worker: Optional[int] = None) -> "Parallel":
    """``pipeline`` as a transformer run on ``workers`` Ray workers: same results, in the same order.

    >>> pipe = gaia.meter(bm25 % 100 >> rr, ledger="run.jsonl")
    >>> par = gaia.parallel(pipe, workers=4)
    >>> par(topics); pipe.ledger.summary(by=("host", "method"))

    :param pipeline: any ``pt.Transformer`` that pickles (metered or not)
    :param workers: the number of Ray actors, each holding a copy of the pipeline
    :param engine: ``"ray"`` (the only engine); a Ray cluster is started on this machine unless
        ``ray.init`` was called first (e.g. ``ray.init(address="auto")`` to join a cluster)
    :param batch_size: queries (qids) per batch; default: the queries spread over 4 batches per worker
    :param attempts: how many times a batch is tried when its worker dies (Ray restarts the worker)
    :param verbose: a progress bar over batches
    :param threads_per_worker: the threads torch, BLAS and ONNX Runtime may use in each worker (its
        ``OMP_NUM_THREADS``); default: the cluster's CPUs shared out between the workers, at most one
        node's, at least one. (Ray alone would give every worker one thread. No CPUs are reserved: several
        parallel stages may hold workers at once, as gaia.Experiment's systems do.)

    The stage returned (a :class:`Parallel`) also has ``warmup(inp)``, running ``inp`` once on every
    worker as start-up, and ``close()``, stopping the workers (see docs/parallel.md).
    """
    return Parallel(pipeline, workers, engine, batch_size, attempts, verbose, threads_per_worker)


class Parallel(pt.Transformer):
    """A pipeline run on Ray workers (built by :func:`parallel`, which documents the arguments)."""

    def __init__(self, pipeline: pt.Transformer, workers: int = 2, engine: str = "ray",
                 batch_size: Optional[int] = None, attempts: int = 3, verbose: bool = False,
                 threads_per_worker: Optional[int] = None):
        if not isinstance(pipeline, pt.Transformer):
            raise TypeError(f"gaia.parallel: expected a pt.Transformer pipeline, got {type(pipeline).__name__}")
        if engine != "ray":
            raise ValueError(f"gaia.parallel: engine={engine!r}; expected 'ray'")
        self.pipeline = pipeline
        self.workers = positive_integer("gaia.parallel", "workers", workers)
        self.batch_size = None if batch_size is None else positive_integer("gaia.parallel", "batch_size", batch_size)
        self.attempts = positive_integer("gaia.parallel", "attempts", attempts)
        self.verbose = verbose
        self.threads_per_worker = (None if threads_per_worker is None
                                   else positive_integer("gaia.parallel", "threads_per_worker", threads_per_worker))
        self._ray = import_ray()
        self._payload, self._ledgers = ship(pipeline)
        self._actors: list = []
        self._shipped = None   # the payload in Ray's object store, while the workers run
        self._batches = 0   # batch numbers go on across calls: (host, pid, batch) names one delivery

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        if "qid" not in inp.columns:
            raise ValueError(f"gaia.parallel: the input has no 'qid' column (columns: {list(inp.columns)}); "
                             f"queries are split into batches by qid")
        batches = self._split(inp)
        results = self._run(batches)
        return pd.concat([results[number] for number in sorted(results)], ignore_index=True)

    def warmup(self, inp: pd.DataFrame) -> None:
        """Run ``inp`` (e.g. one topic) once on every worker, its records marked ``startup`` and named
        "STAGE / start-up": the workers' one-off start-up (a JVM, a searcher opened...) falls on no batch."""
        numbers = range(self._batches, self._batches + self.workers)
        self._batches += self.workers
        batches = dict.fromkeys(numbers, inp)
        refs = {worker.run.remote(self._shipped, number, inp, True): number
                for number, worker in zip(numbers, self._start())}
        results, failure = {}, None
        for ref, number in refs.items():
            received = self._receive(ref, number, results)
            failure = failure or received
        if failure is not None:
            raise self._failed(batches, results, *failure)

    def _split(self, inp: pd.DataFrame) -> Dict[int, pd.DataFrame]:
        """Batches of whole queries, numbered in the input's order of qids (one empty batch for no rows)."""
        qids = inp["qid"].unique()
        size = self.batch_size or max(1, math.ceil(len(qids) / (4 * self.workers)))
        chunks = [qids[i:i + size] for i in range(0, len(qids), size)] or [qids]
        first, self._batches = self._batches, self._batches + len(chunks)
        return {first + n: inp[inp["qid"].isin(chunk)] for n, chunk in enumerate(chunks)}

    def _run(self, batches: Dict[int, pd.DataFrame]) -> Dict[int, pd.DataFrame]:
        """Each batch on the next idle worker; records appended as batches arrive; failures raised at the end."""
        from tqdm.auto import tqdm

        ray = self._ray
        idle, todo = list(self._start()), deque(batches)
        pending, results, failure = {}, {}, None
        with tqdm(total=len(batches), desc="gaia.parallel", unit="batch", disable=not self.verbose) as bar:
            while pending or (todo and failure is None):
                while todo and idle and failure is None:
                    number, worker = todo.popleft(), idle.pop()
                    pending[worker.run.remote(self._shipped, number, batches[number])] = (number, worker)
                [ready], _ = ray.wait(list(pending), num_returns=1)
                number, worker = pending.pop(ready)
                idle.append(worker)
                bar.update()
                received = self._receive(ready, number, results)     # always: its records are kept
                failure = failure or received
        if failure is not None:
            raise self._failed(batches, results, *failure)
        return results

    def _receive(self, ref, number: int, results: Dict[int, pd.DataFrame]) -> Optional[tuple]:
        """Deliver a finished batch; the failure it ends with, if any: (number, error, delivery or None)."""
        try:
            delivery = self._ray.get(ref)
        except self._ray.exceptions.RayActorError as error:
            return number, error, None
        if self._deliver(delivery, results) and delivery.error is not None:
            return number, delivery.error, delivery
        return None

    def _deliver(self, delivery: "Delivery", results: Dict[int, pd.DataFrame]) -> bool:
        """Keep a batch's result and append its records, unless that batch was delivered already (then False)."""
        if delivery.batch in results:
            return False
        results[delivery.batch] = delivery.result
        for number, record in delivery.records:
            self._ledgers[number].append(record)
        return True

    def _failed(self, batches, results, number: int, error: BaseException, delivery: Optional["Delivery"]):
        """The error raised for a failed batch, saying which queries and what the ledger holds."""
        qids = batches[number]["qid"].unique().tolist()
        shown = ", ".join(map(str, qids[:5])) + (f" and {len(qids) - 5} more" if len(qids) > 5 else "")
        finished = len(results) - (delivery is not None)
        held = (f"the ledger holds the records of the {finished} batch(es) that finished"
                if self._ledgers else "the pipeline is not metered: nothing was recorded")
        if delivery is None:
            cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            failed = RuntimeError(f"gaia.parallel: batch {number} (qids {shown}) failed: its worker died "
                                  f"{self.attempts} time(s) running it ({cause}); {held}; batch {number} "
                                  f"recorded nothing")
            failed.__cause__ = error
            return failed
        _note(error, f"gaia.parallel: raised by batch {number} (qids {shown}) on {delivery.host} pid "
                       f"{delivery.pid}; {held}, and the {len(delivery.records)} record(s) of batch {number}")
        return error

    def _start(self) -> list:
        """The workers, started on first use (and Ray with them, unless ``ray.init`` was called)."""
        ray = self._ray
        if not self._actors:
            _connected(ray)
            # the pipeline goes with every task (a reference: copied once per worker), not to the actor's
            # constructor, so that a restarted worker unpickles it again from an object the driver holds
            self._shipped = ray.put(self._payload)
            threads = str(self._threads())
            actor = ray.remote(Worker).options(max_restarts=-1, max_task_retries=self.attempts - 1,
                                               runtime_env={"env_vars": {"OMP_NUM_THREADS": threads}})
            self._actors = [actor.remote() for _ in range(self.workers)]
        return self._actors

    def _threads(self) -> int:
        """Each worker's threads (see ``threads_per_worker`` in :func:`parallel`)."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        nodes = [node.get("Resources", {}).get("CPU", 0) for node in self._ray.nodes() if node.get("Alive")]
        return max(1, min(int(sum(nodes)) // self.workers, int(max(nodes, default=1))))

    def close(self) -> None:
        """Stop the workers (the next call starts new ones)."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._shipped = [], None

    def transform_inputs(self):
        return pt.inspect.transformer_inputs(self.pipeline)

    def transform_outputs(self, input_columns):
        return pt.inspect.transformer_outputs(self.pipeline, input_columns)

    def __repr__(self):
        return f"Parallel({self.pipeline!r}, workers={self.workers})"


@dataclass
class Delivery:
    """What a worker returns for one batch: its result (or error), and its records tagged host/pid/batch,
    each with the number of the driver's ledger it goes to."""

    batch: int
    result: Optional[pd.DataFrame]
    error: Optional[BaseException]
    records: List[Tuple[int, dict]]
    host: str
    pid: int


class Worker:
    """A Ray actor's state: the pipeline, unpickled on the first batch, and the in-memory ledgers its
    metered stages write to."""

    def __init__(self):
        self.ledgers: Dict[int, Ledger] = {}
        self.pipeline = None
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._sent = {}

    def run(self, payload: bytes, batch: int, frame: pd.DataFrame, startup: bool = False) -> Delivery:
        try:
            if self.pipeline is None:
                self.pipeline = self._unship(payload)
            result, error = self.pipeline.transform(frame), None
        except Exception as raised:
            _note(raised, "".join(traceback.format_exception(raised)).rstrip())
            result, error = None, raised if _pickles(raised) else RuntimeError(f"{type(raised).__name__}: {raised}")
        records = []
        for number, ledger in self.ledgers.items():
            new = ledger.records[self._sent.get(number, 0):]
            self._sent[number] = self._sent.get(number, 0) + len(new)
            tags = {"host": self.host, "pid": self.pid, "batch": batch}
            records += [(number, {**record, **tags, **({"stage": f"{record['stage']} / start-up", "startup": True}
                                                       if startup and not record["startup"] else {})})
                        for record in new]
        return Delivery(batch, result, error, records, self.host, self.pid)

    def _unship(self, payload: bytes) -> pt.Transformer:
        """The pipeline, unpickled (models loaded...). The unpickling is metered as one start-up record,
        "FIRST STAGE / worker start-up", in the ledger and with the carbon grid of the pipeline's first
        metered stage; none if no stage is metered."""
        pipeline, loading = _metered_unpickling(payload, self.ledgers, "worker start-up")
        first = next(_metered_stages(pipeline), None)
        if first is not None:
            [record] = loading.records
            record.update(first.carbon.account(record["joules"]), stage=f"{first.name} / worker start-up")
            record["constants"] = {**record["constants"], "carbon": first.carbon.constants()}
            first.ledger.append(record)
        return pipeline


def _metered_unpickling(payload: bytes, ledgers: Dict[int, Ledger], name: str) -> Tuple[object, Ledger]:
    """What ``payload`` holds, unpickled (the ledgers it held into ``ledgers``), and a new ledger with that
    work's one start-up record, named ``name``."""
    loaded = []
    loading = Metered(pt.apply.generic(lambda frame: loaded.append(_Unshipper(io.BytesIO(payload), ledgers).load())
                                       or frame), name=name, startup=True)
    loading(pd.DataFrame({"qid": []}))
    return loaded[0], loading.ledger


def _metered_stages(node: pt.Transformer):
    """The metered stages of a pipeline, outermost and leftmost first."""
    if isinstance(node, Metered):
        yield node
    for part in parts(node):
        yield from _metered_stages(part)


def ray_encode(workers: int = 2, ledger=None):
    """An ``encode`` for :meth:`gaia.VectorIndex.index <pyterrier_gaia.VectorIndex.index>`: the collection's
    texts encoded on Ray Data, ``map_batches`` over shards of documents by ``workers`` actors, each
    holding its own copy of the encoder; the vectors come back in the collection's order and go into the
    one VectorIndex store as usual.

    >>> vec = gaia.VectorIndex("./vec", gaia.BiEncoder()).index(docs, encode=ray_encode(workers=4, ledger="enc.jsonl"))

    With ``ledger`` (a :class:`~pyterrier_gaia.Ledger` or a JSONL path), the actors meter their own
    processes: one record per shard, "ray_encode / ENCODER" (``docs``: its texts), and one start-up
    record per actor for loading the encoder, tagged ``host``, ``pid`` and ``batch`` (the shard's first
    row); a shard Ray ran twice is recorded once. The texts and vectors of the whole collection are held
    in the driver's memory while encoding.
    """
    workers = positive_integer("ray_encode", "workers", workers)
    ledger = None if ledger is None else Ledger.coerce(ledger)

    def encode(encoder, chunks, batch_size: int):
        import numpy as np

        ray = import_ray()
        texts = [list(chunk) for chunk in chunks]
        items = [{"row": row, "text": text} for row, text in enumerate(text for chunk in texts for text in chunk)]
        shard = max(1, math.ceil(len(items) / (4 * workers)))            # 4 shards per worker
        encoded = _connected(ray).data.from_items(items).map_batches(
            _EncodeShard, fn_constructor_args=(ship(encoder)[0], batch_size),
            batch_size=shard, concurrency=workers, batch_format="numpy")
        batches = list(encoded.iter_batches(batch_format="numpy", batch_size=None))
        if ledger is not None:
            _append_shard_records(ledger, batches)
        order = np.argsort(np.concatenate([batch["row"] for batch in batches]))
        vectors = np.concatenate([batch["vector"] for batch in batches])[order]
        return np.split(vectors, np.cumsum([len(chunk) for chunk in texts])[:-1])
    return encode


class _EncodeShard:
    """A Ray Data actor: an encoder unpickled once, encoding each batch of rows (row, text) it is given,
    metered: each batch returns its records as JSON lines in a ``records`` column (in its first row, the
    others empty), the actor's loading of the encoder with the first batch.
    """

    def __init__(self, payload: bytes, batch_size: int):
        self.batch_size = batch_size
        self.encoder, loading = _metered_unpickling(payload, {}, "ray_encode / start-up")
        self.meter = Metered(pt.apply.generic(self._encode), name=f"ray_encode / {type(self.encoder).__name__}",
                             ledger=loading)
        self.host, self.pid, self._sent = socket.gethostname(), os.getpid(), 0

    def _encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        vectors = self.encoder.encode(frame["text"].tolist(), self.batch_size)
        return pd.DataFrame({"row": frame["row"].to_numpy(), "vector": list(vectors)})

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        out = self.meter(pd.DataFrame({"row": batch["row"], "text": batch["text"]}))
        records = self.meter.ledger.records[self._sent:]
        self._sent += len(records)
        tags = {"host": self.host, "pid": self.pid, "batch": int(batch["row"][0])}
        lines = "".join(json_line({**record, **tags}).decode() for record in records)
        return {"row": out["row"].to_numpy(), "vector": np.stack(out["vector"].to_numpy()),
                "records": np.array([lines] + [""] * (len(out) - 1), dtype=object)}


def _append_shard_records(ledger: Ledger, batches: List[dict]) -> None:
    """Append the records that came back with the shards, those of a shard Ray ran twice once."""
    seen = set()
    for batch in batches:
        for line in batch["records"]:
            for record in (json.loads(text) for text in line.splitlines()):
                key = (record["stage"], record["batch"], record["startup"])
                if key not in seen:
                    seen.add(key)
                    ledger.append(record)


def import_ray():
    """The ``ray`` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"gaia.parallel(engine='ray') needs Ray, which is not installed: {RAY_EXTRA}") from error
    return ray


def _connected(ray):
    """``ray``, connected to a cluster: a new one on this machine unless ``ray.init`` was called."""
    if not ray.is_initialized():
        init_ray(include_dashboard=False)
    return ray


#: signals a JVM (Lucene, through pyserini) handles itself: it raises SIGSEGV on purpose (implicit null
#: checks, safepoints) and must see them first
FATAL_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL")


def init_ray(**options):
    """``ray.init(**options)``, keeping this process's handlers of fatal signals.

    ``ray.init`` installs Ray's crash logger as the driver's SIGSEGV handler. In a process where a JVM
    already runs (a ``gaia.LuceneIndex`` that has searched), that replaces the JVM's own handler, and the
    next SIGSEGV the JVM raises on purpose kills the process. Call this instead of ``ray.init`` where
    Lucene may have started first; gaia.parallel does. (Only the driver's crash logger is given up; the
    workers keep Ray's.)
    """
    import ray

    with _fatal_signal_handlers_kept():
        return ray.init(**options)


def shutdown_ray() -> None:
    """``ray.shutdown()``, keeping this process's handlers of fatal signals.

    ``ray.shutdown`` resets SIGSEGV, SIGFPE and SIGILL to the default action (it uninstalls its crash
    logger), which kills a process whose JVM then raises SIGSEGV on purpose. Use it with :func:`init_ray`.
    """
    import ray

    with _fatal_signal_handlers_kept():
        ray.shutdown()


@contextmanager
def _fatal_signal_handlers_kept():
    saved = _signal_actions()
    try:
        yield
    finally:
        _restore_signal_actions(saved)


def _signal_actions() -> dict:
    """The process's current ``sigaction`` of each fatal signal, as opaque bytes (POSIX only; else empty)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return {}
    saved = {}
    for name in FATAL_SIGNALS:
        number = getattr(signal, name, None)
        action = ctypes.create_string_buffer(512)   # larger than any libc's struct sigaction
        if number is not None and hasattr(libc, "sigaction") and libc.sigaction(int(number), None, action) == 0:
            saved[int(number)] = (libc, action)
    return saved


def _restore_signal_actions(saved: dict) -> None:
    for number, (libc, action) in saved.items():
        libc.sigaction(number, action, None)


def ship(pipeline: pt.Transformer) -> Tuple[bytes, List[Ledger]]:
    """``pipeline`` pickled for the workers, and the ledgers it holds (pickled as their numbers, not their records).

    Raises TypeError naming the first stage that does not pickle.
    """
    from ray import cloudpickle

    ledgers: Dict[int, Ledger] = {}   # id -> ledger, numbered in order of first appearance

    class Shipper(cloudpickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, Ledger):
                return None
            ledgers.setdefault(id(obj), obj)
            return list(ledgers).index(id(obj))

    buffer = io.BytesIO()
    try:
        Shipper(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(pipeline)
    except Exception as error:
        stage, reason = _unpicklable(pipeline) or (pipeline, error)
        raise TypeError(f"gaia.parallel: cannot send the pipeline to Ray workers: stage {default_name(stage)} "
                        f"does not pickle ({type(reason).__name__}: {reason}); open what it holds (a file, a "
                        f"connection, a lock...) on first use, or leave it out in __getstate__") from error
    return buffer.getvalue(), list(ledgers.values())


def _unpicklable(node: pt.Transformer) -> Optional[Tuple[pt.Transformer, Exception]]:
    """The innermost stage of ``node`` that does not pickle, and why; None if it all pickles."""
    from ray import cloudpickle

    for part in parts(node):
        found = _unpicklable(part)
        if found:
            return found
    try:
        cloudpickle.dumps(node)
    except Exception as error:
        return node, error
    return None


class _Unshipper(pickle.Unpickler):
    """Unpickles a shipped pipeline, giving each ledger it held a fresh in-memory one (kept in ``ledgers``)."""

    def __init__(self, file, ledgers: Dict[int, Ledger]):
        super().__init__(file)
        self.ledgers = ledgers

    def persistent_load(self, number):
        return self.ledgers.setdefault(number, Ledger())


def _note(error: BaseException, note: str) -> None:
    """Add a note to ``error`` (shown under its traceback; Python 3.11+)."""
    if hasattr(error, "add_note"):
        error.add_note(note)


def _pickles(value) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
