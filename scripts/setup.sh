#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh machine: the Fashion-MNIST data package and a virtual
# environment in .venv with demogen installed in editable mode, with its test and fit extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${DEMOGEN_DATA:-}" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
