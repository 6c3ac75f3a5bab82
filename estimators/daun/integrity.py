"""What every grid localizer of the paper (:mod:`estimators.daun.grid`) reports beside a
fix: whether eq. (1)'s model explains it, and how unsure it is (issue 22).

The paper gives neither. A fix ``p̂`` is checked against the observation it came from:

* **LOS support.** BS ``m`` vouches for ``p̂`` when the LOS response towards it explains
  at least :data:`SUPPORT_SHARE` of the BS's received energy, ``e_m = |a_m(p̂)^H y_m|² /
  (N ‖y_m‖²) >= 1/2`` (the LOS is the dominant component there; a direction an NLOS
  path or noise alone lights up gets a sidelobe's share, ≤ ~0.05 for a ULA). Fewer than
  two such BSs (two bearings fix a point in the plane): ``converged=False``.
* **Majority.** A BS that does not support ``p̂`` but sees a dominant path elsewhere
  (one direction of its angle grid ``B_m`` explains ``>= 1/2`` of its energy) speaks
  against it; as many against as for: ``converged=False`` (a ghost where two BSs'
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
  outer product of the offset from ``p̂`` to the mean of the LOS model's likelihood
  region (:func:`region_offset`: a fix the unfolded or early-stopped ADMM put cells away
  from where eq. (1) fits the data best is as unsure as that distance), plus ``Δ²/12``
  per axis for a fix that is a grid point (``Δ`` the cell: the uniform quantisation
  error).
"""

from __future__ import annotations

import numpy as np

from estimators.daun.bound import los_position_crlb
from estimators.daun.model import DirectLocalizationProblem
from estimators.typing import ComplexArray, FloatArray

#: Share of a BS's received energy the LOS towards a fix must explain for the BS to
#: support it (the LOS dominant).
SUPPORT_SHARE = 0.5
#: BSs that must support a fix (two bearings fix a point in the plane).
MIN_SUPPORT = 2
#: The likelihood region of :func:`region_offset`: ``2 ΔLL <= κ`` times this, the
#: chi-square(2) level whose uniform disc has the Gaussian's second moment (radius² =
#: 4 σ², second moment radius²/4 = σ²).
REGION_CHI2 = 4.0


def region_offset(problem: DirectLocalizationProblem, y: ComplexArray,
                  noise_variance: FloatArray, position: FloatArray, kappa: float
                  ) -> FloatArray:
    """``[2]`` [m]: from ``position [3]`` to the mean of the grid points whose LOS
    log-likelihood (eq. 1 with each BS's gain concentrated out, ``LL(p) = Σ_m
    |a_m(p)^H y_m|² / (N σ_m²)``) lies within ``κ`` :data:`REGION_CHI2` ``/ 2`` of the
    grid's best: how far the fix lies from where the data put the user."""
    columns = np.sum(np.abs(problem.A) ** 2, axis=1)  # [bs, grid]
    projected = np.abs(np.einsum("mnk,mn->mk", problem.A.conj(), y)) ** 2
    sigma2 = np.where(noise_variance > 0, noise_variance, 1.0)
    loglik = np.sum(projected / columns / sigma2[:, None], axis=0)
    region = loglik >= loglik.max() - kappa * REGION_CHI2 / 2
    return np.asarray(problem.grid_points[region, :2].mean(axis=0) - position[:2])


def _response(problem: DirectLocalizationProblem, m: int, position: FloatArray
              ) -> ComplexArray:
    """BS ``m``'s unit-modulus response ``[bs_ant]`` towards ``position [3]``."""
    return problem.steering(m, position)


def los_shares(problem: DirectLocalizationProblem, y: ComplexArray, position: FloatArray
               ) -> tuple[FloatArray, ComplexArray]:
    """Per BS, the share ``e_m`` ``[bs]`` of ``‖y_m‖²`` that the LOS towards ``position
    [3]`` [m] explains, and the fitted gains ``α̂_m = a_m^H y_m / N`` ``[bs]``
    (``y [bs, bs_ant]``)."""
    M, N = y.shape
    share = np.zeros(M)
    gain = np.zeros(M, dtype=np.complex128)
    for m in range(M):
        a = _response(problem, m, position)
        gain[m] = a.conj() @ y[m] / N
        energy = float(np.sum(np.abs(y[m]) ** 2))
        share[m] = N * abs(gain[m]) ** 2 / energy if energy > 0 else 0.0
    return share, gain


def peak_shares(problem: DirectLocalizationProblem, y: ComplexArray) -> FloatArray:
    """Per BS, the largest share ``[bs]`` of ``‖y_m‖²`` one direction of the angle grid
    ``B_m`` explains (a single dominant path: near 1; spread energy: near ``1/N``)."""
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
    share, gain = los_shares(problem, y, position)
    support = share >= SUPPORT_SHARE
    sigma2 = np.asarray(noise_variance, dtype=np.float64)
    found = {"los_support": float(support.sum())}
    weights = 1.0 / np.where(sigma2 > 0, sigma2, 1.0)
    if beyond_edge(problem, y, weights, position):
        return (f"fix ({position[0]:.1f}, {position[1]:.1f}) m at the edge of the search "
                "area with the cost rising beyond it: the user is likely outside it (set "
                "area=...)"), None, found
    if support.sum() < MIN_SUPPORT:
        return (f"only {int(support.sum())} BS(s) see a LOS at the fix (>= "
                f"{SUPPORT_SHARE:.0%} of their energy), {MIN_SUPPORT} needed"), None, found
    against = (~support) & (peak_shares(problem, y) >= SUPPORT_SHARE)
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
    offset = region_offset(problem, y, sigma2, position, kappa)
    covariance = kappa * crlb + np.outer(offset, offset)
    if on_grid:
        covariance = covariance + np.diag(problem.cell_size**2 / 12.0)
    return "", covariance, found
