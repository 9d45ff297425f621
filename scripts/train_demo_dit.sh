#!/usr/bin/env bash
# Retrain the shipped demo DiT from scratch: the 16-channel VAE, T5's warm start and a first flow schedule, then
# a continuation on a fresh scene pool (--init-from, a new one-cycle schedule at 0.3x the learning rate). Both stages
# use the first, 4 x 64 T5 (--text-config first), as the shipped file does.
# Deterministic. Every stage keeps its state under $WORK (default ~/.cache/attn-edit-train/dit) and a rerun
# skips finished stages and resumes an interrupted one. Needs ComfyUI ($COMFYUI_PATH) for its classes and the
# UNet demo model (its trained CLIP text encoder is the DiT's CLIP-L).
#   bash scripts/train_demo_dit.sh [OUT]   (default demo_model/attn_edit_demo_dit.safetensors)
#   bash scripts/train_demo_dit.sh --try   (a few steps of every phase, nothing kept: checks the set-up)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source scripts/training.sh
if [ "${1:-}" = "--try" ]; then
  try_training demo_model.train_dit
  exit 0
fi
OUT="${1:-demo_model/attn_edit_demo_dit.safetensors}"
WORK="${WORK:-$HOME/.cache/attn-edit-train/dit}"
mkdir -p "$WORK"
train() { PYTHONPATH=. "$PY" -m demo_model.train_dit "$@"; }

[ -f "$WORK/stage1.safetensors" ] || train --text-config first --out "$WORK/stage1.safetensors" \
  --vae-checkpoint "$WORK/vae.pt" --checkpoint "$WORK/stage1.pt"
[ -f "$WORK/stage2.safetensors" ] || train --text-config first --init-from "$WORK/stage1.safetensors" --seed 1 \
  --steps 3500 --lr 3e-4 --out "$WORK/stage2.safetensors" --checkpoint "$WORK/stage2.pt"
cp "$WORK/stage2.safetensors" "$OUT"
echo "wrote $OUT"
