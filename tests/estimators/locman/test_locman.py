"""LOCMAN (multi-dimensional atomic norm) and DCS-SOMP: structure, solvers, bounds, accuracy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.arrays import mimo_ofdm_channel, rotation_matrix
from estimators.base import EstimatorInputError
from estimators.fisher import gaussian_fim, numerical_jacobian
from estimators.locman import anm
from estimators.locman.estimators import (
    ChannelEstimate,
    DcsSomp,
    Locman,
    geometric_transform,
    locman_bounds,
    snapshot,
    solve_position,
    true_parameters,
)
from estimators.locman.scenario import LocmanScenario
from tests.tolerances import (
    ANM_HIGH_SNR_ABS,
    ANM_SOLVER_REL,
    FIM_NUMERIC_REL,
    FLOAT64_REL,
    LOCMAN_CRLB_FACTOR,
    NOISELESS_PARAMETER_ABS,
    rmse_margin,
)

SMALL = LocmanScenario(num_bs_antennas=4, num_ue_antennas=4, num_subcarriers=7, num_pilots=6)


def random_channel(rng: np.random.Generator, K: int, Nr: int, Nt: int, L: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``H [K, Nr, Nt]`` of ``L`` paths in the ANM's form, and their (ω_τ, ω_R, ω_T)."""
    w_tau, w_r, w_t = (rng.uniform(-np.pi, np.pi, L) for _ in range(3))
    c = rng.standard_normal(L) + 1j * rng.standard_normal(L)
    H = np.einsum("l,lk,lr,lt->krt", c, anm.vandermonde(np.exp(-1j * w_tau), K),
                  anm.vandermonde(np.exp(1j * w_r), Nr), anm.vandermonde(np.exp(-1j * w_t), Nt))
    return H, w_tau, w_r, w_t


def circular_sorted(a: np.ndarray) -> np.ndarray:
    return np.sort(np.mod(a, 2 * np.pi))


# ---------------------------------------------------------------- virtual channel


def test_virtual_channel_is_block_hankel_of_rank_paths_and_lift_is_one_to_one() -> None:
    rng = np.random.default_rng(0)
    K, Nr, Nt, L = 9, 3, 4, 3
    H, *_ = random_channel(rng, K, Nr, Nt, L)
    V = anm.hankel_lift(H)
    L1, L2 = anm.hankel_sizes(K)
    assert V.shape == (L1 * Nr, L2 * Nt)
    s = np.linalg.svd(V, compute_uv=False)
    assert np.sum(s > 1e-10 * s[0]) == L  # O1: rank = number of paths
    blocks = V.reshape(L1, Nr, L2, Nt)
    for i in range(L1):  # O3: block (i, j) depends on i + j only, and is H[i + j]
        for j in range(L2):
            np.testing.assert_array_equal(blocks[i, :, j, :], H[i + j])
    # O4 / adjoint: <G(H), V'> = <H, G*(V')>, and G*G = diag(counts).
    W = rng.standard_normal(V.shape) + 1j * rng.standard_normal(V.shape)
    lhs = np.vdot(anm.hankel_lift(H), W)
    rhs = np.vdot(H, anm.hankel_adjoint(W, H.shape))
    assert abs(lhs - rhs) <= FLOAT64_REL * abs(lhs) * 10
    np.testing.assert_allclose(anm.hankel_adjoint(V, H.shape),
                               H * anm.hankel_counts(K)[:, None, None], rtol=FLOAT64_REL)


def test_toeplitz_projection_is_a_projection_onto_two_level_toeplitz() -> None:
    rng = np.random.default_rng(1)
    levels, size = 4, 3
    M = rng.standard_normal((12, 12)) + 1j * rng.standard_normal((12, 12))
    P = anm.project_toeplitz(M, levels, size)
    np.testing.assert_allclose(anm.project_toeplitz(P, levels, size), P, atol=1e-12)
    blocks = P.reshape(levels, size, levels, size)
    for i in range(levels):
        for j in range(levels):
            if i > 0 and j > 0:  # block Toeplitz ...
                np.testing.assert_allclose(blocks[i, :, j, :], blocks[i - 1, :, j - 1, :],
                                           atol=1e-12)
            b = blocks[i, :, j, :]  # ... of Toeplitz blocks
            np.testing.assert_allclose(b[1:, 1:], b[:-1, :-1], atol=1e-12)
    # The residual is orthogonal to every 2-level Toeplitz matrix (Frobenius projection).
    Q = anm.project_toeplitz(rng.standard_normal((12, 12)), levels, size)
    assert abs(np.vdot(Q, M - P)) < 1e-10


def test_vandermonde_decomposition_recovers_paired_parameters() -> None:
    rng = np.random.default_rng(2)
    levels, size, L = 5, 4, 3
    z = np.exp(1j * rng.uniform(-np.pi, np.pi, L))
    e = np.exp(1j * rng.uniform(-np.pi, np.pi, L))
    p = rng.uniform(0.5, 2.0, L)  # powers
    u = (anm.vandermonde(z, levels)[:, :, None] * anm.vandermonde(e, size)[:, None, :]).reshape(
        L, -1)
    T = np.einsum("l,li,lj->ij", p, u, u.conj())
    z_hat, e_hat = anm.toeplitz_vandermonde(T, levels, size, L)
    order = [int(np.argmin(np.abs(z_hat - zz))) for zz in z]
    np.testing.assert_allclose(z_hat[order], z, atol=1e-9)
    np.testing.assert_allclose(e_hat[order], e, atol=1e-9)  # paired with its z
    assert anm.model_order(T + 1e-9 * np.eye(T.shape[0]), 1e-3, 10) == L


# ------------------------------------------------------------------------- solvers


def test_admm_and_sdp_solve_the_same_denoising_problem() -> None:
    rng = np.random.default_rng(3)
    K, Nr, Nt, G, L = 7, 4, 4, 6, 3
    H, w_tau, w_r, w_t = random_channel(rng, K, Nr, Nt, L)
    x = np.exp(1j * rng.uniform(0, 2 * np.pi, (K, Nt, G))) / np.sqrt(Nt)
    clean = np.einsum("krt,ktg->krg", H, x)
    sigma2 = 0.01 * np.mean(np.abs(clean) ** 2)
    y = clean + np.sqrt(sigma2 / 2) * (rng.standard_normal(clean.shape)
                                       + 1j * rng.standard_normal(clean.shape))
    problem = anm.AnmProblem(y, x, anm.regularization(sigma2, x, Nr))
    sdp = anm.solve_sdp(problem)
    admm = anm.solve_admm(problem, tolerance=1e-7, max_iterations=20_000)
    assert sdp.converged and admm.converged
    assert np.linalg.norm(admm.H - sdp.H) / np.linalg.norm(sdp.H) < ANM_SOLVER_REL
    assert abs(admm.objective - sdp.objective) / sdp.objective < ANM_SOLVER_REL
    # The denoised channel beats the raw least-squares fit and keeps the paths.
    ls = np.stack([np.linalg.lstsq(x[k].T, y[k].T, rcond=None)[0].T for k in range(K)])
    assert np.linalg.norm(admm.H - H) < np.linalg.norm(ls - H)
    paths = anm.decompose(admm, L)
    for got, want in ((paths.delay_phase, w_tau), (paths.rx_phase, w_r),
                      (paths.tx_phase, w_t)):
        np.testing.assert_allclose(circular_sorted(got), circular_sorted(want), atol=0.05)


def test_regularization_scales_with_noise_and_pilot_energy() -> None:
    x = np.ones((7, 4, 6))
    mu = anm.regularization(1.0, x, 4)
    assert anm.regularization(4.0, x, 4) == pytest.approx(2 * mu)
    assert anm.regularization(1.0, 3 * x, 4) == pytest.approx(3 * mu)


# ------------------------------------------------------------------- model, bounds


def test_forward_model_is_the_twins_channel() -> None:
    obs, truth = SMALL.sample(20.0, 1, np.random.default_rng(4))
    snap = snapshot(obs, 0, 0, None)
    _, eta = true_parameters(snap, truth, 0, np.arange(3))
    ue_elements = obs.ue_array.element_positions @ rotation_matrix(
        truth.ue_orientation[0]).T  # type: ignore[index]
    reference = mimo_ofdm_channel(
        truth.gain[0], truth.tau[0], truth.aod[0], truth.aoa[0],
        tx_element_positions=obs.bs_array.element_positions, rx_element_positions=ue_elements,
        wavelength=obs.wavelength, frequencies=obs.frequencies)  # [Nr, Nt, K]
    ours = snap.channel(truth.gain[0], eta).transpose(1, 2, 0)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT64_REL * np.abs(
        reference).max() * 1e3)


def test_channel_jacobian_and_position_transform_match_finite_differences() -> None:
    obs, truth = SMALL.sample(10.0, 1, np.random.default_rng(5))
    snap = snapshot(obs, 0, 0, None)
    x, eta = true_parameters(snap, truth, 0, np.arange(3))
    gain = truth.gain[0]
    D = snap.jacobian(gain, eta)

    def mean(v: np.ndarray) -> np.ndarray:
        p = v.reshape(-1, 5)
        return np.einsum("krt,ktg->krg", snap.channel(p[:, 3] + 1j * p[:, 4], p[:, :3]),
                         snap.x).ravel()

    v0 = np.column_stack([eta, gain.real, gain.imag]).ravel()
    steps = np.tile([1e-5, 1e-6, 1e-6, 1e-9, 1e-9], 3)
    numeric = numerical_jacobian(mean, v0, steps)
    assert np.linalg.norm(D - numeric) / np.linalg.norm(numeric) < FIM_NUMERIC_REL
    # Position FIM through T vs the FIM of the mean as a direct function of x.
    T = geometric_transform(snap.geometry, x, 3)

    def mean_x(v: np.ndarray) -> np.ndarray:
        g = v[7::2] + 1j * v[8::2]
        return np.einsum("krt,ktg->krg", snap.channel(g, snap.geometry.paths(v[:7])),
                         snap.x).ravel()

    xv = np.concatenate([x, np.column_stack([gain.real, gain.imag]).ravel()])
    direct = gaussian_fim(numerical_jacobian(mean_x, xv, np.r_[np.full(7, 1e-6), np.full(
        6, 1e-9)]), snap.noise_variance)
    via_t = T.T @ snap.fim(gain, eta) @ T
    assert np.linalg.norm(via_t - direct) / np.linalg.norm(direct) < FIM_NUMERIC_REL


def test_position_fit_is_exact_on_exact_parameters_and_resolves_the_mirror_yaw() -> None:
    obs, truth = LocmanScenario().sample(20.0, 1, np.random.default_rng(6))
    snap = snapshot(obs, 0, 0, None)
    x, eta = true_parameters(snap, truth, 0, np.arange(3))
    fit = solve_position(snap, ChannelEstimate(eta, truth.gain[0]), 200)
    np.testing.assert_allclose(fit.x, x, atol=NOISELESS_PARAMETER_ABS)


def test_bounds_scale_with_noise_and_are_finite() -> None:
    rng = np.random.default_rng(7)
    obs10, truth = LocmanScenario().sample(10.0, 1, rng)
    b10 = locman_bounds(obs10, truth, 3)
    obs30 = dataclasses.replace(obs10, noise_variance=obs10.noise_variance / 100)
    b30 = locman_bounds(obs30, truth, 3)
    np.testing.assert_allclose(b30.bound.position_error_bound * 10,
                               b10.bound.position_error_bound, rtol=1e-9)
    assert np.all(np.isfinite(b10.orientation_error_bound))
    assert np.all(b10.aod_bound > 0) and np.all(b10.aoa_bound > 0)


def test_channel_parameters_and_model_order_at_high_snr() -> None:
    obs, truth = SMALL.sample(40.0, 1, np.random.default_rng(8))
    snap = snapshot(obs, 0, 0, None)
    _, eta = true_parameters(snap, truth, 0, np.arange(3))
    found = Locman().channel_parameters(snap)
    np.testing.assert_allclose(found.params, eta, atol=ANM_HIGH_SNR_ABS)  # paired, LOS first
    estimated = Locman(order_threshold=0.05, num_paths=4).channel_parameters(snap)
    assert estimated.order == 3


def test_rejects_observations_it_cannot_use() -> None:
    obs, _ = SMALL.sample(10.0, 1, np.random.default_rng(9))
    planar = dataclasses.replace(obs.ue_array, element_positions=np.array(
        [[0, -1, -1], [0, 1, -1], [0, -1, 1], [0, 1, 1]], float) * 1e-3, rows=2, cols=2)
    with pytest.raises(EstimatorInputError, match="UE array"):
        Locman().estimate(dataclasses.replace(obs, ue_array=planar))
    with pytest.raises(EstimatorInputError, match="downlink"):
        DcsSomp().estimate(dataclasses.replace(obs, link="uplink"))


# ------------------------------------------------------------------------ accuracy


@pytest.mark.slow
def test_locman_beats_dcs_somp_and_is_near_the_bound_at_high_snr() -> None:
    """The issue's criterion, at 20 dB on the paper-style setting (fixed seed)."""
    trials = 8
    obs, truth = LocmanScenario().sample(20.0, trials, np.random.default_rng(2026))
    bound = locman_bounds(obs, truth, 3)
    peb = np.sqrt(np.mean(bound.bound.position_error_bound**2))
    rmse = {}
    for estimator in (Locman(), DcsSomp()):
        est = estimator.estimate(obs)
        assert est.converged.all()
        err = np.linalg.norm(est.ue_position - truth.ue_position, axis=1)
        rmse[estimator.name] = float(np.sqrt(np.mean(err**2)))
    assert rmse["locman"] < rmse["dcs-somp"]
    assert rmse["locman"] <= LOCMAN_CRLB_FACTOR * rmse_margin(trials) * peb
