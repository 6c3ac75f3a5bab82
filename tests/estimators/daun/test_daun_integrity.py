"""The grid localizers' fix checks (estimators/daun/integrity.py, issue 22): votes on
the signal energy, and the covariance of a likelihood with two peaks."""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from estimators.daun import integrity
from estimators.daun.model import DirectLocalizationProblem
from estimators.daun.scenario import DaunScenario

SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(20, 20), num_angles=32)


def problem(grid_shape: tuple[int, int] = (20, 20), bs_height: float = 0.0
            ) -> DirectLocalizationProblem:
    bs = SMALL.bs_position()
    bs[:, 2] = bs_height
    return DirectLocalizationProblem.build(
        bs_position=bs, bs_orientation=SMALL.bs_orientation(),
        element_positions=SMALL.bs_array().element_positions,
        wavelength=SMALL.wavelength, area=SMALL.area, grid_shape=grid_shape,
        ue_height=0.0, num_angles=SMALL.num_angles)


def test_signal_share_takes_the_noise_out_of_a_pure_los() -> None:
    """A LOS alone at 0 dB per antenna: its share of the received energy is about
    SNR / (1 + SNR) = 1/2, of the signal energy about 1 (mean over noise draws)."""
    p = problem()
    rng = np.random.default_rng(3)
    position = np.array([3.0, -4.0, 0.0])
    los = np.stack([p.steering(m, position) for m in range(p.num_bs)])
    raw, corrected = [], []
    for _ in range(200):
        noise = (rng.standard_normal(los.shape) + 1j * rng.standard_normal(los.shape)) / np.sqrt(2)
        y = los + noise
        share, _ = integrity.los_shares(p, y, position)
        raw.append(share)
        corrected.append(integrity.signal_shares(share, y, np.ones(p.num_bs)))
    assert abs(np.mean(raw) - 0.5) < 0.05
    assert abs(np.mean(corrected) - 1.0) < 0.1
    # The strongest of N beams of noise alone: H_N sigma² on average.
    assert np.isclose(integrity.max_noise_beams(16), np.sum(1 / np.arange(1, 17)))


def test_a_likelihood_with_two_peaks_covers_the_other_one() -> None:
    """Every BS receives two equal paths, the LOS towards two points 12 m apart: the
    likelihood has a peak at each, and the covariance term of a fix at one holds the
    other inside its 99 % ellipse (one peak alone: the region is its own lobe)."""
    p = problem()
    p1, p2 = np.array([-6.0, 0.0, 0.0]), np.array([6.0, 0.0, 0.0])
    y = np.stack([p.steering(m, p1) + p.steering(m, p2) for m in range(p.num_bs)])
    sigma2 = np.full(p.num_bs, 1e-2)
    moment = integrity.region_moment(p, y, sigma2, p1, kappa=1.0)
    d = (p2 - p1)[:2]
    assert d @ np.linalg.solve(moment, d) <= chi2.ppf(0.99, 2)
    single = np.stack([p.steering(m, p1) for m in range(p.num_bs)])
    alone = integrity.region_moment(p, single, sigma2, p1, kappa=1.0)
    assert np.trace(alone) < 0.01 * (d @ d)


def test_the_region_is_sampled_finer_than_a_cell_where_a_bs_is_close() -> None:
    """Cells of 10 m, wider than the lobes of 16-element arrays 30-70 m away: each is
    split so that the narrowest lobe is sampled twice across; cells of 0.2 m, finer than
    every lobe, are their own sampling."""
    coarse = problem(grid_shape=(4, 4))
    points = integrity.region_points(coarse)
    assert len(points) > len(coarse.grid_points)
    fine = problem(grid_shape=(200, 200))
    assert len(integrity.region_points(fine)) == len(fine.grid_points)
    # The sub-points tile each cell: their mean is the cell's centre.
    assert np.allclose(points.reshape(len(coarse.grid_points), -1, 2).mean(axis=1),
                       coarse.grid_points[:, :2])


def test_a_bs_with_a_dominant_path_elsewhere_is_counted_against_through_the_noise() -> None:
    """Two BSs see the LOS of a fix; BS 3 sees one clean path elsewhere (against it);
    BS 2 one path elsewhere too, at -4 dB a sample, whose share of the received energy
    the noise pulls under 1/2 but which holds most of its signal energy: it speaks
    against as well, and two for, two against is a tie (not converged). Counted on the
    received energy, BS 2 was neutral and the ghost passed 2 to 1."""
    p = problem()
    fix = np.array([3.0, -4.0, 0.0])
    elsewhere = np.array([0.0, 18.0, 0.0])  # off the fix's cone at BSs 2 and 3
    rng = np.random.default_rng(5)
    sigma2 = np.ones(p.num_bs)
    y = np.zeros((p.num_bs, p.element_positions.shape[1]), dtype=np.complex128)
    y[0], y[1] = 10 * p.steering(0, fix), 10 * p.steering(1, fix)
    y[3] = 10 * p.steering(3, elsewhere)
    y[2] = np.sqrt(0.4) * p.steering(2, elsewhere)
    y[2] += (rng.standard_normal(16) + 1j * rng.standard_normal(16)) / np.sqrt(2)
    peak = integrity.peak_shares(p, y)[2]
    corrected = integrity.signal_shares(np.array([peak]), y[2:3], sigma2[2:3],
                                        integrity.max_noise_beams(16))[0]
    assert peak < integrity.SUPPORT_SHARE <= corrected
    reason, covariance, found = integrity.fix_integrity(p, y, sigma2, fix, on_grid=False)
    assert found["los_support"] == 2 and found["los_against"] == 2
    assert covariance is None and "ambiguous" in reason
