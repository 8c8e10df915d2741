"""Test options (spec 2.4)."""
from .base_options import BaseOptions


class TestOptions(BaseOptions):
    """Base options plus where to write results and how many images to translate."""

    is_train = False
    __test__ = False  # not a pytest test class

    def initialize(self, parser):
        p = super().initialize(parser)
        p.add_argument("--results_dir", type=str, default="./results/", help="saves results here.")
        p.add_argument("--phase", type=str, default="test", help="train, val, test, etc")
        p.add_argument("--eval", action="store_true", help="use eval mode during test time.")
        p.add_argument("--num_test", type=int, default=50, help="how many test images to run")
        # At test time images are resized straight to crop_size (no random crop).
        p.set_defaults(load_size=p.get_default("crop_size"))
        return p
