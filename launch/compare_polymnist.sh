#!/usr/bin/env bash
# Reproduces README's results: Diff-MVAE vs the MoPoE baseline on 3-modality PolyMNIST
# (configs/compare_polymnist.py), and N(0, I) vs the latent SDE prior on the Diff-MVAE arm.
#
#   bash launch/compare_polymnist.sh                 # seed 0 (about 2.5-3 hours on 2 CPU cores)
#   SEEDS="0 1" bash launch/compare_polymnist.sh     # more seeds: mean ± std in the table
#   OUT=runs/compare PY=.venv/bin/python bash launch/compare_polymnist.sh
#
# Every step resumes: rerunning skips finished training, classifiers and evaluation tasks.
# Results: $OUT/<arm>_s<seed>/eval/step_<N>/metrics_{gaussian,sde}.json, and the table
# printed at the end (benchmarks/results_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-runs/compare}"
SEEDS="${SEEDS:-0}"
CONFIG=configs/compare_polymnist.py
CLASSIFIERS="$OUT/classifiers"
FID_STATS="$OUT/fid_stats"   # Reference statistics shared by every workdir.
run() { echo "+ $*" >&2; "$PY" -m diffmvae_jax.main "$@"; }

# Digit classifiers for coherence, once for both arms (they depend on the data only).
run --config="$CONFIG:diffusion" --workdir="$OUT/classifiers_run" --mode=train_classifiers \
    --config.eval.classifier_dir="$CLASSIFIERS"
for seed in $SEEDS; do
  for arm in diffusion mopoe; do
    workdir="$OUT/${arm}_s${seed}"
    run --config="$CONFIG:$arm" --workdir="$workdir" --config.seed="$seed"
    run --config="$CONFIG:$arm" --workdir="$workdir" --config.seed="$seed" --mode=eval \
        --config.eval.classifier_dir="$CLASSIFIERS" --config.eval.fid_cache_dir="$FID_STATS"
  done
  # The latent SDE prior on the Diff-MVAE arm, then its unconditional metrics (the
  # conditional tasks are shared with the N(0, I) evaluation above) and the latent gap.
  workdir="$OUT/diffusion_s${seed}"
  run --config="$CONFIG:diffusion" --workdir="$workdir" --config.seed="$seed" --mode=train_prior
  run --config="$CONFIG:diffusion" --workdir="$workdir" --config.seed="$seed" --mode=eval \
      --config.eval.classifier_dir="$CLASSIFIERS" --config.eval.fid_cache_dir="$FID_STATS" \
      --config.sample.prior=sde
done
"$PY" benchmarks/results_table.py --out="$OUT" --copy_to="${COPY_TO:-}"
