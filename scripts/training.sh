# Shared by scripts/train_demo.sh and scripts/train_demo_dit.sh (sourced after scripts/env.sh).

# try_training MODULE: a few steps of every phase of `python -m MODULE` into a scratch folder, nothing kept: checks
# the set-up in a minute.
try_training() {
  TRY_DIR="$(mktemp -d)"
  trap 'rm -rf "$TRY_DIR"' EXIT
  PYTHONPATH=. "$PY" -m "$1" --out "$TRY_DIR/try.safetensors" --vae-steps 2 --vae-batch 2 --pool 16 \
    --text-steps 2 --text-batch 4 --steps 3 --batch 4
  echo "training works here (a few steps of each phase; nothing kept)"
}
