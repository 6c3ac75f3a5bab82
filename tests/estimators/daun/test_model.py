"""DAUN's model (estimators/daun/model.py): the grid, the dictionaries of eq. (2) and
their memory, the narrowband uplink of eq. (1)."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from estimators.arrays import area_grid, steering_vector
from estimators.daun.model import DirectLocalizationProblem, narrowband_uplink
from estimators.daun.scenario import DaunScenario
from tests.tolerances import (
    DAUN_MEMORY_REL,
    FLOAT64_ABS,
    FLOAT64_REL,
)

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
    assert bytes_ == pytest.approx(peak, rel=DAUN_MEMORY_REL)
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


def test_narrowband_uplink_divides_the_pilot_out_of_y_and_its_noise() -> None:
    """Pilots of power P (a twin run's transmit power): eq. (1)'s ``y`` is the channel
    plus noise of variance ``σ²/P``."""
    obs, _ = SMALL.observation(2, np.random.default_rng(12), 10.0)
    y, noise_variance = narrowband_uplink(obs)
    power = 4.0
    scaled = dataclasses.replace(obs, y=obs.y * np.sqrt(power),
                                 pilots=obs.pilots * np.sqrt(power))
    y_scaled, noise_scaled = narrowband_uplink(scaled)
    np.testing.assert_allclose(y_scaled, y, rtol=FLOAT64_REL)
    np.testing.assert_allclose(noise_scaled, noise_variance / power, rtol=FLOAT64_REL)
    assert y.shape == (2, 4, 16) and noise_variance.shape == (2, 4)
