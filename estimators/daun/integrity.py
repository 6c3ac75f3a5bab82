"""What every grid localizer of the paper (:mod:`estimators.daun.grid`) reports beside a
fix: whether eq. (1)'s model explains it, and how unsure it is (issue 22).

The paper gives neither. A fix ``p̂`` is checked against the observation it came from:

* **LOS support.** BS ``m`` vouches for ``p̂`` when the LOS response towards it explains
  at least :data:`SUPPORT_SHARE` of the BS's received *signal* energy, ``e_m =
  (|a_m(p̂)^H y_m|² / N - σ_m²) / (‖y_m‖² - N σ_m²) >= 1/2`` (the LOS is the dominant
  component there; a direction an NLOS path or noise alone lights up gets a sidelobe's
  share, ≤ ~0.05 for a ULA). The noise ``σ_m²`` per sample is taken out of both terms
  (:func:`signal_shares`): left in, it caps the share of a pure LOS at ``SNR / (1 +
  SNR)``, so that at low SNR a LOS could not vouch and, at any SNR, a dominant path
  could go unseen by a few percent. Fewer than two such BSs (two bearings fix a point in
  the plane): ``converged=False``.
* **Majority.** A BS that does not support ``p̂`` but sees a dominant path elsewhere
  (one direction of its angle grid ``B_m`` explains ``>= 1/2`` of its signal energy)
  speaks against it; as many against as for: ``converged=False`` (a ghost where two BSs'
  bearings cross while the others point elsewhere; the LOS-only bound at such a fix is
  small however inflated, so no covariance would cover it).
* **Search edge.** A fix in the grid's outer ring whose DPD cost (Weiss's, eq. (4) of
  the paper's ref. [8]) still rises half a cell beyond the area's edge, or a fix
  outside the search area: the user is most likely outside it (``converged=False``).
* **Covariance.** The LOS-only CRLB of eq. (1) (:func:`estimators.daun.bound.
  los_position_crlb`) at ``p̂`` with the estimated gains ``α̂_m = a_m(p̂)^H y_m / N``,
  times the a-posteriori variance factor ``κ = max(1, Σ_m ‖y_m − α̂_m a_m(p̂)‖² / Σ_m
  (N − 1) σ_m²)`` over every BS (what the LOS model at the fix leaves unexplained, over
  what noise explains: a BS whose energy comes from elsewhere inflates it), plus the
  second moment about ``p̂`` of the LOS model's 99 % likelihood region
  (:func:`region_moment`: the points whose log-likelihood ratio to the best,
  ``κ``-scaled, the chi-square(2) test does not reject; the mean squared error of ``p̂``
  were the user anywhere the data allow — a fix the unfolded or early-stopped ADMM put
  away from where eq. (1) fits best, or a likelihood with several peaks, is as unsure as
  the region is wide), plus ``Δ²/12`` per axis for a fix that is a grid point (``Δ`` the
  cell: the uniform quantisation error). The region is sampled finer than the grid where
  the likelihood's lobes are narrower than a cell (:func:`region_points`).
"""

from __future__ import annotations

import numpy as np

from estimators.daun.bound import los_position_crlb
from estimators.daun.model import DirectLocalizationProblem
from estimators.fisher import likelihood_region_moment
from estimators.typing import ComplexArray, FloatArray

#: Share of a BS's received energy the LOS towards a fix must explain for the BS to
#: support it (the LOS dominant).
SUPPORT_SHARE = 0.5
#: BSs that must support a fix (two bearings fix a point in the plane).
MIN_SUPPORT = 2


def region_points(problem: DirectLocalizationProblem) -> FloatArray:
    """``[point, 2]`` [m]: the grid's cells sampled at half the arrays' finest lobe.

    The LOS log-likelihood's lobes across BS ``m``'s bearing are ``r λ / D_m`` wide at
    the distance ``r`` (``D_m`` the array's aperture); a grid cell can be wider than the
    narrowest lobe (a BS close to the area), and a likelihood sampled once a cell then
    misses its peaks. Each cell is split into ``S x S`` points (per axis, ``S =
    ceil(Δ / step)`` with ``step`` half the least lobe width over the BSs, at the least
    distance from the BS to the grid; ``S = 1``: the grid itself)."""
    grid = problem.grid_points
    step = np.inf
    for m in range(problem.num_bs):
        elements = problem.element_positions[m]
        aperture = float(np.max(np.ptp(elements, axis=0)))
        if aperture <= 0:
            continue
        nearest = float(np.min(np.linalg.norm(grid - problem.bs_position[m], axis=1)))
        step = min(step, nearest * problem.wavelength / (2.0 * aperture))
    cell = np.asarray(problem.cell_size, dtype=np.float64)
    splits = np.ones(2, dtype=int) if not np.isfinite(step) or step <= 0 else \
        np.maximum(np.ceil(cell / step).astype(int), 1)
    offsets = [((np.arange(n) + 0.5) / n - 0.5) * c for n, c in zip(splits, cell, strict=True)]
    shift = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1).reshape(-1, 2)
    return np.asarray((grid[:, None, :2] + shift[None]).reshape(-1, 2), dtype=np.float64)


def log_likelihood(problem: DirectLocalizationProblem, y: ComplexArray,
                   noise_variance: FloatArray, points: FloatArray) -> FloatArray:
    """``[point]``: eq. (1)'s LOS log-likelihood with each BS's gain concentrated out,
    ``LL(p) = Σ_m |a_m(p)^H y_m|² / (N σ_m²)``, at ``points [point, 2]`` [m] (at the
    grid's height), up to a constant."""
    height = problem.grid_points[0, 2]
    sigma2 = np.where(noise_variance > 0, noise_variance, 1.0)
    loglik = np.zeros(len(points))
    # One BS and at most a grid's worth of points at a time: no more memory than one
    # BS's dictionary A_m.
    size = len(problem.grid_points)
    for first in range(0, len(points), size):
        chunk = points[first:first + size]
        where = np.column_stack([chunk, np.full(len(chunk), height)])
        for m in range(len(y)):
            a = problem.steering(m, where)
            loglik[first:first + size] += np.abs(a.conj() @ y[m]) ** 2 / a.shape[1] / sigma2[m]
    return loglik


def region_moment(problem: DirectLocalizationProblem, y: ComplexArray,
                  noise_variance: FloatArray, position: FloatArray, kappa: float
                  ) -> FloatArray:
    """``[2, 2]`` [m²]: the second moment about ``position [3]`` of the points
    (:func:`region_points`) whose LOS log-likelihood (:func:`log_likelihood`) is within
    ``κ chi2_2(p) / 2`` of the best (the fix's own included; ``p``
    :data:`estimators.fisher.REGION_PROBABILITY`): the mean squared error of the fix
    were the user anywhere in the region the likelihood ratio test does not reject (its
    offset to the region and the region's spread: several peaks give their spread)."""
    points = region_points(problem)
    if len(points) == len(problem.grid_points):  # the grid itself: its dictionary
        columns = np.sum(np.abs(problem.A) ** 2, axis=1)  # [bs, grid]
        projected = np.abs(np.einsum("mnk,mn->mk", problem.A.conj(), y)) ** 2
        sigma2 = np.where(noise_variance > 0, noise_variance, 1.0)
        loglik = np.sum(projected / columns / sigma2[:, None], axis=0)
    else:
        loglik = log_likelihood(problem, y, noise_variance, points)
    own = float(log_likelihood(problem, y, noise_variance, position[None, :2])[0])
    return likelihood_region_moment(points, loglik, position[:2], kappa=kappa, dof=2,
                                    best=own)


def _response(problem: DirectLocalizationProblem, m: int, position: FloatArray
              ) -> ComplexArray:
    """BS ``m``'s unit-modulus response ``[bs_ant]`` towards ``position [3]``."""
    return problem.steering(m, position)


def los_shares(problem: DirectLocalizationProblem, y: ComplexArray, position: FloatArray
               ) -> tuple[FloatArray, ComplexArray]:
    """Per BS, the share ``e_m`` ``[bs]`` of ``‖y_m‖²`` that the LOS towards ``position
    [3]`` [m] explains, and the fitted gains ``α̂_m = a_m^H y_m / N`` ``[bs]``
    (``y [bs, bs_ant]``); noise included (:func:`signal_shares` takes it out)."""
    M, N = y.shape
    share = np.zeros(M)
    gain = np.zeros(M, dtype=np.complex128)
    for m in range(M):
        a = _response(problem, m, position)
        gain[m] = a.conj() @ y[m] / N
        energy = float(np.sum(np.abs(y[m]) ** 2))
        share[m] = N * abs(gain[m]) ** 2 / energy if energy > 0 else 0.0
    return share, gain


def signal_shares(share: FloatArray, y: ComplexArray, noise_variance: FloatArray,
                  noise_beams: float = 1.0) -> FloatArray:
    """Shares ``[bs]`` of ``‖y_m‖²`` (:func:`los_shares`, :func:`peak_shares`) as shares
    of the signal energy: ``(e ‖y_m‖² - ν σ_m²) / (‖y_m‖² - N σ_m²)``, clipped to ``[0,
    1]``; 0 where the received energy is not above the noise's. The whole array holds
    ``N σ_m²`` of noise on average and one beam ``σ_m²`` (``ν = noise_beams = 1``); the
    strongest of the array's ``N`` orthogonal beams up to the mean maximum of ``N``
    exponential variables, ``ν = H_N = Σ_{i<=N} 1/i`` (:func:`max_noise_beams`)."""
    N = y.shape[1]
    energy = np.sum(np.abs(y) ** 2, axis=1)
    sigma2 = np.asarray(noise_variance, dtype=np.float64)
    signal = energy - N * sigma2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(signal > 0, (share * energy - noise_beams * sigma2) / signal, 0.0)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def max_noise_beams(num_antennas: int) -> float:
    """``H_N = Σ_{i<=N} 1/i``: the mean of the largest of ``N`` independent unit
    exponentials, the noise [``σ²``] the strongest of ``N`` orthogonal beams holds at most
    on average (the peak direction of noise alone)."""
    return float(np.sum(1.0 / np.arange(1, num_antennas + 1)))


def peak_shares(problem: DirectLocalizationProblem, y: ComplexArray) -> FloatArray:
    """Per BS, the largest share ``[bs]`` of ``‖y_m‖²`` one direction of the angle grid
    ``B_m`` explains (a single dominant path: near 1; spread energy: near ``1/N``);
    noise included."""
    columns = np.sum(np.abs(problem.B) ** 2, axis=1)  # [bs, angle]
    power = np.abs(np.einsum("mnl,mn->ml", problem.B.conj(), y)) ** 2 / columns
    energy = np.sum(np.abs(y) ** 2, axis=1, keepdims=True)
    return np.asarray(np.max(power / np.where(energy > 0, energy, 1.0), axis=1))


def _dpd(problem: DirectLocalizationProblem, y: ComplexArray, weights: FloatArray,
         position: FloatArray) -> float:
    return float(sum(weights[m] * abs(_response(problem, m, position).conj() @ y[m]) ** 2
                     for m in range(len(y))))


def beyond_edge(problem: DirectLocalizationProblem, y: ComplexArray, weights: FloatArray,
                position: FloatArray) -> bool:
    """Whether ``position [3]`` lies outside the grid's area, or in its outer ring of
    cells with the DPD cost (weights ``[bs]``) higher half a cell beyond the area's edge
    than both at the fix and at the edge (the cost's maximum lies outside)."""
    low = problem.grid_points[:, :2].min(0) - problem.cell_size / 2
    high = problem.grid_points[:, :2].max(0) + problem.cell_size / 2
    xy = position[:2]
    if np.any(xy < low - 1e-9) or np.any(xy > high + 1e-9):
        return True
    outward = (np.where(xy < low + problem.cell_size, -1.0, 0.0)
               + np.where(xy > high - problem.cell_size, 1.0, 0.0))
    if not outward.any():
        return False
    edge, beyond = position.copy(), position.copy()
    edge[:2] = np.where(outward < 0, low, np.where(outward > 0, high, xy))
    beyond[:2] = edge[:2] + outward * problem.cell_size / 2
    return _dpd(problem, y, weights, beyond) > max(_dpd(problem, y, weights, position),
                                                   _dpd(problem, y, weights, edge))


def fix_integrity(problem: DirectLocalizationProblem, y: ComplexArray,
                  noise_variance: FloatArray, position: FloatArray, *, on_grid: bool
                  ) -> tuple[str, FloatArray | None, dict[str, float]]:
    """The module's checks of one fix.

    Parameters
    ----------
    problem : the grid the fix was searched on.
    y : ``[bs, bs_ant]``, eq. (1)'s narrowband uplink (pilot removed).
    noise_variance : ``[bs]`` [W], of ``y``'s entries.
    position : ``[3]`` [m], the fix.
    on_grid : the fix is a grid point (adds the quantisation term).

    Returns
    -------
    ``reason`` ("" if the fix holds), the horizontal covariance ``[2, 2]`` [m²] (None
    where the fix does not hold or has no finite bound), diagnostics
    ``{"los_support": count, "los_against": count, "variance_factor": κ}``.
    """
    if not np.all(np.isfinite(position)):
        return "", None, {}
    sigma2 = np.asarray(noise_variance, dtype=np.float64)
    share, gain = los_shares(problem, y, position)
    support = share >= SUPPORT_SHARE
    found = {"los_support": float(support.sum())}
    weights = 1.0 / np.where(sigma2 > 0, sigma2, 1.0)
    if beyond_edge(problem, y, weights, position):
        return (f"fix ({position[0]:.1f}, {position[1]:.1f}) m at the edge of the search "
                "area with the cost rising beyond it: the user is likely outside it (set "
                "area=...)"), None, found
    if support.sum() < MIN_SUPPORT:
        return (f"only {int(support.sum())} BS(s) see a LOS at the fix (>= "
                f"{SUPPORT_SHARE:.0%} of their signal energy), {MIN_SUPPORT} needed"), None, found
    peak = signal_shares(peak_shares(problem, y), y, sigma2, max_noise_beams(y.shape[1]))
    against = ((signal_shares(share, y, sigma2) < SUPPORT_SHARE)
               & (peak >= SUPPORT_SHARE))
    found["los_against"] = float(against.sum())
    if against.sum() >= support.sum():
        return (f"ambiguous: {int(against.sum())} BS(s) see a dominant path away from the "
                f"fix, only {int(support.sum())} its LOS"), None, found
    N = y.shape[1]
    fitted = gain[:, None] * np.stack([_response(problem, m, position)
                                       for m in range(len(y))])
    residual = float(np.sum(np.abs(y - fitted) ** 2))
    noise = float(np.sum((N - 1) * sigma2))
    kappa = max(1.0, residual / noise) if noise > 0 else 1.0
    found["variance_factor"] = kappa
    crlb = los_position_crlb(problem.bs_position, problem.element_positions,
                             problem.wavelength, position, gain, sigma2)
    if not np.all(np.isfinite(crlb)):
        return "", None, found
    covariance = kappa * crlb + region_moment(problem, y, sigma2, position, kappa)
    if on_grid:
        covariance = covariance + np.diag(problem.cell_size**2 / 12.0)
    return "", covariance, found
