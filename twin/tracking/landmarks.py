"""A persistent landmark map from an estimator's per-snapshot scatterers.

A specular reflection point is not a fixed point: it slides along its wall as the UE
moves (its virtual anchor stays put, but the estimators report reflection points, and
not which BS each belongs to). So a landmark here is the *trace of a reflecting
surface*: the detections associated with it, a centre, and, once they spread along a
line more than their noise, that line's direction (principal axis) and the extent seen
along it. A landmark without a direction yet is a point.

Association, snapshot by snapshot: a detection's distance to a landmark is its distance
to the landmark's support (the segment it has been seen over, or its centre), less the
distance the UE moved since the landmark was last seen (a reflection point moves along
its wall by no more than the UE does); a detection is gated to a landmark when that
distance, over the detection noise and the landmark's own uncertainty, lies inside the
``gate`` chi-square region, and detections and landmarks are paired by global
assignment (:func:`scipy.optimize.linear_sum_assignment`) over the gated pairs. A
detection left over starts a tentative landmark; one seen at :data:`CONFIRM_HITS`
snapshots within its first :data:`CONFIRM_WINDOW` is confirmed, one that is not is
pruned. Confirmed landmarks persist (walls do not go away when out of sight).

The detection noise ``sigma`` [m] comes from the data: first the median distance
between a detection and the nearest one of the snapshot before, less the distance the
UE moved in between; then, twice, the median distance of the confirmed landmarks'
detections from their lines, over the median of a chi distribution with ``d - 1``
degrees of freedom (the noise across a line).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from estimators.typing import BoolArray, FloatArray, IntArray

#: Detections a tentative landmark needs within its first :data:`CONFIRM_WINDOW`
#: snapshots to be confirmed.
CONFIRM_HITS = 3
CONFIRM_WINDOW = 5
#: A landmark gets a direction once its detections spread along a line by more than this
#: many times the detection noise (standard deviation along the principal axis).
LINE_SPREAD = 3.0
#: Refinements of the detection noise from the confirmed landmarks' residuals.
NOISE_REFINEMENTS = 2
_MIN_SIGMA = 1e-3  # [m] a floor: detections are never taken as exact


@dataclass
class _Landmark:
    created: int
    points: list[FloatArray] = field(default_factory=list)  # detections [d]
    seen: list[int] = field(default_factory=list)  # their snapshots
    heights: list[float] = field(default_factory=list)  # z of each (2-D maps carry it)
    confirmed: bool = False
    centre: FloatArray = field(default_factory=lambda: np.zeros(0))
    direction: FloatArray | None = None
    extent: tuple[float, float] = (0.0, 0.0)

    def add(self, t: int, x: FloatArray, z: float, sigma: float) -> None:
        self.points.append(x)
        self.seen.append(t)
        self.heights.append(z)
        self.fit(sigma)

    def fit(self, sigma: float) -> None:
        pts = np.asarray(self.points)
        self.centre = pts.mean(axis=0)
        self.direction = None
        if len(pts) >= CONFIRM_HITS:
            _, s, vt = np.linalg.svd(pts - self.centre, full_matrices=False)
            if s[0] / np.sqrt(len(pts)) > LINE_SPREAD * sigma:
                self.direction = vt[0]
                along = (pts - self.centre) @ vt[0]
                self.extent = (float(along.min()), float(along.max()))

    def distance(self, x: FloatArray, slack: float) -> float:
        """Distance [m] of ``x`` from the support, less ``slack`` along it; a landmark
        with a line is also as near as its centre less ``slack`` (a line fitted to a
        short stretch may point the wrong way)."""
        r = x - self.centre
        near_centre = max(0.0, float(np.linalg.norm(r)) - slack)
        if self.direction is None:
            return near_centre
        along = float(r @ self.direction)
        perpendicular = float(np.linalg.norm(r - along * self.direction))
        gap = max(0.0, along - self.extent[1], self.extent[0] - along)
        return min(near_centre, float(np.hypot(perpendicular, max(0.0, gap - slack))))

    def snap(self, x: FloatArray) -> FloatArray:
        """``x`` projected onto the landmark's line (its centre for a point)."""
        if self.direction is None:
            return self.centre
        return self.centre + float((x - self.centre) @ self.direction) * self.direction

    def residuals(self) -> FloatArray:
        """Distances of the detections from the line (none for a point: its detections
        slide along a wall it cannot tell)."""
        if self.direction is None:
            return np.zeros(0)
        r = np.asarray(self.points) - self.centre
        return np.linalg.norm(r - np.outer(r @ self.direction, self.direction), axis=1)


@dataclass(frozen=True)
class LandmarkMap:
    """The persistent landmarks of one estimator's drive (``L`` confirmed landmarks).

    Attributes
    ----------
    position : ``[snapshot, L, 3]`` [m] each landmark as a point at each snapshot: its
        detection there snapped onto its line (a point landmark: its centre), else its
        last such point; NaN before its first detection.
    known : ``[snapshot, L]`` the landmark has been detected at or before the snapshot.
    covariance : ``[snapshot, L, 3, 3]`` [m²] of ``position`` (NaN where not known; for
        a 2-D map the z row and column are NaN).
    centre : ``[L, 3]`` [m]; direction ``[L, 3]`` unit vector of its line (NaN: a point
        landmark); extent ``[L, 2]`` [m] the seen segment along it from the centre.
    detections : ``[L]`` how many detections each landmark holds.
    association : ``[snapshot, Q]`` the landmark of each input scatterer (-1: none, a
        pruned tentative landmark's or an invalid one).
    sigma : [m] the detection noise used (from the data).
    """

    position: FloatArray
    known: BoolArray
    covariance: FloatArray
    centre: FloatArray
    direction: FloatArray
    extent: FloatArray
    detections: npt.NDArray[np.int64]
    association: npt.NDArray[np.int64]
    sigma: float

    @property
    def num_landmarks(self) -> int:
        return int(self.centre.shape[0])


def _detections(scatterers: FloatArray, valid: BoolArray, d: int) -> list[IntArray]:
    out = []
    for t in range(scatterers.shape[0]):
        ok = valid[t] & np.all(np.isfinite(scatterers[t, :, :d]), axis=1)
        out.append(np.flatnonzero(ok))
    return out


def _initial_sigma(scatterers: FloatArray, index: list[IntArray], ue_position: FloatArray,
                   d: int) -> float:
    """Median distance from a detection to the nearest one of the previous snapshot with
    detections, less the distance the UE moved in between (a reflection point slides
    along its wall by no more than that)."""
    gaps: list[float] = []
    prev: tuple[int, FloatArray] | None = None
    for t, q in enumerate(index):
        if not len(q):
            continue
        pts = scatterers[t, q, :d]
        if prev is not None:
            nearest = np.linalg.norm(pts[:, None] - prev[1][None], axis=-1).min(axis=1)
            moved = float(np.linalg.norm(ue_position[t] - ue_position[prev[0]]))
            gaps.extend(np.maximum(nearest - (moved if np.isfinite(moved) else 0.0), 0.0))
        prev = (t, pts)
    return max(float(np.median(gaps)), _MIN_SIGMA) if gaps else 1.0


def _associate(scatterers: FloatArray, index: list[IntArray], ue_position: FloatArray,
               d: int, sigma: float, gate: float) -> tuple[list[_Landmark], list[dict]]:
    radius = sigma * np.sqrt(chi2.ppf(gate, d))
    landmarks: list[_Landmark] = []
    assigned: list[dict[int, int]] = []  # per snapshot: scatterer -> landmark
    for t, q in enumerate(index):
        live = [n for n, lm in enumerate(landmarks)
                if lm.confirmed or t - lm.created < CONFIRM_WINDOW]
        pairs: dict[int, int] = {}
        if len(q) and live:
            cost = np.full((len(q), len(live)), np.inf)
            for b, n in enumerate(live):
                lm = landmarks[n]
                moved = float(np.linalg.norm(ue_position[t] - ue_position[lm.seen[-1]]))
                slack = moved if np.isfinite(moved) else 0.0
                # The landmark's own uncertainty: its centre from its detections.
                own = sigma / np.sqrt(len(lm.points))
                limit = radius * np.hypot(1.0, own / sigma)
                for a, s in enumerate(q):
                    dist = lm.distance(scatterers[t, s, :d], slack)
                    if dist <= limit:
                        cost[a, b] = dist / limit
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
            pairs = {int(q[a]): live[b] for a, b in zip(rows, cols, strict=True)
                     if np.isfinite(cost[a, b])}
        for s in q:
            s = int(s)
            if s not in pairs:
                landmarks.append(_Landmark(created=t))
                pairs[s] = len(landmarks) - 1
            lm = landmarks[pairs[s]]
            lm.add(t, scatterers[t, s, :d], float(scatterers[t, s, 2]), sigma)
            if len(lm.seen) >= CONFIRM_HITS and lm.seen[CONFIRM_HITS - 1] - lm.created \
                    < CONFIRM_WINDOW:
                lm.confirmed = True
        assigned.append(pairs)
    return landmarks, assigned


def map_landmarks(scatterers: npt.ArrayLike, valid: npt.ArrayLike,
                  ue_position: npt.ArrayLike, *, dimensions: int,
                  gate: float = 0.99) -> LandmarkMap:
    """The persistent landmark map of a drive (the module docstring's method).

    Parameters
    ----------
    scatterers : ``[snapshot, Q, 3]`` [m] an estimator's scatterers.
    valid : ``[snapshot, Q]`` which are reported (a non-converged snapshot: none).
    ue_position : ``[snapshot, 3]`` [m] the UE track (how far a reflection point can
        have slid along its wall between two detections); NaN where unknown.
    dimensions : 2 (landmarks in the horizontal plane, z carried as the detections'
        mean) or 3.
    gate : probability of the association gate.
    """
    d = dimensions
    pts = np.asarray(scatterers, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool)
    ue = np.asarray(ue_position, dtype=np.float64)[:, :d]
    T, Q = ok.shape
    index = _detections(pts, ok, d)
    sigma = _initial_sigma(pts, index, ue, d)
    landmarks, assigned = _associate(pts, index, ue, d, sigma, gate)
    for _ in range(NOISE_REFINEMENTS):
        residuals = np.concatenate([lm.residuals() for lm in landmarks if lm.confirmed]
                                   or [np.zeros(0)])
        if len(residuals) < CONFIRM_HITS:
            break
        # Across a line in d dimensions a detection's noise has d - 1 components: the
        # median distance is sigma times the root of chi-square(d - 1)'s median.
        sigma = max(float(np.median(residuals)) / np.sqrt(chi2.ppf(0.5, d - 1)), _MIN_SIGMA)
        landmarks, assigned = _associate(pts, index, ue, d, sigma, gate)
    kept = [n for n, lm in enumerate(landmarks) if lm.confirmed]
    renumber = {n: m for m, n in enumerate(kept)}
    L = len(kept)
    position = np.full((T, L, 3), np.nan)
    covariance = np.full((T, L, 3, 3), np.nan)
    known = np.zeros((T, L), bool)
    association = np.full((T, Q), -1, np.int64)
    centre = np.full((L, 3), np.nan)
    direction = np.full((L, 3), np.nan)
    extent = np.full((L, 2), np.nan)
    for m, n in enumerate(kept):
        lm = landmarks[n]
        z = float(np.nanmean(lm.heights)) if np.isfinite(lm.heights).any() else np.nan
        centre[m, :d] = lm.centre
        if d == 2:
            centre[m, 2] = z
        if lm.direction is not None:
            direction[m, :d] = lm.direction
            if d == 2:
                direction[m, 2] = 0.0
            extent[m] = lm.extent
        cov = np.full((3, 3), np.nan)
        # Across the line: the line's offset from n detections; along it (and for a
        # point, everywhere): a detection's own noise, or the centre's.
        n_det = len(lm.points)
        if lm.direction is None:
            cov[:d, :d] = sigma**2 / n_det * np.eye(d)
        else:
            u = lm.direction[:, None]
            cov[:d, :d] = sigma**2 * (u @ u.T) + sigma**2 / n_det * (np.eye(d) - u @ u.T)
        first = lm.seen[0]
        last = np.full(3, np.nan)
        seen = dict(zip(lm.seen, lm.points, strict=True))
        for t in range(first, T):
            if t in seen:
                last = np.full(3, np.nan)
                last[:d] = lm.snap(seen[t])
                last[2] = z if d == 2 else last[2]
            position[t, m] = last
            covariance[t, m] = cov
            known[t, m] = True
    for t, pairs in enumerate(assigned):
        for s, n in pairs.items():
            if n in renumber:
                association[t, s] = renumber[n]
    return LandmarkMap(position=position, known=known, covariance=covariance,
                       centre=centre, direction=direction, extent=extent,
                       detections=np.array([len(landmarks[n].points) for n in kept],
                                           dtype=np.int64),
                       association=association, sigma=float(sigma))


__all__ = ["CONFIRM_HITS", "CONFIRM_WINDOW", "LandmarkMap", "map_landmarks"]
