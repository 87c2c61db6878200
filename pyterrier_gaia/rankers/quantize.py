"""Quantized stored embeddings: int8 (a scale per dimension) or binary (sign bits, Hamming distance),
searched approximately and rescored with the float vectors of the top candidates only."""
import numpy as np

KINDS = ("int8", "binary")


class QuantizedVectors:
    """Document vectors kept as int8 codes (4x smaller than float32) or sign bits (32x smaller).

    - ``int8``: each dimension d is scaled by ``max|x_d| / 127`` and rounded; a float query is
      scored against the codes directly (``q · (codes · scale)``).
    - ``binary``: a vector keeps the sign of each dimension, packed 8 to a byte; the query is
      binarised too and documents are ranked by Hamming distance (fewer differing bits first).

    ``search(..., rescore=n)`` takes the best ``n`` by the quantized score and re-orders them by
    the exact float dot product read from ``floats``, which may stay on disk (``np.memmap``):
    only the rows of those candidates are read.

    >>> qv = QuantizedVectors(np.eye(4, dtype=np.float32), "binary")
    >>> qv.search(np.eye(4, dtype=np.float32)[:1], k=1)[0]
    array([[0]])
    """

    def __init__(self, vectors, kind="int8", floats=None):
        if kind not in KINDS:
            raise ValueError(f"QuantizedVectors: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"QuantizedVectors: expected a non-empty 2-D array of vectors, got shape {vectors.shape}")
        self.kind = kind
        self.dim = vectors.shape[1]
        self.floats = vectors if floats is None else floats
        if kind == "int8":
            peak = np.abs(vectors).max(axis=0)
            self.scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            self.codes = np.clip(np.rint(vectors / self.scale), -127, 127).astype(np.int8)
        else:
            self.codes = np.packbits(vectors > 0, axis=1)

    def __len__(self):
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        """Bytes of the quantized index in memory (codes and scales; not the float vectors)."""
        return self.codes.nbytes + (self.scale.nbytes if self.kind == "int8" else 0)

    def approximate_scores(self, queries) -> np.ndarray:
        """Scores of every document for each float query (n_queries x n_docs); higher is better."""
        queries = self._queries(queries)
        if self.kind == "int8":
            return (queries * self.scale) @ self.codes.T.astype(np.float32)
        bits = np.packbits(queries > 0, axis=1)
        distance = np.stack([np.bitwise_count(b ^ self.codes).sum(axis=1, dtype=np.int32) for b in bits])
        return -distance.astype(np.float32)

    def search(self, queries, k=10, rescore=None):
        """Top ``k`` documents per query: (indices, scores), both n_queries x k, best first.

        With ``rescore=n`` (n >= k) the best n by the quantized score are re-ordered by the
        exact dot product with ``floats`` and the scores returned are those exact ones.
        """
        queries = self._queries(queries)
        if rescore is not None and rescore < k:
            raise ValueError(f"QuantizedVectors.search: rescore={rescore} must be at least k={k}")
        approx = self.approximate_scores(queries)
        depth = min(rescore or k, len(self))
        top = _top(approx, depth)
        if rescore is None:
            return top[:, :k], np.take_along_axis(approx, top[:, :k], axis=1)
        exact = np.stack([np.asarray(self.floats[np.sort(row)], dtype=np.float32) @ q
                          for row, q in zip(top, queries)])
        rows = np.sort(top, axis=1)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(rows, order, axis=1), np.take_along_axis(exact, order, axis=1)

    def _queries(self, queries) -> np.ndarray:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"QuantizedVectors: queries have {queries.shape[1]} dimensions; "
                             f"the stored vectors have {self.dim}")
        return queries


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
