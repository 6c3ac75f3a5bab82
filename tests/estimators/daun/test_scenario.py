"""DAUN's own synthetic setting (estimators/daun/scenario.py): the paper's SNR of
eq. (1), observations and training batches alike, and their truth."""

from __future__ import annotations

import numpy as np
import pytest

from estimators.arrays import steering_vector
from estimators.daun.scenario import DaunScenario
from tests.tolerances import (
    FLOAT64_ABS,
    NOISE_SIGMAS,
)

#: A small version of the paper's setting: fast, and a grid one cell of which is 4 m.
SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32)


def test_observation_and_batch_agree_on_the_noise_model() -> None:
    """The paper's SNR (eq. 1): unit noise, every BS's channel at ``ω`` per element."""
    obs, truths = SMALL.observation(3, np.random.default_rng(1), 20.0)
    assert obs.y.shape == (3, 4, 16, 1, 1) and obs.link == "uplink" and len(truths) == 4
    np.testing.assert_array_equal(obs.noise_variance, 1.0)
    np.testing.assert_array_equal(truths[0].ue_position[:, 2], SMALL.height)
    # |h|² = 10 per element on average, noise 1: total 11 per element, in both forms.
    y, _ = SMALL.batch(np.full(4000, 10.0), np.random.default_rng(2))
    assert np.mean(np.abs(y) ** 2) == pytest.approx(11.0, rel=NOISE_SIGMAS / np.sqrt(y.size))
    obs, _ = SMALL.observation(500, np.random.default_rng(2), 10.0)
    assert np.mean(np.abs(obs.y) ** 2) == pytest.approx(11.0,
                                                         rel=NOISE_SIGMAS / np.sqrt(obs.y.size))
    # The truth's paths rebuild the noiseless channel.
    obs, truths = SMALL.observation(2, np.random.default_rng(3), np.inf)
    np.testing.assert_array_equal(obs.noise_variance, 0.0)
    for m, truth in enumerate(truths):
        r = SMALL.bs_array().world_positions(SMALL.bs_orientation()[m])
        a = steering_vector(r, truth.aoa[..., 0], truth.aoa[..., 1], SMALL.wavelength)
        np.testing.assert_allclose(np.einsum("tl,tla->ta", truth.gain, a),
                                   obs.y[:, m, :, 0, 0], atol=FLOAT64_ABS * 10)
