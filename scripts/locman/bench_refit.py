"""LOCMAN's ground refit, before and after issue 24's second pass, side by side.

    .venv/bin/python -m scripts.locman.bench_refit [--out bench-suite]
        [--drives canyon,munich] [--snr 20]

For every snapshot and BS that ``scripts/locman/held_out.py`` estimates (the stored
paper-matrix estimates of ``scripts/bench_suite.py`` name them), sounds the run as
``twin estimate`` does (same seed and SNR), runs LOCMAN's channel stage and WLS fix, and
times the refit (:func:`estimators.locman.wls.refine_with_ground`, nominal ground) four
ways, on the same inputs:

- ``fd``: the refit as it was (commit d7b61f8): the full ``[K Nr G]`` residual,
  Levenberg-Marquardt's finite-difference Jacobian (script-local reference below);
- ``vp``: today's: the pilot-compressed residual and its analytic variable-projection
  Jacobian;

each with the BLAS's default threads and with one thread (LOCMAN's snapshots now run
with one). Prints per drive the summed times, the ratios, and the largest difference
between the two refits' fixes [m] (the same minimum, to Levenberg-Marquardt's stopping
tolerance).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from estimators.arrays import SPEED_OF_LIGHT
from estimators.locman.estimators import Locman
from estimators.locman.model import LocmanSnapshot, least_squares_gains, snapshot
from estimators.locman.wls import EARLIER_PATH_CELLS, Fit, refine_with_ground, solve_position
from estimators.typing import FloatArray
from twin.estimate import algorithm_rng
from twin.estimatefile import read_estimates
from twin.runfile import read_run
from twin.sounding import observation_from_run

#: The refit's iteration cap (``Locman().max_iterations``).
MAX_ITERATIONS = Locman().max_iterations


def refine_finite_difference(snap: LocmanSnapshot, fit: Fit, ground_height: float) -> Fit:
    """The refit of commit d7b61f8: full residual, finite-difference Jacobian."""
    y = snap.y.ravel()

    def residual(v: FloatArray) -> FloatArray:
        eta = snap.geometry.paths(v, ground_height)
        A = snap.atoms(eta).reshape(len(eta), -1).T
        r = y - A @ least_squares_gains(A, y)
        return np.concatenate([r.real, r.imag])

    start = float(np.sum(residual(fit.x) ** 2))
    res = least_squares(residual, fit.x, method="lm", max_nfev=MAX_ITERATIONS,
                        x_scale="jac")
    cost = float(np.sum(res.fun**2))
    if not (np.all(np.isfinite(res.x)) and cost < start):
        return Fit(fit.x, start, ground_height, False)
    return Fit(np.asarray(res.x), cost, ground_height, False)


def timed(refit: Callable[[], Fit], threads: int | None) -> tuple[Fit, float]:
    with threadpool_limits(limits=threads, user_api="blas"):
        start = time.perf_counter()
        fit = refit()
        return fit, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-suite"))
    parser.add_argument("--drives", default="canyon,munich")
    parser.add_argument("--snr", type=float, default=20.0)
    args = parser.parse_args()
    locman = Locman()
    for drive in args.drives.split(","):
        directory = args.out / drive / "ue_array"
        run = read_run(directory / "ue_array.h5")
        stored = read_estimates(directory / f"est_{args.snr:g}dB_locman-dcs-somp.h5")
        snapshots = np.flatnonzero(stored.estimates["locman"].runtime_s > 0)
        obs = observation_from_run(run, rng=algorithm_rng(stored.seed, "locman"),
                                   seed=stored.seed, snr_db=args.snr, **Locman.sounding)
        height, area = locman._service(obs)
        totals = dict.fromkeys(("fd", "fd-1", "vp", "vp-1"), 0.0)
        worst, refits = 0.0, 0
        for t in snapshots:
            for b in locman._candidates(obs, int(t)):
                snap = snapshot(obs, int(t), b, height)
                with threadpool_limits(limits=1, user_api="blas"):
                    channel = locman.channel_parameters(snap)
                    cell = SPEED_OF_LIGHT / (snap.spacing_hz * snap.frequencies.size)
                    channel, problem = locman._choose_los(snap, channel, area,
                                                          EARLIER_PATH_CELLS * cell)
                    ground = locman._ground_height(snap.geometry)
                    if problem or ground is None:
                        continue
                    fit = solve_position(snap, channel, MAX_ITERATIONS)
                fits = {}
                for key, threads in (("fd", None), ("fd-1", 1), ("vp", None), ("vp-1", 1)):
                    if key.startswith("fd"):
                        fits[key], seconds = timed(
                            lambda s=snap, f=fit, g=ground: refine_finite_difference(s, f, g),
                            threads)
                    else:
                        fits[key], seconds = timed(
                            lambda s=snap, f=fit, g=ground: refine_with_ground(
                                s, f, g, MAX_ITERATIONS), threads)
                    totals[key] += seconds
                worst = max(worst, float(np.hypot(*(fits["vp-1"].x[:2] - fits["fd"].x[:2]))))
                refits += 1
        print(f"{drive}: {refits} refits; summed [s]: "
              + ", ".join(f"{key} {value:.2f}" for key, value in totals.items()))
        print(f"{drive}: fd/vp {totals['fd'] / totals['vp']:.1f}x (default threads), "
              f"{totals['fd-1'] / totals['vp-1']:.1f}x (one thread); fd (as it was) / "
              f"vp-1 (now) {totals['fd'] / totals['vp-1']:.1f}x; largest fix difference "
              f"{worst:.2e} m", flush=True)


if __name__ == "__main__":
    main()
