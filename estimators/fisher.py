"""Fisher information and Cramér-Rao bound helpers shared by the estimators.

For observations ``y = μ(η) + n``, ``n ~ CN(0, σ² I)``, the FIM of the real parameter
vector ``η`` is ``J = (2/σ²) Re{D^H D}`` with ``D = ∂μ/∂η^T`` (Kay, Fundamentals of
Statistical Signal Processing I, eq. 15.52). A transformation of variables
``η = η(x)`` gives ``J_x = T^T J_η T`` with ``T = ∂η/∂x^T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from estimators.typing import FloatArray

#: The probability of every likelihood region an estimator adds to its covariance
#: (:func:`likelihood_region_moment`): the level ``twin evaluate`` scores fixes at.
REGION_PROBABILITY = 0.99


def gaussian_fim(jacobian: npt.ArrayLike, noise_variance: float) -> FloatArray:
    """FIM of a complex Gaussian observation with parameter-dependent mean.

    Parameters
    ----------
    jacobian : ``[observation, parameter]`` complex, ``∂μ/∂η``.
    noise_variance : ``σ²`` per complex sample [W].

    Returns
    -------
    ``[parameter, parameter]`` float64, ``(2/σ²) Re{D^H D}``.
    """
    d = np.asarray(jacobian, dtype=np.complex128)
    return 2.0 / noise_variance * np.real(d.conj().T @ d)


def numerical_jacobian(
    fun: Callable[[FloatArray], npt.NDArray[np.generic]],
    x: npt.ArrayLike,
    steps: npt.ArrayLike,
) -> npt.NDArray[np.complex128]:
    """Central-difference Jacobian ``∂fun/∂x^T`` (for checking analytic derivatives).

    Parameters
    ----------
    fun : maps ``[n]`` float64 to ``[m]`` (real or complex).
    x : ``[n]`` point.
    steps : ``[n]`` or scalar, per-parameter step.

    Returns
    -------
    ``[m, n]`` complex128.
    """
    x0 = np.asarray(x, dtype=np.float64)
    h = np.broadcast_to(np.asarray(steps, dtype=np.float64), x0.shape)
    columns = []
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = h[i]
        columns.append((np.asarray(fun(x0 + e)) - np.asarray(fun(x0 - e))) / (2 * h[i]))
    return np.stack(columns, axis=-1).astype(np.complex128)


def crlb(fim: npt.ArrayLike) -> FloatArray:
    """Inverse of a FIM; NaN-filled when it is singular (unidentifiable parameters).

    Parameters in different units (gains, seconds, radians) make the raw FIM badly
    scaled, so it is inverted as ``S (S J S)^-1 S`` with ``S = diag(J)^-1/2`` and the
    singularity test is on the scaled matrix.
    """
    j = np.asarray(fim, dtype=np.float64)
    diag = np.diag(j)
    if not np.all(np.isfinite(j)) or np.any(diag <= 0):
        return np.full_like(j, np.nan)
    scale = 1.0 / np.sqrt(diag)
    scaled = j * scale[:, None] * scale[None, :]
    if np.linalg.cond(scaled) > 1e12:
        return np.full_like(j, np.nan)
    return np.asarray(np.linalg.inv(scaled) * scale[:, None] * scale[None, :], dtype=np.float64)


def efficient_error(
    jacobian: npt.ArrayLike, noise: npt.ArrayLike, noise_variance: float
) -> FloatArray:
    """The error an efficient estimator makes on this noise: the ML linearised at the
    truth, ``δη = J^-1 (2/σ²) Re{D^H n}`` (Kay I, §7.7) with ``J`` the FIM of
    :func:`gaussian_fim`.

    Its covariance over the noise is the CRLB exactly, so an estimator's errors compared
    trial by trial with these measure its distance from the bound without most of the
    Monte-Carlo spread of either (a paired comparison).

    Parameters
    ----------
    jacobian : ``[observation, parameter]`` complex, ``D = ∂μ/∂η`` at the truth.
    noise : ``[observation]`` complex, ``n = y - μ`` (any shape of that many samples).
    noise_variance : ``σ²`` per complex sample [W].

    Returns
    -------
    ``[parameter]`` float64; NaN where the FIM is singular (:func:`crlb`).
    """
    d = np.asarray(jacobian, dtype=np.complex128)
    n = np.asarray(noise, dtype=np.complex128).ravel()
    score = 2.0 / noise_variance * np.real(d.conj().T @ n)
    return np.asarray(crlb(gaussian_fim(d, noise_variance)) @ score, dtype=np.float64)


def error_bound(crlb_matrix: npt.ArrayLike, indices: Sequence[int]) -> float:
    """``sqrt(trace)`` of a CRLB block: the position/scatterer error bound [m]."""
    c = np.asarray(crlb_matrix, dtype=np.float64)
    return float(np.sqrt(np.sum(np.diag(c)[list(indices)])))


def likelihood_region_moment(points: npt.ArrayLike, log_likelihood: npt.ArrayLike,
                             position: npt.ArrayLike, *, kappa: float, dof: int,
                             probability: float = REGION_PROBABILITY,
                             best: float = -np.inf) -> FloatArray:
    """``[d, d]``: the second moment about ``position [d]`` of the ``points [n, d]`` whose
    ``log_likelihood [n]`` lies within ``κ chi2_dof(probability) / 2`` of the best (of
    those and ``best``, e.g. the fix's own): the mean squared error of ``position`` were
    the truth anywhere the likelihood-ratio test does not reject (``κ >= 1`` tempers it
    by a residual's excess over the noise). Its offset to the region and the region's
    spread: a likelihood with several peaks gives their spread. Zeros where no point is
    in the region."""
    from scipy.stats import chi2

    p = np.asarray(points, dtype=np.float64)
    ll = np.asarray(log_likelihood, dtype=np.float64)
    top = max(float(ll.max()) if ll.size else -np.inf, float(best))
    offset = p[ll >= top - kappa * chi2.ppf(probability, dof) / 2] - np.asarray(position)
    if not offset.size:
        return np.zeros((p.shape[1], p.shape[1]))
    return np.asarray(offset.T @ offset / len(offset), dtype=np.float64)
