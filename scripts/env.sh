# Sourced by demo.sh and test.sh: build the wheel once, install it (not editable) into environments.
# Needs python3.11 (tflite-runtime 2.14 has no wheels for 3.12+); PYTHON overrides the interpreter.
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
PIP_FLAGS=(-q --disable-pip-version-check)

build_wheel() {  # sets WHEEL: the wheel of this checkout, in a temporary folder removed on exit
  local dist
  dist=$(mktemp -d)
  trap "rm -rf '$dist'" EXIT
  rm -rf build ./*.egg-info   # setuptools builds in the tree: a stale build/ would ship deleted modules
  "$PY" -m pip wheel "${PIP_FLAGS[@]}" --no-deps -w "$dist" .
  rm -rf build ./*.egg-info
  WHEEL=$(ls "$dist"/nextword-*.whl)
}

install_env() {  # install_env DIR EXTRAS: the environment (created once) with EXTRAS' requirements and this wheel
  if [ ! -x "$1/bin/python" ]; then "$PY" -m venv "$1"; fi
  "$1/bin/python" -m pip install "${PIP_FLAGS[@]}" "$WHEEL[$2]"
  "$1/bin/python" -m pip install "${PIP_FLAGS[@]}" --no-deps --force-reinstall "$WHEEL"   # same version, new code
}
