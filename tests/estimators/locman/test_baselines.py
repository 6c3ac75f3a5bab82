"""LOCMAN's baseline (estimators/locman/baselines.py): DCS-SOMP + the same WLS."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.base import EstimatorInputError
from estimators.locman.baselines import DcsSomp
from estimators.locman.bound import true_parameters
from estimators.locman.model import snapshot
from estimators.locman.scenario import small


def test_dcs_somp_finds_every_path_within_its_grid_step() -> None:
    obs, truth = small().observation(1, np.random.default_rng(8), 40.0)
    snap = snapshot(obs, 0, 0, None)
    _, eta = true_parameters(snap, truth, 0, np.arange(3))
    estimator = DcsSomp()
    found = estimator.channel_parameters(snap)
    assert found.order == 3
    # Nearest grid points: within half a step of ω on each side (LOS first, as the truth).
    for side, size in ((1, snap.rx.size), (2, snap.tx.size)):
        half_step = np.pi / (estimator.oversampling * size)
        error = np.angle(np.exp(1j * (found.params[:, side] - eta[:, side])))
        assert np.all(np.abs(error) <= half_step * (1 + 1e-9)), side


def test_dcs_somp_needs_a_downlink() -> None:
    obs, _ = small().observation(1, np.random.default_rng(9), 10.0)
    with pytest.raises(EstimatorInputError, match="downlink"):
        DcsSomp().estimate(dataclasses.replace(obs, link="uplink"))
