"""SLAB's runtime per slot: LCE and BFR, each against its baselines, side by side.

    .venv/bin/python -m scripts.slab.bench [--trials 10] [--seed 1]

On the paper setting (:class:`estimators.slab.scenario.SlabScenario`, J = 3, N'_C = 30,
L = 1, M = 20, N_B = N_U = 4, 20 dB), per trial (one seed each, ``SeedSequence([seed,
trial])``), in one run:

* **LCE, first slot** (random BF): the multi-start (§IV-D, draws + screening + SLLS);
* **LCE, a later slot** (random BF, fresh fading), started at the first slot's
  estimate, to the same accuracy: SLLS, GD-LCE and LS-LCE run until their UE position is
  within 1 mm of SLLS's converged one (or 3000 iterations): time and iterations;
* **BFR** at the first slot's estimate from the random BF: SLAB's BFR, GD-BFR (both to a
  certified relative gap of 1e-6) and LMI-BFR (cvxpy + SCS, eps 1e-4, Gaussian
  randomization): time, iterations and the achieved cost κ (eq. 23).

Prints medians and the ratios baseline / SLAB.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from estimators.slab.baselines import gd_bfr, gd_lce, lmi_bfr, ls_lce
from estimators.slab.bfr import BfrProblem, slab_bfr
from estimators.slab.lce import LceResult, slls
from estimators.slab.lce_init import multistart
from estimators.slab.scenario import SlabScenario, lce_problem

LCE_MATCH_M = 1e-3
LCE_MAX_ITERATIONS = 3000


def _iterations_to_match(result: LceResult, target: np.ndarray) -> int | None:
    """First iterate within ``LCE_MATCH_M`` of ``target`` (UE position), or None."""
    close = np.linalg.norm(result.alpha_history[:, :2] - target, axis=1) <= LCE_MATCH_M
    return int(np.argmax(close)) if close.any() else None


def trial(scenario: SlabScenario, seed: int, index: int) -> dict[str, float]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    w0 = scenario.random_beamformers(rng)
    first = lce_problem(scenario, scenario.sample(w0, rng))
    ms = multistart(first, rng)
    out = {"multistart_s": ms.runtime_s}

    later = lce_problem(scenario, scenario.sample(scenario.random_beamformers(rng),
                                                              rng))
    start = ms.result.alpha
    reference = slls(later, start)
    out["slls_s"], out["slls_it"] = reference.runtime_s, reference.iterations
    target = reference.alpha[:2]
    for name, solve in (("gd", gd_lce), ("ls", ls_lce)):
        result = solve(later, start, max_iterations=LCE_MAX_ITERATIONS)
        hit = _iterations_to_match(result, target)
        per_iteration = result.runtime_s / max(result.iterations, 1)
        out[f"{name}_it"] = float(hit) if hit is not None else np.nan
        out[f"{name}_s"] = per_iteration * hit if hit is not None else np.nan

    geometry = scenario.geometry()
    problem = BfrProblem.at_estimate(
        ms.result.alpha, system=scenario.system(), geometry=geometry,
        gain_covariance=scenario.gain_covariance(), noise_variance=scenario.noise_variance(),
        reference_beamformers=w0)
    for name, run in (("slab_bfr", lambda: slab_bfr(w0, problem=problem)),
                      ("gd_bfr", lambda: gd_bfr(w0, problem=problem)),
                      ("lmi_bfr", lambda: lmi_bfr(w0, problem=problem, rng=rng))):
        t0 = time.perf_counter()
        refined = run()
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_it"] = refined.iterations
        out[f"{name}_cost"] = refined.cost
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenario = SlabScenario()
    load = os.getloadavg()[0]
    rows = [trial(scenario, args.seed, i) for i in range(args.trials)]
    med = {k: float(np.nanmedian([r[k] for r in rows])) for k in rows[0]}
    misses = {k: sum(np.isnan(r[k]) for r in rows) for k in ("gd_it", "ls_it")}
    print(f"seed {args.seed}, {args.trials} trials, paper setting; load average "
          f"{load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; medians:")
    print(f"LCE first slot (multi-start): {med['multistart_s'] * 1e3:.0f} ms")
    print(f"LCE later slot, to within {LCE_MATCH_M * 1e3:g} mm of SLLS:")
    print(f"  SLLS    {med['slls_s'] * 1e3:8.1f} ms, {med['slls_it']:.0f} iterations")
    for name in ("gd", "ls"):
        print(f"  {name.upper()}-LCE  {med[f'{name}_s'] * 1e3:8.1f} ms, "
              f"{med[f'{name}_it']:.0f} iterations ({misses[f'{name}_it']} of {args.trials} "
              f"never within {LCE_MAX_ITERATIONS}); / SLLS = "
              f"{med[f'{name}_s'] / med['slls_s']:.0f}x")
    print("BFR per slot (from the random BF, at the first slot's estimate):")
    for name in ("slab_bfr", "gd_bfr", "lmi_bfr"):
        print(f"  {name:8s} {med[f'{name}_s'] * 1e3:8.0f} ms, {med[f'{name}_it']:.0f} "
              f"iterations, κ {med[f'{name}_cost']:.7f}; / SLAB = "
              f"{med[f'{name}_s'] / med['slab_bfr_s']:.2f}x")


if __name__ == "__main__":
    main()
