"""Models: the registry (models/registry.py), BaseModel, and the inference API.

    from models import create_model, load_translator
"""
from .base_model import BaseModel
from .registry import MODELS, create_model, find_model_class, get_option_setter
from .translator import Translator, load_translator

__all__ = ["BaseModel", "MODELS", "find_model_class", "get_option_setter", "create_model",
           "load_translator", "Translator"]
