"""Point-set scoring: optimal assignment under a cut-off, GOSPA, precision/recall.

Used to score estimated scatterer maps against ray-traced truth, snapshot by snapshot
or as fused maps over a drive.

References
----------
A. S. Rahmathullah, Á. F. García-Fernández, L. Svensson, "Generalized optimal
sub-pattern assignment metric", FUSION 2017 (GOSPA with α = 2, eq. 1 and Prop. 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from estimators.typing import FloatArray


@dataclass(frozen=True)
class Matching:
    """An optimal assignment of estimated to true points within a cut-off.

    ``pairs [K, 2]`` (estimate index, truth index) with distance < cut-off;
    ``distances [K]`` [m]; ``missed`` truth indices and ``false`` estimate indices left
    unassigned.
    """

    pairs: npt.NDArray[np.int64]
    distances: FloatArray
    missed: npt.NDArray[np.int64]
    false: npt.NDArray[np.int64]


def match_points(
    estimated: npt.ArrayLike, truth: npt.ArrayLike, cutoff: float, *, dims: int = 3
) -> Matching:
    """Assign estimated points to true points minimising Σ min(d, cut-off).

    Parameters
    ----------
    estimated : ``[N, 3]`` [m] (rows with NaN are ignored).
    truth : ``[M, 3]`` [m] (rows with NaN are ignored).
    cutoff : [m]; pairs at or beyond it count as one missed and one false point.
    dims : 3, or 2 to compare in the horizontal plane (x, y) only.

    Returns
    -------
    Matching, with indices into the *given* arrays.
    """
    est = np.asarray(estimated, dtype=np.float64).reshape(-1, 3)
    tru = np.asarray(truth, dtype=np.float64).reshape(-1, 3)
    est_idx = np.flatnonzero(np.all(np.isfinite(est), axis=1))
    tru_idx = np.flatnonzero(np.all(np.isfinite(tru), axis=1))
    pairs = np.zeros((0, 2), dtype=np.int64)
    dist = np.zeros(0)
    if est_idx.size and tru_idx.size:
        diff = est[est_idx, None, :dims] - tru[None, tru_idx, :dims]
        d = np.linalg.norm(diff, axis=-1)
        rows, cols = linear_sum_assignment(np.minimum(d, cutoff))
        keep = d[rows, cols] < cutoff
        pairs = np.stack([est_idx[rows[keep]], tru_idx[cols[keep]]], axis=1).astype(np.int64)
        dist = d[rows[keep], cols[keep]]
    missed = np.setdiff1d(tru_idx, pairs[:, 1]).astype(np.int64)
    false = np.setdiff1d(est_idx, pairs[:, 0]).astype(np.int64)
    return Matching(pairs=pairs, distances=dist, missed=missed, false=false)


@dataclass(frozen=True)
class Gospa:
    """GOSPA (p = 2, α = 2) and its parts: ``total² = localization² + missed² + false²``.

    ``localization`` = sqrt(Σ d² over matched pairs), ``missed`` / ``false`` =
    sqrt(c²/2 · count) [m]; counts and precision/recall within the cut-off.
    """

    total: float
    localization: float
    missed: float
    false: float
    num_matched: int
    num_missed: int
    num_false: int

    @property
    def precision(self) -> float:
        """Share of estimated points within the cut-off of a true point (1 if none)."""
        n = self.num_matched + self.num_false
        return self.num_matched / n if n else 1.0

    @property
    def recall(self) -> float:
        """Share of true points found within the cut-off (1 if there are none)."""
        n = self.num_matched + self.num_missed
        return self.num_matched / n if n else 1.0


def gospa(matching: Matching, cutoff: float) -> Gospa:
    """GOSPA of a matching (α = 2: each unassigned point costs c²/2; p = 2)."""
    loc2 = float(np.sum(matching.distances**2))
    missed2 = cutoff**2 / 2 * matching.missed.size
    false2 = cutoff**2 / 2 * matching.false.size
    return Gospa(
        total=float(np.sqrt(loc2 + missed2 + false2)), localization=float(np.sqrt(loc2)),
        missed=float(np.sqrt(missed2)), false=float(np.sqrt(false2)),
        num_matched=int(matching.pairs.shape[0]), num_missed=int(matching.missed.size),
        num_false=int(matching.false.size),
    )
