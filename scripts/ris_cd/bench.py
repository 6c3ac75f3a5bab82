"""Sang et al.'s RIS design vs RIS size: the paper's S-procedure LMIs (``lmi="compact"``)
against the closed-form robust distance with tangent QoS gains (``lmi="norm"``), same
instance, same run; prints each time, the ratio and both worst-case objectives.

    .venv/bin/python -m scripts.ris_cd.bench [--elements 4,8,16,32,64] [--compact-max 16]

Instance: :class:`estimators.ris_cd.scenario.RisCdScenario` over a 6 x 6 m area in 2 m
blocks (9 blocks, the 12 nearest-neighbour pairs), ``P = 4`` pilots, a 1 bit/s/Hz rate
target on 3 blocks at 10 dB, 5 % CSI errors; the RIS ``rows x cols`` grows with ``N``.
The compact form is skipped above ``--compact-max`` elements (its time grows steeply with
``N``, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses

import numpy as np

from estimators.ris_cd.design import (
    DesignProblem,
    design_ris,
    neighbour_pairs,
    random_phases,
    uniform_phases,
    worst_case_distance_sq,
    worst_case_rates,
)
from estimators.ris_cd.scenario import RisCdScenario

SHAPES = {4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8)}


def problem(num_elements: int) -> DesignProblem:
    scenario = dataclasses.replace(RisCdScenario(), ris_shape=SHAPES[num_elements],
                                   num_pilots=4, block_size=2.0,
                                   area=((31.0, -3.0), (37.0, 3.0)))
    rng = np.random.default_rng(5)
    realization = scenario.realize(rng)
    a_hat, eps = scenario.estimated_matrices(realization, scenario.map_errors(realization, rng))
    blocks = scenario.block_positions()
    return DesignProblem(
        fingerprint_matrices=a_hat, block_positions=blocks,
        neighbours=neighbour_pairs(blocks, 1.01 * scenario.block_size), error_bound=eps,
        qos_blocks=np.array([0, 4, 8]), rate_min=1.0, pilot_power=np.ones(4),
        noise_variance=scenario.noise_variance(realization, 10.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--elements", default="4,8,16,32,64")
    parser.add_argument("--compact-max", type=int, default=16)
    args = parser.parse_args()
    print("N  pairs  compact [s]  norm [s]  ratio  objective compact / norm / uniform / "
          "best of 200 random meeting the rate")
    for n in (int(v) for v in args.elements.split(",")):
        p = problem(n)
        norm = design_ris(p, rng=np.random.default_rng(0), lmi="norm")
        compact = (design_ris(p, rng=np.random.default_rng(0), lmi="compact")
                   if n <= args.compact_max else None)
        rng = np.random.default_rng(1)
        draws = [random_phases(n, rng) for _ in range(200)]
        # The draws that meet the rate target, as the designs must.
        best_random = max((float(np.min(worst_case_distance_sq(p, theta))) for theta in draws
                           if np.all(worst_case_rates(p, theta)[p.qos_blocks] >= p.rate_min)),
                          default=float("nan"))
        uniform = float(np.min(worst_case_distance_sq(p, uniform_phases(n))))
        c_time = f"{compact.solve_time_s:11.1f}" if compact else f"{'skipped':>11s}"
        ratio = f"{compact.solve_time_s / norm.solve_time_s:5.1f}" if compact else "    -"
        c_obj = f"{compact.objective:.3g}" if compact else "-"
        print(f"{n:<2d} {len(p.neighbours):5d}  {c_time}  {norm.solve_time_s:8.1f}  {ratio}  "
              f"{c_obj} / {norm.objective:.3g} / {uniform:.3g} / {best_random:.3g}"
              f"{'' if norm.converged else '  (norm: ' + norm.reason + ')'}", flush=True)


if __name__ == "__main__":
    main()
