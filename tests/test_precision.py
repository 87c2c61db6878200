"""The precision ladder: where each precision runs, CUDA dispatch (faked), int8 agreement with fp32
on real data, precision="auto", and quantized stored embeddings."""
import logging

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
import torch

import pyterrier_gaia as gaia
from pyterrier_gaia.encoders import precision as ladder
from pyterrier_gaia.rankers.auto_precision import top10_overlap
from pyterrier_gaia.rankers.quantize import QuantizedVectors
from tiny_models import tiny_bert


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny"))


def test_unknown_precision_lists_the_ladder(minilm, tiny):
    with pytest.raises(ValueError, match="unknown precision 'fp64'; expected one of fp32, bf16, fp16, int8, nf4 or 'auto'"):
        minilm.reranker(precision="fp64")
    with pytest.raises(ValueError, match="CrossEncoder: unknown precision 'int4'"):
        gaia.CrossEncoder(tiny, precision="int4")


@pytest.mark.parametrize("precision", ["nf4", "fp16"])
def test_gpu_only_precision_on_cpu_says_which_can_run(tiny, precision, monkeypatch):
    monkeypatch.setattr(ladder, "_cpu_has_bf16", lambda: False)
    with pytest.raises(ValueError, match=f"precision '{precision}' cannot run on cpu here; precisions that can: fp32, int8$"):
        gaia.CrossEncoder(tiny, precision=precision, device="cpu")


def test_cpu_ladder():
    # int8 runs on fbgemm/x86 kernels; bf16 where oneDNN finds native bf16 (AVX512-BF16 here)
    expected = ["fp32"] + (["bf16"] if ladder._cpu_has_bf16() else []) + ["int8"]
    assert ladder.runnable(torch.device("cpu")) == expected


def test_weight_bytes_follow_precision(tiny):
    fp32 = gaia.CrossEncoder(tiny)
    # bf16 only where this host's CPU runs it natively (the host CPU varies between machines)
    others = [p for p in ("bf16", "int8") if p in ladder.runnable(fp32.device)]
    encoders = {"fp32": fp32, **{p: fp32.at_precision(p) for p in others}}
    if "bf16" in encoders:
        assert encoders["bf16"].weight_bytes * 2 == fp32.weight_bytes
    int8 = encoders["int8"]
    # linear weights to 1 byte; biases, layer norms and the 1-logit head stay fp32
    assert fp32.weight_bytes / 3.8 < int8.weight_bytes < fp32.weight_bytes / 3
    assert int8.model.bert.encoder.layer[0].intermediate.dense._packed_params.dtype == torch.qint8
    scores = {p: e.score(["a query"] * 3, ["one doc", "another doc", "third"]) for p, e in encoders.items()}
    for precision in others:
        np.testing.assert_allclose(scores[precision], scores["fp32"], atol=0.05)


class _Recorder:
    """Stands in for a transformers auto class: records from_pretrained's arguments, loads on CPU."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def from_pretrained(self, path, **kwargs):
        self.calls.append(kwargs)
        return self.real.from_pretrained(path)


@pytest.mark.parametrize("precision", ["int8", "nf4", "fp16"])
def test_cuda_dispatch_is_recorded_not_run(tiny, precision, monkeypatch):
    import transformers

    recorder = _Recorder(transformers.AutoModelForSequenceClassification)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(transformers, "AutoModelForSequenceClassification", recorder)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)  # no CUDA to move to here
    assert ladder.runnable(torch.device("cuda")) == ["fp32", "fp16", "int8", "nf4"]
    enc = gaia.CrossEncoder(tiny, precision=precision)
    assert enc.device.type == "cuda" and enc.precision == precision
    (call,) = recorder.calls
    if precision == "fp16":
        assert call == {"dtype": torch.float16}
    else:
        config = call["quantization_config"]
        assert call["device_map"] == {"": 0}
        assert config.load_in_8bit == (precision == "int8") and config.load_in_4bit == (precision == "nf4")
        if precision == "nf4":
            assert config.bnb_4bit_quant_type == "nf4"
    with pytest.raises(ValueError, match="'bf16' cannot run on cuda here; precisions that can: fp32, fp16, int8, nf4"):
        gaia.CrossEncoder(tiny, precision="bf16")


def test_int8_rankings_agree_with_fp32_on_vaswani(minilm, slice_candidates, vaswani):
    fp32 = minilm.reranker()(slice_candidates)
    int8 = minilm.reranker(precision="int8")(slice_candidates)
    # measured on this slice: 0.92 of fp32's top 10 kept; nDCG@10 0.425 (fp32) vs 0.432 (int8)
    assert top10_overlap(fp32, int8) >= 0.85
    qrels = vaswani.get_qrels()
    qrels = qrels[qrels["qid"].isin(slice_candidates["qid"])]
    ndcg = [pt.Evaluate(r, qrels, ["ndcg_cut_10"])["ndcg_cut_10"] for r in (fp32, int8)]
    assert abs(ndcg[0] - ndcg[1]) <= 0.02


def test_auto_picks_cheapest_within_tolerance_and_says_why(minilm, slice_candidates, caplog):
    with caplog.at_level(logging.INFO, logger="pyterrier_gaia.rankers.auto_precision"):
        ranker = minilm.reranker(precision="auto", tolerance=0.0, validation=slice_candidates)
    choice = ranker.precision_choice
    table = choice.table.set_index("precision")
    runnable = ladder.runnable(torch.device("cpu"))
    assert list(table.index) == [p for p in ("int8", "bf16", "fp32") if p in runnable]  # cheapest first
    assert table.loc["fp32", "loss"] == 0 and table.loc[choice.precision, "within"]
    cheaper = list(table.index)[:list(table.index).index(choice.precision)]
    assert all(table.loc[p, "loss"] > 0 for p in cheaper)
    assert ranker.precision == choice.precision
    assert choice.reason.startswith(f"{choice.precision}: 1 - top-10 overlap vs fp32")
    assert choice.reason in caplog.text


def test_auto_with_qrels_uses_ndcg_drop(minilm, slice_candidates, vaswani):
    ranker = minilm.reranker(precision="auto", tolerance=0.02, validation=slice_candidates, qrels=vaswani.get_qrels())
    assert "nDCG@10 drop vs fp32" in ranker.precision_choice.reason
    table = ranker.precision_choice.table.set_index("precision")
    assert ranker.precision == table.index[table["within"]][0]


@pytest.mark.parametrize("tolerance", [-0.1, 1.5, "small"])
def test_auto_tolerance_outside_0_1(minilm, slice_candidates, tolerance):
    with pytest.raises(ValueError, match="tolerance=.*expected a number between 0 and 1"):
        minilm.reranker(precision="auto", tolerance=tolerance, validation=slice_candidates)


def test_auto_needs_validation_and_usable_qrels(minilm, slice_candidates):
    with pytest.raises(ValueError, match="validation= must be a non-empty DataFrame"):
        minilm.reranker(precision="auto", tolerance=0.1, validation=None)
    with pytest.raises(ValueError, match=r"qrels lack column\(s\) \['label'\]"):
        minilm.reranker(precision="auto", tolerance=0.1, validation=slice_candidates,
                        qrels=pd.DataFrame({"qid": ["1"], "docno": ["2"]}))
    with pytest.raises(ValueError, match="qrels judge none of the validation queries"):
        minilm.reranker(precision="auto", tolerance=0.1, validation=slice_candidates,
                        qrels=pd.DataFrame({"qid": ["no-such-query"], "docno": ["2"], "label": [1]}))
    with pytest.raises(TypeError, match="tolerance only apply to precision='auto'"):
        minilm.reranker(precision="int8", tolerance=0.1)


@pytest.fixture(scope="module")
def vaswani_vectors(minilm, vaswani):
    docs = [d["text"] for _, d in zip(range(300), vaswani.get_corpus_iter())]
    return minilm.encode(docs, batch_size=64), minilm.encode(vaswani.get_topics().head(20)["query"])


def _overlap(found, exact):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)])


def test_quantized_vectors_on_minilm_embeddings(vaswani_vectors, tmp_path):
    docs, queries = vaswani_vectors
    exact = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    int8, binary = QuantizedVectors(docs, "int8"), QuantizedVectors(docs, "binary")
    assert int8.nbytes == docs.size + 4 * docs.shape[1] and binary.nbytes * 32 == docs.nbytes
    # measured on 300 Vaswani documents x 20 topics: int8 0.995 of the float top 10, binary 0.675,
    # binary rescored from its top 50 0.97
    assert _overlap(int8.search(queries, 10)[0], exact) >= 0.95
    plain = _overlap(binary.search(queries, 10)[0], exact)
    floats = np.lib.format.open_memmap(tmp_path / "floats.npy", mode="w+", dtype=np.float32, shape=docs.shape)
    floats[:] = docs
    rescored, scores = QuantizedVectors(docs, "binary", floats=floats).search(queries, 10, rescore=50)
    assert _overlap(rescored, exact) >= max(plain + 0.15, 0.9)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ docs.T, rescored, axis=1), atol=1e-5)


def test_quantized_vectors_bad_input():
    with pytest.raises(ValueError, match="unknown kind 'int4'; expected one of int8, binary"):
        QuantizedVectors(np.ones((2, 4)), "int4")
    with pytest.raises(ValueError, match="non-empty 2-D array"):
        QuantizedVectors(np.ones(4))
    vectors = QuantizedVectors(np.eye(4), "int8")
    with pytest.raises(ValueError, match="queries have 3 dimensions; the stored vectors have 4"):
        vectors.search(np.ones((1, 3)))
    with pytest.raises(ValueError, match="rescore=2 must be at least k=3"):
        vectors.search(np.ones((1, 4)), k=3, rescore=2)
