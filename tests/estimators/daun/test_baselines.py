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
    DirectProgram,
    Dpd,
    Srl,
    Stansfield,
    stansfield,
)
from estimators.daun.grid import GridLocalizer
from estimators.daun.model import narrowband_uplink, normalise
from estimators.daun.scenario import DaunScenario
from tests.tolerances import (
    DAUN_CVX_EQUALITY_REL,
    DAUN_NOISELESS_ABS_M,
    DAUN_SRL_LOS_BOUND_FACTOR,
    FLOAT64_ABS,
    FLOAT64_REL,
    rmse_margin,
)

#: Small paper setting: 16-element ULAs, K = 10 x 10 (4 m cells), L = 32, LOS only.
SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32, num_nlos=0)
GRID: dict[str, Any] = {"grid_shape": (10, 10), "num_angles": 32}
CELL_M = 4.0
#: Users of the high-SNR efficiency check (Monte-Carlo margin ``rmse_margin``).
HIGH_SNR_USERS = 12
@dataclass(frozen=True)
class Placed(DaunScenario):
    """The scenario with users at chosen positions (BSs at ``bs_height`` [m])."""

    users: tuple[tuple[float, float, float], ...] = ()

    def positions(self, count: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return np.array(self.users, dtype=np.float64)[:count]


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


@pytest.mark.parametrize("estimator", [Dpd(**GRID), CvxDirect(**GRID)],
                         ids=["dpd", "cvx-direct"])
def test_grid_estimators_at_high_snr_pick_the_nearest_cell(estimator: Estimator) -> None:
    obs, truths = SMALL.observation(4, np.random.default_rng(7), 30.0)
    truth = truths[0].ue_position
    est = estimator.estimate(obs)
    assert est.converged.all()
    assert within_one_cell(est.ue_position, truth, SMALL.problem().grid_points).all()
    np.testing.assert_allclose(est.ue_position[:, 2], SMALL.height)


@pytest.mark.parametrize("estimator, factor", [
    (Dpd(refine=True, **GRID), 1.0), (Stansfield(**GRID), 1.0),
    (Srl(**GRID), DAUN_SRL_LOS_BOUND_FACTOR),
], ids=["dpd-refine", "stansfield", "srl"])
def test_continuous_estimators_reach_the_los_bound_at_high_snr(estimator: GridLocalizer,
                                                              factor: float) -> None:
    """LOS only, 30 dB: the off-grid estimators' RMSE is the LOS-only bound's RMS (times
    ``factor``, srl's grid of angles), within the Monte-Carlo spread of the users."""
    obs, truths = SMALL.observation(HIGH_SNR_USERS, np.random.default_rng(7), 30.0)
    est = estimator.estimate(obs)
    assert est.converged.all()
    error = np.linalg.norm(est.ue_position[:, :2] - truths[0].ue_position[:, :2], axis=1)
    bound = estimator.crlb(obs, truths).position_error_bound
    rmse, bound_rms = np.sqrt(np.mean(error**2)), np.sqrt(np.mean(bound**2))
    assert rmse <= factor * bound_rms * rmse_margin(HIGH_SNR_USERS), (rmse, bound_rms)
    np.testing.assert_allclose(est.ue_position[:, 2], SMALL.height)


def test_dpd_noiseless_user_on_a_grid_point() -> None:
    """On a grid point, noiseless, LOS only: the cost there explains all of the energy
    (``|a^H a|² / ‖a‖² = ‖y‖²`` per BS), and it is the one returned."""
    users = ((-14.0, 6.0, 0.0), (2.0, -18.0, 0.0), (18.0, 18.0, 0.0))
    scenario = Placed(**{**vars(SMALL), "users": users})
    obs, truths = scenario.observation(len(users), np.random.default_rng(0), np.inf)
    truth = truths[0].ue_position
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
    obs, truths = scenario.observation(len(users), np.random.default_rng(0), np.inf)
    truth = truths[0].ue_position
    for estimator in (Dpd(refine=True, **GRID), Stansfield(passes=4, **GRID)):
        error = np.linalg.norm(estimator.estimate(obs).ue_position - truth, axis=1)
        assert np.all(error < DAUN_NOISELESS_ABS_M), (estimator.name, error)
    one_pass = np.linalg.norm(Stansfield(passes=1, **GRID).estimate(obs).ue_position - truth,
                              axis=1)
    if bs_height:
        assert np.all(one_pass > 1e-3)  # measured 1.8e-3 .. 2.1e-2 m: the bias
    else:  # the direction does not depend on the nominal distance
        assert np.all(one_pass < DAUN_NOISELESS_ABS_M)


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
    obs, _ = dataclasses.replace(SMALL, num_nlos=2).observation(1, np.random.default_rng(2),
                                                               10.0)
    problem = CvxDirect(**GRID).problem(obs)
    y = normalise(narrowband_uplink(obs)[0])[0]  # [bs, bs_ant]
    w = 0.7
    solution = DirectProgram(problem, w).solve(y, "CLARABEL")
    assert solution.ok and solution.status == "optimal"
    fit = (np.einsum("mnk,km->mn", problem.A, solution.X)
           + np.einsum("mnl,ml->mn", problem.B, solution.Z))
    assert np.linalg.norm(fit - y) / np.linalg.norm(y) < DAUN_CVX_EQUALITY_REL
    objective = (np.sum(np.linalg.norm(solution.X, axis=1))
                 + w * np.sum(np.abs(solution.Z)))
    assert objective == pytest.approx(solution.objective, rel=FLOAT64_REL)
    # Feasible points: z_m = B_m⁺ y_m with X = 0, and x_m = A_m⁺ y_m with z = 0.
    z_only = w * sum(np.sum(np.abs(np.linalg.pinv(problem.B[m]) @ y[m]))
                     for m in range(problem.num_bs))
    x_only = np.sum(np.linalg.norm(np.stack(
        [np.linalg.pinv(problem.A[m]) @ y[m] for m in range(problem.num_bs)], axis=1), axis=1))
    assert solution.objective <= min(z_only, x_only)  # measured 0.82 of it


def test_cvx_direct_with_scs_and_diagnostics() -> None:
    obs, truths = SMALL.observation(2, np.random.default_rng(7), 30.0)
    truth = truths[0].ue_position
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
    obs, _ = SMALL.observation(2, np.random.default_rng(7), 30.0)
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
    obs, _ = SMALL.observation(1, np.random.default_rng(0), 30.0)
    with pytest.raises(EstimatorInputError):
        estimator.estimate(obs)
