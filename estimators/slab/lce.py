"""SLAB's localization and channel estimation (LCE, §IV): the cost (24) and SLLS.

One slot observes ``z[k] = G(α; w[k]) h[k] + ε`` (eqs. 11-13). The LCE problem (24) is
linear in ``h``; with ``h`` fitted by (30) it is the separable problem
``F(α) = ‖P⊥_{G(α)} z‖²`` on ``α`` alone. SLLS (:func:`slls`) is Gauss-Newton on it
(eqs. 31-36; Theorem 2, eq. 37); the baselines GD-LCE and LS-LCE
(:mod:`estimators.slab.baselines`) descend the same ``F`` (:func:`descend`). The first
slot's starting point: :mod:`estimators.slab.lce_init`; the fusion over slots (25)-(27):
:mod:`estimators.slab.fusion`. Derivation, the two readings of (34) and the stopping
rule: docs/estimators/slab.md, "LCE".

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: LCE problem (24),
channel estimate (30), SLLS (31)-(36), Theorem 2 (37), Algorithm 2.
G. H. Golub, V. Pereyra, SIAM J. Numer. Anal. 10(2), 1973; L. Kaufman, BIT 15, 1975
(variable projection).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from estimators.arrays import wrap_angle
from estimators.slab.bound import response_jacobian
from estimators.slab.model import (
    SlabGeometry,
    SlabSystem,
    coefficient_matrix,
    path_responses,
)
from estimators.types import Area, check_area
from estimators.typing import ComplexArray, FloatArray

Direction = Literal["projected", "alternating"]

#: Index of the UE yaw ``ϑ`` in ``α``.
ORIENTATION = 2
#: Relative rounding of ``F`` (a sum of ~10³ squares in float64), with margin: a
#: Gauss-Newton step predicted to decrease ``F`` by less is numerically converged.
_ROUNDING = 1e3 * float(np.finfo(np.float64).eps)
#: Default ``step_sigmas``: a Gauss-Newton step shorter than this many standard
#: deviations of the estimate (in the metric of the FIM at the iterate) is converged.
STEP_SIGMAS = 0.1


@dataclass(frozen=True)
class LceProblem:
    """What the UE has at one slot: the known system and BS poses, the BF vectors used
    and the received pilots.

    Attributes
    ----------
    system : arrays and subcarriers (:class:`estimators.slab.model.SlabSystem`).
    bs_position : ``[bs, 2]`` [m], ``u_j``.
    bs_orientation : ``[bs]`` [rad], ``φ_j``.
    num_nlos : ``L``, NLOS paths (scatterers) per BS.
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, ``w[k]``.
    z : ``[bs, ue_ant, beam, subcarrier]`` complex, ``z[k]`` (eq. 11).
    noise_variance : ``σ²`` [W] per UE antenna and sample (only the fusion precision
        (27) uses it).
    area : ``((x_min, y_min), (x_max, y_max))`` [m] corners
        (:data:`estimators.types.Area`), where the UE and the scatterers are (the region
        the multi-start draws from).
    height_offset : ``[bs]`` [m] or ``None`` (the plane), each BS's array height above
        the UE's hypothesised height (:class:`~estimators.slab.model.SlabGeometry`).
    scatterer_area : corners where the scatterers may be, ``None``: ``area``. Walls that
        reflect into the UE's area can stand outside it.
    ground_offset : ``[bs]`` [m] or ``None``: a ground bounce per BS, last
        (:class:`~estimators.slab.model.SlabGeometry`).
    """

    system: SlabSystem
    bs_position: FloatArray
    bs_orientation: FloatArray
    num_nlos: int
    beamformers: ComplexArray
    z: ComplexArray
    noise_variance: float
    area: Area = ((0.0, 0.0), (1000.0, 1000.0))
    height_offset: FloatArray | None = None
    scatterer_area: Area | None = None
    ground_offset: FloatArray | None = None

    @property
    def scatterer_region(self) -> Area:
        """Where the scatterers may be (``scatterer_area``, else ``area``)."""
        return self.area if self.scatterer_area is None else self.scatterer_area

    @property
    def heights(self) -> FloatArray:
        """``Δh [bs]`` [m], zeros for the plane."""
        if self.height_offset is None:
            return np.zeros(self.num_bs)
        return np.asarray(self.height_offset, dtype=np.float64)

    def __post_init__(self) -> None:
        check_area(self.area, "LceProblem.area")
        if self.scatterer_area is not None:
            check_area(self.scatterer_area, "LceProblem.scatterer_area")
        J = self.bs_position.shape[0]
        NB, NU = self.system.num_bs_antennas, self.system.num_ue_antennas
        K = self.system.num_subcarriers_per_bs
        w, z = self.beamformers, self.z
        if w.ndim != 4 or w.shape[:2] != (J, NB) or w.shape[3] != K:
            raise ValueError(f"beamformers: expected [{J}, {NB}, beam, {K}], got {w.shape}")
        if z.shape != (J, NU, w.shape[2], K):
            raise ValueError(f"z: expected {(J, NU, w.shape[2], K)}, got {z.shape}")

    @property
    def num_bs(self) -> int:
        return int(self.bs_position.shape[0])

    @property
    def num_alpha(self) -> int:
        """``2 J L + 3``."""
        return 2 * self.num_bs * self.num_nlos + 3

    def geometry(self, alpha: npt.ArrayLike) -> SlabGeometry:
        """The geometry with location parameters ``alpha [2JL + 3]``."""
        a = np.asarray(alpha, dtype=np.float64)
        if a.shape != (self.num_alpha,):
            raise ValueError(f"alpha: expected shape ({self.num_alpha},), got {a.shape}")
        return SlabGeometry(
            bs_position=self.bs_position, bs_orientation=self.bs_orientation,
            ue_position=a[:2].copy(), ue_yaw=float(a[ORIENTATION]),
            scatterers=a[3:].reshape(self.num_bs, self.num_nlos, 2),
            height_offset=self.height_offset, ground_offset=self.ground_offset,
        )


# ------------------------------------------------------------- cost and derivatives


@dataclass(frozen=True)
class _Fit:
    """``F(α)`` and what the directions need at one ``α``.

    ``cost`` ``F`` (24), ``gains [bs, path]`` ``h`` (30), ``residual [bs, obs]``
    ``z - G h``, ``jacobian [bs, obs, alpha]`` ``∂(G h)/∂α`` and ``projected`` its part
    off the columns of ``G`` (both ``None`` unless asked for).
    """

    cost: float
    gains: ComplexArray
    residual: ComplexArray
    jacobian: ComplexArray | None = None
    projected: ComplexArray | None = None


def _fit(problem: LceProblem, alpha: FloatArray, *, derivatives: bool) -> _Fit:
    geometry = problem.geometry(alpha)
    mu = path_responses(problem.system, geometry)
    G = coefficient_matrix(mu, problem.beamformers)  # [bs, r, m, k, path]
    J, P = G.shape[0], G.shape[-1]
    cols = G.reshape(J, -1, P)
    z = problem.z.reshape(J, -1)
    basis, gains = _column_space(cols, z)  # (30)
    residual = z - np.einsum("bop,bp->bo", cols, gains)
    cost = float(np.sum(np.abs(residual) ** 2))
    if not derivatives:
        return _Fit(cost=cost, gains=gains, residual=residual)
    dmu = response_jacobian(problem.system, geometry, mu)  # [bs, k, r, t, path, alpha]
    # ∂(G h)/∂α: the gains summed into the responses' derivatives first, then the
    # beamformers applied per (BS, subcarrier) as one batched product (the order that
    # never forms ∂G/∂α, a path axis larger).
    dh = np.einsum("bkrtpa,bp->bkrat", dmu, gains)
    w = np.asarray(problem.beamformers, dtype=np.complex128).transpose(0, 3, 1, 2)
    jac = (dh @ w[:, :, None]).transpose(0, 2, 4, 1, 3).reshape(J, -1, problem.num_alpha)
    projected = jac - basis @ (basis.conj().transpose(0, 2, 1) @ jac)
    return _Fit(cost=cost, gains=gains, residual=residual, jacobian=jac, projected=projected)


def _column_space(cols: ComplexArray, z: ComplexArray) -> tuple[ComplexArray, ComplexArray]:
    """Per BS, an orthonormal basis ``[bs, obs, rank]`` of the columns of ``cols [bs, obs,
    path]`` and the least-squares gains ``[bs, path]`` of ``z [bs, obs]`` on them: what
    ``numpy.linalg.lstsq`` gives BS by BS (the same SVD and rank cut-off, ``ε max(obs,
    path)`` of the largest singular value, minimum-norm where rank-deficient), batched
    over the BSs. Basis columns past a BS's rank are zero."""
    u, s, vh = np.linalg.svd(cols, full_matrices=False)
    keep = s > np.finfo(np.float64).eps * max(cols.shape[1:]) * s[:, :1]
    inverse = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    u = u * keep[:, None, :]
    coeff = np.einsum("bor,bo->br", u.conj(), z) * inverse
    return u, np.einsum("brp,br->bp", vh.conj(), coeff)


def residual_dof(samples: int, num_gains: int, num_alpha: int) -> float:
    """``N - n - A/2``: ``samples`` complex observations less the ``num_gains`` complex
    gains and half the ``num_alpha`` real location parameters a fit of (24) has; the noise
    power the fit leaves is ``σ²`` times this (at least 1)."""
    return max(samples - num_gains - num_alpha / 2, 1.0)


def lce_cost(problem: LceProblem, alpha: npt.ArrayLike) -> float:
    """The LCE cost (24) with the fading fitted by (30): ``F(α) = min_h ‖z - G(α) h‖²``.

    Parameters
    ----------
    problem : one slot's data.
    alpha : ``[2JL + 3]`` [m, rad, m], ``α = [x; ϑ; v]``.

    Returns
    -------
    ``F`` [W] (sum of squared sample magnitudes).
    """
    return _fit(problem, np.asarray(alpha, dtype=np.float64), derivatives=False).cost


def channel_estimate(problem: LceProblem, alpha: npt.ArrayLike) -> ComplexArray:
    """``ĥ = G(α)^† z`` (30), ``[bs, path]`` complex."""
    return _fit(problem, np.asarray(alpha, dtype=np.float64), derivatives=False).gains


def _real(m: ComplexArray) -> FloatArray:
    """Stack ``[Re; Im]`` along the first axis (observations of a real parameter)."""
    return np.concatenate([m.real, m.imag], axis=0)


def _gradient(fit: _Fit) -> FloatArray:
    """``∇F = -2 Re{(∂(G h)/∂α)^H r}`` ``[alpha]`` (the gradient in (36))."""
    assert fit.jacobian is not None
    return np.asarray(-2.0 * np.real(np.einsum("boa,bo->a", fit.jacobian.conj(), fit.residual)))


def _gauss_newton(fit: _Fit, direction: Direction) -> FloatArray:
    """The SLLS direction (34) as a real least squares, columns scaled to unit norm."""
    jac = fit.projected if direction == "projected" else fit.jacobian
    assert jac is not None
    A = _real(jac.reshape(-1, jac.shape[-1]))
    b = _real(fit.residual.reshape(-1))
    norms = np.linalg.norm(A, axis=0)
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    q = np.linalg.lstsq(A * scale, b, rcond=None)[0]
    return np.asarray(q * scale)


def _wrapped(alpha: FloatArray) -> FloatArray:
    out = alpha.copy()
    out[ORIENTATION] = float(wrap_angle(out[ORIENTATION]))
    return out


# ------------------------------------------------------------------------ results


@dataclass(frozen=True)
class LceResult:
    """One slot's LCE (:func:`slls`, :func:`gd_lce`, :func:`ls_lce`).

    Attributes
    ----------
    method : ``"slls"``, ``"gd-lce"`` or ``"ls-lce"``.
    alpha : ``[2JL + 3]`` [m, rad, m], the fresh estimate ``α̂[k]``.
    gains : ``[bs, path]`` complex, ``ĥ[k]`` (30) at ``alpha``.
    iterations : accepted updates of ``α``.
    cost_history : ``[iterations + 1]`` [W], ``F`` at the start and after each update.
    alpha_history : ``[iterations + 1, 2JL + 3]``, the iterates.
    step_history : ``[iterations + 1]`` [m, rad], ``‖·‖_∞`` of the Gauss-Newton step at
        each iterate (the stopping measure).
    converged : the last Gauss-Newton step is below the tolerance, shorter than
        ``step_sigmas`` standard deviations of the estimate, or the decrease of ``F`` it
        predicts is below ``F``'s float64 rounding (``1e3 ε F``).
    reason : why not converged (``""`` if converged).
    runtime_s : [s] wall time.
    """

    method: str
    alpha: FloatArray
    gains: ComplexArray
    iterations: int
    cost_history: FloatArray
    alpha_history: FloatArray
    step_history: FloatArray
    converged: bool
    reason: str
    runtime_s: float

    @property
    def cost(self) -> float:
        """Final ``F`` [W]."""
        return float(self.cost_history[-1])

    @property
    def ue_position(self) -> FloatArray:
        """``[2]`` [m]."""
        return self.alpha[:2]

    @property
    def ue_yaw(self) -> float:
        """``ϑ`` [rad], the UE array's broadside azimuth."""
        return float(self.alpha[ORIENTATION])

    @property
    def scatterers(self) -> FloatArray:
        """``[bs, nlos, 2]`` [m]."""
        J = self.gains.shape[0]
        return self.alpha[3:].reshape(J, -1, 2)


def descend(
    problem: LceProblem, alpha0: npt.ArrayLike, *, method: str, max_iterations: int,
    step_tolerance: float, armijo_slope: float, armijo_shrink: float,
    max_backtracks: int, direction: Direction, initial_step: float, growth: float,
    step_sigmas: float = STEP_SIGMAS,
) -> LceResult:
    """Descent on ``F`` (24) from ``alpha0``: the SLLS direction (34) for
    ``method="slls"``, else the baselines' (:mod:`estimators.slab.baselines`) steepest
    descent (``"gd-lce"``) or PRP+ conjugate gradient (``"ls-lce"``) with Armijo steps
    (36). All stop on the same measure, the Gauss-Newton step ``p`` at the iterate, so
    they are compared at the same accuracy (docs/estimators/slab.md, "LCE"): its largest
    entry below ``step_tolerance``, or its length in standard deviations of the estimate
    below ``step_sigmas``. The decrease of ``F`` it predicts, ``-∇F·p/2 = ‖P⊥ J p‖²``, is
    ``σ²/2`` times ``pᵀ I p`` (``I = 2 Re{(P⊥J)^H P⊥J}/σ²``, the FIM of ``α`` with the
    gains profiled out), the step's squared Mahalanobis length: a step of a tenth of a
    standard deviation moves the fix by less than the noise does, while the weakly
    determined scatterer coordinates crawl on above ``step_tolerance`` for tens of
    iterations (issue 22: ``slab`` "no convergence in 50 iterations" on canyon fixes
    22-37 mm off, their covariance at d² ≈ 10). ``step_sigmas=0``: off.
    """
    start = time.perf_counter()
    alpha = _wrapped(np.asarray(alpha0, dtype=np.float64))
    fit = _fit(problem, alpha, derivatives=True)
    costs, alphas, steps = [fit.cost], [alpha], []
    converged, reason = False, f"no convergence in {max_iterations} iterations"
    previous_gradient: FloatArray | None = None
    previous_direction: FloatArray | None = None
    gamma = np.nan
    for _ in range(max_iterations + 1):
        newton = _gauss_newton(fit, "projected")
        steps.append(float(np.max(np.abs(newton))))
        if not np.all(np.isfinite(newton)):
            reason = "non-finite Gauss-Newton step"
            break
        gradient = _gradient(fit)
        # Predicted decrease of F along the Gauss-Newton step, -∇F·p/2: below the
        # rounding of F the cost cannot tell iterates apart any more.
        decrease = float(-gradient @ newton) / 2
        floor = decrease <= _ROUNDING * fit.cost
        # The step's squared Mahalanobis length is 2 decrease / σ² (docstring).
        small = 2.0 * decrease <= step_sigmas**2 * problem.noise_variance
        if steps[-1] <= step_tolerance or floor or small:
            converged, reason = True, ""
            break
        if len(costs) > max_iterations:
            break
        if method == "slls":
            d = newton if direction == "projected" else _gauss_newton(fit, direction)
            trial = 1.0
        else:
            d = -gradient
            if method == "ls-lce" and previous_gradient is not None:
                assert previous_direction is not None
                beta = float(gradient @ (gradient - previous_gradient)) / float(
                    previous_gradient @ previous_gradient)
                d = -gradient + max(beta, 0.0) * previous_direction
                if gradient @ d > -1e-3 * np.linalg.norm(gradient) * np.linalg.norm(d):
                    d = -gradient  # restart
            largest = float(np.max(np.abs(d)))
            trial = initial_step / largest if np.isnan(gamma) else gamma * growth
            trial = min(trial, 1e3 * initial_step / largest)
        slope = float(gradient @ d)
        if not slope < 0:
            reason = "not a descent direction"
            break
        gamma = trial
        for _ in range(max_backtracks):
            candidate = _wrapped(alpha + gamma * d)
            new = _fit(problem, candidate, derivatives=False).cost
            if new <= fit.cost + armijo_slope * gamma * slope:  # Armijo (36)
                break
            gamma *= armijo_shrink
        else:
            reason = "Armijo line search failed"
            break
        previous_gradient, previous_direction = gradient, d
        alpha = candidate
        fit = _fit(problem, alpha, derivatives=True)
        costs.append(fit.cost)
        alphas.append(alpha)
    return LceResult(
        method=method, alpha=alpha, gains=fit.gains, iterations=len(costs) - 1,
        cost_history=np.asarray(costs), alpha_history=np.asarray(alphas),
        step_history=np.asarray(steps[: len(costs)]), converged=converged, reason=reason,
        runtime_s=time.perf_counter() - start,
    )


def slls(
    problem: LceProblem, alpha0: npt.ArrayLike, *, max_iterations: int = 50,
    step_tolerance: float = 1e-7, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 40, direction: Direction = "projected",
    step_sigmas: float = STEP_SIGMAS,
) -> LceResult:
    """SLLS-based LCE of one slot (Algorithm 2 steps 1-6, eqs. 30-36).

    Parameters
    ----------
    problem : the slot's data.
    alpha0 : ``[2JL + 3]`` [m, rad, m], the initial point ``α_[0]``.
    max_iterations : ``M_I``, at most this many updates.
    step_tolerance : [m, rad], stop when the Gauss-Newton step's largest entry is below.
    step_sigmas : stop when the Gauss-Newton step is shorter than this many standard
        deviations of the estimate (the FIM's metric at the iterate, with the problem's
        ``σ²``; :func:`descend`); ``0``: off.
    armijo_slope : ``a`` of (36).
    armijo_shrink : ``ν`` of the backtracking (``γ ← ν γ`` from ``γ = 1``).
    max_backtracks : trials of the line search before giving up.
    direction : ``"projected"`` (variable projection; default) or ``"alternating"``
        ((34) with ``h`` held at (30)); see the module docstring.

    Returns
    -------
    :class:`LceResult` with ``method = "slls"``.

    References
    ----------
    Zhou, Liu, Lau 2019, eqs. (24), (30)-(36), Theorem 2 (37), Algorithm 2.
    """
    return descend(problem, alpha0, method="slls", max_iterations=max_iterations,
                    step_tolerance=step_tolerance, armijo_slope=armijo_slope,
                    armijo_shrink=armijo_shrink, max_backtracks=max_backtracks,
                    direction=direction, initial_step=1.0, growth=1.0,
                    step_sigmas=step_sigmas)


