"""First-stage retrieval: a Lucene index built and searched in-process through pyserini."""
import gzip
import json
import shutil
from pathlib import Path
from typing import Dict, Iterable, Optional

import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from .java import start_pyserini

DOCSTORE = "gaia-docstore.jsonl.gz"


class LuceneIndex:
    """A Lucene index in the folder ``path`` (Anserini's default English analyser: Porter stemming,
    stopwords removed).

    >>> index = gaia.LuceneIndex("./vaswani-idx")
    >>> index.index(gaia.datasets.get("vaswani").get_corpus_iter())
    >>> bm25 = index.bm25(num_results=1000)

    Document texts are kept beside the Lucene files (``gaia-docstore.jsonl.gz``) so that retrieval
    can return a ``text`` column without a round trip to Java per document.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._texts: Optional[Dict[str, str]] = None

    def built(self) -> bool:
        """Whether the folder holds a finished index."""
        return (self.path / DOCSTORE).is_file() and any(self.path.glob("segments_*"))

    def index(self, docs: Iterable[dict], *, overwrite: bool = False, batch_size: int = 1000,
              threads: int = 1, verbose: bool = False) -> "LuceneIndex":
        """Build the index from an iterable of ``{"docno", "text"}`` dicts.

        An existing index is kept, and a FileExistsError raised, unless ``overwrite=True``.
        """
        if self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise FileExistsError(f"LuceneIndex: {self.path} is not empty; pass overwrite=True to rebuild it")
            shutil.rmtree(self.path)
        start_pyserini()
        from pyserini.index.lucene import LuceneIndexer

        self.path.mkdir(parents=True, exist_ok=True)
        indexer = LuceneIndexer(str(self.path), threads=threads)
        if verbose:
            docs = pt.tqdm(docs, desc="LuceneIndex", unit="d")
        batch, count = [], 0
        try:
            with gzip.open(self.path / DOCSTORE, "wt", encoding="utf-8") as store:
                for position, doc in enumerate(docs):
                    missing = [key for key in ("docno", "text") if key not in doc]
                    if missing:
                        raise KeyError(f"LuceneIndex.index: document {position} has no {missing} field "
                                       f"(expected dicts with 'docno' and 'text')")
                    docno, text = str(doc["docno"]), _clean_text(doc["text"])
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
        self._texts = None
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

    def _require_built(self):
        if not self.built():
            raise FileNotFoundError(f"LuceneIndex: no index at {self.path}; build it with .index(docs) first")

    def __repr__(self):
        return f"LuceneIndex({str(self.path)!r})"


def _clean_text(value) -> str:
    """A str with no lone surrogates (as left by decoding non-UTF-8 bytes), which Java cannot take."""
    return str(value).encode("utf-8", errors="replace").decode("utf-8")


class LuceneBM25(pt.Transformer):
    """BM25 over a :class:`LuceneIndex`: Q -> R with qid, query, docno, score, rank (and text).

    Queries are analysed as bags of words, so Lucene syntax characters in them are plain text.
    Reports ``postings`` (the document frequencies of the analysed query terms, summed) and
    ``docs_scored`` (documents returned) to any open operation-count scope.
    """

    def __init__(self, index: LuceneIndex, num_results: int = 1000, k1: float = 0.9, b: float = 0.4,
                 text: bool = True, threads: int = 1):
        if num_results < 1:
            raise ValueError(f"LuceneBM25: num_results must be at least 1, got {num_results}")
        self.index, self.num_results, self.k1, self.b = index, num_results, k1, b
        self.text, self.threads = text, threads
        self._searcher = None
        self._document_frequency: Dict[str, int] = {}

    def _search_tools(self):
        if self._searcher is None:
            start_pyserini()
            from pyserini.search.lucene import LuceneSearcher
            searcher = LuceneSearcher(str(self.index.path))
            searcher.set_bm25(self.k1, self.b)
            self._searcher = searcher
        return self._searcher

    def _postings(self, query: str) -> int:
        reader = self._search_tools().index_reader
        total = 0
        for term in reader.analyze(query):
            if term not in self._document_frequency:
                self._document_frequency[term] = reader.get_term_counts(term, analyzer=None)[0]
            total += self._document_frequency[term]
        return total

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(topics, extra_columns=["query"])
        out_columns = [*topics.columns.drop(["docno", "score", "rank", "text"], errors="ignore"),
                       "docno", "score", "rank", *(["text"] if self.text else [])]
        if len(topics) == 0:
            return pd.DataFrame(columns=out_columns)
        topics = topics.drop(columns=["docno", "score", "rank", "text"], errors="ignore")
        queries = [_clean_text(q) for q in topics["query"]]
        keys = [str(position) for position in range(len(queries))]  # row positions: qids may repeat
        hits = self._search_tools().batch_search(queries, keys, k=self.num_results, threads=self.threads)
        rows, postings = [], 0
        for position, query in enumerate(queries):
            postings += self._postings(query)
            rows.extend((position, hit.docid, hit.score) for hit in hits.get(keys[position], []))
        report(postings=postings, docs_scored=len(rows))
        found = pd.DataFrame(rows, columns=["_position", "docno", "score"])
        result = topics.reset_index(drop=True).rename_axis("_position").reset_index().merge(found, on="_position")
        result = result.drop(columns="_position")
        if self.text:
            texts = self.index.texts()
            result["text"] = [texts.get(d, "") for d in result["docno"]]
        result = pt.model.add_ranks(result)
        return result[out_columns]

    def __repr__(self):
        return f"LuceneBM25({self.index!r}, num_results={self.num_results}, k1={self.k1}, b={self.b})"
