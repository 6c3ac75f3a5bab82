"""The synthetic setting of RIS-CD (Sang et al. §II, §V-A; ``estimators/ris_cd/scenario.py``):
the channel pieces against closed forms, spatial consistency, the design's view of the
radio map, and the :class:`estimators.scenario.Scenario` face (its noise from
``complex_normal``, its truth)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.observe import complex_normal
from estimators.ris_cd.scenario import (
    RisCdScenario,
    bilinear_weights,
    power_delay_profile,
    small,
    taps_to_cfr,
)
from estimators.scenario import Scenario
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


def test_observation_is_the_scenario_face_with_its_truth() -> None:
    """``observation(n, rng, snr_db)``: a realization, then ``n`` users over the area with
    uniform phases, the noise at the SNR of the area's centre drawn by ``complex_normal``
    right after the users (the noiseless pilots plus that draw are ``y``), the truth's
    positions those users'."""
    scenario = small()
    assert isinstance(scenario, Scenario)
    obs, truth = scenario.observation(3, np.random.default_rng(8), -3.0)
    (x_min, y_min), (x_max, y_max) = scenario.area
    inside = ((truth.ue_position[:, 0] >= x_min) & (truth.ue_position[:, 0] <= x_max)
              & (truth.ue_position[:, 1] >= y_min) & (truth.ue_position[:, 1] <= y_max))
    assert inside.all() and truth.gain.shape == (3, 0) and not truth.los.any()
    # The same stream by hand: realization, positions, then the noise.
    rng = np.random.default_rng(8)
    realization = scenario.realize(rng)
    (x0, y0), (x1, y1) = scenario.area
    xy = rng.uniform([x0, y0], [x1, y1], size=(3, 2))
    np.testing.assert_array_equal(xy, truth.ue_position[:, :2])
    noise_variance = scenario.noise_variance(realization, -3.0)
    noise = complex_normal(rng, obs.y.shape, noise_variance)
    h = realization.cfr(truth.ue_position, np.ones(scenario.num_elements))
    noiseless = np.einsum("tbrsk,s->tbrk", h, realization.precoder)[:, :, :, None, :]
    np.testing.assert_allclose(obs.y, noiseless + noise, rtol=FLOAT64_REL,
                               atol=FLOAT64_ABS * np.abs(obs.y).max())
    np.testing.assert_allclose(obs.noise_variance, noise_variance, rtol=FLOAT64_REL)
    assert obs.prior is not None and obs.fingerprints is not None


def test_area_is_checked() -> None:
    with pytest.raises(ValueError, match="lower-left"):
        RisCdScenario(area=((41.0, -5.0), (31.0, 5.0)))
