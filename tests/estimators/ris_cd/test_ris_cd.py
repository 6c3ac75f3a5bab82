"""RIS-aided fingerprint positioning (Sang et al., issue 10): the synthetic model's
channel pieces against closed forms, the confidence region of eq. (14), the two-stage
localizers ``ris-cd`` and ``ris-rss`` on the paper's setting, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators import ESTIMATORS
from estimators.base import EstimatorInputError
from estimators.ris_cd.estimators import confidence_region
from estimators.ris_cd.scenario import (
    RisCdScenario,
    bilinear_weights,
    power_delay_profile,
    taps_to_cfr,
)
from tests.tolerances import FLOAT64_ABS, FLOAT64_REL, NOISE_SIGMAS


def test_power_delay_profile_and_tapped_delay_line() -> None:
    """802.11b's exponential profile: unit sum, ``e^{−T_s/τ}`` between taps, length
    ``ceil(10 τ / T_s)`` up to the cap; the taps on every subcarrier are the DFT."""
    pdp = power_delay_profile(50e-9, 10e-9, 100)
    assert pdp.size == 50 and pdp.sum() == pytest.approx(1.0, abs=FLOAT64_ABS)
    np.testing.assert_allclose(pdp[1:] / pdp[:-1], np.exp(-0.2), rtol=FLOAT64_REL)
    assert power_delay_profile(50e-9, 10e-9, 8).size == 8
    taps = np.random.default_rng(0).standard_normal((3, 5)) + 0j
    np.testing.assert_allclose(taps_to_cfr(taps, np.arange(16), 16), np.fft.fft(taps, 16),
                               atol=FLOAT64_ABS)


def test_bilinear_weights_interpolate_linear_fields_exactly() -> None:
    rng = np.random.default_rng(1)
    shape, pitch, origin = (4, 3), 2.0, np.array([1.0, -1.0])
    nodes = origin + pitch * np.stack(np.meshgrid(np.arange(4), np.arange(3), indexing="xy"),
                                      -1).reshape(-1, 2)
    points = rng.uniform(origin, origin + pitch * np.array([3.0, 2.0]), (50, 2))
    index, weight = bilinear_weights(points, origin, pitch, shape)
    np.testing.assert_allclose(weight.sum(axis=1), 1.0, atol=FLOAT64_ABS)
    field = nodes @ np.array([0.7, -1.3]) + 2.0
    np.testing.assert_allclose(np.sum(weight * field[index], axis=1),
                               points @ np.array([0.7, -1.3]) + 2.0, atol=1e-9)
    at_node, node_weight = bilinear_weights(nodes, origin, pitch, shape)
    np.testing.assert_allclose(np.sum(node_weight * (at_node == np.arange(12)[:, None]),
                                      axis=1), 1.0, atol=FLOAT64_ABS)


def test_fingerprint_matrices_are_the_precoded_channel() -> None:
    """``A(x) [θ; 1]`` (eq. 3) is the CFR after the precoder, for any unit-modulus θ."""
    scenario = RisCdScenario()
    rng = np.random.default_rng(2)
    realization = scenario.realize(rng)
    theta = np.exp(1j * rng.uniform(0, 2 * np.pi, scenario.num_elements))
    blocks = scenario.block_positions()[:7]
    a = realization.fingerprint_matrices(blocks)
    h = realization.cfr(blocks, theta)[:, 0, 0]  # [n, bs_ant, pilot]
    np.testing.assert_allclose(a @ np.append(theta, 1.0),
                               np.einsum("nsk,s->nk", h, realization.precoder),
                               rtol=FLOAT64_REL, atol=FLOAT64_ABS * np.abs(h).max())
    assert np.linalg.norm(realization.precoder) == pytest.approx(1.0, abs=FLOAT64_ABS)


def test_design_matrices_are_the_maps_fingerprints() -> None:
    """``Â_i [θ; 1]`` (the design's estimate) is the radio map's precoded CFR, and ``ε_i``
    is the norm of its error."""
    scenario = RisCdScenario()
    rng = np.random.default_rng(7)
    realization = scenario.realize(rng)
    errors = scenario.map_errors(realization, rng)
    theta = np.exp(1j * rng.uniform(0, 2 * np.pi, scenario.num_elements))
    a_hat, bound = scenario.estimated_matrices(realization, errors)
    radio_map = scenario.fingerprint_map(realization, theta, errors)
    h = np.einsum("nsk,s->nk", radio_map.cfr[:, 0, 0], realization.precoder)
    np.testing.assert_allclose(a_hat @ np.append(theta, 1.0), h, rtol=FLOAT64_REL,
                               atol=FLOAT64_ABS * np.abs(h).max())
    exact = realization.fingerprint_matrices(scenario.block_positions())
    np.testing.assert_allclose(np.linalg.norm((a_hat - exact).reshape(len(a_hat), -1), axis=1),
                               bound, rtol=FLOAT64_REL)
    ratio = bound / np.linalg.norm(exact.reshape(len(exact), -1), axis=1)
    assert np.all(ratio > 0) and np.all(ratio < 4 * scenario.csi_error)


def test_spatial_consistency_keeps_the_variance_and_decorrelates_with_distance() -> None:
    """Interpolated RIS → user taps have the same power midway between correlation-grid
    nodes as at a node (renormalised), are strongly correlated 0.3 m apart and nearly
    uncorrelated two grid pitches apart (over 300 draws)."""
    scenario = dataclasses.replace(RisCdScenario(), ris_shape=(1, 1), num_pilots=1)
    node = np.array([31.0, -5.0, 1.5])
    points = node + np.array([[0.0, 0.0, 0.0], [1.5, 1.5, 0.0], [0.3, 0.0, 0.0],
                              [6.0, 0.0, 0.0]])
    draws = np.array([scenario.realize(np.random.default_rng(s)).ris_to_user(points)[:, 0, 0]
                      for s in range(300)])
    loss = scenario.path_loss_at_1m * np.linalg.norm(
        points - scenario.ris_position, axis=1) ** -scenario.ris_user_exponent
    power = np.mean(np.abs(draws) ** 2, axis=0) / loss
    np.testing.assert_allclose(power[:2], 1.0, rtol=NOISE_SIGMAS / np.sqrt(300))

    def correlation(i: int, j: int) -> float:
        a, b = draws[:, i], draws[:, j]
        return float(abs(np.vdot(a, b)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real))

    assert correlation(0, 2) > 0.8
    assert correlation(0, 3) < NOISE_SIGMAS / np.sqrt(300)


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


def test_noiseless_users_at_block_centres_are_found() -> None:
    """Exact radio map, no noise to speak of, users on block centres, a confidence region
    that surely holds them: ``ris-cd`` returns their blocks."""
    scenario = dataclasses.replace(RisCdScenario(), csi_error=0.0)
    rng = np.random.default_rng(4)
    realization = scenario.realize(rng)
    theta = np.ones(scenario.num_elements)
    truth = scenario.block_positions()[::9]
    obs, _ = scenario.sample(realization, theta, 80.0, len(truth), rng, positions=truth)
    est = ESTIMATORS["ris-cd"](confidence=1 - 1e-12).estimate(obs)
    np.testing.assert_array_equal(est.ue_position, truth)


def rmse(name: str, snr_db: float, **params: object) -> float:
    """Horizontal RMSE [m] over 200 users of one realization (fixed seeds)."""
    scenario = RisCdScenario()
    realization = scenario.realize(np.random.default_rng(1))
    theta = np.ones(scenario.num_elements)
    fingerprints = scenario.fingerprint_map(
        realization, theta, scenario.map_errors(realization, np.random.default_rng(5)))
    obs, truth = scenario.sample(realization, theta, snr_db, 200, np.random.default_rng(2),
                                 fingerprints=fingerprints)
    est = ESTIMATORS[name](**params).estimate(obs)
    return float(np.sqrt(np.mean(np.sum((est.ue_position - truth)[:, :2] ** 2, axis=1))))


def test_ris_cd_is_ahead_of_ris_rss_at_low_snr() -> None:
    """The paper's claim at a low SNR (−5 dB at the area's centre), fixed seeds, uniform
    RIS phases: CFR fingerprints beat RSS fingerprints with the same prior (measured
    3.14 m against 3.61 m)."""
    cd, rss = rmse("ris-cd", -5.0), rmse("ris-rss", -5.0)
    assert cd < rss


def test_missing_radio_map_or_prior_is_one_line() -> None:
    scenario = RisCdScenario()
    rng = np.random.default_rng(6)
    realization = scenario.realize(rng)
    obs, _ = scenario.sample(realization, np.ones(scenario.num_elements), 10.0, 2, rng)
    for change, needle in (({"fingerprints": None}, "radio map"), ({"prior": None}, "prior")):
        with pytest.raises(EstimatorInputError, match=needle) as info:
            ESTIMATORS["ris-cd"]().estimate(dataclasses.replace(obs, **change))
        assert "\n" not in str(info.value)
    assert obs.fingerprints is not None
    wrong = dataclasses.replace(obs.fingerprints, cfr=obs.fingerprints.cfr[..., :3])
    with pytest.raises(EstimatorInputError, match="does not match"):
        ESTIMATORS["ris-rss"]().estimate(dataclasses.replace(obs, fingerprints=wrong))
