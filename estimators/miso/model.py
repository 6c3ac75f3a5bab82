"""The MISO forward model the estimators and the bound run on (Fascista et al.).

A BS with an ``N``-element array sends ``M`` beams (precoders ``F``) of OFDM pilots
``s``; a single-antenna UE receives, per beam ``m`` and subcarrier ``k``,

    y[m, k] = Σ_p α_p exp(-j 2π f_k τ_p) a(θ_p)^T F[:, m] s[m, k] + n[m, k],

with ``a(θ)`` the BS steering vector (:func:`estimators.arrays.steering_vector`, the
twin's convention), ``τ_p`` the time of flight and ``θ_p`` the angle of departure of
path ``p`` (path 0 the LOS). Derivations: ``docs/estimators/miso.md``.

References
----------
A. Fascista, A. Coluccia, H. Wymeersch, G. Seco-Granados, "Downlink single-snapshot
localization and mapping with a single-antenna receiver", IEEE Trans. Wireless Commun.,
2021: channel and received signal eqs. (1)-(4), compressed likelihood (28)-(29),
single-path model (31).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import direction_angles, steering_vector, unit_direction
from estimators.types import Observation
from estimators.typing import ComplexArray, FloatArray


def height_zenith(lengths: npt.ArrayLike, height_drop: float) -> FloatArray:
    """Departure zenith [rad] of paths of (unfolded) length ``lengths [...]`` [m] from a
    BS ``height_drop`` [m] above the UE, bouncing only off vertical surfaces.

    The 2-D model with known heights: such a path unfolds into a straight line from the
    BS to the UE's image at the UE's height, so ``cos θ = -Δh / (c τ)`` for every path
    (π/2, the paper's plane, for ``Δh = 0``; lengths shorter than ``|Δh|`` are clipped
    to straight down or up).
    """
    r = np.asarray(lengths, dtype=np.float64)
    if height_drop == 0:
        return np.full(r.shape, np.pi / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.clip(-height_drop / r, -1.0, 1.0)
    return np.asarray(np.arccos(np.where(np.isfinite(cosine), cosine, -np.sign(height_drop))))


def ground_bounce(bs_position: FloatArray, los: FloatArray,
                  ground_height: float) -> FloatArray:
    """The ground bounce ``(c τ [m], azimuth, zenith [rad])`` of the LOS ``los = (c τ_0,
    azimuth_0, zenith_0)`` from the BS at ``bs_position [3]`` [m] off a horizontal ground
    at ``ground_height`` [m] (the image method).

    The UE at ``p = b + c τ_0 u(θ_0)`` mirrored through the ground, ``p' = (p_x, p_y,
    2 h_g - p_z)``: the bounce leaves the BS towards ``p'`` along ``|p' - b|``, at the
    LOS's azimuth. Outside the paper's model (its reflectors are scatterers in free
    space), but the geometry of its single bounce (eq. 33) with the scatterer on the
    ground: pinned by the LOS, it adds one complex gain and no geometric unknown.
    """
    b = np.asarray(bs_position, dtype=np.float64)
    ue = b + los[0] * unit_direction(los[1], los[2])
    image = np.array([ue[0], ue[1], 2.0 * ground_height - ue[2]])
    v = image - b
    azimuth, zenith = direction_angles(v)
    return np.array([float(np.linalg.norm(v)), float(azimuth), float(zenith)])


@dataclass(frozen=True)
class MisoSnapshot:
    """One snapshot of one BS of a MISO observation: everything the model needs.

    Attributes
    ----------
    y : ``[beam, subcarrier]`` complex, the received pilots (eq. 4).
    precoders : ``[bs_ant, beam]`` complex, ``F``.
    pilots : ``[beam, subcarrier]`` complex, ``s``.
    frequencies : ``[subcarrier]`` [Hz], baseband offsets ``f_k``.
    element_positions : ``[bs_ant, 3]`` [m], the BS elements rotated into the world frame.
    bs_position : ``[3]`` [m].
    wavelength : [m].
    noise_variance : ``σ²`` per complex sample [W].
    """

    y: ComplexArray
    precoders: ComplexArray
    pilots: ComplexArray
    frequencies: FloatArray
    element_positions: FloatArray
    bs_position: FloatArray
    wavelength: float
    noise_variance: float

    @classmethod
    def from_observation(cls, obs: Observation, t: int, bs: int) -> MisoSnapshot:
        """Snapshot ``t`` of BS ``bs`` of a single-antenna downlink observation."""
        return cls(
            y=obs.y[t, bs, 0], precoders=obs.precoders[t, bs], pilots=obs.pilots,
            frequencies=obs.frequencies,
            element_positions=obs.bs_array.world_positions(obs.bs_orientation[bs]),
            bs_position=obs.bs_position[bs], wavelength=obs.wavelength,
            noise_variance=float(obs.noise_variance[t, bs]),
        )

    def beam_response(self, azimuth: npt.ArrayLike, zenith: npt.ArrayLike) -> ComplexArray:
        """``a(θ)^T F`` (eq. 2 through the precoders).

        Parameters
        ----------
        azimuth, zenith : ``[...]`` [rad], departure directions.

        Returns
        -------
        ``[..., beam]`` complex.
        """
        a = steering_vector(self.element_positions, azimuth, zenith, self.wavelength)
        return np.asarray(a @ self.precoders)

    def atoms(self, tau: FloatArray, azimuth: FloatArray, zenith: FloatArray) -> ComplexArray:
        """Unit-gain path responses ``g_p[m, k]`` (eq. 31 with ``α = 1``).

        Parameters
        ----------
        tau : ``[path]`` [s]; azimuth, zenith : ``[path]`` [rad].

        Returns
        -------
        ``[path, beam, subcarrier]`` complex.
        """
        delay = np.exp(-2j * np.pi * np.asarray(tau)[:, None] * self.frequencies)
        response = self.beam_response(azimuth, zenith)
        return np.asarray(response[:, :, None] * delay[:, None, :] * self.pilots[None])

    def noiseless(self, gains: ComplexArray, tau: FloatArray, azimuth: FloatArray,
                  zenith: FloatArray) -> ComplexArray:
        """The mean of ``y`` (eq. 4 without noise): ``[beam, subcarrier]`` complex, for
        ``gains [path]`` complex and the paths' ``tau`` [s] and angles [rad]."""
        return np.asarray(np.tensordot(gains, self.atoms(tau, azimuth, zenith), axes=1))

    def fit_gains(self, atoms: ComplexArray, y: ComplexArray | None = None) -> ComplexArray:
        """Least-squares path gains ``α̂ = G^+ y`` (the minimiser in eq. 29).

        Parameters
        ----------
        atoms : ``[path, beam, subcarrier]`` complex, from :meth:`atoms`.
        y : ``[beam, subcarrier]``; the received pilots if None.

        Returns
        -------
        ``[path]`` complex128.
        """
        basis = atoms.reshape(atoms.shape[0], -1)
        target = (self.y if y is None else y).ravel()
        gains, *_ = np.linalg.lstsq(basis.T, target, rcond=None)
        return np.asarray(gains, dtype=np.complex128)

    def joint_cost(
        self, tau: FloatArray, azimuth: FloatArray, zenith: FloatArray,
        y: ComplexArray | None = None,
    ) -> float:
        """Compressed negative log-likelihood ``||y - G α̂||²`` (eqs. 28-29).

        With one path it is the single-path cost ``L_SP`` (eq. 31).

        Parameters
        ----------
        tau : ``[path]`` [s]; azimuth, zenith : ``[path]`` [rad].
        y : ``[beam, subcarrier]``, a residual to fit instead of the received pilots.
        """
        basis = self.atoms(tau, azimuth, zenith).reshape(len(tau), -1)
        target = (self.y if y is None else y).ravel()
        gram = basis.conj() @ basis.T
        projection = basis.conj() @ target
        try:
            gains = np.linalg.solve(gram, projection)
        except np.linalg.LinAlgError:
            # Coinciding paths: nothing is explained, the cost is the whole energy.
            return float(np.vdot(target, target).real)
        return float(np.vdot(target, target).real - np.vdot(projection, gains).real)
