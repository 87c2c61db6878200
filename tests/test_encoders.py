"""BiEncoder and CrossEncoder mechanics: loading from a folder, pooling, truncation, layer access, counts."""
import json

import numpy as np
import pytest

import pyterrier_gaia as gaia
from pyterrier_gaia.cost.counts import counting
from pyterrier_gaia.encoders import flops
from tiny_models import tiny_bert


@pytest.fixture(scope="module")
def tiny_cross(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny_cross"))


@pytest.fixture(scope="module")
def minilm():
    return gaia.BiEncoder()


def test_cross_encoder_from_local_folder_scores_pairs(tiny_cross):
    enc = gaia.CrossEncoder(tiny_cross)
    assert (enc.num_layers, enc.hidden_size, enc.max_length) == (3, 32, 64)  # capped by the position table
    scores = enc.score(["q one", "q two", "q one"], ["doc a", "doc b b", "doc a"], batch_size=2)
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert scores[0] == pytest.approx(scores[2], abs=1e-6)  # batching and order do not change a score
    assert scores[0] != pytest.approx(scores[1], abs=1e-6)


def test_cross_encoder_layer_by_layer_equals_forward(tiny_cross):
    enc = gaia.CrossEncoder(tiny_cross)
    batch = enc.tokenize(["a query", "another longer query"], ["short doc", "a much longer document text"])
    hidden, mask = enc.embed(batch)
    for i in range(enc.num_layers):
        hidden = enc.layer(i, hidden, mask)
    whole = enc.forward(batch, output_hidden_states=True)
    assert len(whole.hidden_states) == enc.num_layers + 1
    np.testing.assert_allclose(enc.layer_output(hidden, batch["attention_mask"]).numpy(), whole.logits.squeeze(-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(hidden.numpy(), whole.hidden_states[-1].numpy(), atol=1e-5)


def test_counts_follow_the_flop_formula(tiny_cross):
    enc = gaia.CrossEncoder(tiny_cross)
    with counting() as scope:
        enc.score(["q"] * 5, ["word " * 3] * 4 + ["word " * 40], batch_size=4)
    # longest pairs first: the long text and three short ones share a batch, the last short one is alone
    batches = [enc.tokenize(["q"] * 4, ["word " * 40] + ["word " * 3] * 3), enc.tokenize(["q"], ["word " * 3])]
    expected = sum(flops.forward_flops(*b["input_ids"].shape, 3, 32, 64) for b in batches)
    assert scope.counts["flops"] == expected
    assert scope.counts["forward_passes"] == 2
    assert scope.counts["layer_tokens"] == 3 * sum(b["input_ids"].numel() for b in batches)
    assert scope.counts["tokens"] == sum(int(b["attention_mask"].sum()) for b in batches)
    assert scope.counts["weight_bytes"] == 2 * enc.weight_bytes
    # one layer, one token of a 10-position sequence: 2·(4·32² + 2·32·64) + 4·10·32
    assert flops.per_token_layer(32, 64, 10) == 2 * (4 * 32 * 32 + 2 * 32 * 64) + 4 * 10 * 32


def test_cross_encoder_needs_a_single_logit(tmp_path):
    with pytest.raises(ValueError, match="2 output labels; expected a single relevance logit"):
        gaia.CrossEncoder(tiny_bert(tmp_path, num_labels=2))


@pytest.mark.parametrize("kind", [gaia.CrossEncoder, gaia.BiEncoder])
def test_unloadable_model_names_it(tmp_path, kind):
    with pytest.raises(OSError, match=f"{kind.__name__}: cannot load model .*no-such-model"):
        kind(str(tmp_path / "no-such-model"))


def test_plain_transformer_folder_gets_mean_pooling(tmp_path):
    enc = gaia.BiEncoder(tiny_bert(tmp_path, cross=False))
    assert (enc.pooling, enc.normalize) == ("mean", False)
    batch = enc.tokenize(["two words", "three words here"])
    hidden = enc.forward(batch).last_hidden_state
    mask = batch["attention_mask"][1].bool()
    np.testing.assert_allclose(enc.encode(["three words here"])[0], hidden[1][mask].mean(0).numpy(), atol=1e-5)


def test_minilm_reads_its_sentence_transformers_layout(minilm):
    assert (minilm.pooling, minilm.normalize, minilm.max_length) == ("mean", True, 256)
    assert (minilm.num_layers, minilm.hidden_size) == (6, 384)
    vectors = minilm.encode(["microwave antennas", "dielectric constant of liquids"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_minilm_truncates_at_max_length(minilm):
    batch = minilm.tokenize(["radio " * 1000])
    assert batch["input_ids"].shape == (1, 256)


def test_each_distinct_query_and_text_encoded_once(minilm):
    queries = ["radio waves"] * 3 + ["microwave"] * 3
    texts = ["wave propagation", "ionosphere", "wave propagation"] * 2
    with counting() as scope:
        scores = minilm.score(queries, texts, batch_size=64)
    # 2 distinct queries and 2 distinct texts: one batch each
    assert scope.counts["forward_passes"] == 2
    q, d = minilm.encode(["radio waves", "microwave"]), minilm.encode(["wave propagation", "ionosphere"])
    np.testing.assert_allclose(scores, [q[0] @ d[0], q[0] @ d[1], q[0] @ d[0], q[1] @ d[0], q[1] @ d[1], q[1] @ d[0]],
                               atol=1e-5)


def test_minilm_layer_by_layer_pools_to_its_embedding(minilm):
    texts = ["microwave antennas", "a longer text about the ionosphere"]
    batch = minilm.tokenize(texts)
    hidden, mask = minilm.embed(batch)
    for i in range(minilm.num_layers):
        hidden = minilm.layer(i, hidden, mask)
    np.testing.assert_allclose(minilm.layer_output(hidden, batch["attention_mask"]).numpy(), minilm.encode(texts), atol=1e-5)


def test_unsupported_pooling_is_named(tmp_path):
    folder = tiny_bert(tmp_path, cross=False)
    (tmp_path / "modules.json").write_text(json.dumps([{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_lasttoken": True}))
    with pytest.raises(ValueError, match="pooling .*pooling_mode_lasttoken.* is not supported"):
        gaia.BiEncoder(folder)
