"""Test options."""
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
        # Models with a style code (MUNIT, DRIT; models/translator.py has the interface)
        p.add_argument("--n_styles", type=int, default=None,
                       help="models with a style code: translate each image with this many random "
                            "styles (images/fake_B_s0 ... and a side-by-side strip images/styles); "
                            "seeded by --seed (default 10)")
        p.add_argument("--style_ref", type=str, default=None,
                       help="models with a style code: translate every image in the style of this "
                            "target-domain image (images/fake_B)")
        # At test time images are resized straight to crop_size (no random crop).
        p.set_defaults(load_size=p.get_default("crop_size"))
        return p

    def validate(self, opt):
        super().validate(opt)
        from models.translator import check_style_options
        check_style_options(opt.model, opt.n_styles, opt.style_ref)
