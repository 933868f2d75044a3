"""The window model's two forms. TFLite from an *unrolled* LSTM with a fixed batch of 1 (a
straight-line graph: float, fp16, dynamic and full int8 all convert to builtin ops); ONNX from the
Keras LSTM through tf2onnx with a dynamic batch (one fused LSTM op). Both emit logits: softmax happens
in numpy in the runtime, which keeps int8 from collapsing a flat softmax over a large vocabulary."""

import numpy as np

from nextword.train.quiet_tf import import_keras, import_tensorflow

from . import onnx_format, tflite_format


def logits_model(trained, unroll, batch):
    """Same weights as the trained Embedding -> LSTM -> [Dense projection] -> Dense(softmax) model, with
    a linear output."""
    keras = import_keras()
    emb, lstm, proj, dense = weighted_layers(trained)
    window = trained.input_shape[1]
    inp = keras.Input(shape=(window,), batch_size=batch, dtype="int32", name="ids")
    x = keras.layers.Embedding(emb.input_dim, emb.output_dim, name="embedding")(inp)
    x = keras.layers.LSTM(lstm.units, activation=lstm.activation, recurrent_activation=lstm.recurrent_activation,
                          unroll=unroll, name="lstm")(x)
    if proj is not None:
        x = keras.layers.Dense(proj.units, activation=proj.activation, name="projection")(x)
    out = keras.layers.Dense(dense.units, name="logits")(x)
    model = keras.Model(inp, out, name="nextword_logits")
    for mine, theirs in zip([l for l in model.layers if l.weights], [l for l in (emb, lstm, proj, dense) if l]):
        mine.set_weights(theirs.get_weights())
    return model


def weighted_layers(trained):
    """(embedding, lstm, projection or None, output dense) of a saved window model: the seed's three
    weighted layers, or four when training put a Dense(E) projection before the output (tied weights)."""
    found = [l for l in trained.layers if l.weights]
    if len(found) == 3:
        return found[0], found[1], None, found[2]
    if len(found) == 4:
        return tuple(found)
    raise ValueError(f"expected Embedding -> LSTM -> [Dense] -> Dense, found {[l.name for l in found]}")


def convert_tflite(trained, family, calib):
    """(bytes, meta) of the TFLite window variant; `calib`: id windows for full int8 calibration."""
    rows = np.asarray(calib, dtype=np.int32)

    def representative():
        for i in range(len(rows)):
            yield [rows[i:i + 1]]
    conv = tflite_format.tflite_converter(logits_model(trained, unroll=True, batch=1), family,
                                          representative if family == "int8" else None)
    data, ops = tflite_format.convert_builtin(conv)
    interp = tflite_format.load_interpreter(data)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    interp.set_tensor(ins[0]["index"], np.zeros(ins[0]["shape"], ins[0]["dtype"]))
    interp.invoke()
    if not np.all(np.isfinite(interp.get_tensor(outs[0]["index"]))):
        raise RuntimeError("the converted model returns non-finite numbers")
    inputs, outputs = tflite_format.io_specs(ins, outs, f"TFLite window model ({family})")
    return data, {"inputs": inputs, "outputs": outputs,
                  "details": {"converter": tflite_format.converter_note("unrolled LSTM"), "ops": ops}}


def convert_onnx(trained, family, opset=onnx_format.ONNX_OPSET):
    """(bytes, meta) of the ONNX window variant (dynamic batch)."""
    tf = import_tensorflow()
    vocab_size, window = trained.output_shape[-1], trained.input_shape[1]
    model = logits_model(trained, unroll=False, batch=None)
    model(tf.zeros((1, window), tf.int32))
    signature = [tf.TensorSpec([None, window], tf.int32, name="ids")]

    @tf.function(input_signature=signature)
    def forward(ids):
        return model(ids, training=False)
    proto, converter = onnx_format.from_function(forward, signature, opset)
    onnx_format.rename(proto.graph, proto.graph.input[0].name, "ids")
    onnx_format.rename(proto.graph, proto.graph.output[0].name, "logits")
    proto, note = onnx_format.quantize(proto, family)
    data = onnx_format.finish(proto, vocab_size=vocab_size, window=window)
    inputs, outputs = onnx_format.io_specs(proto, ["ids"], ["logits"], f"ONNX window model ({family})")
    return data, {"inputs": inputs, "outputs": outputs,
                  "details": dict(converter=converter + note, **onnx_format.graph_details(proto))}
