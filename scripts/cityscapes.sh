#!/usr/bin/env bash
# Cityscapes label map -> photo: photos in A, label maps in B, so direction BtoA (as the published models).
#   bash scripts/cityscapes.sh train CUT        bash scripts/cityscapes.sh test CUT
#   bash scripts/cityscapes.sh train FastCUT    bash scripts/cityscapes.sh test FastCUT
# Extra flags are passed on, e.g. --gpu_ids 0,1 --batch_size 2 or --epoch 200.
set -euo pipefail
action=${1:?usage: $0 train|test CUT|FastCUT [flags]} mode=${2:-CUT}
shift $(( $# < 2 ? $# : 2 ))

exec bash "$(dirname "$0")/run_dataset.sh" "$action" "$mode" ./datasets/cityscapes cityscapes --direction BtoA "$@"
