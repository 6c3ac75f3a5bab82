"""DAUN's direct-localization model (Fan, Liu, Li, Huang, §II): the forward model its
estimators and baselines run on (the paper's synthetic setting is
:mod:`estimators.daun.scenario`).

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

from estimators.arrays import area_grid, rotation_matrix, steering_vector
from estimators.types import Observation
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
    divided by its pilot ``s``) and the noise variance of that ``y``, ``σ² / |s|²``
    ``[snapshot, bs]`` [W] (the observation's own where the pilot has unit power)."""
    k = int(np.argmin(np.abs(obs.frequencies)))
    pilot = obs.pilots[0, k]
    return obs.y[:, :, :, 0, k] / pilot, obs.noise_variance / np.abs(pilot) ** 2
