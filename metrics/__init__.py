"""Scores for the built-in demo data set (datasets/make_demo_dataset.py).

demo_detector.py   hand-made animal / stripe detector and image-level zebra decision (no weights)
demo_scores.py     protocol `demo_h2z_v1`: content IoU, stripe share, background match, B-rate of
                   translated testA images; table + JSON; entry point scripts/score_demo.py
"""
