"""The fingerprint model the RIS-CD localizers and bounds run on
(``estimators/ris_cd/model.py``): the confidence radius and region of eq. (14), stage 1's
candidates, the predicted pilots, the map's dimensions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import special

from estimators.ris_cd.model import (
    candidate_blocks,
    confidence_radius,
    confidence_region,
    map_dimensions,
    predicted_pilots,
)
from estimators.ris_cd.scenario import RisCdScenario
from tests.tolerances import FLOAT64_REL, NOISE_SIGMAS


def test_confidence_radius_is_eq14_for_the_chosen_dimension() -> None:
    sigma, p = 0.3, 0.9
    assert confidence_radius(sigma, p) == pytest.approx(
        sigma * np.sqrt(-2 * np.log(1 - p)), rel=FLOAT64_REL)
    # d = 1: the literal erfc⁻¹ form of eq. (14).
    assert confidence_radius(sigma, p, dimensions=1) == pytest.approx(
        np.sqrt(2) * sigma * special.erfcinv(1 - p), rel=FLOAT64_REL)
    rng = np.random.default_rng(0)
    samples = 200_000
    for d in (2, 3):
        r = np.linalg.norm(sigma * rng.standard_normal((samples, d)), axis=1)
        inside = np.mean(r <= confidence_radius(sigma, p, dimensions=d))
        assert abs(inside - p) < NOISE_SIGMAS * np.sqrt(p * (1 - p) / samples)


def test_confidence_region_is_eq_14() -> None:
    """The region of an isotropic prior is the circle of radius ``σ sqrt(−2 ln(1 − p))``
    and holds the fraction ``p`` of prior draws."""
    sigma, p = 2.0, 0.95
    radius = sigma * np.sqrt(-2 * np.log(1 - p))
    covariance = np.diag([sigma**2, sigma**2, 1.0])
    angle = np.linspace(0, 2 * np.pi, 12)
    ring = np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], -1)
    assert confidence_region(ring * radius * (1 - 1e-9), np.zeros(3), covariance, p).all()
    assert not confidence_region(ring * radius * (1 + 1e-9), np.zeros(3), covariance, p).any()
    draws = np.random.default_rng(3).normal(0, sigma, (20000, 3))
    inside = confidence_region(draws, np.zeros(3), covariance, p).mean()
    assert inside == pytest.approx(p, abs=NOISE_SIGMAS * np.sqrt(p * (1 - p) / 20000))


def test_candidates_are_the_region_or_the_nearest_block() -> None:
    """Stage 1 keeps the blocks inside the region; a region smaller than a block keeps the
    block nearest the prior's mean."""
    scenario = dataclasses.replace(RisCdScenario(), csi_error=0.0)
    rng = np.random.default_rng(4)
    realization = scenario.realize(rng)
    obs, _ = scenario.sample(realization, np.ones(scenario.num_elements), 10.0, 2, rng)
    assert obs.prior is not None and obs.fingerprints is not None
    blocks = obs.fingerprints.block_positions
    wide = candidate_blocks(obs, 0, 0.95)
    np.testing.assert_array_equal(wide, np.flatnonzero(confidence_region(
        blocks, obs.prior.mean[0], obs.prior.covariance[0], 0.95)))
    assert 1 < wide.size < len(blocks)
    tiny = dataclasses.replace(obs.prior, covariance=obs.prior.covariance * 1e-6)
    nearest = candidate_blocks(dataclasses.replace(obs, prior=tiny), 0, 0.95)
    distance = np.linalg.norm(blocks[:, :2] - obs.prior.mean[0, :2], axis=1)
    np.testing.assert_array_equal(nearest, [np.argmin(distance)])


def test_predicted_pilots_are_what_a_user_on_the_block_receives() -> None:
    """With an exact radio map, a user standing on block ``i`` receives block ``i``'s
    predicted pilots (plus noise 200 dB down); the map is a horizontal grid (2-D), and
    blocks at two heights make it 3-D."""
    scenario = dataclasses.replace(RisCdScenario(), csi_error=0.0)
    rng = np.random.default_rng(5)
    realization = scenario.realize(rng)
    blocks = scenario.block_positions()[[0, 17, 99]]
    obs, _ = scenario.sample(realization, np.ones(scenario.num_elements), 200.0, 3, rng,
                             positions=blocks)
    for t, block in enumerate((0, 17, 99)):
        np.testing.assert_allclose(predicted_pilots(obs, t)[block], obs.y[t],
                                   rtol=1e-8, atol=1e-8 * np.abs(obs.y[t]).max())
    assert map_dimensions(obs) == 2
    assert obs.fingerprints is not None
    raised = obs.fingerprints.block_positions.copy()
    raised[::2, 2] += 1.0
    tilted = dataclasses.replace(obs.fingerprints, block_positions=raised)
    assert map_dimensions(dataclasses.replace(obs, fingerprints=tilted)) == 3
