"""What bi- and cross-encoders share: loading a Hugging Face model at a precision, tokenising with
truncation, running it (whole, or layer by layer) and reporting operation counts."""
import abc
import copy

from ..cost.counts import report
from . import flops, precision as ladder


class Encoder(abc.ABC):
    """A transformer encoder over a Hugging Face model (a hub name or a local folder).

    Subclasses set ``auto_class`` (the ``transformers`` auto class to load with) and
    implement ``score(queries, texts)``.
    """

    auto_class = "AutoModel"

    def __init__(self, model, *, precision="fp32", device=None, max_length=None):
        import torch
        from transformers import AutoTokenizer

        self.model_name = str(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = ladder.check(precision, self.device, self._stage)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        except OSError as err:
            raise cannot_load(self._stage, self.model_name, err) from err
        self.model = self._load(self.precision)
        config = self.model.config
        limit = min(self.tokenizer.model_max_length, config.max_position_embeddings)
        self.max_length = int(max_length or self._configured_max_length() or limit)

    @property
    def _stage(self) -> str:
        return type(self).__name__

    def _load(self, precision):
        import transformers

        return ladder.load(getattr(transformers, self.auto_class), self.model_name, precision, self.device)

    def _configured_max_length(self):
        """A maximum length stated by the model's own packaging, if any (None here)."""
        return None

    def __repr__(self):
        return f"{self._stage}({self.model_name!r}, precision={self.precision!r})"

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

    def at_precision(self, precision: str) -> "Encoder":
        """The same encoder with its model loaded at ``precision`` (``self`` if it already is)."""
        if precision == self.precision:
            return self
        other = copy.copy(self)
        other.precision = ladder.check(precision, self.device, self._stage)
        other.model = other._load(other.precision)
        other.__dict__.pop("_weight_bytes", None)
        return other

    # ----- running the model
    def tokenize(self, texts, pairs=None):
        """Tokenise ``texts`` (or ``(texts[i], pairs[i])`` pairs), padded and truncated at ``max_length``."""
        batch = self.tokenizer(list(texts), None if pairs is None else list(pairs), padding=True,
                               truncation=True, max_length=self.max_length, return_tensors="pt")
        return batch.to(self.device)

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

    def report_counts(self, batch, layers: int) -> None:
        """Report the operation counts of running ``layers`` layers over ``batch`` (one forward pass).

        ``tokens`` counts real tokens; ``layer_tokens`` and ``flops`` count every position a layer
        computes, padding included (see :mod:`pyterrier_gaia.encoders.flops`).
        """
        rows, length = batch["input_ids"].shape
        config = self.model.config
        report(tokens=int(batch["attention_mask"].sum()), layer_tokens=rows * length * layers,
               flops=flops.forward_flops(rows, length, layers, config.hidden_size, config.intermediate_size),
               weight_bytes=self.weight_bytes, forward_passes=1)

    # ----- layer-by-layer access (BERT-style models: embeddings + encoder.layer)
    def _base(self):
        base = self.model.base_model
        if not (hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer")):
            raise TypeError(f"{self._stage}: layer-by-layer access needs a BERT-style model "
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

    def _batches(self, order, batch_size, desc, verbose):
        from tqdm.auto import tqdm

        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc=f"{self._stage} {desc}", unit="batch", disable=not verbose):
            yield order[start:start + batch_size]

    @abc.abstractmethod
    def score(self, queries, texts, batch_size=32, verbose=False):
        """Relevance score of each (queries[i], texts[i]) pair, as a float numpy array."""

    def reranker(self, batch_size=32, interpolate=None, precision=None, verbose=False, **auto):
        """A :class:`~pyterrier_gaia.rankers.reranker.ReRanker` that rescores candidates with this encoder.

        ``precision`` is one of ``fp32 bf16 fp16 int8 nf4``, ``"auto"``, or None for this
        encoder's own (fp32 unless it was made at another); ``"auto"`` takes
        ``tolerance=``, ``validation=`` (candidates) and optionally ``qrels=`` (see
        :func:`~pyterrier_gaia.rankers.auto_precision.choose_precision`).
        """
        from ..rankers.reranker import ReRanker

        if precision == "auto":
            from ..rankers.auto_precision import choose_precision

            choice = choose_precision(self, batch_size=batch_size, interpolate=interpolate, **auto)
            ranker = ReRanker(self.at_precision(choice.precision), batch_size, interpolate, verbose)
            ranker.precision_choice = choice
            return ranker
        if auto:
            raise TypeError(f"{self._stage}.reranker: {', '.join(sorted(auto))} only apply to precision='auto'")
        return ReRanker(self.at_precision(precision or self.precision), batch_size, interpolate, verbose)


def cannot_load(stage: str, model: str, err: Exception) -> OSError:
    """The error for a model that cannot be loaded, naming the stage and the model."""
    return OSError(f"{stage}: cannot load model {model!r} (a Hugging Face name or a local folder; "
                   f"machines without hub access need a folder): {err}")
