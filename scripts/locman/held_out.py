"""LOCMAN's default (the decoupled matrix) on the held-out drives, against the suite's
stored estimates of the paper's matrix on the same snapshots.

    .venv/bin/python -m scripts.locman.held_out [--out bench-suite] [--drives canyon,munich]
        [--snr 20]

Reads ``OUT/<drive>/ue_array/ue_array.h5`` and the ``locman`` estimates of
``est_<snr>dB_locman-dcs-somp.h5`` there (``scripts/bench_suite.py``: the paper's block-
Hankel matrix, LOCMAN's default before issue 24), runs ``twin estimate``'s LOCMAN with
today's defaults on the snapshots they estimated (same seed and SNR), and prints, per
snapshot, both UE errors against the ray-traced truth and both times, then the new
default's mean wall time per snapshot.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from twin.estimate import estimate_run
from twin.estimatefile import read_estimates
from twin.runfile import read_run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-suite"))
    parser.add_argument("--drives", default="canyon,munich")
    parser.add_argument("--snr", type=float, default=20.0)
    args = parser.parse_args()
    for drive in args.drives.split(","):
        directory = args.out / drive / "ue_array"
        run_path = directory / "ue_array.h5"
        truth = read_run(run_path).drive.position
        stored = read_estimates(directory / f"est_{args.snr:g}dB_locman-dcs-somp.h5")
        old = stored.estimates["locman"]
        snapshots = [int(t) for t in np.flatnonzero(old.runtime_s > 0)]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            new = estimate_run(run_path, ["locman"], Path(tmp) / "est.h5", snr_db=args.snr,
                               seed=stored.seed,
                               snapshots=[",".join(map(str, snapshots))])["locman"]
        wall = (time.perf_counter() - start) / len(snapshots)
        for t in snapshots:
            errors = [float(np.linalg.norm(e.ue_position[t, :2] - truth[t, :2]))
                      if e.converged[t] else float("nan") for e in (old, new)]
            print(f"{drive} snapshot {t}: paper matrix {errors[0]:.4f} m "
                  f"({old.runtime_s[t]:.1f} s), default {errors[1]:.4f} m "
                  f"({new.runtime_s[t]:.2f} s)", flush=True)
        print(f"{drive}: default {wall:.2f} s a snapshot (wall, set-up included)")


if __name__ == "__main__":
    main()
