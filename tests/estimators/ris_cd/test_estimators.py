"""The registered RIS-CD localizers (``estimators.py``: ``ris-cd``; ``baselines.py``:
``ris-rss``; their shared two-stage scheme ``localizer.py``) on the paper's setting: users
on block centres found, the paper's low-SNR claim, bad input, and the bounds their
``crlb`` returns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import chi2

from estimators import ESTIMATORS
from estimators.base import EstimatorInputError
from estimators.ris_cd.model import block_variation
from estimators.ris_cd.scenario import RisCdScenario
from estimators.types import ChannelTruth, Observation
from tests.tolerances import FLOAT64_REL, MC_SIGMAS, RIS_CD_PRIOR_LIMIT_REL


def test_noiseless_users_at_block_centres_are_found() -> None:
    """Exact radio map, no noise to speak of, users on block centres, a confidence region
    that surely holds them: ``ris-cd`` returns their blocks."""
    scenario = dataclasses.replace(RisCdScenario(), csi_error=0.0)
    rng = np.random.default_rng(4)
    realization = scenario.realize(rng)
    theta = np.ones(scenario.num_elements)
    truth = scenario.block_positions()[::9]
    obs, _ = scenario.sample(realization, theta, 80.0, len(truth), rng, positions=truth)
    est = ESTIMATORS["ris-cd"](confidence=1 - 1e-12).estimate(obs)
    np.testing.assert_array_equal(est.ue_position, truth)


def rmse(name: str, snr_db: float, **params: object) -> float:
    """Horizontal RMSE [m] over the 200 users of :func:`paper_users` (fixed seeds)."""
    obs, truth = paper_users(snr_db, 200)
    est = ESTIMATORS[name](**params).estimate(obs)
    return float(np.sqrt(np.mean(np.sum((est.ue_position - truth)[:, :2] ** 2, axis=1))))


def test_ris_cd_is_ahead_of_ris_rss_at_low_snr() -> None:
    """The paper's claim at a low SNR (−5 dB at the area's centre), fixed seeds, uniform
    RIS phases: CFR fingerprints beat RSS fingerprints with the same prior (measured
    3.14 m against 3.61 m)."""
    cd, rss = rmse("ris-cd", -5.0), rmse("ris-rss", -5.0)
    assert cd < rss


def test_block_variation_is_the_neighbours_mean_difference() -> None:
    """:func:`block_variation` on a 3 x 2 grid of 0.5 m blocks (7 neighbour pairs along x
    or y), one block off the grid and one at another height (neither has a neighbour):
    the mean power per sample of the 7 pairs' differences; 0 for a lone block."""
    rng = np.random.default_rng(3)
    grid = [(x, y, 1.5) for y in (2.0, 2.5) for x in (1.0, 1.5, 2.0)]
    centres = np.array([*grid, (1.2, 2.0, 1.5), (1.0, 2.0, 2.5)])
    predicted = rng.standard_normal((8, 2, 3)) + 1j * rng.standard_normal((8, 2, 3))
    pairs = [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)]
    expected = np.mean([np.mean(np.abs(predicted[i] - predicted[j]) ** 2) for i, j in pairs])
    assert block_variation(predicted, centres, np.array([0.5, 0.5])) == pytest.approx(
        expected, rel=FLOAT64_REL)
    assert block_variation(predicted[:1], centres[:1], np.array([0.5, 0.5])) == 0.0


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_ris_cd_regions_hold_the_users_on_the_papers_model(snr_db: float) -> None:
    """The reported 95 % regions of ``ris-cd`` on :func:`paper_users` (users anywhere in
    their blocks, the map with its errors) hold the truth in 95 % of the users, within
    the binomial noise of 200 (measured 0.975 at 10 and at 20 dB)."""
    obs, truth = paper_users(snr_db, 200)
    est = ESTIMATORS["ris-cd"]().estimate(obs)
    error = (est.ue_position - truth)[:, :2]
    d2 = np.einsum("ti,tij,tj->t", error, np.linalg.inv(est.position_covariance[:, :2, :2]),
                   error)
    inside = float(np.mean(d2 <= chi2.ppf(0.95, 2)))
    assert abs(inside - 0.95) <= MC_SIGMAS * np.sqrt(0.95 * 0.05 / len(truth)), inside


def test_missing_radio_map_or_prior_is_one_line() -> None:
    scenario = RisCdScenario()
    rng = np.random.default_rng(6)
    realization = scenario.realize(rng)
    obs, _ = scenario.sample(realization, np.ones(scenario.num_elements), 10.0, 2, rng)
    for change, needle in (({"fingerprints": None}, "radio map"), ({"prior": None}, "prior")):
        with pytest.raises(EstimatorInputError, match=needle) as info:
            ESTIMATORS["ris-cd"]().estimate(dataclasses.replace(obs, **change))
        assert "\n" not in str(info.value)
    assert obs.fingerprints is not None
    wrong = dataclasses.replace(obs.fingerprints, cfr=obs.fingerprints.cfr[..., :3])
    with pytest.raises(EstimatorInputError, match="does not match"):
        ESTIMATORS["ris-rss"]().estimate(dataclasses.replace(obs, fingerprints=wrong))


def positions_truth(positions: np.ndarray) -> ChannelTruth:
    """The truth of fingerprint users: their positions only (no geometric path)."""
    n = len(positions)
    return ChannelTruth(
        gain=np.zeros((n, 0), np.complex128), tau=np.zeros((n, 0)), aod=np.zeros((n, 0, 2)),
        aoa=np.zeros((n, 0, 2)), valid=np.zeros((n, 0), bool), los=np.zeros(n, bool),
        ue_position=np.asarray(positions, dtype=np.float64), scatterer=np.zeros((n, 0, 3)))


def paper_users(snr_db: float, users: int) -> tuple[Observation, np.ndarray]:
    """The first ``users`` of 200 users of one realization of the paper's setting, uniform
    RIS phases (fixed seeds), and their positions ``[user, 3]``."""
    scenario = RisCdScenario()
    realization = scenario.realize(np.random.default_rng(1))
    theta = np.ones(scenario.num_elements)
    fingerprints = scenario.fingerprint_map(
        realization, theta, scenario.map_errors(realization, np.random.default_rng(5)))
    obs, truth = scenario.sample(realization, theta, snr_db, 200, np.random.default_rng(2),
                                 fingerprints=fingerprints)
    keep = slice(0, users)
    assert obs.prior is not None
    return dataclasses.replace(
        obs, y=obs.y[keep], precoders=obs.precoders[keep], combiners=obs.combiners[keep],
        noise_variance=obs.noise_variance[keep], snapshot_time=obs.snapshot_time[keep],
        prior=dataclasses.replace(obs.prior, mean=obs.prior.mean[keep],
                                  covariance=obs.prior.covariance[keep])), truth[keep]


def test_both_localizers_declare_the_plane_and_the_same_bound() -> None:
    """The blocks are a horizontal grid: 2-D; ``ris-rss`` returns the paper's (CFR) bounds,
    so both are held against the same bound."""
    obs, truth = paper_users(10.0, 3)
    cd, rss = ESTIMATORS["ris-cd"](), ESTIMATORS["ris-rss"]()
    assert cd.position_dimensions(obs) == rss.position_dimensions(obs) == 2
    assert cd.bound and cd.bound == rss.bound
    a, b = cd.crlb(obs, positions_truth(truth)), rss.crlb(obs, positions_truth(truth))
    np.testing.assert_array_equal(a.position_error_bound, b.position_error_bound)
    np.testing.assert_array_equal(a.other["two_stage_position_m"],
                                  b.other["two_stage_position_m"])


def test_geometric_bound_tends_to_the_prior_at_low_snr() -> None:
    """At −80 dB the pilots carry nothing: the geometric bound with prior (eq. 44′) is the
    prior's own error, ``sqrt(tr Σ_p)`` = 2 √2 m for 2 m per axis (measured 3e-7 off)."""
    obs, truth = paper_users(-80.0, 5)
    bound = ESTIMATORS["ris-cd"]().crlb(obs, positions_truth(truth))
    np.testing.assert_allclose(bound.position_error_bound, 2 * np.sqrt(2),
                               rtol=RIS_CD_PRIOR_LIMIT_REL)


def test_geometric_bound_lies_below_the_rmse() -> None:
    """The doc's claim at −5 dB on ``rmse``'s first 40 users: the geometric bound's RMS
    below ``ris-cd``'s RMSE (measured over 200 users: 2.06 m against 3.14 m)."""
    obs, truth = paper_users(-5.0, 40)
    estimator = ESTIMATORS["ris-cd"]()
    bound = estimator.crlb(obs, positions_truth(truth)).position_error_bound
    error = estimator.estimate(obs).ue_position - truth
    assert np.sqrt(np.mean(bound**2)) < np.sqrt(np.mean(np.sum(error[:, :2] ** 2, axis=1)))


def test_bound_is_nan_outside_the_map_and_never_raises() -> None:
    """A truth 20 m off the map has no blocks around it: NaN, not an exception; the
    other snapshot keeps its finite bounds."""
    obs, truth = paper_users(10.0, 2)
    moved = truth.copy()
    moved[1, 0] += 20.0
    bound = ESTIMATORS["ris-cd"]().crlb(obs, positions_truth(moved))
    assert np.isfinite(bound.position_error_bound[0])
    assert np.isfinite(bound.other["two_stage_position_m"][0])
    assert np.isnan(bound.position_error_bound[1])
    assert np.isnan(bound.other["two_stage_position_m"][1])
    with pytest.raises(EstimatorInputError, match="radio map"):
        ESTIMATORS["ris-cd"]().crlb(dataclasses.replace(obs, fingerprints=None),
                                    positions_truth(truth))
