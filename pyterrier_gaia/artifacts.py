"""``pt.Artifact.load(path)`` for the rankers gaia saves: the ``pyterrier.artifact`` entry points
``reranker.gaia-early-exit`` and ``reranker.gaia-diffusion`` (setup.cfg) lead here.

A saved ranker records the encoder it was fitted with (kind, model folder or name, precision). Without
``encoder=``, that encoder is built again: from its folder if it still exists, else the kind's bundled
default; the ranker's own ``load`` then refuses any model other than the one it was fitted for."""
from pathlib import Path

from .rankers.artifact_meta import saved_encoder
from .rankers.diffusion import DiffusionReRanker
from .rankers.early_exit import EarlyExitReRanker
from .rankers.factories import BiEncoder, CrossEncoder

ENCODERS = {"cross": CrossEncoder, "bi": BiEncoder}


def load_early_exit(path, encoder=None, **options) -> EarlyExitReRanker:
    """The :class:`EarlyExitReRanker` saved at ``path``, on ``encoder`` or the one it was fitted with."""
    return EarlyExitReRanker.load(path, encoder or _encoder(path), **options)


def load_diffusion(path, encoder=None, **options) -> DiffusionReRanker:
    """The :class:`DiffusionReRanker` saved at ``path``, on ``encoder`` or the one it was fitted with."""
    return DiffusionReRanker.load(path, encoder or _encoder(path), **options)


def _encoder(path):
    spec = saved_encoder(Path(path))
    if spec is None or spec.get("kind") not in ENCODERS:
        raise ValueError(f"pt.Artifact.load: {path} does not say which encoder it was fitted with (saved by an "
                         f"older pyterrier-gaia); load it with encoder=, e.g. pt.Artifact.load(path, "
                         f"encoder=gaia.CrossEncoder())")
    model = spec["model"] if Path(spec["model"]).exists() else None   # a moved cache: the bundled default
    return ENCODERS[spec["kind"]](model, precision=spec["precision"])
