"""DAUN (Fan et al.): the model's dictionaries, the ADMM, Algorithm 1 and the unfolded
network's training, on the paper's own synthetic model (small, seeded)."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from estimators.arrays import steering_vector
from estimators.daun.admm import (
    AdmmParameters,
    TorchProblem,
    grid_index,
    refined_grid_index,
    train_daun,
)
from estimators.daun.estimators import PAdmm
from estimators.daun.model import (
    DaunScenario,
    DirectLocalizationProblem,
    area_grid,
    normalise,
)
from tests.tolerances import FLOAT32_REL, FLOAT64_ABS

#: A small version of the paper's setting: fast, and a grid one cell of which is 4 m.
SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32)


def test_area_grid_is_cell_centres_x_fastest() -> None:
    grid = area_grid(((-20.0, -10.0), (20.0, 10.0)), (4, 2), 1.5)
    assert grid.shape == (8, 3)
    np.testing.assert_allclose(grid[:4, 0], [-15.0, -5.0, 5.0, 15.0], atol=FLOAT64_ABS)
    np.testing.assert_allclose(grid[[0, 4], 1], [-5.0, 5.0], atol=FLOAT64_ABS)
    np.testing.assert_allclose(grid[:, 2], 1.5, atol=FLOAT64_ABS)


@pytest.mark.parametrize("antennas, grid_shape, num_angles", [(8, (60, 60), 200),
                                                              (16, (20, 20), 300)])
def test_memory_bytes_is_the_build_peak(antennas: int, grid_shape: tuple[int, int],
                                        num_angles: int) -> None:
    scenario = DaunScenario(num_bs_antennas=antennas, grid_shape=grid_shape,
                            num_angles=num_angles)
    scenario.bs_array()  # its own allocations are not the build's
    tracemalloc.start()
    try:
        scenario.problem()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    K = grid_shape[0] * grid_shape[1]
    bytes_ = DirectLocalizationProblem.memory_bytes(4, antennas, K, num_angles)
    # Measured within 2% (the arrays' sizes are exact; a few small ones are left out).
    assert bytes_ == pytest.approx(peak, rel=0.1)
    assert bytes_ == pytest.approx(DirectLocalizationProblem.memory_bytes(4, antennas, K, 0)
                                   + DirectLocalizationProblem.memory_bytes(4, antennas, 0,
                                                                            num_angles))


def test_dictionaries_are_the_steering_vectors_scaled_to_unit_norm() -> None:
    problem = SMALL.problem()
    M, N, K = problem.A.shape
    assert (M, N, K) == (4, 16, 100) and problem.B.shape == (4, 16, 32)
    for m in range(M):
        assert np.linalg.norm(problem.A[m], 2) == pytest.approx(1.0, rel=1e-12)
        assert np.linalg.norm(problem.B[m], 2) == pytest.approx(1.0, rel=1e-12)
        # Column k is the LOS response from grid point k, up to the common scale.
        r = SMALL.bs_array().world_positions(SMALL.bs_orientation()[m])
        d = problem.grid_points[7] - SMALL.bs_position()[m]
        a = steering_vector(r, np.arctan2(d[1], d[0]), np.pi / 2, SMALL.wavelength)
        column = problem.A[m, :, 7]
        np.testing.assert_allclose(column / column[0], a / a[0], atol=1e-12)
        # The angle grid spans the BS's front half-plane.
        offsets = problem.angles[m] - SMALL.bs_orientation()[m, 0]
        assert offsets.min() == pytest.approx(-np.pi / 2) and offsets.max() < np.pi / 2


def test_observation_and_batch_agree_on_the_noise_model() -> None:
    obs, p = SMALL.sample(20.0, 3, np.random.default_rng(1))
    assert obs.y.shape == (3, 4, 16, 1, 1) and obs.link == "uplink" and p.shape == (3, 3)
    y, _ = SMALL.batch(np.full(4000, 10.0), np.random.default_rng(2))
    # |h|² = 10 per element on average, noise 1: total 11 per element.
    assert np.mean(np.abs(y) ** 2) == pytest.approx(11.0, rel=0.02)


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
    assert solution.nmse[0] < 1e-6

    def objective(X: np.ndarray, z: np.ndarray) -> float:
        return float(np.sum(np.linalg.norm(X, axis=1)) + np.sum(np.abs(z)))

    Xv = cp.Variable((K, M), complex=True)
    zv = cp.Variable((M, problem.B.shape[2]), complex=True)
    constraints = [problem.A[m] @ Xv[:, m] + problem.B[m] @ zv[m] == yn[m] for m in range(M)]
    value = cp.Problem(cp.Minimize(cp.sum(cp.norm(Xv, 2, axis=1)) + cp.sum(cp.abs(zv))),
                       constraints).solve(solver=cp.CLARABEL)
    # complex64 iterations: the objective to ~1e-4 relative.
    assert objective(X, z) == pytest.approx(value, rel=1e-3)


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


def test_padmm_localizes_on_the_grid_at_high_snr() -> None:
    """16-element arrays at ~60 m resolve ~7 m across range; four BSs cut that to the
    true cell or a neighbour (4 m cells: half-diagonal 2.83 m, diagonal 5.66 m)."""
    obs, p = SMALL.sample(20.0, 16, np.random.default_rng(5))
    est = PAdmm(area=SMALL.area, grid_shape=SMALL.grid_shape, ue_height=SMALL.height,
                num_angles=SMALL.num_angles).estimate(obs)
    assert est.converged.all()
    errors = np.linalg.norm(est.ue_position - p, axis=1)
    half_diagonal = 2.0 * np.sqrt(2)
    assert np.all(errors <= 2 * half_diagonal + FLOAT32_REL)
    assert np.mean(errors <= half_diagonal + FLOAT32_REL) >= 0.5


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


def test_los_bound_matches_finite_differences_and_scales_with_snr() -> None:
    """The bound's analytic Jacobian equals a finite-difference one (the FIM identity
    then gives the same bound), and the bound scales as σ (the FIM as 1/σ²)."""
    from estimators.daun.model import DirectLocalizationProblem, los_position_error_bound
    from estimators.fisher import crlb, error_bound, gaussian_fim, numerical_jacobian

    scenario = dataclasses.replace(SMALL, height=1.5)
    bs = scenario.bs_position()
    bs[:, 2] = 8.0
    problem = DirectLocalizationProblem.build(
        bs_position=bs, bs_orientation=scenario.bs_orientation(),
        element_positions=scenario.bs_array().element_positions,
        wavelength=scenario.wavelength, area=scenario.area, grid_shape=(2, 2),
        ue_height=1.5, num_angles=4)
    gain = np.array([1.0, 0.5j, -0.7, 0.3 + 0.3j])
    p = np.array([3.0, -4.0, 1.5])
    bound = los_position_error_bound(problem, p, gain, 0.1)

    def mean(x: np.ndarray) -> np.ndarray:
        q = np.array([x[0], x[1], 1.5])
        alpha = x[2::2] + 1j * x[3::2]
        return np.concatenate([alpha[m] * problem.steering(m, q) for m in range(4)])

    x0 = np.concatenate([p[:2], np.column_stack([gain.real, gain.imag]).ravel()])
    numeric = error_bound(crlb(gaussian_fim(numerical_jacobian(mean, x0, 1e-6), 0.1)), [0, 1])
    assert bound == pytest.approx(numeric, rel=1e-5)
    assert los_position_error_bound(problem, p, gain, 0.001) == pytest.approx(bound / 10,
                                                                              rel=1e-9)
