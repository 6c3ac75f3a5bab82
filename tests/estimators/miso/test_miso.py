"""MISO localization and mapping (Fascista et al.) on the paper's own synthetic model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.arrays import SPEED_OF_LIGHT
from estimators.fisher import gaussian_fim, numerical_jacobian
from estimators.miso.estimators import (
    MisoML,
    MisoSnapshot,
    MisoSpGrid,
    MisoSpRefine,
    map_scatterers,
    miso_channel_fim,
    miso_position_transform,
)
from estimators.miso.scenario import MisoScenario
from tests.tolerances import EFFICIENCY_DB1, FIM_NUMERIC_REL, FLOAT64_ABS, rmse_margin

SCENARIO_3D = MisoScenario(
    ue_position=(25.0, 8.0, -5.0), scatterers=((18.0, 20.0, 3.0),), rows=4, cols=8,
    num_beams=12, beam_zeniths_rad=(np.pi / 2 - 0.25, np.pi / 2, np.pi / 2 + 0.25),
)


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors**2)))


@pytest.mark.parametrize("scenario, dims", [(MisoScenario(), 2), (SCENARIO_3D, 3)])
def test_channel_fim_matches_finite_differences(scenario: MisoScenario, dims: int) -> None:
    obs, truth = scenario.sample(10.0, 1, np.random.default_rng(0))
    snap = MisoSnapshot.from_observation(obs, 0, 0)
    g, tau, aod = truth.gain[0], truth.tau[0], truth.aod[0]
    per = 2 + dims

    def mean(eta: np.ndarray) -> np.ndarray:
        e = eta.reshape(-1, per)
        zen = e[:, 4] if dims == 3 else np.full(len(e), np.pi / 2)
        atoms = snap.atoms(e[:, 2], e[:, 3], zen)
        return np.tensordot(e[:, 0] + 1j * e[:, 1], atoms, axes=1).ravel()

    cols = [g.real, g.imag, tau, aod[:, 0]] + ([aod[:, 1]] if dims == 3 else [])
    eta = np.column_stack(cols).ravel()
    steps = np.tile([abs(g[0]) * 1e-4, abs(g[0]) * 1e-4, 1e-13, 1e-6, 1e-6][:per], len(tau))
    numeric = gaussian_fim(numerical_jacobian(mean, eta, steps), snap.noise_variance)
    analytic = miso_channel_fim(snap, g, tau, aod, dims)
    assert np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic) < FIM_NUMERIC_REL


@pytest.mark.parametrize("dims", [2, 3])
def test_position_transform_matches_finite_differences(dims: int) -> None:
    bs = np.array([1.0, -2.0, 4.0])
    ue, scat = np.array([25.0, 8.0, -1.0]), np.array([[18.0, 20.0, 6.0]])
    T, mapped = miso_position_transform(bs, ue, scat, dims)
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
    assert np.linalg.norm(T - numeric) / np.linalg.norm(T) < FIM_NUMERIC_REL


def test_closed_form_mapping_recovers_exact_scatterers() -> None:
    bs, ue = np.array([0.0, 0.0, 2.0]), np.array([25.0, 8.0, 1.0])
    scat = np.array([[18.0, 20.0, 3.0], [30.0, -6.0, 0.5]])
    v = scat - bs
    ranges = np.linalg.norm(v, axis=1) + np.linalg.norm(ue - scat, axis=1)
    az = np.arctan2(v[:, 1], v[:, 0])
    zen = np.arctan2(np.hypot(v[:, 0], v[:, 1]), v[:, 2])
    found, valid = map_scatterers(bs, ue, ranges, az, zen)
    assert valid.all()
    np.testing.assert_allclose(found, scat, atol=FLOAT64_ABS * 100)
    # A "path" shorter than the LOS cannot come from a scatterer.
    _, invalid = map_scatterers(bs, ue, [np.linalg.norm(ue - bs) * 0.9], az[:1], zen[:1])
    assert not invalid.any()


def test_theorem_1_nlos_paths_do_not_improve_the_peb() -> None:
    """PEB with an NLOS path >= LOS-only PEB, nearly equal for resolvable paths (eq. 21)."""
    obs, truth = MisoScenario().sample(10.0, 4, np.random.default_rng(1))
    with_nlos = MisoML(num_paths=2).crlb(obs, truth).position_error_bound
    # LOS only: the same observation's noise level, the model restricted to path 0.
    los_truth = dataclasses.replace(truth, valid=truth.valid & (np.arange(2) == 0))
    los_only = MisoML(num_paths=1).crlb(obs, los_truth).position_error_bound
    assert np.all(with_nlos >= los_only * (1 - 1e-9))
    assert np.all(with_nlos <= los_only * 1.05)


@pytest.mark.parametrize(
    "lmr_db, snr_db", [(3.0, 10.0), (-6.0, 0.0)], ids=["los-stronger", "los-weaker"]
)
def test_joint_ml_is_efficient(lmr_db: float, snr_db: float) -> None:
    """Joint ML within 1 dB of the PEB and the scatterer bound (paper Figs. 6-7)."""
    trials = 150
    obs, truth = MisoScenario(lmr_db=(lmr_db,)).sample(snr_db, trials, np.random.default_rng(11))
    est = MisoML().estimate(obs)
    bound = MisoML().crlb(obs, truth)
    assert est.converged.all()
    ue_rmse = rmse(np.linalg.norm(est.ue_position - truth.ue_position, axis=1))
    sc_rmse = rmse(np.linalg.norm(est.scatterers[:, 0] - truth.scatterer[:, 1], axis=1))
    peb = rmse(bound.position_error_bound)
    seb = rmse(bound.scatterer_error_bound[:, 0])
    assert ue_rmse <= EFFICIENCY_DB1 * rmse_margin(trials) * peb
    assert sc_rmse <= EFFICIENCY_DB1 * rmse_margin(trials) * seb


def test_baselines_fall_short_at_high_snr() -> None:
    """At 30 dB the SP refinement is floored by the other path's interference and the grid
    by its resolution; joint ML keeps improving (paper Fig. 6)."""
    trials = 60
    obs, truth = MisoScenario().sample(30.0, trials, np.random.default_rng(12))
    errors = {}
    for cls in (MisoSpGrid, MisoSpRefine, MisoML):
        est = cls().estimate(obs)
        errors[cls.name] = rmse(np.linalg.norm(est.ue_position - truth.ue_position, axis=1))
    peb = rmse(MisoML().crlb(obs, truth).position_error_bound)
    assert errors["miso-ml"] <= EFFICIENCY_DB1 * rmse_margin(trials) * peb
    assert errors["miso-sp-refine"] > 2.0 * errors["miso-ml"]
    assert errors["miso-sp-grid"] > errors["miso-sp-refine"]
    # The grid error is bounded by its resolution (2 m in range, 4° in angle at ~26 m).
    assert errors["miso-sp-grid"] < np.hypot(1.0, 26.2 * np.deg2rad(2.0)) * 1.5


def test_3d_variant_is_efficient() -> None:
    trials = 40
    obs, truth = SCENARIO_3D.sample(10.0, trials, np.random.default_rng(13))
    est = MisoML(dimensions=3).estimate(obs)
    peb = rmse(MisoML(dimensions=3).crlb(obs, truth).position_error_bound)
    ue_rmse = rmse(np.linalg.norm(est.ue_position - truth.ue_position, axis=1))
    assert ue_rmse <= EFFICIENCY_DB1 * rmse_margin(trials) * peb
    assert abs(np.mean(est.ue_position[:, 2]) - (-5.0)) < 5 * peb  # the height is estimated


def test_3d_needs_a_planar_array() -> None:
    obs, _ = MisoScenario().sample(10.0, 1, np.random.default_rng(0))
    from estimators.base import EstimatorInputError

    with pytest.raises(EstimatorInputError, match="planar BS array"):
        MisoML(dimensions=3).estimate(obs)
