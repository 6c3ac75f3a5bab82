"""Observation builder: signal model, SNR and thermal noise, uplink, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from estimators.arrays import SPEED_OF_LIGHT, planar_array_positions, subcarrier_frequencies
from estimators.types import ArrayGeometry, Observation
from tests.conftest import make_config, run_config, wall_y, write_obj
from tests.tolerances import (
    FLOAT64_REL,
    NOISE_SIGMAS,
)
from twin.sounding import build_observation, observation_from_run, thermal_noise_variance

FC = 28e9
LAM = SPEED_OF_LIGHT / FC


def geometry(rows: int, cols: int) -> ArrayGeometry:
    half = LAM / 2
    pos = planar_array_positions(rows, cols, vertical_spacing_m=half, horizontal_spacing_m=half)
    return ArrayGeometry(pos, rows, cols)


def random_channel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * 1e-5


def observe(cfr: np.ndarray, seed: int = 0, **kwargs: object) -> Observation:
    _T, B, Nr, Nt, K = cfr.shape
    return build_observation(
        cfr, frequencies=subcarrier_frequencies(K, 100e6), carrier_frequency=FC,
        bs_position=np.zeros((B, 3)), bs_orientation=np.zeros((B, 3)),
        bs_array=geometry(1, Nt), ue_array=geometry(1, Nr), rng=np.random.default_rng(seed),
        **kwargs,  # type: ignore[arg-type]
    )


def noiseless(obs: Observation, cfr: np.ndarray) -> np.ndarray:
    h = cfr if obs.link == "downlink" else np.swapaxes(cfr, 2, 3)
    return np.einsum("tbrn,tbrsk,tbsm,mk->tbnmk", obs.combiners.conj(), h, obs.precoders,
                     obs.pilots)


def test_signal_model_and_snr_definition() -> None:
    rng = np.random.default_rng(1)
    cfr = random_channel(rng, (3, 2, 2, 16, 64))
    obs = observe(cfr, snr_db=10.0, precoder="dft", num_beams=16)
    y0 = noiseless(obs, cfr)
    power = np.mean(np.abs(y0) ** 2, axis=(2, 3, 4))
    np.testing.assert_allclose(obs.noise_variance, power / 10.0, rtol=FLOAT64_REL)
    noise = obs.y - y0
    # Identity combiner: the noise is CN(0, σ²) per sample; 2*16*64 samples per (t, b).
    empirical = np.mean(np.abs(noise) ** 2, axis=(2, 3, 4))
    n = noise[0, 0].size
    np.testing.assert_allclose(empirical, obs.noise_variance, rtol=NOISE_SIGMAS / np.sqrt(n))
    assert obs.y.shape == (3, 2, 2, 16, 64)
    assert np.allclose(np.abs(obs.pilots), 1.0)


def test_thermal_noise_closed_form() -> None:
    # -174 dBm/Hz + 10 log10(100 MHz / 64) + 7 dB
    expected_dbm = -174 + 10 * np.log10(100e6 / 64) + 7
    sigma2 = thermal_noise_variance(100e6, 64, 7.0)
    assert abs(10 * np.log10(sigma2) + 30 - expected_dbm) < 1e-9
    rng = np.random.default_rng(2)
    cfr = random_channel(rng, (1, 1, 1, 4, 64))
    obs = observe(cfr, tx_power_dbm=20.0, bandwidth_hz=100e6, noise_figure_db=7.0,
                  precoder="identity")
    np.testing.assert_allclose(obs.noise_variance, sigma2, rtol=FLOAT64_REL)
    # Pilot energy per subcarrier = P / K.
    np.testing.assert_allclose(np.abs(obs.pilots) ** 2, 0.1 / 64, rtol=FLOAT64_REL)


def test_uplink_uses_the_reciprocal_channel() -> None:
    rng = np.random.default_rng(3)
    cfr = random_channel(rng, (2, 1, 2, 8, 16))
    obs = observe(cfr, snr_db=200.0, link="uplink", precoder="identity", combiner="dft")
    assert obs.precoders.shape == (2, 1, 2, 2)  # UE antennas transmit
    assert obs.combiners.shape == (2, 1, 8, 8)  # BS antennas receive
    y0 = noiseless(obs, cfr)
    relative_noise = np.linalg.norm(obs.y - y0) / np.linalg.norm(y0)
    assert relative_noise < NOISE_SIGMAS * 10 ** (-200.0 / 20)  # the -200 dB noise, no more


def test_seeded_and_reproducible() -> None:
    cfr = random_channel(np.random.default_rng(4), (2, 1, 1, 8, 16))
    a = observe(cfr, seed=5, snr_db=0.0, precoder="random", num_beams=6)
    b = observe(cfr, seed=5, snr_db=0.0, precoder="random", num_beams=6)
    c = observe(cfr, seed=6, snr_db=0.0, precoder="random", num_beams=6)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.precoders, b.precoders)
    assert not np.allclose(a.y, c.y)
    np.testing.assert_allclose(np.linalg.norm(a.precoders, axis=2), 1.0, rtol=FLOAT64_REL)


def test_snapshot_without_paths_gets_the_run_noise_level() -> None:
    cfr = random_channel(np.random.default_rng(7), (2, 1, 1, 4, 8))
    cfr[1] = 0
    obs = observe(cfr, snr_db=10.0, precoder="identity")
    np.testing.assert_allclose(obs.noise_variance[1], obs.noise_variance[0], rtol=FLOAT64_REL)
    assert np.all(np.isfinite(obs.y))


def test_bad_arguments() -> None:
    cfr = np.zeros((1, 1, 1, 4, 8), complex)
    with pytest.raises(ValueError, match="exactly one of snr_db, noise_variance and tx_power_dbm"):
        observe(cfr)
    with pytest.raises(ValueError, match="exactly one"):
        observe(cfr, snr_db=1.0, tx_power_dbm=1.0, bandwidth_hz=1e6)
    with pytest.raises(ValueError, match="precoder"):
        observe(cfr, snr_db=1.0, precoder=np.ones((3, 2)))


def test_observation_from_a_traced_run(tmp_path: Path) -> None:
    """The run's geometry reaches the observation; the noiseless part is the run's CFR."""
    scene = write_obj(tmp_path / "wall.obj", wall_y("wall", 10.0))
    config = make_config(scene, ue_positions=[[10.0, 2.0, 1.5], [-5.0, 4.0, 1.5]],
                         bs_array={"rows": 1, "cols": 8}, bs_orientation=(0.3, 0.0, 0.0))
    run = run_config(config, tmp_path).run
    obs = observation_from_run(run, rng=np.random.default_rng(0), seed=0, snr_db=20.0)
    assert obs.y.shape == (2, 1, 1, 8, 32) and obs.link == "downlink"
    np.testing.assert_array_equal(obs.bs_orientation, [[0.3, 0.0, 0.0]])
    np.testing.assert_array_equal(obs.bs_array.element_positions, run.bs_array.element_positions)
    assert obs.carrier_frequency == run.carrier_frequency
    np.testing.assert_array_equal(obs.snapshot_time, run.drive.time)
    y0 = noiseless(obs, run.cfr.astype(np.complex128))
    snr = np.mean(np.abs(y0) ** 2, axis=(2, 3, 4)) / obs.noise_variance
    np.testing.assert_allclose(10 * np.log10(snr), 20.0, rtol=FLOAT64_REL)


def test_closed_loop_sounder_re_observes_the_same_channel() -> None:
    """``closed_loop=True``: the sounder, given the open-loop precoders on every
    subcarrier, has the observation's noiseless signal and noise level; a beam chosen per
    subcarrier goes to that subcarrier only."""
    rng = np.random.default_rng(8)
    cfr = random_channel(rng, (2, 2, 2, 8, 32))
    assert observe(cfr, snr_db=10.0).sounder is None
    obs = observe(cfr, snr_db=10.0, precoder="dft", num_beams=8, closed_loop=True)
    sounder = obs.sounder
    assert sounder is not None
    _T, B, Nr, Nt, K = cfr.shape
    for t in range(2):
        F = np.broadcast_to(obs.precoders[t][:, None], (B, K, Nt, 8))
        y = sounder.sound(t, F, np.random.default_rng(9))
        noise = y - noiseless(obs, cfr)[t]
        np.testing.assert_allclose(np.mean(np.abs(noise) ** 2, axis=(1, 2, 3)),
                                   obs.noise_variance[t], rtol=NOISE_SIGMAS / np.sqrt(Nr * 8 * K))
    # One beam per subcarrier: subcarrier k of BS b is sent on antenna (k mod Nt) only.
    F = np.zeros((B, K, Nt, 8), complex)
    F[:, np.arange(K), np.arange(K) % Nt, 0] = 1.0
    quiet = observe(cfr, snr_db=300.0, closed_loop=True, precoder="identity")
    assert quiet.sounder is not None
    y = quiet.sounder.sound(1, F, np.random.default_rng(10))
    expected = cfr[1][:, :, np.arange(K) % Nt, np.arange(K)] * quiet.pilots[0]  # [bs, rx, K]
    np.testing.assert_allclose(y[:, :, 0, :], expected, rtol=0,
                               atol=FLOAT64_REL * np.abs(cfr).max())
    assert np.abs(y[:, :, 1:]).max() < FLOAT64_REL * np.abs(cfr).max()  # beams not sent
    a = quiet.sounder.sound(1, F, np.random.default_rng(10))
    np.testing.assert_array_equal(a, y)  # the caller's generator decides the noise


def test_closed_loop_sounder_rejects_bad_beams() -> None:
    cfr = random_channel(np.random.default_rng(11), (1, 1, 1, 4, 8))
    sounder = observe(cfr, snr_db=10.0, precoder="identity", closed_loop=True).sounder
    assert sounder is not None
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="expected"):
        sounder.sound(0, np.zeros((1, 8, 4, 3), complex), rng)
    with pytest.raises(ValueError, match="unit norm"):
        sounder.sound(0, np.full((1, 8, 4, 4), 1.0 + 0j), rng)
    with pytest.raises(ValueError, match="out of range"):
        sounder.sound(1, np.zeros((1, 8, 4, 4), complex), rng)
