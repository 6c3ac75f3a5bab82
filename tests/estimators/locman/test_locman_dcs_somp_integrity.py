"""DCS-SOMP's integrity check against its grid resolution (issue 22,
estimators/locman/baselines.py: :meth:`DcsSomp._fix_covariance`)."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.stats import chi2

from estimators.locman.baselines import FIT_PROBABILITY, DcsSomp
from estimators.locman.bound import true_parameters
from estimators.locman.model import ChannelEstimate, snapshot
from estimators.locman.scenario import small


def test_grid_fix_is_covered_and_its_covariance_holds_the_grid_step() -> None:
    """The paper's small setting at 40 dB: the fix passes, and its covariance (the
    WLS under DCS-SOMP's grid resolution) covers the true position at 99 %; it is no
    smaller than the grid's share alone."""
    obs, truth = small().observation(1, np.random.default_rng(8), 40.0)
    snap = snapshot(obs, 0, 0, None)
    estimator = DcsSomp()
    result = estimator.localize(snap, estimator.channel_parameters(snap))
    assert result.converged, result.reason
    assert result.position_covariance is not None
    C = result.position_covariance[:2, :2]
    error = result.ue_position[:2] - truth.ue_position[0, :2]
    assert error @ np.linalg.solve(C, error) <= chi2.ppf(0.99, 2)
    assert result.diagnostics["grid_fit"] <= chi2.ppf(FIT_PROBABILITY, 2)


def test_a_los_that_does_not_fit_the_geometry_is_refused() -> None:
    """The true paths with the LOS's departure moved by ten grid steps (an echo taken
    for the LOS): no UE position and scatterers explain the three paths within the
    grid's resolution, and the fix is refused with the reason."""
    obs, truth = small().observation(1, np.random.default_rng(8), 40.0)
    snap = snapshot(obs, 0, 0, None)
    _, eta = true_parameters(snap, truth, 0, np.arange(3))
    # Without the free-space check, which refuses this one first (the moved LOS 46 dB
    # below free space at the fix: test_a_los_far_below_free_space_is_refused).
    estimator = DcsSomp(los_margin_db=np.inf)
    step = 2 * np.pi / (estimator.oversampling * snap.tx.size)
    params = eta.copy()
    params[0, 2] = np.angle(np.exp(1j * (params[0, 2] + 10 * step)))
    channel = ChannelEstimate(params, snap.fit_gains(params))
    result = estimator.localize(snap, channel)
    assert not result.converged
    assert "do not fit a LOS + single-bounce geometry" in result.reason
    # The same channel, true: passes.
    good = estimator.localize(snap, dataclasses.replace(channel, params=eta,
                                                        gain=snap.fit_gains(eta)))
    assert good.converged, good.reason


def test_a_los_far_below_free_space_is_refused() -> None:
    """The paper's small setting: its gains are Friis' (``λ / (4π d)``), so the fitted
    LOS is at free space (0 dB, to the noise); the same pilots from a channel 20 dB
    weaker (noise scaled alike: the same SNR) put the LOS 20 dB below free space, as a
    reflection taken for a blocked LOS does, and both estimators refuse the fix (the
    estimates are scale-free: the same fix, its LOS exactly 20 dB lower; measured 0 dB
    to within 0.25 dB, DCS-SOMP's grid the larger offset)."""
    from estimators.locman.estimators import Locman

    obs, _ = small().observation(2, np.random.default_rng(8), 20.0)
    weak = dataclasses.replace(obs, y=obs.y / 10, noise_variance=obs.noise_variance / 100)
    for estimator in (Locman(), DcsSomp()):
        est = estimator.estimate(obs, np.random.default_rng(1))
        assert est.converged.all(), est.reason
        np.testing.assert_allclose(est.diagnostics["los_free_space_db"], 0.0, atol=0.5)
        refused = estimator.estimate(weak, np.random.default_rng(1))
        assert not refused.converged.any(), refused.reason
        assert all("below free space" in r for r in refused.reason), refused.reason
        np.testing.assert_allclose(refused.diagnostics["los_free_space_db"],
                                   est.diagnostics["los_free_space_db"] - 20.0, atol=1e-6)
