"""Model registry: `--model NAME` picks a class from MODELS.

To add a model, write `models/<name>_model.py` with a BaseModel subclass and register it here;
`--model` choices and error messages are read from this dict.
"""
from util.errors import UserError

from .cut_model import CUTModel
from .cycle_gan_model import CycleGANModel
from .distance_gan_model import DistanceGANModel
from .drit_model import DRITModel
from .gcgan_model import GcGANModel
from .munit_model import MUNITModel
from .sincut_model import SinCUTModel
from .swap_ae_model import SwapAEModel

MODELS = {
    "cut": CUTModel,
    "cycle_gan": CycleGANModel,
    "distance_gan": DistanceGANModel,  # --self_distance: SelfDistance
    "drit": DRITModel,  # --drit_ms: DRIT++
    "gcgan": GcGANModel,
    "munit": MUNITModel,  # multimodal: a style code (test.py / translate.py --n_styles)
    "sincut": SinCUTModel,
    "swap_ae": SwapAEModel,  # Swapping Autoencoder (models/swap_ae_model.py)
}


def find_model_class(name):
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown --model '{name}'; choose from: {', '.join(sorted(MODELS))}") from None


def get_option_setter(name):
    """The static method that adds a model's options and defaults to the parser."""
    return find_model_class(name).modify_commandline_options


def create_model(opt):
    model = find_model_class(opt.model)(opt)
    print(f"model [{type(model).__name__}] was created")
    return model
