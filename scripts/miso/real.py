"""MISO with its defaults on the small real Sionna runs of ``tests/twin/test_real_miso.py``
(issue 22): per run, UE error (median, p90, in the estimator's dimensions) against the
median PEB, wild (> 5 m) and confident-wild fixes, 95 % coverage of the reported
covariance, paths found, runtime per snapshot.

    .venv/bin/python -m scripts.miso.real [--seed 7]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from tests.twin import test_real_miso as scenes


class _Tmp:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        factory = _Tmp(Path(tmp))
        for label, fixture in (("two walls (ULA, 2-D)", scenes.walls_run),
                               ("8 m mast (4x8 URA, 3-D)", scenes.mast_run),
                               ("LOS blocked (ULA, 2-D)", scenes.blocked_run)):
            run = fixture.__wrapped__(factory)  # type: ignore[attr-defined]
            estimator, obs, est, bound = scenes._estimate(run, seed=args.seed)
            d = estimator.position_dimensions(obs)
            err = est.ue_position - run.drive.position
            dist = np.linalg.norm(err[:, :d], axis=1)
            conv = est.converged
            cov = est.position_covariance[:, :d, :d]
            covered = np.zeros(len(dist), bool)
            for t in np.flatnonzero(conv & np.all(np.isfinite(cov), axis=(1, 2))):
                m = err[t, :d] @ np.linalg.solve(cov[t], err[t, :d])
                covered[t] = m <= chi2.ppf(0.95, d)
            wild = conv & (dist > 5.0)
            coverage = covered[conv].mean() if conv.any() else np.nan
            print(f"{label}: converged {conv.sum()}/{len(conv)}, "
                  f"median {np.median(dist[conv]) if conv.any() else np.nan:.3f} m, "
                  f"p90 {np.percentile(dist[conv], 90) if conv.any() else np.nan:.3f} m, "
                  f"median PEB {np.nanmedian(bound.position_error_bound):.3f} m, "
                  f"wild {wild.sum()}, coverage_95 {coverage:.2f}, "
                  f"paths {est.diagnostics['num_paths'].astype(int).tolist()}, "
                  f"{np.median(est.runtime_s):.2f} s/snapshot; reasons: "
                  f"{sorted({r.split(':')[0] for r in est.reason if r})}")


if __name__ == "__main__":
    main()
