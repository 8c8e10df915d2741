#!/usr/bin/env bash
# Cat -> dog on AFHQ, arranged as trainA=cat trainB=dog testA testB.
#   bash scripts/cat2dog.sh train CUT        bash scripts/cat2dog.sh test CUT
#   bash scripts/cat2dog.sh train FastCUT    bash scripts/cat2dog.sh test FastCUT
# Extra flags are passed on, e.g. --gpu_ids 0,1 --batch_size 2 or --epoch 200.
set -euo pipefail
action=${1:?usage: $0 train|test CUT|FastCUT|CycleGAN|DistanceGAN|SelfDistance|GcGAN [flags]} mode=${2:-CUT}
shift $(( $# < 2 ? $# : 2 ))

exec bash "$(dirname "$0")/run_dataset.sh" "$action" "$mode" ./datasets/afhq/cat2dog cat2dog  "$@"
