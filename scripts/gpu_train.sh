#!/usr/bin/env bash
# One command for a GPU chunk (<= 10 minutes): throughput benchmark once, then
# RDC stage-I training for the remaining minutes, resumable chunk after chunk.
#
#   scripts/gpu_train.sh OUT_DIR [MINUTES=9] [DATA_DIR=data/train] [extra train args...]
#
# OUT_DIR/throughput.json        images/s: plain fp32 CompressAI loop vs our loop (mbt2018-mean q3, 256² crops)
# OUT_DIR/rdc-versatile-stage1/  checkpoint.pt, log.csv, val.csv, config.yaml, summary.json
# OUT_DIR/rdc-versatile-stage1.safetensors   fp16 export after each chunk (overwritten chunk by chunk)
#
# The benchmark runs only when OUT_DIR/throughput.json is missing; later chunks only train.
set -euo pipefail
OUT=${1:?usage: scripts/gpu_train.sh OUT_DIR [MINUTES] [DATA_DIR] [train args...]}
MINUTES=${2:-9}
DATA=${3:-data/train}
shift $(( $# < 3 ? $# : 3 ))
RECIPE=${RECIPE:-rdc-versatile-stage1}
DEVICE=${DEVICE:-cuda}                      # DEVICE=cpu THROUGHPUT_ARGS="--crop 64 ..." checks the script without a GPU
THROUGHPUT_ARGS=${THROUGHPUT_ARGS:-}
mkdir -p "$OUT"
start=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

if [ ! -f "$OUT/throughput.json" ]; then
  python -m compressai_rdc.training.throughput --device "$DEVICE" --data "$DATA" --seconds 12 \
      --json "$OUT/throughput.json" $THROUGHPUT_ARGS 2>&1 | tail -40
fi

used=$(( $(date +%s) - start ))
left=$(python -c "print(max(0.5, $MINUTES - $used/60 - 0.75))")   # keep ~45 s for export and copying back
RUN="$OUT/$RECIPE"
RESUME=""
[ -f "$RUN/checkpoint.pt" ] && RESUME="--resume"
rm -f "$OUT/$RECIPE.safetensors"
python -m compressai_rdc train "$RECIPE" --out "$RUN" $RESUME --device "$DEVICE" --data "$DATA" \
    --max-minutes "$left" --no-progress --export "$OUT/$RECIPE.safetensors" "$@"
[ -f "$RUN/log.csv" ] && tail -n 5 "$RUN/log.csv"
cat "$RUN/summary.json"
