"""The paper's baselines (Zhou, Liu, Lau 2019, §VII-A): two LCE and two BFR methods.

* **GD-LCE** (:func:`gd_lce`, the paper's "GD-based LCE [33]"): steepest descent on the
  LCE cost ``F`` (24) with Armijo backtracking (36); the trial step starts at ``growth``
  times the last accepted one (Beck-Teboulle's backtracking for ``growth = 1``).
* **LS-LCE** (:func:`ls_lce`, "LS-based LCE [34]"): read from the cited Dai (2002) as
  Polak-Ribière-Polyak conjugate gradient (``β = max(0, β_PRP)``, restarted on ``-∇F``
  when not a sufficient descent direction) with the same Armijo backtracking.
* **GD-BFR** (:func:`gd_bfr`): projected gradient on the BFR cost κ (23) over
  ``‖ω_j[n, m]‖ ≤ 1``, Armijo along the projection arc.
* **LMI-BFR** (:func:`lmi_bfr`): the FIM maximisation as Schur-complement LMIs in the
  beam covariances (SDP relaxation of ``W = ω ω^H``, cvxpy + SCS), then a rank-one
  extraction (Gaussian randomisation by default).

Both LCE baselines minimise the same ``F`` as SLLS with the same stopping measure
(:func:`estimators.slab.lce.descend`); both BFR baselines the same κ
(:class:`estimators.slab.bfr.BfrProblem`). Readings and the convexity that makes all BFR
methods share one optimum: docs/estimators/slab.md, "LCE" and "BFR".

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: (23), (24), (36),
(28)-(29), §VII-A. A. Beck, M. Teboulle, 2009 (the paper's [33]); Y.-H. Dai, Acta Math.
Appl. Sinica 18(1), 2002 (the paper's [34]); D. P. Bertsekas, Nonlinear Programming,
1999, §2.3; Z.-Q. Luo et al., IEEE Signal Process. Mag. 27(3), 2010 (randomisation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from estimators.observe import complex_normal
from estimators.slab.bfr import (
    _UNIT_NORM_ATOL,
    BfrProblem,
    BfrResult,
    IterateCallback,
    _check_line_search,
    _duality_gap,
    _gradient,
    _hermitian,
    beam_covariance,
    beam_norms,
    feature_trace,
    full_power,
    project_to_ball,
)
from estimators.slab.lce import STEP_SIGMAS, LceProblem, LceResult, descend
from estimators.typing import ComplexArray

Extraction = Literal["randomization", "eigenvector", "equal-norm"]


@dataclass(frozen=True)
class LmiBfrResult(BfrResult):
    """:func:`lmi_bfr`'s result, with the relaxation.

    Attributes
    ----------
    covariance : ``[bs, subcarrier, bs_ant, bs_ant]`` complex128, the SDP's ``S_{j,n}``
        (made exactly feasible: PSD, trace at most ``M``).
    relaxation_value : the SDP optimum as the solver reports it, on κ's scale: a lower
        bound on κ of any feasible BF vectors up to the solver's tolerance (SCS's
        objective can be off by more than the relaxation gap: use ``lower_bound``).
    relaxed_cost : κ evaluated exactly at ``covariance``: an upper bound on the SDP
        optimum, at least ``lower_bound``.
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


# --------------------------------------------------------------------- GD-LCE, LS-LCE


def gd_lce(
    problem: LceProblem, alpha0: npt.ArrayLike, *, max_iterations: int = 500,
    step_tolerance: float = 1e-7, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 60, initial_step: float = 1.0, growth: float = 2.0,
    step_sigmas: float = STEP_SIGMAS,
) -> LceResult:
    """GD-based LCE baseline (§VII-A, [33]): steepest descent on ``F`` with Armijo steps.

    Parameters
    ----------
    problem, alpha0 : as :func:`slls`.
    max_iterations, step_tolerance, armijo_slope, armijo_shrink, max_backtracks,
    step_sigmas : as :func:`slls` (the same stopping measure: the Gauss-Newton step at
        the iterate).
    initial_step : [m, rad], largest entry of the first trial step.
    growth : each later trial step is ``growth`` times the last accepted one
        (``1``: Beck-Teboulle's non-increasing backtracking).

    Returns
    -------
    :class:`LceResult` with ``method = "gd-lce"``.

    References
    ----------
    Zhou, Liu, Lau 2019, (24), (36), §VII-A; Beck, Teboulle 2009.
    """
    return descend(problem, alpha0, method="gd-lce", max_iterations=max_iterations,
                    step_tolerance=step_tolerance, armijo_slope=armijo_slope,
                    armijo_shrink=armijo_shrink, max_backtracks=max_backtracks,
                    direction="projected", initial_step=initial_step, growth=growth,
                    step_sigmas=step_sigmas)


def ls_lce(
    problem: LceProblem, alpha0: npt.ArrayLike, *, max_iterations: int = 500,
    step_tolerance: float = 1e-7, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 60, initial_step: float = 1.0, growth: float = 2.0,
    step_sigmas: float = STEP_SIGMAS,
) -> LceResult:
    """LS-based LCE baseline (§VII-A, [34]): PRP+ conjugate gradient on ``F`` with
    Armijo-type backtracking (reading: module docstring).

    Parameters
    ----------
    problem, alpha0, max_iterations, step_tolerance, armijo_slope, armijo_shrink,
    max_backtracks, initial_step, growth, step_sigmas : as :func:`gd_lce`.

    Returns
    -------
    :class:`LceResult` with ``method = "ls-lce"``.

    References
    ----------
    Zhou, Liu, Lau 2019, (24), (36), §VII-A; Dai 2002.
    """
    return descend(problem, alpha0, method="ls-lce", max_iterations=max_iterations,
                    step_tolerance=step_tolerance, armijo_slope=armijo_slope,
                    armijo_shrink=armijo_shrink, max_backtracks=max_backtracks,
                    direction="projected", initial_step=initial_step, growth=growth,
                    step_sigmas=step_sigmas)


# ------------------------------------------------------------------- multi-start


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
    gram0 = _hermitian(feature_trace(problem.gain_features, S0).sum(axis=1))
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
    S = _feasible_part(S, M)
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


def _feasible_part(S: ComplexArray, num_beams: int) -> ComplexArray:
    """Each ``[..., N, N]`` made feasible for the relaxation: its Hermitian PSD part, scaled
    down to trace ``num_beams`` where above it (the solver's iterate is PSD and within the
    trace constraint only to its tolerance; κ of an infeasible ``S`` can lie below the
    relaxation's optimum, and below :meth:`BfrProblem.lower_bound`)."""
    values, vectors = np.linalg.eigh(_hermitian(S))
    values = np.clip(values, 0, None)
    values *= np.minimum(1.0, num_beams / np.maximum(values.sum(axis=-1, keepdims=True),
                                                     np.finfo(np.float64).tiny))
    return np.asarray(np.einsum("...ij,...j,...kj->...ik", vectors, values, vectors.conj()))


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
            white = complex_normal(rng, shape)
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
