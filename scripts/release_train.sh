#!/usr/bin/env bash
# How the shipped weights were trained: one <= 10-minute chunk on one GPU, several recipes at once
# (small codecs leave an H100 mostly idle, so concurrent runs buy more steps per GPU minute).
#
#   scripts/release_train.sh PHASE OUT_DIR MINUTES
#
# PHASE 1: throughput benchmark, then stage I of rdc-versatile / rdc-qmap, hevrc stage 1 and the
#          mbt2018-mean baselines (q1, q3), all concurrently.
# PHASE 2: rdc-versatile stage I continued from PHASE 1's fp16 export (INIT_DIR); rdc-qmap stage I and
#          hevrc stage 1 (re)started.
# PHASE 3: rdc-versatile / rdc-qmap stage II, hevrc stage 2 (+SFM) then stage 3 (decoder-only GAN),
#          from PHASE 2's exports.
# Environment: DATA (training folder), BACKBONE (tf_efficientnet_lite0 safetensors), INIT_DIR.
# Every run writes OUT_DIR/<run>.safetensors (fp16); logs and configs are packed in OUT_DIR/logs-PHASE.tgz.
set -euo pipefail
PHASE=${1:?phase}; OUT=${2:?out dir}; MINUTES=${3:?minutes}
DATA=${DATA:-.gpu/train}; BACKBONE=${BACKBONE:-.gpu/tf_efficientnet_lite0.safetensors}; INIT=${INIT_DIR:-.gpu/init}
start=$(date +%s)
mkdir -p "$OUT" runs
left() { python -c "print(round(max(0.5, $MINUTES - ($(date +%s) - $start) / 60 - ${1:-0}), 2))"; }
COMMON=(--device cuda --data "$DATA" --set val.every=0 --no-progress)
MOCO=(--set "loss.moco-cognition.weights=$BACKBONE")
train() {  # train RUN CONFIG [args...]
  local run=$1 cfg=$2; shift 2
  python -m compressai_rdc train "$cfg" --out "runs/$run" --max-minutes "$BUDGET" "${COMMON[@]}" \
      --export "$OUT/$run.safetensors" "$@" > "runs/$run.log" 2>&1 &
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
export OMP_NUM_THREADS=2   # several trainings share 16 cores
case "$PHASE" in
  1)
    python -m compressai_rdc.training.throughput --device cuda --data "$DATA" --seconds 12 \
        --json "$OUT/throughput.json" 2>&1 | tail -25
    BUDGET=$(left 0.6)
    train rdc-versatile-s1 rdc-versatile-stage1 "${MOCO[@]}"
    train rdc-qmap-s1 rdc-qmap-stage1 "${MOCO[@]}"
    train hevrc-s1 hevrc-stage1
    train mbt2018-mean-q3 baseline-mbt2018-mean
    train mbt2018-mean-q1 baseline-mbt2018-mean --set model.quality=1 --set loss.mse.weight=0.0018
    ;;
  2)  # stage I continued from phase 1's export; quality-map codecs (re)started
    BUDGET=$(left 0.6)
    train rdc-versatile-s1b rdc-versatile-stage1 "${MOCO[@]}" --init-weights "$INIT/rdc-versatile-s1.safetensors"
    train rdc-qmap-s1 rdc-qmap-stage1 "${MOCO[@]}"
    train hevrc-s1 hevrc-stage1
    ;;
  3)  # stage II / stage 2-3, from phase 2's exports (left on the warm machine, else carried in INIT_DIR)
    pick() { if [ -f "runs/$1.safetensors.keep" ]; then echo "runs/$1.safetensors.keep"; else echo "$INIT/$1.safetensors"; fi; }
    BUDGET=$(left 0.6)
    train rdc-versatile-s2 rdc-versatile-stage2 --init-weights "$(pick rdc-versatile-s1b)"
    train rdc-qmap-s2 rdc-qmap-stage2 --init-weights "$(pick rdc-qmap-s1)"
    half=$(python -c "print(round($BUDGET * 0.6, 2))"); rest=$(python -c "print(round($BUDGET * 0.4 - 0.1, 2))")
    ( python -m compressai_rdc train hevrc-stage2 --out runs/hevrc-s2 --max-minutes "$half" "${COMMON[@]}" \
          --set "loss.sfm.weights=$BACKBONE" --init-weights "$(pick hevrc-s1)" \
          --export runs/hevrc-s2.safetensors > runs/hevrc-s2.log 2>&1 &&
      python -m compressai_rdc train hevrc-stage3 --out runs/hevrc-s3 --max-minutes "$rest" "${COMMON[@]}" \
          --set "loss.sfm.weights=$BACKBONE" --init-weights runs/hevrc-s2.safetensors \
          --export "$OUT/hevrc-s3.safetensors" > runs/hevrc-s3.log 2>&1 ) &
    ;;
  *) echo "unknown phase $PHASE" >&2; exit 2 ;;
esac
wait
for f in runs/*.log; do echo "== $f"; tail -n 3 "$f"; done
for d in runs/*/; do echo "== $d"; tail -n 2 "$d/log.csv" 2>/dev/null || true; done
for f in "$OUT"/*.safetensors; do [ -f "$f" ] && cp "$f" "runs/$(basename "$f").keep"; done   # for the next phase on a warm machine
tar czf "$OUT/logs-$PHASE.tgz" runs/*.log runs/*/log.csv runs/*/config.yaml runs/*/summary.json 2>/dev/null || true
ls -la "$OUT"
