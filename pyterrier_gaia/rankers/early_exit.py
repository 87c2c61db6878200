"""EarlyExitReRanker: re-rank with score estimates from intermediate layers, dropping each query's
candidates that cannot reach its top k (and, optionally, stopping a query once its top k is stable)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt

from ..cost.counts import report
from ..checks import positive_integer, unit_interval
from .columns import require_columns, require_values
from .artifact_meta import checked_meta, write_meta
from .exit_heads import (ExitHeads, LayerScorer, config_hash, fitted_for, layer_outputs, model_label,
                         reads_first_stage)
from .fusion import check_weight, fuse, in_query_order
from .measures import top_overlap
from .self_fit import collection_key, load_cached, load_or_fit

#: how exit heads are fitted on first use (part of their cache key): on the first ``queries`` queries
#: with more than k candidates that the ranker re-ranks (at full depth, so exactly), cross-fitted by query
SELF_FIT = {"queries": 12, "folds": 4, "seed": 0, "source": "first queries at full depth"}
#: the format of a saved EarlyExitReRanker (PyTerrier's Artifact ``format``)
FORMAT = "gaia-early-exit"
#: the cascade's default error rate: the chance that a document of the full-depth top k is dropped
#: (docs/early-exit.md, "Measured": at most 0.006 nDCG@10 lost on three collections, for 1.65-2.27x fewer
#: layer FLOPs; 0.3 gave 2.8-3.3x for at most 0.008)
ERROR_RATE = 0.1


class EarlyExitReRanker(pt.Transformer):
    """Re-ranks candidates (qid, query, docno, text) with ``encoder``, layer by layer.

    >>> (bm25 % 100 >> gaia.EarlyExitReRanker(gaia.CrossEncoder()))(topics)

    After each exit layer every live candidate of a query gets an estimate of its full-depth score
    (through :class:`~pyterrier_gaia.rankers.exit_heads.ExitHeads`, or with ``cascade=False`` and no
    heads the model's own pooling / classifier on that layer). Then, per query:

    - **cascade** (``cascade=True``): a candidate stops when its estimate is more than the layer's
      margin below the query's k-th estimate: it cannot reach the top k. Margins are calibrated on the
      heads' cross-fitted pseudo-query estimates so that a document of the full-depth top ``k`` is
      dropped with probability at most ``error_rate`` over all layers (``ExitHeads.margins``). A
      stopped candidate's score is its last estimate, shifted down (one offset per query) if needed
      so that it ranks below every candidate that ran on.
    - **exit** (``agreement``, off by default): the query stops when its top ``k`` at this exit and at
      the previous one share at least ``agreement`` of their documents (|A ∩ B| / k); its documents
      keep their estimates. An input column ``agreement`` (one value per query, at least 0; above 1:
      never) overrides it per query (the diffusion re-ranker draws one per query).

    Candidates that survive to the last layer get their exact full-depth score.

    **No set-up calls.** With ``cascade=True`` and no ``heads``, the ranker fits its heads by itself,
    on the queries it is asked to re-rank: the first ``SELF_FIT["queries"]`` (12) queries with more
    than ``k`` candidates are re-ranked at full depth (exactly, so they lose nothing), and the states
    every layer produced on the way are kept; then each layer's head is fitted to the full-depth
    scores, cross-fitted by query, and the margins are calibrated on the held-out queries
    (:meth:`ExitHeads.from_outputs`; no judgments, no pseudo-queries). The queries after them are
    re-ranked with the cascade, in the same call or a later one. The fit itself is metered as its own
    start-up record (``"STAGE / fit exit heads"``) inside ``gaia.Metered``, ``gaia.meter`` or
    ``gaia.Experiment``, and cached in the gaia cache by model, collection (the ``collection`` name if
    given, else a fingerprint of the candidates of the first call it fitted from) and fitting settings:
    a later run that starts the same way loads the heads and runs the cascade from its first query.
    With 12 queries of 10 top documents, ``error_rate`` can be no lower than 1/120; a lower one drops
    nothing (with a warning). :meth:`fit` fits on a collection instead (pseudo-queries through a
    retriever); :meth:`save` and :meth:`load` keep a fitted ranker.

    Output: the input with ``score``, ``rank`` (from 0), ``exit_layer`` (the layer its query stopped
    at) and ``doc_layers`` (the layers that document ran). ``exits`` are 1-based layer numbers
    (default: every layer). With ``interpolate=α`` the output score is ``α·bm25 + (1−α)·estimate``,
    each min-max normalised per query, as in ``ReRanker``.

    Queries are taken in groups whose encoder inputs (``encoder.inputs``) number up to ``group_size``
    (default: the encoder's ``default_group_inputs``); a group's hidden states are held in memory
    together. A bi-encoder's inputs are the distinct texts of a group, each run once (as deep as the
    deepest query needing it); a cross-encoder's are its pairs. A bi-encoder's queries are encoded at
    full depth.
    """

    def __init__(self, encoder, exits=None, k=10, agreement=None, cascade=True, heads=None, batch_size=32,
                 interpolate=None, error_rate=ERROR_RATE, group_size=None, collection=None, verbose=False):
        layers = encoder.num_layers
        exits = list(range(1, layers + 1)) if exits is None else sorted({int(e) for e in exits})
        if not exits or exits[0] < 1 or exits[-1] > layers:
            raise ValueError(f"EarlyExitReRanker: exits={exits}; {encoder.model_name!r} has {layers} layers, "
                             f"so exits must be layer numbers from 1 to {layers}")
        stage = "EarlyExitReRanker"
        self.encoder = encoder
        self.exits = exits if exits[-1] == layers else exits + [layers]
        self.k, self.cascade = positive_integer(stage, "k", k), bool(cascade)
        self.agreement = None if agreement is None else unit_interval(stage, "agreement", agreement)
        self.error_rate = unit_interval(stage, "error_rate", error_rate)
        self.batch_size = positive_integer(stage, "batch_size", batch_size)
        self.group_size = positive_integer(stage, "group_size", encoder.default_group_inputs
                                           if group_size is None else group_size)
        self.interpolate, self.verbose = check_weight(stage, interpolate), verbose
        self.collection = None if collection is None else str(collection)
        self.heads = None
        self._fit_key, self._kept, self._kept_queries = None, [], set()   # the self-fit under way
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
        self.collection = str(collection)
        return self

    # ----- fitting on first use
    def _fitting(self, out: pd.DataFrame) -> bool:
        """Whether this call's candidates start or go on with the self-fit (see the class docstring):
        a cascade without heads, and a query with more than ``k`` candidates (else nothing to drop).
        On the first such call, the heads are loaded instead if a run that started the same way cached them."""
        if not self.cascade or self.heads is not None or out.groupby("qid", sort=False).size().max() <= self.k:
            return False
        if self._fit_key is None:
            from .. import __version__

            docs = out.drop_duplicates("docno").sort_values("docno", kind="stable")
            self._fit_key = {"model": model_label(self.encoder), "architecture": config_hash(self.encoder),
                             "precision": self.encoder.precision,
                             "kind": self.encoder.kind, "package": __version__, "settings": SELF_FIT,
                             "first_stage": reads_first_stage(self.encoder, out.columns),
                             "collection": collection_key(self.collection, docs["docno"].astype(str),
                                                          docs["text"].astype(str))}
            self.heads = load_cached("exit heads", self._fit_key, self._load_heads)
        return self.heads is None

    def _load_heads(self, folder: Path) -> ExitHeads:
        return _checked(ExitHeads.load(folder / "heads.npz"), self.encoder)

    def _collect(self, group: pd.DataFrame, new_queries):
        """Re-rank ``group`` (whole queries) at full depth, keeping every layer's states for the self-fit
        (``new_queries``: its qids that count towards it); fit the heads once enough queries are kept.
        Its scores, layers per document and exit layers."""
        data = layer_outputs(LayerScorer(self.encoder), group, self.batch_size, self.verbose)
        self._kept.append((data, group["qid"].to_numpy()))
        self._kept_queries.update(new_queries)
        if len(self._kept_queries) >= SELF_FIT["queries"]:
            collection = self.collection or self._fit_key["collection"]
            runs, self._kept = self._kept, []

            def fit():
                return ExitHeads.from_outputs(self.encoder, runs, collection, folds=SELF_FIT["folds"],
                                              seed=SELF_FIT["seed"], info={"source": SELF_FIT["source"]})
            self.heads = load_or_fit("exit heads", self._fit_key, fit,
                                     lambda heads, folder: heads.write(folder / "heads.npz"), self._load_heads)
        layers = np.full(len(group), self.encoder.num_layers, dtype=np.int64)
        return self.encoder.pair_scores(data["target"], data["inputs"]), layers, layers

    # ----- one artifact
    def save(self, path) -> Path:
        """Save the fitted ranker as one artifact folder (PyTerrier's conventions: ``pt_meta.json``
        with its type, format and package, beside the heads); returns its path. Load it with
        :meth:`load`."""
        if self.heads is None:
            raise ValueError("EarlyExitReRanker.save: nothing fitted to save yet; run the ranker once on "
                             "candidates (it fits its exit heads on first use), or call .fit(...) first")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.heads.write(folder / "heads.npz")
        write_meta(folder, FORMAT, self.encoder, encoder=fitted_for(self.encoder), model=self.heads.model,
                   architecture=self.heads.config, collection=self.heads.collection,
                   settings={"exits": self.exits, "k": self.k, "agreement": self.agreement, "cascade": self.cascade,
                             "error_rate": self.error_rate, "interpolate": self.interpolate,
                             "batch_size": self.batch_size})
        return folder

    @classmethod
    def load(cls, path, encoder, **options) -> "EarlyExitReRanker":
        """The ranker saved at ``path`` by :meth:`save`, on ``encoder`` (the model it was fitted for);
        ``options`` override its saved settings. Refuses an artifact of another kind, of another
        package version, or fitted for another model, saying what to do."""
        folder = Path(path)
        meta = checked_meta(folder, FORMAT, "EarlyExitReRanker")
        heads = _checked(ExitHeads.load(folder / "heads.npz"), encoder, f"EarlyExitReRanker.load: {folder}")
        return cls(encoder, heads=heads, collection=heads.collection, **{**meta["settings"], **options})

    # ----- input
    def _required(self):
        reads_score = self.interpolate is not None or (self.heads is not None and self.heads.first_stage)
        return ["qid", "query", "docno", "text"] + (["score"] if reads_score else [])

    def transform_outputs(self, inp_cols):
        self._check(inp_cols)
        return list(inp_cols) + [c for c in ("score", "rank", "exit_layer", "doc_layers") if c not in inp_cols]

    def _check(self, columns):
        require_columns("EarlyExitReRanker", self, columns, self._required(),
                        f"expected candidates with {', '.join(self._required())} (e.g. from gaia.LuceneIndex(...).bm25())")

    # ----- ranking
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self._check(list(inp.columns))
        out = inp.drop(columns=["rank", "exit_layer", "doc_layers"], errors="ignore").reset_index(drop=True)
        if len(out) == 0:
            out["score"] = pd.Series(dtype="float64")
            out["exit_layer"] = out["doc_layers"] = pd.Series(dtype="int64")
            return pt.model.add_ranks(out)[self.transform_outputs(list(inp.columns))]
        require_values("EarlyExitReRanker", out, [c for c in ("query", "text", "score") if c in out.columns])
        first_stage = out["score"].astype("float64") if self.interpolate is not None else None
        fitting = self._fitting(out)
        query_codes = pd.factorize(out["qid"])[0]
        scores = np.zeros(len(out))
        doc_layers = np.zeros(len(out), dtype=np.int64)
        exit_layer = np.zeros(len(out), dtype=np.int64)
        thresholds, qids = self._thresholds(out), out["qid"].astype(str).to_numpy()
        scorer = margins = None
        for rows in self._groups(query_codes, self.encoder.input_keys(out["query"], out["text"])):
            if fitting and self.heads is None:      # the self-fit's queries: full depth, states kept
                rows, rest, new_queries = self._split_for_fit(rows, query_codes, qids)
                scores[rows], doc_layers[rows], exit_layer[rows] = self._collect(out.iloc[rows], new_queries)
                if not len(rest):
                    continue
                rows = rest
            if scorer is None or scorer.heads is not self.heads:    # first group, or heads just fitted
                scorer = LayerScorer(self.encoder, self.heads)
                margins = self.heads.margins(self.exits, self.k, self.error_rate) \
                    if self.cascade and self.heads is not None else None
            scores[rows], doc_layers[rows], exit_layer[rows] = self._rank_group(
                scorer, out.iloc[rows], query_codes[rows], margins, thresholds[rows])
        report(pairs=len(out))
        out["score"] = output_scores(scores, first_stage, self.interpolate, doc_layers, exit_layer, query_codes)
        out["exit_layer"], out["doc_layers"] = exit_layer, doc_layers
        out = in_query_order(pt.model.add_ranks(out), "rank")
        return out[self.transform_outputs(list(inp.columns))]

    def _thresholds(self, out: pd.DataFrame) -> np.ndarray:
        """The agreement threshold of each row: the ``agreement`` column if the input has one, else
        ``self.agreement`` (None: never met)."""
        if "agreement" not in out.columns:
            return np.full(len(out), np.inf if self.agreement is None else self.agreement)
        values = pd.to_numeric(out["agreement"], errors="coerce").to_numpy(dtype="float64")
        if np.isnan(values).any() or (values < 0).any():
            raise ValueError("EarlyExitReRanker: the input column 'agreement' must hold numbers of at least 0 "
                             "(one threshold per query; above 1: never exit early)")
        return values

    def _split_for_fit(self, rows, query_codes, qids):
        """``rows`` (a group of whole queries) split into its first queries, up to as many new ones (not
        kept yet, with more than ``k`` candidates: those that calibrate margins) as the self-fit still
        needs, and the rest; and those new queries' qids."""
        needed = SELF_FIT["queries"] - len(self._kept_queries)
        sizes, qid_of = np.bincount(query_codes[rows]), dict(zip(query_codes[rows], qids[rows]))
        taken, new = [], []
        for code in pd.unique(query_codes[rows]):
            if len(new) >= needed:
                break
            taken.append(code)
            if sizes[code] > self.k and qid_of[code] not in self._kept_queries:
                new.append(qid_of[code])
        kept = np.isin(query_codes[rows], taken)
        return rows[kept], rows[~kept], new

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
        first_stage = scorer.first_stage(group)
        fused_with = None if self.interpolate is None else group["score"].to_numpy(dtype="float64")
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
            values = scorer.outputs(layer, read, None if first_stage is None else first_stage[rows])
            outputs = np.zeros((len(inputs),) + values.shape[1:], dtype=np.float32)
            outputs[rows] = values
            pairs = np.flatnonzero(live)
            scores[pairs] = encoder.pair_scores(outputs, inputs, pairs)
            doc_layers[pairs] = layer
            for query, mine in enumerate(members):
                if exit_layer[query]:
                    continue
                exits, previous[query], drop = layer_decision(
                    scores[mine], previous[query], thresholds[mine[0]], None if margins is None else margins[layer],
                    self.k, layer == self.exits[-1], None if fused_with is None else fused_with[mine],
                    self.interpolate)
                if exits:
                    exit_layer[query] = layer
                    live[mine] = False
                else:
                    live[mine[drop]] = False
        return scores, doc_layers, exit_layer[queries]


def layer_decision(scores: np.ndarray, previous, threshold: float, margin, k: int, last: bool,
                   first=None, interpolate=None):
    """One query's decision after an exit layer, from its candidates' current ``scores`` (a dropped
    candidate's is its last estimate): ``(exits, top, drop)``: whether the query stops here (at the
    ``last`` layer, or when its top ``k`` shares at least ``threshold`` of the ``previous`` exit's top),
    its top k (positions in ``scores``), and which candidates the cascade drops (a bool mask: those more
    than ``margin`` below the k-th score; none without a margin, or when the query stops).

    With ``interpolate`` α, the query's ranking is the one it is output in, fused with the first stage's
    scores ``first`` (:func:`~pyterrier_gaia.rankers.fusion.fuse`), and the margin, a bound on the
    scores' errors, is scaled to it: (1 − α) · margin / the span of ``scores``. A candidate with a high
    first-stage score is then kept where the output's top k may still take it."""
    if interpolate is not None:
        span = np.ptp(scores) if len(scores) else 0.0
        if margin is not None:
            margin = (1 - interpolate) * margin / span if span > 0 else np.inf
        scores = fuse(interpolate, first, scores)
    ranked = np.argsort(-scores, kind="stable")
    top, drop = ranked[:k], np.zeros(len(scores), dtype=bool)
    if last or (previous is not None and top_overlap(top, previous) >= threshold):
        return True, top, drop
    if margin is not None:
        rest = ranked[k:]
        drop[rest[scores[rest] < scores[top[-1]] - margin]] = True
    return False, top, drop


def output_scores(scores: np.ndarray, first, interpolate, doc_layers: np.ndarray, exit_layer: np.ndarray,
                  query_codes: np.ndarray) -> np.ndarray:
    """Every query's output scores (:func:`query_output`); arrays by row, ``query_codes`` labelling queries."""
    out, first = np.empty(len(scores)), None if first is None else np.asarray(first, dtype="float64")
    for rows in pd.Series(np.arange(len(scores))).groupby(query_codes, sort=False).indices.values():
        out[rows] = query_output(scores[rows], None if first is None else first[rows], interpolate,
                                 doc_layers[rows], exit_layer[rows[0]])
    return out


def query_output(scores: np.ndarray, first, interpolate, doc_layers: np.ndarray, exit_layer: int) -> np.ndarray:
    """One query's output scores: its candidates' ``scores``, fused with the first stage's (``first``) at
    weight ``interpolate`` unless it is None, then those the cascade dropped (fewer ``doc_layers`` than
    the query's ``exit_layer``) moved below those that ran to it (:func:`below_survivors`). Fusing
    first keeps the scale of the exact scores: the dropped candidates' estimates set the minimum, not
    their shifted values."""
    out = np.array(scores, dtype="float64") if interpolate is None else fuse(interpolate, first, scores)
    below_survivors(out, np.flatnonzero(doc_layers < exit_layer), np.flatnonzero(doc_layers == exit_layer))
    return out


def below_survivors(scores: np.ndarray, dropped: np.ndarray, kept: np.ndarray) -> None:
    """Shift the scores of a query's dropped candidates down by one offset, if needed, so that they rank
    below every candidate that ran to its query's exit layer: the cascade judged they cannot reach the
    top k, and a stale estimate must not outrank an exact score."""
    if len(dropped) and len(kept):
        overlap = scores[dropped].max() - scores[kept].min()
        if overlap >= 0:
            scores[dropped] -= overlap + 1e-3


def _checked(heads: ExitHeads, encoder, where: str = "EarlyExitReRanker") -> ExitHeads:
    """``heads``, after checking they were fitted for ``encoder`` (a ValueError saying what to do if not)."""
    try:
        heads.check(encoder)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return heads
