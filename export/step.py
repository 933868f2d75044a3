"""The one-step (stateful) model: one token id and the LSTM state (h, c) in; logits and the next state
(h', c') out. Built from the trained window model's weights as Embedding -> keras.layers.LSTMCell ->
[Dense projection] -> Dense (linear: softmax happens in numpy in the runtime), float32 in and out (no full-int8 step: the
catalogue has none, and states must stay float), so running it T times from the zero state
over a pre-padded window gives the window model's answer (field notes: "A one-step model").

Tensor order, fixed by the manifest: inputs ids [batch, 1] int32, h [batch, H], c [batch, H]; outputs
logits [batch, V], h_out [batch, H], c_out [batch, H]. Converters reorder tensors, so every tensor is
found by name (the TFLite signature, the ONNX graph names) and each mapping is then checked by value
against Keras before the file is accepted."""


import numpy as np

from nextword.train.quiet_tf import import_keras, import_tensorflow

from . import onnx_format, tflite_format
from .float_outputs import require_float32
from .window import weighted_layers

INPUTS = ("ids", "h", "c")
OUTPUTS = ("logits", "h_out", "c_out")
CHECK_TOLERANCE = {"float32": 1e-4, "dynamic-int8": 0.25}   # sanity only; parity gates come later


def _layers(trained):
    emb, lstm, _, dense = weighted_layers(trained)
    return emb, lstm, dense


def keras_step_model(trained, batch=1):
    """A Keras model with the trained weights: {ids, h, c} -> {logits, h_out, c_out}."""
    keras = import_keras()
    emb, lstm, proj, dense = weighted_layers(trained)
    units = lstm.units
    ids = keras.Input(shape=(1,), batch_size=batch, dtype="int32", name="ids")
    h = keras.Input(shape=(units,), batch_size=batch, dtype="float32", name="h")
    c = keras.Input(shape=(units,), batch_size=batch, dtype="float32", name="c")
    x = keras.layers.Embedding(emb.input_dim, emb.output_dim, name="embedding")(ids)
    x = keras.layers.Reshape((emb.output_dim,), name="squeeze")(x)
    cell = keras.layers.LSTMCell(units, activation=lstm.activation, recurrent_activation=lstm.recurrent_activation,
                                 use_bias=lstm.use_bias, name="lstm_cell")
    out, (h_out, c_out) = cell(x, [h, c])
    if proj is not None:
        out = keras.layers.Dense(proj.units, activation=proj.activation, name="projection")(out)
    logits = keras.layers.Dense(dense.units, name="logits")(out)
    model = keras.Model([ids, h, c], {"logits": logits, "h_out": h_out, "c_out": c_out}, name="nextword_step")
    model.get_layer("embedding").set_weights(emb.get_weights())
    cell.set_weights(lstm.get_weights())
    if proj is not None:
        model.get_layer("projection").set_weights(proj.get_weights())
    model.get_layer("logits").set_weights(dense.get_weights())
    return model


def units_of(trained):
    return _layers(trained)[1].units


def run_windows(step_model, windows):
    """Logits after running each (pre-padded) window through the Keras step model from the zero
    state, all windows as one batch: (B, V) logits, plus the (ids, h, c) fed at each step. The
    tests' Keras reference for step variants (tests/test_streaming.py)."""
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


def convert_step_tflite(trained, family):
    if family not in CHECK_TOLERANCE:
        raise ValueError(f"no TFLite step form for family {family!r}; expected one of {', '.join(CHECK_TOLERANCE)}")
    units, vocab = units_of(trained), _layers(trained)[2].units
    model = keras_step_model(trained, batch=1)
    data, ops = tflite_format.convert_builtin(tflite_format.tflite_converter(model, family))
    interp = tflite_format.load_interpreter(data)
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
    inputs, outputs = tflite_format.io_specs(ins, outs, f"TFLite step model ({family})")
    require_float32(inputs[1:], f"TFLite step model ({family}) state inputs")

    def run_one(ids, h, c):
        for d, a in zip(ins, (ids, h, c)):
            interp.set_tensor(d["index"], np.asarray(a, dtype=d["dtype"]))
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in outs]
    _check_by_value(run_one, model, units, vocab, family, "TFLite step model")
    return data, {"inputs": inputs, "outputs": outputs,
                  "details": {"converter": tflite_format.converter_note("Embedding -> LSTMCell -> Dense, one step "
                                                                        "with explicit state"),
                              "ops": ops, "units": units,
                              "signature": {"inputs": list(INPUTS), "outputs": list(OUTPUTS)}}}


def convert_step_onnx(trained, family, opset=onnx_format.ONNX_OPSET):
    tf = import_tensorflow()
    units, vocab = units_of(trained), _layers(trained)[2].units
    window = trained.input_shape[1]
    model = keras_step_model(trained, batch=None)
    signature = [tf.TensorSpec([None, 1], tf.int32, name="ids"), tf.TensorSpec([None, units], tf.float32, name="h"),
                 tf.TensorSpec([None, units], tf.float32, name="c")]

    @tf.function(input_signature=signature)
    def forward(ids, h, c):
        out = model([ids, h, c], training=False)
        return out["logits"], out["h_out"], out["c_out"]
    proto, converter = onnx_format.from_function(forward, signature, opset)
    found_in = [i.name for i in proto.graph.input]
    for want in INPUTS:   # tf2onnx names inputs after the TensorSpec names, maybe with ':0'
        match = [n for n in found_in if n == want or n.split(":")[0] == want]
        if len(match) != 1:
            raise RuntimeError(f"cannot find input {want!r} among {found_in}")
        onnx_format.rename(proto.graph, match[0], want)
    if len(proto.graph.output) != 3:
        raise RuntimeError(f"expected 3 outputs, found {[o.name for o in proto.graph.output]}")
    # outputs come back in the function's return order; the value check below proves the mapping
    for value, want in zip(list(proto.graph.output), OUTPUTS):
        onnx_format.rename(proto.graph, value.name, want)
    proto, note = onnx_format.quantize(proto, family)
    data = onnx_format.finish(proto, vocab_size=vocab, window=window, kind="step", units=units)
    inputs, outputs = onnx_format.io_specs(proto, INPUTS, OUTPUTS, f"ONNX step model ({family})")
    require_float32(inputs[1:], f"ONNX step model ({family}) state inputs")

    import onnxruntime as ort
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names_in = [i.name for i in sess.get_inputs()]
    names_out = [o.name for o in sess.get_outputs()]
    if sorted(names_in) != sorted(INPUTS) or sorted(names_out) != sorted(OUTPUTS):
        raise RuntimeError(f"ONNX step model exposes {names_in} -> {names_out}")
    _check_by_value(lambda ids, h, c: sess.run(list(OUTPUTS), {"ids": ids, "h": h, "c": c}),
                    model, units, vocab, family, "ONNX step model")
    return data, {"inputs": inputs, "outputs": outputs,
                  "details": dict(converter=converter + ", Embedding -> LSTMCell -> Dense step" + note, units=units,
                                  **onnx_format.graph_details(proto))}


def convert_step(trained, fmt, family, opset=onnx_format.ONNX_OPSET):
    """(model bytes, meta) for the step variant `fmt`/`family`; meta like the window converters'."""
    if fmt == "tflite":
        return convert_step_tflite(trained, family)
    if fmt == "onnx":
        return convert_step_onnx(trained, family, opset)
    raise ValueError(f"unknown format {fmt!r}")
