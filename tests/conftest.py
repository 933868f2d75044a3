"""Shared fixtures. TensorFlow-dependent fixtures import it lazily, so the runtime-only environment
(no TensorFlow) can collect and run the tests marked `not tf`."""

import os
import shutil
import tempfile

import pytest

from support import LEGACY_PYTHON

# The tflite-runtime probe remembers its verdicts on disk (runtime/backends/probe_cache.py). Tests must not
# write outside the repository or reuse verdicts from an earlier run: every test process and the children
# it starts use one temporary cache, removed at the end (tests of the cache itself set their own).
_PROBE_CACHE = tempfile.mkdtemp(prefix="nextword-probe-cache-")
os.environ["NEXTWORD_PROBE_CACHE"] = _PROBE_CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_PROBE_CACHE, ignore_errors=True)


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
    """Every variant of the session's tiny model (the opt-in full int8 too), exported and gated (checked on the legacy
    interpreter too when NEXTWORD_LEGACY_PYTHON is set)."""
    from nextword.export.pipeline import export_bundle
    from nextword.export.variants import CATALOGUE
    out = tmp_path_factory.mktemp("bundles") / "seed-bundle"
    export_bundle(tiny_model_dir, str(out), list(CATALOGUE), legacy_python=LEGACY_PYTHON)   # the opt-in int8 too
    return str(out)
