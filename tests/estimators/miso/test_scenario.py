"""The MISO paper's setting (``estimators/miso/scenario.py``)."""

from __future__ import annotations

import numpy as np

from estimators.miso.model import MisoSnapshot
from estimators.miso.scenario import small
from estimators.scenario import Scenario
from tests.tolerances import NOISE_SIGMAS


def test_the_setting_is_a_scenario_and_the_model_explains_it() -> None:
    """y less the model's mean at the true paths is the noise: mean power σ² within its
    statistical spread (a wrong steering sign or delay phase leaves the 10 dB signal)."""
    assert isinstance(small(), Scenario)
    obs, truth = small().observation(2, np.random.default_rng(0), 10.0)
    residual_power, samples = 0.0, 0
    for t in range(obs.num_snapshots):
        snap = MisoSnapshot.from_observation(obs, t, 0)
        mean = snap.noiseless(truth.gain[t], truth.tau[t], truth.aod[t, :, 0],
                              truth.aod[t, :, 1])
        residual_power += float(np.sum(np.abs(snap.y - mean) ** 2)) / snap.noise_variance
        samples += snap.y.size
    # |n|²/σ² is exponential (standard deviation 1) per complex sample.
    assert abs(residual_power / samples - 1.0) < NOISE_SIGMAS / np.sqrt(samples)
