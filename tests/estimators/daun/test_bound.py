"""DAUN's bound (estimators/daun/bound.py): the LOS-only horizontal position error bound
of eq. (1), and ``crlb`` of every estimator of the paper on its own setting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.base import ESTIMATORS
from estimators.daun.baselines import Dpd
from estimators.daun.bound import los_position_error_bound
from estimators.daun.estimators import PAdmm
from estimators.daun.grid import GridLocalizer
from estimators.daun.model import DirectLocalizationProblem
from estimators.daun.scenario import DaunScenario, small
from estimators.fisher import crlb, error_bound, gaussian_fim, numerical_jacobian
from tests.tolerances import DAUN_BOUND_NUMERIC_REL, FLOAT64_REL

SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32)
DAUN_FAMILY = sorted(name for name, cls in ESTIMATORS.items() if cls.paper == "daun")


def elevated() -> tuple[DirectLocalizationProblem, np.ndarray]:
    """BSs 6.5 m above a user at 1.5 m: the bound's 3-D geometry, off the plane."""
    scenario = dataclasses.replace(SMALL, height=1.5)
    bs = scenario.bs_position()
    bs[:, 2] = 8.0
    problem = DirectLocalizationProblem.build(
        bs_position=bs, bs_orientation=scenario.bs_orientation(),
        element_positions=scenario.bs_array().element_positions,
        wavelength=scenario.wavelength, area=scenario.area, grid_shape=(2, 2),
        ue_height=1.5, num_angles=4)
    return problem, np.array([3.0, -4.0, 1.5])


def test_los_bound_matches_finite_differences_and_scales_with_the_noise() -> None:
    """The bound's analytic Jacobian equals a finite-difference one (the FIM identity
    then gives the same bound) with unequal noise per BS, and the bound scales as σ."""
    problem, p = elevated()
    gain = np.array([1.0, 0.5j, -0.7, 0.3 + 0.3j])
    sigma2 = np.array([0.1, 0.2, 0.05, 0.1])
    geometry = (problem.bs_position, problem.element_positions, problem.wavelength)
    bound = los_position_error_bound(*geometry, p, gain, sigma2)

    def whitened_mean(x: np.ndarray) -> np.ndarray:
        q = np.array([x[0], x[1], 1.5])
        alpha = x[2::2] + 1j * x[3::2]
        return np.concatenate([alpha[m] * problem.steering(m, q) / np.sqrt(sigma2[m])
                               for m in range(4)])

    x0 = np.concatenate([p[:2], np.column_stack([gain.real, gain.imag]).ravel()])
    jacobian = numerical_jacobian(whitened_mean, x0, 1e-6)
    numeric = error_bound(crlb(gaussian_fim(jacobian, 1.0)), [0, 1])
    assert bound == pytest.approx(numeric, rel=DAUN_BOUND_NUMERIC_REL)
    assert los_position_error_bound(*geometry, p, gain, sigma2 / 100) == pytest.approx(
        bound / 10, rel=FLOAT64_REL * 100)
    # One noise level for all BSs: the scalar form.
    assert los_position_error_bound(*geometry, p, gain, 0.1) == pytest.approx(
        los_position_error_bound(*geometry, p, gain, np.full(4, 0.1)), rel=FLOAT64_REL)


def test_los_bound_needs_two_los_bss() -> None:
    problem, p = elevated()
    geometry = (problem.bs_position, problem.element_positions, problem.wavelength)
    two = los_position_error_bound(*geometry, p, [1.0, 0.0, 0.0, 1.0], 0.1)
    assert np.isfinite(two) and two > los_position_error_bound(*geometry, p, np.ones(4), 0.1)
    assert np.isnan(los_position_error_bound(*geometry, p, [1.0, 0.0, 0.0, 0.0], 0.1))
    assert los_position_error_bound(*geometry, p, np.ones(4), 0.0) == 0.0


@pytest.mark.parametrize("name", DAUN_FAMILY)
def test_every_estimator_of_the_paper_returns_the_bound_in_the_plane(name: str) -> None:
    """All of the paper's estimators, baselines included, give the same bound: the
    LOS-only bound of each snapshot at its true position and LOS gains (on the geometry
    of ``small()``, which DAUN has a shipped checkpoint for)."""
    obs, truths = small().observation(3, np.random.default_rng(8), 10.0)
    estimator = ESTIMATORS[name]()
    assert isinstance(estimator, GridLocalizer)
    assert estimator.position_dimensions(obs) == 2
    bound = estimator.crlb(obs, truths)
    elements = np.stack([obs.bs_array.world_positions(o) for o in obs.bs_orientation])
    expected = [los_position_error_bound(obs.bs_position, elements, obs.wavelength,
                                         truths[0].ue_position[t],
                                         [truth.gain[t, 0] for truth in truths], 1.0)
                for t in range(3)]
    np.testing.assert_allclose(bound.position_error_bound, expected, rtol=FLOAT64_REL)
    assert bound.scatterer_error_bound.shape == (3, 0)
    # One BS's truth (what a caller of one-BS estimators passes) lacks the other LOS gains.
    assert np.all(np.isnan(estimator.crlb(obs, truths[0]).position_error_bound))


def test_bound_is_nan_without_the_los_at_two_bss() -> None:
    scenario = dataclasses.replace(SMALL, los_probability=0.5)
    obs, truths = scenario.observation(40, np.random.default_rng(9), 10.0)
    bound = PAdmm().crlb(obs, truths).position_error_bound
    los_count = np.sum([truth.los for truth in truths], axis=0)
    assert np.all(np.isnan(bound[los_count < 2]))
    assert np.all(np.isfinite(bound[los_count >= 2]) & (bound[los_count >= 2] > 0))
    assert 0 < np.sum(los_count < 2) < len(los_count)  # both cases occur at this seed


def test_the_bound_sees_the_noise_of_the_narrowband_y() -> None:
    """Pilots of power P (the twin's transmit power): y / s has noise σ²/P, so the bound
    of the same channel is that of unit pilots and noise σ²/P."""
    obs, truths = SMALL.observation(2, np.random.default_rng(10), 10.0)
    power = 4.0
    scaled = dataclasses.replace(obs, y=obs.y * np.sqrt(power), pilots=obs.pilots * np.sqrt(
        power), noise_variance=obs.noise_variance)
    estimator = Dpd()
    bound = estimator.crlb(obs, truths).position_error_bound
    np.testing.assert_allclose(estimator.crlb(scaled, truths).position_error_bound,
                               bound / 2, rtol=FLOAT64_REL * 100)
