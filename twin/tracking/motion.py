"""The UE track of a drive from its per-snapshot fixes: a constant-velocity Kalman
filter with gating, track initiation and re-initiation, and a Rauch–Tung–Striebel
smoother.

Model (Bar-Shalom, Li & Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, §6.3.3 and §8.6): state ``[position (d), velocity (d)]``, ``d`` the
dimensions the estimator localizes in (2: the horizontal plane, 3), transition
``F(Δt) = [[I, Δt I], [0, I]]`` over the run's snapshot times, process noise the
discrete white-noise acceleration of standard deviation ``motion_std`` [m/s²]
(:func:`filterpy.common.Q_discrete_white_noise`); a fix is a measurement of the position
with the covariance its estimator reported, times ``noise_scale`` (≥ 1).

* **Gating.** A fix whose normalized innovation squared exceeds the chi-square
  quantile of ``gate`` (``d`` degrees of freedom) is rejected: the track is predicted
  through it. Snapshots without a usable fix (not converged, no finite positive
  definite covariance) are predicted, not used.
* **Initiation (3/3 logic).** A track starts at three consecutive usable fixes that
  agree: a two-point initialization from the first two (§3.2.3 of Bar-Shalom et al.:
  the velocity their difference over the time between them) whose prediction gates the
  third. Snapshots before the first track are extrapolated back from it.
* **Re-initiation.** Three consecutive rejected fixes that agree among themselves (the
  same test) start a new track; the old one ends at the first fix of that run of
  rejections (from there it was coasting) and the new one is extrapolated back to it:
  a manoeuvre the motion model cannot follow, or a track that had locked onto a run of
  wrong fixes, is not followed by gating forever. A single or sporadic outlier never
  does this.
* **Parameters from the data.** ``motion_std`` and ``noise_scale`` left as None are
  chosen by maximum likelihood over the innovations of the gated filter (each fix's
  likelihood a mixture: the prediction's Gaussian, or with probability ``1 - gate`` an
  outlier equally likely anywhere in the fixes' bounding box; a fix no track explains
  is an outlier; coordinate search over logarithmic grids). ``noise_scale`` below 1 is
  never chosen: the track is never more confident than the estimator; ``motion_std`` below
  :data:`MOTION_STD_FLOOR` neither: what the fixes cannot show (a turn where they are
  missing) is not taken to be absent.
* **Smoothing.** Each track segment is smoothed by the RTS smoother
  (:meth:`filterpy.kalman.KalmanFilter.rts_smoother`); its covariance is what the
  tracked estimate reports.
* **Honest spread.** The smoothed covariance is widened by the smoothed residuals'
  Birge ratio (mean normalized square of ``z - x_s`` under its covariance ``R - P_s``,
  per dimension) where it exceeds 1: what the model does not hold (errors several
  fixes share, a manoeuvre it smooths over) shows there and is not hidden.
* **The parameters' own uncertainty.** Where they were chosen from the data, each
  snapshot's covariance is the likelihood-weighted second moment, about the track, of
  the tracks under every value on the two grids through the chosen point
  (:func:`_average_parameters`): a short drive rarely singles out one motion noise, and
  the tracks it does not rule out differ by what the one track would hide.
* **Manoeuvres between fixes.** A snapshot without a used fix has its covariance widened
  by the distance the UE covers from the nearest used fix (``(|v| τ)²`` a dimension):
  the prediction is a straight line, and a UE that turned is off it by up to that.
* **Coasting.** A snapshot more than :data:`COAST` snapshots from every fix its segment
  used gets no position (the track is lost there, until a fix is used again).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter
from filterpy.kalman import predict as kf_predict
from filterpy.kalman import update as kf_update
from scipy.stats import chi2

from estimators.typing import BoolArray, FloatArray

MOTION_STD_FLOOR = 0.1
"""[m/s²] The least motion noise the maximum-likelihood search considers: a pedestrian's
or a car's turn at a corner. Fixes along a straight stretch would otherwise choose a
near-zero motion noise and coast straight on, confidently, through a corner where the
fixes are missing."""
#: Candidate motion standard deviations [m/s²] of the maximum-likelihood search.
MOTION_STD_GRID = np.geomspace(MOTION_STD_FLOOR, 1e2, 16)
#: Candidate scales of the reported fix covariance (≥ 1) of the search.
NOISE_SCALE_GRID = np.geomspace(1.0, 1e4, 17)
#: Coordinate-search sweeps (motion, then noise) of the maximum-likelihood search.
SEARCH_SWEEPS = 3
#: Consecutive fixes that must agree to start a track (two-point start + one gated).
CONFIRM = 3
COAST = 3
"""Snapshots a track may extrapolate from its nearest used fix (before or after it);
beyond, the track is lost there (the motion model alone says where the UE went, and a
turn it cannot know of makes that a confident wild guess)."""


class FixStatus(IntEnum):
    """What the tracker did with each snapshot's fix."""

    NO_FIX = 0
    """No usable fix: predicted."""
    USED = 1
    """The fix passed the gate and updated the track."""
    REJECTED = 2
    """The fix fell outside the gate (or no track explains it): predicted through it."""
    INITIATED = 3
    """One of the fixes that started a track."""


@dataclass(frozen=True)
class Fixes:
    """Per-snapshot fixes of one estimator, the tracker's input.

    Attributes
    ----------
    time : ``[snapshot]`` [s], increasing.
    position : ``[snapshot, d]`` [m].
    covariance : ``[snapshot, d, d]`` [m²], as reported.
    usable : ``[snapshot]`` a converged fix with a finite, positive definite covariance.
    """

    time: FloatArray
    position: FloatArray
    covariance: FloatArray
    usable: BoolArray

    @classmethod
    def from_estimates(cls, time: npt.ArrayLike, position: npt.ArrayLike,
                       covariance: npt.ArrayLike, converged: npt.ArrayLike,
                       dimensions: int) -> Fixes:
        """The first ``dimensions`` coordinates of an estimate's fixes; a fix is usable
        where it converged and its covariance is finite and positive definite."""
        d = dimensions
        t = np.asarray(time, dtype=np.float64)
        if t.ndim != 1 or np.any(~np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise ValueError("snapshot times must be finite and strictly increasing")
        z = np.asarray(position, dtype=np.float64)[:, :d]
        cov = np.asarray(covariance, dtype=np.float64)[:, :d, :d]
        usable = np.asarray(converged, dtype=bool) & np.all(np.isfinite(z), axis=1)
        usable &= np.all(np.isfinite(cov), axis=(1, 2))
        for k in np.flatnonzero(usable):
            try:
                np.linalg.cholesky(cov[k])
            except np.linalg.LinAlgError:
                usable[k] = False
        return cls(t, z, cov, usable)

    @property
    def dimensions(self) -> int:
        return int(self.position.shape[1])


@dataclass(frozen=True)
class Track:
    """The tracker's output for one estimator.

    Attributes
    ----------
    position : ``[snapshot, d]`` [m] smoothed (NaN where no track exists: fewer than
        :data:`CONFIRM` agreeing fixes in the whole drive).
    velocity : ``[snapshot, d]`` [m/s] smoothed.
    covariance : ``[snapshot, d, d]`` [m²] of ``position``.
    status : ``[snapshot]`` :class:`FixStatus` of each snapshot's fix.
    segment : ``[snapshot]`` the track segment each snapshot belongs to (-1: none, or
        the track is lost there: :data:`COAST`).
    motion_std : [m/s²] and ``noise_scale``: the parameters used (given or chosen).
    residual_scale : the factor (≥ 1) the smoothed covariances were widened by: the
        smoothed residuals' Birge ratio.
    log_likelihood : of the gated innovations under those parameters.
    effective_hypotheses : ``1 / Σ w²`` of the likelihood weights of the parameter
        values whose tracks the covariance averages over (1: the chosen values alone,
        or both parameters given).
    """

    position: FloatArray
    velocity: FloatArray
    covariance: FloatArray
    status: npt.NDArray[np.int8]
    segment: npt.NDArray[np.int64]
    motion_std: float
    noise_scale: float
    residual_scale: float
    log_likelihood: float
    effective_hypotheses: float

    @property
    def tracked(self) -> BoolArray:
        """``[snapshot]``: where a track gives a position."""
        return np.asarray(self.segment >= 0)


@lru_cache(maxsize=256)
def transition(dt: float, d: int) -> tuple[FloatArray, FloatArray]:
    """``F [2d, 2d]`` and ``Q [2d, 2d]`` per unit acceleration variance over ``dt`` [s]
    (state ``[position, velocity]``; ``dt`` may be negative for extrapolating back, the
    noise grows with ``|dt|``). Read-only and cached: a drive's snapshots share a few
    intervals, and the parameter search runs the filter thousands of times over them."""
    F = np.eye(2 * d)
    F[:d, d:] = dt * np.eye(d)
    Q = np.array(Q_discrete_white_noise(dim=2, dt=abs(dt), var=1.0, block_size=d,
                                        order_by_dim=False), dtype=np.float64)
    F.setflags(write=False)
    Q.setflags(write=False)
    return F, Q


@dataclass
class _Segment:
    start: int  # first snapshot of the segment (the second fix of its initiation)
    x: list[FloatArray]  # filtered states from ``start`` on
    P: list[FloatArray]
    F: list[FloatArray]  # transition into each step (identity at ``start``)
    Q: list[FloatArray]
    backfill: list[int]  # snapshots before ``start`` extrapolated from it


class _Pass:
    """One forward pass of the gated filter over the fixes (internal)."""

    def __init__(self, fixes: Fixes, motion_std: float, noise_scale: float, gate: float):
        self.z = fixes.position
        self.R = fixes.covariance * noise_scale
        self.t = fixes.time
        self.usable = fixes.usable
        self.d = fixes.dimensions
        self.var = motion_std**2
        self.gate = float(chi2.ppf(gate, self.d))
        # The likelihood of a fix: a mixture of the prediction's Gaussian and an outlier
        # equally likely anywhere the fixes fall (one over the volume of their bounding
        # box, sides of at least a metre), whatever the motion noise and noise scale: an
        # outlier density that shrank with the prediction's covariance would make
        # rejecting fixes, and restarting tracks, cheap.
        # A fix is an outlier with the probability 1 - gate, a priori.
        spread = np.ptp(self.z[self.usable], axis=0) if self.usable.any() else np.ones(self.d)
        self.log_outlier = float(np.log1p(-gate) - np.sum(np.log(np.maximum(spread, 1.0))))
        self.log_inlier = float(np.log(gate))
        self.H = np.hstack([np.eye(self.d), np.zeros((self.d, self.d))])

    def model(self, dt: float) -> tuple[FloatArray, FloatArray]:
        F, Q = transition(float(dt), self.d)
        return F, Q * self.var

    def start(self, i: int, j: int) -> tuple[FloatArray, FloatArray]:
        """Two-point initialization at ``j`` from the fixes ``i`` and ``j``."""
        d, dt = self.d, self.t[j] - self.t[i]
        x = np.concatenate([self.z[j], (self.z[j] - self.z[i]) / dt])
        P = np.zeros((2 * d, 2 * d))
        P[:d, :d] = self.R[j]
        P[:d, d:] = P[d:, :d] = self.R[j] / dt
        P[d:, d:] = (self.R[i] + self.R[j]) / dt**2
        return x, P

    def innovation(self, x: FloatArray, P: FloatArray, k: int) -> tuple[float, float]:
        """Normalized innovation squared of fix ``k`` and its Gaussian log-density."""
        y = self.z[k] - x[: self.d]
        S = P[: self.d, : self.d] + self.R[k]
        nis = float(y @ np.linalg.solve(S, y))
        _, logdet = np.linalg.slogdet(2 * np.pi * S)
        return nis, -0.5 * (nis + logdet)

    def agree(self, triple: list[int]) -> bool:
        i, j, k = triple
        x, P = self.start(i, j)
        F, Q = self.model(self.t[k] - self.t[j])
        x, P = kf_predict(x, P, F, Q)
        return self.innovation(x, P, k)[0] <= self.gate

    def run(self) -> tuple[list[_Segment], npt.NDArray[np.int8], float]:
        """Segments, per-snapshot status, log-likelihood of the gated innovations."""
        T = len(self.t)
        status = np.zeros(T, np.int8)
        segments: list[_Segment] = []
        loglik = 0.0
        pending: list[int] = []  # usable fixes not explained by the current track
        seg: _Segment | None = None
        for k in range(T):
            if seg is not None:
                F, Q = self.model(self.t[k] - self.t[k - 1])
                x, P = kf_predict(seg.x[-1], seg.P[-1], F, Q)
            if not self.usable[k]:
                if seg is not None:
                    seg.x.append(x)
                    seg.P.append(P)
                    seg.F.append(F)
                    seg.Q.append(Q)
                continue
            if seg is not None:
                nis, logpdf = self.innovation(x, P, k)
                loglik += float(np.logaddexp(self.log_inlier + logpdf, self.log_outlier))
                if nis <= self.gate:
                    x, P = kf_update(x, P, self.z[k], self.R[k], self.H)
                    status[k] = FixStatus.USED
                    pending.clear()
                else:
                    status[k] = FixStatus.REJECTED
                    pending.append(k)
                seg.x.append(x)
                seg.P.append(P)
                seg.F.append(F)
                seg.Q.append(Q)
            else:
                status[k] = FixStatus.REJECTED  # until it starts a track
                loglik += self.log_outlier
                pending.append(k)
            if len(pending) >= CONFIRM and self.agree(pending[-CONFIRM:]):
                i, j, k3 = pending[-CONFIRM:]
                # The old track ends at the first fix it could not explain: from there
                # on it was coasting, and the new track, extrapolated back, takes over.
                first = pending[0] if seg is not None else i
                if seg is not None:
                    keep = first - seg.start
                    for lst in (seg.x, seg.P, seg.F, seg.Q):
                        del lst[keep:]
                seg = self._initiate(i, j, k3, status, backfill_from=first)
                segments.append(seg)
                pending.clear()
        return segments, status, loglik

    def _initiate(self, i: int, j: int, k: int, status: npt.NDArray[np.int8], *,
                  backfill_from: int) -> _Segment:
        """A new segment from the agreeing fixes ``i, j, k``, filtered up to ``k``; the
        snapshots from ``backfill_from`` to ``j`` are extrapolated back from it."""
        x, P = self.start(i, j)
        seg = _Segment(start=j, x=[x], P=[P], F=[np.eye(2 * self.d)],
                       Q=[np.zeros((2 * self.d, 2 * self.d))],
                       backfill=list(range(backfill_from, j)))
        for m in range(j + 1, k + 1):
            F, Q = self.model(self.t[m] - self.t[m - 1])
            x, P = kf_predict(seg.x[-1], seg.P[-1], F, Q)
            if m == k:
                x, P = kf_update(x, P, self.z[k], self.R[k], self.H)
            seg.x.append(x)
            seg.P.append(P)
            seg.F.append(F)
            seg.Q.append(Q)
        status[[i, j, k]] = FixStatus.INITIATED
        return seg


def _choose(fixes: Fixes, motion_std: float | None, noise_scale: float | None,
            gate: float) -> tuple[float, float]:
    """Maximum-likelihood ``(motion_std, noise_scale)`` for the ones left None."""
    sigma = MOTION_STD_FLOOR if motion_std is None else motion_std
    scale = 1.0 if noise_scale is None else noise_scale

    def loglik(s: float, c: float) -> float:
        segments, _, value = _Pass(fixes, s, c, gate).run()
        return value if segments else -np.inf

    for _ in range(SEARCH_SWEEPS if motion_std is None and noise_scale is None else 1):
        if motion_std is None:
            sigma = float(max(MOTION_STD_GRID, key=lambda s: loglik(s, scale)))
        if noise_scale is None:
            scale = float(max(NOISE_SCALE_GRID, key=lambda c: loglik(sigma, c)))
    return sigma, scale


def _allow_manoeuvres(time: FloatArray, status: npt.NDArray[np.int8],
                      segment: npt.NDArray[np.int64], velocity: FloatArray,
                      covariance: FloatArray) -> None:
    """Widen (in place) the covariance of each snapshot without a used fix by the
    distance the UE covers from its nearest used fix: ``(|v| τ)²`` a dimension, ``v``
    the smoothed velocity at that fix, ``τ`` the time to it. The constant-velocity
    prediction is a straight line; a UE that turned (90° at a corner, where fixes are
    typically missing) is off it by up to ``√2 |v| τ``, which this keeps inside the
    reported region."""
    used = np.isin(status, (FixStatus.USED, FixStatus.INITIATED))
    d = velocity.shape[1]
    for n in np.unique(segment[segment >= 0]):
        members = np.flatnonzero(segment == n)
        anchors = members[used[members]]
        if not len(anchors):
            continue
        gap = np.abs(time[members][:, None] - time[anchors][None])
        nearest = anchors[np.argmin(gap, axis=1)]
        travel = np.linalg.norm(velocity[nearest], axis=1) * gap.min(axis=1)
        covariance[members] += (travel**2)[:, None, None] * np.eye(d)


def _drop_coasting(status: npt.NDArray[np.int8], segment: npt.NDArray[np.int64],
                   *arrays: FloatArray) -> None:
    """Un-track (in place) the snapshots more than :data:`COAST` snapshots from every
    fix their segment used."""
    used = np.isin(status, (FixStatus.USED, FixStatus.INITIATED))
    for n in np.unique(segment[segment >= 0]):
        members = np.flatnonzero(segment == n)
        anchors = members[used[members]]
        gap = np.abs(members[:, None] - anchors[None]).min(axis=1)
        lost = members[gap > COAST]
        segment[lost] = -1
        for a in arrays:
            a[lost] = np.nan


def track_fixes(fixes: Fixes, *, motion_std: float | None = None,
                noise_scale: float | None = None, gate: float = 0.99) -> Track:
    """Track a drive's fixes (the module docstring's model), smoothed.

    Parameters
    ----------
    fixes : the per-snapshot fixes and their covariances.
    motion_std : [m/s²] standard deviation of the white-noise acceleration; None: the
        maximum-likelihood value on :data:`MOTION_STD_GRID`.
    noise_scale : factor (≥ 1) on the reported fix covariances; None: maximum
        likelihood on :data:`NOISE_SCALE_GRID`.
    gate : probability of the gate (a fix outside this confidence region of the
        prediction is rejected).

    Returns
    -------
    :class:`Track`; where fewer than :data:`CONFIRM` fixes ever agree, no snapshot is
    tracked (``segment == -1``, positions NaN). Its covariance holds the parameters'
    own uncertainty where they were chosen from the data: :func:`_average_parameters`.

    References
    ----------
    Bar-Shalom, Li, Kirubarajan (2001): CV model §6.3.3, two-point initialization §3.2.3,
    gating §7.4, RTS smoother §8.6.
    """
    if not 0 < gate < 1:
        raise ValueError(f"gate must be a probability in (0, 1), got {gate}")
    for name, value in (("motion_std", motion_std), ("noise_scale", noise_scale)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive, got {value}")
    sigma, scale = _choose(fixes, motion_std, noise_scale, gate)
    track = _smoothed(fixes, sigma, scale, gate)
    hypotheses = ([(float(s), scale) for s in MOTION_STD_GRID] if motion_std is None else [])
    hypotheses += [(sigma, float(c)) for c in NOISE_SCALE_GRID] if noise_scale is None else []
    if not hypotheses or not track.tracked.any():
        return track
    return _average_parameters(track, [_smoothed(fixes, s, c, gate)
                                       for s, c in dict.fromkeys(hypotheses)
                                       if (s, c) != (sigma, scale)])


def _smoothed(fixes: Fixes, sigma: float, scale: float, gate: float) -> Track:
    """The smoothed track under the motion noise ``sigma`` and the noise scale
    ``scale`` (the module docstring's model)."""
    forward = _Pass(fixes, sigma, scale, gate)
    segments, status, loglik = forward.run()
    T, d = len(fixes.time), fixes.dimensions
    position = np.full((T, d), np.nan)
    velocity = np.full((T, d), np.nan)
    covariance = np.full((T, d, d), np.nan)
    segment = np.full(T, -1, np.int64)
    smoother = KalmanFilter(dim_x=2 * d, dim_z=d)
    for n, seg in enumerate(segments):
        xs, Ps, _, _ = smoother.rts_smoother(np.asarray(seg.x), np.asarray(seg.P),
                                             Fs=seg.F, Qs=seg.Q)
        steps = range(seg.start, seg.start + len(xs))
        position[steps], velocity[steps] = xs[:, :d], xs[:, d:]
        covariance[steps] = Ps[:, :d, :d]
        segment[steps] = n
        # Extrapolated back from the segment's first smoothed state: the fixes that
        # started it, and for the first segment every snapshot before it.
        for k in range(seg.start) if n == 0 else seg.backfill:
            F, Q = forward.model(fixes.time[k] - fixes.time[seg.start])
            x = F @ xs[0]
            P = F @ Ps[0] @ F.T + Q
            position[k], velocity[k], covariance[k] = x[:d], x[d:], P[:d, :d]
            segment[k] = n
    residual_scale = _residual_scale(fixes, forward.R, status, segment, segments, position,
                                     covariance)
    covariance *= residual_scale
    _allow_manoeuvres(fixes.time, status, segment, velocity, covariance)
    _drop_coasting(status, segment, position, velocity, covariance)
    return Track(position=position, velocity=velocity, covariance=covariance,
                 status=status, segment=segment, motion_std=sigma, noise_scale=scale,
                 residual_scale=residual_scale, log_likelihood=float(loglik),
                 effective_hypotheses=1.0)


def _average_parameters(track: Track, others: list[Track]) -> Track:
    """``track`` (the maximum-likelihood parameters') with each tracked snapshot's
    covariance replaced by the second moment about its position of the tracks under
    every parameter value on the grids through the chosen point (``others``), each
    weighted by its likelihood (uniform prior on the grids' logarithmic steps) and by
    whether it tracks that snapshot: ``Σ w_h (P_h + (x_h - x)(x_h - x)ᵀ) / Σ w_h``.

    On a drive of a few dozen fixes the likelihood singles out neither parameter
    sharply (an error several fixes share looks like motion; a smooth stretch like
    little noise), and the one track the chosen values give is more confident than
    the data allow: the tracks the data do not rule out differ by as much as the
    errors. Where the likelihood is peaked (a long drive that follows the model) the
    weights fall on the chosen values and the covariance is the plain smoother's.
    Bayesian model averaging over the parameters (Hoeting et al., "Bayesian model
    averaging: a tutorial", Stat. Sci. 14(4), 1999), along the two axes of the grid
    through the maximum rather than over the whole grid."""
    members = [track, *others]
    # A value under which no track starts explains no fix: it carries no weight.
    loglik = np.array([m.log_likelihood if m.tracked.any() else -np.inf for m in members])
    weight = np.exp(loglik - loglik.max())
    weight /= weight.sum()
    covariance = track.covariance.copy()
    for k in np.flatnonzero(track.tracked):
        moment, total = np.zeros_like(covariance[k]), 0.0
        for w, m in zip(weight, members, strict=True):
            if w > 0 and m.tracked[k]:
                dx = m.position[k] - track.position[k]
                moment += w * (m.covariance[k] + np.outer(dx, dx))
                total += w
        covariance[k] = moment / total
    return replace(track, covariance=covariance,
                   effective_hypotheses=float(1.0 / np.sum(weight**2)))


def _residual_scale(fixes: Fixes, R: FloatArray, status: npt.NDArray[np.int8],
                    segment: npt.NDArray[np.int64], segments: list[_Segment],
                    position: FloatArray, covariance: FloatArray) -> float:
    """The smoothed residuals' mean normalized square per dimension (Birge ratio), at
    least 1: a smoothed residual ``z - x_s`` of a used fix has covariance
    ``R - P_s``, so the ratio is 1 when the model holds and grows with what it misses
    (errors the fixes share over a stretch, a manoeuvre)."""
    values = []
    used = np.isin(status, (FixStatus.USED, FixStatus.INITIATED))
    for k in np.flatnonzero(used & (segment >= 0)):
        if k < segments[segment[k]].start:  # extrapolated back, not smoothed over
            continue
        r = fixes.position[k] - position[k]
        C = R[k] - covariance[k]
        try:
            factor = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            continue
        w = np.linalg.solve(factor, r)
        values.append(float(w @ w) / fixes.dimensions)
    return max(1.0, float(np.mean(values))) if values else 1.0


__all__ = ["COAST", "CONFIRM", "MOTION_STD_FLOOR", "MOTION_STD_GRID", "NOISE_SCALE_GRID",
           "FixStatus", "Fixes", "Track", "track_fixes", "transition"]
