"""Floating-point operations of a transformer encoder forward pass (multiply-add = 2 FLOPs).

Per token and per layer, with hidden size ``h``, feed-forward size ``f`` and sequence length ``s``:

    2·(4·h² + 2·h·f)    the Q, K, V and output projections (4·h²) and the two FFN matrices (2·h·f)
  + 4·s·h               attention scores Q·Kᵀ and the weighted sum of V (2·s·h each)

Padding positions are computed like any other, so ``s`` is the padded length of the batch.
Embedding look-ups, layer norms, softmax and the pooling/classifier head are left out
(each under 1% for MiniLM-sized models at s >= 32).
"""


def per_token_layer(hidden: int, ffn: int, seq_len: int) -> int:
    """FLOPs of one layer for one token in a sequence of ``seq_len`` positions."""
    return 2 * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * seq_len * hidden


def forward_flops(batch_size: int, seq_len: int, layers: int, hidden: int, ffn: int) -> int:
    """FLOPs of running ``layers`` layers over a padded batch of ``batch_size`` x ``seq_len``."""
    return layers * batch_size * seq_len * per_token_layer(hidden, ffn, seq_len)
