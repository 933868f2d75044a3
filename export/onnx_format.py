"""What every ONNX variant shares: tf2onnx from a tf.function, tensor renaming, onnxruntime's
dynamic int8 quantization, nextword's metadata plus the full checker, and the tensor specs the
manifest records."""

import os
import tempfile

from nextword.runtime.bundle import FORMAT_VERSION

from .float_outputs import require_float32

ONNX_OPSET = 17
OPSETS = range(13, 19)   # tf2onnx 1.17 refuses opsets above 18; below 13 lacks what the graph needs
FAMILIES = ("float32", "dynamic-int8")


def from_function(forward, signature, opset):
    """(ModelProto, converter note) of a tf.function through tf2onnx."""
    import tf2onnx
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=opset)
    return proto, f"tf2onnx {tf2onnx.__version__} from_function, opset {opset}"


def rename(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new


def quantize(proto, family):
    """(proto, converter note) for a family: float32 as is; dynamic-int8 through onnxruntime's
    dynamic quantization (LSTM -> DynamicQuantizeLSTM; inputs and outputs stay float)."""
    if family == "float32":
        return proto, ""
    if family != "dynamic-int8":
        raise ValueError(f"no ONNX form for family {family!r}; expected one of {', '.join(FAMILIES)}")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
        onnx.save(proto, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        proto = onnx.load(dst)
    return proto, "; onnxruntime.quantization.quantize_dynamic (QInt8, per channel, reduce_range)"


def finish(proto, **metadata):
    """Write nextword's metadata_props, pass the full checker, serialize."""
    import onnx
    del proto.metadata_props[:]
    for key, value in dict(nextword_format_version=FORMAT_VERSION, output="logits", **metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def tensor_spec(proto, name):
    import onnx
    v = next(x for x in list(proto.graph.input) + list(proto.graph.output) if x.name == name)
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
    return {"name": name, "dtype": dtype, "shape": dims}


def io_specs(proto, inputs, outputs, what):
    """(input specs, output specs) by name, outputs checked to be float32."""
    return ([tensor_spec(proto, n) for n in inputs],
            require_float32([tensor_spec(proto, n) for n in outputs], what))


def graph_details(proto):
    return {"opset": [{"domain": o.domain or "ai.onnx", "version": int(o.version)} for o in proto.opset_import],
            "ops": sorted({n.op_type for n in proto.graph.node})}
