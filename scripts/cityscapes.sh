#!/usr/bin/env bash
# Cityscapes label map -> photo: photos in A, label maps in B, so direction BtoA (as the published models).
#   bash scripts/cityscapes.sh train CUT        bash scripts/cityscapes.sh test CUT
#   bash scripts/cityscapes.sh train FastCUT    bash scripts/cityscapes.sh test FastCUT
#   bash scripts/cityscapes.sh train GcGAN      (also CycleGAN, DistanceGAN, SelfDistance)
# GcGAN runs as its authors ran label map -> photo (hufu6371/GcGAN, train_gcgan.sh and README):
# one generator shared by x and f(x), identity weight 0.3.
# Extra flags are passed on, e.g. --gpu_ids 0,1 --batch_size 2 or --epoch 200.
set -euo pipefail
action=${1:?usage: $0 train|test CUT|FastCUT|CycleGAN|DistanceGAN|SelfDistance|GcGAN [flags]} mode=${2:-CUT}
shift $(( $# < 2 ? $# : 2 ))
extra=()
if [ "$mode" = GcGAN ]; then
    extra=(--gcgan_variant shared)
    [ "$action" = train ] && extra+=(--lambda_identity 0.3)
fi

exec bash "$(dirname "$0")/run_dataset.sh" "$action" "$mode" ./datasets/cityscapes cityscapes --direction BtoA "${extra[@]}" "$@"
