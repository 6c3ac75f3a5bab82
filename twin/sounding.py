"""Sounding a run: the twin's CFR → :class:`estimators.types.Observation`.

The observation machinery itself (pilots, beams, noise) lives in
:mod:`estimators.observe`, shared with the papers' synthetic models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from estimators.observe import (
    BOLTZMANN_DBM_PER_HZ,
    build_observation,
    thermal_noise_variance,
)
from estimators.types import Observation
from twin.runfile import RunData

__all__ = [
    "BOLTZMANN_DBM_PER_HZ",
    "build_observation",
    "observation_from_run",
    "thermal_noise_variance",
]


def observation_from_run(
    run: RunData, *, rng: np.random.Generator, seed: int | None = None, **options: Any
) -> Observation:
    """:func:`build_observation` on a run's CFR, with its geometry filled in.

    ``options`` are the keyword arguments of :func:`build_observation` (``snr_db`` or
    ``tx_power_dbm``, ``link``, ``precoder``, ``num_beams``, ...).
    """
    return build_observation(
        run.cfr, frequencies=run.frequencies, carrier_frequency=run.carrier_frequency,
        bs_position=run.bs_position, bs_orientation=run.bs_orientation, bs_array=run.bs_array,
        ue_array=run.ue_array, rng=rng, bandwidth_hz=options.pop("bandwidth_hz", run.bandwidth),
        snapshot_time=run.drive.time, seed=seed, **options,
    )
