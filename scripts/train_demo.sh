#!/usr/bin/env bash
# Retrain the shipped demo model from scratch: the first schedule, then two continuations, each on a fresh
# scene pool (--init-from, a new one-cycle schedule at 0.3x the learning rate). Deterministic; about three
# hours on 2 CPU cores. Every stage keeps its state under $WORK (default ~/.cache/attn-edit-train/recipe) and a
# rerun skips finished stages and resumes an interrupted one. Needs ComfyUI ($COMFYUI_PATH) for its classes.
#   bash scripts/train_demo.sh [OUT]   (default demo_model/attn_edit_demo.safetensors)
#   bash scripts/train_demo.sh --try   (a few steps of every phase, nothing kept: checks the set-up)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/training.sh
if [ "${1:-}" = "--try" ]; then
  try_training demo_model.train
  exit 0
fi
OUT="${1:-demo_model/attn_edit_demo.safetensors}"
WORK="${WORK:-$HOME/.cache/attn-edit-train/recipe}"
mkdir -p "$WORK"
train() { PYTHONPATH=. "$PY" -m demo_model.train "$@"; }

[ -f "$WORK/stage1.safetensors" ] || train --out "$WORK/stage1.safetensors" --vae-checkpoint "$WORK/vae.pt" \
  --checkpoint "$WORK/stage1.pt"
[ -f "$WORK/stage2.safetensors" ] || train --init-from "$WORK/stage1.safetensors" --seed 1 --steps 4000 \
  --lr 3e-4 --out "$WORK/stage2.safetensors" --checkpoint "$WORK/stage2.pt"
[ -f "$WORK/stage3.safetensors" ] || train --init-from "$WORK/stage2.safetensors" --seed 2 --steps 3500 \
  --lr 3e-4 --out "$WORK/stage3.safetensors" --checkpoint "$WORK/stage3.pt"
cp "$WORK/stage3.safetensors" "$OUT"
echo "wrote $OUT"
