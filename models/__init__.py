"""Models: the registry (models/registry.py), BaseModel, and the inference API.

    from models import create_model, load_translator
"""
from .base_model import BaseModel
from .registry import MODELS, create_model, find_model_class, get_option_setter
from .translator import Translator
from .translator import load_translator as _load_generator_translator
from . import swap_translation


def load_translator(path, *args, **kwargs):
    """A Translator for a generator checkpoint (models/translator.py), or for a swap_ae
    checkpoint a SwapTranslator, whose `.swap(structure, texture, alpha)` swaps textures
    (models/swap_translation.py)."""
    if swap_translation.is_swap_checkpoint(path):
        return swap_translation.load_swap_translator(path, *args, **kwargs)
    return _load_generator_translator(path, *args, **kwargs)


__all__ = ["BaseModel", "MODELS", "find_model_class", "get_option_setter", "create_model",
           "load_translator", "Translator"]
