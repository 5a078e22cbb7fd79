#!/usr/bin/env bash
# Rehearses a multi-host run on one machine: N CPU processes, gloo collectives on
# 127.0.0.1, each process reading its own shard of every global batch.
#
#   bash launch/local_multiprocess.sh 2 configs/test_tiny.py /tmp/mp_run [--config.x=y ...]
#
# Every process writes logs to <workdir>/process_<i>.log; process 0 writes metrics,
# TensorBoard events and samples. Rerunning the same command resumes.
set -euo pipefail
num_processes="${1:?number of processes}"
config="${2:?config file}"
workdir="${3:?workdir}"
shift 3
port="${PORT:-$((20000 + RANDOM % 20000))}"
mkdir -p "$workdir"
python="${PYTHON:-.venv/bin/python}"
pids=()
for ((i = 0; i < num_processes; i++)); do
  JAX_PLATFORMS=cpu "$python" -m diffmvae_jax.main --config="$config" --workdir="$workdir" \
    --coordinator_address="127.0.0.1:$port" --num_processes="$num_processes" --process_id="$i" \
    "$@" >"$workdir/process_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
echo "processes finished with status $status; logs in $workdir/process_*.log"
exit "$status"
