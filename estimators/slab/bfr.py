"""SLAB's beamforming refinement (BFR, Zhou, Liu, Lau 2019, §V) and its two baselines.

BFR picks the training BF vectors ``ω_j[n, m]`` of the next slot by minimising the
normalised long-term CRLB (eq. 23) evaluated at the current location estimate ``ᾱ[k]``
(problem (28)-(29)):

    κ(ω) = trace 𝔅_α(ᾱ, Σ; ω) / trace 𝔅_α(ᾱ, Σ; w[0]) + trace 𝔅_h(ᾱ, Σ; ω) / trace 𝔅_h(ᾱ, Σ; w[0])
    s.t. ‖ω_j[n, m]‖ ≤ 1  ∀ j, n, m.

Structure used throughout (:class:`BfrProblem`). The long-term FIM (eqs. 38, 55) depends
on the BF vectors only through the per-(BS, subcarrier) beam covariances
``S_{j,n} = Σ_m ω_j[n, m] ω_j[n, m]^H`` and linearly in them:

    J_α(ω) = Re Σ_{j,n} ⟨K^α_{j,n}, S_{j,n}⟩,
        K^α[a, c, t, s] = (2/σ²) Σ_{r,l,l'} Σ_j[l', l] (∂μ^{(r,t)}_{l,j,n}/∂α_a)^*
                          ∂μ^{(r,s)}_{l',j,n}/∂α_c,
    A_j(ω) = G_j^H G_j = Σ_n ⟨K^h_{j,n}, S_{j,n}⟩,
        K^h[l, l', t, s] = Σ_r (μ^{(r,t)}_{l,j,n})^* μ^{(r,s)}_{l',j,n},

with ``J_h = (2/σ²) [[Re A, -Im A], [Im A, Re A]]`` on ``[Re h; Im h]`` and ``μ`` of eq. (19)
(``√(N_B N_U)`` included). ``K^α``, ``K^h`` (the paper's ``R^{(r)}_{l,j,n}`` and
``U^{(r)}_{j,n}`` of App. E contracted over ``r``) are computed once per estimate.

* **Feature matrices (eqs. 39-40, 60-61).** ``d trace(J^{-1}) = -trace(𝔅² dJ)``, so the
  first-order expansion of κ in the FIM around ``w_[i]`` is the surrogate (39),
  ``κ_S(ω) = C - Σ_{j,n,m} ω_j[n,m]^H 𝔊_{j,n} ω_j[n,m]``, with the Hermitian PSD
  ``𝔊_{j,n} = 𝔊^α_{j,n} + 𝔊^h_{j,n}`` (eq. 40):
  ``𝔊^α[t, s] = Σ_{a,c} W_α[a, c] K^α[a, c, t, s]``, ``W_α = 𝔅_α² / trace 𝔅_α(w[0])`` (eq. 60);
  ``𝔊^h[t, s] = (2/σ²) Σ_{l,l'} Ω_j[l', l] K^h[l, l', t, s]``, ``Ω = E W_h E^H``,
  ``E = [I, jI]``, ``W_h = 𝔅_h² / trace 𝔅_h(w[0])`` (eq. 61; ``Ω`` maps the real
  ``[Re h; Im h]`` weight to the complex gains). The paper writes ``ω^T 𝔊 ω^*``: its
  ``𝔊`` is the complex conjugate of the one here (``ω^H 𝔊 ω``); the eigenvectors are
  conjugated alike. ``trace(J^{-1})`` is convex in ``J``, so κ_S is a *lower* bound of κ
  that is tight to first order at ``w_[i]`` (Lemma 2), not a majoriser: hence the
  line search.
* **Gradients.** Of κ itself: ``∇_{ω_j[n,m]} κ = 2 ∂κ/∂ω^* = -2 𝔊_{j,n} ω_j[n,m]`` (the
  real gradient packed as ``∂/∂Re + j ∂/∂Im``, so ``dκ = Re{∇^H dω}`` as in eq. 45). The
  paper's eq. (46), ``-2 (‖ω‖² I - ω ω^H) 𝔊 ω / ‖ω‖⁴``, is exactly the gradient of
  ``κ̃(ω) = κ(ω_j[n,m] / ‖ω_j[n,m]‖ ∀ j,n,m)``, the cost of the beam *directions* at full
  power (chain rule through the normalisation). Both are implemented and checked
  against finite differences.
* **Power constraint** (eq. 29) as the paper has it, ``‖ω_j[n, m]‖ ≤ 1`` per BS,
  subcarrier and beam. Adding power to one beam adds a PSD term to the FIM, so κ never
  increases when a beam is scaled up: every minimiser has all beams at full power, and
  ``κ̃`` loses nothing.

SLAB's BFR (:func:`slab_bfr`, Algorithm 3):

1. feature matrices ``𝔊_{j,n}(ᾱ; w_[i])`` (eqs. 40, 60, 61);
2. candidate (41)/(43): the unit principal eigenvector ``u_{j,n}`` of ``𝔊_{j,n}`` for every
   beam ``m`` (Rayleigh quotient maximisation); its phase is free, and is chosen so that
   ``u^H w_[i] ≥ 0`` beam by beam. The paper is silent on it, but its proof of descent
   (eqs. 67-69) needs ``(w^#)^H w`` real and non-negative;
3. feasible direction (42) ``d = w^# - w_[i]``: ``w_[i] + γ d`` is a convex combination of
   two points of the unit ball, feasible for ``γ ∈ [0, 1]``;
4. Armijo rule (44)-(45) on ``κ̃`` with the gradient (46), ``γ = 1, ν, ν², ...``, until
   ``κ̃(w + γ d) ≤ κ̃(w) + a γ Re{∇̃^H d}``; ``Re{∇̃^H d} ≤ 0`` by eq. (69);
5. ``w_[i+1] = w_[i] + γ d`` renormalised to full power beam by beam (``κ̃`` does not
   change, κ becomes ``κ̃``, eq. 29 holds with equality). The start is normalised the
   same way first (from a feasible start κ can only drop).

Stopping rule (the paper's is "while not converged", capped at ``M_I``): the certified
relative optimality gap ``(κ - lower bound) / κ`` (below) at most ``tolerance``; gd-bfr
uses the same rule. (A first version stopped on a relative decrease below 1e-6 in one
iteration: SLAB's progress per iteration fluctuates with its step, and it stopped 3.7e-4
above the optimum on the paper's setting.)

**Per-BS parallelism.** The surrogate (39) separates over ``(j, n, m)`` (eq. 43): given
``w_[i]``, BS ``j``'s feature matrices need only its own responses ``K_{j,·}`` and the
shared weights ``W_α``, ``Ω_j``. They are computed for all BSs and subcarriers in one
batched contraction over the ``bs`` axis, and their principal eigenvectors by one batched
``eigh`` (``[bs, subcarrier]`` problems of size ``N_B``) — the vectorised form of the
paper's per-BS parallel solve. The step length (45) is one ``γ'_[i]`` for all BSs, as in
eq. (44): ``𝔅_α`` couples the BSs, so the line search is on the joint cost.

Baselines:

* ``gd-bfr`` (:func:`gd_bfr`): projected gradient on the same cost κ over the product
  of unit balls, ``w_[i+1] = Π(w_[i] - γ ∇κ)``, Armijo along the projection arc
  (Bertsekas, Nonlinear Programming, §2.3) ``κ(w_+) ≤ κ(w) + a Re{∇κ^H (w_+ - w)}``; the
  trial step of every iteration is ``γ₀ = 1 / max_{j,n,m} ‖∇_{ω_j[n,m]} κ‖`` (the most
  sensitive beam moves by the unit ball's radius before projection), then ``ν γ, ...``.
* ``lmi-bfr`` (:func:`lmi_bfr`): FIM maximisation as an LMI (the paper's baseline [31]):
  each ``W_{j,n,m} = ω ω^H`` relaxed to ``W ⪰ 0, trace W ≤ 1``; the FIM is linear in
  ``W`` and ``trace(J^{-1})`` is minimised through Schur complements,
  ``[[J, I], [I, T]] ⪰ 0`` (``T ⪰ J^{-1}``), for the α block and each BS's complex gain
  block ``A_j``, objective the eq.-23 weights times ``T`` — the relaxation of the same
  cost κ. The FIM depends on the ``W_{j,n,m}`` only through ``S_{j,n} = Σ_m W_{j,n,m}``,
  so the SDP is solved in that form (``S ⪰ 0``, ``trace S ≤ M``; an exact reformulation,
  one per-beam optimum being ``W_{j,n,m} = S_{j,n}/M``). cvxpy with SCS named explicitly;
  the blocks are whitened at the start beams (``J̃ = J(S₀)^{-1/2} J J(S₀)^{-1/2}``: SCS
  works to absolute tolerances and the raw FIM's diagonal spans 17 orders of magnitude
  on the paper's setting). ``eps = 1e-4`` (SCS's own default) by default: this SDP's
  optimum is degenerate (rank-one ``S`` on the paper's geometry) and SCS's residuals stall
  near 4e-5 — with ``N'_C = 6, M = 4``, eps 1e-5 ran into the 1e5-iteration cap (17 s on
  the 2-core machine); on the paper's setting eps 1e-6 took 19 050 iterations (12 s).
  A principal-eigenvector extraction is insensitive to that inaccuracy. Rank-one
  extraction (``extraction``): ``"randomization"`` (default; Gaussian randomisation, Luo
  et al. 2010: ``ω_m ~ CN(0, W_{j,n,m})`` scaled to unit norm, the best of
  ``num_randomizations`` draw sets by κ); ``"eigenvector"`` (every beam the principal
  eigenvector of ``W_{j,n,m} = S/M`` — all ``M`` beams equal); ``"equal-norm"``
  (``[ω_1 ... ω_M] = V Λ^{1/2} [I 0] F_M / ‖·‖`` with ``F_M`` the unitary DFT,
  ``S = V Λ V^H``: unit-norm beams with ``Σ_m ω ω^H = M S / trace S`` exactly when
  ``M ≥ rank S``; not a baseline of the paper, a reference).

**Convexity and a certificate** (not in the paper). As a function of the beam
covariances ``S_{j,n}``, κ is convex (``trace J^{-1}`` of a FIM linear in ``S``), and the
set ``{S ⪰ 0, trace S ≤ M}`` contains every ``Σ_m ω ω^H`` of feasible beams; when
``M ≥ N_B`` every point of it is one (the equal-norm decomposition), so (28)-(29) is then a
convex problem in disguise and the SDP relaxation is tight. For any ``M``,
:meth:`BfrProblem.lower_bound` (the Frank-Wolfe duality gap) certifies how far a point is
from the global minimum; at unit-norm beams the gap is
``Σ_{j,n,m} (λ_max(𝔊_{j,n}) - ω^H 𝔊_{j,n} ω)``, so the points where every beam is a
principal eigenvector of its feature matrix — the fixed points of SLAB's BFR — are global
minima. At convergence SLAB, gd-bfr and an accurately solved lmi-bfr therefore reach the
same cost; they differ in how fast they get there.

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: BFR problem (28)-(29),
normalised CRLB (23), FIM (38), surrogate and feature matrices (39)-(40), (60)-(63),
candidate (41)-(43), direction (42), Armijo step (44)-(45), gradient (46), descent
(67)-(69); baselines §VII-A.
D. P. Bertsekas, Nonlinear Programming, 2nd ed., 1999, §2.3 (projection arc Armijo).
Z.-Q. Luo, W.-K. Ma, A. M.-C. So, Y. Ye, S. Zhang, "Semidefinite relaxation of quadratic
optimization problems", IEEE Signal Process. Mag. 27(3), 2010 (Gaussian randomisation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from estimators.slab.bound import SlabBound, SlabFisher
from estimators.slab.model import SlabGeometry, SlabSystem
from estimators.typing import ComplexArray, FloatArray

Extraction = Literal["randomization", "eigenvector", "equal-norm"]
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
        f_alpha = np.real(np.einsum("bkacts,bkst->ac", self.alpha_features, S, optimize=True))
        f_alpha = (f_alpha + f_alpha.T) / 2
        gram = np.einsum("bkpqts,bkst->bpq", self.gain_features, S, optimize=True)
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
                                  num_nlos=self.num_paths - 1)

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
                                   num_nlos=self.num_paths - 1)
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
                                   num_nlos=self.num_paths - 1)
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
        loc = np.einsum("ac,bkacts->bkts", w_alpha, self.alpha_features, optimize=True)
        chan = 2.0 / self.noise_variance * np.einsum(
            "bqp,bkpqts->bkts", omega_bs, self.gain_features, optimize=True)
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


@dataclass(frozen=True)
class LmiBfrResult(BfrResult):
    """:func:`lmi_bfr`'s result, with the relaxation.

    Attributes
    ----------
    covariance : ``[bs, subcarrier, bs_ant, bs_ant]`` complex128, the SDP's ``S_{j,n}``.
    relaxation_value : the SDP optimum as the solver reports it, on κ's scale: a lower
        bound on κ of any feasible BF vectors up to the solver's tolerance (SCS's
        objective can be off by more than the relaxation gap: use ``lower_bound``).
    relaxed_cost : κ evaluated exactly at ``covariance`` (an upper bound on the SDP
        optimum where ``covariance`` is feasible).
    lower_bound : :meth:`BfrProblem.lower_bound` at ``covariance``: a certified lower
        bound on the SDP optimum, whatever the solver's accuracy.
    extraction : the rank-one extraction used.
    status : the solver's status.
    """

    covariance: ComplexArray
    relaxation_value: float
    relaxed_cost: float
    lower_bound: float
    extraction: str
    status: str


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


# --------------------------------------------------------------------- GD-BFR


def gd_bfr(
    beamformers: npt.ArrayLike, *, problem: BfrProblem, max_iterations: int = 500,
    tolerance: float = 1e-6, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 40, callback: IterateCallback | None = None,
) -> BfrResult:
    """``gd-bfr``: projected gradient on κ (eq. 23) over ``‖ω_j[n, m]‖ ≤ 1`` with an
    Armijo line search along the projection arc (module docstring).

    Parameters
    ----------
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, the start (projected onto
        the unit balls first).
    problem : κ at the location estimate ``ᾱ[k]``.
    max_iterations, tolerance, armijo_slope, armijo_shrink, max_backtracks, callback : as
        :func:`slab_bfr` (the same stopping rule); the trial step of every iteration is
        ``γ₀ = 1 / max ‖∇_{ω_j[n,m]} κ‖``.

    Returns
    -------
    :class:`BfrResult`.

    Raises
    ------
    numpy.linalg.LinAlgError
        if the FIM is singular at the (projected) start.

    References
    ----------
    Zhou, Liu, Lau 2019, §VII-A (GD-based BFR [33]); Bertsekas 1999, §2.3.
    """
    _check_line_search(armijo_slope, armijo_shrink)
    start = time.perf_counter()
    w0 = np.asarray(beamformers, dtype=np.complex128)
    costs = [problem.cost(w0)]
    steps: list[float] = []
    w = project_to_ball(w0)
    iterations = 0
    cost, grad, gap = _gd_state(problem, w)
    if np.max(beam_norms(w0)) > 1.0 + _UNIT_NORM_ATOL:
        costs.append(cost)  # the start projected onto the unit balls
        if callback is not None:
            callback(len(costs) - 1, w, cost)
    for _ in range(max_iterations):
        if gap <= tolerance * cost:
            break
        gamma, accepted = 1.0 / float(np.max(np.linalg.norm(grad, axis=1))), False
        for _ in range(max_backtracks + 1):
            trial = project_to_ball(w - gamma * grad)
            slope = float(np.real(np.vdot(grad, trial - w)))        # <= 0 on the arc
            trial_cost = problem.cost(trial)
            if trial_cost <= cost + armijo_slope * slope:
                accepted = True
                break
            gamma *= armijo_shrink
        if not accepted:
            break
        w = trial
        cost, grad, gap = _gd_state(problem, w)
        costs.append(cost)
        steps.append(gamma)
        iterations += 1
        if callback is not None:
            callback(len(costs) - 1, w, cost)
    return BfrResult(method="gd-bfr", beamformers=w, cost_history=np.asarray(costs),
                     step_history=np.asarray(steps), iterations=iterations,
                     converged=bool(gap <= tolerance * cost), optimality_gap=gap,
                     runtime_s=time.perf_counter() - start)


def _gd_state(problem: BfrProblem, w: ComplexArray) -> tuple[float, ComplexArray, float]:
    """κ, ``∇κ`` and the certified gap at ``w`` from one set of feature matrices."""
    S = beam_covariance(w)
    feats = problem.features_of_covariance(S)
    return feats.cost, _gradient(feats.total, w), _duality_gap(feats.total, S, w.shape[2])


def _check_line_search(slope: float, shrink: float) -> None:
    if not 0.0 < slope < 1.0:
        raise ValueError(f"armijo_slope must be in (0, 1), got {slope}")
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"armijo_shrink must be in (0, 1), got {shrink}")


# --------------------------------------------------------------------- LMI-BFR


def lmi_bfr(
    beamformers: npt.ArrayLike, *, problem: BfrProblem, rng: np.random.Generator,
    extraction: Extraction = "randomization", num_randomizations: int = 100,
    eps: float = 1e-4, max_iters: int = 100_000,
) -> LmiBfrResult:
    """``lmi-bfr``: FIM maximisation as an LMI (SDP relaxation of ``W = ω ω^H``), then a
    rank-one extraction (module docstring).

    Parameters
    ----------
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, the start: gives ``M``, the
        initial κ of the gain, and the whitening of the LMIs (not a warm start).
    problem : κ at the location estimate ``ᾱ[k]``.
    rng : source of the Gaussian randomisation.
    extraction : ``"randomization"``, ``"eigenvector"`` or ``"equal-norm"``.
    num_randomizations : draws for ``"randomization"``.
    eps : SCS's ``eps_abs = eps_rel`` (default SCS's own; module docstring).
    max_iters : SCS's iteration cap.

    Returns
    -------
    :class:`LmiBfrResult` with unit-norm beams.

    Raises
    ------
    ArithmeticError
        if the solver returns no solution.

    References
    ----------
    Zhou, Liu, Lau 2019, §VII-A (LMI-based BFR [31]), FIM (38); Luo et al. 2010.
    """
    import cvxpy as cp

    start = time.perf_counter()
    w0 = np.asarray(beamformers, dtype=np.complex128)
    J, Nb, M, K = w0.shape
    n, P = problem.num_alpha, problem.num_paths
    initial = problem.cost(w0)
    S0 = beam_covariance(w0)
    # Whitening at the start (SCS works to absolute tolerances): F̃ = R F R with
    # R = F(S0)^{-1/2}, so F̃(S0) = I and tr F^{-1} = tr(R² F̃^{-1}); the same per BS for A_j.
    f0 = problem.fim_of_covariance(S0)
    r_alpha = _inverse_sqrt(f0[:n, :n])
    gram0 = _hermitian(np.einsum("bkpqts,bkst->bpq", problem.gain_features, S0))
    r_gain = np.stack([_inverse_sqrt(g) for g in gram0])                  # [bs, path, path]
    k_alpha = np.einsum("ax,bkxyts,yc->bkacts", r_alpha, problem.alpha_features, r_alpha,
                        optimize=True)
    k_gain = np.einsum("bpx,bkxyts,byq->bkpqts", r_gain, problem.gain_features, r_gain,
                       optimize=True)
    S_vars = [[cp.Variable((Nb, Nb), hermitian=True) for _ in range(K)] for _ in range(J)]
    constraints = []
    for j in range(J):
        for k in range(K):
            constraints += [S_vars[j][k] >> 0, cp.real(cp.trace(S_vars[j][k])) <= M]
    # Linear maps: vec(S_{j,n}) column-major (cvxpy's), S[s, t] at s + t N_B.
    stacked = cp.hstack([cp.vec(S_vars[j][k], order="F") for j in range(J) for k in range(K)])
    # F̃[a, c] = Re Σ_{j,k,t,s} K̃[j,k,a,c,t,s] S[j,k,s,t]
    kmat = k_alpha.transpose(2, 3, 0, 1, 4, 5).reshape(n * n, J * K * Nb * Nb)
    f_alpha = cp.reshape(cp.real(kmat @ stacked), (n, n), order="C")
    t_alpha = cp.Variable((n, n), symmetric=True)
    f_sym = (f_alpha + f_alpha.T) / 2
    z_alpha = cp.bmat([[f_sym, np.eye(n)], [np.eye(n), t_alpha]])
    constraints += [z_alpha >> 0]
    weights_alpha = r_alpha @ r_alpha / problem.alpha_reference
    objective = cp.sum(cp.multiply(weights_alpha, t_alpha))
    per_bs = K * Nb * Nb
    for j in range(J):
        gmat = k_gain[j].transpose(1, 2, 0, 3, 4).reshape(P * P, per_bs)
        gram = cp.reshape(gmat @ stacked[j * per_bs:(j + 1) * per_bs], (P, P), order="C")
        t_gain = cp.Variable((P, P), hermitian=True)
        z_gain = cp.bmat([[(gram + gram.H) / 2, np.eye(P)], [np.eye(P), t_gain]])
        constraints += [z_gain >> 0]
        weights_gain = problem.noise_variance * r_gain[j] @ r_gain[j] / problem.gain_reference
        objective = objective + cp.real(cp.trace(weights_gain @ t_gain))
    sdp = cp.Problem(cp.Minimize(objective), constraints)
    sdp.solve(solver="SCS", eps_abs=eps, eps_rel=eps, max_iters=max_iters)
    if S_vars[0][0].value is None:
        raise ArithmeticError(f"lmi-bfr: SDP solver SCS failed: {sdp.status}")
    S = np.array([[np.asarray(S_vars[j][k].value) for k in range(K)] for j in range(J)],
                 dtype=np.complex128)
    S = _psd_part(S)
    w = _extract(S, M, extraction, rng, problem, num_randomizations)
    final = problem.cost(w)
    stats = sdp.solver_stats
    return LmiBfrResult(
        method="lmi-bfr", beamformers=w, cost_history=np.asarray([initial, final]),
        step_history=np.zeros(0), iterations=int(stats.num_iters or 0),
        converged=sdp.status == "optimal", optimality_gap=problem.optimality_gap(w),
        runtime_s=time.perf_counter() - start,
        covariance=S, relaxation_value=float(sdp.value),
        relaxed_cost=problem.cost_of_covariance(S), lower_bound=problem.lower_bound(S, M),
        extraction=extraction,
        status=str(sdp.status),
    )


def _inverse_sqrt(matrix: npt.ArrayLike) -> ComplexArray:
    """``M^{-1/2}`` of a Hermitian positive definite matrix (real if ``M`` is real)."""
    m = np.asarray(matrix)
    values, vectors = np.linalg.eigh(_hermitian(m))
    if values[0] <= 0:
        raise ArithmeticError("lmi-bfr: the start's FIM is singular; no scaling")
    out = (vectors / np.sqrt(values)) @ vectors.conj().T
    return np.asarray(out.real if np.isrealobj(m) else out)


def _psd_part(S: ComplexArray) -> ComplexArray:
    """Hermitian PSD part of each ``[..., N, N]`` (the solver's iterate is PSD only to its
    tolerance)."""
    values, vectors = np.linalg.eigh(_hermitian(S))
    return np.asarray(np.einsum("...ij,...j,...kj->...ik", vectors, np.clip(values, 0, None),
                                vectors.conj()))


def _extract(
    S: ComplexArray, M: int, extraction: str, rng: np.random.Generator, problem: BfrProblem,
    num_randomizations: int,
) -> ComplexArray:
    """Unit-norm beams ``[bs, bs_ant, beam, subcarrier]`` from the relaxed ``S_{j,n}``."""
    J, K, Nb, _ = S.shape
    values, vectors = np.linalg.eigh(S)                     # ascending
    if extraction == "eigenvector":
        u = vectors[..., -1]                                # [bs, subcarrier, ant]
        return np.asarray(np.broadcast_to(u.transpose(0, 2, 1)[:, :, None, :], (J, Nb, M, K))
                          ).copy()
    if extraction == "equal-norm":
        r = min(M, Nb)
        top_values = np.clip(values[..., ::-1][..., :r], 0, None)    # [bs, k, r]
        top_vectors = vectors[..., ::-1][..., :r]                    # [bs, k, ant, r]
        dft = np.exp(-2j * np.pi * np.outer(np.arange(r), np.arange(M)) / M) / np.sqrt(M)
        X = np.einsum("bkar,bkr,rm->bamk", top_vectors, np.sqrt(top_values), dft)
        return full_power(X)
    if extraction == "randomization":
        root = vectors * np.sqrt(np.clip(values, 0, None))[..., None, :] / np.sqrt(M)
        best, best_cost = None, np.inf
        for _ in range(num_randomizations):
            shape = (J, K, Nb, M)
            white = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
            draw = np.einsum("bkas,bksm->bamk", root, white)  # ω_m ~ CN(0, S/M)
            w = full_power(draw)
            c = problem.cost(w)
            if c < best_cost:
                best, best_cost = w, c
        if best is None:
            raise ArithmeticError("lmi-bfr: no randomised beam set has a finite cost")
        return best
    raise ValueError(f"extraction must be 'randomization', 'eigenvector' or 'equal-norm', "
                     f"got {extraction!r}")
