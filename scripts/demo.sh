#!/usr/bin/env bash
# Set up and run the main job on the default corpus: train -> export -> predict with the TF-free runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
echo "== setting up .venv (the training stack)"
build_wheel
install_env .venv train
.venv/bin/nextword-train --out artifacts/seed-model --force
.venv/bin/nextword-export artifacts/seed-model --out artifacts/seed-bundle --force
echo "== TF-free prediction (nextword-predict never imports TensorFlow)"
.venv/bin/nextword-predict artifacts/seed-bundle "hello how is"
.venv/bin/nextword-predict artifacts/seed-bundle "hello how" --top-k 3
