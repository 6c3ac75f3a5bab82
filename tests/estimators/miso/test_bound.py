"""MISO bounds (``estimators/miso/bound.py``): the FIMs against finite differences,
Theorem 1, and NaN where the bound does not apply."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.arrays import SPEED_OF_LIGHT
from estimators.fisher import gaussian_fim, numerical_jacobian
from estimators.miso.bound import miso_channel_fim, miso_position_transform
from estimators.miso.estimators import MisoML
from estimators.miso.model import MisoSnapshot
from estimators.miso.scenario import MisoScenario, variant_3d
from tests.tolerances import FIM_NUMERIC_REL, MISO_THEOREM_1_REL


@pytest.mark.parametrize("scenario, dims", [(MisoScenario(), 2), (variant_3d(), 3)])
def test_channel_fim_matches_finite_differences(scenario: MisoScenario, dims: int) -> None:
    obs, truth = scenario.observation(1, np.random.default_rng(0), 10.0)
    snap = MisoSnapshot.from_observation(obs, 0, 0)
    g, tau, aod = truth.gain[0], truth.tau[0], truth.aod[0]
    per_path = 2 + dims

    def mean(eta: np.ndarray) -> np.ndarray:
        e = eta.reshape(-1, per_path)
        zen = e[:, 4] if dims == 3 else np.full(len(e), np.pi / 2)
        return snap.noiseless(e[:, 0] + 1j * e[:, 1], e[:, 2], e[:, 3], zen).ravel()

    cols = [g.real, g.imag, tau, aod[:, 0]] + ([aod[:, 1]] if dims == 3 else [])
    eta = np.column_stack(cols).ravel()
    steps = np.tile([abs(g[0]) * 1e-4, abs(g[0]) * 1e-4, 1e-13, 1e-6, 1e-6][:per_path],
                    len(tau))
    numeric = gaussian_fim(numerical_jacobian(mean, eta, steps), snap.noise_variance)
    analytic = miso_channel_fim(snap, g, tau, aod, dims)
    assert np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic) < FIM_NUMERIC_REL


@pytest.mark.parametrize("dims", [2, 3])
def test_position_transform_matches_finite_differences(dims: int) -> None:
    bs = np.array([1.0, -2.0, 4.0])
    ue, scat = np.array([25.0, 8.0, -1.0]), np.array([[18.0, 20.0, 6.0]])
    transform, mapped = miso_position_transform(bs, ue, scat, dims)
    assert mapped.tolist() == [True]

    def channel_params(x: np.ndarray) -> np.ndarray:
        p, s = x[:dims] - bs[:dims], x[dims:2 * dims] - bs[:dims]
        ps = x[:dims] - x[dims:2 * dims]

        def angles(v: np.ndarray) -> list[float]:
            az = float(np.arctan2(v[1], v[0]))
            return [az] if dims == 2 else [az, float(np.arctan2(np.hypot(v[0], v[1]), v[2]))]

        gains = x[2 * dims:]
        return np.array([gains[0], gains[1], np.linalg.norm(p) / SPEED_OF_LIGHT, *angles(p),
                         gains[2], gains[3],
                         (np.linalg.norm(s) + np.linalg.norm(ps)) / SPEED_OF_LIGHT, *angles(s)])

    x = np.concatenate([ue[:dims], scat[0, :dims], [0.1, -0.2, 0.05, 0.03]])
    numeric = numerical_jacobian(channel_params, x, 1e-6).real
    assert np.linalg.norm(transform - numeric) / np.linalg.norm(transform) < FIM_NUMERIC_REL


def test_theorem_1_nlos_paths_do_not_improve_the_peb() -> None:
    """PEB with an NLOS path >= LOS-only PEB, equal up to the paths' overlap (eq. 21)."""
    obs, truth = MisoScenario().observation(4, np.random.default_rng(1), 10.0)
    with_nlos = MisoML(num_paths=2).crlb(obs, truth).position_error_bound
    # LOS only: the same observation's noise level, the model restricted to path 0.
    los_truth = dataclasses.replace(truth, valid=truth.valid & (np.arange(2) == 0))
    los_only = MisoML(num_paths=1).crlb(obs, los_truth).position_error_bound
    assert np.all(np.isfinite(with_nlos)) and np.all(with_nlos >= los_only * (1 - 1e-9))
    assert np.all(with_nlos <= los_only * (1 + MISO_THEOREM_1_REL))


def test_bound_is_nan_where_it_does_not_apply() -> None:
    """A twin run can have snapshots without LOS, with fewer paths than the model, or
    without noise: NaN there, finite elsewhere, never an exception."""
    obs, truth = MisoScenario().observation(4, np.random.default_rng(2), 10.0)
    no_los = truth.los.copy()
    no_los[0] = False
    one_path = truth.valid.copy()
    one_path[1, 1] = False
    noiseless = obs.noise_variance.copy()
    noiseless[2] = 0.0
    bound = MisoML(num_paths=2).crlb(dataclasses.replace(obs, noise_variance=noiseless),
                                     dataclasses.replace(truth, los=no_los, valid=one_path))
    assert np.isnan(bound.position_error_bound[:3]).all()
    assert np.isnan(bound.scatterer_error_bound[:3]).all()
    assert np.isfinite(bound.position_error_bound[3])
    # The paper's scatterer; miso-ml's last slot, the ground bounce's, has no bound.
    assert np.isfinite(bound.scatterer_error_bound[3, :1]).all()
    assert np.isnan(bound.scatterer_error_bound[:, -1]).all()
    # num_paths="auto": the bound of the paths there are (the LOS alone on snapshot 1).
    auto = MisoML().crlb(obs, dataclasses.replace(truth, valid=one_path))
    assert np.isfinite(auto.position_error_bound).all()
    assert np.isnan(auto.scatterer_error_bound[1]).all()
    # A UE straight above the BS has no azimuth: a singular FIM, NaN.
    above = truth.ue_position.copy()
    above[3] = (0.0, 0.0, 10.0)
    overhead = MisoML(dimensions=2).crlb(obs, dataclasses.replace(truth, ue_position=above))
    assert np.isnan(overhead.position_error_bound[3])
