#!/usr/bin/env bash
# How the shipped weights are trained: <= 10-minute chunks on one GPU, several recipes at once
# (small codecs leave an H100 mostly idle, so concurrent runs buy more steps per GPU minute).
#
#   scripts/release_train.sh PHASE OUT_DIR MINUTES
#
# Every run continues where it stopped: from runs/<run>/checkpoint.pt when the machine still holds it
# (exact resume: optimizers, queues, step), else from INIT_DIR/<run>.safetensors (an earlier chunk's
# fp16 export, carried back in), else from the run's listed starting weights, else from scratch.
# Call the same PHASE again to keep training it.
#
# PHASE 1: stage I / stage 1 of every codec and the mbt2018-mean baselines (q1, q3), concurrently;
#          rdc-versatile stage I starts from the shipped weights.
# PHASE 2: rdc-versatile / rdc-qmap stage II (primary frozen) and hevrc stage 2 (+SFM), from phase 1's
#          weights; the baselines keep training so that they match the codecs' step budget.
# PHASE 3: hevrc stage 3 (decoder-only conditional GAN) from stage 2; rdc stage II continued.
# Environment: DATA (training folder), BACKBONE (tf_efficientnet_lite0 safetensors), INIT_DIR, DEVICE.
# Each run writes OUT_DIR/<run>.safetensors (fp16); logs and configs are packed in OUT_DIR/logs-PHASE.tgz.
set -euo pipefail
PHASE=${1:?phase}; OUT=${2:?out dir}; MINUTES=${3:?minutes}
DATA=${DATA:-.gpu/train}; BACKBONE=${BACKBONE:-.gpu/tf_efficientnet_lite0.safetensors}
INIT=${INIT_DIR:-.gpu/init}; DEVICE=${DEVICE:-cuda}
SHIPPED=$(python -c "from compressai_rdc.zoo import resolve_weights; from compressai_rdc.zoo._weights import PRETRAINED; print(resolve_weights(PRETRAINED['rdc-versatile']['mse'].file))")
start=$(date +%s)
mkdir -p "$OUT" runs/keep
left() { python -c "print(round(max(0.3, $MINUTES - ($(date +%s) - $start) / 60 - ${1:-0}), 2))"; }
COMMON=(--device "$DEVICE" --data "$DATA" --set val.every=0 --no-progress)
MOCO=(--set "loss.moco-cognition.weights=$BACKBONE")
SFM=(--set "loss.sfm.weights=$BACKBONE")
weights_of() {  # the newest weights of a run: this machine's last export, else the carried one
  if [ -f "runs/keep/$1.safetensors" ]; then echo "runs/keep/$1.safetensors"
  elif [ -f "$INIT/$1.safetensors" ]; then echo "$INIT/$1.safetensors"
  else echo ""; fi
}
finish() {  # keep a run's export for the next call and hand a copy back
  local run=$1
  if [ -f "runs/$run.export.safetensors" ]; then
    mv -f "runs/$run.export.safetensors" "runs/keep/$run.safetensors"
    cp "runs/keep/$run.safetensors" "$OUT/$run.safetensors"
  fi
}
train() {  # train RUN CONFIG START_WEIGHTS [args...], in the background
  local run=$1 cfg=$2 from=$3; shift 3
  local start_args=()
  if [ -f "runs/$run/checkpoint.pt" ]; then start_args=(--resume)
  else
    local w; w=$(weights_of "$run"); w=${w:-$from}
    if [ -n "$w" ]; then start_args=(--init-weights "$w"); fi
  fi
  ( python -m compressai_rdc train "$cfg" --out "runs/$run" --max-minutes "$BUDGET" "${COMMON[@]}" \
        --export "runs/$run.export.safetensors" "${start_args[@]}" "$@" > "runs/$run.log" 2>&1
    finish "$run" ) &
}
if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; fi
export OMP_NUM_THREADS=2   # several trainings share 16 cores
case "$PHASE" in
  1)
    if [ ! -f "$OUT/throughput.json" ] && [ "$DEVICE" = cuda ] && [ ! -f runs/throughput.json ]; then
      python -m compressai_rdc.training.throughput --device cuda --data "$DATA" --seconds 12 \
          --json runs/throughput.json 2>&1 | tail -25
      cp runs/throughput.json "$OUT/"
    fi
    BUDGET=$(left 0.6)
    train rdc-versatile-s1 rdc-versatile-stage1 "$SHIPPED" "${MOCO[@]}"
    train rdc-qmap-s1 rdc-qmap-stage1 "" "${MOCO[@]}"
    train hevrc-s1 hevrc-stage1 ""
    train mbt2018-mean-q3 baseline-mbt2018-mean ""
    train mbt2018-mean-q1 baseline-mbt2018-mean "" --set model.quality=1 --set loss.mse.weight=0.0018
    ;;
  2)
    BUDGET=$(left 0.6)
    train rdc-versatile-s2 rdc-versatile-stage2 "$(weights_of rdc-versatile-s1)"
    train rdc-qmap-s2 rdc-qmap-stage2 "$(weights_of rdc-qmap-s1)"
    train hevrc-s2 hevrc-stage2 "$(weights_of hevrc-s1)" "${SFM[@]}"
    train mbt2018-mean-q3 baseline-mbt2018-mean ""
    train mbt2018-mean-q1 baseline-mbt2018-mean "" --set model.quality=1 --set loss.mse.weight=0.0018
    ;;
  3)
    BUDGET=$(left 0.6)
    train hevrc-s3 hevrc-stage3 "$(weights_of hevrc-s2)" "${SFM[@]}"
    train rdc-versatile-s2 rdc-versatile-stage2 "$(weights_of rdc-versatile-s1)"
    train rdc-qmap-s2 rdc-qmap-stage2 "$(weights_of rdc-qmap-s1)"
    ;;
  *) echo "unknown phase $PHASE (valid: 1, 2, 3)" >&2; exit 2 ;;
esac
wait
for f in runs/*.log; do echo "== $f"; tail -n 3 "$f"; done
for d in runs/*/; do echo "== $d"; tail -n 2 "$d/log.csv" 2>/dev/null || true; done
tar czf "$OUT/logs-$PHASE.tgz" runs/*.log runs/*/log.csv runs/*/config.yaml runs/*/summary.json 2>/dev/null || true
ls -la "$OUT"
