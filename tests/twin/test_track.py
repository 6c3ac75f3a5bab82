"""``twin track``: the drive tracker and the landmark map (:mod:`twin.tracking`), on
synthetic drives whose truth is known in closed form, and the command end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from scipy.stats import chi2

from estimators import Estimate
from tests.twin.test_cli import assert_one_line_error, run_twin
from twin.errors import TwinInputError
from twin.estimatefile import EstimateHeader, Provenance, read_estimates, write_estimates
from twin.track import SUFFIX, track_file
from twin.tracking.landmarks import map_landmarks
from twin.tracking.motion import COAST, Fixes, FixStatus, track_fixes, transition

GATE = 0.99
PERIOD_S = 0.5


def l_drive(T: int = 40, speed: float = 10.0, leg: float = 100.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Snapshot times [s] and positions [m] of a drive along x that turns sharply (90°)
    into y after ``leg`` metres."""
    t = np.arange(T) * PERIOD_S
    s = speed * t
    return t, np.where(s[:, None] < leg, np.c_[s, 0 * s], np.c_[np.full_like(s, leg), s - leg])


def noisy_fixes(rng: np.random.Generator, truth: np.ndarray, sigma: float
                ) -> tuple[np.ndarray, np.ndarray]:
    T, d = truth.shape
    return truth + rng.normal(0.0, sigma, truth.shape), np.tile(np.eye(d) * sigma**2, (T, 1, 1))


def mahalanobis2(position: np.ndarray, covariance: np.ndarray, truth: np.ndarray) -> np.ndarray:
    e = position - truth
    return np.einsum("ti,tij,tj->t", e, np.linalg.inv(covariance), e)


def rmse(position: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((position - truth) ** 2, axis=1))))


def test_outliers_rejected_and_rmse_within_20_percent_of_the_clean_track() -> None:
    """Four wild fixes (10–30 m off, each reporting the honest 0.5 m covariance) in 40:
    the gate rejects exactly them, and over 12 drives the track's RMSE is within 20 % of
    the same drives' track without them (the issue's margin)."""
    t, truth = l_drive()
    clean_sq, dirty_sq = [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        z, cov = noisy_fixes(rng, truth, 0.5)
        clean = track_fixes(Fixes(t, z, cov, np.ones(len(t), bool)), gate=GATE)
        bad = rng.choice(np.arange(3, len(t)), 4, replace=False)
        wild = z.copy()
        wild[bad] += rng.choice([-1.0, 1.0], (4, 2)) * rng.uniform(10.0, 30.0, (4, 2))
        dirty = track_fixes(Fixes(t, wild, cov, np.ones(len(t), bool)), gate=GATE)
        assert set(bad) <= set(np.flatnonzero(dirty.status == FixStatus.REJECTED))
        clean_sq.append(rmse(clean.position, truth) ** 2)
        dirty_sq.append(rmse(dirty.position, truth) ** 2)
    ratio = np.sqrt(np.mean(dirty_sq) / np.mean(clean_sq))
    assert ratio < 1.2, ratio
    assert np.sqrt(np.mean(clean_sq)) < 0.5  # the track beats a single 0.5 m fix


def test_sharp_corner_no_overshoot_beyond_the_reported_region() -> None:
    """A 90° turn at 10 m/s, which no constant-velocity model follows: at every snapshot
    the truth lies inside the track's 99 % region (the overshoot the model states), the
    track re-initiates after the turn instead of coasting on, and it never strays more
    than the fix noise times the 99 % radius."""
    t, truth = l_drive()
    radius = np.sqrt(chi2.ppf(GATE, 2))
    for seed in range(6):
        z, cov = noisy_fixes(np.random.default_rng(seed), truth, 0.3)
        track = track_fixes(Fixes(t, z, cov, np.ones(len(t), bool)), gate=GATE)
        assert track.tracked.all()
        assert track.segment.max() >= 1  # a second track after the corner
        d2 = mahalanobis2(track.position, track.covariance, truth)
        assert d2.max() <= chi2.ppf(GATE, 2), (seed, d2.max())
        assert np.linalg.norm(track.position - truth, axis=1).max() <= 0.3 * radius


def model_drive(rng: np.random.Generator, T: int) -> tuple[np.ndarray, np.ndarray,
                                                           np.ndarray]:
    """A 2-D drive that follows the tracker's model: positions ``[T, 2]`` [m] under a
    white-noise acceleration of 1 m/s² (one acceleration a step, both blocks, from 5 m/s
    along x), fixes with independent errors of standard deviation ``sigma [T]`` [m]
    drawn in 0.2-1 m."""
    d = 2
    F, _ = transition(PERIOD_S, d)
    gain = np.r_[np.full(d, PERIOD_S**2 / 2), np.full(d, PERIOD_S)]
    x = np.array([0.0, 0.0, 5.0, 0.0])
    truth = []
    for _ in range(T):
        truth.append(x[:d].copy())
        x = F @ x + gain * np.tile(rng.normal(size=d), 2)
    truth_arr = np.asarray(truth)
    sigma = rng.uniform(0.2, 1.0, T)
    return truth_arr, truth_arr + rng.normal(size=(T, d)) * sigma[:, None], sigma


def test_calibrated_and_parameters_recovered_on_its_own_model() -> None:
    """A drive that follows the model (white-noise acceleration 1 m/s², fixes with
    honest covariances four times too small as reported): the search finds the motion
    noise and the noise scale, and the 95 % regions hold the truth at 0.95 ± 3 binomial
    standard deviations over 5 × 200 snapshots."""
    d, T, covered = 2, 200, []
    for seed in range(5):
        truth_arr, z, sigma = model_drive(np.random.default_rng(100 + seed), T)
        reported = (sigma[:, None, None] / 2) ** 2 * np.eye(d)
        track = track_fixes(Fixes(np.arange(T) * PERIOD_S, z, reported, np.ones(T, bool)))
        assert 0.5 <= track.motion_std <= 2.0
        assert 2.0 <= track.noise_scale <= 8.0
        covered.append(np.mean(mahalanobis2(track.position, track.covariance, truth_arr)
                               <= chi2.ppf(0.95, d)))
    n = 5 * T
    assert abs(np.mean(covered) - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / n), covered


def test_short_drives_hold_the_parameters_uncertainty() -> None:
    """40 drives of 15 fixes that follow the model (honest covariances, white-noise
    acceleration 1 m/s²): the tracks of the parameters chosen by maximum likelihood alone
    cover the truth at 0.92 (a short drive does not pin the motion noise down); with
    the tracks of the values it does not rule out averaged in, at 0.95 ± 3 binomial
    standard deviations over the 600 snapshots."""
    d, T, drives = 2, 15, 40
    averaged, plug_in = [], []
    for seed in range(drives):
        truth_arr, z, sigma = model_drive(np.random.default_rng(1000 + seed), T)
        fixes = Fixes(np.arange(T) * PERIOD_S, z, sigma[:, None, None] ** 2 * np.eye(d),
                      np.ones(T, bool))
        track = track_fixes(fixes)
        assert track.effective_hypotheses > 1.0
        chosen = track_fixes(fixes, motion_std=track.motion_std, noise_scale=track.noise_scale)
        assert chosen.effective_hypotheses == 1.0
        np.testing.assert_array_equal(chosen.position, track.position)
        for out, tr in ((averaged, track), (plug_in, chosen)):
            out.extend(mahalanobis2(tr.position, tr.covariance, truth_arr) <= chi2.ppf(0.95, d))
    n = drives * T
    assert abs(np.mean(averaged) - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / n), np.mean(averaged)
    assert np.mean(plug_in) < np.mean(averaged), (np.mean(plug_in), np.mean(averaged))


def test_missing_fixes_are_predicted_and_a_lost_track_reports_nothing() -> None:
    """Non-converged snapshots are predicted, not used; more than ``COAST`` snapshots
    from every used fix the track is lost (no position, not converged)."""
    t, truth = l_drive(T=30, leg=1e3)
    z, cov = noisy_fixes(np.random.default_rng(3), truth, 0.2)
    usable = np.ones(len(t), bool)
    usable[10:12] = False  # a short gap: predicted
    usable[20:] = False  # the end: coasts COAST snapshots, then lost
    track = track_fixes(Fixes(t, z, cov, usable))
    assert np.all(track.status[~usable] == FixStatus.NO_FIX)
    assert track.tracked[:20 + COAST].all() and not track.tracked[20 + COAST:].any()
    assert np.isnan(track.position[20 + COAST:]).all()
    assert np.linalg.norm(track.position[10:12] - truth[10:12], axis=1).max() < 0.5


def test_no_track_when_no_three_fixes_agree() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(12) * PERIOD_S
    z = rng.uniform(-500, 500, (12, 2))
    track = track_fixes(Fixes(t, z, np.tile(np.eye(2) * 0.01, (12, 1, 1)), np.ones(12, bool)))
    assert not track.tracked.any() and np.isnan(track.position).all()


def _wall_points(ue: np.ndarray, bs: np.ndarray, axis: int, plane: float) -> np.ndarray:
    """Specular reflection points on the plane ``x[axis] = plane`` (image method)."""
    anchor = bs.copy()
    anchor[axis] = 2 * plane - bs[axis]
    s = (plane - ue[:, axis]) / (anchor[axis] - ue[:, axis])
    return ue + s[:, None] * (anchor - ue)


@pytest.mark.parametrize("dimensions", [2, 3])
def test_two_walls_along_a_drive_are_two_landmarks(dimensions: int) -> None:
    """A drive past two walls: each wall's reflection points slide along it (0.1 m
    noise, 15 % missed) among uniform clutter; the map holds two landmarks, one per
    wall (at least 90 % of its detections, none of the other's), each a line along its
    wall, and the detection noise found is the one put in."""
    rng = np.random.default_rng(0)
    T = 40
    ue = np.c_[np.linspace(-20, 20, T), np.full(T, 2.0), np.full(T, 1.5)]
    bs = np.array([0.0, -5.0, 1.5])
    walls = [_wall_points(ue, bs, 1, 10.0), _wall_points(ue, bs, 0, 30.0)]
    clutter = ue + rng.uniform(-30, 30, (T, 3)) * [1, 1, 0]
    points = np.stack([*walls, clutter], axis=1)
    points[:, :2] += rng.normal(0, 0.1, (T, 2, 3)) * ([1, 1, 1] if dimensions == 3
                                                      else [1, 1, 0])
    valid = np.ones((T, 3), bool)
    valid[:, :2] &= rng.random((T, 2)) > 0.15
    m = map_landmarks(points, valid, ue, dimensions=dimensions)
    assert m.num_landmarks == 2
    landmark_of = []
    for q in (0, 1):  # nearly all of a wall's detections go to one landmark (a 99 % gate)
        linked = m.association[valid[:, q], q]
        values, counts = np.unique(linked[linked >= 0], return_counts=True)
        assert len(values) == 1 and counts[0] >= 0.9 * len(linked), linked
        landmark_of.append(int(values[0]))
    assert landmark_of[0] != landmark_of[1]
    assert abs(m.direction[landmark_of[0], 0]) > 0.95  # the wall y = 10: along x
    assert abs(m.direction[landmark_of[1], 1]) > 0.95  # the wall x = 30: along y
    assert 0.07 <= m.sigma <= 0.13


# --------------------------------------------------------------------------- the command


def _estimate_file(tmp: Path, *, times: bool = True) -> tuple[Path, np.ndarray]:
    """An estimate file of a 2-D estimator on the L drive: 0.3 m fixes with honest
    covariances, three wild ones, and the reflection points of one wall."""
    rng = np.random.default_rng(7)
    t, truth2 = l_drive(T=24)
    T = len(t)
    truth = np.c_[truth2, np.full(T, 1.5)]
    z = truth.copy()
    z[:, :2] += rng.normal(0, 0.3, (T, 2))
    z[[5, 14, 19], :2] += 25.0
    cov = np.full((T, 3, 3), np.nan)
    cov[:, :2, :2] = 0.09 * np.eye(2)
    wall = _wall_points(truth, np.array([50.0, -5.0, 1.5]), 1, -10.0)
    est = Estimate(
        ue_position=z, ue_yaw=np.full(T, np.nan), scatterers=wall[:, None, :],
        scatterer_valid=np.ones((T, 1), bool), path_tau=np.zeros((T, 0)),
        path_aod=np.zeros((T, 0, 2)), path_gain=np.zeros((T, 0), np.complex128),
        converged=np.ones(T, bool), reason=("",) * T, runtime_s=np.full(T, 0.1),
        position_covariance=cov)
    header = EstimateHeader(
        run_file="run.h5", run_scene_sha256="0" * 64, run_num_snapshots=T, run_seed=1,
        seed=1, noise={"snr_db": 20.0}, service_area={}, snapshot_time=t if times else None)
    path = tmp / ("est.h5" if times else "old.h5")
    write_estimates(path, header=header,
                    provenance={"synthetic": Provenance({"k": 1}, {}, "tests.synthetic")},
                    results={"synthetic": est}, position_dimensions={"synthetic": 2},
                    bounds={})
    return path, truth


def test_track_file_writes_an_estimate_file_like_any_other(tmp_path: Path) -> None:
    est_path, truth = _estimate_file(tmp_path)
    out = tmp_path / "tracked.h5"
    results = track_file(est_path, out)
    tracked = read_estimates(out)
    name = "synthetic" + SUFFIX
    assert list(tracked.estimates) == [name] and tracked.tracked_from == est_path.name
    est = tracked.estimates[name]
    assert est.converged.all() and tracked.position_dimensions[name] == 2
    np.testing.assert_array_equal(est.ue_position, results[name].ue_position)
    assert np.isnan(est.position_covariance[:, 2]).all()  # 2-D: no height variance
    np.testing.assert_allclose(est.ue_position[:, 2], 1.5)
    status = est.diagnostics["fix_status"]
    assert set(np.flatnonzero(status == FixStatus.REJECTED)) >= {5, 14, 19}
    raw = read_estimates(est_path).estimates["synthetic"]
    assert rmse(est.ue_position[:, :2], truth[:, :2]) < rmse(raw.ue_position[:, :2],
                                                             truth[:, :2])
    assert est.scatterers.shape[1] == 1  # the wall is one landmark
    assert np.isfinite(est.scatterer_covariance[est.scatterer_valid][:, :2, :2]).all()
    params = tracked.params[name]
    assert params["source"] == {"algorithm": "synthetic", "estimator": "tests.synthetic",
                                "params": {"k": 1}}
    assert params["used"]["noise_scale"] >= 1.0
    np.testing.assert_array_equal(tracked.snapshot_time, read_estimates(est_path).snapshot_time)
    # Same input, same output.
    again = track_file(est_path, tmp_path / "again.h5")
    np.testing.assert_array_equal(again[name].ue_position, est.ue_position)
    np.testing.assert_array_equal(again[name].scatterers, est.scatterers)


def test_track_refusals_name_the_input(tmp_path: Path) -> None:
    est_path, _ = _estimate_file(tmp_path)
    old, _ = _estimate_file(tmp_path, times=False)
    tracked = tmp_path / "tracked.h5"
    track_file(est_path, tracked)
    other = tmp_path / "a.h5"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"estimates": est_path, "output": other, "gate": 1.5}, "--gate"),
        ({"estimates": est_path, "output": other, "motion_std": -1.0}, "--motion-std"),
        ({"estimates": old, "output": other}, "--run"),
        ({"estimates": tracked, "output": other}, "already tracked"),
        ({"estimates": est_path, "output": other, "algorithms": "nope"}, "nope"),
        ({"estimates": est_path, "output": old, "overwrite": True}, "twin track"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(TwinInputError, match=needle):
            track_file(**kwargs)
    assert not (tmp_path / "a.h5").exists()
    with h5py.File(old) as f:  # the raw estimate file --overwrite named is untouched
        assert "tracked_from" not in f["config"].attrs


def test_track_cli(tmp_path: Path) -> None:
    est_path, _ = _estimate_file(tmp_path)
    ok = run_twin("track", str(est_path), "-o", "tracked.h5", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "synthetic+track: 24/24 tracked" in ok.stderr
    bad = run_twin("track", str(est_path), "-o", "x.h5", "--gate", "2", cwd=tmp_path)
    assert_one_line_error(bad, ("--gate",))
    assert not (tmp_path / "x.h5").exists()


def test_a_schema_2_1_file_reads_without_times_or_scatterer_covariance(tmp_path: Path) -> None:
    old, _ = _estimate_file(tmp_path, times=False)
    with h5py.File(old, "r+") as f:
        f["config"].attrs["schema_version"] = "2.1"
        del f["estimates/synthetic/scatterer_covariance"]
    back = read_estimates(old)
    assert back.snapshot_time is None and back.schema_version == "2.1"
    cov = back.estimates["synthetic"].scatterer_covariance
    assert cov is not None and cov.shape == (24, 1, 3, 3) and np.isnan(cov).all()
