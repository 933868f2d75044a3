"""Shared fixtures. TensorFlow-dependent fixtures import it lazily, so the runtime-only environment
(no TensorFlow) can collect and run the tests marked `not tf`."""

import importlib.util
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_BUNDLE = os.path.join(REPO, "artifacts", "seed")
SHARED_CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpora", "pride-and-prejudice.txt")
HAS_TF = importlib.util.find_spec("tensorflow") is not None


def run_cli(module, *args, stdin=None, timeout=600, env=None):
    """Run `python -m module args` from the repo root; returns CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=full_env)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The seed corpus trained with the seed's settings (about 10 s): a real Keras model to compare with."""
    from train.fit import TrainConfig, train
    out = tmp_path_factory.mktemp("models") / "seed-model"
    train(TrainConfig(), str(out), progress=False)
    return str(out)


@pytest.fixture(scope="session")
def keras_model(tiny_model_dir):
    import keras
    return keras.saving.load_model(os.path.join(tiny_model_dir, "model.keras"))


def installed_packages():
    """Interpreter packages importable here, decided at collection time (never a skip)."""
    from runtime.backends import available_packages
    return sorted(available_packages())


LEGACY_PYTHON = os.environ.get("NEXTWORD_LEGACY_PYTHON") or None


@pytest.fixture(scope="session")
def tiny_bundle_dir(tiny_model_dir, tmp_path_factory):
    """Every default variant of the session's tiny model, exported and gated (checked on the legacy
    interpreter too when NEXTWORD_LEGACY_PYTHON is set)."""
    from export.pipeline import export_bundle
    out = tmp_path_factory.mktemp("bundles") / "seed-bundle"
    export_bundle(tiny_model_dir, str(out), legacy_python=LEGACY_PYTHON)
    return str(out)


SEED_TEXTS = [" ".join(line.split()[:n]) for line in (
    "hello how are you", "hello how is your day", "hello how are your friends", "hello what are you doing")
    for n in range(1, len(line.split()))]
