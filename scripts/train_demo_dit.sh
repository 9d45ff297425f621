#!/usr/bin/env bash
# Retrain the shipped demo DiT from scratch: the 16-channel VAE, T5's warm start and a first flow schedule, then
# continuations on fresh scene pools (--init-from, a new one-cycle schedule): stage 2 at 0.3x the learning rate,
# stage 3 with a wider T5 (6 x 128, warm-started afresh) trained at the transformer's learning rate.
# Deterministic. Every stage keeps its state under $WORK (default ~/.cache/attn-edit-train/dit) and a rerun
# skips finished stages and resumes an interrupted one. Needs ComfyUI ($COMFYUI_PATH) for its classes and the
# UNet demo model (its trained CLIP text encoder is the DiT's CLIP-L).
#   bash scripts/train_demo_dit.sh [OUT]   (default demo_model/attn_edit_demo_dit.safetensors)
#   bash scripts/train_demo_dit.sh --try   (a few steps of every phase, nothing kept: checks the set-up)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ "${1:-}" = "--try" ]; then  # a few steps of every phase into a scratch folder: checks the set-up in a minute
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  PYTHONPATH=. "$PY" -m demo_model.train_dit --out "$scratch/try.safetensors" --vae-steps 2 --vae-batch 2 --pool 16 \
    --text-steps 2 --text-batch 4 --steps 3 --batch 4
  echo "training works here (a few steps of each phase; nothing kept)"
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
[ -f "$WORK/stage3.safetensors" ] || train --init-from "$WORK/stage2.safetensors" --new-text --seed 2 \
  --steps 3000 --lr 5e-4 --text-lr-scale 1.0 --out "$WORK/stage3.safetensors" --checkpoint "$WORK/stage3.pt"
cp "$WORK/stage3.safetensors" "$OUT"
echo "wrote $OUT"
