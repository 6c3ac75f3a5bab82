"""Sounding a run: the twin's CFR → :class:`estimators.types.Observation`.

The observation machinery itself (pilots, beams, noise) lives in
:mod:`estimators.observe`, shared with the papers' synthetic models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT, steering_vector
from estimators.observe import (
    BOLTZMANN_DBM_PER_HZ,
    build_observation,
    thermal_noise_variance,
)
from estimators.types import ChannelTruth, Observation
from twin.paths import InteractionType
from twin.runfile import RunData

__all__ = [
    "BOLTZMANN_DBM_PER_HZ",
    "build_observation",
    "channel_truth",
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


def channel_truth(run: RunData, bs: int = 0) -> ChannelTruth:
    """The ray-traced paths of one BS as :class:`estimators.types.ChannelTruth`.

    Gains are referred to the array reference points: the twin's gain of antenna pair
    (0, 0) divided by both arrays' steering phases of that element. ``los[t]`` when the
    earliest path is geometrically direct: depth 0, or only refractions (obstructed LOS
    through thin slabs, which Sionna does not deflect); ``scatterer`` is the interaction
    point of single-bounce reflections (NaN otherwise).
    """
    p = run.paths
    wavelength = SPEED_OF_LIGHT / run.carrier_frequency
    tx0 = run.bs_array.world_positions(run.bs_orientation[bs])[:1]
    valid = p.valid[:, bs]
    aod, aoa = p.aod[:, bs], p.aoa[:, bs]
    safe = np.where(valid[..., None], aod, 0.0), np.where(valid[..., None], aoa, 0.0)
    a_tx = steering_vector(tx0, safe[0][..., 0], safe[0][..., 1], wavelength)[..., 0]
    a_rx = np.stack([
        steering_vector(run.ue_array.world_positions(run.drive.orientation[t])[:1],
                        safe[1][t, :, 0], safe[1][t, :, 1], wavelength)[..., 0]
        for t in range(p.num_snapshots)
    ])
    gain = np.where(valid, p.gain[:, bs, :, 0, 0] / (a_tx * a_rx), 0)
    types = p.interaction_types[:, bs]
    direct = np.all((types == InteractionType.NONE) | (types == InteractionType.REFRACTION), -1)
    single = valid & (p.depth[:, bs] == 1) & (types[..., 0] != InteractionType.REFRACTION)
    scatterer = np.where(single[..., None], p.interaction_points[:, bs, :, 0], np.nan)
    return ChannelTruth(
        gain=gain.astype(np.complex128), tau=p.tau[:, bs], aod=aod, aoa=aoa, valid=valid,
        los=valid[:, 0] & direct[:, 0], ue_position=run.drive.position, scatterer=scatterer,
        ue_orientation=run.drive.orientation,
    )
