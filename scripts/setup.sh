#!/usr/bin/env bash
# Idempotent set-up on a fresh machine, one line per step: the Fashion-MNIST data package, a
# virtual environment in .venv, and demogen installed there in editable mode with its test and
# fit extras. The install is skipped while .venv/setup-stamp matches what decides it (the
# content of pyproject.toml, the Python version and the install command), so a rerun with
# nothing changed does nothing. A step's own output is shown only when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

quietly() {  # run a command with its output in $log; on failure show it and stop
    if ! "$@" >"$log" 2>&1; then
        echo "setup: '$*' failed:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

data=/usr/share/datasets/fashion-mnist
if [ -n "${DEMOGEN_DATA:-}" ]; then
    echo "1/3 Fashion-MNIST: \$DEMOGEN_DATA=$DEMOGEN_DATA"
elif [ -f "$data/train-images-idx3-ubyte.gz" ]; then
    echo "1/3 Fashion-MNIST: $data"
else
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    quietly $sudo apt-get update -qq
    quietly $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
    echo "1/3 Fashion-MNIST: installed dataset-fashion-mnist into $data"
fi

if [ -x .venv/bin/python ]; then
    echo "2/3 virtual environment: .venv ($(.venv/bin/python -V))"
else
    quietly python3 -m venv .venv
    echo "2/3 virtual environment: created .venv ($(.venv/bin/python -V))"
fi

install=(pip install -q -e ".[dev]")
stamp=$({ cat pyproject.toml; .venv/bin/python -VV; echo "${install[*]}"; } | sha256sum)
if [ "$(cat .venv/setup-stamp 2>/dev/null)" = "$stamp" ] \
        && .venv/bin/python -c "import demogen, demogen_fit" 2>/dev/null; then
    echo "3/3 demogen[dev]: up to date (pyproject.toml and Python unchanged since the install)"
else
    rm -f .venv/setup-stamp
    quietly .venv/bin/python -m pip install -q --upgrade pip
    quietly .venv/bin/python -m "${install[@]}"
    echo "$stamp" > .venv/setup-stamp
    echo "3/3 demogen[dev]: installed in editable mode"
fi
