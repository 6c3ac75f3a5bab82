"""The bound DAUN's estimators are compared to: the horizontal position error bound of
the paper's eq. (1) with the LOS paths alone (the paper gives no bound).

``y_m = α_m a_m(p) + n_m``, ``n_m ~ CN(0, σ_m² I)`` per BS ``m``, unknowns the horizontal
user position ``p`` (its height known, as the grid's) and one complex LOS gain ``α_m``
per BS. NLOS paths, absent from this model, would only add nuisance parameters, so this
is the bound of the LOS-only channel: a lower bound for eq. (1) with NLOS paths too.
Derivation and its measured use: ``docs/estimators/daun.md`` ("The bound").

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eq. (1).
S. M. Kay, Fundamentals of Statistical Signal Processing I, 1993: eq. (15.52).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from estimators.daun.model import narrowband_uplink
from estimators.fisher import crlb, gaussian_fim
from estimators.types import ChannelTruth, Observation
from estimators.typing import FloatArray

#: What :meth:`estimators.daun.grid.GridLocalizer.crlb` bounds (``Estimator.bound``).
LOS_BOUND = ("horizontal position error bound [m] of eq. (1) with the LOS paths alone "
             "(y_m = α_m a_m(p) + n_m; unknowns p in the plane and every α_m; the paper "
             "gives none), NaN where fewer than two BSs see the LOS")


def los_position_error_bound(
    bs_position: npt.ArrayLike,
    element_positions: npt.ArrayLike,
    wavelength: float,
    ue_position: npt.ArrayLike,
    los_gain: npt.ArrayLike,
    noise_variance: npt.ArrayLike,
) -> float:
    """Horizontal position error bound [m] of eq. (1) with the LOS path alone:
    ``sqrt(trace)`` of :func:`los_position_crlb` (arguments and NaN/0 cases as there)."""
    c = los_position_crlb(bs_position, element_positions, wavelength, ue_position,
                          los_gain, noise_variance)
    return float(np.sqrt(np.trace(c)))


def los_position_crlb(
    bs_position: npt.ArrayLike,
    element_positions: npt.ArrayLike,
    wavelength: float,
    ue_position: npt.ArrayLike,
    los_gain: npt.ArrayLike,
    noise_variance: npt.ArrayLike,
) -> FloatArray:
    """The CRLB ``[2, 2]`` [m²] of the horizontal position of eq. (1) with the LOS path
    alone (the position block of the inverse FIM).

    Parameters
    ----------
    bs_position : ``[bs, 3]`` [m].
    element_positions : ``[bs, bs_ant, 3]`` [m], world-rotated, relative to each BS.
    wavelength : [m].
    ue_position : ``[3]`` [m]; its height is known, not estimated.
    los_gain : ``[bs]`` complex, ``α_m`` (0: the BS sees no LOS and carries no
        information).
    noise_variance : ``σ_m²`` [W] per receive antenna, scalar or ``[bs]``.

    Returns
    -------
    ``[2, 2]`` [m²]: NaN where the FIM is singular (fewer than two BSs with a LOS), 0
    where every informative BS is noiseless.

    Notes
    -----
    FIM ``Σ_m (2/σ_m²) Re{D_m^H D_m}`` (Kay eq. 15.52, each BS's rows whitened by
    ``1/σ_m``) with ``∂a_n/∂p = j (2π/λ) a_n (I − u u^T) r_n / d`` (``u`` the unit vector
    from the BS to the user, ``d`` the distance, ``r_n`` element ``n``'s position).
    """
    p = np.asarray(ue_position, dtype=np.float64)
    bs = np.asarray(bs_position, dtype=np.float64)
    elements = np.asarray(element_positions, dtype=np.float64)
    gain = np.asarray(los_gain, dtype=np.complex128)
    M, N = elements.shape[:2]
    sigma2 = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (M,))
    informative = np.abs(gain) > 0
    nan = np.full((2, 2), np.nan)
    if not np.all(np.isfinite(sigma2[informative])) or np.any(sigma2[informative] < 0):
        return nan
    if informative.any() and np.all(sigma2[informative] == 0):
        return np.zeros((2, 2))
    # A noiseless BS beside noisy ones has infinite information along its bearing only:
    # no finite FIM describes it.
    if np.any(sigma2[informative] == 0):
        return nan
    k = 2 * np.pi / wavelength
    jacobian = np.zeros((M * N, 2 + 2 * M), dtype=np.complex128)
    for m in range(M):
        d = p - bs[m]
        distance = float(np.linalg.norm(d))
        if distance == 0 or not informative[m]:
            informative[m] = False
            continue
        u = d / distance
        a = np.exp(1j * k * (elements[m] @ u))
        projected = (elements[m] - np.outer(elements[m] @ u, u)) / distance  # [N, 3]
        whiten = 1.0 / np.sqrt(sigma2[m])
        rows = slice(m * N, (m + 1) * N)
        jacobian[rows, :2] = whiten * (gain[m] * 1j * k * a)[:, None] * projected[:, :2]
        jacobian[rows, 2 + 2 * m] = whiten * a
        jacobian[rows, 3 + 2 * m] = whiten * 1j * a
    columns = np.concatenate([[True, True], np.repeat(informative, 2)])
    fim = gaussian_fim(jacobian[:, columns], 1.0)
    return np.asarray(crlb(fim)[:2, :2])


def los_gains(obs: Observation, truths: Sequence[ChannelTruth]) -> npt.NDArray[np.complex128]:
    """``[snapshot, bs]``: each BS's true LOS gain ``α_m`` as it appears in the
    narrowband ``y`` of :func:`estimators.daun.model.narrowband_uplink` (0 where the BS
    has no valid LOS path), from one truth per BS of ``obs``."""
    gains = np.zeros((obs.num_snapshots, obs.num_bs), dtype=np.complex128)
    for b, truth in enumerate(truths):
        has_los = truth.los & truth.valid[:, 0] & np.isfinite(truth.gain[:, 0])
        gains[:, b] = np.where(has_los, truth.gain[:, 0], 0)
    return gains


def los_bound(obs: Observation, truths: Sequence[ChannelTruth]) -> FloatArray:
    """``[snapshot]`` [m]: :func:`los_position_error_bound` of every snapshot of ``obs``
    (an uplink with identity combining) at the true positions and LOS gains of
    ``truths`` (one per BS, in ``obs``'s order), with the noise of the narrowband ``y``
    the estimators see (:func:`estimators.daun.model.narrowband_uplink`)."""
    _, noise_variance = narrowband_uplink(obs)
    gains = los_gains(obs, truths)
    elements = np.stack([obs.bs_array.world_positions(o) for o in obs.bs_orientation])
    position = truths[0].ue_position
    bound = np.full(obs.num_snapshots, np.nan)
    for t in range(obs.num_snapshots):
        if np.all(np.isfinite(position[t])):
            bound[t] = los_position_error_bound(
                obs.bs_position, elements, obs.wavelength, position[t], gains[t],
                noise_variance[t])
    return bound
