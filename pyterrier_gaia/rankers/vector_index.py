"""VectorIndex: a collection encoded once by a bi-encoder, then re-ranked and searched from the stored
vectors, so that a query costs one query encoding and dot products, never a document encoding.

The folder is a pyterrier-dr ``FlexIndex`` (``vecs.f4``, ``docnos.npids``, ``pt_meta.json``) plus
``gaia-vectors.json``, which names the model that encoded it. pyterrier-dr writes the vectors and
the docno lookup; the re-ranker and the retriever here are gaia's own, because pyterrier-dr's
``np_scorer`` drops the first-stage score (no fusion) and reads the last vector for an unknown
docno, and its ``np_retriever`` returns array-valued cells when one result is asked for.
"""
import json
import shutil
from itertools import islice, tee
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from ..encoders.locate import label_of
from ..checks import positive_integer
from .columns import require_columns, require_values
from .quantize import KINDS, QuantizedVectors, _top
from .fusion import check_weight, rescored, rescored_columns

META = "gaia-vectors.json"   # written last: a folder without it holds no finished index
CHUNK = 2048                 # documents per encode call (the encoder batches them by length)


class VectorIndex:
    """Document vectors of a collection, encoded once by ``encoder`` and kept in the folder ``path``.

    >>> vec = gaia.VectorIndex("./vaswani-vec", gaia.BiEncoder()).index(ds.get_corpus_iter())
    >>> bm25 % 100 >> vec.reranker(interpolate=0.3)      # re-rank from the stored vectors
    >>> vec.retriever(num_results=1000)                   # exhaustive dense retrieval
    >>> vec.retriever(100, quantized="int8", rescore=200) # over int8 codes, float rescoring

    ``encoder`` needs ``encode(texts, batch_size, verbose)`` (float32 rows) and ``model_name``; a
    built folder opens directly and must have been encoded by the same model. To meter the indexing
    as one ledger record: ``gaia.Metered(vec.indexer(), name="vec index").index(docs)``.
    """

    def __init__(self, path, encoder, *, batch_size: int = 32):
        self.path = Path(path)
        self.encoder = encoder
        self.batch_size = positive_integer("VectorIndex", "batch_size", batch_size)
        self._forget()

    def _forget(self):
        self._meta, self._flex, self._quantized = None, None, {}

    def built(self) -> bool:
        """Whether the folder holds a finished index."""
        return (self.path / META).is_file()

    def index(self, docs: Iterable[dict], *, overwrite: bool = False, verbose: bool = True,
              encode=None) -> "VectorIndex":
        """Encode ``{"docno", "text"}`` dicts and store their vectors; a built folder is opened as it is
        (``docs`` left unread) unless ``overwrite=True``. See :class:`VectorIndexer`."""
        return self.indexer(overwrite=overwrite, verbose=verbose, encode=encode).index(docs)

    def indexer(self, *, overwrite: bool = False, verbose: bool = True, encode=None) -> "VectorIndexer":
        """The ``pt.Indexer`` that builds this index (``gaia.Metered`` meters its ``index`` call)."""
        return VectorIndexer(self, overwrite=overwrite, verbose=verbose, encode=encode)

    def reranker(self, interpolate: Optional[float] = None) -> "StoredVectorReRanker":
        """Re-ranks candidates (qid, query, docno[, score]) by query·document dot products, no text needed."""
        return StoredVectorReRanker(self, interpolate=interpolate)

    def retriever(self, num_results: int = 1000, quantized: Optional[str] = None,
                  rescore: Optional[int] = None) -> "DenseRetriever":
        """Exhaustive dense retrieval over the float vectors, or over their ``quantized`` codes
        ("int8" or "binary"), the best ``rescore`` of which are re-ordered by the float vectors."""
        return DenseRetriever(self, num_results=num_results, quantized=quantized, rescore=rescore)

    def quantized(self, kind: str) -> QuantizedVectors:
        """The stored vectors as :class:`~pyterrier_gaia.QuantizedVectors` of ``kind`` (made once, kept in
        memory; their float vectors for rescoring stay memory-mapped)."""
        if kind not in self._quantized:
            vectors = self.vectors()
            self._quantized[kind] = QuantizedVectors(vectors, kind, floats=vectors)
        return self._quantized[kind]

    # ----- the stored data
    @property
    def flex(self):
        """The underlying pyterrier-dr ``FlexIndex`` (e.g. for its FAISS or HNSW retrievers)."""
        if self._flex is None:
            self.meta()
            from pyterrier_dr import FlexIndex
            self._flex = FlexIndex(str(self.path), verbose=False)
        return self._flex

    def meta(self) -> dict:
        """What ``gaia-vectors.json`` records: model, dim, documents, precision, pooling, normalize."""
        if self._meta is None:
            if not self.built():
                raise FileNotFoundError(f"{self!r}: no index at {self.path}; build it with .index(docs) first")
            self._meta = json.loads((self.path / META).read_text(encoding="utf-8"))
        return self._meta

    def __len__(self):
        return self.meta()["documents"]

    def vectors(self) -> np.ndarray:
        """The document vectors, memory-mapped (documents x dim, float32), in docno-lookup order."""
        return self.flex.np_vecs()

    def rows(self, docnos, stage: str) -> np.ndarray:
        """Row of each docno in :meth:`vectors`; a ValueError names a few docnos the index lacks."""
        rows = np.asarray(self.flex.docnos().inv[np.asarray(docnos, dtype=str)])
        if (rows < 0).any():
            missing = pd.unique(np.asarray(docnos, dtype=str)[rows < 0])
            raise ValueError(f"{stage}: {len(missing)} docno(s) are not in {self!r} (e.g. "
                             f"{', '.join(map(repr, missing[:5].tolist()))}); the candidates come from another "
                             f"collection than the one indexed")
        return rows

    def check_encoder(self, stage: str) -> None:
        """Raise a ValueError unless this index was encoded by the model of ``self.encoder``, known by its
        label (:func:`~pyterrier_gaia.encoders.locate.label_of`): the same model loaded from another
        folder, virtual environment or cache is the same model."""
        indexed, given = self.meta()["model"], self.encoder.model_name
        if label_of(indexed) != label_of(given):
            raise ValueError(f"{stage}: the vectors at {self.path} were encoded by model {indexed!r} "
                             f"({self.meta()['dim']} dims), but the encoder given is {given!r}; pass that "
                             f"model's encoder, or rebuild with .index(docs, overwrite=True)")

    def encode_queries(self, queries, stage: str) -> np.ndarray:
        """Query vectors (the encoder reports its own counts), checked against the stored dimension."""
        vectors = self.encoder.encode(list(queries), self.batch_size)
        if vectors.shape[1] != self.meta()["dim"]:
            raise ValueError(f"{stage}: the encoder gives {vectors.shape[1]}-dimensional query vectors; the "
                             f"vectors at {self.path} have {self.meta()['dim']} (model {self.meta()['model']!r})")
        return vectors

    def __repr__(self):
        return f"VectorIndex({str(self.path)!r})"


class VectorIndexer(pt.Indexer):
    """Builds a :class:`VectorIndex`: encodes ``{"docno", "text"}`` dicts in chunks and writes them
    with pyterrier-dr's FlexIndex writer into a temporary folder, renamed into place when complete,
    so a failed build never looks built. Docnos must be unique; an empty collection is an error.

    ``encode(encoder, chunks, batch_size)``, given, encodes the chunks of texts instead of
    ``encoder.encode`` one chunk after the other: it yields one float32 array per chunk, in order (e.g.
    ``pyterrier_gaia.distribute.ray_encode(workers=4)``, on Ray Data workers)."""

    def __init__(self, vector_index: VectorIndex, *, overwrite: bool = False, verbose: bool = True, encode=None):
        self.vector_index, self.overwrite, self.verbose = vector_index, overwrite, verbose
        self.encode = encode or _encode_each

    def index(self, docs: Iterable[dict]) -> VectorIndex:
        target = self.vector_index
        if target.built() and not self.overwrite:
            target.check_encoder(f"{self!r}")
            return target
        path = target.path
        if path.exists() and any(path.iterdir()) and not (self.overwrite or target.built()):
            raise FileExistsError(f"{self!r}: {path} is not empty and holds no VectorIndex; "
                                  f"pass overwrite=True to replace it")
        from pyterrier_dr import FlexIndex

        building = path.with_name(f".{path.name}.building")
        shutil.rmtree(building, ignore_errors=True)
        building.parent.mkdir(parents=True, exist_ok=True)
        try:
            FlexIndex(str(building), verbose=False).index(self._encoded(docs))
            stored = json.loads((building / "pt_meta.json").read_text(encoding="utf-8"))
            encoder = target.encoder
            meta = {"model": encoder.model_name, "dim": stored["vec_size"], "documents": stored["doc_count"],
                    **{key: getattr(encoder, key, None) for key in ("precision", "pooling", "normalize", "max_length")}}
            (building / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            if path.exists():
                shutil.rmtree(path)
            building.rename(path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        target._forget()
        return target

    def _encoded(self, docs: Iterable[dict]):
        """``{"docno", "doc_vec"}`` for each document, encoded CHUNK at a time."""
        chunks, texts = tee(self._checked_chunks(docs))
        index = self.vector_index
        vectors = self.encode(index.encoder, ([doc["text"] for doc in chunk] for chunk in texts), index.batch_size)
        with pt.tqdm(desc="VectorIndex encoding", unit="d", disable=not self.verbose) as progress:
            for chunk, chunk_vectors in zip(chunks, vectors):
                yield from ({"docno": str(doc["docno"]), "doc_vec": vector} for doc, vector in zip(chunk, chunk_vectors))
                progress.update(len(chunk))

    def _checked_chunks(self, docs: Iterable[dict]):
        """Lists of CHUNK documents, each checked (docno and text present, docno unique)."""
        docs, seen = iter(docs), {}
        while chunk := list(islice(docs, CHUNK)):
            for doc in chunk:
                missing = [key for key in ("docno", "text") if key not in doc]
                if missing:
                    raise KeyError(f"{self!r}: document {len(seen)} has no {missing} field "
                                   f"(expected dicts with 'docno' and 'text')")
                docno = str(doc["docno"])
                if docno in seen:
                    raise ValueError(f"{self!r}: docno {docno!r} appears twice (documents {seen[docno]} "
                                     f"and {len(seen)}); docnos must be unique")
                seen[docno] = len(seen)
            yield chunk
        if not seen:
            raise ValueError(f"{self!r}: the document iterator was empty; nothing to index")

    def __repr__(self):
        return f"{self.vector_index!r}.indexer()"


def _encode_each(encoder, chunks, batch_size: int):
    """Each chunk of texts encoded in turn by ``encoder.encode``."""
    return (encoder.encode(texts, batch_size) for texts in chunks)


class StoredVectorReRanker(pt.Transformer):
    """Re-ranks candidates (qid, query, docno) by the dot product of the query's vector with each
    candidate's stored vector. With ``interpolate=α`` the score is ``α·s1 + (1−α)·s2``, s1 the input
    ``score`` and s2 the dense score, each min-max normalised per query (as ``ReRanker`` does).
    Reports ``pairs`` and ``vector_bytes`` (stored vector bytes read)."""

    def __init__(self, index: VectorIndex, interpolate: Optional[float] = None):
        self.index, self.interpolate = index, check_weight(f"{index!r}.reranker", interpolate)
        index.check_encoder(repr(self))

    def __repr__(self):
        fused = "" if self.interpolate is None else f"interpolate={self.interpolate}"
        return f"{self.index!r}.reranker({fused})"

    def _check(self, columns):
        required = ["qid", "query", "docno"] + (["score"] if self.interpolate is not None else [])
        hint = ("interpolate= fuses with the first-stage score, so it needs a 'score' column"
                if "score" in required and "score" not in columns else "put a first stage before it, e.g. bm25 % 100")
        require_columns(repr(self), self, columns, required, hint)

    def transform_outputs(self, inp_cols):
        self._check(list(inp_cols))
        return rescored_columns(inp_cols)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._check(list(inp.columns))
        if len(inp) == 0:
            return rescored(inp, [])
        require_values(repr(self), inp, ["query"] + (["score"] if self.interpolate is not None else []))
        rows = self.index.rows(inp["docno"], repr(self))
        queries, query_of = np.unique(inp["query"].to_numpy(dtype=str), return_inverse=True)
        query_vectors = self.index.encode_queries(queries, repr(self))
        doc_vectors = self.index.vectors()[rows]
        report(pairs=len(inp), vector_bytes=doc_vectors.nbytes)
        return rescored(inp, np.einsum("ij,ij->i", query_vectors[query_of], doc_vectors), self.interpolate)


class DenseRetriever(pt.Transformer):
    """Q -> R: every stored vector scored against each query's vector (exhaustive search), the best
    ``num_results`` kept: qid, query, docno, score, rank. With ``quantized`` ("int8" or "binary") the
    search runs over the quantized codes and, with ``rescore=n``, the best n are re-ordered by their
    float vectors. Reports ``docs_scored`` and ``vector_bytes`` (stored vector bytes read)."""

    def __init__(self, index: VectorIndex, num_results: int = 1000, quantized: Optional[str] = None,
                 rescore: Optional[int] = None):
        stage = f"{index!r}.retriever"
        num_results = positive_integer(stage, "num_results", num_results)
        if quantized is not None and quantized not in KINDS:
            raise ValueError(f"{stage}: quantized={quantized!r}; expected one of {', '.join(KINDS)} or None")
        if rescore is not None and (quantized is None or rescore < num_results):
            raise ValueError(f"{stage}: rescore={rescore} re-orders quantized results, so it needs quantized= "
                             f"and must be at least num_results={num_results}")
        self.index, self.num_results, self.quantized, self.rescore = index, num_results, quantized, rescore
        index.check_encoder(repr(self))

    def __repr__(self):
        options = [f"num_results={self.num_results}"] + [f"{name}={value!r}" for name, value in
                                                         (("quantized", self.quantized), ("rescore", self.rescore)) if value]
        return f"{self.index!r}.retriever({', '.join(options)})"

    def fuse_rank_cutoff(self, k):
        if k < self.num_results:
            return DenseRetriever(self.index, k, self.quantized, None if self.rescore is None else max(self.rescore, k))

    def transform_outputs(self, inp_cols):
        pt.validate.query_frame(list(inp_cols), extra_columns=["query"])
        return [c for c in inp_cols if c not in ("docno", "score", "rank")] + ["docno", "score", "rank"]

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        columns = self.transform_outputs(list(topics.columns))
        if len(topics) == 0:
            return pd.DataFrame(columns=columns)
        topics = topics.reset_index(drop=True)
        queries, query_of = np.unique(topics["query"].to_numpy(dtype=str), return_inverse=True)
        rows, scores = self._search(self.index.encode_queries(queries, repr(self)))
        rows, scores = rows[query_of], scores[query_of]
        depth = rows.shape[1]
        result = topics.drop(columns=["docno", "score", "rank"], errors="ignore").loc[np.repeat(topics.index, depth)]
        result = result.reset_index(drop=True).assign(
            docno=self.index.flex.docnos().fwd[rows.ravel()], score=scores.ravel().astype("float64"),
            rank=np.tile(np.arange(depth), len(topics)))
        return result[columns]

    def _search(self, query_vectors):
        """(rows, scores) of the best documents per distinct query, best first."""
        vectors = self.index.vectors()
        k = min(self.num_results, len(vectors))
        if self.quantized is None:
            scores = query_vectors @ vectors.T
            report(docs_scored=len(query_vectors) * len(vectors), vector_bytes=vectors.nbytes)
            rows = _top(scores, k)
            return rows, np.take_along_axis(scores, rows, axis=1)
        codes = self.index.quantized(self.quantized)
        rescored = len(query_vectors) * min(self.rescore or 0, len(vectors)) * vectors.shape[1] * vectors.itemsize
        report(docs_scored=len(query_vectors) * len(vectors), vector_bytes=codes.nbytes + rescored)
        return codes.search(query_vectors, k, self.rescore)
