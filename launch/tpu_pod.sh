#!/usr/bin/env bash
# TPU pod run: the same command on every worker of a Cloud TPU VM pod slice.
#
#   bash launch/tpu_pod.sh my-tpu us-central2-b configs/polymnist.py gs://bucket/runs/polymnist
#
# Assumes the repository is checked out at ~/diffmvae_jax on every worker and `bash setup.sh`
# was run there, with jax[tpu] installed instead of the CPU jaxlib. --distributed makes every
# worker call jax.distributed.initialize() (JAX detects the pod topology). Use a gs:// workdir
# so every worker reads and writes the same checkpoints; TFDS data_dir likewise
# (--config.data.data_dir=gs://bucket/tfds, built once beforehand). A preempted (SIGTERM) pod
# saves and exits; rerun this command to resume.
set -euo pipefail
tpu="${1:?TPU name}"
zone="${2:?zone}"
config="${3:?config file}"
workdir="${4:?workdir}"
shift 4
gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="
  cd ~/diffmvae_jax && .venv/bin/python -m diffmvae_jax.main --distributed \
    --config=$config --workdir=$workdir $*"
