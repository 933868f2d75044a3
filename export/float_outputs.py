"""The one output contract every variant keeps: float32 logits (and float32 LSTM states for step
variants), never quantized tensors. The runtime refuses anything else, so the exporter checks it
before a file is accepted."""


def require_float32(tensors, what):
    """`tensors`: specs as written to the manifest ({name, dtype, shape[, quantization]}): a
    variant's outputs, or a step variant's state inputs."""
    bad = [t for t in tensors if t["dtype"] != "float32" or "quantization" in t]
    if bad:
        shown = ", ".join(f"{t['name']} ({t['dtype']}{', quantized' if 'quantization' in t else ''})" for t in bad)
        raise RuntimeError(f"{what}: outputs and states must be float32 and unquantized, found {shown}")
    return tensors
