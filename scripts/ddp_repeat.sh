#!/usr/bin/env bash
# Run the DDP smoke test's torchrun command N times in a row and count failures.
#
#   scripts/ddp_repeat.sh 30            # -> "ddp runs: 30, failures: 0"
#
# It is the command of tests/test_ddp.py (2 gloo ranks, 3 steps, tiny model) with
# OMP_NUM_THREADS=1; each failing run's exit code and last stderr lines are printed.
# Used to check that runs end cleanly (see docs/security.md, "DDP teardown").
set -u
N=${1:-30}
PY=${PYTHON:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" - "$work/data" <<'PYEOF'
import sys, torch
from compressai_rdc.data import save_image
torch.manual_seed(0)
for i in range(4):
    save_image(torch.rand(3, 64, 64), f"{sys.argv[1]}/{i}.png")
PYEOF
fail=0
for i in $(seq 1 "$N"); do
  rm -rf "$work/run"
  OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 \
    -m compressai_rdc train rdc-versatile-stage1 --out "$work/run" --device cpu \
    --data "$work/data" --max-steps 3 --no-progress \
    --set "model.kwargs={N: 8, M: 8, residual_N: 8, residual_M: 8}" \
    --set data.batch_size=2 --set data.crop=64 --set log.every=1 \
    --set loss.moco-cognition.queue_size=8 >"$work/out" 2>"$work/err"
  rc=$?
  if [ $rc -ne 0 ] || [ ! -f "$work/run/summary.json" ]; then
    fail=$((fail + 1))
    echo "run $i: exit $rc"; grep -E "terminate|exitcode|Error" "$work/err" | tail -5
  else
    echo "run $i: ok"
  fi
done
echo "ddp runs: $N, failures: $fail"
