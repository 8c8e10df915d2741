#!/usr/bin/env bash
# Horse -> zebra (bash datasets/download_cut_dataset.sh horse2zebra).
#   bash scripts/horse2zebra.sh train CUT        bash scripts/horse2zebra.sh test CUT
#   bash scripts/horse2zebra.sh train FastCUT    bash scripts/horse2zebra.sh test FastCUT
# Extra flags are passed on, e.g. --gpu_ids 0,1 --batch_size 2 or --epoch 200.
set -euo pipefail
action=${1:?usage: $0 train|test CUT|FastCUT|CycleGAN|DistanceGAN|SelfDistance|GcGAN [flags]} mode=${2:-CUT}
shift $(( $# < 2 ? $# : 2 ))

exec bash "$(dirname "$0")/run_dataset.sh" "$action" "$mode" ./datasets/horse2zebra horse2zebra  "$@"
