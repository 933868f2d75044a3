#!/usr/bin/env bash
# Set up and run the whole test suite: the README's test command, also what CI runs (.ci/run).
#   1. .venv          the full stack (.[train,test]): every test, TensorFlow included
#   2. .venv-runtime  only .[runtime,test] (no TensorFlow): the runtime tests, proving it needs none
#   3. .venv-legacy   only .[legacy,test] (tflite-runtime 2.14, numpy<2): the TFLite runtime tests
# Needs python3.11 (tflite-runtime 2.14 has no wheels for 3.12+). PYTHON overrides the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

venv() {  # venv DIR EXTRAS: create (once) and install the project with EXTRAS
  if [ ! -x "$1/bin/python" ]; then "$PY" -m venv "$1"; fi
  "$1/bin/python" -m pip install -q --disable-pip-version-check -e ".[$2]"
}

echo "== setting up environments"
venv .venv train,test
venv .venv-runtime runtime,test
venv .venv-legacy legacy,test

export NEXTWORD_LEGACY_PYTHON="$PWD/.venv-legacy/bin/python"
export TF_CPP_MIN_LOG_LEVEL=2

echo "== runtime-only environment (no TensorFlow)"
.venv-runtime/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" \
  || { echo "tensorflow leaked into .venv-runtime"; exit 1; }
.venv-runtime/bin/python -m pytest -q -m "not tf" -p no:cacheprovider

echo "== legacy environment (tflite-runtime 2.14, numpy<2)"
.venv-legacy/bin/python -m pytest -q -m "not tf" -p no:cacheprovider

echo "== full environment"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
