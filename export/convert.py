"""One variant, converted in its own child process (`python -m nextword.export.convert SPEC.json`).

Converters crash (SIGSEGV in int8 calibration is real), so the parent only ever sees an exit status
and, on success, the model file plus a JSON sidecar describing it. Forms chosen from the field notes:
TFLite from an *unrolled* LSTM with a fixed batch of 1 (straight-line graph: float, fp16, dynamic and
full int8 all convert to builtin ops); ONNX from the Keras LSTM through tf2onnx.from_function with a
dynamic batch (one fused LSTM op). Both emit logits: softmax happens in numpy in the runtime, which
keeps int8 from collapsing a flat softmax over a large vocabulary."""

import json
import os
import sys

from nextword.train.quiet_tf import import_keras, import_tensorflow


ONNX_OPSET = 17
OPSETS = range(13, 19)   # tf2onnx 1.17 refuses opsets above 18; below 13 lacks what the graph needs
FORMAT_VERSION = 1


def logits_model(trained, unroll, batch):
    """Same weights as the trained Embedding -> LSTM -> Dense(softmax) model, with a linear output."""
    keras = import_keras()
    emb, lstm, dense = [l for l in trained.layers if l.weights]
    window = trained.input_shape[1]
    vocab = dense.units
    inp = keras.Input(shape=(window,), batch_size=batch, dtype="int32", name="ids")
    x = keras.layers.Embedding(emb.input_dim, emb.output_dim, name="embedding")(inp)
    x = keras.layers.LSTM(lstm.units, activation=lstm.activation, recurrent_activation=lstm.recurrent_activation,
                          unroll=unroll, name="lstm")(x)
    out = keras.layers.Dense(vocab, name="logits")(x)
    model = keras.Model(inp, out, name="nextword_logits")
    for mine, theirs in zip([l for l in model.layers if l.weights], (emb, lstm, dense)):
        mine.set_weights(theirs.get_weights())
    return model


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
    `representative`: the calibration generator, needed by full int8."""
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
    elif family not in ("float32", "float16", "dynamic-int8"):
        raise ValueError(f"unknown quantization family {family!r}")
    return conv


def convert_tflite(trained, family, calib):
    import numpy as np
    tf = import_tensorflow()
    rows = np.asarray(calib, dtype=np.int32)

    def representative():
        for i in range(len(rows)):
            yield [rows[i:i + 1]]
    conv = tflite_converter(logits_model(trained, unroll=True, batch=1), family, representative)
    data = conv.convert()
    ops = tflite_ops(data)
    custom = [o for o, _ in ops if o.startswith("CUSTOM") or o.startswith("Flex")]
    if custom:
        raise RuntimeError(f"the converted file holds non-builtin ops {custom}")
    from ai_edge_litert.interpreter import Interpreter  # load and run what we wrote (field notes, trap 2)
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    interp.set_tensor(ins[0]["index"], np.zeros(ins[0]["shape"], ins[0]["dtype"]))
    interp.invoke()
    got = interp.get_tensor(outs[0]["index"])
    if not np.all(np.isfinite(got)):
        raise RuntimeError("the converted model returns non-finite numbers")

    def spec(d):
        s = {"name": d["name"], "dtype": np.dtype(d["dtype"]).name, "shape": [int(n) for n in d["shape"]]}
        scale, zero = d.get("quantization", (0.0, 0))
        if scale:
            s["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
        return s
    return data, {"inputs": [spec(d) for d in ins], "outputs": [spec(d) for d in outs],
                  "details": {"converter": f"tf.lite.TFLiteConverter (TF {tf.__version__}), unrolled LSTM",
                              "ops": ops}}


def _rename(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in list(graph.input) + list(graph.output):
        if value.name == old:
            value.name = new


def quantize_onnx_dynamic(proto):
    """onnxruntime's dynamic int8 quantization (LSTM -> DynamicQuantizeLSTM); returns (proto, converter note)."""
    import tempfile
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
        onnx.save(proto, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        proto = onnx.load(dst)
    return proto, "; onnxruntime.quantization.quantize_dynamic (QInt8, per channel, reduce_range)"


def finish_onnx(proto, **metadata):
    """Write nextword's metadata_props, pass the full checker, serialize."""
    import onnx
    del proto.metadata_props[:]
    for key, value in dict(nextword_format_version=FORMAT_VERSION, output="logits", **metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def convert_onnx(trained, family, vocab_size, window, opset=ONNX_OPSET):
    import onnx
    tf = import_tensorflow()
    import tf2onnx
    model = logits_model(trained, unroll=False, batch=None)
    model(tf.zeros((1, window), tf.int32))
    signature = [tf.TensorSpec([None, window], tf.int32, name="ids")]

    @tf.function(input_signature=signature)
    def forward(ids):
        return model(ids, training=False)
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=opset)
    _rename(proto.graph, proto.graph.input[0].name, "ids")
    _rename(proto.graph, proto.graph.output[0].name, "logits")
    converter = f"tf2onnx {tf2onnx.__version__} from_function, opset {opset}"
    if family == "dynamic-int8":
        proto, note = quantize_onnx_dynamic(proto)
        converter += note
    data = finish_onnx(proto, vocab_size=vocab_size, window=window)

    def spec(v, name):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
        return {"name": name, "dtype": dtype, "shape": dims}
    return data, {"inputs": [spec(proto.graph.input[0], "ids")], "outputs": [spec(proto.graph.output[0], "logits")],
                  "details": {"converter": converter,
                              "opset": [{"domain": o.domain or "ai.onnx", "version": int(o.version)} for o in proto.opset_import],
                              "ops": sorted({n.op_type for n in proto.graph.node})}}


def main(spec_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    keras = import_keras()
    import numpy as np
    trained = keras.saving.load_model(os.path.join(spec["model_dir"], "model.keras"))
    calib = np.load(os.path.join(spec["model_dir"], "windows.npz"), allow_pickle=False)["x_calib"]
    if os.environ.get("NEXTWORD_FAULT_INJECT") == spec.get("name"):
        # test hook: corrupt one weight of this variant only, so the parity gate has something to catch
        dense = [l for l in trained.layers if l.weights][-1]
        kernel, bias = dense.get_weights()
        dense.set_weights([kernel[:, ::-1].copy(), bias[::-1].copy()])
    if spec["kind"] == "step":
        from .step import convert_step
        data, meta = convert_step(trained, spec["format"], spec["family"], calib, spec.get("opset", ONNX_OPSET))
    elif spec["format"] == "tflite":
        data, meta = convert_tflite(trained, spec["family"], calib)
    else:
        data, meta = convert_onnx(trained, spec["family"], trained.output_shape[-1], trained.input_shape[1],
                                  spec.get("opset", ONNX_OPSET))
    with open(spec["out_file"], "wb") as f:
        f.write(data)
    with open(spec["out_file"] + ".json", "w", encoding="utf-8") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as e:  # one line for the parent's error table
        print(f"{type(e).__name__}: {' '.join(str(e).split())[:500]}", file=sys.stderr)
        sys.exit(1)
