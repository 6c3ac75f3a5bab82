"""How honest the RIS-CD localizers' reported covariances are on the paper's setting.

    .venv/bin/python -m scripts.ris_cd.coverage [--users 200] [--seed 1]

For ``ris-cd`` and ``ris-rss`` at 0, 10 and 20 dB (the paper's scenario, its radio-map
errors and GNSS-like prior, one channel realisation, ``--users`` users): the horizontal
RMSE [m], the share of fixes whose 95 % region (``position_covariance``, chi-square with
2 degrees of freedom) holds the true position (0.95 when calibrated), and the median
reported standard deviation along x [m].
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import chi2

from estimators import ESTIMATORS
from estimators.ris_cd.scenario import RisCdScenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenario = RisCdScenario()
    rng = np.random.default_rng(args.seed)
    for snr_db in (0.0, 10.0, 20.0):
        obs, truth = scenario.observation(args.users, rng, snr_db)
        for name in ("ris-cd", "ris-rss"):
            est = ESTIMATORS[name]().estimate(obs, rng)
            ok = est.converged
            error = (est.ue_position - truth.ue_position)[ok, :2]
            cov = est.position_covariance[ok, :2, :2]
            d2 = np.einsum("ti,tij,tj->t", error, np.linalg.inv(cov), error)
            print(f"{snr_db:4.0f} dB {name:8s} converged {ok.sum()}/{ok.size}, RMSE "
                  f"{np.sqrt(np.mean(np.sum(error**2, axis=1))):.3f} m, 95 % coverage "
                  f"{np.mean(d2 <= chi2.ppf(0.95, 2)):.3f}, median σx "
                  f"{np.median(np.sqrt(cov[:, 0, 0])):.3f} m")


if __name__ == "__main__":
    main()
