"""Localization and mapping estimators for the mmWave twin.

This package never imports :mod:`twin`: it sees only :class:`estimators.types.Observation`
(numpy arrays + known geometry), so every estimator runs on its paper's synthetic
model and on twin channels alike. Importing it fills :data:`ESTIMATORS`.
"""

# Each module registers its estimators on import.
from estimators import daun, direct_baselines, locman, miso, ris_cd, slab_estimators  # noqa: F401
from estimators.base import ESTIMATORS, Bound, Estimate, Estimator, register

__all__ = ["ESTIMATORS", "Bound", "Estimate", "Estimator", "register"]
