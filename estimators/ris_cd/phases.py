"""Sang et al.'s robust RIS design (problem 10) directly on the unit-modulus phases: a
first-order alternative to the SDR + SCA of :func:`estimators.ris_cd.design.design_ris`
that scales to real tiles.

Under ``|θ_e| = 1`` the norm ``‖θ‖ = √N`` is a constant, so the closed-form worst cases
(eqs. 8, 9 with the pair bound of eq. 15; :func:`~estimators.ris_cd.design.worst_case_distance_sq`,
:func:`~estimators.ris_cd.design.worst_case_rates`) are smooth functions of the phases
``φ`` (``θ = e^{jφ}``) wherever they do not clip at 0:

``f_p(φ) = ‖(A_i − A_j) v‖ − (ε_i + ε_j) √N``  (``d_ij = max(0, f_p)²``, pair ``p = (i, j)``),
``R_q(φ) = (1/P) Σ_k log2(1 + p_k max(0, |a_qk v| − ε_q √N)² / σ²)``.

Problem (10) is ``max_φ min_p f_p`` subject to ``R_q ≥ R_min`` (maximising the clipped
square is the same wherever the optimum is positive). :func:`design_ris_phases` solves it
by a prox-linear (trust-region) method on the exact-penalty merit
``M(φ) = min_p f_p − μ max(0, max_q (R_min − R_q))``: each step maximises the
linearisation of ``M`` minus ``‖δ‖² / (2α)`` — a small QP (the element phases, the
epigraph variable and the rate slack; one linear constraint per pair the step can make the
smallest and per QoS block), solved by Clarabel — and is accepted by the ratio of the
actual to the predicted gain of ``M``, ``α`` doubled or quartered by that ratio
(docs/estimators/ris_cd.md, "RIS design on the phases"). Only the fingerprints'
products with ``v`` and their gradients are formed, so the cost per step is
``O((pair + qos) · pilot · element)``: no lifted ``(N + 1)``-square matrix, no cone.

:func:`group_problem` turns a design per element into one per element group (one common
phase per sub-array, the grouping the twin's tiles use): the same closed-form objective
and rates for the expanded phases (:func:`expand_groups`).

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and
Positioning Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme",
arXiv 2212.00241: worst-case distance (8), rate (9), problem (10), pair bound (15).
A. S. Lewis, S. J. Wright, "A proximal method for composite minimization", Math.
Program. 158, 2016 (the prox-linear step and its acceptance test).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse

from estimators.ris_cd.design import (
    DesignProblem,
    DesignResult,
    _best,
    _rescaled,
    _scale,
    worst_case_distance_sq,
    worst_case_rates,
)
from estimators.typing import ComplexArray, FloatArray, IntArray

_TINY = 1e-300

# ------------------------------------------------------------------ element groups


def group_problem(problem: DesignProblem, groups: npt.ArrayLike) -> DesignProblem:
    """The design instance of one common phase per element group.

    With ``θ_e = φ_{g(e)}`` the fingerprint ``A_i [θ; 1]`` is ``A'_i [φ; 1]`` with
    ``A'_i``'s column ``g`` the sum of group ``g``'s element columns; the error term
    ``‖Δ_i θ‖ ≤ ε_i ‖θ‖ = ε_i √N`` becomes ``ε'_i ‖φ‖`` with ``ε'_i = ε_i √(N / G)``.
    So the grouped problem's closed-form worst cases at ``φ`` are the element problem's
    at :func:`expand_groups` ``(φ, groups)`` (eqs. 8, 9, 15).

    Parameters
    ----------
    problem : the per-element instance, ``N`` elements.
    groups : ``[element]`` int, the group ``0 .. G-1`` of every element; every group
        non-empty.

    Returns
    -------
    The :class:`~estimators.ris_cd.design.DesignProblem` over ``G`` group phases.
    """
    group = _groups(problem.num_elements, groups)
    count = int(group.max()) + 1
    A = problem.fingerprint_matrices
    # [element, group + 1] 0/1: the element's group column (the direct link kept apart).
    membership = np.zeros((problem.num_elements + 1, count + 1))
    membership[np.arange(problem.num_elements), group] = 1.0
    membership[-1, -1] = 1.0
    summed = A @ membership
    return DesignProblem(
        fingerprint_matrices=summed, block_positions=problem.block_positions,
        neighbours=problem.neighbours,
        error_bound=problem.error_bound * np.sqrt(problem.num_elements / count),
        qos_blocks=problem.qos_blocks, rate_min=problem.rate_min,
        pilot_power=problem.pilot_power, noise_variance=problem.noise_variance)


def expand_groups(phases: npt.ArrayLike, groups: npt.ArrayLike) -> ComplexArray:
    """``θ [element]`` from the group phases ``φ [group]``: ``θ_e = φ_{g(e)}``."""
    phi = np.asarray(phases, dtype=np.complex128).reshape(-1)
    group = np.asarray(groups, dtype=np.int64).reshape(-1)
    return np.asarray(phi[group])


def _groups(num_elements: int, groups: npt.ArrayLike) -> IntArray:
    group = np.asarray(groups, dtype=np.int64).reshape(-1)
    if group.shape != (num_elements,) or group.min() < 0:
        raise ValueError(f"groups: expected [{num_elements}] group indices >= 0, got "
                         f"shape {group.shape}")
    if np.unique(group).size != int(group.max()) + 1:
        raise ValueError("groups: expected every group 0 .. G-1 to hold an element")
    return group


# ------------------------------------------------------------- the smooth pieces


@dataclass(frozen=True)
class _Pieces:
    """``f_p``, ``R_q`` and their gradients in ``φ`` at one point (scaled units)."""

    distance: FloatArray  # [pair]  f_p
    distance_grad: FloatArray  # [pair, element]
    rate: FloatArray  # [qos]  R_q [bit/s/Hz]
    rate_grad: FloatArray  # [qos, element]


class _Model:
    """The scaled instance's ``f_p`` and ``R_q`` (module docstring) as functions of
    ``φ [element]`` [rad]."""

    def __init__(self, problem: DesignProblem) -> None:
        A, N = problem.fingerprint_matrices, problem.num_elements
        B, P = problem.num_blocks, problem.num_pilots
        self.A, self.N = A, N
        i, j = problem.neighbours.T
        self.pairs = problem.neighbours
        self.pair_margin = (problem.error_bound[i] + problem.error_bound[j]) * np.sqrt(N)
        # Pair p's row of a sparse [pair, block·pilot] map: +w on i's pilots, −w on j's.
        self.rows = np.repeat(np.arange(len(i)), 2 * P)
        self.cols = np.concatenate([i[:, None] * P + np.arange(P),
                                    j[:, None] * P + np.arange(P)], axis=1).reshape(-1)
        self.stacked = B * P
        self.flat = A[..., :N].reshape(B * P, N)
        self.qos = problem.qos_blocks
        self.qos_margin = problem.error_bound[self.qos] * np.sqrt(N)
        self.snr_per_gain = problem.pilot_power / problem.noise_variance
        self.rate_min = problem.rate_min

    def theta(self, phi: FloatArray) -> ComplexArray:
        return np.exp(1j * phi)

    def cfr(self, phi: FloatArray) -> ComplexArray:
        """``h_i = A_i v [block, pilot]``."""
        return np.asarray(self.A @ np.append(self.theta(phi), 1.0))

    def values(self, phi: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(f [pair], R [qos])``."""
        h = self.cfr(phi)
        difference = h[self.pairs[:, 0]] - h[self.pairs[:, 1]]
        distance = np.linalg.norm(difference, axis=1) - self.pair_margin
        return distance, self._rates(np.abs(h[self.qos]))[0]

    def _rates(self, magnitude: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``R_q [qos]`` and ``∂R_q / ∂|a_qk v| [qos, pilot]``."""
        worst = np.maximum(0.0, magnitude - self.qos_margin[:, None])
        snr = self.snr_per_gain * worst**2
        rate = np.mean(np.log2(1.0 + snr), axis=-1)
        slope = 2 * self.snr_per_gain * worst / ((1.0 + snr) * np.log(2.0) * worst.shape[-1])
        return np.asarray(rate), np.asarray(slope)

    def pieces(self, phi: FloatArray) -> _Pieces:
        theta = self.theta(phi)
        h = self.cfr(phi)
        difference = h[self.pairs[:, 0]] - h[self.pairs[:, 1]]
        norm = np.linalg.norm(difference, axis=1)
        unit = difference.conj() / np.maximum(norm, _TINY)[:, None]
        # ∂‖h_p‖/∂φ_e = Re(u_p^H (A_i − A_j)[:, e] j θ_e) = −Im((u_p^H (A_i − A_j))_e θ_e).
        scatter = scipy.sparse.csr_matrix(
            (np.concatenate([unit, -unit], axis=1).reshape(-1), (self.rows, self.cols)),
            shape=(len(norm), self.stacked))
        distance_grad = -np.imag((scatter @ self.flat) * theta)
        hq = h[self.qos]
        magnitude = np.abs(hq)
        rate, slope = self._rates(magnitude)
        phase = hq.conj() / np.maximum(magnitude, _TINY)
        rate_grad = -np.imag(np.einsum("qk,qke->qe", slope * phase,
                                       self.A[self.qos, :, :self.N]) * theta)
        return _Pieces(norm - self.pair_margin, np.asarray(distance_grad), rate,
                       np.asarray(rate_grad))

    def dominant_phases(self) -> list[FloatArray]:
        """The deterministic starts: ``φ`` of the principal eigenvector of
        ``Σ_p (A_i − A_j)^H (A_i − A_j)`` (the maximiser of the summed nominal pair
        distance over ``‖v‖² = N + 1``) and, with QoS blocks, of ``Σ_{q,k} a_qk^H a_qk``
        (their summed gain: a start whose worst-case rates are not all clipped at 0,
        where eq. 9's gradient vanishes)."""
        P = self.A.shape[1]
        full = self.A.reshape(self.stacked, -1)
        # [pair·pilot, block·pilot]: row (p, k) takes A_ik − A_jk.
        signs = np.tile(np.r_[np.ones(P), -np.ones(P)], len(self.pairs))
        per_pilot = scipy.sparse.csr_matrix(
            (signs, (self.rows * P + self.cols % P, self.cols)),
            shape=(len(self.pairs) * P, self.stacked))
        grams = [full.conj().T @ ((per_pilot.T @ per_pilot) @ full)]
        if self.qos.size:
            gains = self.A[self.qos].reshape(-1, full.shape[1])
            grams.append(gains.conj().T @ gains)
        return [self._phases_of(np.linalg.eigh((g + g.conj().T) / 2)[1][:, -1])
                for g in grams]

    def _phases_of(self, vector: ComplexArray) -> FloatArray:
        """``φ`` of ``v ∝ vector``, its last entry (the direct link's) at phase 0."""
        turn = np.exp(-1j * np.angle(vector[-1])) if self.A.shape[2] > self.N else 1.0
        return np.asarray(np.angle(vector[:self.N] * turn))


def _restoration(problem: DesignProblem) -> _Model | None:
    """The worst-case QoS gains as a max-min of the same form: ``max_φ min_{q,k}
    (|a_qk v| − ε_q √N)``, one pseudo-pair per QoS block and pilot against a zero block
    (eq. 15 with ``ε = 0`` for the zero block). Its gradient does not vanish where eq. (9)
    clips at 0, so it lifts a start whose short QoS blocks are clipped on every pilot."""
    qos = problem.qos_blocks
    if qos.size == 0:
        return None
    n = problem.fingerprint_matrices.shape[2]
    gains = problem.fingerprint_matrices[qos].reshape(-1, 1, n)
    count = len(gains)
    return _Model(DesignProblem(
        fingerprint_matrices=np.concatenate([np.zeros((1, 1, n)), gains]),
        block_positions=np.zeros((count + 1, 3)),
        neighbours=np.column_stack([np.zeros(count, dtype=np.int64), np.arange(1, count + 1)]),
        error_bound=np.r_[0.0, np.repeat(problem.error_bound[qos], problem.num_pilots)],
        qos_blocks=np.zeros(0, dtype=np.int64), rate_min=0.0, pilot_power=np.ones(1),
        noise_variance=1.0))


def _clipped(pieces: _Pieces, rate_min: float) -> bool:
    """Whether every QoS block short of ``rate_min`` has every pilot clipped at 0 (eq. 9):
    then no step moves a short rate."""
    short = pieces.rate < rate_min
    return bool(np.any(short) and not np.any(pieces.rate_grad[short]))


@dataclass
class _Ascent:
    """One start's result: the phases, the merit history and whether the step test
    stopped it (rather than the iteration cap)."""

    phi: FloatArray
    merit: list[float]
    penalty: list[float]
    stationary: bool


def _merit(distance: FloatArray, rate: FloatArray, rate_min: float, mu: float) -> float:
    shortfall = float(np.max(rate_min - rate, initial=0.0))
    return float(np.min(distance)) - mu * shortfall


def _prox_linear_step(pieces: _Pieces, rate_min: float, mu: float, alpha: float
                      ) -> FloatArray:
    """``δ [element]`` maximising ``min_p (f_p + g_p δ) − μ max(0, max_q (R_min − R_q −
    h_q δ)) − ‖δ‖² / (2α)``: the QP over ``(δ, t, s)`` minimising ``‖δ‖² / (2α) − t +
    μ s`` subject to ``t ≤ f_p + g_p δ``, ``s ≥ R_min − R_q − h_q δ``, ``s ≥ 0``, by
    Clarabel's interior point (exact where a first-order dual solver stalled on the
    twin's thousands of nearly active pairs)."""
    import clarabel

    f, G = pieces.distance, pieces.distance_grad
    H = pieces.rate_grad
    N, q = G.shape[1], H.shape[0]
    quadratic = scipy.sparse.diags(np.r_[np.full(N, 1.0 / alpha), 0.0, 0.0], format="csc")
    linear = np.r_[np.zeros(N), -1.0, mu]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    # Only pairs the step can make the smallest enter the QP: ‖δ‖ ≤ α max ‖g_p‖ while the
    # rates' weights are 0; the pairs left out are checked after the solve and, where the
    # step made one smaller than t, added.
    row_norm = np.linalg.norm(G, axis=1)
    reach = alpha * float(np.max(row_norm))
    near = f - reach * row_norm <= np.min(f + reach * row_norm)
    while True:
        rows = np.nonzero(near)[0]
        constraints = np.block([
            [-G[rows], np.ones((rows.size, 1)), np.zeros((rows.size, 1))],
            [-H, np.zeros((q, 1)), -np.ones((q, 1))],
            [np.zeros((1, N + 1)), -np.ones((1, 1))]])
        bound = np.concatenate([f[rows], pieces.rate - rate_min, [0.0]])
        solution = clarabel.DefaultSolver(
            quadratic, linear, scipy.sparse.csc_matrix(constraints), bound,
            [clarabel.NonnegativeConeT(bound.size)], settings).solve()
        x = np.asarray(solution.x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            # No step (a failed solve): the ascent stops here, as at a stationary point.
            return np.zeros(N)
        below = ~near & (f + G @ x[:N] < x[N])
        if not np.any(below):
            return x[:N]
        near |= below


def _ascend(model: _Model, phi: FloatArray, mu: float, *, max_iterations: int,
            tolerance: float) -> _Ascent:
    """The trust-region prox-linear ascent of the merit ``M`` (module docstring) from
    ``phi``."""
    pieces = model.pieces(phi)
    merit = _merit(pieces.distance, pieces.rate, model.rate_min, mu)
    alpha = 0.1 / max(float(np.max(np.linalg.norm(pieces.distance_grad, axis=1))), _TINY)
    history, penalties = [merit], [mu]
    for _ in range(max_iterations):
        step = _prox_linear_step(pieces, model.rate_min, mu, alpha)
        predicted = _merit(pieces.distance + pieces.distance_grad @ step,
                           pieces.rate + pieces.rate_grad @ step, model.rate_min, mu) - merit
        if predicted <= tolerance * (abs(merit) + 1e-3):
            return _Ascent(phi, history, penalties, True)
        if _clipped(pieces, model.rate_min):
            return _Ascent(phi, history, penalties, False)
        trial = phi + step
        distance, rate = model.values(trial)
        gained = _merit(distance, rate, model.rate_min, mu) - merit
        ratio = gained / predicted
        if ratio >= 0.1:
            phi = np.mod(trial, 2 * np.pi)
            pieces = model.pieces(phi)
            merit += gained
            history.append(merit)
            penalties.append(mu)
        if ratio > 0.75:
            alpha *= 2.0
        elif ratio < 0.25:
            alpha /= 4.0
    return _Ascent(phi, history, penalties, False)


# ------------------------------------------------------------------- the design


def design_ris_phases(
    problem: DesignProblem,
    *,
    rng: np.random.Generator,
    starts: int = 4,
    initial: Sequence[npt.ArrayLike] = (),
    max_iterations: int = 300,
    tolerance: float = 1e-6,
    rate_tolerance: float = 1e-3,
    penalty: float = 10.0,
    penalty_growth: float = 10.0,
    penalty_rounds: int = 3,
) -> DesignResult:
    """Robust RIS phases for positioning under a QoS constraint: problem (10) by a
    prox-linear ascent on the unit-modulus phases (module docstring), from several starts.

    The same problem as :func:`estimators.ris_cd.design.design_ris` (the closed-form
    worst-case minimum pair distance, eqs. 8 and 15, under the worst-case rates of eq. 9),
    without the lifting: the cost per step grows linearly with the elements, so a
    32 × 32 tile per element is in reach (scripts/ris_cd/bench.py). A local method: the
    best of the starts is returned. A start whose QoS blocks short of ``R_min`` are
    clipped at 0 on every pilot (eq. 9's gradient vanishes there: random phases on a
    large tile with CSI errors) is first lifted by the same ascent on
    ``max_φ min_{q,k} (|a_qk v| − ε_q √N)``, the worst-case QoS gains.

    Parameters
    ----------
    problem : the instance; needs at least one neighbour pair.
    rng : draws the ``starts`` random starts (i.i.d. uniform phases).
    starts : random starts, besides ``initial`` and the principal-eigenvector starts (the
        phases of the maximisers of the summed nominal pair distance and, with QoS
        blocks, of their summed gain).
    initial : further starts ``θ [element]`` (e.g. an SDR design); only their phases count.
    max_iterations : prox-linear steps per start and penalty round.
    tolerance : a start stops when the predicted gain of the merit is below
        ``tolerance · (|M| + 10⁻³)`` (scaled units: ``A / rms(A) √N``).
    rate_tolerance : [bit/s/Hz], the rate shortfall accepted as meeting ``R_min``.
    penalty : the exact penalty ``μ`` of the rate shortfall, relative to the ratio of the
        largest pair-distance gradient to the largest rate gradient at the start; grown
        by ``penalty_growth`` for at most ``penalty_rounds − 1`` further rounds while the
        start still misses the rate.

    Returns
    -------
    :class:`~estimators.ris_cd.design.DesignResult` with ``objective`` and ``rates`` by
    the closed forms on ``problem``; ``rank_one_gap = [0]`` (``θ`` is rank one by
    construction: no SDR), ``sdr_bound`` NaN; ``objective_history`` the merit ``M``
    of the returned start at each accepted step and ``penalty_history`` its ``μ``, both
    in the units of ``A`` (``M`` is the root ``√d``, less ``μ`` times the rate
    shortfall); ``status`` ``"stationary"`` or ``"iteration cap"``. ``converged`` is
    false, with the reason, when the returned start stopped on the cap or misses the
    rate by more than ``rate_tolerance``.

    Raises
    ------
    ValueError
        if the problem has no neighbour pair, or a setting is out of range.

    References
    ----------
    Sang et al. (module references), eqs. (8), (9), (10), (15).
    """
    start_time = time.perf_counter()
    if len(problem.neighbours) == 0:
        raise ValueError("design_ris_phases: the problem has no neighbour pairs")
    if (starts < 0 or max_iterations < 1 or tolerance <= 0 or penalty <= 0
            or penalty_growth < 1 or penalty_rounds < 1):
        raise ValueError("design_ris_phases: expected starts >= 0, max_iterations >= 1, "
                         "tolerance > 0, penalty > 0, penalty_growth >= 1, "
                         "penalty_rounds >= 1")
    N = problem.num_elements
    s = _scale(problem)
    scaled = _rescaled(problem, s)
    model, restoration = _Model(scaled), _restoration(scaled)
    points = [np.angle(np.asarray(t, dtype=np.complex128).reshape(N)) for t in initial]
    points += model.dominant_phases()
    points += [2 * np.pi * rng.random(N) for _ in range(starts)]
    results = []
    for phi in points:
        pieces = model.pieces(phi)
        if restoration is not None and _clipped(pieces, model.rate_min):
            phi = _ascend(restoration, phi, 1.0, max_iterations=max_iterations,
                          tolerance=tolerance).phi
            pieces = model.pieces(phi)
        rate_scale = float(np.max(np.linalg.norm(pieces.rate_grad, axis=1), initial=0.0))
        mu = penalty * float(np.max(np.linalg.norm(pieces.distance_grad, axis=1))) / max(
            rate_scale, _TINY) if rate_scale > 0 else penalty
        merit: list[float] = []
        penalties: list[float] = []
        for _ in range(penalty_rounds):
            ascent = _ascend(model, phi, mu, max_iterations=max_iterations,
                             tolerance=tolerance)
            phi, merit, penalties = ascent.phi, merit + ascent.merit, penalties + ascent.penalty
            _, rate = model.values(phi)
            if float(np.max(model.rate_min - rate, initial=0.0)) <= rate_tolerance / 10:
                break
            mu *= penalty_growth
        results.append(_Ascent(phi, merit, penalties, ascent.stationary))
    thetas = [np.exp(1j * r.phi) for r in results]
    theta = _best(problem, thetas, rate_tolerance)
    chosen = results[next(k for k, t in enumerate(thetas) if t is theta)]
    objective = float(np.min(worst_case_distance_sq(problem, theta)))
    rates = worst_case_rates(problem, theta)[problem.qos_blocks]
    shortfall = float(np.max(problem.rate_min - rates, initial=0.0))
    reasons = []
    if not chosen.stationary:
        reasons.append(f"the best start stopped at the cap of {max_iterations} steps")
    if shortfall > rate_tolerance:
        reasons.append(f"θ misses the rate target by {shortfall:.3g} bit/s/Hz "
                       f"(> rate_tolerance {rate_tolerance:.3g}) from every start")
    return DesignResult(
        theta=theta, objective=objective, rates=rates, rank_one_gap=np.zeros(1),
        objective_history=s * np.asarray(chosen.merit),
        converged=not reasons, reason="; ".join(reasons),
        solve_time_s=time.perf_counter() - start_time, sdr_bound=float("nan"),
        penalty_history=s * np.asarray(chosen.penalty),
        status="stationary" if chosen.stationary else "iteration cap")
