#!/usr/bin/env bash
# Measure what each install extra costs: a fresh venv per extra, `pip install ".[EXTRA]"`, then its size
# on disk in all and without the venv's own tooling (pip, setuptools, pkg_resources). The README's
# install table comes from this script. Usage: bash scripts/venv_sizes.sh [EXTRA ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
extras=("$@")
[ ${#extras[@]} -gt 0 ] || extras=(litert onnx runtime legacy train)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| extra | venv (MB) | without pip/setuptools (MB) | largest packages (MB) |"
echo "| --- | ---: | ---: | --- |"
for e in "${extras[@]}"; do
  "$PY" -m venv "$work/$e"
  "$work/$e/bin/python" -m pip install -q --disable-pip-version-check ".[$e]" >/dev/null
  site=$(echo "$work/$e"/lib/python*/site-packages)
  total=$(du -sm "$work/$e" | cut -f1)
  tooling=$(du -smc "$site"/pip "$site"/setuptools "$site"/pkg_resources "$site"/_distutils_hack 2>/dev/null | tail -1 | cut -f1)
  top=$(cd "$site" && du -sm -- */ 2>/dev/null | sort -rn | head -4 | awk '{sub("/$","",$2); printf "%s%s %s", sep, $2, $1; sep=", "}')
  echo "| $e | $total | $((total - tooling)) | $top |"
  rm -rf "$work/$e" build ./*.egg-info
done
