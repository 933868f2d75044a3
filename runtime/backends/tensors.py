"""What both adapters check when they open a file: the model exposes exactly the tensors the
manifest names, with the manifest's dtype and shape, and none of them quantized (the manifest schema
admits only unquantized inputs and float32 outputs). A mismatch is refused at load, not at the
first prediction."""

import numpy as np

from ..errors import BundleInvalid


def _dtype_name(d):
    t = d["dtype"]
    if isinstance(t, str):  # onnxruntime: "tensor(float)", "tensor(int32)", ...
        t = t[7:-1] if t.startswith("tensor(") else t
        return {"float": "float32", "double": "float64"}.get(t, t)
    return np.dtype(t).name


def match(found, spec, variant, what):
    """The tensor of `found` (name -> details) that `spec` describes; BundleInvalid if it differs."""
    d = found.get(spec.name)
    if d is None:
        raise BundleInvalid(f"variant {variant.name}: the model has no {what} named {spec.name!r} "
                            f"(it has {sorted(found)}); the manifest does not describe this file")
    dtype = _dtype_name(d)
    shape = [int(n) if isinstance(n, (int, np.integer)) and n >= 0 else -1 for n in d["shape"]]
    q = tuple(d.get("quantization") or (0.0, 0))   # TFLite only: (scale, zero_point)
    if dtype != spec.dtype or shape != list(spec.shape) or float(q[0]) != 0.0:
        raise BundleInvalid(f"variant {variant.name}: {what} {spec.name!r} is {dtype} {shape} (quantization {q}) "
                            f"in the model but the manifest says {spec.dtype} {list(spec.shape)} (not quantized); "
                            "the manifest does not describe this file")
    return d
