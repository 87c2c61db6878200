"""The precision ladder: which numeric precisions a model can run at here, and loading it at one.

=========  ===================================================  ================================
precision  CPU                                                  CUDA
=========  ===================================================  ================================
fp32       yes                                                  yes
bf16       where the CPU has native bf16 (oneDNN AVX512-BF16)   where the GPU supports bf16
fp16       no: CPUs have no fp16 matmul (measured 3.8x slower)  yes
int8       torch dynamic quantization of every ``nn.Linear``    bitsandbytes LLM.int8
           (int8 weights, one scale per output channel)
nf4        no (bitsandbytes 4-bit needs a GPU here)             bitsandbytes NF4
=========  ===================================================  ================================

CPU int8 uses ``torch.ao.quantization.quantize_dynamic`` (fbgemm/x86 kernels). It is marked
deprecated in favour of torchao, but torchao's eager ``Int8DynamicActivationInt8WeightConfig``
measured no faster than fp32 on CPU here without ``torch.compile``, while the torch kernels run
MiniLM 2.4x faster; the deprecation warning is silenced where we call it. Per-channel weight
scales kept more of fp32's top 10 on Vaswani than one scale per tensor (0.935 vs 0.905 of it,
20 queries x BM25 top 20) at the same speed.

Loading is quiet: transformers' own progress bars ("Loading weights: 100%|...") are hidden while a
model loads, unless transformers' logging verbosity is INFO or finer (``TRANSFORMERS_VERBOSITY=info``,
or ``transformers.logging.set_verbosity_info()``).
"""
import threading
import warnings
from contextlib import contextmanager

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "nf4")

# the order precision="auto" tries them in: bytes per linear weight 0.5, 1, 2, 2, 4
CHEAPEST_FIRST = ("nf4", "int8", "fp16", "bf16", "fp32")


def runnable(device) -> list:
    """The precisions that can run on ``device`` (a ``torch.device``) on this machine, in ladder order."""
    import torch

    if device.type == "cuda":
        names = ["fp32", "fp16"]
        if torch.cuda.is_bf16_supported():
            names.append("bf16")
        if _bitsandbytes_installed():
            names += ["int8", "nf4"]
    else:
        names = ["fp32"]
        if _cpu_has_bf16():
            names.append("bf16")
        if "x86" in torch.backends.quantized.supported_engines or "fbgemm" in torch.backends.quantized.supported_engines:
            names.append("int8")
    return [p for p in PRECISIONS if p in names]


def check(precision: str, device, stage: str) -> str:
    """Return ``precision`` if it can run on ``device``, else raise a ValueError saying which can."""
    if precision not in PRECISIONS:
        raise ValueError(f"{stage}: unknown precision {precision!r}; expected one of "
                         f"{', '.join(PRECISIONS)} or 'auto'")
    can = runnable(device)
    if precision not in can:
        raise ValueError(f"{stage}: precision {precision!r} cannot run on {device.type} here; "
                         f"precisions that can: {', '.join(can)}")
    return precision


_loading = threading.Lock()  # loads that hide the bars install and restore one process-wide hook in turn


@contextmanager
def quiet_loading():
    """While active, transformers shows no progress bar, unless its verbosity is INFO or finer."""
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # transformers >= 5 (earlier ones draw no such bar)
    if set_hook is None or hf_logging.get_verbosity() <= hf_logging.INFO:
        yield
        return
    with _loading:
        previous = set_hook(lambda factory, args, kwargs: hf_logging.EmptyTqdm(*args, **kwargs))
        try:
            yield
        finally:
            set_hook(previous)


def load(auto_class, path: str, precision: str, device):
    """Load ``auto_class.from_pretrained(path)`` at ``precision`` onto ``device``, in eval mode (quietly)."""
    with quiet_loading():
        return _load(auto_class, path, precision, device)


def _load(auto_class, path: str, precision: str, device):
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if device.type == "cuda" and precision in ("int8", "nf4"):
        from transformers import BitsAndBytesConfig

        if precision == "int8":
            config = BitsAndBytesConfig(load_in_8bit=True)
        else:
            config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                        bnb_4bit_compute_dtype=torch.float16)
        model = auto_class.from_pretrained(path, quantization_config=config,
                                           device_map={"": device.index or 0})
        return model.eval()
    model = auto_class.from_pretrained(path, dtype=dtypes.get(precision, torch.float32))
    if precision == "int8":  # CPU
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_channel = torch.ao.quantization.per_channel_dynamic_qconfig
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: per_channel}, dtype=torch.qint8)
    return model.to(device).eval()


def weight_bytes(model) -> int:
    """Bytes of weights one forward pass reads, at the precision they are stored in.

    Embedding tables are left out (a pass reads only the rows of its tokens); dynamically
    quantized linear layers count their int8 weights plus fp32 biases.
    """
    import torch

    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            continue
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight, bias = module._packed_params._weight_bias()
            total += weight.numel() * weight.element_size()
            total += 0 if bias is None else bias.numel() * bias.element_size()
            continue
        for param in module.parameters(recurse=False):
            total += param.numel() * param.element_size()
    return total


def _cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (oneDNN's check: AVX512-BF16 or AMX)."""
    import torch

    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _bitsandbytes_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("bitsandbytes") is not None
