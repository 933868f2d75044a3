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
