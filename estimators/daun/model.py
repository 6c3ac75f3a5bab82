"""DAUN's direct-localization model (Fan, Liu, Li, Huang, §II), and its synthetic setting.

``M`` BSs with ``N``-element arrays at known poses hear a single-antenna user's
narrowband uplink pilot (eq. 1): ``y_m = sqrt(ω) h_m s + n_m``, ``h_m`` one LOS path and
``P_m`` NLOS paths. On a grid of ``K`` candidate user positions and ``L`` candidate
angles, ``y_m = A_m x_m + B_m z_m + n_m`` (eq. 2): ``A_m [N, K]`` holds the LOS array
response from every grid point, ``B_m [N, L]`` the responses of a uniform angle grid.

Choices where the paper is silent (documented in docs/estimators/daun.md):

* **3-D geometry.** ``A_m``'s columns are the steering vectors towards grid points at the
  user's known height (the paper's model is planar; BSs above the users make the 2-D
  angle a biased model of a real array).
* **Angle grid.** ``B_m``: ``L`` azimuths uniform over the BS's front half-plane
  ``yaw_m + [-π/2, π/2)``, horizontal. A ULA sees only the cone angle to its axis, so
  these cover every arrival direction, whatever its elevation.
* **Scaling.** Each ``A_m`` and ``B_m`` is divided by its spectral norm, so the
  linearised steps of eqs. (9)–(10) are stable for ``τ1, τ2 ≤ 1`` (the paper's P-ADMM
  uses ``τ1 = τ2 = 0.5``, which needs such a scaling), and each sample's ``y`` is
  scaled to ``‖y‖₂² = M`` (scale-free input: one set of parameters serves every SNR
  and path loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import (
    SPEED_OF_LIGHT,
    area_grid,
    planar_array_positions,
    rotation_matrix,
    steering_vector,
)
from estimators.observe import build_observation
from estimators.types import ArrayGeometry, Observation
from estimators.typing import ComplexArray, FloatArray


@dataclass(frozen=True)
class DirectLocalizationProblem:
    """The dictionaries of eq. (2), scaled to unit spectral norm per BS, and the geometry
    behind them (for the baselines that steer off the grids).

    Attributes
    ----------
    A : ``[bs, bs_ant, grid]`` complex128, LOS responses from the grid points.
    B : ``[bs, bs_ant, angle]`` complex128, responses of the angle grid.
    grid_points : ``[grid, 3]`` [m], :func:`area_grid`'s cell centres.
    angles : ``[bs, angle]`` [rad], azimuths of ``B``'s columns.
    bs_position : ``[bs, 3]`` [m].
    element_positions : ``[bs, bs_ant, 3]`` [m], world-rotated, relative to the BS.
    bs_yaw : ``[bs]`` [rad], the centre of each BS's angle range.
    wavelength : [m].
    ue_height : [m].
    cell_size : ``[2]`` [m], the grid's spacing along x and y.
    """

    A: ComplexArray
    B: ComplexArray
    grid_points: FloatArray
    angles: FloatArray
    bs_position: FloatArray
    element_positions: FloatArray
    bs_yaw: FloatArray
    wavelength: float
    ue_height: float
    cell_size: FloatArray

    @property
    def num_bs(self) -> int:
        return int(self.A.shape[0])

    @property
    def centre(self) -> FloatArray:
        """``[2]`` [m], the centre of the grid's area (horizontal)."""
        return np.asarray((self.grid_points[:, :2].min(0) + self.grid_points[:, :2].max(0)) / 2)

    def points(self, m: int, azimuth: npt.ArrayLike, distance: float) -> FloatArray:
        """``[..., 3]`` [m]: the points at the user's height seen from BS ``m`` at
        ``azimuth [...]`` [rad] and horizontal ``distance`` [m]."""
        phi = np.asarray(azimuth, dtype=np.float64)
        b = self.bs_position[m]
        return np.stack([b[0] + distance * np.cos(phi), b[1] + distance * np.sin(phi),
                         np.full(phi.shape, self.ue_height)], axis=-1)

    def steering(self, m: int, points: npt.ArrayLike) -> ComplexArray:
        """``[..., bs_ant]``: BS ``m``'s unit-modulus response to a user at ``points
        [..., 3]`` [m] (far field, as :func:`estimators.arrays.steering_vector`)."""
        d = np.asarray(points, dtype=np.float64) - self.bs_position[m]
        u = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return np.exp(2j * np.pi / self.wavelength * (u @ self.element_positions[m].T))

    @staticmethod
    def dictionary_bytes(num_bs: int, num_antennas: int, num_grid_points: int,
                         num_angles: int) -> float:
        """Bytes a built problem holds for ``num_bs`` BSs of ``num_antennas`` elements,
        ``num_grid_points`` ``K`` and ``num_angles`` ``L``: ``A`` and ``B`` (complex128,
        ``M N (K + L)``) and the grid points; linear in ``K`` and in ``L``."""
        return (16.0 * num_bs * num_antennas * (num_grid_points + num_angles)
                + 24.0 * num_grid_points)

    @staticmethod
    def memory_bytes(num_bs: int, num_antennas: int, num_grid_points: int,
                     num_angles: int) -> float:
        """Peak bytes of :meth:`build` (arguments as :meth:`dictionary_bytes`); linear in
        ``K`` and in ``L`` (``memory_bytes(M, N, K, 0)`` is the grid's share). Measured
        (tracemalloc) within 2% from 4 to 50 antennas, 900 to 90000 points.

        At the end the per-BS dictionaries and their stacked copies coexist (complex128,
        ``2 M N (K + L)``) with the last BS's unscaled ones (``N (K + L)``); the grid
        points, their offsets from that BS and their angles add 64 bytes a point.
        """
        K, L = num_grid_points, num_angles
        return 16.0 * num_antennas * (K + L) * (2 * num_bs + 1) + 64.0 * K

    @classmethod
    def build(
        cls,
        *,
        bs_position: npt.ArrayLike,
        bs_orientation: npt.ArrayLike,
        element_positions: npt.ArrayLike,
        wavelength: float,
        area: npt.ArrayLike,
        grid_shape: tuple[int, int],
        ue_height: float,
        num_angles: int,
    ) -> DirectLocalizationProblem:
        """Dictionaries for BSs at ``bs_position [bs, 3]`` [m] with orientations
        ``[bs, 3]`` (yaw, pitch, roll) [rad], all with the local array
        ``element_positions [bs_ant, 3]`` [m], on the :func:`area_grid` of ``area``,
        ``grid_shape`` at ``ue_height`` [m], and ``num_angles`` azimuths."""
        bs = np.asarray(bs_position, dtype=np.float64)
        orientation = np.asarray(bs_orientation, dtype=np.float64)
        local = np.asarray(element_positions, dtype=np.float64)
        points = area_grid(area, grid_shape, ue_height)
        offsets = np.arange(num_angles) / num_angles * np.pi - np.pi / 2
        A, B, angles, rotated = [], [], [], []
        for m in range(len(bs)):
            r = local @ rotation_matrix(orientation[m]).T
            d = points - bs[m]
            azimuth = np.arctan2(d[:, 1], d[:, 0])
            zenith = np.arctan2(np.hypot(d[:, 0], d[:, 1]), d[:, 2])
            a = steering_vector(r, azimuth, zenith, wavelength).T  # [N, K]
            phi = orientation[m, 0] + offsets
            b = steering_vector(r, phi, np.full(num_angles, np.pi / 2), wavelength).T
            A.append(a / np.linalg.norm(a, 2))
            B.append(b / np.linalg.norm(b, 2))
            angles.append(phi)
            rotated.append(r)
        (x0, y0), (x1, y1) = np.asarray(area, dtype=np.float64)
        return cls(np.stack(A), np.stack(B), points, np.stack(angles), bs, np.stack(rotated),
                   orientation[:, 0].copy(), float(wavelength), float(ue_height),
                   np.array([(x1 - x0) / grid_shape[0], (y1 - y0) / grid_shape[1]]))


def normalise(y: npt.ArrayLike) -> ComplexArray:
    """``y [..., bs, bs_ant]`` scaled to ``‖y‖₂² = bs`` per sample (zero stays zero)."""
    v = np.asarray(y, dtype=np.complex128)
    power = np.sum(np.abs(v) ** 2, axis=(-2, -1), keepdims=True) / v.shape[-2]
    return np.where(power > 0, v / np.sqrt(np.where(power > 0, power, 1.0)), 0)


def narrowband_uplink(obs: Observation) -> tuple[ComplexArray, FloatArray]:
    """An uplink observation with identity combining and one UE antenna, reduced to
    DAUN's eq. (1): ``y [snapshot, bs, bs_ant]`` (the subcarrier nearest the carrier,
    divided by its pilot) and ``noise_variance [snapshot, bs]`` [W]."""
    k = int(np.argmin(np.abs(obs.frequencies)))
    y = obs.y[:, :, :, 0, k] / obs.pilots[0, k]
    return y, obs.noise_variance


@dataclass(frozen=True)
class DaunScenario:
    """The paper's setting (§IV) with the eq. (1) channel.

    Four BSs at ``(±50, ±50)`` m with 50-element half-wavelength ULAs facing the area's
    centre, a 40 × 40 m area, ``K = 30 × 30`` grid, ``L = 100`` angles, 30 GHz. BSs and
    user at the same height (the paper's planar model). Each BS sees the LOS path with
    probability ``los_probability`` (a BS without it is the case Algorithm 1 is for) and
    ``num_nlos`` NLOS paths with arrival azimuths uniform over its front half-plane and
    power ``nlos_power_db`` each relative to the LOS, random phases. The issue's paper
    figures use 3GPP UMa channels instead (the dataset engine's statistical mode).
    """

    bs_xy: tuple[tuple[float, float], ...] = ((-50.0, -50.0), (-50.0, 50.0), (50.0, 50.0),
                                              (50.0, -50.0))
    num_bs_antennas: int = 50
    area: tuple[tuple[float, float], tuple[float, float]] = ((-20.0, -20.0), (20.0, 20.0))
    grid_shape: tuple[int, int] = (30, 30)
    num_angles: int = 100
    carrier_frequency: float = 30e9
    height: float = 0.0
    num_nlos: int = 2
    nlos_power_db: float = -6.0
    los_probability: float = 1.0

    @property
    def wavelength(self) -> float:
        return SPEED_OF_LIGHT / self.carrier_frequency

    def bs_position(self) -> FloatArray:
        return np.array([[x, y, self.height] for x, y in self.bs_xy])

    def bs_orientation(self) -> FloatArray:
        """Yaw towards the area's centre."""
        centre = np.mean(np.asarray(self.area), axis=0)
        d = centre - self.bs_position()[:, :2]
        return np.stack([np.arctan2(d[:, 1], d[:, 0]), np.zeros(len(d)), np.zeros(len(d))], -1)

    def bs_array(self) -> ArrayGeometry:
        half = self.wavelength / 2
        return ArrayGeometry(planar_array_positions(1, self.num_bs_antennas,
                                                    vertical_spacing_m=half,
                                                    horizontal_spacing_m=half),
                             1, self.num_bs_antennas)

    def problem(self) -> DirectLocalizationProblem:
        return DirectLocalizationProblem.build(
            bs_position=self.bs_position(), bs_orientation=self.bs_orientation(),
            element_positions=self.bs_array().element_positions, wavelength=self.wavelength,
            area=self.area, grid_shape=self.grid_shape, ue_height=self.height,
            num_angles=self.num_angles)

    def channels(
        self, ue_position: npt.ArrayLike, rng: np.random.Generator
    ) -> tuple[ComplexArray, npt.NDArray[np.bool_]]:
        """Eq. (1)'s ``h_m``: ``[sample, bs, bs_ant]`` and which BSs have the LOS
        ``[sample, bs]``, for users at ``ue_position [sample, 3]`` [m]."""
        p = np.atleast_2d(np.asarray(ue_position, dtype=np.float64))
        bs, yaw = self.bs_position(), self.bs_orientation()
        n, M, L = len(p), len(bs), self.num_nlos
        h = np.zeros((n, M, self.num_bs_antennas), dtype=np.complex128)
        los = rng.uniform(size=(n, M)) < self.los_probability
        for m in range(M):
            r = self.bs_array().world_positions(yaw[m])
            d = p - bs[m]
            a_los = steering_vector(r, np.arctan2(d[:, 1], d[:, 0]),
                                    np.arctan2(np.hypot(d[:, 0], d[:, 1]), d[:, 2]),
                                    self.wavelength)
            phase = np.exp(1j * rng.uniform(0, 2 * np.pi, size=(n, 1 + L)))
            azimuth = yaw[m, 0] + rng.uniform(-np.pi / 2, np.pi / 2, size=(n, L))
            a_nlos = steering_vector(r, azimuth, np.full((n, L), np.pi / 2), self.wavelength)
            nlos_amplitude = 10 ** (self.nlos_power_db / 20)
            h[:, m] = (los[:, m, None] * phase[:, :1] * a_los
                       + nlos_amplitude * np.einsum("nl,nla->na", phase[:, 1:], a_nlos))
        return h, los

    def positions(self, count: int, rng: np.random.Generator) -> FloatArray:
        """``count`` user positions uniform in the area, at ``height``: ``[count, 3]``."""
        (x0, y0), (x1, y1) = self.area
        xy = rng.uniform((x0, y0), (x1, y1), size=(count, 2))
        return np.column_stack([xy, np.full(count, self.height)])

    def sample(
        self, snr_db: float, num_trials: int, rng: np.random.Generator
    ) -> tuple[Observation, FloatArray]:
        """``num_trials`` users at random positions, one per snapshot of an uplink
        :class:`Observation` (one subcarrier, identity combining, SNR per BS), and their
        positions ``[trial, 3]`` [m]."""
        p = self.positions(num_trials, rng)
        h, _ = self.channels(p, rng)
        cfr = h[:, :, None, :, None]  # [trial, bs, ue_ant=1, bs_ant, subcarrier=1]
        obs = build_observation(
            cfr, frequencies=np.zeros(1), carrier_frequency=self.carrier_frequency,
            bs_position=self.bs_position(), bs_orientation=self.bs_orientation(),
            bs_array=self.bs_array(), ue_array=ArrayGeometry(np.zeros((1, 3)), 1, 1), rng=rng,
            link="uplink", precoder="identity", combiner="identity", pilots="ones",
            snr_db=snr_db)
        return obs, p

    def batch(
        self, snr_db: npt.ArrayLike, rng: np.random.Generator
    ) -> tuple[ComplexArray, FloatArray]:
        """Training/test batch in eq. (1)'s form: ``y [sample, bs, bs_ant]`` with unit
        noise variance and SNR ``snr_db [sample]`` (per BS, as :meth:`sample`), and the
        positions ``[sample, 3]`` [m]."""
        snr = np.asarray(snr_db, dtype=np.float64)
        p = self.positions(len(snr), rng)
        h, _ = self.channels(p, rng)
        power = np.mean(np.abs(h) ** 2, axis=-1, keepdims=True)
        h = h / np.sqrt(np.where(power > 0, power, 1.0)) * np.sqrt(10 ** (snr / 10))[:, None,
                                                                                       None]
        noise = (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)) / np.sqrt(2)
        return h + noise, p


def los_position_error_bound(
    problem: DirectLocalizationProblem,
    ue_position: npt.ArrayLike,
    los_gain: npt.ArrayLike,
    noise_variance: float,
) -> float:
    """Horizontal position error bound [m] of eq. (1) with the LOS path alone.

    ``y_m = α_m a_m(p) + n_m``, ``n_m ~ CN(0, σ² I)``, unknowns the horizontal position
    ``p`` (height known) and one complex gain ``α_m`` per BS, for the BSs and arrays of
    ``problem``. FIM ``(2/σ²) Re{D^H D}`` (:func:`estimators.fisher.gaussian_fim`) with
    ``∂a_n/∂p = j (2π/λ) a_n (I − u u^T) r_n / d`` (``u`` the unit vector from the BS to
    the user, ``d`` the distance); the bound is ``sqrt(trace)`` of the CRLB's position
    block. NLOS paths, absent from this model, would only add nuisance parameters, so it
    is the bound of the LOS-only channel; DAUN's paper gives none.

    ``los_gain [bs]`` complex (a zero gain: that BS carries no information).
    """
    from estimators.fisher import crlb, error_bound, gaussian_fim

    p = np.asarray(ue_position, dtype=np.float64)
    gain = np.asarray(los_gain, dtype=np.complex128)
    M, N = problem.element_positions.shape[:2]
    k = 2 * np.pi / problem.wavelength
    jacobian = np.zeros((M * N, 2 + 2 * M), dtype=np.complex128)
    for m in range(M):
        r = problem.element_positions[m]
        d = p - problem.bs_position[m]
        distance = float(np.linalg.norm(d))
        u = d / distance
        a = np.exp(1j * k * (r @ u))
        projected = (r - np.outer(r @ u, u)) / distance  # (I - u u^T) r_n / d, [N, 3]
        rows = slice(m * N, (m + 1) * N)
        jacobian[rows, :2] = (gain[m] * 1j * k * a)[:, None] * projected[:, :2]
        jacobian[rows, 2 + 2 * m] = a
        jacobian[rows, 3 + 2 * m] = 1j * a
    informative = np.concatenate([[True, True], np.repeat(np.abs(gain) > 0, 2)])
    fim = gaussian_fim(jacobian[:, informative], noise_variance)
    return error_bound(crlb(fim), [0, 1])
