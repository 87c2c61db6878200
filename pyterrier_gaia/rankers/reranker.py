"""ReRanker: rescore a ranking's candidates with a neural encoder, optionally fused with the first stage."""
import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from ..checks import positive_integer
from .columns import require_columns, require_values
from .fusion import check_weight, rescored, rescored_columns


class ReRanker(pt.Transformer):
    """Rescores candidates (qid, query, docno, text) with ``encoder.score`` and re-ranks them.

    With ``interpolate=α`` (0..1) the new score is ``α·s1 + (1−α)·s2``, where s1 is the input
    ``score`` and s2 the neural score, each min-max normalised within the query (a query whose
    scores are all equal gets 0 for that part). A row without query or text (None or NaN), or,
    when fusing, without a finite score, is an error naming it. Made by ``encoder.reranker(...)``;
    with ``precision="auto"``, ``precision_choice`` records what was chosen and why.
    """

    def __init__(self, encoder, batch_size=32, interpolate=None, verbose=False):
        self.encoder = encoder
        self.batch_size = positive_integer("ReRanker", "batch_size", batch_size)
        self.interpolate = check_weight("ReRanker", interpolate)
        self.verbose = verbose
        self.precision_choice = None  # set when precision="auto" chose the precision

    @property
    def precision(self) -> str:
        """The precision the encoder runs at."""
        return self.encoder.precision

    def __repr__(self):
        fused = "" if self.interpolate is None else f", interpolate={self.interpolate}"
        return f"ReRanker({self.encoder!r}{fused})"

    def _required(self):
        return ["qid", "query", "docno", "text"] + (["score"] if self.interpolate is not None else [])

    def transform_outputs(self, inp_cols):
        self._check(inp_cols)
        return rescored_columns(inp_cols)

    def _check(self, columns):
        missing = [c for c in self._required() if c not in columns]
        if "text" in missing:
            hint = ("add the text with pt.text.get_text(index_or_dataset, 'text') before the re-ranker, or use a "
                    "first stage that carries it, e.g. gaia.LuceneIndex(...).bm25()")
        elif "score" in missing:
            hint = "interpolate= fuses with the first-stage score, so it needs a 'score' column"
        else:
            hint = f"expected {', '.join(self._required())}"
        require_columns(repr(self), self, columns, self._required(), hint)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._check(list(inp.columns))
        if len(inp) == 0:
            return rescored(inp, [])
        require_values(repr(self), inp, [c for c in self._required() if c in ("query", "text", "score")])
        neural = self.encoder.score(inp["query"].to_numpy(), inp["text"].to_numpy(), self.batch_size, self.verbose)
        report(pairs=len(inp))
        return rescored(inp, neural, self.interpolate)
