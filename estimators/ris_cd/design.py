"""Robust RIS phase design for CFR-fingerprint positioning ("correlation dispersion",
Sang et al. §II-C, §II-D, §III): one RIS configuration ``θ`` that spreads the pilot
fingerprints of physically adjacent blocks apart (the worst case over a bounded
channel-estimation error) while every QoS block keeps a worst-case rate.

The fingerprint of block ``i`` is ``h_i(θ) = A_i v``, ``v = [θ; 1]``, ``A_i [pilot,
element + 1]`` (the cascaded channel per element after the fixed precoder, the last
column the direct link; eqs. 3–4), ``|θ_e| = 1``, its cascaded part uncertain by
``‖Δ_i‖_F ≤ ε_i`` (eqs. 6–7). The closed forms of the worst cases (eqs. 8, 9, 15:
:func:`worst_case_distance_sq`, :func:`worst_case_rates`), problem (10) in epigraph form,
its semidefinite relaxation (eqs. 16–20), the S-procedure LMIs (Lemma 1, eqs. 21–27;
QoS eqs. 28–31; ``lmi="compact"`` / ``"kronecker"``), the closed-form ``lmi="norm"``
variant, the SCA rank-one refinement (eqs. 32–36, Algorithm 1), the rescaling and the
size of the cones are derived in docs/estimators/ris_cd.md ("RIS design (§III): the
derivation"); scripts/ris_cd/bench.py measures the cost (docs/BENCHMARKS.md).

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and
Positioning Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme",
arXiv 2212.00241: CFR model (3)-(4), uncertainty (6)-(7), worst-case distance (8), rate
(9), problem (10), confidence radius (14), pair bound (15), lifting (16)-(20), Lemma 1
(21)-(26), LMI (27), QoS (28)-(31), rank-one penalty (32)-(36), Algorithm 1.
Z.-Q. Luo, J. F. Sturm, S. Zhang, "Multivariate nonnegative quadratic mappings", SIAM
J. Optim. 14(4), 2004 (S-procedure, Prop. 3.4).
X. Yu, D. Xu, Y. Sun, D. W. K. Ng, R. Schober, "Robust and secure wireless
communications via intelligent reflecting surfaces", IEEE JSAC 38(11), 2020 (the
``tr V − ‖V‖_2`` penalty).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from estimators.observe import complex_normal
from estimators.typing import ComplexArray, FloatArray, IntArray

LmiForm = Literal["compact", "kronecker", "norm"]

#: Solver statuses whose primal point is used (SCS stops at its own tolerance).
_SOLVED = ("optimal", "optimal_inaccurate")
_TINY = 1e-300


# ------------------------------------------------------------------------ problem


@dataclass(frozen=True)
class DesignProblem:
    """One RIS design instance (eqs. 3-10), in SI units.

    Attributes
    ----------
    fingerprint_matrices : ``[block, pilot, element + 1]`` complex128, ``A_i``: columns
        ``0..N-1`` the cascaded channel of each RIS element on each pilot (estimate,
        precoding folded in), the last column the direct link (known exactly; ~0 when
        blocked). The pilot CFR of block ``i`` is ``A_i [θ; 1]``.
    block_positions : ``[block, 3]`` [m], the sampling points (block centres).
    neighbours : ``[pair, 2]`` int64, index pairs ``i < j`` of physically adjacent blocks
        (:func:`neighbour_pairs`); eq. (10)'s ``𝒩_i``.
    error_bound : ``[block]`` (or one scalar for all), ``ε_i ≥ 0``, the Frobenius bound
        on the error of block ``i``'s cascaded matrix, in the units of ``A``.
    qos_blocks : ``[qos]`` int64, the blocks with a rate constraint.
    rate_min : ``R_min`` [bit/s/Hz], the worst-case rate each QoS block must keep.
    pilot_power : ``[pilot]`` [W], the power allocation ``p_k`` (``Σ_k p_k`` the total).
    noise_variance : ``σ²`` [W] per subcarrier.
    """

    fingerprint_matrices: ComplexArray
    block_positions: FloatArray
    neighbours: IntArray
    error_bound: FloatArray
    qos_blocks: IntArray
    rate_min: float
    pilot_power: FloatArray
    noise_variance: float

    def __post_init__(self) -> None:
        A = np.asarray(self.fingerprint_matrices, dtype=np.complex128)
        positions = np.asarray(self.block_positions, dtype=np.float64)
        pairs = np.asarray(self.neighbours, dtype=np.int64).reshape(-1, 2)
        eps = np.asarray(self.error_bound, dtype=np.float64)
        qos = np.asarray(self.qos_blocks, dtype=np.int64).reshape(-1)
        power = np.asarray(self.pilot_power, dtype=np.float64).reshape(-1)
        if A.ndim != 3 or A.shape[2] < 2 or A.shape[1] < 1 or A.shape[0] < 2:
            raise ValueError("fingerprint_matrices: expected [block >= 2, pilot, element + 1 "
                             f">= 2] complex, got shape {A.shape}")
        B, P, _ = A.shape
        if eps.ndim == 0:
            eps = np.full(B, float(eps))
        if eps.shape != (B,):
            raise ValueError(f"error_bound: expected [{B}] or a scalar, got {eps.shape}")
        if not np.all(np.isfinite(A)):
            raise ValueError("fingerprint_matrices: non-finite entries")
        if positions.shape != (B, 3):
            raise ValueError(f"block_positions: expected [{B}, 3], got {positions.shape}")
        if pairs.size and (np.any(pairs[:, 0] >= pairs[:, 1]) or pairs.min() < 0
                           or pairs.max() >= B):
            raise ValueError(f"neighbours: expected pairs i < j of block indices < {B}")
        if np.any(~np.isfinite(eps)) or np.any(eps < 0):
            raise ValueError("error_bound: expected finite ε_i >= 0")
        if qos.size and (qos.min() < 0 or qos.max() >= B or np.unique(qos).size != qos.size):
            raise ValueError(f"qos_blocks: expected distinct block indices < {B}")
        if power.shape != (P,) or np.any(power < 0) or not np.all(np.isfinite(power)):
            raise ValueError(f"pilot_power: expected [{P}] finite, >= 0, got {power.shape}")
        if not (np.isfinite(self.noise_variance) and self.noise_variance > 0):
            raise ValueError(f"noise_variance: expected > 0, got {self.noise_variance}")
        if not (np.isfinite(self.rate_min) and self.rate_min >= 0):
            raise ValueError(f"rate_min: expected >= 0 bit/s/Hz, got {self.rate_min}")
        object.__setattr__(self, "fingerprint_matrices", A)
        object.__setattr__(self, "block_positions", positions)
        object.__setattr__(self, "neighbours", pairs)
        object.__setattr__(self, "error_bound", eps)
        object.__setattr__(self, "qos_blocks", qos)
        object.__setattr__(self, "pilot_power", power)
        object.__setattr__(self, "rate_min", float(self.rate_min))
        object.__setattr__(self, "noise_variance", float(self.noise_variance))

    @property
    def num_blocks(self) -> int:
        return int(self.fingerprint_matrices.shape[0])

    @property
    def num_pilots(self) -> int:
        return int(self.fingerprint_matrices.shape[1])

    @property
    def num_elements(self) -> int:
        """``N``, RIS elements (``element + 1`` columns of ``A``)."""
        return int(self.fingerprint_matrices.shape[2] - 1)


def neighbour_pairs(block_positions: npt.ArrayLike, radius: float) -> IntArray:
    """``[pair, 2]`` int64: all ``i < j`` with ``‖p_i − p_j‖ ≤ radius`` (3-D Euclidean
    distance of ``block_positions [block, 3]`` [m]; horizontal when the blocks share a
    height), eq. (10)'s ``𝒩_i`` with ``radius`` from
    :func:`estimators.ris_cd.model.confidence_radius`."""
    p = np.asarray(block_positions, dtype=np.float64)
    distance = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    i, j = np.nonzero(np.triu(distance <= radius, k=1))
    return np.stack([i, j], axis=1).astype(np.int64)


def uniform_phases(num_elements: int) -> ComplexArray:
    """``θ = 1 [element]``: every element at phase 0 (the paper's "uniform" baseline)."""
    return np.ones(num_elements, dtype=np.complex128)


def random_phases(num_elements: int, rng: np.random.Generator) -> ComplexArray:
    """``θ_e = e^{jφ_e}``, ``φ_e ~ U[0, 2π)`` i.i.d. ``[element]`` (the random baseline)."""
    return np.exp(2j * np.pi * rng.random(num_elements))


# ------------------------------------------------------------------ closed forms


def _augmented(problem: DesignProblem, theta: npt.ArrayLike) -> tuple[ComplexArray, float]:
    t = np.asarray(theta, dtype=np.complex128).reshape(-1)
    if t.size != problem.num_elements:
        raise ValueError(f"theta: expected [{problem.num_elements}], got {t.shape}")
    return np.append(t, 1.0), float(np.linalg.norm(t))


def nominal_distance_sq(problem: DesignProblem, theta: npt.ArrayLike) -> FloatArray:
    """``‖(A_i − A_j) v‖² [pair]`` for the estimated channels (no error)."""
    v, _ = _augmented(problem, theta)
    A = problem.fingerprint_matrices
    i, j = problem.neighbours.T
    return np.asarray(np.sum(np.abs((A[i] - A[j]) @ v) ** 2, axis=-1))


def worst_case_distance_sq(problem: DesignProblem, theta: npt.ArrayLike) -> FloatArray:
    """Eq. (8) per neighbour pair, in closed form ``[pair]``:
    ``min_{‖Δ‖_F ≤ ε_i + ε_j} ‖(A_i − A_j + [Δ, 0]) v‖² = max(0, ‖(A_i − A_j) v‖ −
    (ε_i + ε_j) ‖θ‖)²`` (docs/estimators/ris_cd.md)."""
    _, norm_theta = _augmented(problem, theta)
    i, j = problem.neighbours.T
    eps = problem.error_bound[i] + problem.error_bound[j]
    return np.asarray(np.maximum(0.0, np.sqrt(nominal_distance_sq(problem, theta))
                                 - eps * norm_theta) ** 2)


def _rates(problem: DesignProblem, gain_sq: FloatArray) -> FloatArray:
    snr = problem.pilot_power * gain_sq / problem.noise_variance
    return np.asarray(np.mean(np.log2(1.0 + snr), axis=-1))


def nominal_rates(problem: DesignProblem, theta: npt.ArrayLike) -> FloatArray:
    """Eq. (9) ``[block]`` [bit/s/Hz] on the estimated channels:
    ``R_i = (1/P) Σ_k log2(1 + p_k |a_ik v|² / σ²)``."""
    v, _ = _augmented(problem, theta)
    return _rates(problem, np.abs(problem.fingerprint_matrices @ v) ** 2)


def worst_case_rates(problem: DesignProblem, theta: npt.ArrayLike) -> FloatArray:
    """Eq. (9) ``[block]`` [bit/s/Hz] with each ``|h_ik|`` at its worst case
    ``max(0, |a_ik v| − ε_i ‖θ‖)`` over the per-pilot bound ``‖δ_ik‖ ≤ ε_i`` (eq. 30's
    infimum; docs/estimators/ris_cd.md)."""
    v, norm_theta = _augmented(problem, theta)
    magnitude = np.abs(problem.fingerprint_matrices @ v)
    worst = np.maximum(0.0, magnitude - problem.error_bound[:, None] * norm_theta)
    return _rates(problem, worst**2)


# ------------------------------------------------------------------- the LMIs


def _distance_lmi(cp: Any, D: ComplexArray, V: Any, t: Any, eps: float, N: int,
                  form: LmiForm) -> list[Any]:
    """Constraints making ``t`` a lower bound of pair distance ``f(δ)`` for all
    ``‖δ‖ ≤ eps`` (eq. 27; ``form`` as in docs/estimators/ris_cd.md); ``V``'s first ``N``
    rows are ``θ``'s."""
    P = D.shape[0]
    nominal = cp.real(cp.trace((D.conj().T @ D) @ V))
    if eps == 0:
        return [t <= nominal]
    lam = cp.Variable(nonneg=True)
    G = D @ V[:, :N]
    if form == "kronecker":
        b = cp.reshape(cp.vec(G, order="F"), (P * N, 1), order="F")
        top = cp.kron(cp.transpose(V[:N, :N]), np.eye(P)) + lam * np.eye(P * N)
        corner = cp.reshape(nominal - t - lam * eps**2, (1, 1), order="F")
        M = cp.bmat([[top, b], [cp.conj(cp.transpose(b)), corner]])
    else:
        # A 1 x 1 Hermitian variable trips a cvxpy warning; it is real anyway.
        W = cp.Variable((P, P), hermitian=True) if P > 1 else cp.Variable((1, 1))
        M = cp.bmat([[W, G], [cp.conj(cp.transpose(G)), V[:N, :N] + lam * np.eye(N)]])
        return [(M + M.H) / 2 >> 0, cp.real(cp.trace(W)) <= nominal - t - lam * eps**2]
    return [(M + M.H) / 2 >> 0]


def _gain_lmi(cp: Any, a: ComplexArray, V: Any, gamma: Any, eps: float, N: int) -> list[Any]:
    """Constraints making ``gamma`` a lower bound of ``|(a + [δ, 0]) v|²`` for all
    ``‖δ‖ ≤ eps`` (eq. 31)."""
    nominal = cp.real(cp.trace(np.outer(a.conj(), a) @ V))
    if eps == 0:
        return [gamma <= nominal]
    mu = cp.Variable(nonneg=True)
    b = cp.reshape(a @ V[:, :N], (N, 1), order="F")
    corner = cp.reshape(nominal - gamma - mu * eps**2, (1, 1), order="F")
    M = cp.bmat([[cp.transpose(V[:N, :N]) + mu * np.eye(N), b],
                 [cp.conj(cp.transpose(b)), corner]])
    return [(M + M.H) / 2 >> 0]


def sprocedure_bounds(
    problem: DesignProblem, theta: npt.ArrayLike, *, lmi: LmiForm = "compact",
    solver: str = "SCS", solver_options: dict[str, Any] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """The S-procedure LMIs of :func:`design_ris` at the fixed rank-one ``V = v v^H``.

    Maximises ``t`` over ``λ ≥ 0`` (eq. 27) per neighbour pair and ``γ_ik`` over
    ``μ ≥ 0`` (eq. 31) per QoS block and pilot. Lemma 1 is lossless, so these equal the
    closed forms ``worst_case_distance_sq`` and ``max(0, |a_ik v| − ε_i‖θ‖)²`` up to the
    solver's tolerance — the check of the LMIs the design relies on.

    Returns
    -------
    ``(distance_sq [pair], gain_sq [qos, pilot])`` in the units of ``A``².

    Raises
    ------
    ArithmeticError
        if the solver returns no solution.
    """
    import cvxpy as cp

    if lmi == "norm":
        raise ValueError("sprocedure_bounds: lmi must be 'compact' or 'kronecker' (the "
                         "S-procedure forms)")
    v, _ = _augmented(problem, theta)
    s = _scale(problem)
    scaled = _rescaled(problem, s)
    A, N = _lifted(scaled)
    v = v[:A.shape[-1]]
    V = cp.Constant(np.outer(v, v.conj()))
    eps = scaled.error_bound
    pairs, qos, P = scaled.neighbours, scaled.qos_blocks, scaled.num_pilots
    t = cp.Variable(len(pairs))
    gamma = cp.Variable((qos.size, P))
    constraints: list[Any] = []
    for p, (i, j) in enumerate(pairs):
        constraints += _distance_lmi(cp, A[i] - A[j], V, t[p], eps[i] + eps[j], N, lmi)
    for q, i in enumerate(qos):
        for k in range(P):
            constraints += _gain_lmi(cp, A[i, k], V, gamma[q, k], eps[i], N)
    sdp = cp.Problem(cp.Maximize(cp.sum(t) + cp.sum(gamma)), constraints)
    _solve(sdp, solver, _options(solver, solver_options))
    if sdp.status not in _SOLVED:
        raise ArithmeticError(f"sprocedure_bounds: solver {solver} failed: {sdp.status}")
    distance = np.asarray(t.value, dtype=np.float64).reshape(len(pairs)) * s**2
    gain = np.asarray(gamma.value, dtype=np.float64).reshape(qos.size, P) * s**2
    return distance, gain


# ------------------------------------------------------------------- the design


@dataclass(frozen=True)
class DesignResult:
    """:func:`design_ris`'s result.

    Attributes
    ----------
    theta : ``[element]`` complex128, the unit-modulus phases (NaN where no design exists).
    objective : ``min_pairs d_ij(θ)``, the worst-case minimum squared CFR distance of
        ``theta`` by the closed form (eq. 8), in the units of ``A``².
    rates : ``[qos]`` [bit/s/Hz], worst-case rates of ``theta`` (eq. 9 with
        :func:`worst_case_rates`), in the order of ``qos_blocks``.
    rank_one_gap : ``[iteration]``, ``(tr V − λ_max(V)) / tr V`` of the SDR solution
        (index 0) and of every SCA iterate.
    objective_history : ``[iteration]``, the penalised objective
        ``t − η (tr V − λ_max(V))`` (eqs. 35-36, with the exact ``λ_max``) of the same
        iterates, with ``η = penalty_history``, in the units of ``A``²: non-decreasing
        (up to the solver's tolerance) wherever ``η`` stays the same.
    converged : the rank-one gap reached ``tolerance`` and ``theta`` meets every rate
        constraint within ``rate_tolerance``.
    reason : why not, empty when ``converged``.
    solve_time_s : wall time of the whole design [s].
    sdr_bound : ``t`` of the SDR (the relaxation of problem 10): no unit-modulus ``θ``
        meeting the rate constraints does better than this, up to the solver's tolerance
        (NaN when the SDR has no solution). With ``lmi="norm"`` and QoS blocks, the
        first solve's ``t``, not a bound (docs/estimators/ris_cd.md).
    penalty_history : ``[iteration]``, the ``η`` of each iterate's objective, in the
        units of ``A``² per unit of ``tr V − λ_max(V)``; the iterate after it was
        computed with it.
    status : the solver's status at the last solve.
    """

    theta: ComplexArray
    objective: float
    rates: FloatArray
    rank_one_gap: FloatArray
    objective_history: FloatArray
    converged: bool
    reason: str
    solve_time_s: float
    sdr_bound: float
    penalty_history: FloatArray
    status: str

    @property
    def iterations(self) -> int:
        """SCA iterations run after the SDR."""
        return max(int(self.rank_one_gap.size) - 1, 0)


def design_ris(
    problem: DesignProblem,
    *,
    rng: np.random.Generator,
    solver: str = "SCS",
    penalty: float = 1.0,
    penalty_growth: float = 10.0,
    stall_tolerance: float = 1e-3,
    max_iterations: int = 30,
    tolerance: float = 1e-5,
    rate_tolerance: float = 1e-3,
    lmi: LmiForm = "compact",
    randomisations: int = 32,
    solver_options: dict[str, Any] | None = None,
) -> DesignResult:
    """Robust RIS phases for positioning under a QoS constraint: problem (10) by SDR and
    SCA rank-one refinement (§III, Algorithm 1; docs/estimators/ris_cd.md for the LMIs).

    Parameters
    ----------
    problem : the instance; needs at least one neighbour pair.
    rng : used only when the refinement does not reach ``tolerance``: ``randomisations``
        Gaussian draws ``ξ ~ CN(0, V)`` of the last iterate compete with its principal
        eigenvector (the best feasible one by the closed forms is returned).
    solver : cvxpy solver name (SCS for these SDPs: PSD and second-order cones).
    penalty : ``η`` relative to the SDR optimum: ``η = penalty · max(t_SDR, 10⁻³ P s²)``
        (``s²`` the problem's scale), i.e. a unit of ``tr V − ‖V‖_2``
        costs ``penalty`` times the relaxation's objective.
    penalty_growth : ``η`` is multiplied by this when the refinement stalls: an
        iteration that improves the penalised objective by less than
        ``stall_tolerance`` (relative) without reaching ``tolerance`` (a stationary point
        of a penalty too weak to force rank one; Algorithm 1's "adjusting the penalty
        factor"). ``1`` keeps ``η`` fixed.
    max_iterations : SCA iterations after the SDR.
    tolerance : on the relative rank-one gap ``(tr V − λ_max(V)) / tr V``.
    rate_tolerance : [bit/s/Hz], the rate shortfall of the extracted ``θ`` (solver
        tolerance, residual rank) accepted as converged.
    lmi : ``"compact"`` (``(P + N)``-square LMI per pair) or ``"kronecker"`` (eq. 27
        as written, ``(PN + 1)``-square); equivalent. ``"norm"``: the closed-form
        robust distance and tangent QoS gains, the same designs much
        faster; the objective history and penalty are then in the units of ``A``
        (the epigraph variable is ``√t``).
    randomisations : Gaussian draws of the fallback (see ``rng``).
    solver_options : passed to ``cvxpy.Problem.solve``; SCS defaults
        ``eps_abs = eps_rel = 1e-6``, ``max_iters = 100000``.

    Returns
    -------
    :class:`DesignResult`. An infeasible rate target (the SDR itself infeasible: then no
    ``θ`` meets it for every admissible error), a solver failure or a refinement that
    does not reach ``tolerance`` come back as ``converged=False`` with the reason.

    Raises
    ------
    ValueError
        if the problem has no neighbour pair (nothing to spread apart).

    References
    ----------
    Sang et al. (module references), problem (10), (16)-(20), Lemma 1 (26)-(27),
    (29)-(31), (32)-(36), Algorithm 1.
    """
    import cvxpy as cp

    start = time.perf_counter()
    if len(problem.neighbours) == 0:
        raise ValueError("design_ris: the problem has no neighbour pairs")
    if penalty <= 0 or penalty_growth < 1 or max_iterations < 0 or tolerance <= 0:
        raise ValueError("design_ris: expected penalty > 0, penalty_growth >= 1, "
                         "max_iterations >= 0, tolerance > 0")
    s = _scale(problem)
    scaled = _rescaled(problem, s)
    sdp, V, t, weight, tangents = _relaxation(cp, scaled, lmi)
    N, n = problem.num_elements, V.shape[0]
    weight.value = np.zeros((n, n), dtype=np.complex128)
    options = _options(solver, solver_options)

    def solve() -> str:
        try:
            _solve(sdp, solver, options, warm_start=True)
        except cp.error.SolverError as error:
            return f"solver_error ({error})"
        return str(sdp.status)

    status = solve()
    if status not in _SOLVED or V.value is None:
        infeasible = status.startswith("infeasible")
        reason = (f"rate target {problem.rate_min} bit/s/Hz is infeasible: the SDR "
                  f"(a relaxation of problem 10) is {status}, so no θ meets it for every "
                  "admissible channel error" if infeasible
                  else f"the SDR was not solved: solver {solver} returned {status}")
        nan = np.full(N, np.nan + 0j)
        return DesignResult(
            theta=nan, objective=float("nan"), rates=np.full(problem.qos_blocks.size, np.nan),
            rank_one_gap=np.zeros(0), objective_history=np.zeros(0), converged=False,
            reason=reason, solve_time_s=time.perf_counter() - start,
            sdr_bound=float("nan"), penalty_history=np.zeros(0), status=status)

    t_sdr = float(t.value)
    # The epigraph variable is t (in A²), or √t (in A) for the "norm" form.
    power = 1 if lmi == "norm" else 2
    eta = penalty * max(t_sdr, (1e-3 * problem.num_pilots) ** (power / 2))
    gaps: list[float] = []
    history: list[float] = []
    etas: list[float] = []
    Vk = _hermitian(np.asarray(V.value))
    reason = ""
    for iteration in range(max_iterations + 1):
        values, vectors = np.linalg.eigh(Vk)
        trace = float(np.sum(values))
        gaps.append((trace - values[-1]) / trace)
        history.append(float(t.value) - eta * (trace - values[-1]))
        etas.append(eta)
        if gaps[-1] <= tolerance:
            break
        if iteration == max_iterations:
            reason = (f"rank-one gap {gaps[-1]:.3g} above tolerance {tolerance:.3g} after "
                      f"{max_iterations} SCA iterations")
            break
        if iteration > 0 and etas[-2] == eta and (
                history[-1] - history[-2] <= stall_tolerance * abs(history[-1])):
            eta *= penalty_growth
        u = vectors[:, -1]
        weight.value = eta * np.outer(u, u.conj())
        tangents(Vk)
        status = solve()
        if status not in _SOLVED or V.value is None:
            reason = f"SCA iteration {iteration + 1}: solver {solver} returned {status}"
            break
        Vk = _hermitian(np.asarray(V.value))

    candidates = [_theta_of(np.linalg.eigh(Vk)[1][:, -1], N)]
    if reason:
        values, vectors = np.linalg.eigh(Vk)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
        # CN(0, 2 I): unit-variance real and imaginary parts; only directions count.
        draws = root @ complex_normal(rng, (n, randomisations), 2.0)
        candidates += [_theta_of(draws[:, m], N) for m in range(randomisations)]
    theta = _best(problem, candidates, rate_tolerance)
    objective = float(np.min(worst_case_distance_sq(problem, theta)))
    rates = worst_case_rates(problem, theta)[problem.qos_blocks]
    shortfall = float(np.max(problem.rate_min - rates, initial=0.0))
    if shortfall > rate_tolerance:
        reason = "; ".join(filter(None, [reason, (
            f"the extracted θ misses the rate target by {shortfall:.3g} bit/s/Hz "
            f"(> rate_tolerance {rate_tolerance:.3g})")]))
    return DesignResult(
        theta=theta, objective=objective, rates=rates,
        rank_one_gap=np.asarray(gaps), objective_history=s**power * np.asarray(history),
        converged=not reason, reason=reason, solve_time_s=time.perf_counter() - start,
        sdr_bound=(t_sdr * s) ** 2 if power == 1 else t_sdr * s**2,
        penalty_history=s**power * np.asarray(etas), status=status)


def _relaxation(cp: Any, problem: DesignProblem, form: LmiForm
                ) -> tuple[Any, Any, Any, Any, Callable[[ComplexArray], None]]:
    """The SDR of problem (10) with the SCA term ``Re tr(W V)`` (``W = η u u^H`` a
    parameter; zero for the SDR itself): ``(problem, V, t, W, tangents)``. For
    ``form="norm"`` the epigraph variable is ``√t`` and ``tangents(V)`` moves the QoS
    gains' tangent points to ``V``; a no-op for the S-procedure forms."""
    A, N = _lifted(problem)
    n, P, eps = A.shape[-1], problem.num_pilots, problem.error_bound
    V = cp.Variable((n, n), hermitian=True)
    t = cp.Variable()
    weight = cp.Parameter((n, n), hermitian=True)
    constraints: list[Any] = [V >> 0, cp.real(cp.diag(V)) == 1]
    if form == "norm":
        i, j = problem.neighbours.T
        D = A[i] - A[j]
        # tr(D^H D V) = Σ_ef (D^H D)_ef V_fe for every pair: [pair, n·n] @ vec(V) (column-major).
        gram = np.einsum("pke,pkf->pef", D.conj(), D).reshape(len(D), n * n)
        nominal = cp.real(gram @ cp.vec(V, order="F"))
        constraints += [t + (eps[i] + eps[j]) * np.sqrt(N) <= cp.sqrt(nominal)]
    else:
        for i, j in problem.neighbours:
            constraints += _distance_lmi(cp, A[i] - A[j], V, t, eps[i] + eps[j], N, form)
    qos = problem.qos_blocks
    snr_per_gain = problem.pilot_power / problem.noise_variance
    tangents: Callable[[ComplexArray], None] = lambda _: None  # noqa: E731
    if qos.size:
        gamma = cp.Variable((qos.size, P), nonneg=True)
        if form == "norm":
            a = A[qos].reshape(qos.size * P, n)
            # |a v|² = a V a^H = Σ_ef a_e V_ef conj(a_f): [qos·pilot, n·n] @ vec(V).
            gram = np.einsum("ke,kf->kfe", a, a.conj()).reshape(len(a), n * n)
            nominal = cp.reshape(cp.real(gram @ cp.vec(V, order="F")), (qos.size, P),
                                 order="C")
            slope = cp.Parameter((qos.size, P), nonneg=True)
            offset = cp.Parameter((qos.size, P))
            constraints += [gamma <= cp.multiply(slope, nominal) + offset]
            c = (eps[qos] * np.sqrt(N))[:, None]
            # First tangent point: the gain that meets R_min with equal pilots.
            needed = (2.0**problem.rate_min - 1) / np.where(snr_per_gain > 0,
                                                            snr_per_gain, np.inf)
            first = (c + np.sqrt(needed)[None, :]) ** 2 + _TINY

            def tangents(Vk: ComplexArray) -> None:
                gain = np.real(np.einsum("qke,ef,qkf->qk", A[qos], Vk, A[qos].conj()))
                point = np.where(gain > c**2 * (1 + 1e-9), gain, first)
                root = np.sqrt(point)
                slope.value = 1 - c / root
                offset.value = c**2 - c * root

            tangents(np.zeros((n, n), dtype=np.complex128))
        else:
            for q, i in enumerate(qos):
                for k in range(P):
                    constraints += _gain_lmi(cp, A[i, k], V, gamma[q, k], eps[i], N)
        snr = cp.multiply(gamma, snr_per_gain[None, :])
        if form == "norm":
            # Σ_k ln(1 + snr_k) ≥ P R ln 2 (exponential cones), the same set as the
            # geometric mean's: with that, cvxpy's compilation grew with n (~5 GB at
            # n = 33, P = 16, 14 QoS blocks; killed at 24 GB for the twin's n = 65).
            constraints += [cp.sum(cp.log(1 + snr), axis=1)
                            >= P * problem.rate_min * np.log(2.0)]
        else:
            constraints += [cp.geo_mean(1 + snr[q]) >= 2.0**problem.rate_min
                            for q in range(qos.size)]
    objective = cp.Maximize(t + cp.real(cp.trace(weight @ V)))
    return cp.Problem(objective, constraints), V, t, weight, tangents


def _best(problem: DesignProblem, candidates: list[ComplexArray],
          rate_tolerance: float) -> ComplexArray:
    """The candidate with the largest worst-case objective among those meeting the rates
    (within ``rate_tolerance``), else the one with the smallest rate shortfall."""
    def key(theta: ComplexArray) -> tuple[bool, float]:
        shortfall = float(np.max(problem.rate_min
                                 - worst_case_rates(problem, theta)[problem.qos_blocks],
                                 initial=0.0))
        if shortfall > rate_tolerance:
            return False, -shortfall
        return True, float(np.min(worst_case_distance_sq(problem, theta)))
    return max(candidates, key=key)


def _lifted(problem: DesignProblem) -> tuple[ComplexArray, int]:
    """``(A [block, pilot, n], N)``: the matrices ``V`` acts on, ``n = N + 1``, or ``n = N``
    (``v = θ``) when every direct link is exactly zero (docs/estimators/ris_cd.md)."""
    A, N = problem.fingerprint_matrices, problem.num_elements
    return (A, N) if np.any(A[..., N] != 0) else (A[..., :N], N)


def _theta_of(w: ComplexArray, N: int) -> ComplexArray:
    """Unit-modulus ``θ [N]`` from a vector ``∝ v`` (``[N + 1]``, or ``[N]`` when
    ``v = θ``): scaled so the last entry of ``v`` is 1 (a phase alignment only when that
    entry vanishes or is absent), each element projected onto ``|θ_e| = 1``."""
    last = w[-1] if w.size > N else 1.0 + 0j
    v = w / last if abs(last) > 1e-9 * np.max(np.abs(w)) else w * np.exp(-1j * np.angle(last))
    theta = np.asarray(v[:N], dtype=np.complex128)
    magnitude = np.abs(theta)
    return np.where(magnitude > 0, theta / np.where(magnitude > 0, magnitude, 1.0), 1.0 + 0j)


def _scale(problem: DesignProblem) -> float:
    """``s``: the typical magnitude of a random-phase fingerprint entry,
    ``rms(A[..., :N]) √N`` (the direct link's rms when the cascade vanishes)."""
    A = problem.fingerprint_matrices
    cascade = float(np.sqrt(np.mean(np.abs(A[..., :-1]) ** 2)) * np.sqrt(problem.num_elements))
    if cascade > 0:
        return cascade
    direct = float(np.sqrt(np.mean(np.abs(A[..., -1]) ** 2)))
    return direct if direct > 0 else 1.0


def _rescaled(problem: DesignProblem, s: float) -> DesignProblem:
    return DesignProblem(
        fingerprint_matrices=problem.fingerprint_matrices / s,
        block_positions=problem.block_positions, neighbours=problem.neighbours,
        error_bound=problem.error_bound / s, qos_blocks=problem.qos_blocks,
        rate_min=problem.rate_min, pilot_power=problem.pilot_power,
        noise_variance=problem.noise_variance / s**2)


def _solve(sdp: Any, solver: str, options: dict[str, Any], **kwargs: Any) -> None:
    with warnings.catch_warnings():
        # Equal weights 1/P: cvxpy's SOC form of the geometric mean is exact (error 0).
        warnings.filterwarnings("ignore", message="geo_mean is being approximated")
        sdp.solve(solver=solver, **options, **kwargs)


def _options(solver: str, options: dict[str, Any] | None) -> dict[str, Any]:
    defaults: dict[str, Any] = (
        {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 100_000} if solver == "SCS" else {})
    return {**defaults, **(options or {})}


def _hermitian(x: ComplexArray) -> ComplexArray:
    return np.asarray((x + x.conj().T) / 2, dtype=np.complex128)
