"""nextword's device runtime: numpy plus one interpreter, no TensorFlow.

    from nextword.runtime import Predictor
    p = Predictor.load("artifacts/seed")
    p.top_k("hello how", k=3)
"""

from .errors import (ArgumentTypeError, BackendUnavailable, BundleError, BundleInvalid, HashMismatch, InputError,
                     ModelError, NextwordError, UnsupportedVersion, UserFileInvalid, VariantUnavailable)
from .predictor import Predictor
from .tokenizer import Tokenizer

__all__ = ["Predictor", "Tokenizer", "NextwordError", "BundleError", "BundleInvalid", "HashMismatch",
           "UnsupportedVersion", "VariantUnavailable", "BackendUnavailable", "InputError", "ArgumentTypeError", "ModelError",
           "UserFileInvalid"]
