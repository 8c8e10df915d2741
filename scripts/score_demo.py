"""Score translations of the demo data set and print the demo_h2z_v1 table.

    python scripts/score_demo.py --dataroot datasets/demo_horse2zebra \
        --results cut=results/demo/test_latest \
        --results untrained=results/demo_untrained/test_latest

Rows: identity (real testA as output), each --results folder, real_B (target).  See
metrics/demo_scores.py for what each column measures.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metrics.demo_scores import main  # noqa: E402
from util.errors import run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
