"""The weights of a dynamically quantized BERT ONNX export, as a float32 Hugging Face state dict.

An export quantized by ``onnxruntime.quantization.quantize_dynamic`` keeps biases and LayerNorms
in float32 and stores every linear weight as an int8/uint8 ``<w>_quantized`` initializer with a
per-tensor ``<w>_scale`` and ``<w>_zero_point``; the float weight is ``(q - zero_point) * scale``.
Linear weights feed ``MatMulInteger`` nodes as ``[in, out]`` (transposed from ``nn.Linear``) and
are named after the node (``/bert/encoder/layer.0/attention/self/query/MatMul_quant`` holds
``bert.encoder.layer.0.attention.self.query.weight``); embedding tables feed ``Gather`` nodes
and keep their own names.

The file is read with the protobuf runtime that onnxruntime depends on, through a message subset
of ``onnx.proto`` declared here (the ``onnx`` package is not needed; unknown fields are skipped).
"""
from functools import lru_cache

import numpy as np

# TensorProto.DataType -> numpy dtype, for the types a quantized export holds
DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}


class DamagedExport(ValueError):
    """An ONNX file that cannot be read as a quantized BERT export."""


@lru_cache(maxsize=1)
def _model_proto_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    messages = {  # name -> (field name, number, type, label, message type) as in onnx.proto
        "TensorProto": [("dims", 1, field.TYPE_INT64, repeated, None),
                        ("data_type", 2, field.TYPE_INT32, optional, None),
                        ("float_data", 4, field.TYPE_FLOAT, repeated, None),
                        ("int32_data", 5, field.TYPE_INT32, repeated, None),
                        ("int64_data", 7, field.TYPE_INT64, repeated, None),
                        ("name", 8, field.TYPE_STRING, optional, None),
                        ("raw_data", 9, field.TYPE_BYTES, optional, None)],
        "NodeProto": [("input", 1, field.TYPE_STRING, repeated, None),
                      ("output", 2, field.TYPE_STRING, repeated, None),
                      ("name", 3, field.TYPE_STRING, optional, None),
                      ("op_type", 4, field.TYPE_STRING, optional, None)],
        "GraphProto": [("node", 1, field.TYPE_MESSAGE, repeated, "NodeProto"),
                       ("initializer", 5, field.TYPE_MESSAGE, repeated, "TensorProto")],
        "ModelProto": [("producer_name", 2, field.TYPE_STRING, optional, None),
                       ("graph", 7, field.TYPE_MESSAGE, optional, "GraphProto")],
    }
    file = descriptor_pb2.FileDescriptorProto(name="gaia_onnx_subset.proto", package="gaia_onnx", syntax="proto2")
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            spec = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                spec.type_name = f".gaia_onnx.{type_name}"
            if label == repeated and kind != field.TYPE_STRING and kind != field.TYPE_MESSAGE:
                spec.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("gaia_onnx.ModelProto"))


def _array(tensor) -> np.ndarray:
    dtype = DTYPES.get(tensor.data_type)
    if dtype is None:
        raise DamagedExport(f"initializer {tensor.name!r} has ONNX data type {tensor.data_type}, "
                            f"expected one of {sorted(DTYPES)}")
    if tensor.raw_data:
        values = np.frombuffer(tensor.raw_data, dtype=dtype).copy()  # writable, for torch
    elif tensor.float_data:
        values = np.asarray(tensor.float_data, dtype=dtype)
    elif tensor.int64_data:
        values = np.asarray(tensor.int64_data, dtype=dtype)
    else:
        values = np.asarray(tensor.int32_data, dtype=dtype)
    shape = tuple(tensor.dims)
    if values.size != int(np.prod(shape)):
        raise DamagedExport(f"initializer {tensor.name!r} holds {values.size} values for shape {shape}")
    return values.reshape(shape)


def _dequantize(initializers: dict, quantized: str) -> np.ndarray:
    base = quantized.removesuffix("_quantized")
    try:
        q, scale, zero = (initializers[base + suffix] for suffix in ("_quantized", "_scale", "_zero_point"))
    except KeyError as missing:
        raise DamagedExport(f"quantized weight {base!r} lacks its initializer {missing}") from None
    return ((q.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def _module_of(node_name: str) -> str:
    """``/bert/pooler/dense/Gemm_MatMul_quant`` -> ``bert.pooler.dense``."""
    return ".".join(node_name.strip("/").split("/")[:-1])


def state_dict(path) -> dict:
    """Float32 weights of the quantized BERT export at ``path``, keyed by Hugging Face parameter name."""
    model = _model_proto_class()()
    try:
        model.ParseFromString(open(path, "rb").read())
    except Exception as err:  # protobuf's DecodeError and friends
        raise DamagedExport(f"{path} is not a readable ONNX file: {err}") from err
    initializers = {t.name: _array(t) for t in model.graph.initializer}
    weights = {}
    for node in model.graph.node:
        if node.op_type == "MatMulInteger" and node.input[1] in initializers:
            weights[f"{_module_of(node.name)}.weight"] = _dequantize(initializers, node.input[1]).T.copy()
        elif node.op_type == "Gather" and node.input[0].endswith("_quantized") and node.input[0] in initializers:
            weights[node.input[0].removesuffix("_quantized")] = _dequantize(initializers, node.input[0])
    for name, values in initializers.items():
        if values.dtype == np.float32 and values.ndim >= 1 and name.endswith((".weight", ".bias")):
            weights[name] = values
    if not weights:
        raise DamagedExport(f"{path} holds no BERT weights (no MatMulInteger, Gather or named float initializers)")
    return weights
