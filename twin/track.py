"""``twin track EST.h5 -o TRACKED.h5``: a drive's UE track and landmark map from the
per-snapshot estimates of ``twin estimate``.

Per algorithm of the estimate file (or those chosen): the converged fixes and their
reported covariances become a smoothed track (:mod:`twin.tracking.motion`: constant
velocity, gating, track initiation, RTS smoother; motion and noise scale from the data
unless given), and its scatterers of all snapshots a persistent landmark map
(:mod:`twin.tracking.landmarks`). The output is an estimate file like any other
(:mod:`twin.estimatefile`), one entry ``<algorithm>+track`` per algorithm, so
``twin evaluate`` and ``twin render`` score and draw it next to the raw estimates:

* ``ue_position``, ``position_covariance``: the smoothed track (in the estimator's
  dimensions; a 2-D method's height is the one its fixes carried), converged wherever a
  track exists and has used a fix within
  :data:`~twin.tracking.motion.COAST` snapshots;
* ``scatterers [T, L, 3]``, ``scatterer_valid``, ``scatterer_covariance``: the ``L``
  confirmed landmarks, each known from its first detection on;
* ``diagnostics``: ``fix_status`` (:class:`twin.tracking.motion.FixStatus`: 0 no fix,
  1 used, 2 rejected by the gate, 3 started a track), ``track_segment``,
  ``landmarks_known``;
* ``params``: the tracker's options, the motion and noise scale it used, the landmark
  detection noise, and the source algorithm's estimator and parameters;
* ``bound``: the source's per-snapshot bound, unchanged (a track fuses snapshots and
  may go below it).

The snapshot times come from the estimate file (schema 2.2) or, for an older file, from
its run file (``--run``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from estimators import Estimate
from estimators.typing import FloatArray
from twin.errors import TwinInputError
from twin.estimatefile import (
    EstimateFile,
    Provenance,
    StoredBound,
    check_same_run,
    is_estimate_file,
    read_estimates,
    select_estimated,
    write_estimates,
)
from twin.outputs import Artifact, check_output
from twin.runfile import read_run
from twin.tracking.landmarks import LandmarkMap, map_landmarks
from twin.tracking.motion import COAST, CONFIRM, Fixes, Track, track_fixes

SUFFIX = "+track"
"""What ``twin track`` appends to an algorithm's name."""
ESTIMATOR = "twin.track (constant-velocity Kalman filter, gating, RTS smoother; landmarks)"


def is_track_file(path: Path) -> bool:
    """Whether ``path`` is an estimate file ``twin track`` wrote (metadata only)."""
    if not is_estimate_file(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            return "tracked_from" in f["config"].attrs
    except (OSError, KeyError, ValueError):
        return False


#: What ``twin track`` writes (``--overwrite`` replaces only this, never a raw estimate).
TRACK_FILE = Artifact("twin track file", "twin track", is_track_file)


def _times(estimates: Path, est: EstimateFile, run_path: Path | None) -> FloatArray:
    if run_path is not None:
        run = read_run(run_path)
        check_same_run(run_path, run, estimates, est)
        return np.asarray(run.drive.time, dtype=np.float64)
    if est.snapshot_time is None:
        raise TwinInputError(
            f"{estimates}: no snapshot times (estimate schema {est.schema_version}); "
            "pass its run file with --run")
    return est.snapshot_time


def _check_options(motion_std: float | None, gate: float) -> None:
    if motion_std is not None and not (np.isfinite(motion_std) and motion_std > 0):
        raise TwinInputError(f"--motion-std: must be a positive acceleration [m/s²], "
                             f"got {motion_std}")
    if not 0 < gate < 1:
        raise TwinInputError(f"--gate: must be a probability in (0, 1), got {gate}")


def track_estimate(est: Estimate, times: FloatArray, dimensions: int, *,
                   motion_std: float | None = None, gate: float = 0.99
                   ) -> tuple[Estimate, Track, LandmarkMap]:
    """One algorithm's estimate → its tracked estimate (the module docstring's layout),
    with the :class:`~twin.tracking.motion.Track` and
    :class:`~twin.tracking.landmarks.LandmarkMap` behind it."""
    start = time.perf_counter()
    d = dimensions
    assert est.position_covariance is not None  # Estimate fills NaN
    fixes = Fixes.from_estimates(times, est.ue_position, est.position_covariance,
                                 est.converged, d)
    track = track_fixes(fixes, motion_std=motion_std, gate=gate)
    T = est.num_snapshots
    position = np.full((T, 3), np.nan)
    position[:, :d] = track.position
    covariance = np.full((T, 3, 3), np.nan)
    covariance[:, :d, :d] = track.covariance
    if d == 2:  # the height the 2-D method's fixes carried (its known UE height)
        heights = est.ue_position[est.converged, 2]
        heights = heights[np.isfinite(heights)]
        position[track.tracked, 2] = np.median(heights) if len(heights) else np.nan
    landmarks = map_landmarks(est.scatterers, est.scatterer_valid & est.converged[:, None],
                              position, dimensions=d, gate=gate)
    tracked = track.tracked
    reason = (f"track lost: no fix used within {COAST} snapshots" if tracked.any() else
              f"no track: fewer than {CONFIRM} consecutive fixes agree anywhere in the drive")
    elapsed = time.perf_counter() - start
    tracked_est = Estimate(
        ue_position=position, ue_yaw=np.where(est.converged, est.ue_yaw, np.nan),
        scatterers=landmarks.position, scatterer_valid=landmarks.known
        & np.all(np.isfinite(landmarks.position), axis=-1),
        path_tau=np.zeros((T, 0)), path_aod=np.zeros((T, 0, 2)),
        path_gain=np.zeros((T, 0), np.complex128), converged=tracked,
        reason=tuple("" if ok else reason for ok in tracked),
        runtime_s=np.full(T, elapsed / max(T, 1)),
        diagnostics={"fix_status": track.status.astype(np.float64),
                     "track_segment": track.segment.astype(np.float64),
                     "landmarks_known": landmarks.known.sum(axis=1).astype(np.float64)},
        position_covariance=covariance, scatterer_covariance=landmarks.covariance,
    )
    return tracked_est, track, landmarks


def track_file(
    estimates: str | Path,
    output: str | Path,
    *,
    algorithms: str | Sequence[str] | None = None,
    motion_std: float | None = None,
    gate: float = 0.99,
    run: str | Path | None = None,
    overwrite: bool = False,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Estimate]:
    """Track every (or each chosen) algorithm of an estimate file; write the tracked
    estimates (``<algorithm>+track``) to ``output``.

    Parameters
    ----------
    estimates : an estimate file of ``twin estimate``.
    output : the tracked estimate file to write.
    algorithms : ``"a,b"`` or a sequence; default every algorithm of the file.
    motion_std : [m/s²] the white-noise acceleration; None: from the data.
    gate : probability of the gates (fixes and landmark detections).
    run : the run file, for the snapshot times of an estimate file older than schema 2.2.
    overwrite : replace an existing tracked file (never a raw estimate file).
    on_progress : ``(algorithm, done, total)``, called with 0 before an algorithm is
        tracked and 1 after.

    Raises
    ------
    TwinInputError
        One line: an option out of range, an unreadable or already tracked estimate
        file, an unknown algorithm, missing snapshot times, an existing output.
    """
    estimates, output = Path(estimates), Path(output)
    _check_options(motion_std, gate)
    run_path = None if run is None else Path(run)
    check_output(output, TRACK_FILE, overwrite=overwrite,
                 inputs=[estimates, *([run_path] if run_path else [])])
    est = read_estimates(estimates)
    if est.tracked_from is not None:
        raise TwinInputError(f"{estimates}: already tracked (from {est.tracked_from}); "
                             "track the estimate file of twin estimate")
    names = select_estimated(algorithms, list(est.estimates), str(estimates))
    times = _times(estimates, est, run_path)
    if len(times) != est.run_num_snapshots:
        raise TwinInputError(f"{estimates}: {len(times)} snapshot times for "
                             f"{est.run_num_snapshots} snapshots")
    if np.any(~np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise TwinInputError(f"{estimates}: snapshot times are not strictly increasing")
    results: dict[str, Estimate] = {}
    provenance: dict[str, Provenance] = {}
    bounds: dict[str, StoredBound] = {}
    dims: dict[str, int] = {}
    for name in names:
        if on_progress is not None:
            on_progress(name, 0, 1)
        d = est.position_dimensions[name]
        tracked, track, landmarks = track_estimate(est.estimates[name], times, d,
                                                   motion_std=motion_std, gate=gate)
        if on_progress is not None:
            on_progress(name, 1, 1)
        key = name + SUFFIX
        results[key] = tracked
        dims[key] = d
        params: dict[str, Any] = {
            "motion_std": motion_std, "gate": gate,
            "used": {"motion_std": track.motion_std, "noise_scale": track.noise_scale,
                     "residual_scale": track.residual_scale,
                     "effective_hypotheses": track.effective_hypotheses,
                     "landmark_sigma": landmarks.sigma, "segments": int(track.segment.max()) + 1,
                     "landmarks": landmarks.num_landmarks},
            "source": {"algorithm": name, "estimator": est.estimator.get(name, ""),
                       "params": est.params.get(name, {})},
        }
        provenance[key] = Provenance(params=params, sounding=est.sounding.get(name, {}),
                                     estimator=ESTIMATOR)
        if name in est.bounds:
            bounds[key] = est.bounds[name]
    write_estimates(output, header=est.header(snapshot_time=times,
                                              tracked_from=estimates.name),
                    provenance=provenance, results=results, position_dimensions=dims,
                    bounds=bounds)
    return results


__all__ = ["SUFFIX", "TRACK_FILE", "is_track_file", "track_estimate", "track_file"]
