"""The seed's network, Embedding -> LSTM -> Dense softmax, from a config dataclass."""

from dataclasses import asdict, dataclass

from .quiet_tf import import_keras


@dataclass
class ModelConfig:
    vocab_size: int
    window: int
    embedding_dim: int = 10
    units: int = 50

    def to_dict(self):
        return asdict(self)


def build_model(cfg, learning_rate=0.001):
    keras = import_keras()
    layers = keras.layers

    model = keras.Sequential([
        keras.Input(shape=(cfg.window,), dtype="int32", name="ids"),
        layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding"),
        layers.LSTM(cfg.units, activation="tanh", name="lstm"),
        layers.Dense(cfg.vocab_size, activation="softmax", name="next_word"),
    ], name="nextword")
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=learning_rate), metrics=["accuracy"])
    return model


# -- the sequence objective -------------------------------------------------------------------------
# Trained as Embedding -> (dropout) -> LSTM(return_sequences) -> (dropout) -> [Dense(E) projection ->
# logits = projection . embedding^T + bias] or Dense(V) logits, with a loss at every unmasked position.
# Only the canonical window model (window_model_from) is saved: export, its gates and the runtime read
# that one, so the training graph (dropout, the tied layer) never needs to be serialised.

@dataclass
class SequenceConfig:
    vocab_size: int
    length: int                 # chunk inputs L (= the exported window)
    embedding_dim: int
    units: int
    dropout: float = 0.0        # on the embedding output and on the LSTM output
    tied: bool = False          # output layer shares the input embedding, through a Dense(E) projection
    recurrent_dropout: float = 0.0   # on the LSTM's recurrent state (Gal & Ghahramani 2016), training only

    def to_dict(self):
        return asdict(self)


def _tied_logits_class():
    keras = import_keras()

    class TiedLogits(keras.layers.Layer):
        """logits = x . E^T + b with E the embedding matrix of `embedding` (Press & Wolf 2017)."""

        def __init__(self, embedding, **kwargs):
            super().__init__(**kwargs)
            self.embedding = embedding

        def build(self, input_shape):
            self.bias = self.add_weight(shape=(self.embedding.input_dim,), initializer="zeros", name="bias")

        def call(self, x):
            ops = keras.ops
            return ops.matmul(x, ops.transpose(self.embedding.embeddings)) + self.bias

    return TiedLogits


def build_sequence_model(cfg, learning_rate=0.001):
    """The training model: (B, L) ids -> (B, L, V) logits; compiled with a masked (sample-weighted)
    cross-entropy averaged over real targets only, so val_loss is the per-token NLL."""
    keras = import_keras()
    layers = keras.layers
    ids = keras.Input(shape=(cfg.length,), dtype="int32", name="ids")
    emb = layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding")
    x = emb(ids)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="embedding_dropout")(x)
    x = layers.LSTM(cfg.units, activation="tanh", return_sequences=True, name="lstm",
                    recurrent_dropout=cfg.recurrent_dropout)(x)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="output_dropout")(x)
    if cfg.tied:
        x = layers.Dense(cfg.embedding_dim, name="projection")(x)
        logits = _tied_logits_class()(emb, name="next_word")(x)
    else:
        logits = layers.Dense(cfg.vocab_size, name="next_word")(x)
    model = keras.Model(ids, logits, name="nextword_sequence")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  reduction="mean_with_sample_weight"),
                  optimizer=keras.optimizers.Adam(learning_rate=learning_rate), weighted_metrics=["accuracy"])
    return model


def window_model_from(seq_model, cfg, window):
    """The canonical saved model with the sequence model's weights: Embedding -> LSTM -> [Dense(E)
    projection] -> Dense(V, softmax); tied: the output kernel is the embedding matrix transposed."""
    keras = import_keras()
    layers = keras.layers
    stack = [keras.Input(shape=(window,), dtype="int32", name="ids"),
             layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding"),
             layers.LSTM(cfg.units, activation="tanh", name="lstm")]
    if cfg.tied:
        stack.append(layers.Dense(cfg.embedding_dim, name="projection"))
    stack.append(layers.Dense(cfg.vocab_size, activation="softmax", name="next_word"))
    model = keras.Sequential(stack, name="nextword")
    emb = seq_model.get_layer("embedding").get_weights()
    model.get_layer("embedding").set_weights(emb)
    model.get_layer("lstm").set_weights(seq_model.get_layer("lstm").get_weights())
    if cfg.tied:
        model.get_layer("projection").set_weights(seq_model.get_layer("projection").get_weights())
        bias = keras.ops.convert_to_numpy(seq_model.get_layer("next_word").bias)
        model.get_layer("next_word").set_weights([emb[0].T.copy(), bias])
    else:
        model.get_layer("next_word").set_weights(seq_model.get_layer("next_word").get_weights())
    return model   # not compiled: an untrained optimizer saved with it only makes load_model warn
