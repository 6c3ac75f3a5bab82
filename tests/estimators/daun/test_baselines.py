"""DAUN's baselines (Fan et al., Fig. 2 and Table I): ``dpd``, ``stansfield``, ``srl``,
``cvx-direct`` on a small version of the paper's synthetic setting."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import numpy.typing as npt
import pytest

from estimators.base import ESTIMATORS, Estimator, EstimatorInputError
from estimators.daun.baselines import (
    SOLVER_STATUSES,
    CvxDirect,
    Dpd,
    Srl,
    Stansfield,
    solve_direct,
    stansfield,
)
from estimators.daun.model import DaunScenario, narrowband_uplink, normalise
from tests.tolerances import FLOAT64_ABS

#: Small paper setting: 16-element ULAs, K = 10 x 10 (4 m cells), L = 32, LOS only.
SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32, num_nlos=0)
GRID: dict[str, Any] = {"grid_shape": (10, 10), "num_angles": 32}
CELL_M = 4.0
#: 30 dB, 16 antennas: errors of the continuous estimators (dpd with refine, stansfield)
#: and of srl (3 x 32 angles, peak centroid) measured <= 0.048 m over 30 users (3 seeds);
#: ~5x margin. A wrong bearing is off by metres.
HIGH_SNR_ABS_M = 0.25
#: Noiseless, user exactly modelled: bearings from the derivative's root (Brent, xtol
#: 1e-15 rad) and the 2 x 2 least squares, measured <= 2e-14 m in the plane; off the
#: BSs' height after 4 passes (linear convergence, ratio ~3e-3 at 10 m) <= 4e-10 m.
NOISELESS_ABS_M = 1e-6
#: cvx-direct's equality constraints at Clarabel's default tolerances (1e-8).
CONSTRAINT_REL = 1e-5


@dataclass(frozen=True)
class Placed(DaunScenario):
    """The scenario with users at chosen positions and BSs at ``bs_height`` [m]."""

    users: tuple[tuple[float, float, float], ...] = ()
    bs_height: float = 0.0

    def positions(self, count: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return np.array(self.users, dtype=np.float64)[:count]

    def bs_position(self) -> npt.NDArray[np.float64]:
        return np.array([[x, y, self.bs_height] for x, y in self.bs_xy])


def within_one_cell(estimate: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Whether each estimate is the grid point nearest the user or one of its 8
    neighbours."""
    nearest = grid[np.argmin(np.linalg.norm(truth[:, None, :2] - grid[None, :, :2], axis=-1),
                             axis=1)]
    return np.all(np.abs(estimate[:, :2] - nearest[:, :2]) <= CELL_M * (1 + 1e-9), axis=1)


def test_import_registers_the_four_baselines() -> None:
    for name, cls in [("dpd", Dpd), ("stansfield", Stansfield), ("srl", Srl),
                      ("cvx-direct", CvxDirect)]:
        assert ESTIMATORS[name] is cls


@pytest.mark.parametrize("estimator, grid_limited", [
    (Dpd(**GRID), True), (CvxDirect(**GRID), True), (Dpd(refine=True, **GRID), False),
    (Stansfield(**GRID), False), (Srl(**GRID), False),
], ids=["dpd", "cvx-direct", "dpd-refine", "stansfield", "srl"])
def test_high_snr_localization(estimator: Estimator, grid_limited: bool) -> None:
    obs, truth = SMALL.sample(30.0, 4, np.random.default_rng(7))
    est = estimator.estimate(obs)
    assert est.converged.all()
    if grid_limited:
        assert within_one_cell(est.ue_position, truth, SMALL.problem().grid_points).all()
    else:
        error = np.linalg.norm(est.ue_position - truth, axis=1)
        assert np.all(error < HIGH_SNR_ABS_M), error
    np.testing.assert_allclose(est.ue_position[:, 2], SMALL.height)


def test_dpd_noiseless_user_on_a_grid_point() -> None:
    """On a grid point, noiseless, LOS only: the cost there explains all of the energy
    (``|a^H a|² / ‖a‖² = ‖y‖²`` per BS), and it is the one returned."""
    users = ((-14.0, 6.0, 0.0), (2.0, -18.0, 0.0), (18.0, 18.0, 0.0))
    scenario = Placed(**{**vars(SMALL), "users": users})
    obs, truth = scenario.sample(np.inf, len(users), np.random.default_rng(0))
    assert np.all(obs.noise_variance == 0)
    est = Dpd(**GRID).estimate(obs)
    np.testing.assert_array_equal(est.ue_position, truth)
    np.testing.assert_allclose(est.diagnostics["explained"], 1.0, atol=FLOAT64_ABS)


@pytest.mark.parametrize("bs_height", [0.0, 10.0])
def test_noiseless_continuous_estimators_are_exact(bs_height: float) -> None:
    """Off-grid users, noiseless: dpd's refinement and stansfield return the exact
    position; with BSs above the users, the first pass's nominal distance biases the
    scan and the re-passes remove it."""
    users = ((-13.3, 6.1, 0.0), (2.7, -17.9, 0.0), (3.3, 7.7, 0.0))
    scenario = Placed(**{**vars(SMALL), "users": users, "bs_height": bs_height})
    obs, truth = scenario.sample(np.inf, len(users), np.random.default_rng(0))
    for estimator in (Dpd(refine=True, **GRID), Stansfield(passes=4, **GRID)):
        error = np.linalg.norm(estimator.estimate(obs).ue_position - truth, axis=1)
        assert np.all(error < NOISELESS_ABS_M), (estimator.name, error)
    one_pass = np.linalg.norm(Stansfield(passes=1, **GRID).estimate(obs).ue_position - truth,
                              axis=1)
    if bs_height:
        assert np.all(one_pass > 1e-3)  # measured 1.8e-3 .. 2.1e-2 m
    else:  # the direction does not depend on the nominal distance
        assert np.all(one_pass < NOISELESS_ABS_M)


def test_stansfield_fix_from_exact_bearings() -> None:
    rng = np.random.default_rng(4)
    bs = np.array(SMALL.bs_xy)
    for _ in range(5):
        p = rng.uniform(-20, 20, size=2)
        bearing = np.arctan2(p[1] - bs[:, 1], p[0] - bs[:, 0])
        distance = np.linalg.norm(p - bs, axis=1)
        for weights in (None, 1 / distance**2):
            np.testing.assert_allclose(stansfield(bs, bearing, weights), p,
                                       atol=FLOAT64_ABS * 100)


def test_cvx_direct_solution_is_feasible_and_no_worse_than_feasible_points() -> None:
    obs, _ = dataclasses.replace(SMALL, num_nlos=2).sample(10.0, 1, np.random.default_rng(2))
    problem = CvxDirect(**GRID).problem(obs)
    y = normalise(narrowband_uplink(obs)[0])[0]  # [bs, bs_ant]
    w = 0.7
    solution = solve_direct(problem, y, w=w, solver="CLARABEL")
    assert solution.ok and solution.status == "optimal"
    fit = (np.einsum("mnk,km->mn", problem.A, solution.X)
           + np.einsum("mnl,ml->mn", problem.B, solution.Z))
    assert np.linalg.norm(fit - y) / np.linalg.norm(y) < CONSTRAINT_REL
    objective = (np.sum(np.linalg.norm(solution.X, axis=1))
                 + w * np.sum(np.abs(solution.Z)))
    assert objective == pytest.approx(solution.objective, rel=CONSTRAINT_REL)
    # Feasible points: z_m = B_m⁺ y_m with X = 0, and x_m = A_m⁺ y_m with z = 0.
    z_only = w * sum(np.sum(np.abs(np.linalg.pinv(problem.B[m]) @ y[m]))
                     for m in range(problem.num_bs))
    x_only = np.sum(np.linalg.norm(np.stack(
        [np.linalg.pinv(problem.A[m]) @ y[m] for m in range(problem.num_bs)], axis=1), axis=1))
    assert solution.objective <= min(z_only, x_only) * (1 + CONSTRAINT_REL)


def test_cvx_direct_with_scs_and_diagnostics() -> None:
    obs, truth = SMALL.sample(30.0, 2, np.random.default_rng(7))
    est = CvxDirect(solver="SCS", **GRID).estimate(obs)
    assert est.converged.all()
    assert within_one_cell(est.ue_position, truth, SMALL.problem().grid_points).all()
    np.testing.assert_array_equal(est.diagnostics["solver_ok"], 1.0)
    assert {SOLVER_STATUSES[int(c)] for c in est.diagnostics["solver_status"]} <= {
        "optimal", "optimal_inaccurate"}


def test_cvx_direct_failed_solve_is_not_converged(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: cp.Problem, *args: object, **kwargs: object) -> None:
        raise cp.error.SolverError("injected")

    monkeypatch.setattr(cp.Problem, "solve", fail)
    obs, _ = SMALL.sample(30.0, 2, np.random.default_rng(7))
    est = CvxDirect(**GRID).estimate(obs)
    assert not est.converged.any()
    assert all("solver_error" in r for r in est.reason)
    assert np.all(np.isnan(est.ue_position))
    np.testing.assert_array_equal(est.diagnostics["solver_ok"], 0.0)


@pytest.mark.parametrize("estimator", [
    CvxDirect(solver="NOPE"), CvxDirect(w=0.0), Srl(solver="NOPE"), Srl(oversampling=0),
    Srl(passes=0), Stansfield(passes=0), Stansfield(scan_step_rad=0.0),
    Dpd(refine="yes"),  # type: ignore[arg-type]
    Dpd(grid_shape=(0, 10)),
], ids=lambda e: repr(e).split(",")[0])
def test_bad_hyper_parameters_raise_at_estimate(estimator: Estimator) -> None:
    obs, _ = SMALL.sample(30.0, 1, np.random.default_rng(0))
    with pytest.raises(EstimatorInputError):
        estimator.estimate(obs)
