"""LOCMAN's position stage (estimators/locman/wls.py): eqs. (19)-(21)."""

from __future__ import annotations

import dataclasses

import numpy as np

from estimators.locman.bound import true_parameters
from estimators.locman.model import ChannelEstimate, snapshot
from estimators.locman.scenario import LocmanScenario, small
from estimators.locman.wls import Fit, initial_points, refine_with_ground, solve_position
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


def test_ground_refit_recovers_the_geometry_of_a_channel_with_ground_bounces() -> None:
    """A BS on a mast, every path with its ground bounce (noiseless): the refit of
    ``refine_with_ground`` from a fix 0.3 m off returns the true geometry."""
    obs, truth = small().observation(1, np.random.default_rng(6), 20.0)
    snap = snapshot(obs, 0, 0, None)
    x, _ = true_parameters(snap, truth, 0, np.arange(3))
    geometry = dataclasses.replace(snap.geometry, bs_position=np.array([0.0, 0.0, 6.0]),
                                   ue_height=1.5)
    eta = geometry.paths(x, ground_height=0.0)
    gain = np.array([1, 1j]) @ np.random.default_rng(7).standard_normal((2, 6))
    y = np.einsum("krt,ktg->krg", snap.channel(gain, eta), snap.x)
    snap = dataclasses.replace(snap, y=y, geometry=geometry)
    start = x + np.r_[0.3, -0.2, 0.02, np.full(len(x) - 3, 0.1)]
    fit = refine_with_ground(snap, Fit(start, 0.0), 0.0, 200)
    np.testing.assert_allclose(fit.x, x, atol=NOISELESS_PARAMETER_ABS)
    assert fit.cost < 1e-12 * float(np.sum(np.abs(y) ** 2))
