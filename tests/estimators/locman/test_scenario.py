"""LOCMAN's synthetic setting (estimators/locman/scenario.py)."""

from __future__ import annotations

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT
from estimators.locman.scenario import LocmanScenario, small
from estimators.scenario import Scenario
from tests.tolerances import FLOAT64_REL


def test_the_setting_is_a_scenario_with_its_truth() -> None:
    scenario = small()
    assert isinstance(scenario, Scenario) and isinstance(scenario, LocmanScenario)
    obs, truth = scenario.observation(3, np.random.default_rng(0), 10.0)
    assert obs.y.shape == (3, 1, scenario.num_ue_antennas, scenario.num_pilots,
                           scenario.num_subcarriers)
    los = np.linalg.norm(scenario.ue_position) / SPEED_OF_LIGHT
    np.testing.assert_allclose(truth.tau[:, 0], los, rtol=FLOAT64_REL)
    assert truth.los.all() and truth.ue_orientation is not None
    np.testing.assert_allclose(truth.ue_orientation[:, 0], scenario.ue_yaw)
    # Fresh phases per trial; free-space magnitudes λ / (4π ℓ).
    lengths = truth.tau[0] * SPEED_OF_LIGHT
    np.testing.assert_allclose(np.abs(truth.gain), np.broadcast_to(
        scenario.wavelength / (4 * np.pi * lengths), truth.gain.shape), rtol=FLOAT64_REL)
    assert len(np.unique(np.round(np.angle(truth.gain[:, 0]), 9))) == 3


def test_sync_error_delays_every_path_alike() -> None:
    base, late = LocmanScenario(), LocmanScenario(sync_error_s=2e-9)
    np.testing.assert_allclose(late.geometry()[0] - base.geometry()[0], 2e-9, rtol=1e-9)
