"""First-stage retrieval: a Lucene index built and searched in-process through pyserini."""
import gzip
import json
import math
import shutil
import uuid
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import pandas as pd
import pyterrier as pt

from ..checks import positive_integer
from ..cost.counts import report
from .analyser import Analyser
from .java import start_pyserini

DOCSTORE = "gaia-docstore.jsonl.gz"
MARKER = "gaia-index.json"  # written last: its presence means the index is complete
MAX_QUERY_TERMS = 1 << 20  # Lucene's clause limit is raised to this many distinct terms (its default: 1,024)


class LuceneIndex:
    """A Lucene index in the folder ``path``.

    >>> index = gaia.LuceneIndex("./vaswani-idx").index(gaia.datasets.get("vaswani").get_corpus_iter())
    >>> bm25 = index.bm25(num_results=1000)

    ``stopwords`` (``"terrier"``, ``"lucene"``, ``"none"`` or a list of words) and ``stemmer``
    (``"porter"``, ``"krovetz"``, ``"none"``) choose the analyser; by default Terrier's 733 stopwords and
    Porter. The analyser is recorded in the index and used for queries; left as ``None``, an existing
    index's own is used. Document texts are kept beside the Lucene files (``gaia-docstore.jsonl.gz``) so
    that retrieval can return a ``text`` column without a round trip to Java per document.
    """

    def __init__(self, path, stopwords: Union[str, List[str], None] = None, stemmer: Optional[str] = None):
        # absolute: Java resolves a relative path against the folder the JVM started in, not os.getcwd()
        self.path = Path(path).absolute()
        self._asked = (stopwords, stemmer)
        self._asked_analyser()  # a bad choice fails here, not later
        self._texts: Optional[Dict[str, str]] = None
        self._searchers: Dict[Tuple[float, float], object] = {}

    def built(self) -> bool:
        """Whether the folder holds a finished index."""
        return (self.path / MARKER).is_file()

    @property
    def analyser(self) -> Analyser:
        """The analyser of the built index, else the one that ``index()`` will use."""
        if not self.built():
            return self._asked_analyser()
        recorded = Analyser.recorded(json.loads((self.path / MARKER).read_text())["analyser"], self.path)
        stopwords, stemmer = self._asked
        if (stemmer is not None and stemmer != recorded.stemmer) or \
                (stopwords is not None and Analyser.of(stopwords, recorded.stemmer) != recorded):
            raise ValueError(f"LuceneIndex: {self.path} was built with {recorded}, not "
                             f"stopwords={stopwords!r}, stemmer={stemmer!r}; "
                             f"open it without analyser arguments, or rebuild it with .index(docs, overwrite=True)")
        return recorded

    def _asked_analyser(self) -> Analyser:
        stopwords, stemmer = self._asked
        return Analyser.of(_or(stopwords, "terrier"), _or(stemmer, "porter"))

    def index(self, docs: Iterable[dict], *, overwrite: bool = False, batch_size: int = 1000,
              threads: int = 1, verbose: bool = False) -> "LuceneIndex":
        """Build the index from an iterable of ``{"docno", "text"}`` dicts, and return it.

        If the folder already holds a finished index it is opened as it is and ``docs`` are not read
        (so a notebook cell can run twice); ``overwrite=True`` rebuilds it with this object's analyser
        (by default Terrier's). The build goes to a temporary sibling folder that replaces ``path`` only
        once complete: a failed build leaves nothing behind.
        A folder that is not empty and is not a LuceneIndex is never written to nor deleted.
        """
        if self.built() and not overwrite:
            self._require_built()
            return self
        if _occupied(self.path):
            if not _is_index_folder(self.path):
                raise FileExistsError(f"LuceneIndex: {self.path} is not empty and is not a LuceneIndex; "
                                      f"refusing to {'delete' if overwrite else 'build into'} it (use a new folder)")
            if not overwrite:
                raise FileExistsError(f"LuceneIndex: {self.path} holds an unfinished index or one from an older "
                                      f"version (no {MARKER}); pass overwrite=True to rebuild it")
        analyser = self._asked_analyser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.parent / f".{self.path.name}.building-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            count = _build(staging, docs, analyser, batch_size, threads, verbose)
            (staging / MARKER).write_text(json.dumps({"format": 1, "analyser": analyser.record(), "documents": count}))
            self.close()
            _move_into_place(staging, self.path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self

    def texts(self) -> Dict[str, str]:
        """docno -> text for every indexed document (read once, then kept in memory)."""
        if self._texts is None:
            self._require_built()
            with gzip.open(self.path / DOCSTORE, "rt", encoding="utf-8") as store:
                self._texts = {d["docno"]: d["text"] for d in map(json.loads, store)}
        return self._texts

    def bm25(self, num_results: int = 1000, k1: float = 0.9, b: float = 0.4, text: bool = True,
             threads: int = 1) -> "LuceneBM25":
        """A transformer from queries to BM25-ranked documents (Anserini defaults k1=0.9, b=0.4)."""
        self._require_built()
        return LuceneBM25(self, num_results=num_results, k1=k1, b=b, text=text, threads=threads)

    def searcher(self, k1: float, b: float):
        """pyserini's searcher with this index's analyser and BM25(k1, b), opened once per (k1, b)."""
        if (k1, b) not in self._searchers:
            analyser = self._require_built()
            start_pyserini()
            from jnius import autoclass
            from pyserini.search.lucene import LuceneSearcher
            autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(MAX_QUERY_TERMS)
            searcher = _java_io(self.path, "open", lambda: LuceneSearcher(str(self.path)))
            searcher.set_analyzer(analyser.java(self.path))
            searcher.set_bm25(k1, b)
            self._searchers[(k1, b)] = searcher
        return self._searchers[(k1, b)]

    def close(self):
        """Close the open searchers and forget the cached texts (both are reopened on demand)."""
        for searcher in self._searchers.values():
            searcher.close()
        self._searchers, self._texts = {}, None

    def __getstate__(self):
        """Pickled without its open searchers and cached texts (a copy in another process reopens them)."""
        return {**self.__dict__, "_searchers": {}, "_texts": None}

    def _require_built(self) -> Analyser:
        """The index's analyser; an error if there is no finished index or another analyser was asked for."""
        if not self.built():
            raise FileNotFoundError(f"LuceneIndex: no index at {self.path}; build it with .index(docs) first")
        return self.analyser

    def __repr__(self):
        return f"LuceneIndex({str(self.path)!r})"


def _or(value, default):
    return default if value is None else value


def _occupied(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _is_index_folder(path: Path) -> bool:
    """A folder this class wrote: finished (marker) or from an older version/unfinished (docstore)."""
    return path.is_dir() and ((path / MARKER).is_file() or (path / DOCSTORE).is_file())


def _move_into_place(staging: Path, path: Path):
    """Replace ``path`` (absent, empty, or an index) by the finished ``staging`` folder."""
    if not path.exists():
        staging.rename(path)
        return
    retired = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    path.rename(retired)
    staging.rename(path)
    shutil.rmtree(retired)


def _java_io(path: Path, action: str, call):
    """Run a Java call that reads or writes the index, naming the folder if it fails."""
    from jnius import JavaException
    try:
        return call()
    except JavaException as error:
        raise OSError(f"LuceneIndex: could not {action} the Lucene index at {path}: {error}") from error


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _clean_text(value) -> str:
    """A str with no lone surrogates (as left by decoding non-UTF-8 bytes), which Java cannot take."""
    return str(value).encode("utf-8", errors="replace").decode("utf-8")


def _checked(docs: Iterable[dict]) -> Iterator[Tuple[str, str]]:
    """(docno, text) pairs; a missing field, a None/NaN value or a repeated docno is an error naming it."""
    seen = set()
    for position, doc in enumerate(docs):
        missing = [key for key in ("docno", "text") if key not in doc]
        if missing:
            raise KeyError(f"LuceneIndex.index: document {position} has no {missing} field "
                           f"(expected dicts with 'docno' and 'text')")
        if _missing(doc["docno"]) or str(doc["docno"]) == "":
            raise ValueError(f"LuceneIndex.index: document {position} has docno {doc['docno']!r}; "
                             f"expected a non-empty string")
        docno = str(doc["docno"])
        if _missing(doc["text"]):
            raise ValueError(f"LuceneIndex.index: document {docno!r} has text {doc['text']!r}; expected a string "
                             f"(use '' for a document with no text)")
        if docno in seen:
            raise ValueError(f"LuceneIndex.index: docno {docno!r} occurs twice; docnos must be unique")
        seen.add(docno)
        yield docno, _clean_text(doc["text"])


def _build(folder: Path, docs: Iterable[dict], analyser: Analyser, batch_size: int, threads: int,
           verbose: bool) -> int:
    """Write the Lucene index and the docstore into ``folder``; the number of documents."""
    start_pyserini()
    from pyserini.index.lucene import LuceneIndexer
    args = ["-index", str(folder), *analyser.indexer_args(folder)]
    indexer = _java_io(folder, "create", lambda: LuceneIndexer(str(folder), args=args, threads=threads))
    if verbose:
        docs = pt.tqdm(docs, desc="LuceneIndex", unit="d")
    batch, count = [], 0
    try:
        with gzip.open(folder / DOCSTORE, "wt", encoding="utf-8") as store:
            for docno, text in _checked(docs):
                store.write(json.dumps({"docno": docno, "text": text}) + "\n")
                batch.append({"id": docno, "contents": text})
                count += 1
                if len(batch) == batch_size:
                    indexer.add_batch_dict(batch)
                    batch = []
            if batch:
                indexer.add_batch_dict(batch)
    finally:
        indexer.close()
    if count == 0:
        raise ValueError("LuceneIndex.index: the document iterator was empty")
    return count


class LuceneBM25(pt.Transformer):
    """BM25 over a :class:`LuceneIndex`: Q -> R with qid, query, docno, score, rank (and text).

    Queries are analysed as bags of words with the index's analyser, so Lucene syntax characters in them
    are plain text. ``bm25 % k`` (k < num_results) is this retriever asking Lucene for k hits, and so
    fetching k texts (PyTerrier's ``fuse_rank_cutoff``). Reports ``postings`` (the document frequencies
    of the analysed query terms, summed) and ``docs_scored`` (documents returned) to any open
    operation-count scope.
    """

    def __init__(self, index: LuceneIndex, num_results: int = 1000, k1: float = 0.9, b: float = 0.4,
                 text: bool = True, threads: int = 1):
        self.index, self.k1, self.b, self.text = index, k1, b, text
        self.num_results = positive_integer("LuceneBM25", "num_results", num_results)
        self.threads = positive_integer("LuceneBM25", "threads", threads)
        self._document_frequency: Dict[str, int] = {}

    def fuse_rank_cutoff(self, k: int) -> "LuceneBM25":
        """This retriever with ``num_results=k`` when k is smaller (itself otherwise)."""
        if k >= self.num_results:
            return self
        return pt.inspect.transformer_apply_attributes(self, num_results=k)

    def __mod__(self, k: int) -> pt.Transformer:
        """``bm25 % k``: the rank cutoff fused into the retriever, so Lucene is asked for k hits."""
        return super().__mod__(k).compile()

    def _postings(self, searcher, query: str, qid) -> int:
        reader = searcher.index_reader
        terms = set(reader.analyze(query, analyzer=searcher.object.get_analyzer()))
        if len(terms) > MAX_QUERY_TERMS:
            raise ValueError(f"LuceneBM25: query {qid!r} has {len(terms)} distinct terms; at most "
                             f"{MAX_QUERY_TERMS} are searched")
        for term in terms - self._document_frequency.keys():
            self._document_frequency[term] = reader.get_term_counts(term, analyzer=None)[0]
        return sum(self._document_frequency[term] for term in terms)

    def _queries(self, topics: pd.DataFrame) -> List[str]:
        for qid, query in zip(topics["qid"], topics["query"]):
            if _missing(query):
                raise ValueError(f"LuceneBM25: query {qid!r} is {query!r}; expected text in the query column")
        return [_clean_text(q) for q in topics["query"]]

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(topics, extra_columns=["query"])
        out_columns = [*topics.columns.drop(["docno", "score", "rank", "text"], errors="ignore"),
                       "docno", "score", "rank", *(["text"] if self.text else [])]
        if len(topics) == 0:
            return pd.DataFrame(columns=out_columns)
        topics = topics.drop(columns=["docno", "score", "rank", "text"], errors="ignore").reset_index(drop=True)
        queries = self._queries(topics)
        searcher = self.index.searcher(self.k1, self.b)
        postings = sum(self._postings(searcher, query, qid) for query, qid in zip(queries, topics["qid"]))
        hits = _java_io(self.index.path, "search", lambda: self._search(searcher, queries))
        positions, docnos, scores, ranks = [], [], [], []
        for position, ranking in enumerate(hits):  # Lucene's order: score descending, ties by docno
            for rank, hit in enumerate(ranking):
                positions.append(position)
                docnos.append(hit.docid)
                scores.append(hit.score)
                ranks.append(rank)
        report(postings=postings, docs_scored=len(docnos))
        columns = {name: topics[name].to_numpy()[positions] for name in topics.columns}
        columns.update(docno=docnos, score=np.asarray(scores, dtype=float), rank=np.asarray(ranks, dtype=int))
        if self.text:
            texts = self.index.texts()
            columns["text"] = [texts.get(d, "") for d in docnos]
        return pd.DataFrame(columns, columns=out_columns)  # one frame built at once: a call costs little in pandas

    def _search(self, searcher, queries: List[str]) -> list:
        """Each query's hits; one query is searched directly, a batch on ``threads`` Java threads."""
        if len(queries) == 1:
            return [searcher.search(queries[0], k=self.num_results)]
        keys = [str(position) for position in range(len(queries))]  # row positions: qids may repeat
        found = searcher.batch_search(queries, keys, k=self.num_results, threads=self.threads)
        return [found.get(key, []) for key in keys]

    def _settings(self) -> tuple:
        return str(self.index.path), self.num_results, self.k1, self.b, self.text, self.threads

    def __eq__(self, other):
        """Equal settings on the same index folder: PyTerrier (and gaia.Experiment) then share it as a
        common prefix, as they do for two ``bm25 % k`` with the same k."""
        if not isinstance(other, LuceneBM25):
            return NotImplemented
        return self._settings() == other._settings()

    def __hash__(self):
        return hash(("LuceneBM25", *self._settings()))

    def __repr__(self):
        return f"LuceneBM25({self.index!r}, num_results={self.num_results}, k1={self.k1}, b={self.b})"
