#!/usr/bin/env bash
# Download one of the unpaired data sets used by CUT/CycleGAN into ./datasets/NAME/.
#   bash ./datasets/download_cut_dataset.sh horse2zebra
set -euo pipefail

NAMES="ae_photos apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo
vangogh2photo maps cityscapes facades iphone2dslr_flower mini mini_pix2pix mini_colorization grumpifycat"
FILE="${1:-}"

if [[ -z "$FILE" || " $(echo $NAMES) " != *" $FILE "* ]]; then
    echo "usage: $0 NAME   with NAME one of: $(echo $NAMES)" >&2
    exit 2
fi

if [[ "$FILE" == "cityscapes" ]]; then
    echo "Due to license restrictions Cityscapes cannot be downloaded by this script." >&2
    echo "Register at https://www.cityscapes-dataset.com, download gtFine_trainvaltest.zip and" >&2
    echo "leftImg8bit_trainvaltest.zip and arrange photos in trainA/testA and label maps in trainB/testB." >&2
    exit 2
fi

URL="https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/$FILE.zip"
DIR="$(cd "$(dirname "$0")" && pwd)"
ZIP="$DIR/$FILE.zip"

echo "downloading $URL"
if command -v wget >/dev/null 2>&1; then
    fetch() { wget --no-check-certificate -q --show-progress -O "$ZIP" "$URL"; }
else
    fetch() { curl -fL -k -o "$ZIP" "$URL"; }
fi
if ! fetch; then
    rm -f "$ZIP"
    echo "error: could not download $URL (no internet access?); fetch the zip elsewhere and unzip it into $DIR/" >&2
    exit 1
fi
unzip -q "$ZIP" -d "$DIR/"
rm "$ZIP"
echo "data set ready in $DIR/$FILE"
