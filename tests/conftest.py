"""Shared fixtures. TensorFlow-dependent fixtures import it lazily, so the runtime-only environment
(no TensorFlow) can collect and run the tests marked `not tf`."""

import os

import pytest

from support import LEGACY_PYTHON


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The seed corpus trained with the seed's settings (about 10 s): a real Keras model to compare with."""
    from nextword.train.fit import TrainConfig, train
    out = tmp_path_factory.mktemp("models") / "seed-model"
    train(TrainConfig(), str(out), progress=False)
    return str(out)


@pytest.fixture(scope="session")
def keras_model(tiny_model_dir):
    import keras
    return keras.saving.load_model(os.path.join(tiny_model_dir, "model.keras"))


@pytest.fixture(scope="session")
def tiny_bundle_dir(tiny_model_dir, tmp_path_factory):
    """Every default variant of the session's tiny model, exported and gated (checked on the legacy
    interpreter too when NEXTWORD_LEGACY_PYTHON is set)."""
    from nextword.export.pipeline import export_bundle
    out = tmp_path_factory.mktemp("bundles") / "seed-bundle"
    export_bundle(tiny_model_dir, str(out), legacy_python=LEGACY_PYTHON)
    return str(out)
