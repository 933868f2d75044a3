"""Calling a verified model, trusting nothing it answers: an interpreter's run-time exception becomes
a ModelError naming the variant and package, and every output must have the dtype and shape the
manifest gives (a data-dependent Reshape passes every check at load and can still answer with five
words instead of eleven, or one row for a batch of four)."""

import numpy as np

from .errors import ModelError


def run_checked(runner, arrays, variant, package, shapes):
    """runner.run(arrays) with its outputs checked: one float32 array of shape shapes[i] per output."""
    try:
        outs = runner.run(arrays)
    except Exception as e:   # RuntimeError, onnxruntime's own classes, ValueError from set_tensor ...
        raise ModelError(f"variant {variant.name} on {package} failed at run time ({type(e).__name__}: {e}); "
                         "the model file is damaged or hostile") from None
    if len(outs) == len(shapes):
        for out, shape in zip(outs, shapes):
            if type(out) is not np.ndarray or out.dtype != np.float32 or out.shape != shape:
                break
        else:
            return outs
    found = ", ".join(f"{getattr(o, 'dtype', type(o).__name__)} {tuple(getattr(o, 'shape', ()))}" for o in outs)
    expected = ", ".join(f"float32 {s}" for s in shapes)
    raise ModelError(f"variant {variant.name} on {package} answered with {found} where the manifest gives "
                     f"{expected}; the model file is damaged or hostile")
