"""Cramér-Rao bounds of RIS correlation-dispersion fingerprint positioning (Sang et al.,
§IV), and the paper's bound of an observation (:func:`fingerprint_bound`, what
``ris-cd``'s and ``ris-rss``'s ``crlb`` return).

* :func:`geometric_bound_with_prior`: the conventional bound, the CFR observed as a
  function of the position combined with the prior in the position domain (eq. 44′).
* :func:`two_stage_bound`: the bound of the two-stage scheme (Lemma 2): the prior carried
  into the CFR domain by a Gaussian kernel density over the fingerprints near the prior's
  mean (eqs. 41–42), pooled with the likelihood (eq. 43) into a Gaussian mixture (eqs.
  44–46, :func:`mixture_posterior`), whose Fisher information (eqs. 48, 37′–38′,
  :func:`mixture_fisher_information`) gives the CFR-domain bound (eq. 43′), mapped to
  position through the fingerprint Jacobian.

Most symbols of §IV were lost in extraction, and the extracted text numbers §IV's
displays twice (the second run is cited here with a prime). The reconstruction, the
equation numbering, what the two-stage bound sees and the Monte Carlo are derived in
docs/estimators/ris_cd.md ("Bounds (§IV): the reconstruction").

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and Positioning
Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme", arXiv 2212.00241,
§II-B eq. 5, §IV eqs. 39–48 and 37′–46′.
S. M. Kay, Fundamentals of Statistical Signal Processing: Estimation Theory, 1993:
eq. 15.52 (complex Gaussian FIM), §3.8 (transformation of parameters).
H. L. Van Trees, K. L. Bell, Bayesian Bounds for Parameter Estimation and Nonlinear
Filtering/Tracking, 2007 (Bayesian CRB with a Gaussian prior).
R. P. S. Mahler, Statistical Multisource-Multitarget Information Fusion, 2007, App. D
(product of Gaussians). C. Genest, Ann. Statist. 1984 (log-linear pooling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.base import Bound
from estimators.fisher import crlb as invert_fim
from estimators.ris_cd.model import candidate_blocks, map_dimensions, predicted_pilots
from estimators.types import ChannelTruth, Observation
from estimators.typing import ComplexArray, FloatArray

#: Relative singular-value threshold for the span of the whitened mixture means.
_SPAN_REL = 1e-10
#: Samples per chunk of the Monte Carlo (bounds the ``[chunk, M, M]`` work arrays).
_CHUNK = 4096
#: Half-width, in blocks, of the neighbourhood the radio map's Jacobian is fitted on
#: (:func:`fingerprint_bound`): the 3 x 3 blocks around the user.
_JACOBIAN_HALF_WIDTH_BLOCKS = 1.5


# ---------------------------------------------------------------------- helpers


def real_stack(a: npt.ArrayLike) -> FloatArray:
    """``[Re a; Im a]``: a vector ``[P]`` → ``[2P]``, a Jacobian ``[..., P, n]`` →
    ``[..., 2P, n]`` (stacked along the second-to-last axis).

    Parameters
    ----------
    a : ``[P]`` or ``[..., P, n]`` complex.

    Returns
    -------
    ``[2P]`` or ``[..., 2P, n]`` float64.
    """
    z = np.asarray(a, dtype=np.complex128)
    axis = -1 if z.ndim == 1 else -2
    return np.concatenate([z.real, z.imag], axis=axis)


def real_covariance(covariance: npt.ArrayLike) -> FloatArray:
    """Covariance of ``[Re h; Im h]`` for a proper complex Gaussian of covariance ``C``.

    Parameters
    ----------
    covariance : ``[P, P]`` complex Hermitian ``C``.

    Returns
    -------
    ``[2P, 2P]`` float64, ``½ [[Re C, −Im C], [Im C, Re C]]``.
    """
    c = np.asarray(covariance, dtype=np.complex128)
    return 0.5 * np.block([[c.real, -c.imag], [c.imag, c.real]])


def _as_covariance(value: float | npt.ArrayLike, size: int, name: str) -> ComplexArray:
    """A scalar ``s`` (``s I``) or a ``[size, size]`` Hermitian positive-definite matrix."""
    a = np.asarray(value, dtype=np.complex128)
    if a.ndim == 0:
        if not (np.isfinite(a.real) and a.real > 0 and a.imag == 0):
            raise ValueError(f"{name} must be a positive variance, got {value!r}")
        return np.eye(size, dtype=np.complex128) * a.real
    if a.shape != (size, size):
        raise ValueError(f"{name} must be a scalar or [{size}, {size}], got shape {a.shape}")
    if not np.allclose(a, a.conj().T, rtol=1e-12, atol=1e-12 * np.abs(a).max()):
        raise ValueError(f"{name} must be Hermitian")
    try:
        np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    return 0.5 * (a + a.conj().T)


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return v


# ---------------------------------------------------------------------- conventional bound


def geometric_bound_with_prior(
    jacobian: npt.ArrayLike,
    noise_variance: float | npt.ArrayLike,
    prior_covariance: npt.ArrayLike,
) -> FloatArray:
    """Conventional (geometric) position CRLB combined with a Gaussian prior, eq. (44′).

    ``ĥ = h(x) + n``, ``n ~ CN(0, σ² I_P)`` (eq. 40), ``x ~ N(μ, Σ_p)`` (eq. 39), ``h``
    linearised at the point of interest. In the paper's Kalman-gain form, with the
    complex model stacked into real coordinates (``J_r = [Re J; Im J]``,
    ``R = σ²/2 I_{2P}``)::

        B = Σ_p − K J_r Σ_p,   K = Σ_p J_r^T (J_r Σ_p J_r^T + R)^{-1},

    which is ``(Σ_p^{-1} + (2/σ²) Re{J^H J})^{-1}``, the Bayesian (Van Trees) bound of the
    linearised model. It tends to ``Σ_p`` as ``σ² → ∞`` and to the prior-free CRLB
    ``((2/σ²) Re{J^H J})^{-1}`` as ``Σ_p → ∞``.

    Parameters
    ----------
    jacobian : ``[..., P, dim]`` complex, ``J = ∂h/∂x^T`` [CFR units / m] (e.g. from
        :func:`fingerprint_jacobian` or :func:`estimators.fisher.numerical_jacobian`).
    noise_variance : ``σ²`` per complex pilot [CFR units²], scalar or ``[...]``.
    prior_covariance : ``[..., dim, dim]`` ``Σ_p`` [m²], symmetric positive
        semi-definite (the Kalman form needs no inverse of it: a singular prior, a
        coordinate known exactly, is allowed).

    Returns
    -------
    ``[..., dim, dim]`` float64 [m²], symmetric.

    References
    ----------
    Paper eq. (44′) (second run of §IV's numbering, docs/estimators/ris_cd.md); Kay,
    vol. I, eq. 15.52 and §10.6 (Bayesian linear model); Van Trees & Bell 2007.
    """
    j = np.asarray(jacobian, dtype=np.complex128)
    if j.ndim < 2:
        raise ValueError(f"jacobian must be [..., P, dim], got shape {j.shape}")
    dim = j.shape[-1]
    prior = np.asarray(prior_covariance, dtype=np.float64)
    if prior.shape[-2:] != (dim, dim):
        raise ValueError(f"prior_covariance must be [..., {dim}, {dim}], got {prior.shape}")
    sigma2 = np.asarray(noise_variance, dtype=np.float64)
    if np.any(~np.isfinite(sigma2)) or np.any(sigma2 <= 0):
        raise ValueError("noise_variance must be positive and finite")
    jr = real_stack(j)  # [..., 2P, dim]
    two_p = jr.shape[-2]
    r = (sigma2 / 2.0)[..., None, None] * np.eye(two_p)
    jp = jr @ prior  # [..., 2P, dim]
    s = jp @ np.swapaxes(jr, -1, -2) + r  # J_r Σ_p J_r^T + R
    kt = np.linalg.solve(s, jp)  # K^T = S^{-1} J_r Σ_p   (S, Σ_p symmetric)
    bound = prior - np.swapaxes(kt, -1, -2) @ jp
    return np.asarray(0.5 * (bound + np.swapaxes(bound, -1, -2)), dtype=np.float64)


# ---------------------------------------------------------------------- Lemma 2


@dataclass(frozen=True)
class MixturePosterior:
    """The pooled CFR-domain density of Lemma 2, ``p(h | ĥ) = Σ_m w_m CN(h; c_m, C)``.

    Attributes
    ----------
    weights : ``[M]`` float64, ``w_m``, summing to one (eq. 45).
    means : ``[M, P]`` complex128, ``c_m`` [CFR units] (eq. 46).
    covariance : ``[P, P]`` complex128 Hermitian, ``C`` [CFR units²] (eq. 45), common to
        every component.
    """

    weights: FloatArray
    means: ComplexArray
    covariance: ComplexArray

    @property
    def mean(self) -> ComplexArray:
        """``[P]`` mixture mean ``Σ w_m c_m`` (the MMSE estimate of ``h``)."""
        return np.asarray(self.weights @ self.means, dtype=np.complex128)

    def real_covariance(self) -> FloatArray:
        """``[2P, 2P]`` covariance of ``[Re h; Im h]`` under the mixture: ``C_r`` plus the
        weighted spread of the means (the MMSE given ``ĥ`` under the kernel prior)."""
        means = real_stack(self.means.T).T  # [M, 2P]
        centred = means - self.weights @ means
        spread = (self.weights[:, None] * centred).T @ centred
        return np.asarray(real_covariance(self.covariance) + spread, dtype=np.float64)


def mixture_posterior(
    fingerprints: npt.ArrayLike,
    observed: npt.ArrayLike,
    noise_variance: float,
    kernel_covariance: float | npt.ArrayLike,
    *,
    sample_weights: npt.ArrayLike | None = None,
) -> MixturePosterior:
    """Lemma 2: kernel prior in the CFR domain pooled with the likelihood, eqs. (41)–(46).

    ``p_k(h) = Σ_m π_m CN(h; h_m, Σ_k)`` (eqs. 41–42) times the likelihood
    ``CN(ĥ; h, σ² I)`` (eq. 40), normalised (log-linear pooling with unit exponents,
    eq. 43), is the mixture ``Σ_m w_m CN(h; c_m, C)`` (eq. 44) with ``S = Σ_k + σ² I``::

        w_m ∝ π_m CN(ĥ; h_m, S),   C = σ² Σ_k S^{-1},   c_m = ĥ + σ² S^{-1} (h_m − ĥ).

    Parameters
    ----------
    fingerprints : ``[M, P]`` complex, ``h_m = h(x_m)`` of the ``M`` sample positions near
        the prior mean ``μ`` [CFR units].
    observed : ``[P]`` complex, the estimated CFR ``ĥ`` (eq. 4).
    noise_variance : ``σ²`` per complex pilot [CFR units²].
    kernel_covariance : ``Σ_k``: a scalar ``σ_k²`` (``σ_k² I``) or ``[P, P]`` Hermitian
        positive definite [CFR units²].
    sample_weights : ``[M]`` non-negative ``π_m`` (normalised here); ``None``: ``1/M``
        (eq. 41's average).

    Returns
    -------
    :class:`MixturePosterior`.

    References
    ----------
    Paper eqs. (40)–(47), Lemma 2; Mahler 2007, App. D.
    """
    h = np.asarray(fingerprints, dtype=np.complex128)
    if h.ndim != 2:
        raise ValueError(f"fingerprints must be [M, P], got shape {h.shape}")
    M, P = h.shape
    obs = np.asarray(observed, dtype=np.complex128)
    if obs.shape != (P,):
        raise ValueError(f"observed must be [{P}], got shape {obs.shape}")
    sigma2 = _positive(noise_variance, "noise_variance")
    kernel = _as_covariance(kernel_covariance, P, "kernel_covariance")
    if sample_weights is None:
        log_prior = np.full(M, -np.log(M))
    else:
        pi = np.asarray(sample_weights, dtype=np.float64)
        if pi.shape != (M,) or np.any(~np.isfinite(pi)) or np.any(pi < 0) or pi.sum() <= 0:
            raise ValueError(f"sample_weights must be [{M}] non-negative, not all zero")
        with np.errstate(divide="ignore"):
            log_prior = np.log(pi / pi.sum())
    s = kernel + sigma2 * np.eye(P)
    diff = h - obs  # [M, P], h_m − ĥ
    s_inv_diff = np.linalg.solve(s, diff.T).T  # S^{-1}(h_m − ĥ)
    quad = np.real(np.einsum("mp,mp->m", diff.conj(), s_inv_diff))
    logits = log_prior - quad  # det(π S) is common to all m
    w = np.exp(logits - logits.max())
    w /= w.sum()
    means = obs + sigma2 * s_inv_diff
    cov = sigma2 * np.linalg.solve(s.T, kernel.T).T  # σ² Σ_k S^{-1}
    return MixturePosterior(
        weights=np.asarray(w, dtype=np.float64),
        means=np.asarray(means, dtype=np.complex128),
        covariance=np.asarray(0.5 * (cov + cov.conj().T), dtype=np.complex128),
    )


# ---------------------------------------------------------------------- mixture FIM


@dataclass(frozen=True)
class MixtureFisherInformation:
    """Fisher information of a CFR-domain mixture, eqs. (48), (37′)–(38′).

    Attributes
    ----------
    fim : ``[2P, 2P]`` float64, FIM of ``[Re h; Im h]`` [1 / CFR units²].
    standard_error : ``[2P, 2P]`` float64, Monte Carlo standard error of ``fim``
        (zero where it is exact).
    span_dim : dimension ``r`` of the span of the whitened mean differences (the
        dimension the Monte Carlo ran in; 0: one component or coincident means).
    num_samples : antithetic sample pairs per component (per observation).
    """

    fim: FloatArray
    standard_error: FloatArray
    span_dim: int
    num_samples: int


def _expected_spread(
    means: FloatArray, log_weights: FloatArray, num_samples: int, rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """``G = E[Cov_γ(a)]`` and the covariance of its per-sample estimator.

    ``means [M, r]`` of unit-covariance components, ``log_weights [M]``. Each sample
    ``z ~ N(0, I_r)`` is used for every component ``m`` at ``a_m ± z``; the per-sample
    value ``X = Σ_m w_m (Cov_γ(a_m + z) + Cov_γ(a_m − z)) / 2`` is unbiased for ``G``.
    Returns ``G [r, r]`` and ``Cov(vec X) / N [r², r²]``.
    """
    M, r = means.shape
    w = np.exp(log_weights)
    total = np.zeros((r, r))
    total_sq = np.zeros((r * r, r * r))
    sq = np.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=-1)  # [M, M]
    chunk = max(1, _CHUNK // max(1, M * M // 16))
    done = 0
    while done < num_samples:
        n = min(chunk, num_samples - done)
        z = rng.standard_normal((n, r))
        za = z @ means.T  # [n, M]
        x = np.zeros((n, r, r))
        for sign in (1.0, -1.0):
            # ‖a_m ± z − a_j‖² less the common ‖z‖²: [n, M(component), M(j)].
            d2 = sq[None, :, :] + 2.0 * sign * (za[:, :, None] - za[:, None, :])
            logits = log_weights[None, None, :] - 0.5 * d2
            logits -= logits.max(axis=-1, keepdims=True)
            g = np.exp(logits)
            g /= g.sum(axis=-1, keepdims=True)
            a = np.einsum("nm,nmj->nj", np.broadcast_to(w, (n, M)), g)
            second = np.einsum("nj,ja,jb->nab", a, means, means)
            mbar = g @ means  # [n, M, r]
            first = np.einsum("m,nma,nmb->nab", w, mbar, mbar)
            x += 0.5 * (second - first)
        total += x.sum(axis=0)
        flat = x.reshape(n, r * r)
        total_sq += flat.T @ flat
        done += n
    g_mean = total / num_samples
    vec = g_mean.reshape(-1)
    cov = (total_sq / num_samples - np.outer(vec, vec)) / max(num_samples - 1, 1)
    return 0.5 * (g_mean + g_mean.T), cov


def mixture_fisher_information(
    posterior: MixturePosterior, *, rng: np.random.Generator, num_samples: int = 2048,
) -> MixtureFisherInformation:
    """Fisher information of Lemma 2's mixture in ``h`` (eqs. 48, 37′–38′).

    ``F = −E_p[∇² ln p(h)]`` over ``h ~ p`` in real coordinates ``[Re h; Im h]``::

        F = C_r^{-1} − C_r^{-1} E_p[Σ_m γ_m c_m c_m^T − c̄ c̄^T] C_r^{-1},

    ``γ_m(h)`` the responsibilities, ``c̄ = Σ γ_m c_m``; ``F ⪯ C_r^{-1}``, with equality
    for one component, coincident means (eq. 40′) or infinitely separated ones (41′).
    The expectation is a Monte Carlo over the ``r``-dimensional span of the whitened
    mean differences (docs/estimators/ris_cd.md): exact outside it, and exact (no sampling, zero
    standard error) when ``r = 0``.

    Parameters
    ----------
    posterior : :class:`MixturePosterior` (:func:`mixture_posterior`).
    rng : source of the Monte Carlo samples.
    num_samples : antithetic pairs ``N`` (each used by every component).

    Returns
    -------
    :class:`MixtureFisherInformation`.

    References
    ----------
    Paper eqs. (48), (37′)–(41′); Kay, vol. I, ch. 3 (FIM as the expected negative
    Hessian).
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    c_r = real_covariance(posterior.covariance)
    two_p = c_r.shape[0]
    chol = np.linalg.cholesky(c_r)
    eye = np.eye(two_p)
    l_inv = np.linalg.solve(chol, eye)  # L^{-1}
    info = l_inv.T @ l_inv  # C_r^{-1}
    keep = posterior.weights > 0
    w = posterior.weights[keep] / posterior.weights[keep].sum()
    u = real_stack(posterior.means[keep].T).T @ l_inv.T  # [M', 2P] whitened means
    diffs = u - u[0]
    if diffs.shape[0] > 1:
        _, sv, vt = np.linalg.svd(diffs, full_matrices=False)
        rank = int(np.sum(sv > _SPAN_REL * max(sv.max(), 1e-300)))
    else:
        rank = 0
    if rank == 0:
        zero = np.zeros_like(info)
        return MixtureFisherInformation(0.5 * (info + info.T), zero, 0, num_samples)
    q = vt[:rank].T  # [2P, r]
    a = diffs @ q  # [M', r]
    g, cov_vec = _expected_spread(a, np.log(w), num_samples, rng)
    b = q.T @ l_inv  # [r, 2P]
    fim = info - b.T @ g @ b
    cov4 = cov_vec.reshape(rank, rank, rank, rank)
    var = np.einsum("ka,lb,klmn,ma,nb->ab", b, b, cov4, b, b, optimize=True)
    return MixtureFisherInformation(
        fim=np.asarray(0.5 * (fim + fim.T), dtype=np.float64),
        standard_error=np.sqrt(np.maximum(var, 0.0)),
        span_dim=rank,
        num_samples=num_samples,
    )


# ---------------------------------------------------------------------- two-stage bound


@dataclass(frozen=True)
class TwoStageBound:
    """The proposed scheme's bound (eq. 43′) in the CFR domain and mapped to position.

    Attributes
    ----------
    cfr_fim : ``[2P, 2P]`` float64, mixture FIM of ``[Re h; Im h]`` (averaged over the
        observations given).
    cfr_fim_standard_error : ``[2P, 2P]`` float64, its Monte Carlo standard error.
    cfr_crlb : ``[2P, 2P]`` float64, ``cfr_fim^{-1}`` [CFR units²] (NaN if singular).
    position_fim : ``[dim, dim]`` float64, ``J_r^T F J_r`` [1/m²].
    position_crlb : ``[dim, dim]`` float64 [m²] (NaN if singular).
    position_error_bound : ``sqrt(trace(position_crlb))`` [m], to draw beside RMSE.
    mmse_position : ``[dim, dim]`` float64 [m²], the mixture's own covariance mapped by
        the pseudo-inverse ``J_r^+`` and averaged over the observations: the MMSE of the
        kernel-prior model given ``ĥ`` (for comparison; always ⪰ the pseudo-inverse
        image of ``cfr_crlb``).
    """

    cfr_fim: FloatArray
    cfr_fim_standard_error: FloatArray
    cfr_crlb: FloatArray
    position_fim: FloatArray
    position_crlb: FloatArray
    position_error_bound: float
    mmse_position: FloatArray


def two_stage_bound(
    fingerprints: npt.ArrayLike,
    jacobian: npt.ArrayLike,
    observed: npt.ArrayLike,
    noise_variance: float,
    kernel_covariance: float | npt.ArrayLike,
    *,
    rng: np.random.Generator,
    sample_weights: npt.ArrayLike | None = None,
    num_samples: int = 2048,
) -> TwoStageBound:
    """CRLB of the two-stage scheme (Lemma 2, eq. 43′), in ``h`` and mapped to ``x``.

    For each observation ``ĥ_d`` the mixture of :func:`mixture_posterior` and its FIM
    (:func:`mixture_fisher_information`); the FIMs are averaged over ``d``, inverted
    (eq. 43′), and mapped to position through the fingerprint Jacobian at the true
    position, ``F_x = J_r^T F J_r`` (docs/estimators/ris_cd.md).

    Parameters
    ----------
    fingerprints : ``[M, P]`` complex ``h_m`` of the samples near the prior mean.
    jacobian : ``[P, dim]`` complex ``∂h/∂x^T`` at the true position [CFR units / m].
    observed : ``[P]`` or ``[observation, P]`` complex ``ĥ`` (e.g. ``h(x) + n`` drawn
        by the caller with its own generator).
    noise_variance : ``σ²`` per complex pilot [CFR units²].
    kernel_covariance : ``Σ_k``, scalar ``σ_k²`` or ``[P, P]`` [CFR units²].
    rng : source of the Monte Carlo samples of the FIM.
    sample_weights : ``[M]`` kernel weights ``π_m`` (``None``: uniform, eq. 41).
    num_samples : antithetic Monte Carlo pairs per observation.

    Returns
    -------
    :class:`TwoStageBound`.

    References
    ----------
    Paper eqs. (39)–(48), (37′)–(43′); Kay, vol. I, §3.8.
    """
    h = np.asarray(fingerprints, dtype=np.complex128)
    if h.ndim != 2:
        raise ValueError(f"fingerprints must be [M, P], got shape {h.shape}")
    P = h.shape[1]
    jac = np.asarray(jacobian, dtype=np.complex128)
    if jac.ndim != 2 or jac.shape[0] != P:
        raise ValueError(f"jacobian must be [{P}, dim], got shape {jac.shape}")
    obs = np.asarray(observed, dtype=np.complex128)
    obs = obs[None, :] if obs.ndim == 1 else obs
    if obs.ndim != 2 or obs.shape[1] != P:
        raise ValueError(f"observed must be [{P}] or [observation, {P}], got {obs.shape}")
    jr = real_stack(jac)  # [2P, dim]
    pinv = np.linalg.pinv(jr)
    D = obs.shape[0]
    fim = np.zeros((2 * P, 2 * P))
    var = np.zeros((2 * P, 2 * P))
    mmse = np.zeros((jac.shape[1], jac.shape[1]))
    for d in range(D):
        post = mixture_posterior(h, obs[d], noise_variance, kernel_covariance,
                                 sample_weights=sample_weights)
        info = mixture_fisher_information(post, rng=rng, num_samples=num_samples)
        fim += info.fim / D
        var += info.standard_error**2 / D**2
        mmse += pinv @ post.real_covariance() @ pinv.T / D
    position_fim = jr.T @ fim @ jr
    position_crlb = invert_fim(position_fim)
    return TwoStageBound(
        cfr_fim=fim,
        cfr_fim_standard_error=np.sqrt(var),
        cfr_crlb=invert_fim(fim),
        position_fim=position_fim,
        position_crlb=position_crlb,
        position_error_bound=float(np.sqrt(np.trace(position_crlb))),
        mmse_position=0.5 * (mmse + mmse.T),
    )


# ---------------------------------------------------------------------- fingerprint Jacobian


def fingerprint_jacobian(
    positions: npt.ArrayLike,
    fingerprints: npt.ArrayLike,
    at: npt.ArrayLike,
    *,
    sample_weights: npt.ArrayLike | None = None,
) -> ComplexArray:
    """``J = ∂h/∂x^T`` at ``at`` from sampled fingerprints, by a local affine fit.

    Least squares of ``h_m ≈ a + J (x_m − at)`` over the samples (weighted by
    ``sample_weights`` if given). On the 3 x 3 (x 3) block centres around ``at`` this is
    the central difference of the sampled grid; it is exact for affine fingerprints.
    For a callable ``h(x)``, use :func:`estimators.fisher.numerical_jacobian`.

    Parameters
    ----------
    positions : ``[M, dim]`` sample positions ``x_m`` [m].
    fingerprints : ``[M, P]`` complex ``h(x_m)``.
    at : ``[dim]`` the point [m].
    sample_weights : ``[M]`` non-negative least-squares weights (``None``: equal).

    Returns
    -------
    ``[P, dim]`` complex128 [CFR units / m]; NaN if the samples do not span ``dim``
    dimensions around ``at``.
    """
    x = np.asarray(positions, dtype=np.float64)
    h = np.asarray(fingerprints, dtype=np.complex128)
    x0 = np.asarray(at, dtype=np.float64)
    if x.ndim != 2 or h.ndim != 2 or h.shape[0] != x.shape[0] or x0.shape != x.shape[1:]:
        raise ValueError(
            f"positions [M, dim], fingerprints [M, P] and at [dim] disagree: "
            f"{x.shape}, {h.shape}, {x0.shape}")
    M, dim = x.shape
    design = np.hstack([np.ones((M, 1)), x - x0])
    if sample_weights is not None:
        sw = np.sqrt(np.asarray(sample_weights, dtype=np.float64))
        design, h = design * sw[:, None], h * sw[:, None]
    coef, _, rank, _ = np.linalg.lstsq(design.astype(np.complex128), h, rcond=None)
    if rank < dim + 1:
        return np.full((h.shape[1], dim), np.nan + 0j)
    return np.asarray(coef[1:].T, dtype=np.complex128)


# ---------------------------------------------------------------------- an observation's bound


def fingerprint_bound(obs: Observation, truth: ChannelTruth, *, confidence: float,
                      num_samples: int = 256) -> Bound:
    """The paper's bounds of every snapshot of a fingerprint observation (what
    ``ris-cd``'s and ``ris-rss``'s ``crlb`` return).

    Per snapshot ``t``, with ``h`` the noiseless pilots a user would receive
    (:func:`estimators.ris_cd.model.predicted_pilots`, flattened), ``ĥ = obs.y[t]`` and
    ``σ²`` the snapshot's noise variance:

    * the Jacobian ``J = ∂h/∂x^T`` of the radio map at the true position, by the affine
      fit of :func:`fingerprint_jacobian` over the blocks within 1.5 blocks of it along
      each axis (the 3 x 3 around it): the map's, not the continuous channel field's,
      which an observation does not carry;
    * ``position_error_bound``: ``sqrt(tr B)`` of the geometric bound with the
      observation's prior (eq. 44′, :func:`geometric_bound_with_prior`);
    * ``other["two_stage_position_m"]``: the two-stage bound (Lemma 2, eq. 43′,
      :func:`two_stage_bound`) over the stage-1 candidates of ``confidence`` (eq. 14),
      the kernel covariance ``σ² I`` and ``num_samples`` Monte Carlo pairs from a
      generator seeded by ``t`` (the same numbers on every call).

    Both in the map's position dimensions
    (:func:`estimators.ris_cd.model.map_dimensions`). NaN where a bound does not apply:
    a true position with fewer than ``dimensions + 1`` blocks around it that span the
    plane (outside the map), no noise, a non-finite truth.

    Parameters
    ----------
    obs : a downlink observation with a radio map and a prior (checked by the caller).
    truth : ``ue_position [snapshot, 3]`` [m] is used.
    confidence : stage 1's probability (eq. 14).
    num_samples : antithetic Monte Carlo pairs of the two-stage bound per snapshot.

    Returns
    -------
    :class:`estimators.base.Bound`: ``position_error_bound [snapshot]`` [m],
    ``other = {"two_stage_position_m": [snapshot]}`` [m], no scatterer or orientation
    bound.

    References
    ----------
    Sang et al., eqs. (14), (39)–(48), (43′), (44′).
    """
    assert obs.fingerprints is not None and obs.prior is not None
    T = obs.num_snapshots
    if truth.ue_position.shape != (T, 3):
        raise ValueError(f"truth: ue_position must be [{T}, 3], got "
                         f"{truth.ue_position.shape}")
    dimensions = map_dimensions(obs)
    blocks = obs.fingerprints.block_positions
    half_width = _JACOBIAN_HALF_WIDTH_BLOCKS * np.append(
        obs.fingerprints.block_size, np.max(obs.fingerprints.block_size))
    geometric = np.full(T, np.nan)
    two_stage = np.full(T, np.nan)
    for t in range(T):
        position = truth.ue_position[t]
        noise_variance = float(np.mean(obs.noise_variance[t]))
        if not (np.all(np.isfinite(position)) and noise_variance > 0):
            continue
        fingerprints = predicted_pilots(obs, t).reshape(len(blocks), -1)
        near = np.all(np.abs(blocks - position)[:, :dimensions] <= half_width[:dimensions],
                      axis=1)
        if np.count_nonzero(near) <= dimensions:
            continue
        jacobian = fingerprint_jacobian(blocks[near, :dimensions], fingerprints[near],
                                        position[:dimensions])
        if not np.all(np.isfinite(jacobian)):
            continue
        prior = obs.prior.covariance[t][:dimensions, :dimensions]
        geometric[t] = np.sqrt(np.trace(geometric_bound_with_prior(
            jacobian, noise_variance, prior)))
        candidates = candidate_blocks(obs, t, confidence)
        two_stage[t] = two_stage_bound(
            fingerprints[candidates], jacobian, obs.y[t].reshape(-1), noise_variance,
            noise_variance, rng=np.random.default_rng(t),
            num_samples=num_samples).position_error_bound
    return Bound(position_error_bound=geometric, scatterer_error_bound=np.zeros((T, 0)),
                 other={"two_stage_position_m": two_stage})
