#!/usr/bin/env bash
# Loss curves of short CUT runs on the demo data, one per training variant, side by side:
# what --fast_path, --amp, --channels_last and --compile do to the numbers.
#
#   bash scripts/speed_options_curves.sh [ITERATIONS] [EXTRA train.py OPTIONS...]
#   bash scripts/speed_options_curves.sh 300                     # the README's figure (CPU)
#   CURVES_FP16=1 bash scripts/speed_options_curves.sh 300 --gpu_ids 0   # on a GPU, fp16 too
#   SKIP_DONE=1 ...                                              # keep finished variants
#
# Every run starts from the same seed and data order (--seed 0 --serial_batches), so the curves
# share their first points and then part as the variants' rounding differs.  Writes
# checkpoints/curves_<variant>/ and results/speed_options_curves.png.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${1:-300}
shift || true
PYTHON=${PYTHON:-python}
DATA=datasets/demo_horse2zebra
[ -d "$DATA/trainA" ] || "$PYTHON" datasets/make_demo_dataset.py --out "$DATA"

declare -A VARIANTS=(
  [straightforward]="--fast_path False"
  [fast]=""
  [bf16]="--amp bf16"
  [fp16]="--amp fp16"
  [channels_last]="--channels_last"
)
# fp16 has no fast CPU kernels (4.5 s per step here, against 0.25 s in float32): GPU runs only,
# or CURVES_FP16=1
ORDER=(straightforward fast bf16 channels_last)
[ "${CURVES_FP16:-0}" = 1 ] && ORDER+=(fp16)
mkdir -p checkpoints results
RUNS=()
for variant in "${ORDER[@]}"; do
  name="curves_$variant"
  if [ "${SKIP_DONE:-0}" = 1 ] && [ -f "checkpoints/$name/latest_net_G.pth" ]; then
    RUNS+=("checkpoints/$name"); continue
  fi
  rm -rf "checkpoints/$name"
  echo "== $variant: $ITERATIONS iterations"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$PYTHON" train.py --dataroot "$DATA" --name "$name" --CUT_mode CUT --netG resnet_6blocks \
    --ngf 32 --ndf 32 --load_size 64 --crop_size 64 --preprocess none --gpu_ids -1 --display_id 0 --num_threads 0 --seed 0 --serial_batches \
    --max_dataset_size "$ITERATIONS" --n_epochs 1 --n_epochs_decay 0 --print_freq 10 \
    --save_epoch_freq 1 --progress off ${VARIANTS[$variant]} "$@" > "checkpoints/$name.log" 2>&1 \
    || { echo "$variant failed: see checkpoints/$name.log"; exit 1; }
  echo "   $(( $(date +%s) - start )) s"
  RUNS+=("checkpoints/$name")
done
"$PYTHON" scripts/plot_losses.py "${RUNS[@]}" --out results/speed_options_curves.png
