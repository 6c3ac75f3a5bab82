"""The atomic norm denoiser (estimators/locman/anm.py): virtual channel, projections,
Vandermonde decomposition, and the two solvers of one problem."""

from __future__ import annotations

import numpy as np
import pytest

from estimators.locman import anm
from estimators.observe import complex_normal
from tests.estimators.locman.helpers import circular_sorted, random_channel
from tests.tolerances import (
    ANM_DECOMPOSITION_ABS,
    ANM_SOLVER_H_REL,
    ANM_SOLVER_OBJECTIVE_REL,
    FLOAT64_REL,
)


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
    W = complex_normal(rng, V.shape)
    lhs = np.vdot(anm.hankel_lift(H), W)
    rhs = np.vdot(H, anm.hankel_adjoint(W, H.shape))
    assert abs(lhs - rhs) <= FLOAT64_REL * abs(lhs) * 10
    np.testing.assert_allclose(anm.hankel_adjoint(V, H.shape),
                               H * anm.hankel_counts(K)[:, None, None], rtol=FLOAT64_REL)


def test_decoupled_lift_is_the_channel_as_a_delay_by_direction_matrix() -> None:
    """``"decoupled"``: ``V = H`` as ``[subcarrier, rx_ant tx_ant]``, of rank = paths, its
    columns' span that of the delay Vandermonde vectors, its rows' that of
    ``a_R ⊗ a_T^*``; the adjoint is the reshape back (one entry of V per entry of H)."""
    rng = np.random.default_rng(0)
    K, Nr, Nt, L = 9, 3, 4, 3
    H, w_tau, w_r, w_t = random_channel(rng, K, Nr, Nt, L)
    lift = anm.lift_of("decoupled", H.shape)
    V = lift.lift(H)
    assert V.shape == lift.sizes == (K, Nr * Nt)
    assert lift.row_structure == (K, 1) and lift.column_structure == (Nr, Nt)
    np.testing.assert_array_equal(lift.counts, np.ones(K))
    s = np.linalg.svd(V, compute_uv=False)
    assert np.sum(s > 1e-10 * s[0]) == L
    delay = anm.vandermonde(np.exp(-1j * w_tau), K).T  # [K, L]
    directions = (anm.vandermonde(np.exp(-1j * w_r), Nr)[:, :, None]  # a_R^* ⊗ a_T, [Nr Nt, L]
                  * anm.vandermonde(np.exp(1j * w_t), Nt)[:, None, :]).reshape(L, -1).T
    for basis, side in ((delay, V), (directions, V.conj().T)):
        projected = basis @ np.linalg.lstsq(basis, side, rcond=None)[0]
        np.testing.assert_allclose(projected, side, atol=1e-10 * np.abs(V).max())
    np.testing.assert_array_equal(lift.adjoint_into(V, np.empty_like(H)), H)
    np.testing.assert_array_equal(lift.flat_index().ravel(), np.arange(H.size))
    with pytest.raises(ValueError, match="formulation"):
        anm.lift_of("toeplitz", H.shape)  # type: ignore[arg-type]


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


@pytest.mark.parametrize("formulation", anm.FORMULATIONS)
def test_admm_and_sdp_solve_the_same_denoising_problem(formulation: anm.Formulation) -> None:
    rng = np.random.default_rng(3)
    K, Nr, Nt, G, L = 7, 4, 4, 6, 3
    H, w_tau, w_r, w_t = random_channel(rng, K, Nr, Nt, L)
    x = np.exp(1j * rng.uniform(0, 2 * np.pi, (K, Nt, G))) / np.sqrt(Nt)
    clean = np.einsum("krt,ktg->krg", H, x)
    sigma2 = 0.01 * np.mean(np.abs(clean) ** 2)
    y = clean + complex_normal(rng, clean.shape, sigma2)
    problem = anm.AnmProblem(y, x, anm.regularization(sigma2, x, Nr))
    sdp = anm.solve_sdp(problem, formulation=formulation)
    admm = anm.solve_admm(problem, tolerance=1e-7, max_iterations=20_000,
                          formulation=formulation)
    assert sdp.converged and admm.converged
    assert admm.formulation == sdp.formulation == formulation
    assert np.linalg.norm(admm.H - sdp.H) / np.linalg.norm(sdp.H) < ANM_SOLVER_H_REL
    assert abs(admm.objective - sdp.objective) / sdp.objective < ANM_SOLVER_OBJECTIVE_REL
    # The denoised channel beats the raw least-squares fit and keeps the paths.
    ls = np.stack([np.linalg.lstsq(x[k].T, y[k].T, rcond=None)[0].T for k in range(K)])
    assert np.linalg.norm(admm.H - H) < np.linalg.norm(ls - H)
    paths = anm.decompose(admm, L)
    for got, want in ((paths.delay_phase, w_tau), (paths.rx_phase, w_r),
                      (paths.tx_phase, w_t)):
        np.testing.assert_allclose(circular_sorted(got), circular_sorted(want),
                                   atol=ANM_DECOMPOSITION_ABS)


def test_regularization_scales_with_noise_and_pilot_energy() -> None:
    x = np.ones((7, 4, 6))
    mu = anm.regularization(1.0, x, 4)
    assert anm.regularization(4.0, x, 4) == pytest.approx(2 * mu)
    assert anm.regularization(1.0, 3 * x, 4) == pytest.approx(3 * mu)
