"""The encoder protocol, and what bi- and cross-encoders share: loading a Hugging Face model at a
precision, tokenising with truncation, running it whole or layer by layer, reporting operation counts.

Rankers use an encoder through this protocol only, never asking which kind it is:

- ``inputs(queries, texts)``: what the encoder reads for candidate pairs (:class:`Inputs`): each
  distinct text once (bi-encoder) or each (query, text) pair (cross-encoder); ``input_keys`` says
  which pairs share an input without encoding anything;
- ``layer_run(inputs)``: their states, advanced layer by layer (:class:`~.layerwise.LayerRun`);
- ``layer_output(hidden, attention)``: the model's own output from any layer's states (a pooled
  embedding, or the classifier's logit); ``head_input``: what an exit head reads there (the pooled
  state, or the [CLS] state); ``estimate_output``: an exit head's linear estimate made an output;
- ``outputs(items)``: full-depth outputs; ``pair_scores(outputs, inputs)``: each pair's score from
  its input's output (the dot product with its query's vector, or the logit); ``score`` does both;
- counts: ``report_counts`` (what ran), ``flops``, ``input_tokens`` and ``query_tokens`` (what will);
- ``kind`` and ``architecture()``: a label and a description to key what is fitted to a model.
"""
import abc
import copy
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import checks
from ..cost.counts import report
from . import flops, precision as ladder
from .layerwise import LayerRun

ARCHITECTURE_KEYS = ("model_type", "num_hidden_layers", "hidden_size", "intermediate_size",
                     "num_attention_heads", "vocab_size", "max_position_embeddings")


@dataclass
class Inputs:
    """What an encoder reads for a list of (query, text) pairs: its ``items`` (each encoded once),
    the item of each pair (``item_of_pair``) and, where pair scores need them, each pair's
    full-depth query vector (``query_vectors``)."""

    items: list
    item_of_pair: np.ndarray
    query_vectors: Optional[np.ndarray] = None

    def __len__(self):
        return len(self.items)


class Encoder(abc.ABC):
    """A transformer encoder over a Hugging Face model (a hub name or a local folder).

    Subclasses set ``auto_class`` (the ``transformers`` auto class to load with), ``kind``, and
    implement what differs between reading texts apart and reading pairs (the abstract methods).
    """

    auto_class = "AutoModel"
    kind = ""                    # "bi" or "cross": a label for keys and messages, never a branch
    progress = "encode"          # the progress bar's label in outputs()
    default_group_inputs = 1024  # inputs a layer-by-layer run holds at once by default

    def __init__(self, model, *, precision="fp32", device=None, max_length=None):
        import torch
        from transformers import AutoTokenizer

        self.model_name = str(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = ladder.check(precision, self.device, self.stage)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        except OSError as err:
            raise cannot_load(self.stage, self.model_name, err) from err
        self.model = self._load(self.precision)
        limit = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        if max_length is None:
            self.max_length = int(self._configured_max_length() or limit)
        else:  # beyond the position table a long text fails deep inside the model
            self.max_length = checks.positive_integer(
                f"{self.stage} ({self.model_name!r} reads at most {limit} tokens)", "max_length", max_length, limit)

    @property
    def stage(self) -> str:
        """The encoder's name in messages and cost-model stages (its class name)."""
        return type(self).__name__

    def _load(self, precision):
        import transformers

        return ladder.load(getattr(transformers, self.auto_class), self.model_name, precision, self.device)

    def _configured_max_length(self):
        """A maximum length stated by the model's own packaging, if any (None here)."""
        return None

    def __repr__(self):
        return f"{self.stage}({self.model_name!r}, precision={self.precision!r})"

    # ----- shape of the model
    @property
    def num_layers(self) -> int:
        """Number of transformer layers."""
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one forward pass reads at this encoder's precision (see ``precision.weight_bytes``)."""
        if not hasattr(self, "_weight_bytes"):
            self._weight_bytes = ladder.weight_bytes(self.model)
        return self._weight_bytes

    def architecture(self) -> dict:
        """What a model fitted to this encoder (exit heads, a usefulness model) depends on."""
        config = self.model.config
        return {**{key: getattr(config, key, None) for key in ARCHITECTURE_KEYS}, "kind": self.kind}

    def at_precision(self, precision: str) -> "Encoder":
        """The same encoder with its model loaded at ``precision`` (``self`` if it already is)."""
        if precision == self.precision:
            return self
        other = copy.copy(self)
        other.precision = ladder.check(precision, self.device, self.stage)
        other.model = other._load(other.precision)
        other.__dict__.pop("_weight_bytes", None)
        return other

    # ----- inputs
    @abc.abstractmethod
    def input_keys(self, queries, texts) -> np.ndarray:
        """One key per (queries[i], texts[i]) pair; pairs with equal keys share one input."""

    @abc.abstractmethod
    def inputs(self, queries, texts, batch_size=32, verbose=False) -> Inputs:
        """What the encoder reads for the (queries[i], texts[i]) pairs."""

    @abc.abstractmethod
    def item_length(self, item) -> int:
        """The characters of an input (batches group inputs of similar length)."""

    @abc.abstractmethod
    def tokenize_items(self, items):
        """Tokenise inputs (texts, or (query, text) pairs) with ``tokenize``."""

    def tokenize(self, texts, pairs=None):
        """Tokenise ``texts`` (or ``(texts[i], pairs[i])`` pairs), padded and truncated at ``max_length``."""
        batch = self.tokenizer(list(texts), None if pairs is None else list(pairs), padding=True,
                               truncation=True, max_length=self.max_length, return_tensors="pt")
        return batch.to(self.device)

    def _token_counts(self, texts, pairs=None) -> np.ndarray:
        encoded = self.tokenizer(list(texts), None if pairs is None else list(pairs), truncation=True,
                                 max_length=self.max_length)
        return np.array([len(ids) for ids in encoded["input_ids"]])

    # ----- full-depth outputs and scores
    def forward(self, batch, output_hidden_states=False):
        """Run the whole model on a tokenised batch (no gradients) and report its counts.

        With ``output_hidden_states=True`` the output's ``hidden_states`` holds the embedding
        output followed by every layer's output (``num_layers + 1`` tensors).
        """
        import torch

        with torch.inference_mode():
            out = self.model(**batch, output_hidden_states=output_hidden_states)
        self.report_counts(batch, self.num_layers)
        return out

    @property
    @abc.abstractmethod
    def _output_shape(self) -> tuple:
        """The shape of one input's output."""

    @abc.abstractmethod
    def _final_output(self, out, batch):
        """The outputs of a batch from the model's full forward pass ``out``."""

    def outputs(self, items, batch_size=32, verbose=False) -> np.ndarray:
        """The full-depth output of each input (float32): its embedding, or its score."""
        order = np.argsort([-self.item_length(item) for item in items], kind="stable")
        values = np.zeros((len(items),) + self._output_shape, dtype=np.float32)
        for rows in self._batches(order, batch_size, verbose):
            batch = self.tokenize_items([items[i] for i in rows])
            values[rows] = self._final_output(self.forward(batch), batch).cpu().numpy()
        return values

    @abc.abstractmethod
    def pair_scores(self, outputs: np.ndarray, inputs: Inputs, pairs=slice(None)) -> np.ndarray:
        """The score of each pair (or of the pairs ``pairs``) from the outputs of ``inputs.items``."""

    def score(self, queries, texts, batch_size=32, verbose=False) -> np.ndarray:
        """Relevance score of each (queries[i], texts[i]) pair, as a float32 numpy array."""
        inputs = self.inputs(queries, texts, batch_size, verbose)
        return self.pair_scores(self.outputs(inputs.items, batch_size, verbose), inputs)

    def _batches(self, order, batch_size, verbose):
        import pyterrier as pt   # its tqdm: a notebook's widget in a notebook, a console bar elsewhere

        batch_size = checks.positive_integer(self.stage, "batch_size", batch_size)
        starts = range(0, len(order), batch_size)
        for start in pt.tqdm(starts, desc=f"{self.stage} {self.progress}", unit="batch", disable=not verbose):
            yield order[start:start + batch_size]

    # ----- layer by layer (BERT-style models: embeddings + encoder.layer)
    def _base(self):
        base = self.model.base_model
        if not (hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer")):
            raise TypeError(f"{self.stage}: layer-by-layer access needs a BERT-style model "
                            f"(embeddings + encoder.layer); {type(base).__name__} is not one")
        return base

    def embed(self, batch):
        """Start a layer-by-layer pass: the embedding output and the attention mask the layers expect."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        base = self._base()
        with torch.inference_mode():
            hidden = base.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
            mask = create_bidirectional_mask(config=base.config, inputs_embeds=hidden,
                                             attention_mask=batch["attention_mask"])
        return hidden, mask

    def layer(self, index: int, hidden, mask):
        """Run layer ``index`` (0-based) on ``hidden``; callers report counts with ``report_counts``."""
        import torch

        with torch.inference_mode():
            return self._base().encoder.layer[index](hidden, mask)

    def layer_run(self, inputs: Inputs, batch_size=32) -> LayerRun:
        """The states of ``inputs``' items, to advance layer by layer."""
        return LayerRun(self, inputs.items, checks.positive_integer(self.stage, "batch_size", batch_size))

    @abc.abstractmethod
    def layer_output(self, hidden, attention_mask):
        """The model's own output (a tensor, one row per input) from a layer's token states."""

    @abc.abstractmethod
    def head_input(self, hidden, attention_mask):
        """What an exit head reads from a layer's token states (a tensor, one row per input)."""

    @abc.abstractmethod
    def estimate_output(self, estimate: np.ndarray) -> np.ndarray:
        """An exit head's linear estimate (rows x outputs) made into outputs like ``outputs``'."""

    # ----- operation counts
    def flops(self, rows: int, length: int, layers: int) -> int:
        """FLOPs of ``layers`` layers over ``rows`` inputs padded to ``length`` (see :mod:`.flops`)."""
        config = self.model.config
        return flops.forward_flops(rows, length, layers, config.hidden_size, config.intermediate_size)

    def report_counts(self, batch, layers: int) -> None:
        """Report the operation counts of running ``layers`` layers over ``batch`` (one forward pass).

        ``tokens`` counts real tokens; ``layer_tokens`` and ``flops`` count every position a layer
        computes, padding included (see :mod:`pyterrier_gaia.encoders.flops`).
        """
        rows, length = batch["input_ids"].shape
        report(tokens=int(batch["attention_mask"].sum()), layer_tokens=rows * length * layers,
               flops=self.flops(rows, length, layers), weight_bytes=self.weight_bytes, forward_passes=1)

    @abc.abstractmethod
    def input_tokens(self, queries, texts) -> np.ndarray:
        """The tokens of each pair's input, truncated as when encoding."""

    @abc.abstractmethod
    def query_tokens(self, queries) -> np.ndarray:
        """The tokens of encoding each query on its own (0 where queries are not encoded apart)."""


def cannot_load(stage: str, model: str, err: Exception) -> OSError:
    """The error for a model that cannot be loaded, naming the stage and the model."""
    return OSError(f"{stage}: cannot load model {model!r} (a Hugging Face name or a local folder; "
                   f"machines without hub access need a folder): {err}")
