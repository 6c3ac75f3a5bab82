"""The fingerprint model the RIS-CD localizers and bounds run on (Sang et al., §II-B).

A block's fingerprint is its channel as the radio map (``Observation.fingerprints``) knows
it; what a user at that block would receive is that channel through the observation's
own precoder, combiner and pilots (:func:`predicted_pilots`). The position prior
(``Observation.prior``, eq. 39) confines the search to its confidence region (eq. 14,
:func:`confidence_radius`, :func:`confidence_region`, :func:`candidate_blocks`).

The RIS design's algebra (the fingerprint matrices ``A_i`` with ``h_i = A_i [θ; 1]`` and
their worst cases, eqs. 3, 8, 9) lives with the design (:mod:`estimators.ris_cd.design`):
no localizer or bound uses it.

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and Positioning
Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme", arXiv 2212.00241,
eqs. (4), (5), (14), (39), §II-B.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

from estimators.types import Observation
from estimators.typing import BoolArray, ComplexArray, FloatArray, IntArray


def confidence_radius(prior_std_m: float, confidence: float, *, dimensions: int = 2) -> float:
    """Eq. (14): the radius [m] that holds a position with probability ``confidence``
    under an isotropic Gaussian prior of per-axis standard deviation ``prior_std_m`` [m].

    Parameters
    ----------
    prior_std_m : ``σ`` [m], per axis.
    confidence : ``p`` in ``[0, 1)``.
    dimensions : ``d``: 2 (default; the paper's indoor area is planar, the Rayleigh
        radius ``σ sqrt(−2 ln(1 − p))``), 3 (a 3-D prior) or 1 (``√2 σ erfc⁻¹(1 − p)``,
        the literal erfc⁻¹ form of eq. 14, i.e. one axis).

    Returns
    -------
    ``r = σ sqrt(F⁻¹_{χ²_d}(p))`` [m].

    References
    ----------
    Sang et al., eq. (14).
    """
    if not (prior_std_m >= 0 and np.isfinite(prior_std_m)):
        raise ValueError(f"prior_std_m: expected >= 0, got {prior_std_m}")
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence: expected in [0, 1), got {confidence}")
    if dimensions not in (1, 2, 3):
        raise ValueError(f"dimensions: expected 1, 2 or 3, got {dimensions}")
    return float(prior_std_m * np.sqrt(stats.chi2.ppf(confidence, dimensions)))


def confidence_region(points: npt.ArrayLike, mean: npt.ArrayLike, covariance: npt.ArrayLike,
                      confidence: float) -> BoolArray:
    """Whether each point lies in the horizontal prior's region of probability
    ``confidence`` (eq. 14).

    Parameters
    ----------
    points : ``[point, 3]`` [m].
    mean : ``[3]`` [m], the prior's mean.
    covariance : ``[3, 3]`` [m²], the prior's covariance; its (x, y) block is used.
    confidence : ``p`` in ``[0, 1)``.

    Returns
    -------
    ``[point]`` bool: the Mahalanobis distance in (x, y) within the unit prior's
    :func:`confidence_radius` (for ``σ² I`` the circle of radius ``σ sqrt(−2 ln(1 − p))``).

    References
    ----------
    Sang et al., eqs. (14), (39).
    """
    offset = (np.asarray(points, dtype=np.float64)[:, :2]
              - np.asarray(mean, dtype=np.float64)[:2])
    inverse = np.linalg.inv(np.asarray(covariance, dtype=np.float64)[:2, :2])
    distance_sq = np.einsum("ni,ij,nj->n", offset, inverse, offset)
    return np.asarray(distance_sq <= confidence_radius(1.0, confidence) ** 2)


def candidate_blocks(obs: Observation, t: int, confidence: float) -> IntArray:
    """Stage 1 (prediction) of snapshot ``t``: the indices ``[candidate]`` of the radio
    map's blocks whose centres lie in the prior's confidence region (eq. 14); the nearest
    block alone where the region is smaller than a block and holds no centre."""
    assert obs.fingerprints is not None and obs.prior is not None
    blocks = obs.fingerprints.block_positions
    mean = obs.prior.mean[t]
    candidates = np.flatnonzero(confidence_region(blocks, mean, obs.prior.covariance[t],
                                                  confidence))
    if candidates.size == 0:
        horizontal = blocks[:, :2] - mean[:2]
        candidates = np.array([int(np.argmin(np.sum(horizontal**2, axis=1)))])
    return np.asarray(candidates, dtype=np.intp)


def predicted_pilots(obs: Observation, t: int) -> ComplexArray:
    """The noiseless pilots ``W^H H_i F s`` of snapshot ``t`` at every block ``i`` of the
    radio map (what eq. 5 matches the received pilots against).

    Returns
    -------
    ``[block, bs, rx_stream, tx_beam, subcarrier]`` complex128, in the units of ``obs.y``.
    """
    assert obs.fingerprints is not None
    return np.einsum("brn,ibrsk,bsm,mk->ibnmk", obs.combiners[t].conj(),
                     obs.fingerprints.cfr, obs.precoders[t], obs.pilots)


def map_dimensions(obs: Observation) -> int:
    """2 where the radio map's blocks are a horizontal grid (one height: heights are not
    estimated), else 3."""
    assert obs.fingerprints is not None
    heights = obs.fingerprints.block_positions[:, 2]
    return 2 if heights.size == 0 or np.ptp(heights) == 0 else 3


def block_variation(predicted: ComplexArray, centres: FloatArray,
                    block_size: npt.ArrayLike) -> float:
    """The radio map's variation over one block: the mean power per sample [units of
    ``predicted``²] of the difference between the predicted pilots of blocks that are
    neighbours along x or y (centres one block apart, same height); 0 where no two are.

    A UE off its block's centre receives pilots that differ from the centre's prediction
    by about this (at mmWave the channel decorrelates within a wavelength, far inside a
    block): the spread eq. (5)'s matching must allow for at the true block, which the
    best block's residual, the least of many candidates', understates.

    Parameters
    ----------
    predicted : ``[candidate, ...]`` complex, the candidates' predicted pilots
        (:func:`predicted_pilots`).
    centres : ``[candidate, 3]`` [m], their block centres.
    block_size : ``[2]`` [m], the blocks' extent along x and y.
    """
    size = np.asarray(block_size, dtype=np.float64)[:2]
    flat = predicted.reshape(len(predicted), -1)
    cells = (centres[:, :2] - centres[:, :2].min(axis=0)) / size
    index = np.rint(cells).astype(np.int64)
    on_grid = np.all(np.abs(cells - index) < 1e-2, axis=1)
    where = {(int(i), int(j), float(z)): n for n, ((i, j), z, ok)
             in enumerate(zip(index, centres[:, 2], on_grid, strict=True)) if ok}
    pairs = np.array([(n, m) for (i, j, z), n in where.items()
                      for m in (where.get((i + 1, j, z)), where.get((i, j + 1, z)))
                      if m is not None], dtype=np.intp).reshape(-1, 2)
    if not len(pairs):
        return 0.0
    return float(np.mean(np.abs(flat[pairs[:, 0]] - flat[pairs[:, 1]]) ** 2))
