"""Scoring estimates against a run's ray-traced truth: truth sets, matching, cut-off,
dimensions, landmark fusion. The one room ``twin evaluate`` and the maps score with.

Truth sets, per snapshot and BS: (a) single-bounce interaction points, (b) first/last
interaction points of multi-bounce paths, (c) virtual anchors of specular paths
(:data:`TRUTH_SETS`). An estimator's scatterers are matched to a set snapshot by
snapshot by optimal assignment under a cut-off (:func:`match_snapshot`, GOSPA and its
parts from :mod:`twin.metrics`).

Dimensions: an estimator whose positions live in the horizontal plane
(``Estimator.position_dimensions(obs) == 2``, stored by ``twin estimate``) is scored in
that plane; truth points it cannot represent (on floors and ceilings: a reflection
normal within 60° of vertical) take no part in its matching and are counted as
*unmodelled*, never as missed.

The matchings of one algorithm against the single-bounce set are computed once
(:func:`match_algorithm`) and handed both to the metrics and to the maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators import Estimate
from estimators.typing import BoolArray, FloatArray
from twin.errors import TwinInputError
from twin.metrics import Matching, gospa, match_points
from twin.paths import InteractionType
from twin.runfile import RunData

TRUTH_SETS = {
    "single_bounce": "interaction points of single-bounce paths",
    "first_last": "first (BS side) and last (UE side) interaction points of multi-bounce "
                  "paths",
    "virtual_anchors": "virtual anchors of specular paths (BS mirrored by the walls)",
}
# A reflection whose normal is within 60° of vertical is on a floor or ceiling.
_HORIZONTAL_NORMAL_Z = 0.5
PLANAR, SPATIAL = 2, 3
"""The two values of ``Estimator.position_dimensions``: the horizontal plane, 3-D."""


@dataclass(frozen=True)
class TruthPoints:
    """One truth set at one snapshot.

    Attributes
    ----------
    points : ``[n, 3]`` [m].
    objects : ``[n]`` names of the objects the points lie on.
    planar : ``[n]`` whether a 2-D (horizontal-plane) model can represent each point.
    landmarks : ``[n]`` persistent identity of each point's reflecting surface (object +
        plane), single-bounce set only (empty otherwise).
    """

    points: FloatArray
    objects: tuple[str, ...]
    planar: BoolArray
    landmarks: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlgorithmMatching:
    """One algorithm's scatterers matched to one truth set, snapshot by snapshot.

    Attributes
    ----------
    dimensions : 2 (matched in the horizontal plane) or 3.
    cutoff : the matching cut-off [m].
    estimated : per snapshot ``[Q_t, 3]`` [m], the scatterers reported there
        (:func:`snapshot_scatterers`).
    matchings : per snapshot the :class:`twin.metrics.Matching` of ``estimated``
        (estimate index) against the truth points (truth index).
    modelled : per snapshot ``[N_t]``, whether the algorithm can represent each true point.
    """

    dimensions: int
    cutoff: float
    estimated: tuple[FloatArray, ...]
    matchings: tuple[Matching, ...]
    modelled: tuple[BoolArray, ...]

    def matched(self, t: int, num_truth: int) -> BoolArray:
        """``[N_t]``: which of the ``num_truth`` true points of snapshot ``t`` are matched."""
        hit = np.zeros(num_truth, bool)
        hit[self.matchings[t].pairs[:, 1]] = True
        return hit


def check_cutoff(cutoff: float) -> None:
    """Refuse a matching cut-off that is not a positive distance (one line)."""
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise TwinInputError(f"--cutoff: must be a positive distance [m], got {cutoff}")


def check_dimensions(name: str, dimensions: int) -> int:
    """``dimensions`` if it is 2 or 3, else :class:`ValueError` naming the algorithm (an
    estimator that declares anything else is a programming error)."""
    if dimensions not in (PLANAR, SPATIAL):
        raise ValueError(f"{name}: position_dimensions must be 2 or 3, got {dimensions!r}")
    return int(dimensions)


def scored_in(dimensions: int) -> str:
    """Where positions of an estimator of ``dimensions`` are compared, in words."""
    return "horizontal plane" if dimensions == PLANAR else "3D"


def truth_sets(run: RunData, bs: int = 0) -> dict[str, list[TruthPoints]]:
    """The three truth sets (:data:`TRUTH_SETS`) of BS ``bs``, per snapshot."""
    p = run.paths
    names = p.interaction_object_names()[:, bs]
    bs_pos = run.bs_position[bs]
    sets: dict[str, list[TruthPoints]] = {k: [] for k in TRUTH_SETS}
    for t in range(p.num_snapshots):
        valid = p.valid[t, bs]
        depth = p.depth[t, bs]
        types = p.interaction_types[t, bs]
        points = p.interaction_points[t, bs]
        anchor = p.virtual_anchor[t, bs]
        hit = names[t]  # [path, depth] object names
        # Reflection normal of a specular path's first bounce ∝ VA of that bounce - BS;
        # for single-bounce paths the VA is exactly that.
        normal = anchor - bs_pos
        with np.errstate(invalid="ignore"):
            normal_z = np.abs(normal[:, 2]) / np.linalg.norm(normal, axis=1)
        planar = ~(normal_z > _HORIZONTAL_NORMAL_Z)
        single = valid & (depth == 1) & (types[:, 0] != InteractionType.REFRACTION)
        sets["single_bounce"].append(TruthPoints(
            points[single, 0], tuple(hit[single, 0]), planar[single],
            tuple(_landmark(o, n, x) for o, n, x in
                  zip(hit[single, 0], normal[single], points[single, 0], strict=True))))
        multi = np.flatnonzero(valid & (depth >= 2))
        last = depth[multi] - 1
        fl_points = np.concatenate([points[multi, 0], points[multi, last]])
        fl_names = tuple(hit[multi, 0]) + tuple(hit[multi, last])
        sets["first_last"].append(TruthPoints(
            fl_points, fl_names, np.ones(len(fl_points), bool)))
        reflects = np.any(types == InteractionType.SPECULAR, axis=1)
        specular = valid & reflects & np.all(np.isfinite(anchor), axis=1)
        va_names = tuple("+".join(n for n in row if n) for row in hit[specular])
        sets["virtual_anchors"].append(TruthPoints(
            anchor[specular], va_names, planar[specular] | (depth[specular] > 1)))
    return sets


def _landmark(obj: str, normal: FloatArray, point: FloatArray) -> str:
    """Persistent identity of a reflecting surface: object + plane (unit normal, offset).

    The reflection point moves along a wall as the UE moves; the wall's plane does not.
    A point with no plane (a RIS tile's: no virtual anchor) is its object alone.
    """
    if not np.all(np.isfinite(normal)):
        return obj
    n = normal / np.linalg.norm(normal)
    n = n if (n[np.argmax(np.abs(n))] > 0) else -n  # one sign per plane
    offset = float(n @ point)
    n = np.round(n, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{obj}|{n[0]:+.2f},{n[1]:+.2f},{n[2]:+.2f}|{offset:+.1f}"


def snapshot_scatterers(est: Estimate, t: int) -> FloatArray:
    """The scatterers an estimate reports at snapshot ``t``: ``[Q, 3]`` [m] (none when
    that snapshot did not converge)."""
    if not est.converged[t]:
        return np.zeros((0, 3))
    return np.asarray(est.scatterers[t][est.scatterer_valid[t]], dtype=np.float64)


def match_snapshot(estimated: npt.ArrayLike, truth: TruthPoints, dims: int,
                   cutoff: float) -> tuple[Matching, BoolArray]:
    """Match one snapshot's estimated scatterers to the truth points a ``dims``-D model
    can represent (2-D: the ``planar`` ones, compared in the horizontal plane).

    Returns the matching (indices into ``truth.points``; the points the model cannot
    represent take no part in it, neither matched nor missed) and ``modelled [N]``.
    """
    modelled = truth.planar if dims == PLANAR else np.ones(len(truth.points), bool)
    points = np.where(modelled[:, None], truth.points, np.nan)  # NaN rows are left out
    return match_points(estimated, points, cutoff, dims=dims), modelled


def match_algorithm(est: Estimate, truth: Sequence[TruthPoints], *, dimensions: int,
                    cutoff: float) -> AlgorithmMatching:
    """:func:`match_snapshot` at every snapshot of ``est`` against ``truth`` (one
    :class:`TruthPoints` per snapshot)."""
    estimated, matchings, modelled = [], [], []
    for t, points in enumerate(truth):
        q = snapshot_scatterers(est, t)
        matching, is_modelled = match_snapshot(q, points, dimensions, cutoff)
        estimated.append(q)
        matchings.append(matching)
        modelled.append(is_modelled)
    return AlgorithmMatching(dimensions=dimensions, cutoff=float(cutoff),
                             estimated=tuple(estimated), matchings=tuple(matchings),
                             modelled=tuple(modelled))


def ue_errors(est: Estimate, true_position: FloatArray, dimensions: int) -> FloatArray:
    """``[snapshot]`` [m] UE position error in ``dimensions`` (2: horizontal, the height
    difference left out), NaN where the estimate did not converge."""
    error = np.linalg.norm((est.ue_position - true_position)[:, :dimensions], axis=1)
    return np.where(est.converged & np.isfinite(error), error, np.nan)


def ue_metrics(errors: FloatArray, dimensions: int) -> dict[str, Any] | None:
    """RMSE, median and 90th percentile [m] of the finite ``errors [snapshot]``; None
    when there is none."""
    e = errors[np.isfinite(errors)]
    if not e.size:
        return None
    return {
        "rmse_m": float(np.sqrt(np.mean(e**2))), "median_m": float(np.median(e)),
        "p90_m": float(np.percentile(e, 90)), "scored_in": scored_in(dimensions),
    }


WILD_ERROR_M = 5.0
"""A converged fix further than this [m] from the truth is *wild* (issue: "no confident
wild fix"): acceptable only when the covariance the estimator reports covers it."""
COVER_PROBABILITY = 0.99
"""A covariance *covers* an error when the error lies inside its region of this
probability (squared Mahalanobis distance below the chi-square quantile)."""
CALIBRATION_PROBABILITY = 0.95
"""The confidence region whose empirical coverage :func:`integrity_metrics` reports."""
CALIBRATION_BAND = (0.90, 0.98)
"""Coverage of the :data:`CALIBRATION_PROBABILITY` regions a calibrated estimator or
tracker is held to (neither over-confident nor needlessly conservative)."""
INTERVAL_PROBABILITY = 0.95
"""Probability of the exact (Clopper–Pearson) binomial interval put on a coverage: on the
10–20 snapshots of a drive its statistical noise is several percent, so a coverage is
judged by whether the interval reaches :data:`CALIBRATION_BAND`, not by its value."""


def coverage_interval(inside: int, total: int) -> tuple[float, float]:
    """The Clopper–Pearson interval of probability :data:`INTERVAL_PROBABILITY` on a
    coverage of ``inside`` regions holding the truth out of ``total``: the beta
    quantiles ``B(α/2; k, n−k+1)`` and ``B(1−α/2; k+1, n−k)`` (0 and 1 at the ends).

    References
    ----------
    Clopper & Pearson, "The use of confidence or fiducial limits illustrated in the case
    of the binomial", *Biometrika* 26 (1934).
    """
    from scipy.stats import beta

    if not 0 <= inside <= total or total < 1:
        raise ValueError(f"coverage_interval needs 0 <= inside <= total, total >= 1; got "
                         f"{inside}/{total}")
    alpha = 1 - INTERVAL_PROBABILITY
    low = 0.0 if inside == 0 else float(beta.ppf(alpha / 2, inside, total - inside + 1))
    high = (1.0 if inside == total
            else float(beta.ppf(1 - alpha / 2, inside + 1, total - inside)))
    return low, high


def calibration_verdict(inside: int, total: int) -> str:
    """``"over-confident"`` when the :func:`coverage_interval` lies wholly below
    :data:`CALIBRATION_BAND`, ``"conservative"`` when wholly above it, else
    ``"consistent"`` (with the band, at that statistical noise: not shown to be
    miscalibrated, which on a few snapshots is a weak claim)."""
    low, high = coverage_interval(inside, total)
    if high < CALIBRATION_BAND[0]:
        return "over-confident"
    if low > CALIBRATION_BAND[1]:
        return "conservative"
    return "consistent"


def mahalanobis_squared(est: Estimate, true_position: FloatArray,
                        dimensions: int) -> FloatArray:
    """``[snapshot]`` squared Mahalanobis distance of the error in ``dimensions`` under
    the reported ``position_covariance``; NaN where the fix did not converge or no
    (finite, positive definite) covariance was reported."""
    d = dimensions
    error = (est.ue_position - true_position)[:, :d]
    assert est.position_covariance is not None  # Estimate fills NaN
    cov = est.position_covariance[:, :d, :d]
    out = np.full(est.num_snapshots, np.nan)
    for t in range(est.num_snapshots):
        if not (est.converged[t] and np.all(np.isfinite(cov[t]))
                and np.all(np.isfinite(error[t]))):
            continue
        try:
            factor = np.linalg.cholesky(cov[t])
        except np.linalg.LinAlgError:
            continue
        z = np.linalg.solve(factor, error[t])
        out[t] = float(z @ z)
    return out


def integrity_metrics(est: Estimate, true_position: FloatArray, dimensions: int,
                      estimated: BoolArray | None = None) -> dict[str, Any]:
    """How honest the reported uncertainty is.

    ``wild``: converged fixes more than :data:`WILD_ERROR_M` off; ``confident_wild``: of
    those, the ones whose covariance does not cover the error at
    :data:`COVER_PROBABILITY` (or that report none): the fixes the issue forbids;
    ``with_covariance``: converged fixes with a covariance; ``coverage_95``: the fraction
    of those whose :data:`CALIBRATION_PROBABILITY` region contains the truth (about 0.95
    when calibrated; None without covariances), ``coverage_95_interval`` its
    :func:`coverage_interval` and ``calibration`` its :func:`calibration_verdict` (None
    without covariances); ``snapshot_coverage_95``: the same over
    every snapshot the estimator was run on, a snapshot without a fix or a covariance
    counting as one whose region misses the truth (what a tracker that reports every
    snapshot is held to). ``estimated [snapshot]``: the snapshots the estimator was run
    on (default: all).
    """
    from scipy.stats import chi2

    errors = ue_errors(est, true_position, dimensions)
    d2 = mahalanobis_squared(est, true_position, dimensions)
    ran = np.ones(est.num_snapshots, bool) if estimated is None else estimated
    wild = np.isfinite(errors) & (errors > WILD_ERROR_M)
    covered = np.isfinite(d2) & (d2 <= chi2.ppf(COVER_PROBABILITY, dimensions))
    reported = np.isfinite(d2)
    inside = reported & (d2 <= chi2.ppf(CALIBRATION_PROBABILITY, dimensions))
    return {
        "wild": int(wild.sum()), "confident_wild": int((wild & ~covered).sum()),
        "with_covariance": int(reported.sum()),
        "coverage_95": float(inside.sum() / reported.sum()) if reported.any() else None,
        "coverage_95_interval": (list(coverage_interval(int(inside.sum()), int(reported.sum())))
                                 if reported.any() else None),
        "calibration": (calibration_verdict(int(inside.sum()), int(reported.sum()))
                        if reported.any() else None),
        "snapshot_coverage_95": float(inside[ran].sum() / ran.sum()) if ran.any() else None,
    }


def map_metrics(matching: AlgorithmMatching, truth: Sequence[TruthPoints]) -> dict[str, Any]:
    """GOSPA (mean over snapshots) and its parts, matched RMSE, precision, recall,
    counts and per-object recall of one algorithm's matching against ``truth``."""
    totals = {"matched": 0, "missed": 0, "false": 0, "unmodelled": 0}
    g_values = []
    loc2: list[float] = []
    per_object: dict[str, dict[str, int]] = {}
    for t, points in enumerate(truth):
        m, modelled = matching.matchings[t], matching.modelled[t]
        totals["unmodelled"] += int((~modelled).sum())
        g = gospa(m, matching.cutoff)
        g_values.append(g)
        loc2.extend(m.distances**2)
        totals["matched"] += g.num_matched
        totals["missed"] += g.num_missed
        totals["false"] += g.num_false
        matched = matching.matched(t, len(points.points))
        for j in np.flatnonzero(modelled):
            row = per_object.setdefault(points.objects[j], {"truth": 0, "matched": 0})
            row["truth"] += 1
            row["matched"] += int(matched[j])
    n = totals["matched"]
    return {
        "gospa_m": float(np.mean([g.total for g in g_values])) if g_values else 0.0,
        "localization_m": float(np.mean([g.localization for g in g_values])),
        "missed_m": float(np.mean([g.missed for g in g_values])),
        "false_m": float(np.mean([g.false for g in g_values])),
        "matched_rmse_m": float(np.sqrt(np.mean(loc2))) if loc2 else None,
        "precision": n / (n + totals["false"]) if n + totals["false"] else 1.0,
        "recall": n / (n + totals["missed"]) if n + totals["missed"] else 1.0,
        **totals,
        "per_object": dict(sorted(per_object.items())),
    }


def fuse_points(points: npt.ArrayLike, radius: float) -> FloatArray:
    """Fuse scattered per-snapshot points into a map: greedy clustering within ``radius``.

    Each point joins the nearest cluster whose centroid is closer than ``radius`` (or
    starts one); returns the centroids ``[C, 3]`` in order of creation.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    sums: list[FloatArray] = []
    counts: list[int] = []
    for x in pts[np.all(np.isfinite(pts), axis=1)]:
        if sums:
            centres = np.asarray(sums) / np.asarray(counts)[:, None]
            d = np.linalg.norm(centres - x, axis=1)
            j = int(np.argmin(d))
            if d[j] < radius:
                sums[j] = sums[j] + x
                counts[j] += 1
                continue
        sums.append(x.copy())
        counts.append(1)
    return np.asarray(sums).reshape(-1, 3) / np.maximum(np.asarray(counts), 1)[:, None]


def fused_map_metrics(est: Estimate, truth: Sequence[TruthPoints], dimensions: int,
                      cutoff: float) -> dict[str, Any]:
    """The drive's fused map vs the landmarks (reflecting planes) seen along the drive.

    A landmark is found when a fused point lies within the cut-off of any of its
    ray-traced reflection points (``landmark_recall``); a fused point is correct when it
    lies within the cut-off of some landmark's points (``landmark_precision``: the share
    of correct points). A tracked estimate (``twin track``) reports its persistent
    landmarks at every snapshot, so its fused map is its landmark map.
    """
    by_landmark: dict[str, list[FloatArray]] = {}
    for points in truth:
        for k, landmark in enumerate(points.landmarks):
            if dimensions == SPATIAL or points.planar[k]:
                by_landmark.setdefault(landmark, []).append(points.points[k])
    estimated = [snapshot_scatterers(est, t) for t in range(est.num_snapshots)]
    fused = fuse_points(np.concatenate(estimated) if estimated else np.zeros((0, 3)),
                        cutoff / 2)
    found: dict[str, bool] = {}
    correct = np.zeros(len(fused), bool)
    for landmark, pts in by_landmark.items():
        cloud = np.asarray(pts)[:, :dimensions]
        if len(fused):
            d = np.linalg.norm(fused[:, None, :dimensions] - cloud[None], axis=-1).min(axis=1)
            near = d < cutoff
            correct |= near
            found[landmark] = bool(near.any())
        else:
            found[landmark] = False
    return {
        "landmarks": len(by_landmark), "landmarks_found": int(sum(found.values())),
        "fused_points": len(fused), "fused_correct": int(correct.sum()),
        "landmark_recall": sum(found.values()) / len(found) if found else 1.0,
        "landmark_precision": float(correct.mean()) if len(fused) else 1.0,
        "found": dict(sorted(found.items())),
    }


__all__ = [
    "PLANAR",
    "SPATIAL",
    "TRUTH_SETS",
    "AlgorithmMatching",
    "TruthPoints",
    "check_cutoff",
    "check_dimensions",
    "fuse_points",
    "fused_map_metrics",
    "integrity_metrics",
    "mahalanobis_squared",
    "map_metrics",
    "match_algorithm",
    "match_snapshot",
    "scored_in",
    "snapshot_scatterers",
    "truth_sets",
    "ue_errors",
    "ue_metrics",
]
