"""Input checks shared by the fitters: every error says what is wrong and how many points are needed."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def check_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is a positive finite number."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def positive_array(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` as a 1-D float array, refusing anything that is not positive and finite."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence, got shape {array.shape}")
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        raise ValueError(
            f"{name} must be positive and finite (power laws are fitted in log space); "
            f"{int(bad.sum())} of {array.size} values are not, e.g. {array[bad][0]}"
        )
    return array


def same_length(**arrays: np.ndarray) -> int:
    """The common length of ``arrays``."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Inputs must have the same length, got {lengths}")
    return next(iter(lengths.values()))


def require_points(what: str, got: int, needed: int, hint: str = "") -> None:
    """Raise unless ``got >= needed``."""
    if got < needed:
        message = f"{what} needs at least {needed} points, got {got}"
        raise ValueError(f"{message}. {hint}" if hint else message)
