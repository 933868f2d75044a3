#!/usr/bin/env bash
# Set up and run the main job on the default corpus: train -> export -> predict with the TF-free runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[train]"
export TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/nextword-train --out artifacts/seed-model --force
.venv/bin/nextword-export artifacts/seed-model --out artifacts/seed-bundle --force
echo "== TF-free prediction (nextword-predict never imports TensorFlow)"
.venv/bin/nextword-predict artifacts/seed-bundle "hello how is"
.venv/bin/nextword-predict artifacts/seed-bundle "hello how" --top-k 3
