"""The one-step (stateful) model: one token id and the LSTM state (h, c) in; logits and the next state
(h', c') out. Built from the trained window model's weights as Embedding -> keras.layers.LSTMCell ->
Dense (linear: softmax happens in numpy in the runtime), so running it T times from the zero state
over a pre-padded window gives the window model's answer (field notes: "A one-step model").

Tensor order, fixed by the manifest: inputs ids [batch, 1] int32, h [batch, H], c [batch, H]; outputs
logits [batch, V], h_out [batch, H], c_out [batch, H]. Converters reorder tensors, so every tensor is
found by name (the TFLite signature, the ONNX graph names) and each mapping is then checked by value
against Keras before the file is accepted."""


import numpy as np

from nextword.train.quiet_tf import import_keras, import_tensorflow
from .convert import ONNX_OPSET, _rename, finish_onnx, quantize_onnx_dynamic, tflite_converter, tflite_ops

INPUTS = ("ids", "h", "c")
OUTPUTS = ("logits", "h_out", "c_out")
CHECK_TOLERANCE = {"float32": 1e-4, "dynamic-int8": 0.25, "int8": 0.5}   # sanity only; parity gates come later


def _layers(trained):
    emb, lstm, dense = [l for l in trained.layers if l.weights]
    return emb, lstm, dense


def keras_step_model(trained, batch=1):
    """A Keras model with the trained weights: {ids, h, c} -> {logits, h_out, c_out}."""
    keras = import_keras()
    emb, lstm, dense = _layers(trained)
    units = lstm.units
    ids = keras.Input(shape=(1,), batch_size=batch, dtype="int32", name="ids")
    h = keras.Input(shape=(units,), batch_size=batch, dtype="float32", name="h")
    c = keras.Input(shape=(units,), batch_size=batch, dtype="float32", name="c")
    x = keras.layers.Embedding(emb.input_dim, emb.output_dim, name="embedding")(ids)
    x = keras.layers.Reshape((emb.output_dim,), name="squeeze")(x)
    cell = keras.layers.LSTMCell(units, activation=lstm.activation, recurrent_activation=lstm.recurrent_activation,
                                 use_bias=lstm.use_bias, name="lstm_cell")
    out, (h_out, c_out) = cell(x, [h, c])
    logits = keras.layers.Dense(dense.units, name="logits")(out)
    model = keras.Model([ids, h, c], {"logits": logits, "h_out": h_out, "c_out": c_out}, name="nextword_step")
    model.get_layer("embedding").set_weights(emb.get_weights())
    cell.set_weights(lstm.get_weights())
    model.get_layer("logits").set_weights(dense.get_weights())
    return model


def units_of(trained):
    return _layers(trained)[1].units


def run_windows(step_model, windows):
    """Logits after running each (pre-padded) window through the Keras step model from the zero
    state, all windows as one batch: (B, V) logits, plus the (h, c) seen before each step (for
    calibration)."""
    keras = import_keras()
    windows = np.asarray(windows, dtype=np.int32)
    units = step_model.get_layer("lstm_cell").units
    h = np.zeros((len(windows), units), np.float32)
    c = np.zeros_like(h)
    states, logits = [], None
    for t in range(windows.shape[1]):
        states.append((windows[:, t:t + 1], h, c))
        out = step_model([windows[:, t:t + 1], h, c], training=False)
        logits, h, c = (keras.ops.convert_to_numpy(out[k]) for k in OUTPUTS)
    return logits, states


def _probe_inputs(units, vocab, n=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(n, 1)).astype(np.int32)
    h = rng.uniform(-0.9, 0.9, size=(n, units)).astype(np.float32)
    c = rng.uniform(-2.0, 2.0, size=(n, units)).astype(np.float32)
    return ids, h, c


def _check_by_value(run_one, model, units, vocab, family, what):
    """Each output tensor named X must carry what Keras calls X (catches a swapped h/c)."""
    ids, h, c = _probe_inputs(units, vocab)
    ref = {k: np.array(v) for k, v in model([ids, h, c], training=False).items()}
    tol = CHECK_TOLERANCE[family]
    for i in range(len(ids)):
        got = run_one(ids[i:i + 1], h[i:i + 1], c[i:i + 1])
        for name, value in zip(OUTPUTS, got):
            want = np.asarray(ref[name])[i:i + 1]
            if not np.all(np.isfinite(value)):
                raise RuntimeError(f"{what}: output {name} is not finite")
            diff = float(np.max(np.abs(np.asarray(value, np.float32) - want)))
            if diff > tol * max(1.0, float(np.max(np.abs(want)))):
                raise RuntimeError(f"{what}: output {name} differs from Keras by {diff:.3g} (tensor mapping or "
                                   "conversion is wrong)")


def convert_step_tflite(trained, family, calib):
    tf = import_tensorflow()
    units, vocab = units_of(trained), _layers(trained)[2].units
    model = keras_step_model(trained, batch=1)
    representative = None
    if family == "int8":
        _, states = run_windows(keras_step_model(trained, batch=None), calib)
        samples = [(ids[i:i + 1], h[i:i + 1], c[i:i + 1]) for ids, h, c in states for i in range(len(ids))]

        def calibration():
            for ids, h, c in samples:
                yield {"ids": ids, "h": h, "c": c}
        representative = calibration
    conv = tflite_converter(model, family, representative)
    data = conv.convert()
    ops = tflite_ops(data)
    custom = [o for o, _ in ops if o.startswith("CUSTOM") or o.startswith("Flex")]
    if custom:
        raise RuntimeError(f"the converted file holds non-builtin ops {custom}")
    from ai_edge_litert.interpreter import Interpreter   # load and run what we wrote (field notes, trap 2)
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    signature = interp._get_full_signature_list()
    if len(signature) != 1:
        raise RuntimeError(f"expected one signature in the step model, found {sorted(signature)}")
    sig = next(iter(signature.values()))
    by_index = {d["index"]: d for d in interp.get_input_details() + interp.get_output_details()}
    try:
        ins = [by_index[sig["inputs"][n]] for n in INPUTS]
        outs = [by_index[sig["outputs"][n]] for n in OUTPUTS]
    except KeyError as e:
        raise RuntimeError(f"the step model's signature lacks {e} (has {sig})") from None

    def run_one(ids, h, c):
        for d, a in zip(ins, (ids, h, c)):
            interp.set_tensor(d["index"], _quantize(a, d))
        interp.invoke()
        return [_dequantize(interp.get_tensor(d["index"]), d) for d in outs]
    _check_by_value(run_one, model, units, vocab, family, "TFLite step model")

    def spec(d):
        s = {"name": d["name"], "dtype": np.dtype(d["dtype"]).name, "shape": [int(n) for n in d["shape"]]}
        scale, zero = d.get("quantization", (0.0, 0))
        if scale:
            s["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
        return s
    return data, {"inputs": [spec(d) for d in ins], "outputs": [spec(d) for d in outs],
                  "details": {"converter": f"tf.lite.TFLiteConverter (TF {tf.__version__}), Embedding -> LSTMCell "
                                           "-> Dense, one step with explicit state",
                              "ops": ops, "units": units,
                              "signature": {"inputs": list(INPUTS), "outputs": list(OUTPUTS)}}}


def _quantize(a, d):
    scale, zero = d.get("quantization", (0.0, 0))
    if scale and np.dtype(d["dtype"]).kind in "iu" and np.asarray(a).dtype.kind == "f":
        info = np.iinfo(d["dtype"])
        return np.clip(np.round(a / scale) + zero, info.min, info.max).astype(d["dtype"])
    return np.asarray(a, dtype=d["dtype"])


def _dequantize(a, d):
    scale, zero = d.get("quantization", (0.0, 0))
    if scale:
        return (a.astype(np.float32) - zero) * np.float32(scale)
    return a


def convert_step_onnx(trained, family, opset=ONNX_OPSET):
    import onnx
    tf = import_tensorflow()
    import tf2onnx
    units, vocab = units_of(trained), _layers(trained)[2].units
    window = trained.input_shape[1]
    model = keras_step_model(trained, batch=None)
    signature = [tf.TensorSpec([None, 1], tf.int32, name="ids"), tf.TensorSpec([None, units], tf.float32, name="h"),
                 tf.TensorSpec([None, units], tf.float32, name="c")]

    @tf.function(input_signature=signature)
    def forward(ids, h, c):
        out = model([ids, h, c], training=False)
        return out["logits"], out["h_out"], out["c_out"]
    proto, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=opset)
    found_in = [i.name for i in proto.graph.input]
    for want in INPUTS:   # tf2onnx names inputs after the TensorSpec names, maybe with ':0'
        match = [n for n in found_in if n == want or n.split(":")[0] == want]
        if len(match) != 1:
            raise RuntimeError(f"cannot find input {want!r} among {found_in}")
        _rename(proto.graph, match[0], want)
    if len(proto.graph.output) != 3:
        raise RuntimeError(f"expected 3 outputs, found {[o.name for o in proto.graph.output]}")
    # outputs come back in the function's return order; the value check below proves the mapping
    for value, want in zip(list(proto.graph.output), OUTPUTS):
        _rename(proto.graph, value.name, want)
    converter = f"tf2onnx {tf2onnx.__version__} from_function, opset {opset}, Embedding -> LSTMCell -> Dense step"
    if family == "dynamic-int8":
        proto, note = quantize_onnx_dynamic(proto)
        converter += note
    elif family != "float32":
        raise ValueError(f"no ONNX step form for family {family!r}")
    data = finish_onnx(proto, vocab_size=vocab, window=window, kind="step", units=units)

    import onnxruntime as ort
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names_in = [i.name for i in sess.get_inputs()]
    names_out = [o.name for o in sess.get_outputs()]
    if sorted(names_in) != sorted(INPUTS) or sorted(names_out) != sorted(OUTPUTS):
        raise RuntimeError(f"ONNX step model exposes {names_in} -> {names_out}")
    _check_by_value(lambda ids, h, c: sess.run(list(OUTPUTS), {"ids": ids, "h": h, "c": c}),
                    model, units, vocab, family, "ONNX step model")

    def spec(name):
        v = next(x for x in list(proto.graph.input) + list(proto.graph.output) if x.name == name)
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
        return {"name": name, "dtype": dtype, "shape": dims}
    return data, {"inputs": [spec(n) for n in INPUTS], "outputs": [spec(n) for n in OUTPUTS],
                  "details": {"converter": converter, "units": units,
                              "opset": [{"domain": o.domain or "ai.onnx", "version": int(o.version)}
                                        for o in proto.opset_import],
                              "ops": sorted({n.op_type for n in proto.graph.node})}}


def convert_step(trained, fmt, family, calib_windows, opset=ONNX_OPSET):
    """(model bytes, meta) for the step variant `fmt`/`family`; meta like convert_tflite's."""
    if fmt == "tflite":
        return convert_step_tflite(trained, family, calib_windows)
    if fmt == "onnx":
        return convert_step_onnx(trained, family, opset)
    raise ValueError(f"unknown format {fmt!r}")
