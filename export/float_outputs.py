"""The one output contract every variant keeps: float32 logits (and float32 LSTM states for step
variants), never quantized tensors. The runtime refuses anything else, so the exporter checks it
before a file is accepted."""


def require_float32(outputs, what):
    """`outputs`: tensor specs as written to the manifest ({name, dtype, shape[, quantization]})."""
    bad = [o for o in outputs if o["dtype"] != "float32" or "quantization" in o]
    if bad:
        shown = ", ".join(f"{o['name']} ({o['dtype']}{', quantized' if 'quantization' in o else ''})" for o in bad)
        raise RuntimeError(f"{what}: every output must be float32 and unquantized, found {shown}")
    return outputs
