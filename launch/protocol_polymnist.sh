#!/usr/bin/env bash
# Issue 13's CPU protocol (configs/protocol_polymnist.py): MoPoE and Diff-MVAE trained for
# about one hour of a 2-core CPU each, with learning curves, then evaluated (coherence by
# number of given modalities, unconditional coherence under N(0, I) and the latent SDE
# prior, FID per modality, latent gap), over seeds, and the README table and curve plot.
#
#   bash launch/protocol_polymnist.sh                      # seed 0, both arms, one after the other
#   SEEDS="0 1 2" bash launch/protocol_polymnist.sh        # mean ± std over three seeds
#   PAIR=1 bash launch/protocol_polymnist.sh               # the two arms of a seed side by side,
#                                                          # one core each (faster in wall-clock;
#                                                          # train_seconds are then 1-core figures)
#   ARMS="mopoe diffusion mopoe_published" OUT=~/runs/protocol bash launch/protocol_polymnist.sh
#   EXTRA="--config.train.num_steps=2 ..." bash launch/protocol_polymnist.sh   # appended to
#                                                          # every command (tests use it)
#   STEPS="mopoe=30000,diffusion=30000" ...                # per-arm train.num_steps
#   TRAIN_TIMEOUT=150 ...                                  # stop each arm's training after
#                                                          # this many seconds (SIGTERM: the
#                                                          # loop saves its step; evaluation
#                                                          # goes on from there)
#   SHALLOW="0.15 0.08" ...                                # also evaluate the arms with coarse
#                                                          # decoders sampled shallow at each
#                                                          # sample.t_start (both z priors)
#
# Every step resumes: rerunning skips finished training, classifiers, priors and evaluation
# tasks. Results: $OUT/<arm>_s<seed>/ (metrics.jsonl with train_seconds, curves.jsonl,
# eval/step_<N>/metrics_{gaussian,sde}[_tstart<s>].json), then $OUT/table.md and
# $OUT/curves.{png,json}.
# Cost on the 2-core CPU: classifiers ~5 min (once), each arm ~60 min of training plus its
# curve points, evaluation ~15-30 min an arm, the latent prior ~5 min.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-$HOME/runs/protocol}"
SEEDS="${SEEDS:-0}"
ARMS="${ARMS:-mopoe diffusion}"
STEPS="${STEPS:-}"
TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-}"
PAIR="${PAIR:-0}"
SHALLOW="${SHALLOW:-}"
read -r -a EXTRA <<< "${EXTRA:-}"
CONFIG=configs/protocol_polymnist.py
CLASSIFIERS="$OUT/classifiers"
FID_STATS="$OUT/fid_stats"
mkdir -p "$OUT"
run() { echo "+ $*" >&2; "$PY" -m diffmvae_jax.main "$@"; }

# Digit classifiers for coherence, once for every arm (a rerun skips trained ones).
run --config="$CONFIG:mopoe" --workdir="$OUT/classifiers_run" --mode=train_classifiers \
    --config.eval.classifier_dir="$CLASSIFIERS" --config.eval.classifier_steps=500 \
    ${EXTRA[@]+"${EXTRA[@]}"} >> "$OUT/classifiers.log" 2>&1

arm_run() {  # arm seed [core]: train, evaluate, the latent prior, evaluate under it
  local arm="$1" seed="$2" core="${3:-}" workdir="$OUT/${1}_s$2"
  local pin=()
  [ -z "$core" ] || pin=(taskset -c "$core")
  local common=(--config="$CONFIG:$arm" --workdir="$workdir" --config.seed="$seed"
                --config.eval.classifier_dir="$CLASSIFIERS" --config.eval.fid_cache_dir="$FID_STATS"
                ${EXTRA[@]+"${EXTRA[@]}"})
  local kv train=("${pin[@]}" "$PY" -m diffmvae_jax.main "${common[@]}")
  for kv in ${STEPS//,/ }; do
    [ "${kv%%=*}" != "$arm" ] || train+=(--config.train.num_steps="${kv#*=}")
  done
  [ -z "$TRAIN_TIMEOUT" ] || train=(timeout -k 60 -s TERM "$TRAIN_TIMEOUT" "${train[@]}")
  {
    "${train[@]}" || [ $? -eq 124 ]   # 124: stopped by TRAIN_TIMEOUT, checkpoint saved.
    "${pin[@]}" "$PY" -m diffmvae_jax.main "${common[@]}" --mode=eval
    # The latent SDE prior on the arm's latents, then its unconditional metrics (the
    # conditional tasks are shared with the N(0, I) evaluation above) and latent gap.
    "${pin[@]}" "$PY" -m diffmvae_jax.main "${common[@]}" --mode=train_prior
    "${pin[@]}" "$PY" -m diffmvae_jax.main "${common[@]}" --mode=eval --config.sample.prior=sde
    # Shallow sampling from the coarse mean image (sample.t_start), for arms that have one.
    if [ -n "$SHALLOW" ] && "$PY" -c 'import sys; from configs import protocol_polymnist as p
sys.exit(sys.argv[1] not in p.COARSE_ARMS)' "$arm"; then
      local t_start prior
      for t_start in $SHALLOW; do
        for prior in gaussian sde; do
          "${pin[@]}" "$PY" -m diffmvae_jax.main "${common[@]}" --mode=eval \
              --config.sample.prior="$prior" --config.sample.t_start="$t_start"
        done
      done
    fi
  } >> "$workdir.log" 2>&1
}

for seed in $SEEDS; do
  if [ "$PAIR" = 1 ]; then
    core=0
    pids=()
    for arm in $ARMS; do
      echo "+ $arm seed $seed on core $core (log: $OUT/${arm}_s$seed.log)" >&2
      arm_run "$arm" "$seed" "$core" &
      pids+=($!)
      core=$(( (core + 1) % 2 ))
      if [ "${#pids[@]}" -eq 2 ]; then wait "${pids[@]}"; pids=(); fi
    done
    [ "${#pids[@]}" -eq 0 ] || wait "${pids[@]}"
  else
    for arm in $ARMS; do
      echo "+ $arm seed $seed (log: $OUT/${arm}_s$seed.log)" >&2
      arm_run "$arm" "$seed"
    done
  fi
done

runs=""
for arm in $ARMS; do
  for seed in $SEEDS; do runs="$runs${runs:+,}${arm}_s$seed=$OUT/${arm}_s$seed"; done
done
"$PY" benchmarks/plot_curves.py --runs="$runs" --out="$OUT/curves"
"$PY" benchmarks/results_table.py --out="$OUT" --copy_to="${COPY_TO:-}" | tee "$OUT/table.md"
