"""What every TFLite variant shares: the converter set-up per quantization family (builtin ops only),
the op listing, loading the bytes back with ai-edge-litert, and the tensor specs the manifest records."""

import numpy as np

from nextword.train.quiet_tf import import_tensorflow

from .float_outputs import require_float32

FAMILIES = ("float32", "float16", "dynamic-int8", "int8")


def tflite_ops(data):
    """[(op name, version)] of a TFLite flatbuffer; custom ops by their custom code."""
    import_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(data, 0)
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = "CUSTOM:" + (code.CustomCode() or b"?").decode()
        ops.append([name, int(code.Version())])
    return ops


def tflite_converter(model, family, representative=None):
    """A TFLiteConverter for one quantization family, builtin ops only (never Flex / SELECT_TF_OPS).
    `representative`: the calibration generator, needed by full int8 (whose inputs and outputs stay
    float: only the inside is quantized)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown quantization family {family!r}; expected one of {', '.join(FAMILIES)}")
    if family == "int8" and representative is None:
        raise ValueError("full int8 needs a representative dataset")
    tf = import_tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if family != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if family == "float16":
        conv.target_spec.supported_types = [tf.float16]
    elif family in ("dynamic-int8", "int8"):
        # per-channel dense weights need FULLY_CONNECTED v12, which tflite-runtime 2.14 refuses
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    if family == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.representative_dataset = representative
    return conv


def convert_builtin(conv):
    """(bytes, ops): run the converter and refuse any non-builtin op (tflite-runtime has no Flex)."""
    data = conv.convert()
    ops = tflite_ops(data)
    custom = [o for o, _ in ops if o.startswith("CUSTOM") or o.startswith("Flex")]
    if custom:
        raise RuntimeError(f"the converted file holds non-builtin ops {custom}")
    return data, ops


def load_interpreter(data):
    """The bytes loaded and allocated by ai-edge-litert: what we wrote must load (field notes, trap 2)."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    return interp


def tensor_spec(d):
    """The manifest's description of one interpreter tensor detail."""
    s = {"name": d["name"], "dtype": np.dtype(d["dtype"]).name, "shape": [int(n) for n in d["shape"]]}
    scale, zero = d.get("quantization", (0.0, 0))
    if scale:
        s["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    return s


def io_specs(inputs, outputs, what):
    """(input specs, output specs), outputs checked to be float32 and unquantized."""
    return [tensor_spec(d) for d in inputs], require_float32([tensor_spec(d) for d in outputs], what)


def converter_note(extra):
    return f"tf.lite.TFLiteConverter (TF {import_tensorflow().__version__}), {extra}"
