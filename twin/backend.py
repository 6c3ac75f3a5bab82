"""Sionna RT / Mitsuba access, imported lazily.

The Mitsuba variant is chosen once, at the first call that traces (CUDA when a GPU
is present, LLVM on CPU), never at import time of a module that does not trace.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

_CPU_VARIANT = "llvm_ad_mono_polarized"
_GPU_VARIANT = "cuda_ad_mono_polarized"


@functools.cache
def sionna_rt() -> ModuleType:
    """The ``sionna.rt`` module, with the Mitsuba variant selected."""
    import mitsuba as mi

    wanted = os.environ.get("TWIN_MITSUBA_VARIANT")
    if wanted is None:
        wanted = _GPU_VARIANT if _gpu_present() else _CPU_VARIANT
    if mi.variant() != wanted:
        mi.set_variant(wanted)
    import sionna.rt as rt

    return rt


def mitsuba() -> Any:
    """The ``mitsuba`` module, after :func:`sionna_rt` picked its variant."""
    sionna_rt()
    import mitsuba as mi

    return mi


def _gpu_present() -> bool:
    import mitsuba as mi

    if _GPU_VARIANT not in mi.variants():
        return False
    try:
        import drjit as dr

        return bool(dr.has_backend(dr.JitBackend.CUDA))
    except Exception:  # any CUDA probe failure means "no usable GPU"
        return False
