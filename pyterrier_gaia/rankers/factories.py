"""The public encoders, ``gaia.BiEncoder`` and ``gaia.CrossEncoder``: those of
:mod:`pyterrier_gaia.encoders` with the ranker factory ``reranker()`` added at this layer, so that
encoders know nothing of rankers (as a pyterrier_dr model is a factory of its own transformers)."""
from ..encoders import bi_encoder, cross_encoder
from .auto_precision import choose_precision
from .reranker import ReRanker


class RerankerFactory:
    """``reranker()`` for an encoder of :mod:`pyterrier_gaia.encoders`."""

    def reranker(self, batch_size=32, interpolate=None, precision=None, verbose=False, **auto) -> ReRanker:
        """A :class:`~pyterrier_gaia.rankers.reranker.ReRanker` that rescores candidates with this encoder.

        ``precision`` is one of ``fp32 bf16 fp16 int8 nf4``, ``"auto"``, or None for this
        encoder's own (fp32 unless it was made at another); ``"auto"`` takes
        ``tolerance=``, ``validation=`` (candidates) and optionally ``qrels=`` (see
        :func:`~pyterrier_gaia.rankers.auto_precision.choose_precision`).
        """
        if precision == "auto":
            choice = choose_precision(self, batch_size=batch_size, interpolate=interpolate, **auto)
            ranker = ReRanker(self.at_precision(choice.precision), batch_size, interpolate, verbose)
            ranker.precision_choice = choice
            return ranker
        if auto:
            raise TypeError(f"{self.stage}.reranker: {', '.join(sorted(auto))} only apply to precision='auto'")
        return ReRanker(self.at_precision(precision or self.precision), batch_size, interpolate, verbose)


class BiEncoder(RerankerFactory, bi_encoder.BiEncoder):
    __doc__ = bi_encoder.BiEncoder.__doc__


class CrossEncoder(RerankerFactory, cross_encoder.CrossEncoder):
    __doc__ = cross_encoder.CrossEncoder.__doc__
