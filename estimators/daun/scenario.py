"""DAUN's own synthetic setting (Fan, Liu, Li, Huang, §IV) with the channel of eq. (1).

The paper's SNR: ``y_m = sqrt(ω) h_m s + n_m`` with ``n_m ~ CN(0, I)`` (eq. 1): the noise
is fixed at unit variance and the power scaled. The paper leaves the scale of ``h_m``
open; here each BS's ``h_m`` has unit mean power per element, so ``ω`` is the SNR of every
BS (the training batches and the observations alike).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import (
    SPEED_OF_LIGHT,
    planar_array_positions,
    steering_vector,
    wrap_angle,
)
from estimators.daun.model import DirectLocalizationProblem
from estimators.observe import build_observation, complex_normal
from estimators.types import Area, ArrayGeometry, ChannelTruth, Observation, ServiceArea
from estimators.typing import BoolArray, ComplexArray, FloatArray


@dataclass(frozen=True)
class DaunPaths:
    """Eq. (1)'s paths for ``sample`` users: per BS the LOS (path 0) and ``P`` NLOS paths.

    Attributes
    ----------
    gain : ``[sample, bs, path]`` complex, ``α_m`` then ``α_m^i`` (0 for an absent LOS).
    azimuth : ``[sample, bs, path]`` [rad], arrival azimuths at the BS (horizontal).
    zenith : ``[sample, bs, path]`` [rad], arrival zeniths (``π/2`` for the NLOS paths).
    los : ``[sample, bs]`` bool, which BSs see the LOS.
    channel : ``[sample, bs, bs_ant]`` complex, ``h_m``.
    """

    gain: ComplexArray
    azimuth: FloatArray
    zenith: FloatArray
    los: BoolArray
    channel: ComplexArray

    def scaled(self, factor: FloatArray) -> DaunPaths:
        """The paths with every BS's gains times ``factor [sample, bs]``."""
        return DaunPaths(self.gain * factor[..., None], self.azimuth, self.zenith, self.los,
                         self.channel * factor[..., None])


@dataclass(frozen=True)
class DaunScenario:
    """The paper's setting (§IV) with the eq. (1) channel: a :class:`Scenario
    <estimators.scenario.Scenario>` whose truth is one ``ChannelTruth`` per BS.

    Four BSs at ``(±50, ±50)`` m with 50-element half-wavelength ULAs facing the area's
    centre, a 40 × 40 m area, ``K = 30 × 30`` grid, ``L = 100`` angles, 30 GHz. BSs and
    user at the same height (the paper's planar model; ``bs_height`` sets the BSs'
    apart). Each BS sees the LOS path with
    probability ``los_probability`` (a BS without it is the case Algorithm 1 is for) and
    ``num_nlos`` NLOS paths with arrival azimuths uniform over its front half-plane and
    power ``nlos_power_db`` each relative to the LOS, random phases. The paper's Fig. 2
    uses 3GPP UMa channels instead (the dataset engine's statistical mode,
    ``scripts/daun/figures.py``).

    References
    ----------
    Fan et al., eq. (1), §IV.
    """

    bs_xy: tuple[tuple[float, float], ...] = ((-50.0, -50.0), (-50.0, 50.0), (50.0, 50.0),
                                              (50.0, -50.0))
    num_bs_antennas: int = 50
    area: Area = ((-20.0, -20.0), (20.0, 20.0))
    grid_shape: tuple[int, int] = (30, 30)
    num_angles: int = 100
    carrier_frequency: float = 30e9
    height: float = 0.0
    bs_height: float | None = None
    num_nlos: int = 2
    nlos_power_db: float = -6.0
    los_probability: float = 1.0

    @property
    def wavelength(self) -> float:
        """[m]."""
        return SPEED_OF_LIGHT / self.carrier_frequency

    def bs_position(self) -> FloatArray:
        """``[bs, 3]`` [m], at ``bs_height`` (None: the users' ``height``)."""
        z = self.height if self.bs_height is None else self.bs_height
        return np.array([[x, y, z] for x, y in self.bs_xy])

    def bs_orientation(self) -> FloatArray:
        """``[bs, 3]`` (yaw, pitch, roll) [rad]: yaw towards the area's centre."""
        centre = np.mean(np.asarray(self.area), axis=0)
        d = centre - self.bs_position()[:, :2]
        return np.stack([np.arctan2(d[:, 1], d[:, 0]), np.zeros(len(d)), np.zeros(len(d))], -1)

    def bs_array(self) -> ArrayGeometry:
        """The BSs' half-wavelength ULA along the local y axis."""
        half = self.wavelength / 2
        return ArrayGeometry(planar_array_positions(1, self.num_bs_antennas,
                                                    vertical_spacing_m=half,
                                                    horizontal_spacing_m=half),
                             1, self.num_bs_antennas)

    def problem(self) -> DirectLocalizationProblem:
        """The dictionaries of eq. (2) on the setting's grid."""
        return DirectLocalizationProblem.build(
            bs_position=self.bs_position(), bs_orientation=self.bs_orientation(),
            element_positions=self.bs_array().element_positions, wavelength=self.wavelength,
            area=self.area, grid_shape=self.grid_shape, ue_height=self.height,
            num_angles=self.num_angles)

    def paths(self, ue_position: npt.ArrayLike, rng: np.random.Generator) -> DaunPaths:
        """Eq. (1)'s paths of users at ``ue_position [sample, 3]`` [m]."""
        p = np.atleast_2d(np.asarray(ue_position, dtype=np.float64))
        bs, yaw = self.bs_position(), self.bs_orientation()
        n, M, L = len(p), len(bs), self.num_nlos
        gain = np.zeros((n, M, 1 + L), dtype=np.complex128)
        azimuth = np.zeros((n, M, 1 + L))
        zenith = np.full((n, M, 1 + L), np.pi / 2)
        h = np.zeros((n, M, self.num_bs_antennas), dtype=np.complex128)
        los = rng.uniform(size=(n, M)) < self.los_probability
        nlos_amplitude = 10 ** (self.nlos_power_db / 20)
        for m in range(M):
            r = self.bs_array().world_positions(yaw[m])
            d = p - bs[m]
            azimuth[:, m, 0] = np.arctan2(d[:, 1], d[:, 0])
            zenith[:, m, 0] = np.arctan2(np.hypot(d[:, 0], d[:, 1]), d[:, 2])
            phase = np.exp(1j * rng.uniform(0, 2 * np.pi, size=(n, 1 + L)))
            azimuth[:, m, 1:] = yaw[m, 0] + rng.uniform(-np.pi / 2, np.pi / 2, size=(n, L))
            gain[:, m, 0] = los[:, m] * phase[:, 0]
            gain[:, m, 1:] = nlos_amplitude * phase[:, 1:]
            a = steering_vector(r, azimuth[:, m], zenith[:, m], self.wavelength)
            h[:, m] = np.einsum("nl,nla->na", gain[:, m], a)
        return DaunPaths(gain, azimuth, zenith, los, h)

    def channels(
        self, ue_position: npt.ArrayLike, rng: np.random.Generator
    ) -> tuple[ComplexArray, BoolArray]:
        """Eq. (1)'s ``h_m``: ``[sample, bs, bs_ant]`` and which BSs have the LOS
        ``[sample, bs]``, for users at ``ue_position [sample, 3]`` [m]."""
        paths = self.paths(ue_position, rng)
        return paths.channel, paths.los

    def positions(self, count: int, rng: np.random.Generator) -> FloatArray:
        """``count`` user positions uniform in the area, at ``height``: ``[count, 3]``."""
        (x0, y0), (x1, y1) = self.area
        xy = rng.uniform((x0, y0), (x1, y1), size=(count, 2))
        return np.column_stack([xy, np.full(count, self.height)])

    def _at_snr(self, paths: DaunPaths, snr_db: npt.ArrayLike) -> DaunPaths:
        """The paths scaled to eq. (1)'s ``sqrt(ω) h_m``: every BS's channel at mean power
        ``ω = 10^(snr_db/10)`` per element (``snr_db`` scalar or ``[sample]``)."""
        power = np.mean(np.abs(paths.channel) ** 2, axis=-1)  # [sample, bs]
        omega = 10 ** (np.asarray(snr_db, dtype=np.float64) / 10)
        factor = np.sqrt(np.reshape(omega, (-1, 1)) / np.where(power > 0, power, 1.0))
        return paths.scaled(np.where(power > 0, factor, 0.0))

    def batch(
        self, snr_db: npt.ArrayLike, rng: np.random.Generator
    ) -> tuple[ComplexArray, FloatArray]:
        """Training/test batch in eq. (1)'s form: ``y [sample, bs, bs_ant]`` at SNR
        ``snr_db [sample]`` (unit noise, as :meth:`observation`), and the positions
        ``[sample, 3]`` [m]. Arrays rather than an ``Observation``: a training set of
        thousands of samples would carry an identity combiner per sample."""
        snr = np.asarray(snr_db, dtype=np.float64)
        p = self.positions(len(snr), rng)
        h = self._at_snr(self.paths(p, rng), snr).channel
        return h + complex_normal(rng, h.shape, 1.0), p

    def observation(
        self, n: int, rng: np.random.Generator, snr_db: float
    ) -> tuple[Observation, tuple[ChannelTruth, ...]]:
        """``n`` users at random positions, one per snapshot of an uplink
        :class:`Observation` (one subcarrier, identity combining, unit pilots, unit
        noise variance, SNR ``ω`` per BS; ``snr_db = inf``: unit power per element and no
        noise), and each BS's true paths.

        Returns
        -------
        The observation (its service area: the setting's ``area`` at ``height``, so the
        grid localizers' defaults search the paper's area) and one :class:`ChannelTruth`
        per BS (LOS first; the NLOS paths have arrival angles only: their delays,
        departures and scatterers are NaN).
        """
        noiseless = bool(np.isinf(snr_db)) and snr_db > 0
        p = self.positions(n, rng)
        paths = self._at_snr(self.paths(p, rng), 0.0 if noiseless else snr_db)
        cfr = paths.channel[:, :, None, :, None]  # [snapshot, bs, ue_ant, bs_ant, subcarrier]
        obs = build_observation(
            cfr, frequencies=np.zeros(1), carrier_frequency=self.carrier_frequency,
            bs_position=self.bs_position(), bs_orientation=self.bs_orientation(),
            bs_array=self.bs_array(), ue_array=ArrayGeometry(np.zeros((1, 3)), 1, 1), rng=rng,
            link="uplink", precoder="identity", combiner="identity", pilots="ones",
            noise_variance=0.0 if noiseless else 1.0)
        obs = dataclasses.replace(obs, service_area=ServiceArea(self.area, self.height))
        return obs, tuple(self._truth(paths, p, m) for m in range(len(self.bs_xy)))

    def _truth(self, paths: DaunPaths, ue_position: FloatArray, m: int) -> ChannelTruth:
        n, _, num_paths = paths.gain.shape
        distance = np.linalg.norm(ue_position - self.bs_position()[m], axis=-1)
        tau = np.full((n, num_paths), np.nan)
        tau[:, 0] = distance / SPEED_OF_LIGHT
        aoa = np.stack([paths.azimuth[:, m], paths.zenith[:, m]], axis=-1)
        aod = np.full_like(aoa, np.nan)
        aod[:, 0] = np.stack([wrap_angle(paths.azimuth[:, m, 0] + np.pi),
                              np.pi - paths.zenith[:, m, 0]], -1)
        valid = np.ones((n, num_paths), dtype=bool)
        valid[:, 0] = paths.los[:, m]
        return ChannelTruth(gain=paths.gain[:, m], tau=tau, aod=aod, aoa=aoa, valid=valid,
                            los=paths.los[:, m].copy(), ue_position=ue_position,
                            scatterer=np.full((n, num_paths, 3), np.nan))


def small() -> DaunScenario:
    """The paper's setting with 8-element ULAs (the conformance test's: ``cvx-direct``
    solves problem (3) exactly in seconds per snapshot, ~15 s at 50 elements). DAUN runs
    on it with the shipped ``paper-small`` checkpoint, trained for this geometry
    (``scripts/daun/checkpoints.py``)."""
    return DaunScenario(num_bs_antennas=8)
