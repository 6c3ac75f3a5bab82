"""DAUN's inference path (estimators/daun/admm.py, :class:`AdmmOperators`): the same
iterations as the torch reference (:func:`unfolded_admm`, the training's), in the real
coordinates of :func:`reflection_transform` or without them, and its per-problem cache."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pytest

from estimators.arrays import planar_array_positions, steering_vector
from estimators.daun import admm
from estimators.daun.admm import (
    AdmmOperators,
    AdmmParameters,
    TorchProblem,
    grid_index,
    parameters_from,
    positions,
    reflection_transform,
    solve,
)
from estimators.daun.checkpoint import load_checkpoint
from estimators.daun.estimators import Daun, PAdmm
from estimators.daun.model import DirectLocalizationProblem
from estimators.daun.scenario import DaunScenario, small
from tests.tolerances import DAUN_FAST_PATH_REL as FAST_PATH_REL
from tests.tolerances import FLOAT64_ABS


def off_centre(problem: DirectLocalizationProblem) -> DirectLocalizationProblem:
    """The same dictionaries with the arrays recorded 1 mm off their reference point:
    no element has a mirror image, so :class:`AdmmOperators` runs without the transform
    (on the complex dictionaries)."""
    return dataclasses.replace(problem, element_positions=problem.element_positions + 1e-3)


def assert_same_solution(fast: admm.AdmmSolution, reference: admm.AdmmSolution) -> None:
    scale = np.max(np.abs(reference.X))
    np.testing.assert_allclose(fast.X, reference.X, rtol=0, atol=FAST_PATH_REL * scale)
    np.testing.assert_allclose(fast.z, reference.z, rtol=0,
                               atol=FAST_PATH_REL * np.max(np.abs(reference.z)))
    # The NMSE's scale is 1 (‖y‖² normalised): float32 residuals of the order of 1e-7.
    np.testing.assert_allclose(fast.nmse, reference.nmse, rtol=0, atol=FAST_PATH_REL)
    np.testing.assert_array_equal(grid_index(fast.X), grid_index(reference.X))


def test_reflection_transform_makes_steering_vectors_real() -> None:
    """A centred planar array (dual-polarised: every position twice, one at the centre
    for odd sizes): ``T`` is unitary and ``T a = √2 (Re a_n, Im a_n)`` per mirror pair;
    an array off its reference point has no such ``T``."""
    wavelength = 0.01
    r = planar_array_positions(3, 5, vertical_spacing_m=wavelength / 2,
                               horizontal_spacing_m=wavelength / 2, num_polarizations=2)
    T = reflection_transform(r)
    assert T is not None
    np.testing.assert_allclose(T @ T.conj().T, np.eye(len(r)), atol=FLOAT64_ABS)
    rng = np.random.default_rng(3)
    a = steering_vector(r, rng.uniform(-np.pi, np.pi, 20), rng.uniform(0, np.pi, 20),
                        wavelength)  # [direction, ant]
    transformed = a @ T.T
    np.testing.assert_allclose(transformed.imag, 0.0, atol=FLOAT64_ABS)
    norms = np.linalg.norm(transformed, axis=1)
    np.testing.assert_allclose(norms, np.sqrt(len(r)), rtol=1e-12)  # unitary
    assert reflection_transform(r + np.array([0.0, 1e-3, 0.0])) is None


@pytest.mark.parametrize("symmetric", [True, False])
def test_fast_path_equals_the_torch_reference(symmetric: bool) -> None:
    """``small()`` with its trained ``paper-small`` layers and with 30 P-ADMM iterations:
    the same ``X``, ``z``, NMSE and grid choice as :meth:`TorchProblem.solve`, with the
    real transform (centred ULAs) and without it."""
    scenario = small()
    problem = scenario.problem()
    if not symmetric:
        problem = off_centre(problem)
    operators = AdmmOperators.of(problem)
    assert (operators.transform is not None) == symmetric
    assert operators.A.real == operators.B.real == symmetric
    rng = np.random.default_rng(7)
    snr = rng.uniform(-5.0, 25.0, 24)
    y, _ = scenario.batch(snr, rng)
    reference = TorchProblem(problem)
    for parameters in (parameters_from(load_checkpoint("paper-small")["parameters"]),
                       AdmmParameters.fixed(30, problem.num_bs)):
        fast = solve(problem, y, parameters)
        assert_same_solution(fast, reference.solve(y, parameters))
        # One sample at a time (the per-call path) is the batch's, to rounding.
        alone = solve(problem, y[3:4], parameters)
        np.testing.assert_allclose(alone.X[0], fast.X[3], rtol=0,
                                   atol=FAST_PATH_REL * np.max(np.abs(fast.X)))


def test_estimators_localize_as_the_reference() -> None:
    """``daun`` and ``p-admm`` on arrays: the fixes of the reference iteration."""
    scenario = small()
    problem = scenario.problem()
    rng = np.random.default_rng(8)
    y, _ = scenario.batch(rng.uniform(0.0, 20.0, 16), rng)
    noise = np.ones(y.shape[:2])
    grid = {"area": scenario.area, "grid_shape": scenario.grid_shape,
            "ue_height": scenario.height, "num_angles": scenario.num_angles}
    reference = TorchProblem(problem)
    for estimator in (Daun(checkpoint="paper-small"), PAdmm(iterations=10, **grid)):
        parameters = (estimator.parameters() if isinstance(estimator, Daun)
                      else estimator.parameters(problem.num_bs))
        expected = positions(problem, reference.solve(y, parameters).X, refine=False)
        found, diagnostics = estimator.localize(problem, y, noise, rng)
        np.testing.assert_array_equal(found, expected)
        assert diagnostics["nmse"].shape == (len(y),)


def test_the_cache_never_serves_another_problems_dictionaries() -> None:
    """Problems of other geometries and grids, alive together (the moved BSs' of the
    same shapes), then one after the other, each freed before the next is built (CPython
    reuses a freed object's id): every solve is the reference's on its own problem, an
    entry leaves with its problem, and a problem keeps its operators while it lives."""
    base = DaunScenario(num_bs_antennas=8, grid_shape=(6, 6), num_angles=12)
    variants = [base,
                dataclasses.replace(base, bs_xy=((-40.0, -55.0), (-50.0, 50.0), (50.0, 50.0),
                                                 (50.0, -50.0))),
                dataclasses.replace(base, grid_shape=(7, 5)),
                dataclasses.replace(base, num_angles=16),
                dataclasses.replace(base, num_bs_antennas=6)]
    rng = np.random.default_rng(9)
    parameters = AdmmParameters.fixed(8, 4)
    together = [scenario.problem() for scenario in variants]
    y, _ = base.batch(np.array([10.0, 20.0]), rng)
    for problem in [*together, together[0]]:
        if problem.A.shape[1] == base.num_bs_antennas:
            assert_same_solution(solve(problem, y, parameters),
                                 TorchProblem(problem).solve(y, parameters))
    del together, problem
    gc.collect()
    cached = len(admm._OPERATORS)
    for scenario in variants:
        problem = scenario.problem()
        y, _ = scenario.batch(np.array([10.0, 20.0]), rng)
        first = AdmmOperators.of(problem)
        assert AdmmOperators.of(problem) is first
        assert first.A.forward.shape[1] == problem.A.shape[2]
        assert_same_solution(solve(problem, y, parameters),
                             TorchProblem(problem).solve(y, parameters))
        assert len(admm._OPERATORS) == cached + 1
        del problem, first
        gc.collect()
        assert len(admm._OPERATORS) == cached
