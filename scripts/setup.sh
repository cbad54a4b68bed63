#!/usr/bin/env bash
# Create .venv with linsig and its dependencies (CPU PyTorch from the wheel on this machine).
#   --system   also install the system packages the test suite uses: R's limma (parity tests of
#              signal removal) and Chromium (the report is opened in a real headless browser).
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--system" ]; then
  need=()
  { command -v Rscript >/dev/null 2>&1 && Rscript -e 'suppressMessages(library(limma))' >/dev/null 2>&1; } \
    || need+=(r-base-core r-bioc-limma)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing ${need[*]} with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned to the CPU build: left to the resolver, plain `torch` pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,dask]"
