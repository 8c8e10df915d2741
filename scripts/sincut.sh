#!/usr/bin/env bash
# SinCUT (single-image translation) on one pair of images, with the paper's settings.
#   bash scripts/sincut.sh train [DATAROOT [NAME]] [flags]
#   bash scripts/sincut.sh test  [DATAROOT [NAME]] [flags]
# DATAROOT holds trainA/ with the one source image and trainB/ with the one target image; it
# defaults to the original's example, ./datasets/single_image_monet_etretat (Monet's painting to
# the photo of Etretat), and NAME to singleimage_monet_etretat.  test translates the whole
# trainA image at full resolution to results/NAME/test_latest/images/fake_B/.
# Extra flags are passed on, e.g. --gpu_ids -1 (CPU) or --n_epochs 2 --n_epochs_decay 2.
set -euo pipefail
usage="usage: $0 train|test [DATAROOT [NAME]] [flags]"
action=${1:?$usage}
shift
case "$action" in
    train) script=train.py;;
    test)  script=test.py;;
    *) echo "error: the first argument must be train or test (got '$action'); $usage" >&2; exit 2;;
esac
dataroot=./datasets/single_image_monet_etretat
name=singleimage_monet_etretat
if [[ $# -gt 0 && $1 != -* ]]; then dataroot=$1; shift; fi
if [[ $# -gt 0 && $1 != -* ]]; then name=$1; shift; fi

for side in trainA trainB; do
    if [[ ! -d "$dataroot/$side" ]]; then
        echo "error: $dataroot/$side not found; SinCUT needs $dataroot/trainA/ with one source" \
             "image and $dataroot/trainB/ with one target image (the original's example pair is" \
             "Monet's 'Etretat' painting and a photo of Etretat: put your own copies there, or" \
             "pass another folder as DATAROOT)" >&2
        exit 2
    fi
done

set -x
exec python "$script" --model sincut --dataroot "$dataroot" --name "$name" "$@"
