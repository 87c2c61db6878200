"""A test collection shaped like a PyTerrier dataset: corpus iterator, topics and qrels."""
from typing import Callable, Iterator, Optional

import pandas as pd
import pyterrier as pt


class Collection(pt.datasets.Dataset):
    """A corpus, its topics and its judgments, read lazily from files.

    ``get_corpus_iter()`` yields ``{"docno", "text"}``; ``get_topics()`` is a qid/query frame and
    ``get_qrels()`` a qid/docno/label frame, as with ``pt.get_dataset(...)``.
    """

    def __init__(self, name: str, corpus: Callable[[], Iterator[dict]], topics: Callable[[], pd.DataFrame],
                 qrels: Callable[[], pd.DataFrame], provenance: str = ""):
        self.name = name
        self.provenance = provenance
        self._corpus, self._topics_reader, self._qrels_reader = corpus, topics, qrels
        self._topics: Optional[pd.DataFrame] = None
        self._qrels: Optional[pd.DataFrame] = None

    def get_corpus_iter(self, *, verbose: bool = False) -> Iterator[dict]:
        docs = self._corpus()
        if verbose:
            docs = pt.tqdm(docs, desc=f"{self.name} corpus", unit="d")
        return docs

    def get_topics(self, variant: Optional[str] = None) -> pd.DataFrame:
        if self._topics is None:
            self._topics = self._topics_reader()
        return self._topics.copy()

    def get_qrels(self, variant: Optional[str] = None) -> pd.DataFrame:
        if self._qrels is None:
            self._qrels = self._qrels_reader()
        return self._qrels.copy()

    def get_corpus_lang(self) -> str:
        return "en"

    def info_url(self) -> Optional[str]:
        return None

    def __repr__(self) -> str:
        return f"Collection({self.name!r})"
