"""A fitted :class:`gaia.DiffusionReRanker` as one artifact: a folder in PyTerrier's Artifact layout
(``pt_meta.json`` with its type, format and package) holding the ranker's options, its usefulness
model and layer fractions, its cost model and its exit heads, keyed to the encoder and the package
version it was fitted with."""
import json
from pathlib import Path

import numpy as np

from ..cost.model import CostModel
from .artifact_meta import checked_meta, write_meta
from .exit_heads import ExitHeads, fitted_for
from .green_potential import CascadeWork, LayerFraction, Usefulness

#: the format of a saved DiffusionReRanker (PyTerrier's Artifact ``format``)
FORMAT = "gaia-diffusion"
#: the folder of a saved ranker (and of a self-fit) that holds the cascade's exit heads, one file per precision
CASCADE_HEADS = "cascade-heads"


def save(ranker, path) -> Path:
    """Write fitted ``ranker`` to the folder ``path`` (created; files in it are replaced); returns it."""
    if ranker.usefulness is None or ranker.cost_model is None:
        raise ValueError("DiffusionReRanker.save: the ranker is not fitted yet; call it once on first-stage "
                         "candidates (it fits itself) or call .fit_on_first_use(candidates), then save it")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    write_meta(folder, FORMAT, ranker.encoder)
    meta = {"encoder": fitted_for(ranker.encoder), "options": ranker.options,
            "heads": ranker.heads is not None, "solved_u": ranker.solved_u, "solved_cascade": ranker.solved_cascade}
    (folder / "diffusion.json").write_text(json.dumps(meta, indent=1, default=_plain))
    save_state(ranker.fitted_state(), folder)
    if ranker.heads is not None:
        ranker.heads.save(folder / "heads")
    return folder


def load(cls, path, encoder, **options):
    """The ranker saved at ``path``, for ``encoder`` (the one it was fitted with); ``options`` override
    the saved ones that do not change what was fitted (``weights``, ``steps``, ``seed``...)."""
    folder = Path(path)
    where = "DiffusionReRanker.load"
    checked_meta(folder, FORMAT, "DiffusionReRanker")
    meta = json.loads((folder / "diffusion.json").read_text())
    if meta["encoder"] != fitted_for(encoder):
        raise ValueError(f"{where}: {folder} was fitted for {meta['encoder']}, not for {fitted_for(encoder)}; "
                         f"load it with that encoder, or let a new DiffusionReRanker fit itself for this one")
    fixed = sorted(set(options) & set(FITTED_OPTIONS))
    if fixed:
        raise ValueError(f"{where}: {fixed} cannot change on a fitted ranker (its usefulness model was fitted "
                         f"with them); fit a new one instead")
    heads = ExitHeads.load(next((folder / "heads").glob("*.npz")), encoder) if meta["heads"] else None
    ranker = cls(encoder, heads=heads, **{**meta["options"], **options})
    if not {"weights", "keep"} & set(options):     # else they are solved again for them
        ranker.solved_u, ranker.solved_cascade = meta["solved_u"], meta["solved_cascade"]
    ranker.use_state(load_state(folder, ranker.space))
    return ranker


#: the options a fitted state depends on
FITTED_OPTIONS = ("depths", "precisions", "agreements", "k", "cascade", "error_rate", "interpolate", "probe_depth",
                  "probe_layer")


#: a fitted way's name in the files of a saved state (cascade on, off)
WAYS = {True: "cascade", False: "no-cascade"}


def save_state(state: dict, folder: Path) -> None:
    """Write a ranker's fitted state (per way, cascade on/off, its ``usefulness``, ``layers`` and
    ``cascade_work``; the cascade's ``heads``; ``cost_model`` unless None) to ``folder``."""
    meta = {}
    for cascade, fitted in state["variants"].items():
        useful, layers, work = fitted["usefulness"], fitted["layers"], fitted["cascade_work"]
        meta[WAYS[cascade]] = {
            "usefulness_info": useful.info,
            "layers": {"thresholds": layers.thresholds.tolist(), "fractions": layers.fractions.tolist()},
            "cascade_work": None if work is None else work.table}
        np.savez(folder / f"usefulness-{WAYS[cascade]}.npz", weights=useful.weights, mean=useful.mean,
                 std=useful.std)
    (folder / "fitted.json").write_text(json.dumps(meta, indent=1, default=_plain))
    for precision, heads in state["heads"].items():
        (folder / CASCADE_HEADS).mkdir(exist_ok=True)
        heads.write(folder / CASCADE_HEADS / f"{precision}.npz")
    if state["cost_model"] is not None:
        save_cost_model(state["cost_model"], folder)


def load_state(folder: Path, space) -> dict:
    """The fitted state :func:`save_state` wrote to ``folder``, for a ranker's budget ``space``."""
    meta = json.loads((Path(folder) / "fitted.json").read_text())
    variants = {}
    for cascade, way in WAYS.items():
        if way in meta:
            fitted = meta[way]
            layers = LayerFraction(dict(zip(fitted["layers"]["thresholds"], fitted["layers"]["fractions"])), space)
            with np.load(Path(folder) / f"usefulness-{way}.npz") as stored:
                usefulness = Usefulness(stored["weights"], stored["mean"], stored["std"], layers,
                                        fitted["usefulness_info"])
            work = fitted["cascade_work"]
            variants[cascade] = {"usefulness": usefulness, "layers": layers,
                                 "cascade_work": None if work is None else CascadeWork(work, space)}
    heads = {path.stem: ExitHeads.load(path) for path in sorted((Path(folder) / CASCADE_HEADS).glob("*.npz"))}
    costs = Path(folder) / COST_MODEL_FILE
    return {"variants": variants, "heads": heads,
            "cost_model": load_cost_model(folder) if costs.is_file() else None}


#: the cost model's file in a saved ranker's folder (and in a self-calibration's)
COST_MODEL_FILE = "cost_model.json"


def save_cost_model(cost_model: CostModel, folder: Path) -> None:
    """Write a ranker's cost model into ``folder``."""
    cost_model.save(Path(folder) / COST_MODEL_FILE)


def load_cost_model(folder: Path) -> CostModel:
    """The cost model :func:`save_cost_model` wrote into ``folder``."""
    return CostModel.load(Path(folder) / COST_MODEL_FILE)


def _plain(value):
    """JSON for the numpy scalars and tuples among the options and the fit's info."""
    return value.item() if hasattr(value, "item") else list(value)
