"""SLAB (Zhou, Liu, Lau 2019): the long-term Cramér-Rao bound of Lemma 1 and the BFR cost.

Signal model: :mod:`estimators.slab.model` (eqs. 1-19). Unknowns of one time slot:
``β[k] = [α; h[k]]`` with ``α = [x; ϑ; v] ∈ R^{2JL+3}`` (long-term) and the complex fading
``h[k] ∈ C^{J(L+1)}`` (``h`` ordered ``vec[h_{l,j}]``, ``l`` fastest). The FIMs here are
of the *real* vector ``[α; Re h; Im h]`` (Kay I, eq. 15.52: ``(2/σ²) Re{D^H D}``):

* instantaneous (eqs. 47-48): ``J(α, h; ω) = (2/σ²) Re{D^H D}``, ``D = ∂(G(α; ω) h)/∂[α;
  Re h; Im h]``;
* long-term (eqs. 20, 55): its average over ``h ~ CN(0, Σ)``. The α-h cross terms are
  linear in ``h`` and vanish; the α block is ``(2/σ²) Re Σ_obs Σ_{l,l'} Σ_{l'l}
  (∂G_l/∂α)^H ∂G_{l'}/∂α`` (the paper's ``σ^{-2} Σ K Σ K^H``), the h block does not
  depend on ``h`` (the paper's ``σ^{-2} G^H G``). Lemma 1 (Jensen): ``E_h{J^{-1}} ⪰
  (E_h J)^{-1}``, the long-term CRLB.

With ``Re h, Im h`` as separate real parameters, the trace of the CRLB's h block is the
total ``E‖ĥ - h‖²``, i.e. the trace of the paper's complex-form ``σ² (G^H G)^{-1}``; the
α block is the real part (times 2) of the paper's complex-form ``σ^{-2} K Σ K^H``, which is
the FIM of a *real* ``α`` (the extracted eq. 20 lost the ``2 Re``).

Derivatives (eqs. 49-53) are the chain rule through the path parameters:
``∂μ/∂α = μ · (-j2π f_n ∂τ/∂α + j κ_U (r - c_U) cos θ_U ∂θ_U/∂α - j κ_B (t - c_B) cos θ_B
∂θ_B/∂α)``, ``κ = 2π d/λ_n``, ``c = (N-1)/2``, with the planar geometry's ``∂(τ, θ_B,
θ_U)/∂(x, ϑ, v)`` in closed form (:func:`path_parameter_jacobian`). The extracted eqs.
(50)-(53) are garbled (the ``arccos`` form, a dropped ``φ_j``, mixed ``N_C``/``N'_C``); the
chain rule above is their content, pinned against finite differences in the tests.

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: Lemma 1 and (20),
normalised CRLB (23), Appendix A (47)-(55).
S. M. Kay, Fundamentals of Statistical Signal Processing I, 1993: eq. (15.52).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT
from estimators.fisher import crlb as invert_fim
from estimators.fisher import error_bound, gaussian_fim
from estimators.slab.model import (
    SlabGeometry,
    SlabSystem,
    arrival_vectors,
    azimuth,
    coefficient_matrix,
    departure_vectors,
    horizontal_lengths,
    path_parameters,
    path_responses,
    slant,
)
from estimators.types import Truth, bs_truth
from estimators.typing import ComplexArray, FloatArray

#: Index of ``τ``, ``θ_B``, ``θ_U`` in the path-parameter axis of the Jacobians.
TAU, AOD, AOA = 0, 1, 2
#: [m] a truth's single-bounce point within this of the height range between the UE and
#: its BS counts as a vertical-wall bounce (:func:`truth_paths`); a ground bounce at 0 m
#: under a UE at >= 1 m does not.
_BOUNCE_HEIGHT_TOL_M = 0.25


# ------------------------------------------------------------------ derivatives


def _perpendicular(vector: FloatArray) -> FloatArray:
    """``(-v_y, v_x)`` of ``[..., 2]``."""
    return np.stack([-vector[..., 1], vector[..., 0]], axis=-1)


def azimuth_gradient(vector: FloatArray) -> FloatArray:
    """``∂ atan2(v_y, v_x) / ∂v = (-v_y, v_x) / ‖v‖²`` ``[..., 2]`` [rad/m]."""
    return np.asarray(_perpendicular(vector) / np.sum(vector**2, axis=-1, keepdims=True))


def path_parameter_jacobian(geometry: SlabGeometry) -> FloatArray:
    """``∂(τ, θ_B, θ_U)/∂α`` of every path (eqs. 5-10 differentiated).

    LOS (``d = x - u_j``): ``∂τ/∂x = d̂/c``, ``∂θ_B/∂x = ∂θ_U/∂x = d^⊥/‖d‖²``.
    NLOS (``a = v - u_j``, ``b = x - v``): ``∂τ/∂x = b̂/c``, ``∂τ/∂v = (â - b̂)/c``,
    ``∂θ_B/∂v = a^⊥/‖a‖²``, ``∂θ_U/∂x = b^⊥/‖b‖² = -∂θ_U/∂v``; ``∂θ_U/∂ϑ = -1``;
    ``w^⊥ = (-w_y, w_x)``.

    Returns
    -------
    ``[bs, path, 3, alpha]`` float64 [s/m, rad/m, rad/rad], path-parameter axis
    ``(τ, θ_B, θ_U)``.
    """
    J, P, L = geometry.num_bs, geometry.num_paths, geometry.num_nlos
    out = np.zeros((J, P, 3, geometry.num_alpha))
    departure = departure_vectors(geometry)  # BS -> UE (LOS) or scatterer
    arrival = arrival_vectors(geometry)      # UE -> BS (LOS) or scatterer
    arrival_unit = arrival / np.linalg.norm(arrival, axis=-1, keepdims=True)
    # The UE end of every path: τ grows along -arr, θ_U = az(arr) with arr = s - x.
    out[:, :, AOA, 2] = -1.0
    out[:, :, TAU, :2] = -arrival_unit / SPEED_OF_LIGHT
    out[:, :, AOA, :2] = -azimuth_gradient(arrival)
    direct = [p for p in (0, L + 1) if p < P]  # LOS, ground: departure at the UE too
    out[:, direct, AOD, :2] = azimuth_gradient(departure[:, direct])
    # v_{l,j} (l = nlos + 1) is α[3 + 2 (j L + nlos)] and the next.
    bs, nlos = np.meshgrid(np.arange(J), np.arange(L), indexing="ij")  # [bs, nlos]
    path, cols = (nlos + 1)[..., None], (3 + 2 * (bs * L + nlos))[..., None] + np.arange(2)
    bs = bs[..., None]
    scattered = departure[:, 1:L + 1]
    out[bs, path, TAU, cols] = (scattered / np.linalg.norm(scattered, axis=-1, keepdims=True)
                                + arrival_unit[:, 1:L + 1]) / SPEED_OF_LIGHT
    out[bs, path, AOD, cols] = azimuth_gradient(scattered)
    out[bs, path, AOA, cols] = azimuth_gradient(arrival[:, 1:L + 1])
    return _with_heights(geometry, out)


def _with_heights(geometry: SlabGeometry, planar: FloatArray) -> FloatArray:
    """The planar Jacobian ``[bs, path, 3, alpha]`` (of ``D / c`` and the azimuths) turned
    into that of the model's ``τ = φ / c`` and cone angles ``θ`` for BSs ``Δh ≠ 0`` above
    the UE (:func:`~estimators.slab.model.slant`): with ``g = D / φ``, ``∂τ = g ∂(D/c)``
    and ``cos θ ∂θ = g cos(az) ∂az + sin(az) (Δh² / φ³) c ∂(D/c)``."""
    dh = geometry.path_heights  # [bs, path]
    if not np.any(dh):
        return planar
    out = planar.copy()
    horizontal = horizontal_lengths(geometry)  # [bs, path]
    length, g = slant(horizontal, dh)
    p = path_parameters(geometry)  # cone angles
    relative = {AOD: azimuth(departure_vectors(geometry)) - geometry.bs_orientation[:, None],
                AOA: azimuth(arrival_vectors(geometry)) - geometry.ue_yaw}
    d_horizontal = SPEED_OF_LIGHT * planar[:, :, TAU, :]  # [bs, path, alpha]
    tilt = (dh**2 / np.maximum(length, 1e-300) ** 3)[..., None]
    out[:, :, TAU, :] = g[..., None] * planar[:, :, TAU, :]
    for axis, cone in ((AOD, p.aod), (AOA, p.aoa)):
        az = relative[axis][..., None]
        d_sine = (g[..., None] * np.cos(az) * planar[:, :, axis, :]
                  + np.sin(az) * tilt * d_horizontal)
        cos = np.cos(cone)[..., None]
        safe = np.where(np.abs(cos) > 1e-12, cos, np.where(cos < 0, -1e-12, 1e-12))
        out[:, :, axis, :] = np.where(dh[..., None] != 0, d_sine / safe,
                                      planar[:, :, axis, :])
    out[:, :, TAU, :] = np.where(dh[..., None] != 0, out[:, :, TAU, :],
                                 planar[:, :, TAU, :])
    return out


def response_jacobian(
    system: SlabSystem, geometry: SlabGeometry, responses: ComplexArray | None = None
) -> ComplexArray:
    """``∂μ^{(r,t)}_{l,j,n}/∂α`` (eqs. 49-53 in chain-rule form: module docstring).

    Parameters
    ----------
    system, geometry : the known system and the point ``α`` of the derivative.
    responses : ``[bs, subcarrier, ue_ant, bs_ant, path]``, :func:`path_responses` at
        ``geometry`` (computed if not given).

    Returns
    -------
    ``[bs, subcarrier, ue_ant, bs_ant, path, alpha]`` complex128.
    """
    mu = path_responses(system, geometry) if responses is None else responses
    p = path_parameters(geometry)
    T = path_parameter_jacobian(geometry)
    kappa_u = 2 * np.pi * system.ue_spacing / system.wavelengths  # [bs, subcarrier]
    kappa_b = 2 * np.pi * system.bs_spacing / system.wavelengths
    off_u = np.arange(system.num_ue_antennas) - (system.num_ue_antennas - 1) / 2
    off_b = np.arange(system.num_bs_antennas) - (system.num_bs_antennas - 1) / 2
    # Log-derivatives, axes [bs, subcarrier, ue_ant, bs_ant, path, alpha].
    delay_rate = (-2j * np.pi * system.frequencies[:, :, None, None, None, None]
                  * T[:, None, None, None, :, TAU, :])
    aoa_rate = (1j * kappa_u[:, :, None, None, None, None] * off_u[None, None, :, None, None, None]
                * (np.cos(p.aoa)[:, :, None] * T[:, :, AOA, :])[:, None, None, None, :, :])
    aod_rate = (-1j * kappa_b[:, :, None, None, None, None] * off_b[None, None, None, :, None, None]
                * (np.cos(p.aod)[:, :, None] * T[:, :, AOD, :])[:, None, None, None, :, :])
    return np.asarray(mu[..., None] * (delay_rate + aoa_rate + aod_rate))


# ------------------------------------------------------------------------ FIMs


@dataclass(frozen=True)
class SlabFisher:
    """The beamformer-independent parts of the FIMs at one geometry.

    ``responses [bs, subcarrier, ue_ant, bs_ant, path]`` (eq. 19 with ``√(N_B N_U)``),
    ``jacobian [..., path, alpha]`` their derivatives, ``gain_covariance [bs, path, path]``
    ``Σ`` per BS, ``noise_variance`` ``σ²`` [W]. Build with :meth:`at`.
    """

    responses: ComplexArray
    jacobian: ComplexArray
    gain_covariance: ComplexArray
    noise_variance: float

    @classmethod
    def at(
        cls, *, system: SlabSystem, geometry: SlabGeometry, gain_covariance: npt.ArrayLike,
        noise_variance: float,
    ) -> SlabFisher:
        """Responses and their ``α``-derivatives at ``geometry``."""
        mu = path_responses(system, geometry)
        cov = np.asarray(gain_covariance, dtype=np.complex128)
        if cov.shape != (geometry.num_bs, geometry.num_paths, geometry.num_paths):
            raise ValueError(f"gain_covariance: expected [bs, path, path], got {cov.shape}")
        return cls(responses=mu, jacobian=response_jacobian(system, geometry, mu),
                   gain_covariance=cov, noise_variance=float(noise_variance))

    @property
    def num_alpha(self) -> int:
        return int(self.jacobian.shape[-1])

    @property
    def num_gains(self) -> int:
        """``J (L + 1)`` complex gains."""
        return int(self.responses.shape[0] * self.responses.shape[-1])

    def coefficient_jacobian(self, beamformers: npt.ArrayLike) -> ComplexArray:
        """``∂G/∂α`` ``[bs, ue_ant, beam, subcarrier, path, alpha]`` for BF vectors
        ``[bs, bs_ant, beam, subcarrier]``."""
        w = np.asarray(beamformers, dtype=np.complex128)
        return np.asarray(np.einsum("bkrtpa,btmk->brmkpa", self.jacobian, w))

    def gain_jacobian(self, beamformers: npt.ArrayLike) -> ComplexArray:
        """``∂g/∂[Re h; Im h]`` ``[observation, 2 J (L+1)]``: ``[G, jG]`` with ``G`` block
        diagonal over BSs (eq. 14), observations ordered ``[bs, ue_ant, beam, subcarrier]``."""
        G = coefficient_matrix(self.responses, beamformers)  # [bs, r, m, k, path]
        J, P = G.shape[0], G.shape[-1]
        per_bs = G.reshape(J, -1, P)
        blocks = np.zeros((J, per_bs.shape[1], J, P), dtype=np.complex128)
        for j in range(J):
            blocks[j, :, j, :] = per_bs[j]
        full = blocks.reshape(J * per_bs.shape[1], J * P)
        return np.concatenate([full, 1j * full], axis=1)

    def long_term(self, beamformers: npt.ArrayLike) -> FloatArray:
        """Long-term FIM ``E_h{J(α, h; ω)}`` of ``[α; Re h; Im h]`` (eqs. 20, 55).

        Returns ``[2JL + 3 + 2J(L+1)]²`` float64, block diagonal (α | h).
        """
        dG = self.coefficient_jacobian(beamformers)
        # E[h_p^* h_q] = Σ[q, p] within each BS (BSs occupy disjoint observations).
        alpha_block = 2.0 / self.noise_variance * np.real(
            np.einsum("brmkpa,bqp,brmkqc->ac", dG.conj(), self.gain_covariance, dG))
        alpha_block = (alpha_block + alpha_block.T) / 2  # symmetric to the last bit
        gain_block = gaussian_fim(self.gain_jacobian(beamformers), self.noise_variance)
        n = self.num_alpha
        fim = np.zeros((n + gain_block.shape[0],) * 2)
        fim[:n, :n] = alpha_block
        fim[n:, n:] = gain_block
        return fim

    def instantaneous(self, beamformers: npt.ArrayLike, gains: npt.ArrayLike) -> FloatArray:
        """FIM ``J(α, h; ω)`` of ``[α; Re h; Im h]`` at one fading realisation (eq. 48).

        ``gains [bs, path]`` complex ``h[k]``. Returns ``[2JL + 3 + 2J(L+1)]²`` float64.
        """
        h = np.asarray(gains, dtype=np.complex128)
        d_alpha = np.einsum("brmkpa,bp->brmka", self.coefficient_jacobian(beamformers), h)
        jac = np.concatenate([d_alpha.reshape(-1, self.num_alpha),
                              self.gain_jacobian(beamformers)], axis=1)
        return gaussian_fim(jac, self.noise_variance)


# ----------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class SlabBound:
    """CRLB of ``[α; Re h; Im h]`` and what SLAB reads off it.

    ``crlb [n, n]`` (NaN where the FIM is singular), ``num_alpha = 2JL + 3``,
    ``num_bs = J``, ``num_nlos = L``.
    """

    crlb: FloatArray
    num_alpha: int
    num_bs: int
    num_nlos: int

    @classmethod
    def from_fim(cls, fim: npt.ArrayLike, *, num_bs: int, num_nlos: int) -> SlabBound:
        """Invert a FIM of ``[α; Re h; Im h]`` (eq. 47; scaled inversion)."""
        return cls(crlb=invert_fim(fim), num_alpha=2 * num_bs * num_nlos + 3, num_bs=num_bs,
                   num_nlos=num_nlos)

    @property
    def alpha_crlb(self) -> FloatArray:
        """``𝔅_α`` ``[2JL + 3]²``, the location block (footnote 3, eq. 27)."""
        return self.crlb[: self.num_alpha, : self.num_alpha]

    @property
    def gain_crlb(self) -> FloatArray:
        """``𝔅_h`` ``[2J(L+1)]²`` on ``[Re h; Im h]``."""
        return self.crlb[self.num_alpha :, self.num_alpha :]

    @property
    def alpha_trace(self) -> float:
        """``trace 𝔅_α`` [m², rad²] (mixed units, as the paper's cost)."""
        return float(np.trace(self.alpha_crlb))

    @property
    def gain_trace(self) -> float:
        """``trace 𝔅_h`` = bound on ``E‖ĥ - h‖²``."""
        return float(np.trace(self.gain_crlb))

    @property
    def position_error_bound(self) -> float:
        """``sqrt(var x + var y)`` [m]."""
        return error_bound(self.crlb, [0, 1])

    @property
    def orientation_error_bound(self) -> float:
        """``sqrt(var ϑ)`` [rad]."""
        return error_bound(self.crlb, [2])

    @property
    def scatterer_error_bound(self) -> FloatArray:
        """``[bs, nlos]`` [m], ``sqrt(var v_x + var v_y)`` of every scatterer."""
        out = np.empty((self.num_bs, self.num_nlos))
        for j in range(self.num_bs):
            for q in range(self.num_nlos):
                start = 3 + 2 * (j * self.num_nlos + q)
                out[j, q] = error_bound(self.crlb, [start, start + 1])
        return out


def long_term_bound(beamformers: npt.ArrayLike, *, fisher: SlabFisher) -> SlabBound:
    """Long-term CRLB ``𝔅̄_β(α, Σ; ω)`` of Lemma 1 (eq. 20) for BF vectors
    ``[bs, bs_ant, beam, subcarrier]``."""
    J = fisher.gain_covariance.shape[0]
    L = (fisher.jacobian.shape[-1] - 3) // (2 * J)
    return SlabBound.from_fim(fisher.long_term(beamformers), num_bs=J, num_nlos=L)


def normalized_cost(
    beamformers: npt.ArrayLike, *, fisher: SlabFisher, reference: SlabBound
) -> float:
    """The BFR cost: trace of the normalised long-term CRLB (eq. 23).

    ``trace 𝔅_α(ω) / trace 𝔅_α(w[0]) + trace 𝔅_h(ω) / trace 𝔅_h(w[0])``, with
    ``reference`` the long-term bound at the initial BF ``w[0]`` (:func:`long_term_bound`),
    so both blocks weigh alike whatever their units; 2 at ``ω = w[0]``. ``inf`` where the
    FIM is singular.
    """
    bound = long_term_bound(beamformers, fisher=fisher)
    cost = bound.alpha_trace / reference.alpha_trace + bound.gain_trace / reference.gain_trace
    return float(cost) if np.isfinite(cost) else float("inf")


# ------------------------------------------------------------ from a channel truth


@dataclass(frozen=True)
class TruthPaths:
    """The model's view of one snapshot of a :data:`~estimators.types.Truth`.

    ``geometry`` the BS poses with the true ``α`` (the plane: heights dropped);
    ``gains [bs, path]`` complex, the truth's gain of each model path (the LOS, then the
    ``L`` strongest single-bounce paths of the BS), per antenna pair.
    """

    geometry: SlabGeometry
    gains: ComplexArray


def truth_paths(
    truth: Truth, t: int, *, bs_position: npt.ArrayLike, bs_orientation: npt.ArrayLike,
    num_nlos: int, ground_height: float | None = None,
) -> TruthPaths | str:
    """The LOS and ``num_nlos`` single-bounce paths of every BS at snapshot ``t``, or why
    the truth does not have them (a string).

    Per BS ``j`` (:func:`~estimators.types.bs_truth`): its path 0 where ``los[t]``, and
    its ``L`` strongest valid paths with a single-bounce point (``scatterer`` finite) on a
    vertical surface: the point's height between the UE's and the BS's (within
    ``_BOUNCE_HEIGHT_TOL_M``), as a wall bounce's is; a ground or ceiling bounce is no
    scatterer of the model's (its length is not the image of the planar one). The
    geometry's ``height_offset`` is the BSs' height above the true UE.

    Parameters
    ----------
    truth : one :class:`~estimators.types.ChannelTruth` per BS (BS 0's ``ue_position``
        and ``ue_orientation[t, 0]``, the UE's yaw ``ϑ``, are used).
    t : the snapshot.
    bs_position : ``[bs, 3]`` [m], the ``J`` BSs of the model.
    bs_orientation : ``[bs]`` [rad], their yaws ``φ_j``.
    num_nlos : ``L``.
    ground_height : [m] where given, a ground bounce per BS is modelled (last path): the
        truth's strongest single bounce below both ends (gain 0 where there is none).
    """
    u = np.asarray(bs_position, dtype=np.float64)
    J = u.shape[0]
    per_bs = []
    for j in range(J):
        try:
            per_bs.append(bs_truth(truth, j))
        except IndexError:
            return f"the truth has no paths of BS {j}"
    first = per_bs[0]
    if first.ue_orientation is None:
        return "the truth has no UE orientation"
    ground = ground_height is not None
    gains = np.zeros((J, num_nlos + 1 + int(ground)), dtype=np.complex128)
    scatterers = np.empty((J, num_nlos, 2))
    for j, bs in enumerate(per_bs):
        if not (bs.los[t] and bs.valid[t, 0]):
            return f"no LOS path from BS {j}"
        single = bs.valid[t] & np.all(np.isfinite(bs.scatterer[t]), axis=-1)
        z_ue = float(first.ue_position[t, 2])
        low, high = sorted((z_ue, float(u[j, 2]) if u.shape[1] > 2 else z_ue))
        with np.errstate(invalid="ignore"):
            z = bs.scatterer[t, :, 2]
            single &= (z >= low - _BOUNCE_HEIGHT_TOL_M) & (z <= high + _BOUNCE_HEIGHT_TOL_M)
        single[0] = False
        if ground:
            with np.errstate(invalid="ignore"):
                below = (bs.valid[t] & np.all(np.isfinite(bs.scatterer[t]), axis=-1)
                         & (bs.scatterer[t, :, 2] < low - _BOUNCE_HEIGHT_TOL_M))
            below[0] = False
            if below.any():
                gains[j, -1] = bs.gain[t, below][np.argmax(np.abs(bs.gain[t, below]))]
        nlos = np.flatnonzero(single)
        if nlos.size < num_nlos:
            return (f"BS {j} has {nlos.size} single-bounce paths in the truth, the model "
                    f"{num_nlos}")
        strongest = nlos[np.argsort(-np.abs(bs.gain[t, nlos]), kind="stable")[:num_nlos]]
        gains[j, : num_nlos + 1] = bs.gain[t, np.concatenate([[0], strongest])]
        scatterers[j] = bs.scatterer[t, strongest, :2]
    geometry = SlabGeometry(
        bs_position=u[:, :2].copy(), bs_orientation=np.asarray(bs_orientation, np.float64),
        ue_position=np.asarray(first.ue_position[t, :2], dtype=np.float64),
        ue_yaw=float(first.ue_orientation[t, 0]), scatterers=scatterers,
        height_offset=(u[:, 2] - float(first.ue_position[t, 2])) if u.shape[1] > 2 else None,
        ground_offset=(u[:, 2] + float(first.ue_position[t, 2]) - 2.0 * ground_height)
        if ground_height is not None and u.shape[1] > 2 else None)
    return TruthPaths(geometry=geometry, gains=gains)
