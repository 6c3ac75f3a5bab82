"""SLAB with its defaults on a small real run: three BSs on 8 m masts above the UE, a
ground plane and three walls, 32 subcarriers (not a multiple of 3), as
``.venv/bin/python -m scripts.slab.real --runs mast`` (docs/estimators/slab.md, "On real
drives")."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2

from tests.tolerances import SLAB_REAL_MAST_MEDIAN_M, SLAB_REAL_SCREENED_MEDIAN_M

SNAPSHOTS = 3


@pytest.fixture(scope="module")
def mast_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from scripts.slab.real import simulate_run

    return simulate_run("mast", SNAPSHOTS, Path(tmp_path_factory.mktemp("slab-mast")))


def _observe(run: Any) -> Any:
    from estimators.slab.estimators import Slab
    from twin.sounding import observation_from_run

    return observation_from_run(run, rng=np.random.default_rng(7), seed=7, snr_db=20.0,
                                **Slab.sounding)


def _covered(est: Any, truth_xy: np.ndarray) -> np.ndarray:
    """Per snapshot: the 99 % region of the reported horizontal covariance holds the
    truth."""
    out = np.zeros(len(truth_xy), bool)
    for t, cov in enumerate(est.position_covariance):
        block = cov[:2, :2]
        if np.all(np.isfinite(block)):
            d = est.ue_position[t, :2] - truth_xy[t]
            out[t] = d @ np.linalg.solve(block, d) <= chi2.ppf(0.99, 2)
    return out


def test_defaults_fit_a_mast_run(mast_run: Any) -> None:
    """Defaults from the run: all 3 BSs, 30 of the 32 subcarriers (2 dropped, said in the
    diagnostics), the service area's UE height, the BS heights above it; every converged
    fix has a covariance and none is a confident wild fix; the error at its measured
    scale (the target of 2x the bound is not met: docs/estimators/slab.md)."""
    from estimators.slab.estimators import Slab

    obs = _observe(mast_run)
    assert obs.frequencies.size % obs.num_bs  # the run's count does not interleave
    est = Slab().estimate(obs, np.random.default_rng(7))
    truth = mast_run.drive.position
    np.testing.assert_array_equal(est.diagnostics["subcarriers_dropped"], 2.0)
    assert est.scatterers.shape == (SNAPSHOTS, 3, 3)
    ok = est.converged
    assert ok.sum() >= 2, est.reason
    np.testing.assert_allclose(est.ue_position[ok, 2], np.median(truth[:, 2]))
    assert est.position_covariance is not None
    assert np.all(np.isfinite(est.position_covariance[ok][:, :2, :2]))
    err = np.linalg.norm(est.ue_position[:, :2] - truth[:, :2], axis=1)
    assert np.median(err[ok]) < SLAB_REAL_MAST_MEDIAN_M, err
    wild = ok & (err > 5.0)
    assert not np.any(wild & ~_covered(est, truth[:, :2])), err


def test_an_observation_it_cannot_explain(mast_run: Any) -> None:
    """The same pilots with the BSs' positions listed in another order (the geometry the
    estimator is told cannot produce them): every snapshot is converged=False or its
    covariance covers the error."""
    from estimators.slab.estimators import Slab

    obs = _observe(mast_run)
    order = [1, 2, 0]
    wrong = dataclasses.replace(obs, bs_position=obs.bs_position[order],
                                bs_orientation=obs.bs_orientation[order])
    est = Slab().estimate(wrong, np.random.default_rng(7))
    truth = mast_run.drive.position[:, :2]
    assert np.all(~est.converged | _covered(est, truth)), (est.converged, est.reason)


@pytest.fixture(scope="module")
def screened_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from scripts.slab.real import simulate_run

    return simulate_run("screened", SNAPSHOTS, Path(tmp_path_factory.mktemp("slab-screen")))


def test_a_blocked_los_is_refused_and_named(screened_run: Any) -> None:
    """BS 2's LOS is behind a screen along the whole drive (the model's premise does not
    hold): every snapshot at which BS 2 receives nothing is refused with a reason naming
    BS 2's LOS against free space; with ``min_bs_with_los=2`` the other two BSs' LOS fix
    the UE and every snapshot converges, at the mast run's accuracy (the blocked BS's
    LOS gain fits to ~0; measured 0.55, 1.09, 2.13 m)."""
    from estimators.slab.estimators import Slab

    obs = _observe(screened_run)
    truth = screened_run.drive.position[:, :2]
    dark = ~screened_run.paths.valid[:, 2].any(axis=1)  # BS 2 receives no path at all
    assert dark.sum() >= 1
    est = Slab().estimate(obs, np.random.default_rng(7))
    assert not np.any(est.converged[dark]), est.reason
    assert all("BS(s) 2 " in est.reason[t] and "below free space" in est.reason[t]
               for t in np.flatnonzero(dark)), est.reason
    assert np.all(est.diagnostics["los_free_space_db"][dark] < -20.0)
    kept = Slab(min_bs_with_los=2).estimate(obs, np.random.default_rng(7))
    assert np.all(kept.converged), kept.reason
    err = np.linalg.norm(kept.ue_position[:, :2] - truth, axis=1)
    assert np.median(err) < SLAB_REAL_SCREENED_MEDIAN_M, err
    assert not np.any((err > 5.0) & ~_covered(kept, truth)), err
