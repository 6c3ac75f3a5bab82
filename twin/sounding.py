"""Sounding a run: the twin's CFR → :class:`estimators.types.Observation`, and its
ray-traced paths → :class:`estimators.types.ChannelTruth`.

The observation machinery itself (pilots, beams, noise) lives in
:mod:`estimators.observe`, shared with the papers' synthetic models; what RIS
positioning needs of a run (its radio map, the fixed MRT precoder, the group design
matrices) lives in :mod:`twin.ris_positioning`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT, steering_vector
from estimators.base import EstimatorInputError
from estimators.observe import (
    BOLTZMANN_DBM_PER_HZ,
    build_observation,
    thermal_noise_variance,
)
from estimators.types import ChannelTruth, Observation, PositionPrior, ServiceArea
from twin.paths import InteractionType
from twin.ris_positioning import fingerprint_map, mrt_precoder
from twin.runfile import RunData

__all__ = [
    "BOLTZMANN_DBM_PER_HZ",
    "build_observation",
    "channel_truth",
    "observation_from_run",
    "service_area",
    "thermal_noise_variance",
]

SERVICE_MARGIN_FRACTION = 0.25
"""The margin of :func:`service_area`: this fraction of the drive's larger horizontal
extent, clipped to :data:`SERVICE_MARGIN_RANGE_M`."""
SERVICE_MARGIN_RANGE_M = (2.0, 10.0)
"""Smallest and largest margin [m] of :func:`service_area`."""


def service_margin(extent_m: float) -> float:
    """The margin [m] :func:`service_area` grows a drive of larger horizontal extent
    ``extent_m`` [m] by: a quarter of it, at least 2 m (a drive along a line, a UE
    standing still) and at most 10 m (a city drive). Proportional, so that an office
    walk's area stays in its rooms (a 10 m margin on a 10 m walk would let every
    front/back or mirror ambiguity in) while a street drive's covers the street."""
    low, high = SERVICE_MARGIN_RANGE_M
    return float(np.clip(SERVICE_MARGIN_FRACTION * extent_m, low, high))


def service_area(run: RunData, margin_m: float | None = None) -> ServiceArea:
    """What a deployment knows of where its users are (:class:`ServiceArea`), from the
    run: the drive's horizontal bounding box grown by ``margin_m`` [m] on every side
    (default :func:`service_margin` of its extent; the streets or rooms it serves, not
    the positions in it), the drive's median UE height and the scene's ground under it
    (:attr:`RunData.ground_height`). The default search region of
    every estimator that searches one (grid localizers, initialisations, ambiguity
    checks), overridden per estimator with ``--set ALGO.area=...``."""
    xy = run.drive.position[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    margin = service_margin(float(np.max(hi - lo))) if margin_m is None else margin_m
    lo, hi = lo - margin, hi + margin
    return ServiceArea(area=((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1]))),
                       ue_height=float(np.median(run.drive.position[:, 2])),
                       ground_height=run.ground_height)


def observation_from_run(
    run: RunData, *, rng: np.random.Generator, seed: int | None = None, **options: Any
) -> Observation:
    """:func:`build_observation` on a run's CFR, with its geometry filled in.

    ``options`` are the keyword arguments of :func:`build_observation` (``snr_db`` or
    ``tx_power_dbm``, ``link``, ``precoder``, ``num_beams``, ...), plus:

    * ``radio_map=True``: attach the run's radio map
      (:func:`twin.ris_positioning.fingerprint_map`); a run without one raises
      :class:`estimators.base.EstimatorInputError` (the estimator does not fit the run);
    * ``precoder="mrt"`` (with ``radio_map``): Sang et al.'s fixed wideband MRT precoder,
      towards the run's first RIS tile, or its radio map's central block in a run without
      tiles (:func:`twin.ris_positioning.mrt_precoder`);
    * the run's :func:`service_area` (``Observation.service_area``);
    * ``prior_std_m``: a horizontal Gaussian prior on the UE position, its mean the true
      position plus ``N(0, prior_std_m² I₂)`` (a GNSS-like fix; Sang et al. eq. 39), drawn
      from ``rng`` after the noise.
    """
    fingerprints = None
    if options.pop("radio_map", False):
        fingerprints = fingerprint_map(run)
        if fingerprints is None:  # the estimator does not fit this run (skipped by demo)
            raise EstimatorInputError("needs the run's radio map (config: fingerprints)")
    prior_std = options.pop("prior_std_m", None)
    if isinstance(options.get("precoder"), str) and options["precoder"] == "mrt":
        if fingerprints is None:
            raise ValueError("precoder 'mrt' needs radio_map=True")
        options["precoder"] = mrt_precoder(run)[:, None]
    obs = build_observation(
        run.cfr, frequencies=run.frequencies, carrier_frequency=run.carrier_frequency,
        bs_position=run.bs_position, bs_orientation=run.bs_orientation, bs_array=run.bs_array,
        ue_array=run.ue_array, rng=rng, bandwidth_hz=options.pop("bandwidth_hz", run.bandwidth),
        snapshot_time=run.drive.time, seed=seed, **options,
    )
    prior = None
    if prior_std is not None:
        T = run.drive.num_snapshots
        mean = run.drive.position.copy()
        mean[:, :2] += float(prior_std) * rng.standard_normal((T, 2))
        covariance = np.zeros((T, 3, 3))
        covariance[:, 0, 0] = covariance[:, 1, 1] = float(prior_std) ** 2
        prior = PositionPrior(mean=mean, covariance=covariance)
    return dataclasses.replace(obs, fingerprints=fingerprints, prior=prior,
                               service_area=service_area(run))


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
