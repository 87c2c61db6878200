"""EarlyExitReRanker: re-rank with score estimates from intermediate layers, stopping each query once
its top k stops changing between exits and dropping candidates that cannot reach it."""
import numpy as np
import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from ..encoders.checks import positive_integer, unit_interval
from .columns import require_columns, require_values
from .exit_heads import ExitHeads, LayerScorer
from .fusion import check_weight, fuse
from .measures import top_overlap


class EarlyExitReRanker(pt.Transformer):
    """Re-ranks candidates (qid, query, docno, text) with ``encoder``, layer by layer.

    After each exit layer every live candidate of a query gets an estimate of its full-depth score
    (through fitted :class:`~pyterrier_gaia.rankers.exit_heads.ExitHeads`, or with ``heads=None``
    the model's own pooling / classifier on that layer). Then, per query:

    - **exit**: the query stops when its top ``k`` at this exit and at the previous one share at
      least ``agreement`` of their documents (top-k overlap, |A ∩ B| / k, order ignored); the last
      layer is always an exit, so the first exit never stops a query and ``agreement=1.0`` still
      exits as soon as two consecutive exits pick the same top-k set;
    - **cascade** (``cascade=True``, needs heads): a candidate is dropped when its estimate is more
      than the layer's margin below the query's k-th estimate. The margin is calibrated on the
      heads' held-out pseudo-queries: the ``cascade_quantile`` of how far below the k-th estimate at
      that layer the documents of the full-depth top k were (see ``ExitHeads.margin``). A dropped
      candidate keeps its last estimate and still counts in the query's top k.

    An input column ``agreement`` (one value per query, at least 0), when present, overrides the
    ``agreement`` threshold per query (the diffusion re-ranker draws one per query); a value above 1
    is never met, so that query runs every layer.

    A document's score is its estimate from the last layer it ran for that query. Output: the input
    with ``score``, ``rank`` (from 0), ``exit_layer`` (the layer its query stopped at) and
    ``doc_layers`` (the layers that document ran for that query). ``exits`` are 1-based layer
    numbers (default: every layer). With ``interpolate=α`` the output score is
    ``α·bm25 + (1−α)·estimate``, each min-max normalised per query, as in ``ReRanker``.

    Queries are taken in groups whose encoder inputs (``encoder.inputs``) number up to ``group_size``
    (default: the encoder's ``default_group_inputs``); a group's hidden states are held in memory
    together. A bi-encoder's inputs are the distinct texts of a group, each run once (as deep as the
    deepest query needing it), so its default group is large (16384 texts: candidate lists of
    different queries share documents); a cross-encoder's are its pairs, never shared (default 1024).
    A bi-encoder's queries are encoded at full depth.

    >>> ee = gaia.EarlyExitReRanker(gaia.BiEncoder(), k=10, agreement=0.9)
    >>> ee.fit(ds.get_corpus_iter(), index.bm25(num_results=20), "vaswani")
    >>> (bm25 % 100 >> ee)(topics)
    """

    def __init__(self, encoder, exits=None, k=10, agreement=0.9, cascade=True, heads=None, batch_size=32,
                 interpolate=None, cascade_quantile=0.95, group_size=None, verbose=False):
        layers = encoder.num_layers
        exits = list(range(1, layers + 1)) if exits is None else sorted({int(e) for e in exits})
        if not exits or exits[0] < 1 or exits[-1] > layers:
            raise ValueError(f"EarlyExitReRanker: exits={exits}; {encoder.model_name!r} has {layers} layers, "
                             f"so exits must be layer numbers from 1 to {layers}")
        stage = "EarlyExitReRanker"
        self.encoder = encoder
        self.exits = exits if exits[-1] == layers else exits + [layers]
        self.k, self.cascade = positive_integer(stage, "k", k), bool(cascade)
        self.agreement = unit_interval(stage, "agreement", agreement)
        self.cascade_quantile = unit_interval(stage, "cascade_quantile", cascade_quantile)
        self.batch_size = positive_integer(stage, "batch_size", batch_size)
        self.group_size = positive_integer(stage, "group_size", encoder.default_group_inputs
                                           if group_size is None else group_size)
        self.interpolate, self.verbose = check_weight(stage, interpolate), verbose
        self.heads = None
        if heads is not None:
            self.heads = heads if isinstance(heads, ExitHeads) else ExitHeads.load(heads)
            self.heads.check(encoder)

    def __repr__(self):
        return (f"EarlyExitReRanker({self.encoder!r}, exits={self.exits}, k={self.k}, agreement={self.agreement}, "
                f"cascade={self.cascade}, heads={self.heads!r})")

    def fit(self, docs, retriever, collection: str, **options) -> "EarlyExitReRanker":
        """Fit exit heads on the collection's own text (see :meth:`ExitHeads.fit`); returns ``self``."""
        options.setdefault("batch_size", self.batch_size)
        options.setdefault("verbose", self.verbose)
        self.heads = ExitHeads.fit(self.encoder, docs, retriever, collection, **options)
        return self

    # ----- input
    def _required(self):
        return ["qid", "query", "docno", "text"] + (["score"] if self.interpolate is not None else [])

    def transform_outputs(self, inp_cols):
        self._check(inp_cols)
        return list(inp_cols) + [c for c in ("score", "rank", "exit_layer", "doc_layers") if c not in inp_cols]

    def _check(self, columns):
        require_columns("EarlyExitReRanker", self, columns, self._required(),
                        f"expected candidates with {', '.join(self._required())} (e.g. from gaia.LuceneIndex(...).bm25())")

    # ----- ranking
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._check(list(inp.columns))
        if self.cascade and self.heads is None:
            raise ValueError("EarlyExitReRanker: cascade=True needs fitted exit heads (their margins decide "
                             "what to drop): call .fit(docs, retriever, collection), pass heads=, or set "
                             "cascade=False to score layers with the model's own head")
        out = inp.drop(columns=["rank", "exit_layer", "doc_layers"], errors="ignore").reset_index(drop=True)
        if len(out) == 0:
            out["score"] = pd.Series(dtype="float64")
            out["exit_layer"] = out["doc_layers"] = pd.Series(dtype="int64")
            return pt.model.add_ranks(out)[self.transform_outputs(list(inp.columns))]
        require_values("EarlyExitReRanker", out,
                       [c for c in self._required() if c in ("query", "text", "score")])
        first_stage = out["score"].astype("float64") if self.interpolate is not None else None
        scorer = LayerScorer(self.encoder, self.heads)
        query_codes = pd.factorize(out["qid"])[0]
        scores = np.zeros(len(out))
        doc_layers = np.zeros(len(out), dtype=np.int64)
        exit_layer = np.zeros(len(out), dtype=np.int64)
        margins = {layer: self.heads.margin(layer, self.k, self.cascade_quantile) for layer in self.exits} \
            if self.cascade else None
        thresholds = self._thresholds(out)
        for rows in self._groups(query_codes, self.encoder.input_keys(out["query"], out["text"])):
            group = out.iloc[rows]
            scores[rows], doc_layers[rows], exit_layer[rows] = self._rank_group(scorer, group, query_codes[rows],
                                                                                margins, thresholds[rows])
        report(pairs=len(out))
        out["score"] = scores if self.interpolate is None else \
            fuse(self.interpolate, first_stage, scores, out["qid"])
        out["exit_layer"], out["doc_layers"] = exit_layer, doc_layers
        out = pt.model.add_ranks(out).sort_values(["qid", "rank"], kind="stable").reset_index(drop=True)
        return out[self.transform_outputs(list(inp.columns))]

    def _thresholds(self, out: pd.DataFrame) -> np.ndarray:
        """The agreement threshold of each row: the ``agreement`` column if the input has one, else ``self.agreement``."""
        if "agreement" not in out.columns:
            return np.full(len(out), self.agreement)
        values = pd.to_numeric(out["agreement"], errors="coerce").to_numpy(dtype="float64")
        if np.isnan(values).any() or (values < 0).any():
            raise ValueError("EarlyExitReRanker: the input column 'agreement' must hold numbers of at least 0 "
                             "(one threshold per query; above 1: never exit early)")
        return values

    def _groups(self, query_codes, input_keys):
        """Row positions of consecutive groups of whole queries, each with up to ``group_size``
        encoder inputs (rows with equal ``input_keys`` share one), or one query if it alone has more."""
        rows_of = pd.Series(np.arange(len(query_codes))).groupby(query_codes, sort=False).indices
        group, seen, count = [], set(), 0
        for rows in rows_of.values():
            distinct = set(input_keys[rows])
            if group and count + len(distinct - seen) > self.group_size:
                yield np.concatenate(group)
                group, seen, count = [], set(), 0
            group.append(rows)
            count += len(distinct - seen)
            seen |= distinct
        yield np.concatenate(group)

    def _rank_group(self, scorer, group: pd.DataFrame, query_codes, margins, thresholds):
        """Scores, layers per document and exit layer per row of a group of whole queries
        (``margins``: the cascade's margin per exit layer, or None for no cascade; ``thresholds``:
        the agreement threshold of each row)."""
        queries = pd.factorize(query_codes)[0]
        encoder = self.encoder
        inputs = encoder.inputs(group["query"], group["text"], self.batch_size)
        item_of_pair = inputs.item_of_pair
        run = encoder.layer_run(inputs, self.batch_size)
        members = list(pd.Series(np.arange(len(group))).groupby(queries, sort=True).indices.values())
        scores = np.zeros(len(group))
        doc_layers = np.zeros(len(group), dtype=np.int64)
        exit_layer = np.zeros(len(members), dtype=np.int64)
        live = np.ones(len(group), dtype=bool)
        previous = [None] * len(members)
        for layer in self.exits:
            if not live.any():
                break
            active = np.zeros(len(inputs), dtype=bool)
            active[item_of_pair[live]] = True
            run.advance(layer, active)
            rows, read = run.features(scorer.reads(layer), layer)
            values = scorer.outputs(layer, read)
            outputs = np.zeros((len(inputs),) + values.shape[1:], dtype=np.float32)
            outputs[rows] = values
            pairs = np.flatnonzero(live)
            scores[pairs] = encoder.pair_scores(outputs, inputs, pairs)
            doc_layers[pairs] = layer
            for query, mine in enumerate(members):
                if exit_layer[query]:
                    continue
                ranked = mine[np.argsort(-scores[mine], kind="stable")]
                top = ranked[:self.k]
                if layer == self.exits[-1] or (previous[query] is not None
                                               and top_overlap(top, previous[query]) >= thresholds[mine[0]]):
                    exit_layer[query] = layer
                    live[mine] = False
                    continue
                previous[query] = top
                if margins is not None:
                    rest = ranked[len(top):]
                    live[rest[scores[rest] < scores[top[-1]] - margins[layer]]] = False
        return scores, doc_layers, exit_layer[queries]
