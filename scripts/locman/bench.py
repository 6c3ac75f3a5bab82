"""LOCMAN's atomic norm denoiser: ADMM vs the cvxpy SDP (SCS), side by side, at equal accuracy.

    .venv/bin/python -m scripts.locman.bench [--sizes 7x4,11x6,...] [--quick] [--seed 1]
        [--limit 60] [--formulation hankel|decoupled]
    .venv/bin/python -m scripts.locman.bench --agreement [--seed 3] [--formulation ...]

For growing sizes ``K x N`` (``K`` subcarriers, ``Nr = Nt = N`` antennas), one fixed-seed
problem each: 3 paths, 10 dB SNR, ``G = 16`` unit-modulus pilots (``/ sqrt(Nt)``), ``μ`` of
:func:`estimators.locman.anm.regularization`. Both solvers solve the problem of one
``--formulation`` (:data:`estimators.locman.anm.Formulation`: the paper's block-Hankel
virtual channel, ``Θ`` of order ``(K + 1) N``, the default here; or the decoupled matrix,
order ``K + N²``, LOCMAN's default). In one run:

* a tight reference: the SDP at eps = 1e-7 where it is quick (its eps = 1e-4 solve under
  ``--ref-sdp-below`` seconds), else the ADMM at tolerance 1e-6 (computed at every size;
  the two references' difference is printed where both exist). ADMM at 1e-10 is no
  option at the larger sizes: its last digits converge slowly (~22 000 iterations at
  K = 23, N = 12); 1e-6 is within 1e-7 of 1e-8 where that was checked;
* the SDP at SCS eps = 1e-4: wall time including cvxpy's compilation, SCS's own solve
  time (``solver_stats.solve_time``), iterations, relative error of ``H``;
* the ADMM at the loosest tolerance of a fixed ladder whose error is at most the SDP's
  (equal accuracy): wall time, iterations, error.

Sizes grow until the SDP takes longer than ``--limit`` seconds; the table ends with the
ratio SDP / ADMM (wall times) at each size.

``--agreement``: instead, how closely the two solvers agree when both are run tight
(ADMM tolerance 1e-7, SCS eps 1e-7) on 8 problems of the size of
``tests/estimators/locman/test_anm.py`` (``K = 7``, ``N = 4``, ``G = 6``, 20 dB, seeds
``--seed`` to ``--seed + 7``): the relative difference of ``H`` and of the objective.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

# One BLAS thread for both solvers (set before numpy and SCS load OpenBLAS): on 2 cores
# shared with other work, OpenBLAS's threads wait on each other and the ADMM's many
# mid-sized operations slow down several-fold (the LOCMAN estimator limits itself too).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from estimators.locman import anm
from estimators.observe import complex_normal
from estimators.typing import ComplexArray

PATHS = 3
PILOTS = 16
SNR_DB = 10.0
DEFAULT_SIZES = "7x4,11x6,15x8,19x10,23x12,27x14,31x16"
QUICK_SIZES = "7x4,11x6"
REFERENCE_TOLERANCE = 1e-6
#: ADMM tolerances tried, loosest first; the first whose error is at most the SDP's wins.
LADDER = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)


_LAST_SOLVE_TIME = [float("nan")]


def _record_solve_time() -> None:
    """Wrap ``cvxpy.Problem.solve`` to keep the conic solver's own time
    (``solver_stats.solve_time``, without cvxpy's compilation) of the last solve."""
    import cvxpy as cp

    solve = cp.Problem.solve

    def recording(self: cp.Problem, *args: object, **kwargs: object) -> object:
        _LAST_SOLVE_TIME[0] = float("nan")
        value = solve(self, *args, **kwargs)
        stats = self.solver_stats
        if stats is not None and stats.solve_time is not None:
            _LAST_SOLVE_TIME[0] = float(stats.solve_time)
        return value

    cp.Problem.solve = recording  # type: ignore[method-assign]


def make_problem(
    K: int, N: int, rng: np.random.Generator, *, num_pilots: int = PILOTS,
    snr_db: float = SNR_DB,
) -> anm.AnmProblem:
    """A random 3-path channel on ``K`` subcarriers between two ``N``-element ULAs at
    ``snr_db`` [dB] (per received sample), and ``num_pilots`` unit-modulus pilots."""
    w_tau = rng.uniform(0, 2 * np.pi, PATHS)
    w_r = rng.uniform(-np.pi, np.pi, PATHS)
    w_t = rng.uniform(-np.pi, np.pi, PATHS)
    gains = complex_normal(rng, PATHS, 2.0)
    H = np.einsum("l,lk,lr,lt->krt", gains, anm.vandermonde(np.exp(-1j * w_tau), K),
                  anm.vandermonde(np.exp(1j * w_r), N), anm.vandermonde(np.exp(-1j * w_t), N))
    x = np.exp(2j * np.pi * rng.uniform(size=(K, N, num_pilots))) / np.sqrt(N)
    clean = np.einsum("krt,ktg->krg", H, x)
    sigma2 = float(np.mean(np.abs(clean) ** 2)) * 10 ** (-snr_db / 10)
    y = clean + complex_normal(rng, clean.shape, sigma2)
    return anm.AnmProblem(y=y, x=x, mu=anm.regularization(sigma2, x, N))


def rel_error(H: ComplexArray, ref: ComplexArray) -> float:
    return float(np.linalg.norm(H - ref) / np.linalg.norm(ref))


@dataclass
class Row:
    size: str
    reference: str
    sdp_wall: float
    sdp_solve: float
    sdp_iterations: int
    sdp_error: float
    admm_tolerance: float
    admm_wall: float
    admm_iterations: int
    admm_error: float

    @property
    def ratio(self) -> float:
        return self.sdp_wall / self.admm_wall


def bench_size(K: int, N: int, seed: int, ref_sdp_below: float,
               formulation: anm.Formulation) -> Row:
    problem = make_problem(K, N, np.random.default_rng(seed))
    size = f"K={K}, N={N}"
    tight = anm.solve_admm(problem, tolerance=REFERENCE_TOLERANCE, max_iterations=50_000,
                           formulation=formulation)
    print(f"{size}: reference ADMM tol {REFERENCE_TOLERANCE:.0e}: {tight.iterations} "
          f"iterations, {tight.runtime_s:.2f} s, converged {tight.converged}", flush=True)
    reference, ref_H = f"ADMM {REFERENCE_TOLERANCE:.0e}", tight.H

    start = time.perf_counter()
    sdp = anm.solve_sdp(problem, eps=1e-4, formulation=formulation)
    sdp_wall = time.perf_counter() - start
    sdp_solve = _LAST_SOLVE_TIME[0]
    print(f"{size}: SDP eps 1e-4: {sdp_wall:.2f} s (SCS {sdp_solve:.2f} s), "
          f"{sdp.iterations} iterations", flush=True)

    if sdp_wall < ref_sdp_below:
        tight_sdp = anm.solve_sdp(problem, eps=1e-7, formulation=formulation)
        print(f"{size}: reference SDP eps 1e-7: {tight_sdp.runtime_s:.2f} s, "
              f"{tight_sdp.iterations} iterations; |H_sdp - H_admm| / |H| = "
              f"{rel_error(tight.H, tight_sdp.H):.1e}", flush=True)
        reference, ref_H = "SDP 1e-7", tight_sdp.H
    sdp_error = rel_error(sdp.H, ref_H)

    for tolerance in LADDER:
        admm = anm.solve_admm(problem, tolerance=tolerance, formulation=formulation)
        admm_error = rel_error(admm.H, ref_H)
        print(f"{size}: ADMM tol {tolerance:.0e}: {admm.runtime_s:.3f} s, "
              f"{admm.iterations} iterations, error {admm_error:.1e}", flush=True)
        if admm_error <= sdp_error:
            break
    return Row(size, reference, sdp_wall, sdp_solve, sdp.iterations, sdp_error, tolerance,
               admm.runtime_s, admm.iterations, admm_error)


def agreement(first_seed: int, formulation: anm.Formulation) -> None:
    """Print ADMM-vs-SDP differences, both solvers tight, on 8 test-sized problems."""
    worst_h = worst_objective = 0.0
    for seed in range(first_seed, first_seed + 8):
        problem = make_problem(7, 4, np.random.default_rng(seed), num_pilots=6, snr_db=20.0)
        sdp = anm.solve_sdp(problem, eps=1e-7, formulation=formulation)
        admm = anm.solve_admm(problem, tolerance=1e-7, max_iterations=20_000,
                              formulation=formulation)
        h = rel_error(admm.H, sdp.H)
        objective = abs(admm.objective - sdp.objective) / sdp.objective
        worst_h, worst_objective = max(worst_h, h), max(worst_objective, objective)
        print(f"seed {seed}: converged SDP {sdp.converged}, ADMM {admm.converged} "
              f"({admm.iterations} iterations); |H_admm - H_sdp| / |H_sdp| = {h:.1e}, "
              f"objective {objective:.1e}", flush=True)
    print(f"worst over seeds {first_seed}-{first_seed + 7}: H {worst_h:.1e}, "
          f"objective {worst_objective:.1e}")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        K, N = item.lower().split("x")
        sizes.append((int(K), int(N)))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated KxN (subcarriers x antennas); "
                             f"default {DEFAULT_SIZES}")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_SIZES}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=60.0,
                        help="stop after the first size whose SDP takes longer [s]")
    parser.add_argument("--ref-sdp-below", type=float, default=10.0,
                        help="also solve the SDP at eps 1e-7 (the reference) when its eps 1e-4 "
                             "solve took less [s]")
    parser.add_argument("--agreement", action="store_true",
                        help="ADMM vs SDP, both tight, on 8 test-sized problems (no timing)")
    parser.add_argument("--formulation", choices=anm.FORMULATIONS, default="hankel",
                        help="the lifted matrix both solvers use (default: the paper's)")
    args = parser.parse_args()
    if args.agreement:
        agreement(args.seed, args.formulation)
        return
    sizes = parse_sizes(QUICK_SIZES if args.quick else args.sizes)
    _record_solve_time()
    print(f"formulation {args.formulation}; seed {args.seed}; {PATHS} paths, "
          f"{SNR_DB:g} dB SNR, G = {PILOTS} pilots; "
          f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for K, N in sizes:
        rows.append(bench_size(K, N, args.seed, args.ref_sdp_below, args.formulation))
        if rows[-1].sdp_wall > args.limit:
            break
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (1 min), "
          f"{os.getloadavg()[1]:.2f} (5 min)")
    print(f"seed {args.seed}; errors are |H - H_ref| / |H_ref|; times are wall [s]")
    print("| size | reference | SDP (eps 1e-4) | SCS solve | SDP iter | SDP error "
          "| ADMM tol | ADMM | ADMM iter | ADMM error | SDP / ADMM |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.size} | {r.reference} | {r.sdp_wall:.2f} s | {r.sdp_solve:.2f} s "
              f"| {r.sdp_iterations} | {r.sdp_error:.1e} | {r.admm_tolerance:.0e} "
              f"| {r.admm_wall:.3f} s | {r.admm_iterations} | {r.admm_error:.1e} "
              f"| {r.ratio:.1f}x |")
    under = [r for r in rows if r.sdp_wall <= args.limit]
    if under:
        r = under[-1]
        print(f"largest size with the SDP under {args.limit:g} s: {r.size}: "
              f"SDP / ADMM = {r.ratio:.1f}x (SCS solve alone / ADMM = "
              f"{r.sdp_solve / r.admm_wall:.1f}x)")


if __name__ == "__main__":
    main()
