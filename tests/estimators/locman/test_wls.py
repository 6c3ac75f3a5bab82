"""LOCMAN's position stage (estimators/locman/wls.py): eqs. (19)-(21)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.fisher import numerical_jacobian
from estimators.locman.bound import true_parameters
from estimators.locman.estimators import Locman
from estimators.locman.model import ChannelEstimate, LocmanSnapshot, snapshot
from estimators.locman.scenario import LocmanScenario, small
from estimators.locman.wls import (
    Fit,
    _GroundRefit,
    fix_covariance,
    ground_height_variance,
    initial_points,
    refine_with_ground,
    solve_position,
)
from estimators.observe import complex_normal
from estimators.typing import FloatArray
from tests.tolerances import FLOAT64_REL, LOCMAN_VP_JACOBIAN_REL, NOISELESS_PARAMETER_ABS


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
    gain = np.asarray(np.array([1, 1j]) @ np.random.default_rng(7).standard_normal((2, 6)),
                      dtype=np.complex128)
    y = np.einsum("krt,ktg->krg", snap.channel(gain, eta), snap.x)
    snap = dataclasses.replace(snap, y=y, geometry=geometry)
    start = x + np.r_[0.3, -0.2, 0.02, np.full(len(x) - 3, 0.1)]
    fit = refine_with_ground(snap, Fit(start, 0.0), 0.0, 200)
    np.testing.assert_allclose(fit.x, x, atol=NOISELESS_PARAMETER_ABS)
    assert fit.cost < 1e-12 * float(np.sum(np.abs(y) ** 2))


def test_ground_refit_estimates_a_ground_off_its_nominal_height() -> None:
    """The ground 0.1 m under the nominal 0 m (a terrain mesh): the refit at the nominal
    height is biased by the ground bounces' lengths; with ``free_height`` it returns the
    true geometry and ground, and its covariance (the height a nuisance) is finite."""
    obs, truth = small().observation(1, np.random.default_rng(4), 20.0)
    snap = snapshot(obs, 0, 0, 1.5)
    geometry = dataclasses.replace(snap.geometry, bs_position=np.array([0.0, 0.0, 6.0]))
    x, _ = true_parameters(dataclasses.replace(snap, geometry=geometry), truth, 0,
                           np.arange(3))
    eta = geometry.paths(x, ground_height=-0.1)
    gain = np.concatenate([truth.gain[0], -0.5 * truth.gain[0]])
    y = np.einsum("krt,ktg->krg", snap.channel(gain, eta), snap.x)
    snap = dataclasses.replace(snap, y=y, geometry=geometry)
    nominal = refine_with_ground(snap, Fit(x, 0.0), 0.0, 200)
    assert np.hypot(*(nominal.x[:2] - x[:2])) > 0.01  # 79 mm
    free = refine_with_ground(snap, Fit(x, 0.0), 0.0, 200, free_height=True)
    assert free.ground_free and free.ground_height is not None
    np.testing.assert_allclose(free.x, x, atol=NOISELESS_PARAMETER_ABS)
    np.testing.assert_allclose(free.ground_height, -0.1, atol=NOISELESS_PARAMETER_ABS)
    covariance = fix_covariance(snap, free, 1.0, free.ground_height)
    assert np.all(np.isfinite(covariance)) and np.all(np.linalg.eigvalsh(covariance) > 0)


def test_locman_keeps_the_nominal_ground_unless_the_data_reject_it() -> None:
    """LOCMAN's refit (40 dB, the channel stage's paths exact): with the ground at its
    nominal 0 m the Wald test keeps 0 m exactly; 0.1 m under it, the estimated height
    (within 4 of its standard deviations) and a fix well inside the nominal refit's
    79 mm bias."""
    obs, truth = small().observation(1, np.random.default_rng(4), 20.0)
    snap = snapshot(obs, 0, 0, 1.5)
    geometry = dataclasses.replace(snap.geometry, bs_position=np.array([0.0, 0.0, 6.0]))
    snap = dataclasses.replace(snap, geometry=geometry)
    x, model_paths = true_parameters(snap, truth, 0, np.arange(3))
    gain = np.concatenate([truth.gain[0], -0.5 * truth.gain[0]])
    rng = np.random.default_rng(5)
    for height in (0.0, -0.1):
        clean = np.einsum("krt,ktg->krg",
                          snap.channel(gain, geometry.paths(x, ground_height=height)), snap.x)
        sigma2 = float(np.mean(np.abs(clean) ** 2)) / 1e4
        noise = np.sqrt(sigma2 / 2) * (rng.standard_normal(clean.shape)
                                       + 1j * rng.standard_normal(clean.shape))
        noisy = dataclasses.replace(snap, y=clean + noise, noise_variance=sigma2)
        fix = Locman(ground_height=0.0).localize(
            noisy, ChannelEstimate(model_paths, truth.gain[0]), None)
        assert fix.converged
        found = fix.diagnostics["ground_height_m"]
        if height == 0.0:
            assert found == 0.0
            continue
        free = refine_with_ground(noisy, Fit(x, 0.0), 0.0, 200, free_height=True)
        assert abs(found - height) <= 4 * np.sqrt(ground_height_variance(noisy, free))
        assert np.hypot(*(fix.ue_position[:2] - x[:2])) < 0.02


def _mast_snapshot(seed: int) -> tuple[LocmanSnapshot, FloatArray]:
    """A noisy snapshot of a BS on a 6 m mast, every path with its ground bounce, and
    its true ``x``."""
    obs, truth = small().observation(1, np.random.default_rng(seed), 20.0)
    snap = snapshot(obs, 0, 0, 1.5)
    geometry = dataclasses.replace(snap.geometry, bs_position=np.array([0.0, 0.0, 6.0]))
    snap = dataclasses.replace(snap, geometry=geometry)
    x, _ = true_parameters(snap, truth, 0, np.arange(3))
    gain = np.concatenate([truth.gain[0], -0.5 * truth.gain[0]])
    clean = np.einsum("krt,ktg->krg", snap.channel(gain, geometry.paths(x, 0.0)), snap.x)
    sigma2 = float(np.mean(np.abs(clean) ** 2)) / 100
    noise = complex_normal(np.random.default_rng(seed + 1), clean.shape, sigma2)
    return dataclasses.replace(snap, y=clean + noise, noise_variance=sigma2), x


def test_pilot_compression_keeps_every_least_squares_residual() -> None:
    """``||Y - H X||² = ||Y_c - H X_c||² + dropped`` for any channel ``H``: the
    compressed snapshot fits what the full one fits, with ``G/Nt`` times fewer samples."""
    snap, _ = _mast_snapshot(3)
    compressed, dropped = snap.pilot_compressed()
    assert compressed.y.shape[-1] == snap.x.shape[1] < snap.y.shape[-1]
    rng = np.random.default_rng(8)
    for _ in range(3):
        H = complex_normal(rng, (snap.y.shape[0], snap.rx.size, snap.tx.size), 1.0)
        full = np.sum(np.abs(snap.y - H @ snap.x) ** 2)
        reduced = np.sum(np.abs(compressed.y - H @ compressed.x) ** 2) + dropped
        np.testing.assert_allclose(reduced, full, rtol=FLOAT64_REL)


@pytest.mark.parametrize("free_height", [False, True])
def test_ground_refit_jacobian_is_the_derivative_of_its_residual(free_height: bool) -> None:
    """The variable-projection Jacobian (Golub-Pereyra) against central differences of
    the residual, away from the optimum (the second term matters there)."""
    snap, x = _mast_snapshot(4)
    refit = _GroundRefit(snap, len(x), 0.0, free_height)
    v = x + np.r_[0.2, -0.1, 0.01, np.full(len(x) - 3, 0.05)]
    if free_height:
        v = np.append(v, -0.05)
    analytic = refit.jacobian(v)
    numeric = numerical_jacobian(refit.residual, v, 1e-6 * np.maximum(1.0, np.abs(v))).real
    error = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    assert error < LOCMAN_VP_JACOBIAN_REL, error
