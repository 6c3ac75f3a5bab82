"""SLAB's synthetic setting (Zhou, Liu, Lau 2019, §VII-A): samples, the random placement,
and the setting as the project's Observation and ChannelTruth (the Scenario protocol)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.scenario import Scenario
from estimators.slab.model import (
    coefficient_matrix,
    draw_gains,
    path_parameters,
    path_responses,
    received_signal,
    subcarrier_indices,
)
from estimators.slab.scenario import SlabScenario, small
from tests.estimators.slab.reference import PAPER
from tests.tolerances import FLOAT64_REL, NOISE_SIGMAS, SLAB_CLOSED_FORM_REL


def test_sample_shapes_noise_and_determinism() -> None:
    w = PAPER.random_beamformers(np.random.default_rng(0))
    a = PAPER.sample(w, np.random.default_rng(7), num_slots=4)
    b = PAPER.sample(w, np.random.default_rng(7), num_slots=4)
    c = PAPER.sample(w, np.random.default_rng(8), num_slots=4)
    assert a.z.shape == (4, 3, 4, 20, 10) and a.gains.shape == (4, 3, 2)
    np.testing.assert_array_equal(a.z, b.z)
    assert not np.allclose(a.z, c.z)
    G = coefficient_matrix(path_responses(PAPER.system(), PAPER.geometry()), w)
    noise = a.z - received_signal(G, a.gains)
    ratio = np.mean(np.abs(noise) ** 2) / a.noise_variance  # |n|²/σ² ~ Exp(1)
    assert abs(ratio - 1.0) < NOISE_SIGMAS / np.sqrt(noise.size)
    # Fading: |h|² / Σ ~ Exp(1) per path, independent over slots and BSs.
    many = draw_gains(PAPER.gain_covariance(), 4000, np.random.default_rng(9))
    eta2 = np.real(np.diagonal(PAPER.gain_covariance(), axis1=1, axis2=2))
    power = np.mean(np.abs(many) ** 2, axis=0) / eta2
    assert np.all(np.abs(power - 1.0) < NOISE_SIGMAS / np.sqrt(many.shape[0]))


def test_per_slot_beamformers_and_bad_shapes() -> None:
    rng = np.random.default_rng(1)
    w = np.stack([PAPER.random_beamformers(rng) for _ in range(2)])
    s = PAPER.sample(w, np.random.default_rng(2), num_slots=2)
    G1 = coefficient_matrix(path_responses(PAPER.system(), PAPER.geometry()), w[1])
    clean = received_signal(G1, s.gains[1:2])[0]
    assert np.max(np.abs(s.z[1] - clean)) < NOISE_SIGMAS * np.sqrt(s.noise_variance)
    with pytest.raises(ValueError, match="beamformers"):
        PAPER.sample(w[:, :, :2], np.random.default_rng(2), num_slots=2)
    with pytest.raises(ValueError, match="same number L"):
        SlabScenario(scatterers=(((1.0, 2.0),), (), ((3.0, 4.0),)))


def test_random_scenario_is_reproducible_and_inside_the_area() -> None:
    a = SlabScenario.random(np.random.default_rng(5), num_nlos=2, num_bs_antennas=6)
    b = SlabScenario.random(np.random.default_rng(5), num_nlos=2, num_bs_antennas=6)
    assert a == b and a.num_bs_antennas == 6
    g = a.geometry()
    assert g.scatterers.shape == (3, 2, 2) and g.num_alpha == 2 * 3 * 2 + 3
    points = np.vstack([g.bs_position, g.ue_position[None], g.scatterers.reshape(-1, 2)])
    assert np.all((points >= 0) & (points <= a.area_m))
    assert a.area() == ((0.0, 0.0), (a.area_m, a.area_m))


def test_observation_is_the_model_on_the_project_types() -> None:
    """``SlabScenario.observation``: the sounder, with each BS's BF vectors on its own
    subcarriers ``Θ_j``, returns the model's ``G(α; ω) h`` (eq. 11, narrowband) for the
    slot's fading; zero BF vectors send nothing; the open-loop ``y`` is that of its
    precoders."""
    scenario = dataclasses.replace(SlabScenario(), beam_squint=False)
    assert isinstance(scenario, Scenario) and isinstance(small(), Scenario)
    with pytest.raises(ValueError, match="beam_squint"):
        SlabScenario().observation(1, np.random.default_rng(0), 20.0)
    obs, truth = scenario.observation(3, np.random.default_rng(4), 300.0)
    gains = draw_gains(scenario.gain_covariance(), 3, np.random.default_rng(4))
    assert obs.sounder is not None and obs.y.shape == (3, 3, 4, 20, 30)
    assert len(truth) == 3  # one ChannelTruth per BS, the LOS first
    np.testing.assert_allclose(np.stack([bs.gain for bs in truth], axis=1), 4.0 * gains,
                               rtol=FLOAT64_REL)
    np.testing.assert_allclose(np.stack([bs.tau[0] for bs in truth]),
                               path_parameters(scenario.geometry()).tau, rtol=FLOAT64_REL)
    assert all(np.isnan(bs.scatterer[:, 0]).all() and bs.los.all() for bs in truth)
    w = scenario.random_beamformers(np.random.default_rng(5))  # [bs, bs_ant, beam, sub]
    theta = subcarrier_indices(scenario.num_subcarriers, scenario.num_bs) - 1  # 0-based
    F = np.zeros((3, 30, 4, 20), complex)
    for j in range(3):  # the model's a_B^H: BF element t on antenna N_B - 1 - t
        F[j, theta[j]] = np.moveaxis(w[j], -1, 0)[:, ::-1]
    G = coefficient_matrix(path_responses(scenario.system(), scenario.geometry()), w)
    expected = received_signal(G, gains)  # [slot, bs, ue_ant, beam, sub of Θ_j]
    scale = np.abs(expected).max()
    for t in range(3):
        z = obs.sounder.sound(t, F, np.random.default_rng(6))
        for j in range(3):
            np.testing.assert_allclose(z[j][..., theta[j]], expected[t, j], rtol=0,
                                       atol=SLAB_CLOSED_FORM_REL * scale)
            others = np.setdiff1d(np.arange(30), theta[j])
            assert np.abs(z[j][..., others]).max() < SLAB_CLOSED_FORM_REL * scale
    open_loop = obs.sounder.sound(
        1, np.broadcast_to(obs.precoders[1][:, None], (3, 30, 4, 20)), np.random.default_rng(7))
    np.testing.assert_allclose(obs.y[1], open_loop, rtol=0, atol=SLAB_CLOSED_FORM_REL * scale)


def test_observation_snr_is_the_documented_one() -> None:
    """``observation(n, rng, snr_db)``: σ² is the setting's at that SNR (fading-averaged
    power over σ², the module docstring), whatever the setting's own ``snr_db``."""
    obs, _ = PAPER.__class__(beam_squint=False).observation(2, np.random.default_rng(0), 7.0)
    expected = dataclasses.replace(PAPER, snr_db=7.0).noise_variance()
    np.testing.assert_allclose(obs.noise_variance, expected, rtol=FLOAT64_REL)
