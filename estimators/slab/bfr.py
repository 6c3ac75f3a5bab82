"""SLAB's beamforming refinement (BFR, Zhou, Liu, Lau 2019, §V, Algorithm 3).

BFR picks the next slot's training BF vectors by minimising the normalised long-term
CRLB κ (23) at the current location estimate, s.t. ``‖ω_j[n, m]‖ ≤ 1`` (problem
(28)-(29)). :class:`BfrProblem` holds κ, its gradient (46) and the feature matrices
(39)-(40), (60)-(63) at one estimate: the long-term FIM (38), (55) is linear in the
per-(BS, subcarrier) beam covariances, so κ is convex in them and
:meth:`BfrProblem.lower_bound` certifies how far any beams are from the global minimum.
:func:`slab_bfr` is Algorithm 3: principal-eigenvector candidates (41)-(43), phase
aligned, the feasible direction (42) and the Armijo step (44)-(45). The baselines GD-BFR
and LMI-BFR: :mod:`estimators.slab.baselines`. Derivation (the feature matrices, the
phase alignment the descent proof (67)-(69) needs, the convexity and the certificate):
docs/estimators/slab.md, "BFR".

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: (23), (28)-(29), (38),
(39)-(46), (55), (60)-(69), Algorithm 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.slab.bound import SlabBound, SlabFisher
from estimators.slab.model import SlabGeometry, SlabSystem
from estimators.typing import ComplexArray, FloatArray

#: ``callback(index, beamformers, cost)`` of the iterative BFRs.
IterateCallback = Callable[[int, ComplexArray, float], None]

#: A beam norm within this of 1 counts as full power (no normalisation entry in the history).
_UNIT_NORM_ATOL = 1e-12


# ------------------------------------------------------------------- the problem


def beam_covariance(beamformers: npt.ArrayLike) -> ComplexArray:
    """``S_{j,n} = Σ_m ω_j[n, m] ω_j[n, m]^H``.

    Parameters
    ----------
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, ``ω_j[n, m]``.

    Returns
    -------
    S : ``[bs, subcarrier, bs_ant, bs_ant]`` complex128, Hermitian PSD.
    """
    w = np.asarray(beamformers, dtype=np.complex128)
    return np.asarray(np.einsum("bsmk,btmk->bkst", w, w.conj()))


def beam_norms(beamformers: npt.ArrayLike) -> FloatArray:
    """``‖ω_j[n, m]‖`` ``[bs, beam, subcarrier]`` of ``[bs, bs_ant, beam, subcarrier]``."""
    return np.asarray(np.linalg.norm(np.asarray(beamformers), axis=1))


def full_power(beamformers: npt.ArrayLike) -> ComplexArray:
    """Every beam scaled to unit norm (eq. 29 active); raises ``ValueError`` on a zero beam."""
    w = np.asarray(beamformers, dtype=np.complex128)
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("beamformers: a zero beam has no direction")
    return np.asarray(w / norms)


def project_to_ball(beamformers: npt.ArrayLike) -> ComplexArray:
    """Euclidean projection of every beam onto ``‖ω_j[n, m]‖ ≤ 1`` (eq. 29)."""
    w = np.asarray(beamformers, dtype=np.complex128)
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return np.asarray(w / np.maximum(norms, 1.0))


@dataclass(frozen=True)
class FeatureMatrices:
    """The BFR feature matrices at one BF point (eqs. 40, 60, 61).

    Attributes
    ----------
    localization : ``[bs, subcarrier, bs_ant, bs_ant]`` complex128, ``𝔊^α_{j,n}`` (eq. 60).
    channel : ``[bs, subcarrier, bs_ant, bs_ant]`` complex128, ``𝔊^h_{j,n}`` (eq. 61).
    cost : κ at that point (eq. 23).
    bound : the long-term CRLB there.
    """

    localization: ComplexArray
    channel: ComplexArray
    cost: float
    bound: SlabBound

    @property
    def total(self) -> ComplexArray:
        """``𝔊_{j,n} = 𝔊^α_{j,n} + 𝔊^h_{j,n}`` (eq. 40), Hermitian PSD."""
        return np.asarray(self.localization + self.channel)


def feature_trace(features: ComplexArray, covariance: ComplexArray) -> ComplexArray:
    """``Σ_{t,s} K[b,k,x,y,t,s] S[b,k,s,t]`` ``[bs, subcarrier, x, y]``: a feature matrix
    ``features [bs, subcarrier, x, y, bs_ant, bs_ant]`` (:class:`BfrProblem`) traced
    against beam covariances ``covariance [bs, subcarrier, bs_ant, bs_ant]``, as one
    batched product over ``(bs, subcarrier)`` (the FIM is linear in ``S``, eq. 55)."""
    b, k, x, y, t, _ = features.shape
    flat = covariance.transpose(0, 1, 3, 2).reshape(b, k, t * t, 1)
    return np.asarray((features.reshape(b, k, x * y, t * t) @ flat).reshape(b, k, x, y))


@dataclass(frozen=True)
class BfrProblem:
    """Problem (28)-(29) at one location estimate: κ(ω) of eq. (23) and its derivatives.

    Build with :meth:`at` (from a :class:`~estimators.slab.bound.SlabFisher` at ``ᾱ[k]``) or
    :meth:`at_estimate` (from ``ᾱ[k]`` itself).

    Attributes
    ----------
    alpha_features : ``[bs, subcarrier, alpha, alpha, bs_ant, bs_ant]`` complex128,
        ``K^α`` (FIM units per unit beam power):
        ``J_α = Re Σ_{j,n} Σ_{t,s} K^α[j,n,:,:,t,s] S_{j,n}[s,t]``.
    gain_features : ``[bs, subcarrier, path, path, bs_ant, bs_ant]`` complex128, ``K^h``:
        ``A_j = G_j^H G_j = Σ_n Σ_{t,s} K^h[j,n,:,:,t,s] S_{j,n}[s,t]``.
    noise_variance : ``σ²`` [W].
    alpha_reference, gain_reference : ``trace 𝔅_α(ᾱ, Σ; w[0])`` and ``trace 𝔅_h(ᾱ, Σ;
        w[0])``, the normalisers of eq. (23).
    """

    alpha_features: ComplexArray
    gain_features: ComplexArray
    noise_variance: float
    alpha_reference: float
    gain_reference: float

    # ------------------------------------------------------------------ builders

    @classmethod
    def at(
        cls, *, fisher: SlabFisher, reference_beamformers: npt.ArrayLike | None = None,
        reference: SlabBound | None = None,
    ) -> BfrProblem:
        """The problem at the geometry ``fisher`` was built at (the estimate ``ᾱ[k]``).

        Parameters
        ----------
        fisher : responses and their ``α``-derivatives at ``ᾱ[k]``, with ``Σ`` and ``σ²``.
        reference_beamformers : ``[bs, bs_ant, beam, subcarrier]``, the initial BF ``w[0]``
            of eq. (23); its bound is computed at ``fisher``'s geometry.
        reference : the bound at ``w[0]`` directly (instead of ``reference_beamformers``).
        """
        if (reference is None) == (reference_beamformers is None):
            raise ValueError("give exactly one of reference_beamformers and reference")
        sigma2 = fisher.noise_variance
        jac, mu, cov = fisher.jacobian, fisher.responses, fisher.gain_covariance
        # K^α[b,k,a,c,t,s] = (2/σ²) Σ_{r,p,q} Σ[b,q,p] conj(J[b,k,r,t,p,a]) J[b,k,r,s,q,c]
        weighted = np.einsum("bqp,bkrsqc->bkrspc", cov, jac)
        k_alpha = 2.0 / sigma2 * np.einsum("bkrtpa,bkrspc->bkacts", jac.conj(), weighted,
                                           optimize=True)
        k_gain = np.einsum("bkrtp,bkrsq->bkpqts", mu.conj(), mu, optimize=True)
        problem = cls(alpha_features=np.ascontiguousarray(k_alpha),
                      gain_features=np.ascontiguousarray(k_gain), noise_variance=sigma2,
                      alpha_reference=1.0, gain_reference=1.0)
        if reference is None:
            assert reference_beamformers is not None  # checked above
            reference = problem.bound(reference_beamformers)
        bound = reference
        return cls(alpha_features=problem.alpha_features, gain_features=problem.gain_features,
                   noise_variance=sigma2, alpha_reference=bound.alpha_trace,
                   gain_reference=bound.gain_trace)

    @classmethod
    def at_estimate(
        cls, alpha: npt.ArrayLike, *, system: SlabSystem, geometry: SlabGeometry,
        gain_covariance: npt.ArrayLike, noise_variance: float,
        reference_beamformers: npt.ArrayLike,
    ) -> BfrProblem:
        """The problem at a location estimate ``alpha = ᾱ[k]`` ``[2JL + 3]`` [m, rad, m].

        ``geometry`` gives the known BS poses (its ``α`` is replaced); ``gain_covariance``
        ``[bs, path, path]`` is ``Σ`` (known in the paper, footnote 6), ``noise_variance``
        ``σ²`` [W], ``reference_beamformers`` the ``w[0]`` of eq. (23).
        """
        fisher = SlabFisher.at(system=system, geometry=geometry.with_alpha(alpha),
                               gain_covariance=gain_covariance, noise_variance=noise_variance)
        return cls.at(fisher=fisher, reference_beamformers=reference_beamformers)

    # ------------------------------------------------------------------- shapes

    @property
    def num_bs(self) -> int:
        return int(self.alpha_features.shape[0])

    @property
    def num_alpha(self) -> int:
        return int(self.alpha_features.shape[2])

    @property
    def num_paths(self) -> int:
        """``L + 1``."""
        return int(self.gain_features.shape[2])

    # --------------------------------------------------------------- FIM, bound

    def fim(self, beamformers: npt.ArrayLike) -> FloatArray:
        """Long-term FIM of ``[α; Re h; Im h]`` (eqs. 38, 55), the same matrix as
        :meth:`SlabFisher.long_term`, through ``S_{j,n}``.

        Returns ``[2JL + 3 + 2J(L+1)]²`` float64, block diagonal (α | h).
        """
        return self.fim_of_covariance(beam_covariance(beamformers))

    def fim_of_covariance(self, covariance: npt.ArrayLike) -> FloatArray:
        """The FIM as a function of ``S`` ``[bs, subcarrier, bs_ant, bs_ant]``: linear."""
        S = np.asarray(covariance, dtype=np.complex128)
        f_alpha = np.real(feature_trace(self.alpha_features, S).sum(axis=(0, 1)))
        f_alpha = (f_alpha + f_alpha.T) / 2
        gram = feature_trace(self.gain_features, S).sum(axis=1)
        J, P, n = self.num_bs, self.num_paths, self.num_alpha
        A = np.zeros((J * P, J * P), dtype=np.complex128)
        for j in range(J):
            A[j * P:(j + 1) * P, j * P:(j + 1) * P] = gram[j]
        A = (A + A.conj().T) / 2
        f_gain = 2.0 / self.noise_variance * np.block([[A.real, -A.imag], [A.imag, A.real]])
        fim = np.zeros((n + 2 * J * P,) * 2)
        fim[:n, :n] = f_alpha
        fim[n:, n:] = f_gain
        return fim

    def bound(self, beamformers: npt.ArrayLike) -> SlabBound:
        """Long-term CRLB ``𝔅̄_β(ᾱ, Σ; ω)`` (eq. 20) at these BF vectors."""
        return SlabBound.from_fim(self.fim(beamformers), num_bs=self.num_bs,
                                  num_nlos=(self.num_alpha - 3) // (2 * self.num_bs))

    def _cost_of_bound(self, bound: SlabBound) -> float:
        cost = bound.alpha_trace / self.alpha_reference + bound.gain_trace / self.gain_reference
        return float(cost) if np.isfinite(cost) else float("inf")

    def cost(self, beamformers: npt.ArrayLike) -> float:
        """κ(ω), the trace of the normalised long-term CRLB (eq. 23); ``inf`` where the FIM
        is singular."""
        return self._cost_of_bound(self.bound(beamformers))

    def cost_of_covariance(self, covariance: npt.ArrayLike) -> float:
        """κ as a function of the beam covariances ``S`` (the relaxed problem's cost)."""
        bound = SlabBound.from_fim(self.fim_of_covariance(covariance), num_bs=self.num_bs,
                                   num_nlos=(self.num_alpha - 3) // (2 * self.num_bs))
        return self._cost_of_bound(bound)

    def direction_cost(self, beamformers: npt.ArrayLike) -> float:
        """``κ̃(ω) = κ(ω_j[n,m]/‖ω_j[n,m]‖)``: the cost of the beam directions at full power."""
        return self.cost(full_power(beamformers))

    # --------------------------------------------------------- feature matrices

    def features(self, beamformers: npt.ArrayLike) -> FeatureMatrices:
        """Feature matrices ``𝔊^α_{j,n}``, ``𝔊^h_{j,n}`` at ``w_[i]`` (eqs. 40, 60, 61).

        Raises ``np.linalg.LinAlgError`` where the FIM is singular (no bound to expand).
        """
        return self.features_of_covariance(beam_covariance(beamformers))

    def features_of_covariance(self, covariance: npt.ArrayLike) -> FeatureMatrices:
        """:meth:`features` at beam covariances ``S`` ``[bs, subcarrier, bs_ant, bs_ant]``."""
        bound = SlabBound.from_fim(self.fim_of_covariance(covariance), num_bs=self.num_bs,
                                   num_nlos=(self.num_alpha - 3) // (2 * self.num_bs))
        if not np.all(np.isfinite(bound.crlb)):
            raise np.linalg.LinAlgError("singular FIM: the BFR cost has no gradient here")
        b_alpha, b_gain = bound.alpha_crlb, bound.gain_crlb
        w_alpha = b_alpha @ b_alpha / self.alpha_reference
        w_gain = b_gain @ b_gain / self.gain_reference
        n = w_gain.shape[0] // 2
        omega = (w_gain[:n, :n] + w_gain[n:, n:]
                 + 1j * (w_gain[n:, :n] - w_gain[:n, n:]))  # E W_h E^H, E = [I, jI]
        J, P = self.num_bs, self.num_paths
        omega_bs = np.stack([omega[j * P:(j + 1) * P, j * P:(j + 1) * P] for j in range(J)])
        b, k, n, _, t, _ = self.alpha_features.shape
        loc = (w_alpha.reshape(1, 1, 1, -1) @ self.alpha_features.reshape(b, k, n * n, t * t)
               ).reshape(b, k, t, t)
        p = self.num_paths
        chan = 2.0 / self.noise_variance * (
            omega_bs.transpose(0, 2, 1).reshape(b, 1, 1, p * p)
            @ self.gain_features.reshape(b, k, p * p, t * t)).reshape(b, k, t, t)
        return FeatureMatrices(localization=_hermitian(loc), channel=_hermitian(chan),
                               cost=self._cost_of_bound(bound), bound=bound)

    def lower_bound(self, covariance: npt.ArrayLike, num_beams: int) -> float:
        """A certified lower bound on min κ over all feasible BF vectors, from any point.

        κ is convex in the beam covariances, so for any ``S̄`` (feasible or not)
        ``κ(S) ≥ κ(S̄) - Σ_{j,n} Re tr(𝔊_{j,n}(S̄) (S - S̄))``; minimised over ``S ⪰ 0,
        trace S ≤ M`` (which contains every ``Σ_m ω ω^H`` with ``‖ω‖ ≤ 1``) this gives
        ``κ(S̄) - Σ_{j,n} (M λ_max(𝔊_{j,n}) - Re tr(𝔊_{j,n} S̄))`` (the Frank-Wolfe duality
        gap). At unit-norm beams the gap is ``Σ_{j,n,m} (λ_max(𝔊_{j,n}) - ω^H 𝔊_{j,n} ω)``:
        zero exactly where every beam is a principal eigenvector, SLAB's fixed points.

        Parameters
        ----------
        covariance : ``[bs, subcarrier, bs_ant, bs_ant]``, ``S̄`` (e.g. :func:`beam_covariance`).
        num_beams : ``M``.
        """
        S = np.asarray(covariance, dtype=np.complex128)
        feats = self.features_of_covariance(S)
        return feats.cost - _duality_gap(feats.total, S, num_beams)

    def optimality_gap(self, beamformers: npt.ArrayLike) -> float:
        """``κ(ω) - lower_bound(S(ω))`` ≥ ``κ(ω) - min κ``: how far ``beamformers``
        ``[bs, bs_ant, beam, subcarrier]`` are from the global minimum, at most."""
        w = np.asarray(beamformers, dtype=np.complex128)
        S = beam_covariance(w)
        return _duality_gap(self.features_of_covariance(S).total, S, w.shape[2])

    def gradient(self, beamformers: npt.ArrayLike) -> tuple[float, ComplexArray]:
        """κ and its gradient ``∇_{ω_j[n,m]} κ = -2 𝔊_{j,n} ω_j[n,m]``.

        Returns
        -------
        cost : κ (eq. 23).
        gradient : ``[bs, bs_ant, beam, subcarrier]`` complex128, ``∂κ/∂Re ω + j ∂κ/∂Im ω``
            (``dκ = Re{∇^H dω}``).
        """
        w = np.asarray(beamformers, dtype=np.complex128)
        feats = self.features(w)
        return feats.cost, _gradient(feats.total, w)

    def direction_gradient(self, beamformers: npt.ArrayLike) -> tuple[float, ComplexArray]:
        """``κ̃`` and its gradient, the paper's eq. (46):
        ``-2 (‖ω‖² I - ω ω^H) 𝔊_{j,n} ω / ‖ω‖⁴`` per beam (same packing as :meth:`gradient`).
        """
        w = np.asarray(beamformers, dtype=np.complex128)
        feats = self.features(full_power(w))
        Gw = np.einsum("bkts,bsmk->btmk", feats.total, w)
        norm2 = np.sum(np.abs(w) ** 2, axis=1, keepdims=True)
        along = np.sum(w.conj() * Gw, axis=1, keepdims=True)  # ω^H 𝔊 ω
        return feats.cost, np.asarray(-2.0 * (norm2 * Gw - w * along) / norm2**2)


def _gradient(features: ComplexArray, beamformers: ComplexArray) -> ComplexArray:
    """``-2 𝔊_{j,n} ω_j[n,m]`` ``[bs, bs_ant, beam, subcarrier]``."""
    return np.asarray(-2.0 * np.einsum("bkts,bsmk->btmk", features, beamformers))


def _duality_gap(features: ComplexArray, covariance: ComplexArray, num_beams: int) -> float:
    """``Σ_{j,n} (M λ_max(𝔊_{j,n}) - Re tr(𝔊_{j,n} S_{j,n}))`` (:meth:`BfrProblem.lower_bound`)."""
    top = np.clip(np.linalg.eigvalsh(features)[..., -1], 0.0, None)
    used = np.real(np.einsum("bkts,bkst->bk", features, covariance))
    return float(np.sum(num_beams * top - used))


def _hermitian(x: npt.ArrayLike) -> ComplexArray:
    """Hermitian part of ``[..., N, N]``."""
    a = np.asarray(x, dtype=np.complex128)
    return np.asarray((a + np.conj(np.swapaxes(a, -1, -2))) / 2)


# ------------------------------------------------------------------------ results


@dataclass(frozen=True)
class BfrResult:
    """One BFR run.

    Attributes
    ----------
    method : ``"slab-bfr"``, ``"gd-bfr"`` or ``"lmi-bfr"``.
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex128, the refined ``w[k+1]``,
        ``‖ω_j[n, m]‖ ≤ 1``.
    cost_history : float64, κ (eq. 23) at the given start, after the start's
        normalisation to full power (slab-bfr) or projection onto the unit balls (gd-bfr)
        where that changed the beams, and after every iteration; ``[start, extracted]``
        for lmi-bfr.
    step_history : ``[iteration]`` float64, the accepted step lengths (empty for lmi-bfr).
    iterations : BFR iterations (``lmi-bfr``: the SDP solver's).
    converged : whether the certified gap reached ``tolerance`` (lmi-bfr: the solver's
        status is ``"optimal"``).
    optimality_gap : at the returned beams, ``κ - lower bound`` (:meth:`BfrProblem.
        optimality_gap`): κ exceeds the global minimum of (28)-(29) by at most this.
    runtime_s : wall time [s].
    """

    method: str
    beamformers: ComplexArray
    cost_history: FloatArray
    step_history: FloatArray
    iterations: int
    converged: bool
    optimality_gap: float
    runtime_s: float

    @property
    def cost(self) -> float:
        """Final κ."""
        return float(self.cost_history[-1])

    @property
    def gain(self) -> float:
        """BFR gain: initial over optimised normalised CRLB trace (κ(w[0]) / κ(w[k+1]))."""
        return float(self.cost_history[0] / self.cost_history[-1])


# ------------------------------------------------------------------ SLAB's BFR


def _unit_principal_eigenvectors(features: ComplexArray) -> ComplexArray:
    """``[bs, subcarrier, bs_ant]``: the unit eigenvector of the largest eigenvalue of every
    ``𝔊_{j,n}`` — one batched ``eigh`` over all BSs and subcarriers (eq. 43)."""
    _, vectors = np.linalg.eigh(features)
    return np.asarray(vectors[..., -1])


@dataclass(frozen=True)
class SlabDirection:
    """One SLAB BFR direction at unit-norm beams ``w_[i]`` (eqs. 41-43, 46, 69).

    Attributes
    ----------
    candidate : ``[bs, bs_ant, beam, subcarrier]``, ``w^#``: the unit principal eigenvector
        of ``𝔊_{j,n}`` per beam, phase-aligned so that ``(w^#)^H w_[i] ≥ 0``.
    direction : ``d = w^# - w_[i]`` (eq. 42), same shape.
    gradient : ``∇κ̃`` of eq. (46) at ``w_[i]``, same shape.
    slope : ``Re{∇̃^H d} ≤ 0`` (eq. 69), the directional derivative of κ̃ along ``d``.
    cost : κ at ``w_[i]``.
    gap : the certified optimality gap there (:meth:`BfrProblem.optimality_gap`).
    """

    candidate: ComplexArray
    direction: ComplexArray
    gradient: ComplexArray
    slope: float
    cost: float
    gap: float


def slab_direction(beamformers: npt.ArrayLike, *, problem: BfrProblem) -> SlabDirection:
    """SLAB's candidate, feasible direction and slope at unit-norm ``beamformers``
    ``[bs, bs_ant, beam, subcarrier]`` (Algorithm 3, steps 3-5; module docstring)."""
    w = np.asarray(beamformers, dtype=np.complex128)
    S = beam_covariance(w)
    feats = problem.features_of_covariance(S)
    G = feats.total
    u = _unit_principal_eigenvectors(G)                          # [bs, subcarrier, ant]
    inner = np.einsum("bkt,btmk->bmk", u.conj(), w)               # u^H w per beam
    size = np.abs(inner)
    phase = np.where(size > 0, inner / np.where(size > 0, size, 1.0), 1.0)
    candidate = np.einsum("bkt,bmk->btmk", u, phase)              # w^# (41)/(43), aligned
    d = candidate - w                                             # (42)
    Gw = np.einsum("bkts,bsmk->btmk", G, w)
    norm2 = np.sum(np.abs(w) ** 2, axis=1, keepdims=True)
    along = np.sum(w.conj() * Gw, axis=1, keepdims=True)          # ω^H 𝔊 ω
    grad = -2.0 * (norm2 * Gw - w * along) / norm2**2             # (46)
    return SlabDirection(candidate=np.asarray(candidate), direction=np.asarray(d),
                         gradient=np.asarray(grad), slope=float(np.real(np.vdot(grad, d))),
                         cost=feats.cost, gap=_duality_gap(G, S, w.shape[2]))


def slab_bfr(
    beamformers: npt.ArrayLike, *, problem: BfrProblem, max_iterations: int = 500,
    tolerance: float = 1e-6, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 40, callback: IterateCallback | None = None,
) -> BfrResult:
    """SLAB's BFR (Algorithm 3): principal-eigenvector candidates, feasible direction and
    Armijo step on the full-power cost (module docstring).

    Parameters
    ----------
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, the start ``w_[0][k]``
        (non-zero beams; e.g. the previous slot's, or random at ``k = 1``).
    problem : κ at the location estimate ``ᾱ[k]`` (:class:`BfrProblem`).
    max_iterations : ``M_I`` of Algorithm 3.
    tolerance : stop when the certified relative optimality gap
        (:meth:`BfrProblem.optimality_gap` over κ) is at most this.
    armijo_slope : ``a`` of eq. (45), in ``(0, 1)``.
    armijo_shrink : ``ν`` of the Armijo rule, in ``(0, 1)``; the trial steps are
        ``γ' = 1, ν, ν², ...`` (``γ' = 1`` reaches the candidate ``w^#``).
    max_backtracks : at most this many ``ν`` reductions per iteration; if none passes,
        the run stops (so does a direction with ``Re{∇̃^H d} ≥ 0``).
    callback : called as ``callback(index, beamformers, cost)`` with every iterate
        entered in the cost history (``index`` into ``cost_history``; 0 is not reported).

    Returns
    -------
    :class:`BfrResult` with unit-norm beams.

    Raises
    ------
    numpy.linalg.LinAlgError
        if the FIM is singular at the (normalised) start: κ has no gradient there.

    References
    ----------
    Zhou, Liu, Lau 2019, Algorithm 3; eqs. (39)-(46), (60)-(61), (67)-(69).
    """
    _check_line_search(armijo_slope, armijo_shrink)
    start = time.perf_counter()
    w0 = np.asarray(beamformers, dtype=np.complex128)
    costs = [problem.cost(w0)]
    steps: list[float] = []
    w = full_power(w0)
    cost = costs[0]
    if np.max(np.abs(beam_norms(w0) - 1.0)) > _UNIT_NORM_ATOL:
        cost = problem.cost(w)  # to full power: κ drops unless the start was infeasible
        costs.append(cost)
        if callback is not None:
            callback(len(costs) - 1, w, cost)
    iterations = 0
    gap = float("inf")
    for _ in range(max_iterations):
        step = slab_direction(w, problem=problem)
        gap = step.gap
        if gap <= tolerance * cost:
            break
        slope, d = step.slope, step.direction                       # Re{∇̃^H d} <= 0 (69)
        if slope >= 0.0:
            break  # no descent along d: beams at non-principal eigenvectors (a saddle)
        gamma, accepted = 1.0, False
        for _ in range(max_backtracks + 1):
            trial = full_power(w + gamma * d)                        # (44), at full power
            trial_cost = problem.cost(trial)
            if trial_cost <= cost + armijo_slope * gamma * slope:    # (45)
                accepted = True
                break
            gamma *= armijo_shrink
        if not accepted:
            break
        w, cost = trial, trial_cost
        costs.append(cost)
        steps.append(gamma)
        iterations += 1
        if callback is not None:
            callback(len(costs) - 1, w, cost)
    else:
        gap = problem.optimality_gap(w)
    return BfrResult(method="slab-bfr", beamformers=w, cost_history=np.asarray(costs),
                     step_history=np.asarray(steps), iterations=iterations,
                     converged=bool(gap <= tolerance * cost), optimality_gap=gap,
                     runtime_s=time.perf_counter() - start)


def _check_line_search(slope: float, shrink: float) -> None:
    if not 0.0 < slope < 1.0:
        raise ValueError(f"armijo_slope must be in (0, 1), got {slope}")
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"armijo_shrink must be in (0, 1), got {shrink}")
