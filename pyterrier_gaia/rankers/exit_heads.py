"""Exit heads: per-layer linear maps that turn an intermediate layer's state into an estimate of the
encoder's full-depth output, fitted by self-distillation (the encoder's own full-depth outputs as
targets; no judgments).

A head reads what the encoder's ``head_input`` gives at layer l (the pooled state, or the [CLS]
state) together with the model's own output on that layer (``layer_output``: the pooled embedding,
or the classifier's logit on layer l) and, for a cross-encoder whose candidates come with a first-stage
``score``, where the first stage put the candidate (:mod:`~pyterrier_gaia.rankers.first_stage`: a
signal that is not the model's own, and the one that lets early layers drop candidates; measured in
docs/early-exit.md). It estimates:

- bi-encoder: the final (pooled, normalised) embedding; the estimated score is its dot product
  with the query's full-depth embedding;
- cross-encoder: the final relevance logit.

The queries heads learn from are either pseudo-queries (a random span of a random document) put
through a first-stage retriever (:meth:`ExitHeads.fit`), or real queries with their candidates, run
at full depth anyway (:meth:`ExitHeads.from_outputs`: the early-exit ranker's self-fit on the first
queries it re-ranks). Each map is fitted by ridge regression on the states the encoder produced.
The estimates are cross-fitted by query (each query's by heads fitted without it, ``folds`` folds)
and kept with the full-depth scores: the early-exit cascade calibrates its margins on them
(:meth:`ExitHeads.margins`). Heads are saved keyed by model, collection and a hash of the model's
architecture, and refuse to serve another model.
"""
import hashlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..encoders.locate import label_of
from .first_stage import FEATURES as FIRST_STAGE, first_stage_features
from .ridge import ridge_fit


def model_label(encoder) -> str:
    """The model's name for keying heads (:func:`~pyterrier_gaia.encoders.locate.label_of`)."""
    return label_of(encoder.model_name)


def config_hash(encoder) -> str:
    """A short hash of what the heads depend on: the encoder's ``architecture()`` (its model's shape,
    its kind and, for a bi-encoder, its pooling)."""
    return hashlib.sha256(json.dumps(encoder.architecture(), sort_keys=True).encode()).hexdigest()[:12]


def fitted_for(encoder) -> str:
    """How messages name the encoder something was fitted for."""
    return f"{encoder.kind}-encoder {model_label(encoder)!r} (architecture hash {config_hash(encoder)}, " \
           f"{encoder.num_layers} layers)"


class LayerScorer:
    """An encoder's outputs after any layer: the model's own (its pooling or classifier on that layer),
    or, with fitted ``heads``, an exit head's estimate of its full-depth output (embedding or score)."""

    def __init__(self, encoder, heads=None):
        self.encoder, self.heads = encoder, heads
        if heads is not None:
            heads.check(encoder)

    def uses_head(self, layer: int) -> bool:
        """Whether the output after ``layer`` is an exit head's estimate (else the model's own output)."""
        return self.heads is not None and layer != self.encoder.num_layers

    def reads(self, layer: int):
        """What to compute from the states after ``layer`` (a function of hidden states and attention
        mask), which :meth:`outputs` then takes."""
        return head_features(self.encoder) if self.uses_head(layer) else self.encoder.layer_output

    def first_stage(self, candidates: pd.DataFrame):
        """The first-stage features the heads read beside the states, one row per encoder input of
        ``candidates`` (whole queries), or None if they read none."""
        if self.heads is None or not self.heads.first_stage:
            return None
        return first_stage_inputs(self.encoder, candidates)

    def outputs(self, layer: int, values: np.ndarray, first_stage=None) -> np.ndarray:
        """Estimated full-depth outputs (embeddings or scores) from what :meth:`reads` computed (and,
        for heads that read them, the inputs' :meth:`first_stage` features, in the same rows)."""
        if not self.uses_head(layer):
            return values
        return self.encoder.estimate_output(self.heads.apply(layer, values, first_stage))


class ExitHeads:
    """Fitted exit heads of one encoder on one collection (see the module docstring).

    >>> heads = ExitHeads.fit(enc, ds.get_corpus_iter(), index.bm25(num_results=20), "vaswani")
    >>> path = heads.save("heads/")
    >>> heads = ExitHeads.load("heads/", enc, "vaswani")
    """

    def __init__(self, kind, model, config, collection, layers, weights, held, info, first_stage=False,
                 precision="fp32"):
        self.kind, self.model, self.config, self.collection = kind, model, config, collection
        self.first_stage = bool(first_stage)   # whether the heads read first-stage features
        self.precision = str(precision)        # of the states they were fitted on (int8 states differ)
        self.layers = int(layers)
        self.weights = {int(l): np.asarray(w, dtype=np.float32) for l, w in weights.items()}
        # held-out pairs: their pseudo-query (codes), full-depth score, and each head's estimate
        self.held = {"query": np.asarray(held["query"], dtype=np.int64), "final": np.asarray(held["final"]),
                     "estimates": {int(l): np.asarray(e) for l, e in held["estimates"].items()}}
        self.info = info

    def __repr__(self):
        return (f"ExitHeads({self.kind}, model={self.model!r}, {self.precision}, collection={self.collection!r}, "
                f"layers={sorted(self.weights)})")

    # ----- using
    def apply(self, layer: int, states: np.ndarray, first_stage=None) -> np.ndarray:
        """The linear head of ``layer`` on the states it reads (rows x hidden) and, if the heads read
        them, the rows' first-stage features: rows x outputs."""
        if layer not in self.weights:
            raise KeyError(f"ExitHeads: no head for layer {layer}; fitted layers {sorted(self.weights)}")
        if self.first_stage:
            if first_stage is None:
                raise ValueError("ExitHeads: these heads read the candidates' first-stage scores beside the "
                                 "model's states; give candidates with a 'score' column (e.g. from BM25)")
            states = np.concatenate([states, first_stage], axis=1)
        weight = self.weights[layer]
        return states @ weight[:-1] + weight[-1]

    def check(self, encoder) -> None:
        """Raise a ValueError unless these heads were fitted for ``encoder``'s model and architecture, at
        its precision (a head reads the layer's states, and int8 states are not fp32's)."""
        if (encoder.kind, model_label(encoder), config_hash(encoder)) != (self.kind, self.model, self.config):
            raise ValueError(f"ExitHeads: heads fitted for {self.kind}-encoder {self.model!r} (architecture "
                             f"hash {self.config}, {self.layers} layers) cannot serve {fitted_for(encoder)}; "
                             f"fit heads for it (ExitHeads.fit, or the ranker's .fit)")
        if encoder.precision != self.precision:
            raise ValueError(f"ExitHeads: heads fitted on {self.model!r}'s {self.precision} states cannot serve it "
                             f"at {encoder.precision} (its states differ); fit heads at {encoder.precision} "
                             f"(ExitHeads.fit with the {encoder.precision} encoder, or let the ranker fit its own)")

    def margins(self, layers, k: int, error_rate: float) -> dict:
        """The cascade's margin at each of ``layers``, such that a document of a query's full-depth top
        ``k`` is dropped at some layer with probability at most ``error_rate``, on the held-out
        (cross-fitted) estimates.

        How far below the query's k-th estimate such a document's estimate falls at layer l (its
        shortfall) is measured in units of that layer's spread (the 0.9 quantile of the estimates'
        absolute error, each query's mean error taken out: only a query's ranking matters). Each
        top-k document's worst shortfall over the layers is one sample; the margin is λ · spread,
        λ the ``(n + 1)(1 - error_rate)``-th smallest of the n samples (split-conformal). One joint λ
        rather than a union bound over layers, whose errors go together: the union bound needs
        ``L / error_rate`` samples and drops far less. With fewer than ``1 / error_rate - 1``
        samples no margin is certain: the margins are infinite (nothing dropped), with a warning.
        The last layer's score is exact: margin 0.
        """
        dropping = [layer for layer in layers if layer != self.layers]
        margins = {layer: 0.0 for layer in layers if layer == self.layers}
        if not dropping:
            return margins
        shortfalls, spread = self._held_out_shortfalls(dropping, k)
        ratios = np.sort((shortfalls / spread).max(axis=1))
        rank = max(1, int(np.ceil((len(ratios) + 1) * (1 - error_rate))))
        if rank > len(ratios):
            warnings.warn(f"ExitHeads: {len(ratios)} held-out top-{k} documents are too few to bound the error "
                          f"rate at {error_rate} (it needs at least {int(np.ceil(1 / max(error_rate, 1e-12))) - 1}); "
                          f"the cascade drops nothing. Fit on more queries, or raise error_rate", RuntimeWarning,
                          stacklevel=2)
            scale = np.inf
        else:
            scale = ratios[rank - 1]
        margins.update({layer: float(scale * width) for layer, width in zip(dropping, spread)})
        return margins

    def _held_out_shortfalls(self, layers, k: int):
        """For each held-out query with more than ``k`` pairs and each document of its full-depth top
        ``k``: how far below the query's k-th estimate its estimate is at each of ``layers`` (rows x
        layers); and each layer's spread (see :meth:`margins`)."""
        final = self.held["final"]
        shortfalls, errors = [], []
        for rows in pd.Series(np.arange(len(final))).groupby(self.held["query"]).indices.values():
            estimates = np.stack([self.held["estimates"][layer][rows] for layer in layers], axis=1)
            error = estimates - final[rows, None]
            errors.append(np.abs(error - error.mean(axis=0)))
            if len(rows) > k:  # with k candidates or fewer nothing can fall out of the top k
                top = np.argsort(-final[rows], kind="stable")[:k]
                kth = -np.sort(-estimates, axis=0)[k - 1]
                shortfalls.append(np.maximum(0.0, kth - estimates[top]))
        if not shortfalls:
            raise ValueError(f"ExitHeads: no held-out query has more than k={k} candidates, so no cascade "
                             f"margin for k={k} can be calibrated; fit on more candidates per query (or lower k)")
        spread = np.maximum(np.quantile(np.concatenate(errors), 0.9, axis=0), 1e-9)
        return np.concatenate(shortfalls), spread

    # ----- fitting
    @classmethod
    def fit(cls, encoder, docs, retriever, collection: str, *, queries=200, depth=20, query_words=(4, 12),
            folds=2, ridge=None, batch_size=32, seed=0, verbose=False) -> "ExitHeads":
        """Fit heads for ``encoder`` on the collection ``docs`` (an iterable of ``{"text": ...}``).

        ``queries`` pseudo-queries (spans of ``query_words`` words, drawn from random documents) go
        through ``retriever`` (a Q -> R transformer with a ``text`` column, e.g. BM25); each keeps
        its top ``depth`` candidates. ``ridge`` is the penalty relative to the mean diagonal of the
        centred Gram matrix (None: chosen per layer by leave-one-out error on the fitting inputs).
        """
        rng = np.random.default_rng(seed)
        topics = pseudo_queries(docs, queries, query_words, rng)
        candidates = retriever(topics)
        if "text" not in candidates.columns:
            raise ValueError(f"ExitHeads.fit: the retriever's output has no 'text' column (has "
                             f"{list(candidates.columns)}); use one that returns texts, e.g. LuceneIndex.bm25()")
        candidates = candidates[candidates["rank"] < depth].reset_index(drop=True)
        return cls._fit_pairs(encoder, candidates, str(collection), folds, ridge, batch_size, seed, verbose,
                              {"depth": depth, "source": "pseudo-queries through a retriever"})

    @classmethod
    def _fit_pairs(cls, encoder, pairs: pd.DataFrame, collection: str, folds, ridge, batch_size, seed, verbose,
                   info) -> "ExitHeads":
        """Heads fitted on the (qid, query, text) ``pairs`` of pseudo-queries, run at full depth here."""
        _check_folds(folds)
        if pairs["qid"].nunique() < 2:
            raise ValueError(f"ExitHeads.fit: {pairs['qid'].nunique()} pseudo-query found candidates; "
                             f"need at least 2 (raise queries=)")
        data = layer_outputs(LayerScorer(encoder), pairs, batch_size, verbose)
        return cls.from_outputs(encoder, [(data, pairs["qid"].to_numpy())], collection, folds=folds, ridge=ridge,
                                seed=seed, info=info)

    @classmethod
    def from_outputs(cls, encoder, runs, collection: str, *, folds=4, ridge=None, seed=0, info=None) -> "ExitHeads":
        """Heads fitted on full-depth runs already made: ``runs`` is a list of ``(outputs, qids)``,
        ``outputs`` from :func:`layer_outputs` on some candidates and ``qids`` their query of each pair
        (the early-exit ranker's self-fit passes the first queries it re-ranked). Cross-fitted by
        query in ``folds`` folds (a text several queries share goes with the first of them)."""
        _check_folds(folds)
        qids = np.concatenate([np.asarray(q).astype(str) for _, q in runs])
        queries, codes = np.unique(qids, return_inverse=True)
        if len(queries) < folds:
            raise ValueError(f"ExitHeads: {len(queries)} queries are too few to fit on in {folds} folds "
                             f"(each fold holds out whole queries); fit on at least {folds}")
        fold_of_query = np.random.default_rng(seed).permutation(len(queries)) % folds
        item_fold, offset = [], 0
        for data, q in runs:
            item_query = np.empty(len(data["target"]), dtype=np.int64)
            pair_codes = codes[offset:offset + len(q)]
            item_query[data["inputs"].item_of_pair[::-1]] = pair_codes[::-1]    # the first pair's query wins
            item_fold.append(fold_of_query[item_query])
            offset += len(q)
        fold = np.concatenate(item_fold)
        layers = range(1, encoder.num_layers)
        states = {layer: np.concatenate([data["states"][layer] for data, _ in runs]) for layer in layers}
        first_stage = all(data.get("first_stage") is not None for data, _ in runs)
        if first_stage:
            states, scales = _with_first_stage(states, np.concatenate([data["first_stage"] for data, _ in runs]))
        target = np.concatenate([data["target"] for data, _ in runs])
        fitted = {layer: ridge_fit(states[layer], target, ridge) for layer in layers}
        estimates = {layer: np.zeros((len(target), fitted[layer][0].shape[1]), dtype=np.float32) for layer in layers}
        for part in range(folds):
            rest = fold != part
            for layer in layers:
                weight, _ = ridge_fit(states[layer][rest], target[rest], fitted[layer][1])
                estimates[layer][~rest] = states[layer][~rest] @ weight[:-1] + weight[-1]
        bounds = np.cumsum([len(data["target"]) for data, _ in runs])[:-1]
        held = {"query": codes, "final": _pair_scores(encoder, runs, [data["target"] for data, _ in runs]),
                "estimates": {layer: _pair_scores(encoder, runs, np.split(encoder.estimate_output(estimates[layer]),
                                                                          bounds)) for layer in layers}}
        if first_stage:     # the features were fitted scaled: fold the scale into their weights
            for layer, (weight, _) in fitted.items():
                weight[-1 - len(FIRST_STAGE):-1] *= scales[layer]
        heads = cls(encoder.kind, model_label(encoder), config_hash(encoder), str(collection), encoder.num_layers,
                    {layer: weight for layer, (weight, _) in fitted.items()}, held, {}, first_stage, encoder.precision)
        own = {layer: _pair_scores(encoder, runs, [data["own"][layer] for data, _ in runs]) for layer in layers}
        heads.info = {**(info or {}), "queries": len(queries), "fit_pairs": len(qids), "fit_inputs": len(target),
                      "folds": folds, "seed": seed,
                      "held_out": heads._report(own, {layer: ridge for layer, (_, ridge) in fitted.items()})}
        return heads

    def _report(self, own, ridges) -> list:
        """Per layer: the R² of the cross-fitted estimates, that of the model's own head on the layer
        (``own[layer]``: its pair scores), the absolute error's quantiles, and the ridge penalty."""
        from sklearn.metrics import r2_score

        final = self.held["final"]
        r2 = lambda estimate: float(r2_score(final, estimate, force_finite=False))  # noqa: E731
        report = []
        for layer in sorted(self.weights):
            estimate = self.held["estimates"][layer]
            report.append({"layer": layer, "r2": r2(estimate), "r2_own_head": r2(own[layer]),
                           "error_q50": float(np.median(np.abs(estimate - final))),
                           "error_q95": float(np.quantile(np.abs(estimate - final), 0.95)),
                           "ridge": ridges[layer]})
        return report

    # ----- storing
    def key(self) -> str:
        """File stem these heads are saved under: model, collection, architecture hash and precision."""
        return heads_key(self.model, self.collection, self.config, self.precision)

    def save(self, folder) -> Path:
        """Write the heads to ``folder/<key>.npz`` and return that path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return self.write(folder / f"{self.key()}.npz")

    def write(self, path) -> Path:
        """Write the heads to the file ``path`` (numpy's .npz, no pickles) and return it."""
        meta = {"kind": self.kind, "model": self.model, "config": self.config, "collection": self.collection,
                "layers": self.layers, "info": self.info, "first_stage": list(FIRST_STAGE) if self.first_stage else [],
                "precision": self.precision}
        arrays = {f"weight_{l}": w for l, w in self.weights.items()}
        arrays.update({f"estimate_{l}": e for l, e in self.held["estimates"].items()})
        arrays.update(held_query=self.held["query"], held_final=self.held["final"])
        with open(path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
        return Path(path)

    @classmethod
    def load(cls, path, encoder=None, collection=None) -> "ExitHeads":
        """Heads from a saved file, or from a folder given the ``encoder`` and ``collection`` they were
        fitted for; with an encoder, they are checked against it."""
        path = Path(path)
        if path.is_dir():
            if encoder is None or collection is None:
                raise ValueError(f"ExitHeads.load: {path} is a folder; give the encoder and the collection "
                                 f"name to pick heads from it (or the path of a .npz file)")
            wanted = path / f"{heads_key(model_label(encoder), str(collection), config_hash(encoder), encoder.precision)}.npz"
            if not wanted.is_file():
                saved = sorted(p.name for p in path.glob("*.npz"))
                raise FileNotFoundError(f"ExitHeads.load: no heads for model {model_label(encoder)!r} (architecture "
                                        f"hash {config_hash(encoder)}, {encoder.precision}) on collection "
                                        f"{collection!r} in {path}; "
                                        f"saved there: {saved or 'nothing'}")
            path = wanted
        if not path.is_file():
            raise FileNotFoundError(f"ExitHeads.load: no heads file at {path}")
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            weights = {int(n.split("_")[1]): stored[n] for n in stored.files if n.startswith("weight_")}
            held = {"query": stored["held_query"], "final": stored["held_final"],
                    "estimates": {int(n.split("_")[1]): stored[n] for n in stored.files if n.startswith("estimate_")}}
        first_stage = meta.get("first_stage", [])
        if first_stage and first_stage != list(FIRST_STAGE):
            raise ValueError(f"ExitHeads.load: {path} reads first-stage features {first_stage}; this version of "
                             f"pyterrier-gaia computes {list(FIRST_STAGE)}: fit the heads again")
        heads = cls(meta["kind"], meta["model"], meta["config"], meta["collection"], meta["layers"], weights,
                    held, meta["info"], bool(first_stage), meta.get("precision", "fp32"))  # older files: fp32
        if collection is not None and heads.collection != str(collection):
            raise ValueError(f"ExitHeads.load: {path} holds heads for collection {heads.collection!r}, "
                             f"not {collection!r}")
        if encoder is not None:
            heads.check(encoder)
        return heads


def _with_first_stage(states: dict, features: np.ndarray):
    """Each layer's states with the first-stage ``features`` beside them, scaled so that together they
    weigh as much as the states (the ridge penalty is relative to the mean diagonal of the Gram
    matrix: unscaled, a handful of features among hundreds of state dimensions would be penalised
    out); and each layer's scale."""
    scales = {layer: float(np.sqrt(values.var(axis=0).sum() / features.shape[1])) or 1.0
              for layer, values in states.items()}
    return {layer: np.concatenate([values, features * scales[layer]], axis=1)
            for layer, values in states.items()}, scales


def reads_first_stage(encoder, columns) -> bool:
    """Whether heads fitted for ``encoder`` on candidates with ``columns`` read first-stage features:
    a cross-encoder's, given a ``score``."""
    return encoder.kind == "cross" and "score" in columns


def first_stage_inputs(encoder, candidates: pd.DataFrame) -> np.ndarray:
    """The first-stage features (:func:`~pyterrier_gaia.rankers.first_stage.first_stage_features`)
    of each encoder input of ``candidates`` (whole queries, with a ``score`` column): a
    cross-encoder's inputs are its pairs, so they are the pairs' own."""
    if not reads_first_stage(encoder, candidates.columns):
        raise ValueError(f"ExitHeads: first-stage features need a cross-encoder's candidates with a 'score' "
                         f"column; got a {encoder.kind}-encoder's with columns {list(candidates.columns)}")
    return first_stage_features(candidates)


def _check_folds(folds) -> None:
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"ExitHeads.fit: folds={folds!r}; expected an integer of at least 2")


def _pair_scores(encoder, runs, outputs) -> np.ndarray:
    """The pair scores of every run, in order, from each run's per-item ``outputs`` (one array per run)."""
    return np.concatenate([encoder.pair_scores(values, data["inputs"]) for values, (data, _) in zip(outputs, runs)])


def heads_key(model: str, collection: str, config: str, precision: str = "fp32") -> str:
    """The file stem of heads (fp32 heads keep the stem they had before heads knew their precision)."""
    slug = lambda text: re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")  # noqa: E731
    return f"{slug(model)}--{slug(collection)}--{config}" + ("" if precision == "fp32" else f"--{precision}")


def pseudo_queries(docs, count: int, words, rng) -> pd.DataFrame:
    """``count`` pseudo-queries (qid ``pq0``...): each a random span of ``words[0]..words[1]`` words
    of a document drawn uniformly from ``docs`` (reservoir sampling, one pass)."""
    sample = []
    for seen, doc in enumerate(d for d in docs if str(d["text"]).split()):
        if len(sample) < count:
            sample.append(doc["text"])
        elif (slot := rng.integers(seen + 1)) < count:
            sample[slot] = doc["text"]
    if not sample:
        raise ValueError("ExitHeads.fit: the documents had no text to draw pseudo-queries from")
    queries = []
    for text in sample:
        tokens = str(text).split()
        length = min(len(tokens), int(rng.integers(words[0], words[1] + 1)))
        start = int(rng.integers(len(tokens) - length + 1))
        queries.append(" ".join(tokens[start:start + length]))
    return pd.DataFrame({"qid": [f"pq{i}" for i in range(len(queries))], "query": queries})


def head_features(encoder):
    """What an exit head reads from a layer's token states: the encoder's ``head_input`` and the
    model's own output on that layer (``layer_output``), side by side (one row per input)."""
    def read(hidden, attention_mask):
        import torch

        head = encoder.head_input(hidden, attention_mask)
        return torch.cat([head.float(), encoder.layer_output(hidden, attention_mask).reshape(len(head), -1)], dim=1)
    return read


def layer_outputs(scorer, candidates: pd.DataFrame, batch_size, verbose) -> dict:
    """For the candidates (query, text; whole queries): their encoder ``inputs``, and for those inputs
    every layer's head features (``states``: layer -> rows x dim, see :func:`head_features`), the
    model's own outputs (``own``), their full-depth ``target`` (embeddings or scores) and, for a
    cross-encoder's candidates with a ``score``, their ``first_stage`` features (else None)."""
    encoder = scorer.encoder
    inputs = encoder.inputs(candidates["query"], candidates["text"], batch_size)
    run = encoder.layer_run(inputs, batch_size)
    everything = np.ones(len(inputs), dtype=bool)
    first_stage = first_stage_inputs(encoder, candidates) if reads_first_stage(encoder, candidates.columns) else None
    out = {"inputs": inputs, "states": {}, "own": {}, "first_stage": first_stage}
    for layer in _progress(range(1, encoder.num_layers + 1), f"{encoder.stage} exit heads", verbose):
        run.advance(layer, everything)
        own = in_order(*run.features(encoder.layer_output, layer))
        out["states"][layer] = in_order(*run.features(head_features(encoder), layer))
        out["own"][layer] = out["states"][layer] if scorer.uses_head(layer) else own
    out["target"] = out["own"][encoder.num_layers]
    return out


def in_order(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    ordered = np.empty_like(values)
    ordered[rows] = values
    return ordered


def _progress(items, desc, verbose):
    import pyterrier as pt   # its tqdm: a notebook's widget in a notebook, a console bar elsewhere

    return pt.tqdm(items, desc=desc, unit="layer", disable=not verbose)
