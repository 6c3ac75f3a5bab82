"""Localization and mapping estimators for the mmWave twin.

This package never imports :mod:`twin`: it sees only :class:`estimators.types.Observation`
(numpy arrays + known geometry), so every estimator runs on its paper's synthetic
model and on twin channels alike. Importing it fills :data:`ESTIMATORS`.
"""

# Each module registers its estimators on import.
import estimators.daun.baselines
import estimators.daun.estimators
import estimators.locman.baselines
import estimators.locman.estimators
import estimators.miso.estimators
import estimators.ris_cd.baselines
import estimators.ris_cd.estimators
import estimators.slab.estimators  # noqa: F401
from estimators.base import ESTIMATORS, Bound, Estimate, Estimator, register

__all__ = ["ESTIMATORS", "Bound", "Estimate", "Estimator", "register"]
