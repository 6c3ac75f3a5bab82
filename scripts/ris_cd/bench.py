"""Sang et al.'s RIS design vs RIS size: the paper's S-procedure LMIs (``lmi="compact"``),
the closed-form robust distance with tangent QoS gains (``lmi="norm"``), both SDR + SCA,
and the prox-linear ascent on the phases (:func:`estimators.ris_cd.phases.design_ris_phases`),
same instance, same run; prints each time, the ratios and the worst-case objectives.

    .venv/bin/python -m scripts.ris_cd.bench [--elements 4,8,16,32,64] [--compact-max 16]
        [--tile 32] [--tile-groups 8] [--twin] [--twin-sdr-all]

Instance: :class:`estimators.ris_cd.scenario.RisCdScenario` over a 6 x 6 m area in 2 m
blocks (9 blocks, the 12 nearest-neighbour pairs), ``P = 4`` pilots, a 1 bit/s/Hz rate
target on 3 blocks at 10 dB, 5 % CSI errors; the RIS ``rows x cols`` grows with ``N``.
The compact form is skipped above ``--compact-max`` elements (its time grows steeply with
``N``, docs/BENCHMARKS.md).

``--tile T``: the same instance on a ``T x T`` RIS: the phase design per element, and the
norm SDR against the phase design on ``--tile-groups g`` (``g x g`` sub-arrays of
``T/g x T/g`` elements, one phase each; :func:`estimators.ris_cd.phases.group_problem`),
on the exact map (``ε = 0``: with the 5 % errors neither grouped design separates a pair in
the worst case), every objective scored per element. ``--twin``: the
twin's instance of ``scripts/ris_cd/figures.py``
(``scenes/office_floor/ris_positioning.yaml``, 80 blocks of
0.5 m, 16 subcarriers, the tile in 4 x 4 groups, 0.5 bit/s/Hz on every 6th block at a
10 dB design SNR, exact map): both designs on the 8 nearest blocks' pairs (268) with the
figure's SDR settings, scored on all 3 122 pairs within the prior's radius too, and the
phase design on all 3 122 (the SDR there, ~10 min, only with ``--twin-sdr-all``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import dataclasses
import time
import warnings
from typing import Any

import numpy as np

from estimators.ris_cd.design import (
    DesignProblem,
    DesignResult,
    design_ris,
    neighbour_pairs,
    random_phases,
    uniform_phases,
    worst_case_distance_sq,
    worst_case_rates,
)
from estimators.ris_cd.phases import design_ris_phases, expand_groups, group_problem
from estimators.ris_cd.scenario import RisCdScenario

SHAPES = {4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8)}
#: The twin designs' SDR settings of scripts/ris_cd/figures.py.
FIGURE_SDR: dict[str, Any] = {"lmi": "norm", "max_iterations": 10,
                              "solver_options": {"max_iters": 20_000}}


def problem(num_elements: int, shape: tuple[int, int] | None = None) -> DesignProblem:
    scenario = dataclasses.replace(RisCdScenario(), ris_shape=shape or SHAPES[num_elements],
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


def score(p: DesignProblem, theta: np.ndarray) -> str:
    """The worst-case objective (eq. 8) and the worst QoS rate (eq. 9) of ``theta``."""
    rate = float(np.min(worst_case_rates(p, theta)[p.qos_blocks], initial=np.inf))
    return f"{float(np.min(worst_case_distance_sq(p, theta))):.4g} (rate {rate:.3f})"


def timed(label: str, result: DesignResult, p: DesignProblem, theta: np.ndarray | None = None,
          scored: DesignProblem | None = None) -> None:
    theta = result.theta if theta is None else theta
    extra = f"; on all pairs {score(scored, theta)}" if scored is not None else ""
    print(f"  {label:34s} {result.solve_time_s:7.1f} s  objective {score(p, theta)}{extra}"
          f"{'' if result.converged else '  (' + result.reason + ')'}", flush=True)


def sizes(elements: list[int], compact_max: int) -> None:
    print("N  pairs  compact [s]  norm [s]  phases [s]  norm/phases  objective compact / "
          "norm / phases / uniform / best of 200 random meeting the rate; phases' worst rate")
    for n in elements:
        p = problem(n)
        norm = design_ris(p, rng=np.random.default_rng(0), lmi="norm")
        phases = design_ris_phases(p, rng=np.random.default_rng(0))
        compact = (design_ris(p, rng=np.random.default_rng(0), lmi="compact")
                   if n <= compact_max else None)
        rng = np.random.default_rng(1)
        draws = [random_phases(n, rng) for _ in range(200)]
        # The draws that meet the rate target, as the designs must.
        best_random = max((float(np.min(worst_case_distance_sq(p, theta))) for theta in draws
                           if np.all(worst_case_rates(p, theta)[p.qos_blocks] >= p.rate_min)),
                          default=float("nan"))
        uniform = float(np.min(worst_case_distance_sq(p, uniform_phases(n))))
        c_time = f"{compact.solve_time_s:11.1f}" if compact else f"{'skipped':>11s}"
        c_obj = f"{compact.objective:.4g}" if compact else "-"
        notes = [f"{name}: {r.reason}" for name, r in (("norm", norm), ("phases", phases))
                 if not r.converged]
        print(f"{n:<2d} {len(p.neighbours):5d}  {c_time}  {norm.solve_time_s:8.1f}  "
              f"{phases.solve_time_s:10.1f}  {norm.solve_time_s / phases.solve_time_s:11.2f}  "
              f"{c_obj} / {norm.objective:.4g} / {phases.objective:.4g} / {uniform:.3g} / "
              f"{best_random:.3g}; {np.min(phases.rates):.4f}"
              f"{'  (' + '; '.join(notes) + ')' if notes else ''}", flush=True)


def tile(size: int, groups: int) -> None:
    p = problem(size * size, (size, size))
    print(f"{size} x {size} tile: {p.num_elements} elements, {len(p.neighbours)} pairs, "
          f"rate target {p.rate_min} bit/s/Hz on {p.qos_blocks.size} blocks")
    element = design_ris_phases(p, rng=np.random.default_rng(0))
    timed("phases, per element", element, p)
    side = size // groups
    rows, cols = np.divmod(np.arange(size * size), size)
    group = (rows // side) * groups + cols // side
    # With the map's 5 % errors neither grouped design separated any pair robustly (each
    # worst case clipped at 0, measured: ε √N stays, the gains shrink): the grouped
    # designs are compared on the exact map (ε = 0), as the twin's.
    grouped = dataclasses.replace(group_problem(p, group), error_bound=np.zeros(p.num_blocks))
    exact = dataclasses.replace(p, error_bound=np.zeros(p.num_blocks))
    label = f"{groups} x {groups} groups, exact map"
    norm = design_ris(grouped, rng=np.random.default_rng(0), lmi="norm")
    phases = design_ris_phases(grouped, rng=np.random.default_rng(0))
    timed(f"norm SDR, {label}", norm, exact, expand_groups(norm.theta, group))
    timed(f"phases, {label}", phases, exact, expand_groups(phases.theta, group))
    print(f"  ratio norm / phases, {label}: {norm.solve_time_s / phases.solve_time_s:.1f}",
          flush=True)


def twin(sdr_all: bool) -> None:
    from estimators.ris_cd.model import confidence_radius
    from twin.config import load_config
    from twin.ris_positioning import design_matrices, mrt_precoder
    from twin.scene import BUNDLED_DIR, TwinWarning
    from twin.simulate import simulate

    start = time.perf_counter()
    config, base_dir = load_config(BUNDLED_DIR / "office_floor" / "ris_positioning.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        run = simulate(config, base_dir).run
    assert run.fingerprints is not None
    A, _ = design_matrices(run, mrt_precoder(run), groups=(4, 4))
    blocks = run.fingerprints.block_positions
    n = A.shape[-1] - 1
    noise = float(np.mean(np.abs(A @ np.ones(n + 1)) ** 2)) / 10.0  # 10 dB design SNR
    adjacent = DesignProblem(
        fingerprint_matrices=A, block_positions=blocks,
        neighbours=neighbour_pairs(blocks, 1.01 * np.sqrt(2) * run.fingerprints.block_size[0]),
        error_bound=np.zeros(len(blocks)), qos_blocks=np.arange(0, len(blocks), 6),
        rate_min=0.5, pilot_power=np.ones(A.shape[1]), noise_variance=noise)
    within = dataclasses.replace(adjacent,
                                 neighbours=neighbour_pairs(blocks, confidence_radius(2.0, 0.95)))
    print(f"twin ({time.perf_counter() - start:.0f} s to simulate): {len(blocks)} blocks, "
          f"{A.shape[1]} subcarriers, {n} groups, rate target {adjacent.rate_min} bit/s/Hz on "
          f"{adjacent.qos_blocks.size} blocks; uniform θ {score(within, np.ones(n))}")
    for label, p in ((f"{len(adjacent.neighbours)} pairs", adjacent),
                     (f"all {len(within.neighbours)} pairs", within)):
        phases = design_ris_phases(p, rng=np.random.default_rng(0))
        if p is adjacent or sdr_all:
            norm = design_ris(p, rng=np.random.default_rng(0), **FIGURE_SDR)
            timed(f"norm SDR, {label}", norm, p, scored=within)
        timed(f"phases, {label}", phases, p, scored=within)
        if p is adjacent or sdr_all:
            print(f"  ratio norm / phases on {label}: "
                  f"{norm.solve_time_s / phases.solve_time_s:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--elements", default="4,8,16,32,64")
    parser.add_argument("--compact-max", type=int, default=16)
    parser.add_argument("--tile", type=int, default=0, help="a T x T tile (0: none)")
    parser.add_argument("--tile-groups", type=int, default=8)
    parser.add_argument("--twin", action="store_true", help="the twin's instance")
    parser.add_argument("--twin-sdr-all", action="store_true",
                        help="also the SDR on all the twin's pairs (~10 min)")
    args = parser.parse_args()
    if args.elements:
        sizes([int(v) for v in args.elements.split(",")], args.compact_max)
    if args.tile:
        tile(args.tile, args.tile_groups)
    if args.twin:
        twin(args.twin_sdr_all)


if __name__ == "__main__":
    main()
