#!/usr/bin/env bash
# Set up and run the whole test suite: the README's test command, also what CI runs (.ci/run).
# The tests run against the *installed wheel*, never the checkout's folders: the wheel is built once,
# then installed (not editable) into three environments, created on the first run and kept after:
#   1. .venv          the full stack (.[train,test]): every test, TensorFlow included
#   2. .venv-runtime  only .[runtime,test] (no TensorFlow): the runtime tests, proving it needs none
#   3. .venv-legacy   only .[legacy,test] (tflite-runtime 2.14, numpy<2): the runtime tests on that stack
# Needs python3.11 (tflite-runtime 2.14 has no wheels for 3.12+). PYTHON overrides the interpreter.
# Extra arguments go to the full environment's pytest (e.g. -k wheel, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
PIP_FLAGS=(-q --disable-pip-version-check)

echo "== building the wheel"
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
rm -rf build ./*.egg-info   # setuptools builds in the tree: a stale build/ would ship deleted modules
"$PY" -m pip wheel "${PIP_FLAGS[@]}" --no-deps -w "$dist" .
rm -rf build ./*.egg-info
WHEEL=$(ls "$dist"/nextword-*.whl)
export NEXTWORD_WHEEL="$WHEEL"   # tests/test_wheel.py installs it into fresh environments

install() {  # install DIR EXTRAS: the environment (created once) with EXTRAS' requirements and this wheel
  if [ ! -x "$1/bin/python" ]; then "$PY" -m venv "$1"; fi
  "$1/bin/python" -m pip install "${PIP_FLAGS[@]}" "$WHEEL[$2]"
  "$1/bin/python" -m pip install "${PIP_FLAGS[@]}" --no-deps --force-reinstall "$WHEEL"   # same version, new code
}

echo "== setting up environments"
install .venv train,test
install .venv-runtime runtime,test
install .venv-legacy legacy,test

export NEXTWORD_LEGACY_PYTHON="$PWD/.venv-legacy/bin/python"
# pytest's own script (not `python -m pytest`, which would put the working directory on sys.path):
# the tests import the installed package only.
PYTEST=(-q -p no:cacheprovider --rootdir "$PWD" -c "$PWD/pyproject.toml")

echo "== runtime-only environment (no TensorFlow)"
.venv-runtime/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" \
  || { echo "tensorflow leaked into .venv-runtime"; exit 1; }
.venv-runtime/bin/pytest "${PYTEST[@]}" -m "not tf and not fresh_venv" tests

echo "== legacy environment (tflite-runtime 2.14, numpy<2)"
.venv-legacy/bin/pytest "${PYTEST[@]}" -m "not tf and not fresh_venv" tests

echo "== full environment"
.venv/bin/pytest "${PYTEST[@]}" tests "$@"
