"""How a LuceneIndex turns text into terms: a stopword list and a stemmer, recorded with the index.

The default is Terrier's: its 733-word stopword list (``stopwords/terrier.txt``, shipped with this package,
see ``stopwords/PROVENANCE.txt``) and the Porter stemmer, through Anserini's ``DefaultEnglishAnalyzer``.
``stopwords="lucene"`` is Anserini's own default (Lucene's 33 English stopwords), ``"none"`` keeps every
word, and a list of words is a stopword list of your own. Stemmers: ``"porter"``, ``"krovetz"``, ``"none"``.

The stopword list is copied into the index folder at build time, so the same list analyses queries at
search time wherever the index is moved.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union

STOPWORD_LISTS = ("terrier", "lucene", "none")
STEMMERS = ("porter", "krovetz", "none")
STOPWORDS_FILE = "gaia-stopwords.txt"
TERRIER_STOPWORDS = Path(__file__).parent / "stopwords" / "terrier.txt"


@dataclass(frozen=True)
class Analyser:
    """A stopword choice (a list name, or ``"custom"`` with its words) and a stemmer."""

    stopwords: str = "terrier"
    stemmer: str = "porter"
    words: Tuple[str, ...] = ()

    @classmethod
    def of(cls, stopwords: Union[str, List[str]] = "terrier", stemmer: str = "porter") -> "Analyser":
        """Check the user's choice; a list or tuple of words is a custom stopword list."""
        if stemmer not in STEMMERS:
            raise ValueError(f"LuceneIndex: stemmer={stemmer!r}; expected one of {', '.join(STEMMERS)}")
        if isinstance(stopwords, (list, tuple)):
            if not all(isinstance(word, str) and word.strip() for word in stopwords):
                raise ValueError("LuceneIndex: a custom stopword list must hold non-empty strings")
            return cls("custom", stemmer, tuple(sorted({word.strip().lower() for word in stopwords})))
        if stopwords not in STOPWORD_LISTS:
            raise ValueError(f"LuceneIndex: stopwords={stopwords!r}; expected one of "
                             f"{', '.join(STOPWORD_LISTS)} or a list of words")
        return cls(stopwords, stemmer)

    def record(self) -> dict:
        """What is written to the index's ``gaia-index.json`` (custom words live in ``gaia-stopwords.txt``)."""
        return {"stopwords": self.stopwords, "stemmer": self.stemmer}

    @classmethod
    def recorded(cls, record: dict, folder: Path) -> "Analyser":
        """The analyser an index was built with, from its record and folder."""
        words = ()
        if record["stopwords"] == "custom":
            words = tuple(filter(None, (folder / STOPWORDS_FILE).read_text(encoding="utf-8").splitlines()))
        return cls(record["stopwords"], record["stemmer"], words)

    def _word_list(self) -> Tuple[str, ...]:
        if self.stopwords == "terrier":
            return tuple(filter(None, TERRIER_STOPWORDS.read_text(encoding="utf-8").splitlines()))
        return self.words

    def indexer_args(self, folder: Path) -> List[str]:
        """Anserini indexer arguments; writes the stopword list into ``folder`` when there is one."""
        args = ["-stemmer", self.stemmer]
        if self.stopwords == "none":
            return args + ["-keepStopwords"]
        if self.stopwords == "lucene":
            return args
        (folder / STOPWORDS_FILE).write_text("\n".join(self._word_list()) + "\n", encoding="utf-8")
        return args + ["-stopwords", str(folder / STOPWORDS_FILE)]

    def java(self, folder: Path):
        """The Java analyser for an index in ``folder`` (the JVM must be running)."""
        from jnius import autoclass
        english = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer")
        stopwords_file = str(folder / STOPWORDS_FILE) if self.stopwords in ("terrier", "custom") else None
        return english.fromArguments(self.stemmer, self.stopwords == "none", stopwords_file)

    def __str__(self):
        return f"stopwords={self.stopwords!r}, stemmer={self.stemmer!r}"
