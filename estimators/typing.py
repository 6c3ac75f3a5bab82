"""Array aliases shared by every module of :mod:`estimators` and :mod:`twin`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
"""Real float64 array; the docstring names its dimensions and unit."""

ComplexArray = npt.NDArray[np.complex128]
"""Complex128 array (channels, gains, beams, observations)."""

IntArray = npt.NDArray[np.intp]
"""Index array."""

BoolArray = npt.NDArray[np.bool_]
"""Mask array."""
