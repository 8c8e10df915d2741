#!/usr/bin/env bash
# Cityscapes label map -> photo, scored as in the CUT paper's Table 1 (docs/segmentation.md).
# Photos are in A, label maps in B, so the translation runs BtoA (as the published models).
#   bash scripts/cityscapes.sh prepare              # CITYSCAPES=folder with gtFine/ and leftImg8bit/
#   bash scripts/cityscapes.sh segmenter            # train DRN-D-22 on the prepared photos
#   bash scripts/cityscapes.sh train MODE           # MODE: CUT, FastCUT, CycleGAN, DistanceGAN,
#                                                   #   SelfDistance or GcGAN
#   bash scripts/cityscapes.sh test MODE
#   bash scripts/cityscapes.sh eval MODE            # FID/KID, mIoU, pixAcc, classAcc
#   bash scripts/cityscapes.sh all MODE             # each step above that has not been done
# GcGAN runs as its authors ran label map -> photo (hufu6371/GcGAN, train_gcgan.sh and README):
# one generator shared by x and f(x), identity weight 0.3.
# Extra flags go to the step's command, e.g. --gpu_ids 0,1, --epoch 200 or --imagenet_weights F.
# Environment (defaults in brackets): CITYSCAPES [./cityscapes], DATAROOT [./datasets/cityscapes],
#   SEG_WEIGHTS [./checkpoints/cityscapes_drn_d_22/seg_drn_d_22.pth; a DRNSeg drn_d_22 file of
#   your own works too], FID [1; 0 skips FID/KID, which need the Inception weights].
set -euo pipefail
action=${1:?usage: $0 prepare|segmenter|train|test|eval|all [CUT|FastCUT|CycleGAN|DistanceGAN|SelfDistance|GcGAN] [flags]}
shift
cd "$(dirname "$0")/.."
CITYSCAPES=${CITYSCAPES:-./cityscapes}
DATAROOT=${DATAROOT:-./datasets/cityscapes}
SEG_NAME=cityscapes_drn_d_22
SEG_WEIGHTS=${SEG_WEIGHTS:-./checkpoints/$SEG_NAME/seg_drn_d_22.pth}
FID=${FID:-1}

mode_of() {
    case "${1:-}" in CUT|FastCUT|CycleGAN|DistanceGAN|SelfDistance|GcGAN) echo "$1";;
        *) echo "error: MODE must be CUT, FastCUT, CycleGAN, DistanceGAN, SelfDistance or GcGAN (got '${1:-}')" >&2
           exit 2;; esac
}

step() {  # step ACTION [MODE] [flags]
    local act=$1; shift
    case "$act" in
        prepare)
            set -x
            python datasets/prepare_cityscapes_dataset.py --gtFine_dir "$CITYSCAPES/gtFine" \
                --leftImg8bit_dir "$CITYSCAPES/leftImg8bit" --output_dir "$DATAROOT" "$@";;
        segmenter)
            set -x
            python scripts/train_segmenter.py --dataroot "$DATAROOT" --name "$SEG_NAME" "$@";;
        train|test)
            local mode; mode=$(mode_of "${1:-}"); shift
            local extra=()
            if [ "$mode" = GcGAN ]; then
                extra=(--gcgan_variant shared)
                [ "$act" = train ] && extra+=(--lambda_identity 0.3)
            fi
            bash scripts/run_dataset.sh "$act" "$mode" "$DATAROOT" cityscapes --direction BtoA \
                "${extra[@]}" "$@";;
        eval)
            local mode; mode=$(mode_of "${1:-}"); shift
            local real=(); [ "$FID" = 1 ] && real=("$DATAROOT/testA")
            set -x
            python evaluate.py "results/cityscapes_$mode/test_latest/images/fake_B" "${real[@]}" \
                --seg_model drn_d_22 --seg_weights "$SEG_WEIGHTS" \
                --seg_labels "$DATAROOT/testB_trainIds" --seg_real_dir "$DATAROOT/testA" "$@";;
        *) echo "error: ACTION must be prepare, segmenter, train, test, eval or all (got '$act')" >&2
           exit 2;;
    esac
}

if [ "$action" = all ]; then
    mode=$(mode_of "${1:-}")
    [ -f "$DATAROOT/prepare_cityscapes.json" ] || (step prepare)
    [ -f "$SEG_WEIGHTS" ] || (step segmenter)
    [ -f "checkpoints/cityscapes_$mode/latest_net_G.pth" ] || [ -f "checkpoints/cityscapes_$mode/latest_net_G_A.pth" ] \
        || (step train "$mode")
    (step test "$mode")
    (step eval "$mode")
else
    step "$action" "$@"
fi
