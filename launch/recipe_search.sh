#!/usr/bin/env bash
# Issue 13's recipe search: which settings make the shared digit code form sooner.
# Trains named variants of one arm for STEPS steps with learning curves (coherence given 1
# and 2 on CURVE_NUM test examples with the saved digit classifiers, the latent probe, the
# loss terms), two at a time, each pinned to one CPU core, then plots them side by side.
#
#   bash launch/recipe_search.sh mopoe_beta          # one round (see ROUNDS below)
#   OUT=~/runs/recipe STEPS=10000 bash launch/recipe_search.sh mopoe_beta
#
# Resumable: a rerun continues every unfinished workdir from its last checkpoint and skips
# finished ones. Results: $OUT/<round>/<variant>/ (workdirs, curves.jsonl) and
# results/recipe_search/<round>.{png,json} (benchmarks/plot_curves.py). Cost on the 2-core
# CPU: MoPoE (compare_polymnist.py:mopoe) 0.15 s a step on one core, so 10000 steps of two
# variants side by side take ~30 min; the digit classifiers (once) ~10 min.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-$HOME/runs/recipe}"
STEPS="${STEPS:-10000}"
CURVE_EVERY="${CURVE_EVERY:-1000}"
CURVE_NUM="${CURVE_NUM:-500}"
ROUND="${1:?usage: recipe_search.sh ROUND (one of the ROUNDS below)}"
CLASSIFIERS="${CLASSIFIERS:-$OUT/classifiers_run/classifiers}"

# Each round: the config, then "name overrides..." lines (one variant each).
case "$ROUND" in
  mopoe_beta)
    CONFIG=configs/compare_polymnist.py:mopoe
    VARIANTS=$'base\nbeta1 --config.loss.beta=1.0\nbeta0.5 --config.loss.beta=0.5\nscale0.25 --config.model.image_likelihood_scale=0.25'
    ;;
  mopoe_beta_low)   # Round 2: below beta 1, and what helps on top of beta 0.5.
    CONFIG=configs/compare_polymnist.py:mopoe
    VARIANTS=$'beta0.25 --config.loss.beta=0.25\nbeta0.5_stratified --config.loss.beta=0.5 --config.loss.subset_sampling=stratified\nbeta0.5_lr2e-3 --config.loss.beta=0.5 --config.train.learning_rate=2e-3\nbeta0.5_latent128 --config.loss.beta=0.5 --config.model.latent_dim=128'
    ;;
  *) echo "unknown round $ROUND: see the case list in $0" >&2; exit 2 ;;
esac

if [ ! -f "$CLASSIFIERS/manifest.json" ]; then
  "$PY" -m diffmvae_jax.main --config="$CONFIG" --workdir="$OUT/classifiers_run" \
      --mode=train_classifiers --config.eval.classifier_dir="$CLASSIFIERS" \
      > "$OUT/classifiers.log" 2>&1
fi

mkdir -p "$OUT/$ROUND"
train() {  # core name overrides...
  local core="$1" name="$2"; shift 2
  local workdir="$OUT/$ROUND/$name"
  taskset -c "$core" "$PY" -m diffmvae_jax.main --config="$CONFIG" --workdir="$workdir" \
      --config.train.num_steps="$STEPS" --config.train.checkpoint_every=1000 \
      --config.train.sample_every="$STEPS" --config.train.curve_every="$CURVE_EVERY" \
      --config.train.curve_num="$CURVE_NUM" --config.eval.classifier_dir="$CLASSIFIERS" \
      "$@" >> "$OUT/$ROUND/$name.log" 2>&1
}
runs=""
core=0
pids=()
while IFS= read -r line; do
  [ -n "$line" ] || continue
  read -r -a words <<< "$line"
  name="${words[0]}"
  runs="$runs${runs:+,}$name=$OUT/$ROUND/$name"
  train "$core" "${words[@]}" &
  pids+=($!)
  core=$(( (core + 1) % 2 ))
  if [ "${#pids[@]}" -eq 2 ]; then wait "${pids[@]}"; pids=(); fi
done <<< "$VARIANTS"
[ "${#pids[@]}" -eq 0 ] || wait "${pids[@]}"
mkdir -p results/recipe_search
"$PY" benchmarks/plot_curves.py --runs="$runs" --out="results/recipe_search/$ROUND"
echo "done: results/recipe_search/$ROUND.{png,json}"
