"""The baselines of DAUN's Fig. 2 and Table I (Fan, Liu, Li, Huang): ``dpd``,
``stansfield``, ``srl`` and ``cvx-direct``.

All see what every grid localizer (:mod:`estimators.daun.grid`) sees: the narrowband
uplink of eq. (1) (one snapshot, a single-antenna user, ``M`` BSs with ``N``-element
arrays and identity combining), and the grid setting ``area``, ``grid_shape``,
``ue_height``, ``num_angles`` (from the observation by default: its service area and
the arrays' resolution), and check every fix the same way (:mod:`estimators.daun.integrity`).

* ``dpd``: direct position determination (Weiss 2004), a grid search of the
  single-snapshot likelihood with an unknown complex gain per BS, optionally polished
  by a continuous local maximisation.
* ``stansfield``: two-step, the LOS AoA of each BS from its beam scan, then Stansfield's
  bearing-only weighted least squares (Gavish & Weiss 1992, the paper's ref. [21]).
* ``srl``: two-step, the LOS AoA of each BS from an l1 sparse reconstruction on a fine
  angle grid (Malioutov, Cetin, Willsky 2005, the paper's ref. [22]; single snapshot,
  so l1-SVD is plain l1), then the same Stansfield fusion.
* ``cvx-direct``: problem (3) solved to optimality by an interior-point solver through
  cvxpy (the paper's "MOSEK" row of Table I, ref. [9]).

Choices where the papers are silent:

* **3-D arrays, known user height.** Steering vectors point at positions at the user's
  height ``ue_height`` (as the dictionary ``A`` of :mod:`estimators.daun.model`). An
  azimuth ``φ`` of BS ``m`` is turned into such a point at a nominal horizontal distance
  ``ρ_m``: the distance to the grid's centre in the first pass, to the previous estimate
  in the following ones (``passes``). When a BS is at the user's height, the direction
  does not depend on ``ρ_m`` and later passes only update Stansfield's weights.
* **AoA search range.** A BS's front half-plane, ``yaw_m + [-π/2, π/2)``, as the angle
  grid of ``B`` (a ULA's response is mirror-symmetric about its axis).
* **Noise levels.** ``dpd`` weights BS ``m`` by ``1/σ_m²`` (the maximum likelihood for
  known, possibly unequal noise variances; Weiss's cost when they are equal).

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eqs. (1)–(3), Fig. 2, Table I.

A. J. Weiss, "Direct position determination of narrowband radio frequency
transmitters", IEEE Signal Process. Lett., 11(5), 2004 (the paper's ref. [8]).

M. Gavish, A. J. Weiss, "Performance analysis of bearing-only target location
algorithms", IEEE Trans. Aerosp. Electron. Syst., 28(3), 1992 (ref. [21]).

D. Malioutov, M. Cetin, A. S. Willsky, "A sparse signal reconstruction perspective for
source localization with sensor arrays", IEEE Trans. Signal Process., 53(8), 2005
(ref. [22]).

N. Garcia, H. Wymeersch, E. G. Larsson, A. M. Haimovich, M. Coulon, "Direct
localization for massive MIMO", IEEE Trans. Signal Process., 65(10), 2017 (ref. [9]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize

from estimators.base import Estimate, EstimatorInputError, grown_most, register
from estimators.daun.grid import PAPER_NUM_ANGLES, GridLocalizer
from estimators.daun.model import DirectLocalizationProblem, normalise
from estimators.types import Area, Observation
from estimators.typing import ComplexArray, FloatArray

#: Solvers ``srl`` and ``cvx-direct`` accept (cvxpy names).
SOLVERS = ("CLARABEL", "SCS")
#: ``cvx-direct``'s ``solver_status`` diagnostic indexes this tuple (cvxpy's statuses,
#: then ``"solver_error"`` for a solver that raised).
SOLVER_STATUSES = ("optimal", "optimal_inaccurate", "infeasible", "infeasible_inaccurate",
                   "unbounded", "unbounded_inaccurate", "infeasible_or_unbounded",
                   "user_limit", "solver_error")


# ------------------------------------------------------------------------------ geometry


def _noise_weights(noise_variance: FloatArray) -> FloatArray:
    """``[sample, bs]``: ``1/σ_m²``; a sample with a noiseless BS weights only its
    noiseless BSs (the limit), all equally."""
    s = np.asarray(noise_variance, dtype=np.float64)
    noiseless = s <= 0
    inverse = 1.0 / np.where(noiseless, 1.0, s)
    return np.where(noiseless.any(axis=-1, keepdims=True), noiseless.astype(float), inverse)


# ---------------------------------------------------------------------------------- DPD


def dpd_cost(problem: DirectLocalizationProblem, y: ComplexArray,
             weights: FloatArray) -> FloatArray:
    """Weiss's single-snapshot DPD cost on the grid: ``[sample, grid]``,
    ``Σ_m w_m |a_m(Φ_k)^H y_m|² / ‖a_m(Φ_k)‖²``, for ``y [sample, bs, bs_ant]`` and
    weights ``[sample, bs]`` (``1/σ_m²`` for the likelihood).

    Maximising it over ``Φ_k`` is the maximum-likelihood position when each BS sees
    ``y_m = b_m a_m(p) + n_m`` with an unknown complex ``b_m`` (concentrated out).

    References
    ----------
    Weiss 2004, eqs. (4)–(8) with one snapshot; Fan et al., ref. [8].
    """
    norms = np.sum(np.abs(problem.A) ** 2, axis=1)  # [bs, grid], the columns' ‖a‖²
    projection = np.abs(np.einsum("mnk,smn->smk", problem.A.conj(), y)) ** 2
    return np.einsum("sm,smk->sk", weights, projection / norms)


def _dpd_refine(problem: DirectLocalizationProblem, y: ComplexArray, weights: FloatArray,
                start: FloatArray) -> FloatArray:
    """The continuous DPD cost maximised by L-BFGS-B within one grid cell of ``start
    [3]`` [m] (analytic gradient): ``[3]`` [m] at the user's height."""
    k = 2 * np.pi / problem.wavelength
    r = problem.element_positions  # [bs, N, 3]
    N = r.shape[1]
    scale = float(np.sum(weights * np.sum(np.abs(y) ** 2, axis=-1)))

    def negative_cost(xy: FloatArray) -> tuple[float, FloatArray]:
        d = np.append(xy, problem.ue_height) - problem.bs_position  # [bs, 3]
        dist = np.linalg.norm(d, axis=-1, keepdims=True)
        u = d / dist
        phase = np.exp(-1j * k * np.einsum("mnc,mc->mn", r, u))  # conj(a)
        g = np.sum(phase * y, axis=-1)  # a^H y, [bs]
        dg = np.einsum("mn,mnc->mc", -1j * k * phase * y, r)  # d(a^H y)/du, [bs, 3]
        d_power = 2 * np.real(g.conj()[:, None] * dg)  # d|g|²/du
        jac = (np.eye(3) - u[:, :, None] * u[:, None, :]) / dist[:, :, None]  # du/dp
        grad = np.einsum("m,mc,mcj->j", weights, d_power, jac)[:2] / N
        return -float(weights @ np.abs(g) ** 2) / N / scale, -grad / scale

    lower, upper = start[:2] - problem.cell_size, start[:2] + problem.cell_size
    found = optimize.minimize(negative_cost, start[:2], jac=True, method="L-BFGS-B",
                              bounds=list(zip(lower, upper, strict=True)),
                              options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 200})
    return np.append(found.x, problem.ue_height)


@register
class Dpd(GridLocalizer):
    """DPD: the position grid point maximising :func:`dpd_cost` (an exhaustive search);
    with ``refine``, polished by a continuous local maximisation (L-BFGS-B, exact steering
    vectors at the user's height, within one grid cell of the grid maximum).

    Diagnostics: ``explained``, the fraction of the weighted energy ``Σ_m w_m ‖y_m‖²``
    the best grid point's responses explain (1 for a noiseless LOS-only user on it).

    References
    ----------
    Weiss 2004; Fan et al., ref. [8], Fig. 2, Table I.
    """

    name = "dpd"

    def __init__(
        self,
        *,
        refine: bool = False,
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
    ) -> None:
        super().__init__(area=area, grid_shape=grid_shape, ue_height=ue_height,
                         num_angles=num_angles)
        self.refine = refine

    def on_grid(self) -> bool:
        return not self.refine

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if not isinstance(self.refine, bool | np.bool_):
            raise EstimatorInputError(f"{self.name}: refine must be a bool, got {self.refine!r}")

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        # The dictionary's conjugate or its columns' squared magnitudes (complex128, or
        # float64 twice); the projections [sample, bs, grid] (complex128) with their
        # magnitudes (float64).
        return {"grid_shape": num_grid_points * num_bs * (16.0 * num_antennas
                                                          + 24.0 * num_samples)}

    def _localize(
        self, problem: DirectLocalizationProblem, y: ComplexArray,
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        weights = _noise_weights(noise_variance)
        cost = dpd_cost(problem, y, weights)
        best = np.argmax(cost, axis=1)
        energy = np.sum(weights * np.sum(np.abs(y) ** 2, axis=-1), axis=-1)
        position = problem.grid_points[best].copy()
        if self.refine:
            for s in range(len(y)):
                position[s] = _dpd_refine(problem, y[s], weights[s], position[s])
        return position, {"explained": cost[np.arange(len(y)), best] / energy}


# ---------------------------------------------------------------- two-step: AoA + Stansfield


def stansfield(bs_xy: npt.ArrayLike, bearing: npt.ArrayLike,
               weights: npt.ArrayLike | None = None) -> FloatArray:
    """Stansfield's bearing-only fix: ``argmin_p Σ_m w_m (n_mᵀ (p - p_m))²``, ``n_m =
    [sin φ_m, -cos φ_m]`` (the distance of ``p`` to BS ``m``'s bearing line).

    Parameters
    ----------
    bs_xy : ``[bs, 2]`` [m], the BSs' horizontal positions.
    bearing : ``[bs]`` [rad], azimuths from the BSs towards the user.
    weights : ``[bs]``, ``w_m >= 0`` (default 1): ``1 / d_m²`` for a bearing error of
        equal variance at every BS.

    Returns
    -------
    ``[2]`` [m] (the least-norm solution if the bearings are all parallel).

    References
    ----------
    Gavish & Weiss 1992, §II (the Stansfield estimator); Fan et al., ref. [21].
    """
    p = np.asarray(bs_xy, dtype=np.float64)
    phi = np.asarray(bearing, dtype=np.float64)
    w = np.ones(len(phi)) if weights is None else np.asarray(weights, dtype=np.float64)
    n = np.stack([np.sin(phi), -np.cos(phi)], axis=-1)  # [bs, 2]
    normal = np.einsum("m,mi,mj->ij", w, n, n)
    rhs = np.einsum("m,mi,mj,mj->i", w, n, n, p)
    return np.linalg.lstsq(normal, rhs, rcond=None)[0]


#: ``bearings(geometry, y [bs, bs_ant], noise_variance [bs], distance [bs]) -> [bs]`` [rad].
BearingEstimator = Callable[[DirectLocalizationProblem, ComplexArray, FloatArray, FloatArray],
                            FloatArray]


def bearing_localize(problem: DirectLocalizationProblem, y: ComplexArray,
                     noise_variance: FloatArray, bearings: BearingEstimator, passes: int
                     ) -> tuple[FloatArray, dict[str, FloatArray]]:
    """Two-step localization: each BS's LOS azimuth from ``bearings``, then
    :func:`stansfield`, ``passes`` times. Pass 1: unit weights, steering towards the
    grid's centre distance; each later pass: weights ``1/d_m²`` and (only for BSs off the
    user's height, whose steering depends on it) azimuths re-estimated at the distance
    ``d_m`` to the previous estimate.

    Returns positions ``[sample, 3]`` [m] at the user's height and the diagnostic
    ``miss_distance`` ``[sample]`` [m], the RMS distance of the fix to the bearing lines.

    References
    ----------
    Gavish & Weiss 1992; Fan et al., Fig. 2 (the two-step baselines).
    """
    bs_xy = problem.bs_position[:, :2]
    off_height = np.abs(problem.bs_position[:, 2] - problem.ue_height) > 1e-9
    position = np.empty((len(y), 3))
    miss = np.empty(len(y))
    for s in range(len(y)):
        distance = np.linalg.norm(problem.centre - bs_xy, axis=-1)
        phi = bearings(problem, y[s], noise_variance[s], distance)
        fix = stansfield(bs_xy, phi)
        for _ in range(passes - 1):
            distance = np.maximum(np.linalg.norm(fix - bs_xy, axis=-1), 1e-3)
            if off_height.any():
                phi = np.where(off_height, bearings(problem, y[s], noise_variance[s],
                                                    distance), phi)
            fix = stansfield(bs_xy, phi, 1.0 / distance**2)
        n = np.stack([np.sin(phi), -np.cos(phi)], axis=-1)
        miss[s] = np.sqrt(np.mean(np.einsum("mi,mi->m", n, fix - bs_xy) ** 2))
        position[s] = [fix[0], fix[1], problem.ue_height]
    return position, {"miss_distance": miss}


def _search_azimuths(problem: DirectLocalizationProblem, m: int, count: int) -> FloatArray:
    """``[count]`` [rad]: a uniform grid over BS ``m``'s front half-plane."""
    return problem.bs_yaw[m] + np.arange(count) / count * np.pi - np.pi / 2


def _scan_slope(problem: DirectLocalizationProblem, m: int, y: ComplexArray, azimuth: float,
                distance: float) -> float:
    """``d|a_m(φ)^H y|²/dφ`` at ``azimuth`` [rad], steering as :func:`scan_bearings`."""
    k = 2 * np.pi / problem.wavelength
    r = problem.element_positions[m]
    d = problem.points(m, np.array(azimuth), distance) - problem.bs_position[m]
    dist = float(np.linalg.norm(d))
    u = d / dist
    conj_a = np.exp(-1j * k * (r @ u))
    g = conj_a @ y
    dp = distance * np.array([-np.sin(azimuth), np.cos(azimuth), 0.0])  # d(point)/dφ
    du = (dp - u * (u @ dp)) / dist
    dg = np.sum(-1j * k * (r @ du) * conj_a * y)
    return float(2 * np.real(np.conj(g) * dg))


def scan_bearings(problem: DirectLocalizationProblem, y: ComplexArray, distance: FloatArray,
                  step: float) -> FloatArray:
    """Each BS's beam-scan peak ``argmax_φ |a_m(φ)^H y_m|²`` ``[bs]`` [rad]: a grid of
    ``step`` [rad] over the front half-plane, then the root of the derivative within one
    step of the grid peak (Brent; a bounded search of the power if the derivative does
    not change sign there). ``a_m(φ)`` points at the user's height at horizontal
    ``distance [bs]`` [m]. For one path in white noise this is the maximum-likelihood AoA.

    References
    ----------
    Fan et al., §I (two-step localization: AoA, then triangulation).
    """
    phi = np.empty(problem.num_bs)
    for m in range(problem.num_bs):
        grid = _search_azimuths(problem, m, int(np.ceil(np.pi / step)))
        rho = float(distance[m])

        def power(azimuth: npt.ArrayLike, m: int = m, rho: float = rho) -> FloatArray:
            a = problem.steering(m, problem.points(m, azimuth, rho))
            return np.asarray(np.abs(a.conj() @ y[m]) ** 2)

        def slope(azimuth: float, m: int = m, rho: float = rho) -> float:
            return _scan_slope(problem, m, y[m], azimuth, rho)

        peak = grid[int(np.argmax(power(grid)))]
        lo = max(peak - step, grid[0])
        hi = min(peak + step, problem.bs_yaw[m] + np.pi / 2)
        if slope(lo) > 0 > slope(hi):
            phi[m] = float(optimize.brentq(slope, lo, hi, xtol=1e-15))
        else:
            found = optimize.minimize_scalar(lambda a, f=power: -float(f(np.array(a))),
                                             bounds=(lo, hi), method="bounded",
                                             options={"xatol": 1e-10})
            phi[m] = float(found.x)
    return phi


@register
class Stansfield(GridLocalizer):
    """Two-step baseline: each BS's LOS AoA from its beam scan (:func:`scan_bearings`,
    ``scan_step_rad`` grid), fused by Stansfield's weighted least squares
    (:func:`bearing_localize`, ``passes`` passes).

    Diagnostics: ``miss_distance`` [m].

    References
    ----------
    Gavish & Weiss 1992; Fan et al., ref. [21], Fig. 2.
    """

    name = "stansfield"

    def on_grid(self) -> bool:
        return False

    def __init__(
        self,
        *,
        scan_step_rad: float = float(np.deg2rad(0.1)),
        passes: int = 3,
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
    ) -> None:
        super().__init__(area=area, grid_shape=grid_shape, ue_height=ue_height,
                         num_angles=num_angles)
        self.scan_step_rad = scan_step_rad
        self.passes = passes

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if not (0 < self.scan_step_rad <= np.pi / 2) or self.passes < 1:
            raise EstimatorInputError(
                f"{self.name}: scan_step_rad must be in (0, π/2] and passes >= 1 "
                f"(got {self.scan_step_rad}, {self.passes})")

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        # One BS's scan at a time: its steering vectors, their exponent and conjugate
        # (complex128), and the points, offsets and directions (float64, [scan, 3]).
        scan = int(np.ceil(np.pi / self.scan_step_rad))
        return {"scan_step_rad": scan * (32.0 * num_antennas + 80.0)}

    def _localize(
        self, problem: DirectLocalizationProblem, y: ComplexArray,
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        def bearings(g: DirectLocalizationProblem, ys: ComplexArray, _: FloatArray,
                     distance: FloatArray) -> FloatArray:
            return scan_bearings(g, ys, distance, self.scan_step_rad)

        return bearing_localize(problem, y, noise_variance, bearings, self.passes)


def _check_solver(name: str, solver: str) -> None:
    import cvxpy as cp

    if solver not in SOLVERS or solver not in cp.installed_solvers():
        raise EstimatorInputError(
            f"{name}: solver must be one of {', '.join(SOLVERS)} (installed: "
            f"{', '.join(s for s in SOLVERS if s in cp.installed_solvers())}), got {solver!r}")


def _largest_peak(grid: FloatArray, magnitude: FloatArray) -> float:
    """The azimuth [rad] of the largest peak of an angle spectrum ``magnitude [angle]`` on
    ``grid [angle]``: the largest sum over three neighbouring atoms (an off-grid path's
    amplitude is split between its neighbours), at their ``magnitude``-weighted centroid
    (the grid's ends have one neighbour)."""
    padded = np.pad(magnitude, 1)
    score = padded[:-2] + padded[1:-1] + padded[2:]
    k = int(np.argmax(score))
    window = slice(max(k - 1, 0), k + 2)
    weight = magnitude[window]
    if not weight.sum() > 0:
        return float(grid[k])
    return float(weight @ grid[window] / weight.sum())


def l1_bearings(problem: DirectLocalizationProblem, y: ComplexArray, noise_variance: FloatArray,
                distance: FloatArray, *, num_angles: int, solver: str) -> FloatArray:
    """Each BS's LOS azimuth by sparse reconstruction ``[bs]`` [rad]: ``min ‖z‖₁`` s.t.
    ``‖y_m - B z‖₂ <= β_m`` on ``num_angles`` azimuths over the front half-plane
    (steering as :func:`scan_bearings`), the azimuth of the largest peak of ``|z|``
    (:func:`_largest_peak`: the largest three-atom sum, at its centroid; the single
    largest ``|z_l|`` picks a split LOS's stronger NLOS rival).

    ``β_m = sqrt(σ_m² (N + 2 sqrt(N)))`` (the noise norm's mean plus two standard
    deviations), kept within ``[1e-6, 0.95] ‖y_m‖`` (``z = 0`` is never feasible; near
    the cap the solution is the atom best correlated with ``y_m``). ``y_m`` and ``β_m``
    are scaled by ``1/‖y_m‖`` (the problem is scale-free) for the solver's tolerances.

    References
    ----------
    Malioutov, Cetin, Willsky 2005, §IV (l1-SVD with one snapshot); Fan et al., ref. [22].
    """
    import cvxpy as cp

    N = y.shape[-1]
    phi = np.empty(problem.num_bs)
    for m in range(problem.num_bs):
        grid = _search_azimuths(problem, m, num_angles)
        B = problem.steering(m, problem.points(m, grid, float(distance[m]))).T  # [N, P]
        norm = float(np.linalg.norm(y[m]))
        beta = np.sqrt(max(float(noise_variance[m]), 0.0) * (N + 2 * np.sqrt(N))) / norm
        z = cp.Variable(num_angles, complex=True)
        fit = cp.Problem(cp.Minimize(cp.norm1(z)),
                         [cp.norm(y[m] / norm - B @ z, 2) <= float(np.clip(beta, 1e-6, 0.95))])
        try:
            fit.solve(solver=solver)
            solved = z.value is not None
        except cp.error.SolverError:
            solved = False
        # Without an l1 solution: the atom best correlated with y_m (the limit β -> ‖y‖).
        phi[m] = _largest_peak(grid, np.abs(np.asarray(z.value) if solved
                                            else B.conj().T @ y[m]))
    return phi


@register
class Srl(GridLocalizer):
    """Sparse reconstruction localization: each BS's LOS AoA from an l1 reconstruction
    (:func:`l1_bearings`) on ``oversampling × num_angles`` azimuths, fused by Stansfield's
    weighted least squares (:func:`bearing_localize`, ``passes`` passes). One cvxpy
    problem per BS and pass, ``solver`` ``"CLARABEL"`` or ``"SCS"``.

    Diagnostics: ``miss_distance`` [m].

    References
    ----------
    Malioutov, Cetin, Willsky 2005; Fan et al., ref. [22], Fig. 2.
    """

    name = "srl"

    def on_grid(self) -> bool:
        return False

    def __init__(
        self,
        *,
        oversampling: int = 3,
        solver: str = "CLARABEL",
        passes: int = 3,
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
    ) -> None:
        super().__init__(area=area, grid_shape=grid_shape, ue_height=ue_height,
                         num_angles=num_angles)
        self.oversampling = oversampling
        self.solver = solver
        self.passes = passes

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        _check_solver(self.name, self.solver)
        if self.oversampling < 1 or self.passes < 1:
            raise EstimatorInputError(
                f"{self.name}: oversampling and passes must be >= 1 "
                f"(got {self.oversampling}, {self.passes})")

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        # One l1 problem at a time, compiled by cvxpy and held by the solver: measured
        # (live peak, 1000 to 4000 atoms, 4 to 50 antennas) ~720 bytes an atom and
        # antenna plus ~6 kB an atom (CLARABEL), ~11.5 kB (SCS).
        count = self.oversampling * num_angles
        defaults = self.default_params()
        # num_angles against the paper's L (its default is derived from the observation).
        key = grown_most({"oversampling": self.oversampling / defaults["oversampling"],
                          "num_angles": num_angles / PAPER_NUM_ANGLES})
        per_atom = 750.0 * num_antennas + (11_500.0 if self.solver == "SCS" else 6_000.0)
        return {key: count * per_atom}

    def _localize(
        self, problem: DirectLocalizationProblem, y: ComplexArray,
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        count = self.oversampling * int(problem.B.shape[2])

        def bearings(g: DirectLocalizationProblem, ys: ComplexArray, sigma2: FloatArray,
                     distance: FloatArray) -> FloatArray:
            return l1_bearings(g, ys, sigma2, distance, num_angles=count, solver=self.solver)

        return bearing_localize(problem, y, noise_variance, bearings, self.passes)


# ------------------------------------------------------------------------- problem (3)


@dataclass(frozen=True)
class DirectSolution:
    """One solve of problem (3).

    Attributes
    ----------
    X : ``[grid, bs]`` complex128 (NaN if the solve failed).
    Z : ``[bs, angle]`` complex128 (NaN if the solve failed).
    status : one of :data:`SOLVER_STATUSES`.
    objective : ``‖X‖_{2,1} + w Σ_m ‖z_m‖₁`` at the solution (NaN if failed).
    """

    X: ComplexArray
    Z: ComplexArray
    status: str
    objective: float

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "optimal_inaccurate")


class DirectProgram:
    """Problem (3) for one dictionary set, compiled once (cvxpy, ``y`` a parameter):
    ``min ‖X‖_{2,1} + w Σ_m ‖z_m‖₁`` s.t. ``y_m = A_m x_m + B_m z_m`` ∀m.

    References
    ----------
    Fan et al., eq. (3); Garcia et al. 2017 (solved there with MOSEK).
    """

    def __init__(self, problem: DirectLocalizationProblem, w: float) -> None:
        import cvxpy as cp

        M, N, K = problem.A.shape
        L = problem.B.shape[2]
        self._X = cp.Variable((K, M), complex=True)
        self._Z = cp.Variable((L, M), complex=True)
        self._y = cp.Parameter((N, M), complex=True)
        constraints = [problem.A[m] @ self._X[:, m] + problem.B[m] @ self._Z[:, m]
                       == self._y[:, m] for m in range(M)]
        objective = cp.sum(cp.norm(self._X, 2, axis=1)) + w * cp.sum(cp.abs(self._Z))
        self._program = cp.Problem(cp.Minimize(objective), constraints)

    def solve(self, y: ComplexArray, solver: str) -> DirectSolution:
        """Solve for ``y [bs, bs_ant]`` (normalised, :func:`normalise`)."""
        import cvxpy as cp

        self._y.value = np.asarray(y, dtype=np.complex128).T
        try:
            self._program.solve(solver=solver)
            status = str(self._program.status)
        except cp.error.SolverError:
            status = "solver_error"
        if status not in ("optimal", "optimal_inaccurate") or self._X.value is None:
            nan = np.nan + 0j
            return DirectSolution(np.full(self._X.shape, nan), np.full(self._Z.shape[::-1], nan),
                                  status, float("nan"))
        return DirectSolution(np.asarray(self._X.value), np.asarray(self._Z.value).T, status,
                              float(self._program.value))


@register
class CvxDirect(GridLocalizer):
    """Problem (3) solved to optimality (interior point, ``solver`` ``"CLARABEL"``; or
    ``"SCS"``, first order) through cvxpy on the normalised ``y``, weight ``w`` on every
    BS's ``‖z_m‖₁``; the position is ``Φ_k̂``, ``k̂ = argmax_k ‖[X]_{k,:}‖₂``. The timing
    baseline of Table I ("MOSEK"): seconds per snapshot at the paper's size.

    A solve that fails (a solver error or a status other than optimal /
    optimal_inaccurate) gives ``converged=False`` with the status as reason.

    Diagnostics: ``solver_ok`` (1/0), ``solver_status`` (index into
    :data:`SOLVER_STATUSES`), ``objective``, ``residual`` (``‖y - Ax - Bz‖ / ‖y‖``).

    References
    ----------
    Fan et al., eq. (3), Table I; Garcia et al. 2017 (the paper's ref. [9]).
    """

    name = "cvx-direct"
    #: A derived grid of at most the paper's K = 900 points (Table I's size: problem (3)
    #: costs ~90 kB a point with 4 BSs of 16 elements, and seconds a snapshot).
    max_grid_points = 900

    def __init__(
        self,
        *,
        solver: str = "CLARABEL",
        w: float = 1.0,
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
    ) -> None:
        super().__init__(area=area, grid_shape=grid_shape, ue_height=ue_height,
                         num_angles=num_angles)
        self.solver = solver
        self.w = w

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        _check_solver(self.name, self.solver)
        if not self.w > 0:
            raise EstimatorInputError(f"{self.name}: w must be > 0, got {self.w}")

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        # Problem (3) compiled once by cvxpy and held by the solver: measured (live peak,
        # 900 to 3600 grid points, 100 to 3000 angles, 4 to 24 antennas, both solvers)
        # ~1 kB a column, BS and antenna plus ~6 kB a grid point and BS (its row norm a
        # cone), ~2 kB an angle and BS.
        return {"grid_shape": num_grid_points * num_bs * (1_000.0 * num_antennas + 6_000.0),
                "num_angles": num_angles * num_bs * (1_000.0 * num_antennas + 2_000.0)}

    def _localize(
        self, problem: DirectLocalizationProblem, y: ComplexArray,
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        program = DirectProgram(problem, self.w)
        yn = normalise(y)
        position = np.full((len(y), 3), np.nan)
        found: dict[str, Any] = {k: np.full(len(y), np.nan) for k in
                                 ("solver_ok", "solver_status", "objective", "residual")}
        for s in range(len(y)):
            solution = program.solve(yn[s], self.solver)
            found["solver_ok"][s] = float(solution.ok)
            found["solver_status"][s] = SOLVER_STATUSES.index(solution.status) \
                if solution.status in SOLVER_STATUSES else -1
            if solution.ok:
                position[s] = problem.grid_points[np.argmax(np.linalg.norm(solution.X, axis=1))]
                fit = (np.einsum("mnk,km->mn", problem.A, solution.X)
                       + np.einsum("mnl,ml->mn", problem.B, solution.Z))
                found["objective"][s] = solution.objective
                found["residual"][s] = np.linalg.norm(fit - yn[s]) / np.linalg.norm(yn[s])
        return position, found

    def _estimate(self, obs: Observation, rng: np.random.Generator,
                  on_snapshot: Callable[[int], None]) -> Estimate:
        est = super()._estimate(obs, rng, on_snapshot)
        ok = est.diagnostics.get("solver_ok")
        if ok is None:
            return est
        failed = est.converged & (ok == 0)
        if not failed.any():
            return est
        codes = est.diagnostics["solver_status"]
        reason = list(est.reason)
        for t in np.flatnonzero(failed):
            code = int(codes[t])
            status = SOLVER_STATUSES[code] if 0 <= code < len(SOLVER_STATUSES) else "unknown"
            reason[t] = f"{self.name}: solver {self.solver} returned '{status}'"
        return dataclasses.replace(est, converged=est.converged & ~failed, reason=tuple(reason))
