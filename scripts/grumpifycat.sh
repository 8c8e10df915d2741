#!/usr/bin/env bash
# Russian Blue -> Grumpy Cat (bash datasets/download_cut_dataset.sh grumpifycat). There is no test split: test runs on --phase train.
#   bash scripts/grumpifycat.sh train CUT        bash scripts/grumpifycat.sh test CUT
#   bash scripts/grumpifycat.sh train FastCUT    bash scripts/grumpifycat.sh test FastCUT
# Extra flags are passed on, e.g. --gpu_ids 0,1 --batch_size 2 or --epoch 200.
set -euo pipefail
action=${1:?usage: $0 train|test CUT|FastCUT|CycleGAN|DistanceGAN|SelfDistance|GcGAN [flags]} mode=${2:-CUT}
shift $(( $# < 2 ? $# : 2 ))
phase=""; [ "$action" = test ] && phase="--phase train"
exec bash "$(dirname "$0")/run_dataset.sh" "$action" "$mode" ./datasets/grumpifycat grumpifycat $phase "$@"
