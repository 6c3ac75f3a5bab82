"""LOCMAN's CRLB (estimators/locman/bound.py): the position transform, its scaling, and
NaN (never an exception) where the paper's model does not hold."""

from __future__ import annotations

import dataclasses

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT
from estimators.fisher import gaussian_fim, numerical_jacobian
from estimators.locman.baselines import DcsSomp
from estimators.locman.bound import (
    efficient_errors,
    geometric_transform,
    locman_bounds,
    true_parameters,
)
from estimators.locman.estimators import Locman
from estimators.locman.model import snapshot
from estimators.locman.scenario import LocmanScenario, small
from estimators.types import ChannelTruth
from tests.tolerances import FIM_NUMERIC_REL, FLOAT64_REL, rmse_margin

#: Linearised ML draws (cheap: no estimation) for an RMSE within 1 +- 0.15 of the bound.
EFFICIENT_TRIALS = 200


def test_position_fim_through_the_transform_is_the_fim_of_the_position() -> None:
    obs, truth = small().observation(1, np.random.default_rng(5), 10.0)
    snap = snapshot(obs, 0, 0, None)
    x, eta = true_parameters(snap, truth, 0, np.arange(3))
    gain = truth.gain[0]
    T = geometric_transform(snap.geometry, x, 3)

    def mean_x(v: np.ndarray) -> np.ndarray:
        g = v[7::2] + 1j * v[8::2]
        return np.einsum("krt,ktg->krg", snap.channel(g, snap.geometry.paths(v[:7])),
                         snap.x).ravel()

    xv = np.concatenate([x, np.column_stack([gain.real, gain.imag]).ravel()])
    direct = gaussian_fim(numerical_jacobian(mean_x, xv, np.r_[np.full(7, 1e-6), np.full(
        6, 1e-9)]), snap.noise_variance)
    via_t = T.T @ snap.fim(gain, eta) @ T
    assert np.linalg.norm(via_t - direct) / np.linalg.norm(direct) < FIM_NUMERIC_REL


def test_bounds_scale_with_the_noise_amplitude() -> None:
    obs10, truth = LocmanScenario().observation(1, np.random.default_rng(7), 10.0)
    b10 = locman_bounds(obs10, truth, 3)
    obs30 = dataclasses.replace(obs10, noise_variance=obs10.noise_variance / 100)
    b30 = locman_bounds(obs30, truth, 3)
    for tight, loose in ((b30.bound.position_error_bound, b10.bound.position_error_bound),
                         (b30.bound.orientation_error_bound, b10.bound.orientation_error_bound),
                         (b30.bound.scatterer_error_bound, b10.bound.scatterer_error_bound),
                         (b30.aod_bound, b10.aod_bound)):
        assert tight is not None and loose is not None
        assert np.all(np.isfinite(loose)) and np.all(loose > 0)
        np.testing.assert_allclose(tight * 10, loose, rtol=1e-9)


def test_estimators_return_the_papers_bound_and_nan_off_the_model() -> None:
    """Snapshot 0 as the model; 1 without LOS; 2 with a multi-bounce path (no
    scatterer); 3 with only two paths: the bound is NaN for 1-3, and nothing raises."""
    obs, truth = small().observation(4, np.random.default_rng(8), 10.0)
    los = truth.los.copy()
    los[1] = False
    scatterer = truth.scatterer.copy()
    scatterer[2, 2] = np.nan
    valid = truth.valid.copy()
    valid[3, 2] = False
    off_model = dataclasses.replace(truth, los=los, scatterer=scatterer, valid=valid)
    bound = Locman(num_paths=3).crlb(obs, off_model)
    assert bound.orientation_error_bound is not None and bound.channel_crlb is not None
    assert bound.scatterer_error_bound.shape == (4, 2)
    assert np.isfinite(bound.position_error_bound[0])
    assert np.isfinite(bound.orientation_error_bound[0])
    assert np.all(np.isnan(bound.position_error_bound[1:]))
    assert np.all(np.isnan(bound.orientation_error_bound[1:]))
    expected = locman_bounds(obs, truth, 3).bound.position_error_bound[0]
    assert abs(bound.position_error_bound[0] - expected) <= FLOAT64_REL * expected
    # The baseline is compared with the same bound.
    baseline = DcsSomp(num_paths=3).crlb(obs, off_model)
    np.testing.assert_array_equal(baseline.position_error_bound, bound.position_error_bound)
    no_orientation = dataclasses.replace(truth, ue_orientation=None)
    assert np.all(np.isnan(Locman().crlb(obs, no_orientation).position_error_bound))
    auto = Locman().crlb(obs, off_model).position_error_bound
    np.testing.assert_array_equal(np.isfinite(auto), [True, False, True, True])
    assert auto[0] == bound.position_error_bound[0]
    two_paths = locman_bounds(obs, off_model, 2).bound.position_error_bound
    np.testing.assert_array_equal(auto[2:], two_paths[2:])


def test_the_bound_is_at_the_true_height_whatever_height_an_estimator_assumes() -> None:
    scenario = dataclasses.replace(small(), ue_position=(5.0, 2.0, -1.5))
    obs, truth = scenario.observation(1, np.random.default_rng(11), 10.0)
    assumed_bs_height = Locman().crlb(obs, truth).position_error_bound
    assumed_true_height = Locman(ue_height=-1.5).crlb(obs, truth).position_error_bound
    assert np.all(np.isfinite(assumed_bs_height))
    np.testing.assert_array_equal(assumed_bs_height, assumed_true_height)
    # The height matters: the same plane positions one level up give another bound.
    level = dataclasses.replace(truth, ue_position=truth.ue_position * [1, 1, 0])
    assert Locman().crlb(obs, level).position_error_bound[0] != assumed_bs_height[0]


def test_the_efficient_errors_have_the_bound_as_their_rmse() -> None:
    trials = EFFICIENT_TRIALS
    obs, truth = small().observation(trials, np.random.default_rng(12), 10.0)
    bound = locman_bounds(obs, truth, 3).bound
    errors = efficient_errors(obs, truth, 3)
    assert bound.orientation_error_bound is not None
    for got, peb in ((errors[:, :2], bound.position_error_bound),
                     (errors[:, 2:3], bound.orientation_error_bound),
                     (errors[:, 3:5], bound.scatterer_error_bound[:, 0])):
        ratio = np.sqrt(np.mean(np.sum(got**2, axis=1)) / np.mean(peb**2))
        assert abs(ratio - 1) <= rmse_margin(trials) - 1


def _with_ground_bounce(truth: ChannelTruth, height: float) -> ChannelTruth:
    """``truth`` with a LOS ground bounce (off a horizontal ground at ``height``)
    inserted as path 1: a single bounce whose point lies under the BS-UE line."""
    b = np.zeros(3)  # the small scenario's BS at the origin
    p = truth.ue_position[:, None, :]
    drop = b[2] + p[..., 2] - 2 * height
    horizontal = np.hypot(p[..., 0] - b[0], p[..., 1] - b[1])
    share = (b[2] - height) / drop
    point = b + share[..., None] * (p - b)
    point[..., 2] = height
    length = np.hypot(horizontal, drop)

    def insert(a: np.ndarray, value: np.ndarray) -> np.ndarray:
        return np.concatenate([a[:, :1], value.astype(a.dtype), a[:, 1:]], axis=1)

    return dataclasses.replace(
        truth, gain=insert(truth.gain, 0.5 * truth.gain[:, :1]),
        tau=insert(truth.tau, length / SPEED_OF_LIGHT), aod=insert(truth.aod, truth.aod[:, :1]),
        aoa=insert(truth.aoa, truth.aoa[:, :1]), valid=insert(truth.valid, truth.valid[:, :1]),
        scatterer=insert(truth.scatterer, point))


def test_a_ground_bounce_is_not_taken_for_a_vertical_reflectors_path() -> None:
    """The model puts a bounce on a vertical reflector: a ground bounce's point maps onto
    the LOS (a duplicate path, a singular FIM). It is skipped: the bound is that of the
    LOS and the next two (vertical) bounces, as without it; with ``ground_height`` the
    ground bounces are nuisance paths, whose free gains cannot add information."""
    obs, truth = small().observation(2, np.random.default_rng(3), 10.0)
    grounded = _with_ground_bounce(truth, -3.0)
    paper = locman_bounds(obs, truth, 3).bound.position_error_bound
    assert np.all(np.isfinite(paper))
    skipped = locman_bounds(obs, grounded, 3).bound.position_error_bound
    np.testing.assert_allclose(skipped, paper, rtol=FLOAT64_REL)
    np.testing.assert_allclose(Locman().crlb(obs, grounded).position_error_bound, paper,
                               rtol=FLOAT64_REL)
    with_ground = locman_bounds(obs, grounded, 3, ground_height=-3.0).bound
    assert np.all(np.isfinite(with_ground.position_error_bound))
    assert np.all(with_ground.position_error_bound >= paper * (1 - FLOAT64_REL))
    assert with_ground.channel_crlb is not None and with_ground.channel_crlb.shape[1] == 30
