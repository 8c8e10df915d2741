"""Scores: FID/KID with the paper's protocol, and the built-in demo data set's own scores.

fid.py             protocol "paper": pytorch-fid features and Fréchet distance, torch-fidelity KID,
                   weights resolution, cached real-image features; entry point evaluate.py
training_eval.py   --eval_freq: score the generator during training (FID/KID or mIoU), keep
                   best_net_G.pth
segmentation.py    the Cityscapes segmentation score (mIoU, pixel and class accuracy) and the
                   detected-pixel shares; entry point evaluate.py --seg_labels / --detect

demo_detector.py   hand-made animal / stripe detector and image-level zebra decision (no weights)
demo_scores.py     protocol `demo_h2z_v1`: content IoU, stripe share, background match, B-rate of
                   translated testA images; table + JSON; entry point scripts/score_demo.py
"""
