#!/usr/bin/env bash
# Shared by the per-data-set scripts: run train.py or test.py with the paper's settings.
#   run_dataset.sh ACTION MODE DATAROOT NAME_PREFIX [extra flags...]
# MODE: CUT, FastCUT, CycleGAN, DistanceGAN, SelfDistance or GcGAN.
set -euo pipefail
action=$1 mode=$2 dataroot=$3 prefix=$4
shift 4
# CUT's presets, or a baseline of the paper's Table 1 with its authors' defaults (models/presets.py)
case "$mode" in
    CUT|FastCUT) model=(--CUT_mode "$mode");;
    CycleGAN) model=(--model cycle_gan);;
    DistanceGAN) model=(--model distance_gan);;
    SelfDistance) model=(--model distance_gan --self_distance);;
    GcGAN) model=(--model gcgan);;
    *) echo "error: MODE must be CUT or FastCUT, or a baseline: CycleGAN, DistanceGAN, SelfDistance, GcGAN (got '$mode')" >&2; exit 2;;
esac
name="${prefix}_${mode}"  # the original launchers' names, e.g. grumpifycat_CUT
case "$action" in
    train) set -x; exec python train.py --dataroot "$dataroot" --name "$name" "${model[@]}" "$@";;
    # --num_test 500 as the original's evaluation of its published models (flags given later win)
    test)  set -x; exec python test.py --dataroot "$dataroot" --name "$name" "${model[@]}" --num_test 500 "$@";;
    *) echo "error: ACTION must be train or test (got '$action')" >&2; exit 2;;
esac
