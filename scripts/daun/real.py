"""DAUN's grid localizers on a ray-traced run that is not the paper's (issue 22), as
``tests/twin/test_real_daun.py`` runs them: four BSs with 1x16 ULAs on 8 m masts at the
corners of a 100 m square over a ground plane, ``--users`` users uniform in ±40 m at
1.5 m (seed 1), one subcarrier at 28 GHz, 20 dB. Each estimator with its defaults (the
run's area) and with the paper's 40 x 40 m area (the old default), and ``daun``.

    .venv/bin/python -m scripts.daun.real [--users 12] [--names dpd,p-admm,...]

Prints per estimator and area: converged, median and p90 horizontal error [m] of the
converged fixes, the median LOS-only bound [m], ``twin.scoring.integrity_metrics`` and
the wall time per snapshot.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TWIN_MITSUBA_VARIANT", "llvm_ad_mono_polarized")

import numpy as np

from estimators import ESTIMATORS
from estimators.base import EstimatorInputError
from estimators.daun.grid import GridLocalizer
from twin.config import parse_config
from twin.scoring import integrity_metrics
from twin.simulate import simulate
from twin.sounding import channel_truth, observation_from_run

CORNERS = ((-50.0, -50.0), (50.0, -50.0), (50.0, 50.0), (-50.0, 50.0))
PAPER_AREA = ((-20.0, -20.0), (20.0, 20.0))


def square_run(users: int, directory: Path):  # type: ignore[no-untyped-def]
    """The ray-traced run (depth 1: the LOS and the ground reflection)."""
    c, u, v = (-200.0, -200.0, 0.0), (400.0, 0.0, 0.0), (0.0, 400.0, 0.0)
    corners = [np.add(c, d) for d in ((0, 0, 0), u, np.add(u, v), v)]
    (directory / "ground.obj").write_text(
        "o ground\n" + "".join("v {:.6f} {:.6f} {:.6f}\n".format(*p) for p in corners)
        + "f 1 2 3\nf 1 3 4\n")
    rng = np.random.default_rng(1)
    positions = np.column_stack([rng.uniform(-40, 40, (users, 2)), np.full(users, 1.5)])
    config = {
        "seed": 1, "scene": {"file": str(directory / "ground.obj")},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 1},
        "base_stations": [{"name": f"bs{j}", "position": [x, y, 8.0],
                           "orientation": [float(np.arctan2(-y, -x)), 0.0, 0.0],
                           "array": {"rows": 1, "cols": 16}}
                          for j, (x, y) in enumerate(CORNERS)],
        "ue": {"array": {"rows": 1, "cols": 1}, "orientation": [0.0, 0.0, 0.0],
               "positions": positions.tolist()},
        "tracing": {"max_depth": 1, "samples_per_src": 100_000}}
    return simulate(parse_config(config, "square"), directory).run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--names", default="dpd,p-admm,stansfield,srl,cvx-direct,daun")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = square_run(args.users, Path(tmp))
    truth = run.drive.position
    for name in args.names.split(","):
        cls: Any = ESTIMATORS[name]
        obs = observation_from_run(run, rng=np.random.default_rng(1), seed=1, snr_db=20.0,
                                   **cls.sounding)
        truths = [channel_truth(run, b) for b in range(obs.num_bs)]
        for label, area in (("run's area", None), ("paper's area", PAPER_AREA)):
            estimator = cls(area=area)
            assert isinstance(estimator, GridLocalizer)
            try:
                start = time.perf_counter()
                est = estimator.estimate(obs)
            except EstimatorInputError as exc:
                print(f"{name:10} {label:12}: refused: {exc}")
                break
            seconds = (time.perf_counter() - start) / obs.num_snapshots
            error = np.linalg.norm(est.ue_position[:, :2] - truth[:, :2], axis=1)
            ok = est.converged
            bound = np.nanmedian(estimator.crlb(obs, truths).position_error_bound)
            median = np.median(error[ok]) if ok.any() else np.nan
            p90 = np.percentile(error[ok], 90) if ok.any() else np.nan
            print(f"{name:10} {label:12}: grid {estimator.setting(obs)['grid_shape']}, "
                  f"converged {ok.sum()}/{len(ok)}, median {median:.3g} m, p90 {p90:.3g} m, "
                  f"bound {bound:.3g} m, {integrity_metrics(est, truth, 2)}, "
                  f"{seconds * 1e3:.0f} ms/snapshot", flush=True)


if __name__ == "__main__":
    main()
