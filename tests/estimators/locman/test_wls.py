"""LOCMAN's position stage (estimators/locman/wls.py): eqs. (19)-(21)."""

from __future__ import annotations

import numpy as np

from estimators.locman.bound import true_parameters
from estimators.locman.model import ChannelEstimate, snapshot
from estimators.locman.scenario import LocmanScenario
from estimators.locman.wls import initial_points, solve_position
from tests.tolerances import NOISELESS_PARAMETER_ABS


def test_position_fit_is_exact_on_exact_parameters_and_resolves_the_mirror_yaw() -> None:
    obs, truth = LocmanScenario().observation(1, np.random.default_rng(6), 20.0)
    snap = snapshot(obs, 0, 0, None)
    x, eta = true_parameters(snap, truth, 0, np.arange(3))
    channel = ChannelEstimate(eta, truth.gain[0])
    # Both mirror yaws of the UE's ULA start a fit: the NLOS paths must pick the true one.
    starts = initial_points(snap.geometry, channel)
    assert len({round(float(s[2]), 6) for s in starts}) >= 2
    fit = solve_position(snap, channel, 200)
    np.testing.assert_allclose(fit.x, x, atol=NOISELESS_PARAMETER_ABS)
