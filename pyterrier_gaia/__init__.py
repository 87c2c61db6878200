"""pyterrier-gaia: carbon-frugal neural search for PyTerrier.

Conventional use::

    import pyterrier as pt, pyterrier_gaia as gaia

Every public name is imported lazily on first use, so ``import pyterrier_gaia`` stays
fast and imports none of torch, transformers or pyserini (PyTerrier also loads this
module through its ``pyterrier.modules`` entry point, making it reachable as ``pt.gaia``).
"""
import sys
from importlib import import_module
from types import ModuleType

__version__ = "0.1.0"

# public name -> "module:attribute" (or "module" for a sub-package)
_API = {
    "datasets": "pyterrier_gaia.datasets",
    "LuceneIndex": "pyterrier_gaia.retrieval.lucene:LuceneIndex",
    "BiEncoder": "pyterrier_gaia.rankers.factories:BiEncoder",
    "CrossEncoder": "pyterrier_gaia.rankers.factories:CrossEncoder",
    "ReRanker": "pyterrier_gaia.rankers.reranker:ReRanker",
    "EarlyExitReRanker": "pyterrier_gaia.rankers.early_exit:EarlyExitReRanker",
    "DiffusionReRanker": "pyterrier_gaia.rankers.diffusion:DiffusionReRanker",
    "calibrate_costs": "pyterrier_gaia.tuning:calibrate_costs",
    "tune": "pyterrier_gaia.tuning:tune",
    "pareto": "pyterrier_gaia.pareto:pareto",
    "plot_pareto": "pyterrier_gaia.pareto:plot_pareto",
    "Front": "pyterrier_gaia.pareto:Front",
    "QuantizedVectors": "pyterrier_gaia.rankers.quantize:QuantizedVectors",
    "VectorIndex": "pyterrier_gaia.rankers.vector_index:VectorIndex",
    "Metered": "pyterrier_gaia.energy.metered:Metered",
    "meter": "pyterrier_gaia.energy.metered:meter",
    "Ledger": "pyterrier_gaia.energy.ledger:Ledger",
    "Experiment": "pyterrier_gaia.experiment:Experiment",
    "parallel": "pyterrier_gaia.distribute:parallel",
    "Grid": "pyterrier_gaia.energy.carbon:Grid",
    "CostModel": "pyterrier_gaia.cost.model:CostModel",
    "hardware": "pyterrier_gaia.cost.hardware",
    "scaling": "pyterrier_gaia.cost.scaling",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'pyterrier_gaia' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    value = import_module(module_name)
    if attribute:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return __all__


class _Package(ModuleType):
    """This package, where importing the submodule ``pyterrier_gaia.pareto`` (which Python then sets as
    the package's attribute ``pareto``) leaves ``gaia.pareto`` the function of the public API."""

    def __setattr__(self, name, value):
        module_name, _, attribute = _API.get(name, "").partition(":")
        if attribute and isinstance(value, ModuleType) and value.__name__ == module_name:
            value = getattr(value, attribute)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
