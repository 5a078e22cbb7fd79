#!/usr/bin/env bash
# Side-by-side CPU speed: this project's train step vs the PyTorch peer (MultiVae MoPoE),
# and the FID Inception features vs the TorchScript extractor, back to back in one run.
#
#   bash setup.sh && bash benchmarks/peer_compare.sh            # ~10 min on 2 cores
#   OUT=runs/peer_compare PEERS=/path/to/shared/peers bash benchmarks/peer_compare.sh
#
# The peer lives in its own venv (PEER_VENV, default /tmp/peer_venv), built once with
# ../shared/peers/setup_peer_venv.sh; nothing of it enters requirements.txt. Cases (same
# architecture, batch, 2 threads; medians over timed steps after warm-up, compilation
# reported apart): MoPoE 5 modalities latent 512 at batch 64 and 256
# (configs/polymnist_mopoe.py vs the peer's 'mopoe'), MoPoE 3 modalities latent 32 at batch
# 32 (configs/compare_polymnist.py:mopoe with the peer's encoder hidden width 32 and no
# decoder hidden layer, vs 'mopoe3'), the demo Diff-MVAE step (no peer: FLOP/s against the
# same run's matmul FLOP/s), FID features at batch 32 on 299x299 inputs. Writes every raw
# JSON and summary.json under OUT and prints the ratio table (project / peer). Each MoPoE
# case is also timed at 8 train steps per dispatch (train.steps_per_dispatch=8, a lax.scan).
# Run it on a quiet machine: ratios within one run are what it is for.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PEERS="${PEERS:-../shared/peers}"
PEER_VENV="${PEER_VENV:-/tmp/peer_venv}"
OUT="${OUT:-runs/peer_compare}"
REPEATS="${REPEATS:-30}"
mkdir -p "$OUT"
[ -x "$PY" ] || { echo "no .venv: run 'bash setup.sh' first" >&2; exit 2; }
[ -d "$PEERS" ] || { echo "no peer scripts at $PEERS (set PEERS=...)" >&2; exit 2; }
if [ ! -x "$PEER_VENV/bin/python" ]; then
  PEER_VENV="$PEER_VENV" bash "$PEERS/setup_peer_venv.sh"
fi
export XLA_FLAGS="${XLA_FLAGS:-}"
quiet() { grep -v '^[WI][0-9]\{4\} ' || true; }

echo "== peer: MoPoE 5 modalities (batch 64, 256), 3 modalities (batch 32), FID"
"$PEER_VENV/bin/python" "$PEERS/multivae_mopoe_bench.py" --models mopoe --batch-sizes 64,256 \
    --json-out "$OUT/peer_mopoe.json" | grep 'B='
"$PEER_VENV/bin/python" "$PEERS/multivae_mopoe_bench.py" --models mopoe3 --batch-sizes 32 \
    --json-out "$OUT/peer_mopoe3.json" | grep 'B='
"$PEER_VENV/bin/python" "$PEERS/fid_torch_bench.py" --batch-size 32 \
    --json-out "$OUT/peer_fid.json" | grep 'B='

echo "== project: the same cases"
for bs in 64 256; do
  $PY benchmarks/throughput.py --config=configs/polymnist_mopoe.py --batch_size=$bs \
      --repeats="$REPEATS" --steps_per_dispatch=8 2>/dev/null > "$OUT/project_mopoe_b$bs.json"
done
$PY benchmarks/throughput.py --config=configs/compare_polymnist.py:mopoe \
    --config.model.image_encoder.hidden=32 --config.model.image_ff_decoder.hidden=0 \
    --batch_size=32 --repeats="$REPEATS" --steps_per_dispatch=8 2>/dev/null \
    > "$OUT/project_mopoe3_b32.json"
$PY benchmarks/throughput.py --config=configs/demo.py --ddpm=false --repeats="$REPEATS" \
    2>/dev/null > "$OUT/project_demo.json"
$PY benchmarks/fid_features.py --batch=32 --size=299 --iters=7 2>/dev/null \
    > "$OUT/project_fid.json"
$PY benchmarks/peer_ratios.py --dir="$OUT"
