"""SLAB's six estimators on the real drives' ``ue_array`` runs, snapshot by snapshot.

    .venv/bin/python -m scripts.slab.drives [--bench /work/bench] [--drives office,...]
        [--algorithms slab,slab-lce,...] [--snr 0,10,20] [--slow-snapshots 3]
        [--set key=value ...] [--out drives.json]

The runs are ``scripts.bench_suite``'s (``BENCH/<drive>/ue_array/ue_array.h5``: three BSs
with 1x8 ULAs on masts, a 1x4 UE array, 64 subcarriers, depth 2, 28 GHz), estimated as
the suite does: every estimator with its defaults on the snapshots ``step // 2 : T :
step``, ``step = ceil(T / slow_snapshots)``, at each SNR. Per snapshot: converged, the
horizontal error [m], the reported standard deviation ``sqrt(tr C)`` [m], the squared
Mahalanobis distance of the error under the reported covariance, the residual ratio, the
spread of the competing fits (diagnostic ``spread_m``), the weakest BS's LOS against free
space (``los_free_space_db``), the BSs whose LOS passes (``bs_with_los``) and the
reason; per estimator, drive and SNR a summary line: converged, median error, wild
(converged and > 5 m off) and confident wild (not covered at 99 %). ``--out`` writes the
per-snapshot rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy.stats import chi2

from twin.estimate import estimate_run
from twin.estimatefile import read_estimates
from twin.runfile import read_run
from twin.scoring import COVER_PROBABILITY, WILD_ERROR_M

ALGORITHMS = ("slab", "slab-lce", "gd-bfr", "lmi-bfr", "gd-lce", "ls-lce")


def run(bench: Path, drive: str, algorithms: list[str], snr: float, slow: int,
        settings: list[str], scratch: Path) -> list[dict[str, Any]]:
    """Per-snapshot rows of ``algorithms`` on ``drive``'s ``ue_array`` run at ``snr`` dB."""
    run_path = bench / drive / "ue_array" / "ue_array.h5"
    truth = read_run(run_path).drive.position
    total = truth.shape[0]
    step = max(1, math.ceil(total / slow))
    est_path = scratch / f"{drive}_{snr:g}.h5"
    rows: list[dict[str, Any]] = []
    for algo in algorithms:  # one at a time: each its own rng (twin.estimate), same noise
        start = time.perf_counter()
        estimate_run(run_path, algo, est_path, snr_db=snr, settings=settings,
                     snapshots=[f"{algo}={step // 2}:{total}:{step}"], overwrite=True)
        seconds = time.perf_counter() - start
        est = read_estimates(est_path).estimates[algo]
        for t in range(step // 2, total, step):
            d = est.ue_position[t, :2] - truth[t, :2]
            assert est.position_covariance is not None  # Estimate fills NaN
            cov = est.position_covariance[t, :2, :2]
            try:
                d2 = float(d @ np.linalg.solve(cov, d))
            except np.linalg.LinAlgError:
                d2 = float("nan")
            ratio = est.diagnostics.get("residual_ratio")
            spread = est.diagnostics.get("spread_m")
            los = est.diagnostics.get("los_free_space_db")
            with_los = est.diagnostics.get("bs_with_los")
            rows.append({
                "drive": drive, "snr_db": snr, "algorithm": algo, "snapshot": t,
                "converged": bool(est.converged[t]), "error_m": float(np.hypot(*d)),
                "sd_m": float(np.sqrt(np.trace(cov))), "d2": d2,
                "residual_ratio": None if ratio is None else float(ratio[t]),
                "spread_m": float("nan") if spread is None else float(spread[t]),
                "los_free_space_db": float("nan") if los is None else float(los[t]),
                "bs_with_los": float("nan") if with_los is None else float(with_los[t]),
                "reason": str(est.reason[t]), "seconds": seconds / len(range(step // 2,
                                                                             total, step))})
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    """One line: converged, median error, wild and confident wild of ``rows``."""
    limit = chi2.ppf(COVER_PROBABILITY, 2)
    conv = [r for r in rows if r["converged"]]
    wild = [r for r in conv if r["error_m"] > WILD_ERROR_M]
    confident = [r for r in wild if not r["d2"] <= limit]
    median = np.median([r["error_m"] for r in conv]) if conv else float("nan")
    return (f"{len(conv)}/{len(rows)} converged, median {median:.3g} m, wild {len(wild)} "
            f"({len(confident)} confident), {np.mean([r['seconds'] for r in rows]):.1f} "
            f"s/snapshot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=Path("/work/bench"))
    parser.add_argument("--drives", default="office,street,canyon,munich")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--snr", default="0,10,20")
    parser.add_argument("--slow-snapshots", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], dest="settings")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for drive in args.drives.split(","):
            for snr in (float(s) for s in args.snr.split(",")):
                for algo in args.algorithms.split(","):
                    mine = run(args.bench, drive, [algo], snr, args.slow_snapshots,
                               args.settings, Path(scratch))
                    for r in mine:
                        print(f"  {drive} {snr:g} dB {algo} t={r['snapshot']}: "
                              f"{'conv' if r['converged'] else 'fail'} error "
                              f"{r['error_m']:.3g} m, sd {r['sd_m']:.3g} m, d2 "
                              f"{r['d2']:.3g}, ratio {r['residual_ratio']}, "
                              f"spread {r['spread_m']:.3g} m, LOS "
                              f"{r['los_free_space_db']:.1f} dB ({r['bs_with_los']:g} BSs "
                              f"with LOS), {r['reason'][:100]}",
                              flush=True)
                    print(f"{drive} {snr:g} dB {algo}: {summary(mine)}", flush=True)
                    rows += mine
                    if args.out is not None:
                        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
