#!/usr/bin/env bash
# Set up and run the whole test suite: the README's test command, also what CI runs (.ci/run).
# The tests run against the *installed wheel*, never the checkout's folders: the wheel is built once,
# then installed (not editable) into three environments, created on the first run and kept after:
#   1. .venv          the full stack (.[train,test]): the TensorFlow and fresh-venv tests (the others
#                     ran in .venv-runtime against the same numpy and onnxruntime); with extra arguments
#                     every test, filtered by them
#   2. .venv-runtime  only .[runtime,test] (no TensorFlow): the runtime tests, proving it needs none
#   3. .venv-legacy   only .[legacy,test] (tflite-runtime 2.14, numpy<2): the runtime tests on that stack
# Extra arguments go to the full environment's pytest (e.g. -k wheel, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
start=$SECONDS

echo "== building the wheel and setting up environments"
build_wheel
export NEXTWORD_WHEEL="$WHEEL"   # tests/test_wheel.py installs it into fresh environments
install_env .venv train,test
install_env .venv-runtime runtime,test
install_env .venv-legacy legacy,test
export NEXTWORD_LEGACY_PYTHON="$PWD/.venv-legacy/bin/python"

# pytest's own script, not `python -m pytest` (which would put the working directory on sys.path):
# the tests import the installed package only.
PYTEST=(-q -p no:cacheprovider --rootdir "$PWD" -c "$PWD/pyproject.toml")

echo "== runtime-only environment (no TensorFlow)"
.venv-runtime/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" \
  || { echo "tensorflow leaked into .venv-runtime"; exit 1; }
.venv-runtime/bin/pytest "${PYTEST[@]}" -m "not tf and not fresh_venv" tests

echo "== legacy environment (tflite-runtime 2.14, numpy<2)"
.venv-legacy/bin/pytest "${PYTEST[@]}" -m "not tf and not fresh_venv" tests

echo "== full environment"
if [ $# -eq 0 ]; then
  .venv/bin/pytest "${PYTEST[@]}" -m "tf or fresh_venv" tests
else
  .venv/bin/pytest "${PYTEST[@]}" tests "$@"
fi
echo "== test.sh: all environments passed in $((SECONDS - start)) s"
