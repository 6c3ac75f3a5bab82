"""DAUN's ADMM (estimators/daun/admm.py): P-ADMM reaches problem (3)'s optimum,
Algorithm 1, and the unfolded network's training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.daun.admm import (
    AdmmParameters,
    TorchProblem,
    grid_index,
    refined_grid_index,
    train_daun,
)
from estimators.daun.model import normalise
from estimators.daun.scenario import DaunScenario
from tests.tolerances import (
    DAUN_PADMM_NMSE_MAX,
    DAUN_PADMM_OPTIMUM_REL,
)

#: A small version of the paper's setting: fast, and a grid one cell of which is 4 m.
SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32)


def test_padmm_converges_to_the_optimum_of_problem_3() -> None:
    """P-ADMM (fixed parameters, many iterations) reaches problem (3)'s optimum: the
    equality constraint holds and the objective equals cvxpy's (exact) one."""
    import cvxpy as cp

    scenario = dataclasses.replace(SMALL, num_bs_antennas=8, grid_shape=(6, 6),
                                   num_angles=12)
    problem = scenario.problem()
    y, _ = scenario.batch(np.array([15.0]), np.random.default_rng(4))
    yn = normalise(y)[0]
    M, _, K = problem.A.shape
    solution = TorchProblem(problem).solve(y, AdmmParameters.fixed(4000, M))
    X, z = solution.X[0], solution.z[0]
    assert solution.nmse[0] < DAUN_PADMM_NMSE_MAX

    def objective(X: np.ndarray, z: np.ndarray) -> float:
        return float(np.sum(np.linalg.norm(X, axis=1)) + np.sum(np.abs(z)))

    Xv = cp.Variable((K, M), complex=True)
    zv = cp.Variable((M, problem.B.shape[2]), complex=True)
    constraints = [problem.A[m] @ Xv[:, m] + problem.B[m] @ zv[m] == yn[m] for m in range(M)]
    value = cp.Problem(cp.Minimize(cp.sum(cp.norm(Xv, 2, axis=1)) + cp.sum(cp.abs(zv))),
                       constraints).solve(solver=cp.CLARABEL)
    assert objective(X, z) == pytest.approx(value, rel=DAUN_PADMM_OPTIMUM_REL)


def test_refinement_ignores_a_bs_without_los() -> None:
    """Algorithm 1: row k1 has three strong BSs and one near zero (the true position);
    row k2 has a larger plain norm because its fourth BS's entry is larger: the plain
    rule picks k2, the refinement picks k1."""
    X = np.zeros((1, 3, 4))
    X[0, 1] = [1.6, 1.5, 1.7, 0.1]
    X[0, 2] = [1.55, 1.45, 1.65, 0.7]
    assert grid_index(X)[0] == 2
    assert refined_grid_index(X)[0] == 1
    # With every BS strong, both rules agree.
    X[0, 2] = [1.5, 1.4, 1.6, 1.5]
    assert grid_index(X)[0] == refined_grid_index(X)[0] == 2
    # No row with three strong BSs: the plain rule.
    Y = np.zeros((1, 2, 4))
    Y[0, 0], Y[0, 1] = [1.0, 0.0, 0.0, 0.0], [0.0, 0.9, 0.0, 0.0]
    assert refined_grid_index(Y)[0] == grid_index(Y)[0] == 0


@pytest.mark.parametrize("loss", ["residual", "position"])
def test_daun_beats_padmm_at_equal_layers(loss: str) -> None:
    """Trained on the paper's model (the loss it was trained with, measured on held-out
    data), DAUN with I layers does better than P-ADMM with I iterations."""
    problem = SMALL.problem()
    rng = np.random.default_rng(6)
    snr = [rng.uniform(-10.0, 20.0, n) for n in (700, 100, 300)]
    (y_tr, p_tr), (y_va, p_va), (y_te, p_te) = (SMALL.batch(s, rng) for s in snr)
    layers = 4
    trained, log = train_daun(problem, (y_tr, snr[0], p_tr), (y_va, snr[1], p_va),
                              num_layers=layers, loss=loss,  # type: ignore[arg-type]
                              rng=np.random.default_rng(0), samples_per_layer=700,
                              batch_size=35, max_epochs=10)
    assert trained.num_layers == layers and len(log.epochs) == layers
    fixed = AdmmParameters.fixed(layers, problem.num_bs)
    tp = TorchProblem(problem)
    daun, padmm = tp.solve(y_te, trained), tp.solve(y_te, fixed)
    if loss == "residual":
        assert np.mean(daun.nmse) < np.mean(padmm.nmse)
    else:
        def mse(solution: object) -> float:
            estimate = problem.grid_points[grid_index(solution.X)]  # type: ignore[attr-defined]
            return float(np.mean(np.sum((estimate[:, :2] - p_te[:, :2]) ** 2, axis=1)))

        assert mse(daun) < mse(padmm)
