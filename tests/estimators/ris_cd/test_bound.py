"""Bounds of RIS correlation-dispersion positioning (§IV): the geometric CRLB with prior
(eq. 44′), Lemma 2's mixture (eqs. 41–46) and its Fisher information (eqs. 48, 37′–43′),
checked against closed forms and independent quadratures on small seeded cases."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from scipy import integrate

from estimators.fisher import numerical_jacobian
from estimators.observe import complex_normal
from estimators.ris_cd.bound import (
    fingerprint_jacobian,
    geometric_bound_with_prior,
    mixture_fisher_information,
    mixture_posterior,
    real_covariance,
    real_stack,
    two_stage_bound,
)
from estimators.typing import ComplexArray, FloatArray
from tests.tolerances import (
    FLOAT64_REL,
    NOISE_SIGMAS,
    RIS_CD_FIM_MC_FLOOR_REL,
    RIS_CD_GRID_JACOBIAN_REL,
    RIS_CD_LIMIT_REL,
    RIS_CD_SEPARATED_REL,
)


def _complex(rng: np.random.Generator, *shape: int) -> ComplexArray:
    return complex_normal(rng, shape)


def _no_prior_crlb(jacobian: ComplexArray, noise_variance: float) -> FloatArray:
    return np.asarray(np.linalg.inv(2 / noise_variance * np.real(jacobian.conj().T @ jacobian)))


def _cn_log_pdf(h: ComplexArray, mean: ComplexArray, cov: npt.ArrayLike) -> FloatArray:
    """log CN(h; mean, cov) for ``h [n, P]``, written out independently of the module."""
    d, cov = h - mean, np.asarray(cov, dtype=np.complex128)
    quad = np.real(np.einsum("np,np->n", d.conj(), np.linalg.solve(cov, d.T).T))
    _, logdet = np.linalg.slogdet(np.pi * cov)
    return np.asarray(-quad - logdet)


# ---------------------------------------------------------------------- eq. (44′)


def test_geometric_kalman_form_equals_the_information_form() -> None:
    rng = np.random.default_rng(0)
    for P, dim in ((4, 2), (6, 3), (1, 2)):
        J = _complex(rng, P, dim) * 3.0
        A = rng.standard_normal((dim, dim))
        prior = A @ A.T + 0.5 * np.eye(dim)
        sigma2 = 0.7
        bound = geometric_bound_with_prior(J, sigma2, prior)
        info = np.linalg.inv(prior) + 2 / sigma2 * np.real(J.conj().T @ J)
        np.testing.assert_allclose(bound, np.linalg.inv(info), rtol=FLOAT64_REL * 1e3,
                                   atol=FLOAT64_REL * np.abs(bound).max())
        np.testing.assert_array_equal(bound, bound.T)


def test_geometric_bound_broadcasts_over_batch_dims() -> None:
    rng = np.random.default_rng(1)
    J = _complex(rng, 5, 4, 2)
    sigma2 = np.array([0.1, 1.0, 3.0, 10.0, 0.5])
    bound = geometric_bound_with_prior(J, sigma2, np.eye(2) * 2.0)
    assert bound.shape == (5, 2, 2)
    for b in range(5):
        np.testing.assert_allclose(bound[b], geometric_bound_with_prior(J[b], sigma2[b],
                                                                        np.eye(2) * 2.0),
                                   rtol=FLOAT64_REL)


def test_geometric_bound_limits() -> None:
    rng = np.random.default_rng(2)
    J = _complex(rng, 4, 2)
    prior = np.array([[4.0, 1.0], [1.0, 3.0]])
    # σ² → ∞: only the prior is left.
    np.testing.assert_allclose(geometric_bound_with_prior(J, 1e12, prior), prior,
                               rtol=RIS_CD_LIMIT_REL)
    # Σ_p → ∞: the prior-free CRLB; the gap shrinks like 1/s.
    no_prior = _no_prior_crlb(J, 0.3)
    gaps = []
    for s in (1e2, 1e4, 1e6):
        bound = geometric_bound_with_prior(J, 0.3, s * prior)
        gaps.append(np.abs(bound - no_prior).max() / np.abs(no_prior).max())
    assert gaps[2] < RIS_CD_LIMIT_REL
    assert gaps[0] / gaps[1] == pytest.approx(100, rel=0.05)
    # More noise never helps; a prior never hurts (Loewner order).
    for a, b in ((0.3, 1.0), (1.0, 5.0)):
        diff = geometric_bound_with_prior(J, b, prior) - geometric_bound_with_prior(J, a, prior)
        assert np.linalg.eigvalsh(diff).min() > -FLOAT64_REL
    diff = no_prior - geometric_bound_with_prior(J, 0.3, prior)
    assert np.linalg.eigvalsh(diff).min() > 0


def test_geometric_bound_rejects_bad_input() -> None:
    J = np.ones((3, 2), dtype=complex)
    with pytest.raises(ValueError, match="prior_covariance"):
        geometric_bound_with_prior(J, 1.0, np.eye(3))
    with pytest.raises(ValueError, match="noise_variance"):
        geometric_bound_with_prior(J, 0.0, np.eye(2))


# ---------------------------------------------------------------------- Lemma 2


def test_lemma2_mixture_is_the_normalised_product_of_kernel_prior_and_likelihood() -> None:
    rng = np.random.default_rng(3)
    M, P, sigma2 = 4, 2, 0.4
    fingerprints = _complex(rng, M, P)
    observed = _complex(rng, P)
    A = _complex(rng, P, P)
    kernel = A @ A.conj().T * 0.2 + 0.05 * np.eye(P)
    pi = np.array([0.1, 0.4, 0.3, 0.2])
    post = mixture_posterior(fingerprints, observed, sigma2, kernel, sample_weights=pi)
    assert post.weights.sum() == pytest.approx(1.0, abs=FLOAT64_REL)
    points = observed + _complex(rng, 50, P)
    # Eq. (43): p_k(h) · CN(ĥ; h, σ² I), eqs. (41)–(42) and (40), unnormalised.
    kde = np.log(sum(pi[m] * np.exp(_cn_log_pdf(points, fingerprints[m], kernel))
                     for m in range(M)))
    likelihood = np.array([_cn_log_pdf(observed[None], h, sigma2 * np.eye(P))[0]
                           for h in points])
    mixture = np.log(sum(post.weights[m] * np.exp(_cn_log_pdf(points, post.means[m],
                                                                post.covariance))
                         for m in range(M)))
    ratio = mixture - (kde + likelihood)
    np.testing.assert_allclose(ratio, ratio[0], atol=1e-10)
    # The product integrates to the evidence Σ π_m CN(ĥ; h_m, Σ_k + σ² I) (eq. 47).
    evidence = sum(pi[m] * np.exp(_cn_log_pdf(observed[None], fingerprints[m],
                                              kernel + sigma2 * np.eye(P))[0])
                   for m in range(M))
    assert np.exp(-ratio[0]) == pytest.approx(evidence, rel=1e-10)


def test_posterior_zero_weight_and_validation() -> None:
    fingerprints = np.array([[0.0], [1.0], [2.0]], dtype=complex)
    post = mixture_posterior(fingerprints, np.array([0.9 + 0j]), 0.5, 0.1,
                             sample_weights=[0.0, 1.0, 1.0])
    assert post.weights[0] == 0.0
    with pytest.raises(ValueError, match="fingerprints"):
        mixture_posterior(np.zeros(3, dtype=complex), np.zeros(1), 0.5, 0.1)
    with pytest.raises(ValueError, match="kernel_covariance"):
        mixture_posterior(fingerprints, np.zeros(1), 0.5, -0.1)
    with pytest.raises(ValueError, match="sample_weights"):
        mixture_posterior(fingerprints, np.zeros(1), 0.5, 0.1, sample_weights=[1, 2])


# ---------------------------------------------------------------------- (a) M = 1


def test_single_component_bound_is_the_gaussian_closed_form() -> None:
    rng = np.random.default_rng(4)
    P, dim, sigma2, kernel_var = 3, 2, 0.5, 0.2
    J = _complex(rng, P, dim)
    h_true = _complex(rng, P)
    observed = h_true + _complex(rng, 3, P) * np.sqrt(sigma2)
    c = sigma2 * kernel_var / (sigma2 + kernel_var)  # C = (Σ_k^{-1} + σ^{-2} I)^{-1}
    # One sample, and three at the same fingerprint (coincident means, eq. 40′).
    for fingerprints in (h_true[None], np.repeat(h_true[None], 3, axis=0)):
        post = mixture_posterior(fingerprints, observed[0], sigma2, kernel_var)
        np.testing.assert_allclose(post.covariance, c * np.eye(P), atol=FLOAT64_REL)
        np.testing.assert_allclose(post.means[0], (kernel_var * observed[0]
                                                   + sigma2 * h_true) / (sigma2 + kernel_var),
                                   atol=FLOAT64_REL)
        b = two_stage_bound(fingerprints, J, observed, sigma2, kernel_var,
                            rng=np.random.default_rng(0))
        assert np.all(b.cfr_fim_standard_error == 0)
        np.testing.assert_allclose(b.cfr_fim, 2 / c * np.eye(2 * P), rtol=FLOAT64_REL)
        np.testing.assert_allclose(b.cfr_crlb, c / 2 * np.eye(2 * P), rtol=FLOAT64_REL)
        closed = np.linalg.inv(2 * (1 / sigma2 + 1 / kernel_var) * np.real(J.conj().T @ J))
        np.testing.assert_allclose(b.position_crlb, closed, rtol=1e-10)
        assert b.position_error_bound == pytest.approx(np.sqrt(np.trace(closed)), rel=1e-10)


# ---------------------------------------------------------------------- (b) MC vs quadrature


def _mixture_log_pdf_real(points: FloatArray, post_means: FloatArray, weights: FloatArray,
                          var: float) -> FloatArray:
    """log of Σ w_m N(x; m, var I) at ``points [n, k]`` (real coordinates)."""
    d2 = np.sum((points[:, None, :] - post_means[None]) ** 2, axis=-1)
    k = points.shape[1]
    terms = np.log(weights)[None] - d2 / (2 * var) - 0.5 * k * np.log(2 * np.pi * var)
    top = terms.max(axis=1, keepdims=True)
    return np.asarray((top + np.log(np.exp(terms - top).sum(axis=1, keepdims=True)))[:, 0])


def test_mc_fim_matches_1d_quadrature_of_the_squared_score() -> None:
    """P = 1 with real fingerprints: Re h is a 1-D mixture, Im h a Gaussian."""
    sigma2, kernel_var = 0.5, 0.3
    fingerprints = np.array([[-1.0], [0.0], [1.2], [1.5]], dtype=complex)
    post = mixture_posterior(fingerprints, np.array([0.1 + 0j]), sigma2, kernel_var)
    info = mixture_fisher_information(post, rng=np.random.default_rng(5), num_samples=4096)
    assert info.span_dim == 1
    var = post.covariance[0, 0].real / 2  # variance of Re h in one component
    means = post.means.real
    step = 1e-5 * np.sqrt(var)

    def integrand(x: float) -> float:
        pts = np.array([[x - step], [x], [x + step]])
        lp = _mixture_log_pdf_real(pts, means, post.weights, var)
        score = (lp[2] - lp[0]) / (2 * step)  # finite-difference score
        return float(score**2 * np.exp(lp[1]))

    lo, hi = means.min() - 12 * np.sqrt(var), means.max() + 12 * np.sqrt(var)
    quad, _ = integrate.quad(integrand, lo, hi, points=list(np.unique(means)), limit=400,
                             epsabs=1e-10, epsrel=1e-9)
    floor = RIS_CD_FIM_MC_FLOOR_REL / var
    assert abs(info.fim[0, 0] - quad) <= NOISE_SIGMAS * info.standard_error[0, 0] + floor
    assert info.fim[0, 0] < 0.9 / var  # the overlap costs information (F < C_r^{-1})
    # Im h: every component has the same mean, so the FIM is exactly Gaussian's.
    assert info.fim[1, 1] == pytest.approx(1 / var, rel=FLOAT64_REL)
    assert abs(info.fim[0, 1]) <= NOISE_SIGMAS * info.standard_error[0, 1] + floor


def test_mc_fim_matches_2d_grid_quadrature_for_complex_means() -> None:
    """P = 1 with complex fingerprints not on a line: a 2-D (Re, Im) quadrature."""
    sigma2, kernel_var = 0.4, 0.1
    fingerprints = np.array([[0.0], [0.45 + 0.1j], [0.1 + 0.5j]], dtype=complex)
    post = mixture_posterior(fingerprints, np.array([0.2 + 0.15j]), sigma2, kernel_var)
    info = mixture_fisher_information(post, rng=np.random.default_rng(6), num_samples=4096)
    assert info.span_dim == 2
    var = post.covariance[0, 0].real / 2
    means = real_stack(post.means.T).T
    sd = np.sqrt(var)
    re = np.linspace(means[:, 0].min() - 10 * sd, means[:, 0].max() + 10 * sd, 801)
    im = np.linspace(means[:, 1].min() - 10 * sd, means[:, 1].max() + 10 * sd, 801)
    X, Y = np.meshgrid(re, im, indexing="ij")
    lp = _mixture_log_pdf_real(np.stack([X.ravel(), Y.ravel()], axis=1), means,
                               post.weights, var).reshape(X.shape)
    gx, gy = np.gradient(lp, re, im, edge_order=2)  # finite-difference score
    p = np.exp(lp)
    cell = (re[1] - re[0]) * (im[1] - im[0])
    quad = np.array([[np.sum(gx * gx * p), np.sum(gx * gy * p)],
                     [np.sum(gy * gx * p), np.sum(gy * gy * p)]]) * cell
    assert np.sum(p) * cell == pytest.approx(1.0, rel=1e-6)
    floor = RIS_CD_FIM_MC_FLOOR_REL / var + 1e-4 * np.abs(quad).max()  # + grid's FD error
    assert np.all(np.abs(info.fim - quad) <= NOISE_SIGMAS * info.standard_error + floor)
    # Fisher information inequality: the bound never exceeds the mixture's covariance.
    gap = post.real_covariance() - np.linalg.inv(info.fim)
    assert np.linalg.eigvalsh(gap).min() > 0


def test_monte_carlo_is_reproducible_with_the_same_generator() -> None:
    rng = np.random.default_rng(7)
    fingerprints, J = _complex(rng, 5, 3), _complex(rng, 3, 2)
    observed = fingerprints[2] + 0.3 * _complex(rng, 2, 3)
    a, b = (two_stage_bound(fingerprints, J, observed, 0.3, 0.1,
                            rng=np.random.default_rng(11), num_samples=256)
            for _ in range(2))
    np.testing.assert_array_equal(a.cfr_fim, b.cfr_fim)
    np.testing.assert_array_equal(a.position_crlb, b.position_crlb)


# ---------------------------------------------------------------------- (c) dispersion


def test_separated_means_give_the_single_component_bound_clustered_ones_a_larger_one() -> None:
    """Eqs. (40′)–(41′): five fingerprints on a line, ĥ at the middle one."""
    sigma2, kernel_var = 0.2, 0.05
    direction = np.array([1.0, 0.6 - 0.8j]) / np.sqrt(2.0)
    h0 = np.array([0.3 + 0.1j, -0.2 + 0.4j])
    width = np.sqrt(sigma2 * kernel_var / (sigma2 + kernel_var))  # √C of one component
    rng = np.random.default_rng(8)
    ratio = {}
    for k in (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0):
        fingerprints = h0 + np.outer(np.arange(-2, 3) * k * width, direction)
        post = mixture_posterior(fingerprints, h0, sigma2, kernel_var)
        info = mixture_fisher_information(post, rng=rng, num_samples=2048)
        single = np.trace(real_covariance(post.covariance))
        ratio[k] = np.trace(np.linalg.inv(info.fim)) / single
    assert ratio[0.0] == pytest.approx(1.0, rel=FLOAT64_REL)  # coincident means, eq. (40′)
    assert ratio[1.0] > 1.3 and ratio[2.0] > 1.6  # clustered: ambiguity costs information
    # Beyond the clustered peak the bound falls monotonically to the single component's.
    tail = [ratio[k] for k in (2.0, 3.0, 4.0, 6.0, 8.0)]
    assert all(a > b for a, b in itertools.pairwise(tail))
    assert ratio[8.0] - 1.0 < RIS_CD_SEPARATED_REL
    assert all(r >= 1.0 - FLOAT64_REL for r in ratio.values())  # F ⪯ C_r^{-1}


def test_dispersing_the_fingerprints_lowers_the_position_bound() -> None:
    """RIS spreads neighbours apart in the CFR domain (J scaled by s): the position bound
    falls faster than the 1/s of the Jacobian alone while the mixture is still clustered,
    then like 1/s once it is the single-component bound."""
    rng = np.random.default_rng(9)
    P, sigma2, kernel_var, delta = 4, 1.0, 0.05, 0.5
    J0 = _complex(rng, P, 2) * 0.5
    h0 = _complex(rng, P)
    grid = np.array([(a, b) for a in (-delta, 0, delta) for b in (-delta, 0, delta)])
    noise = _complex(rng, 8, P) * np.sqrt(sigma2)
    peb, single = {}, {}
    for s in (1.0, 2.0, 4.0):
        J = s * J0
        b = two_stage_bound(h0 + grid @ J.T, J, h0 + noise, sigma2, kernel_var,
                            rng=np.random.default_rng(10), num_samples=512)
        peb[s] = b.position_error_bound
        fim = 2 * (1 / sigma2 + 1 / kernel_var) * np.real(J.conj().T @ J)
        single[s] = np.sqrt(np.trace(np.linalg.inv(fim)))
    assert peb[1.0] / peb[2.0] > 2.5  # measured 2.81
    assert peb[1.0] > 1.3 * single[1.0]  # clustered: measured 1.42
    assert peb[4.0] == pytest.approx(single[4.0], rel=RIS_CD_SEPARATED_REL)


# ---------------------------------------------------------------------- (d) vs geometric


def _paper_like_setting(snr_db: float, kernel_std: float) -> tuple[float, float, float]:
    """5 x 5 blocks of 0.5 m around a GNSS prior of 2 m per axis; linear fingerprints."""
    rng = np.random.default_rng(12)
    P = 4
    J = _complex(rng, P, 2)  # ~1 CFR unit per metre per pilot
    h0 = _complex(rng, P)
    g = np.arange(-2, 3) * 0.5
    grid = np.array([(a, b) for a in g for b in g])
    sigma2 = 10 ** (-snr_db / 10)
    x_true = np.array([0.1, -0.05])
    observed = h0 + J @ x_true + _complex(rng, 16, P) * np.sqrt(sigma2)
    b = two_stage_bound(h0 + grid @ J.T, J, observed, sigma2, kernel_std**2,
                        rng=np.random.default_rng(13), num_samples=1024)
    geometric = geometric_bound_with_prior(J, sigma2, 4.0 * np.eye(2))
    mmse = float(np.sqrt(np.trace(b.mmse_position)))
    return b.position_error_bound, float(np.sqrt(np.trace(geometric))), mmse


def test_two_stage_bound_is_below_the_geometric_bound_with_prior_at_low_snr() -> None:
    """The paper's claim, in the regime it is made for (low SNR, kernels narrower than the
    fingerprint spacing); the bound also sits far below its own posterior's MMSE there:
    the kernel width, not the prior's, is what the mixture FIM sees (module docstring)."""
    two_stage, geometric, mmse = _paper_like_setting(0.0, 0.1)
    assert two_stage < 0.2 * geometric
    assert two_stage < 0.2 * mmse
    # Wide kernels (overlapping components): still below, by much less.
    two_stage_wide, geometric_wide, _ = _paper_like_setting(0.0, 0.5)
    assert two_stage < two_stage_wide < geometric_wide


# ---------------------------------------------------------------------- Jacobian helper


def test_fingerprint_jacobian_from_samples() -> None:
    rng = np.random.default_rng(14)
    J = _complex(rng, 3, 2)
    h0 = _complex(rng, 3)
    x0 = np.array([2.0, -1.0])
    grid = x0 + np.array([(a, b) for a in (-0.5, 0, 0.5) for b in (-0.5, 0, 0.5)])
    np.testing.assert_allclose(fingerprint_jacobian(grid, h0 + (grid - x0) @ J.T, x0), J,
                               atol=1e-12)

    def h(x: FloatArray) -> ComplexArray:  # a smooth, non-linear fingerprint
        return np.exp(1j * (J.real @ x)) + 0.2 * (J.imag @ x) ** 2

    # The grid fit is a central difference: its error falls like the spacing squared.
    reference = numerical_jacobian(h, x0, 1e-6)
    errors = []
    for spacing in (0.1, 0.05):
        grid = x0 + spacing * np.array([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)])
        fitted = fingerprint_jacobian(grid, np.array([h(x) for x in grid]), x0)
        errors.append(np.abs(fitted - reference).max() / np.abs(reference).max())
    assert errors[1] < RIS_CD_GRID_JACOBIAN_REL
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.1)
    collinear = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    assert np.all(np.isnan(fingerprint_jacobian(collinear, np.ones((3, 2)), [0.0, 0.0])))
