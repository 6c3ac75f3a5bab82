"""LOCMAN at drive size: the paper's lifted matrix vs the decoupled one, side by side, in
one run, each with its accuracy against the CRLB.

    .venv/bin/python -m scripts.locman.bench_drive [--trials 16] [--snr-db 20] [--seed 1]
        [--run bench-suite/street/ue_array/ue_array.h5 --snapshots 2,5,11,16]
    .venv/bin/python -m scripts.locman.bench_drive --run RUN --profile 5 [--snr-db 10]

Two denoisers of :mod:`estimators.locman.anm` inside the whole estimator
(``Locman(formulation=...)``, every other setting its default):

* ``hankel``: the paper's block-Hankel virtual channel (eqs. 5-6), ``Θ`` of order
  ``L1 Nr + L2 Nt`` (392 at 64 subcarriers, BS 1x8, UE 1x4);
* ``decoupled``: the channel as a ``[subcarrier, rx_ant tx_ant]`` matrix, ``Θ`` of order
  ``K + Nr Nt`` (96 there).

On the paper's model (:class:`estimators.locman.scenario.LocmanScenario`, ``--trials``
independent trials at ``--snr-db``), at two sizes: the drive's (64 subcarriers, BS 1x8,
UE 1x4) and the paper's (15 subcarriers, 8x8). Per formulation: the time per snapshot,
the position and yaw RMSE over the CRLB, and over the efficient estimator's on the same
noise (:func:`estimators.locman.bound.efficient_errors`, paired, with its 3-sigma margin:
``tests.tolerances.paired_rmse_margin``), then the decoupled RMSE over the paper's on the
same trials (paired, 3-sigma) and the largest difference of the two formulations' fixes.

``--run``: also a ue_array run of the twin (three BSs with 1x8 ULAs, a 1x4 UE; the suite's
cached ``OUT/<drive>/ue_array/ue_array.h5`` of ``scripts/bench_suite.py``): its
``--snapshots`` at ``--snr-db`` (LOCMAN's sounding, as ``twin estimate``), time per snapshot
(``bs="auto"``: every BS) and the UE error against the ray-traced truth.

``--profile T``: instead, where the time of snapshot ``T`` of ``--run`` goes, per
formulation (cProfile of the whole estimate, the functions of most own time).

BLAS is limited to one thread (set before numpy loads), as the estimator does itself.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from estimators.arrays import wrap_angle
from estimators.locman import anm
from estimators.locman.bound import efficient_errors, locman_bounds
from estimators.locman.estimators import Locman
from estimators.locman.scenario import LocmanScenario
from estimators.types import Observation
from tests.tolerances import paired_rmse_margin

#: (name, scenario): the drive's size and the paper's.
SETTINGS = (
    ("drive size: K=64, BS 1x8, UE 1x4",
     LocmanScenario(num_bs_antennas=8, num_ue_antennas=4, num_subcarriers=64)),
    ("paper: K=15, BS 1x8, UE 1x8", LocmanScenario()),
)


@dataclass
class Result:
    """One formulation on one observation: wall time per snapshot [s], the fixes
    ``[snapshot, 2]`` [m] and yaws ``[snapshot]`` [rad], converged ``[snapshot]``."""

    seconds_per_snapshot: float
    position: np.ndarray
    yaw: np.ndarray
    converged: np.ndarray


def run_estimator(obs: Observation, formulation: anm.Formulation) -> Result:
    start = time.perf_counter()
    est = Locman(formulation=formulation).estimate(obs, np.random.default_rng(0))
    wall = time.perf_counter() - start
    return Result(wall / obs.num_snapshots, est.ue_position[:, :2], est.ue_yaw, est.converged)


def rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(errors**2, axis=1))))


def model_setting(name: str, scenario: LocmanScenario, trials: int, snr_db: float,
                  seed: int) -> dict[str, Result]:
    obs, truth = scenario.observation(trials, np.random.default_rng(seed), snr_db)
    bound = locman_bounds(obs, truth, 3)
    efficient = efficient_errors(obs, truth, 3)
    assert truth.ue_orientation is not None
    peb = float(np.sqrt(np.mean(bound.bound.position_error_bound**2)))
    oeb = float(np.sqrt(np.mean(bound.orientation_error_bound**2)))
    lift = {f: sum(anm.lift_of(f, (scenario.num_subcarriers, scenario.num_ue_antennas,
                                    scenario.num_bs_antennas)).sizes)
            for f in anm.FORMULATIONS}
    print(f"\n{name}: {trials} trials at {snr_db:g} dB (seed {seed}); PEB {peb:.2e} m, "
          f"OEB {oeb:.2e} rad (RMS over trials); Θ order "
          + ", ".join(f"{f} {n}" for f, n in lift.items()), flush=True)
    results: dict[str, Result] = {}
    errors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    print("| formulation | s / snapshot | converged | pos. RMSE [m] | / PEB | paired "
          "(±3σ) | yaw RMSE [rad] | / OEB | paired (±3σ) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for formulation in anm.FORMULATIONS:
        r = results[formulation] = run_estimator(obs, formulation)
        pos_err = r.position - truth.ue_position[:, :2]
        yaw_err = np.asarray(wrap_angle(r.yaw - truth.ue_orientation[:, 0]))[:, None]
        errors[formulation] = pos_err, yaw_err
        cells = []
        for err, best, crlb in ((pos_err, efficient[:, :2], peb),
                                (yaw_err, efficient[:, 2:3], oeb)):
            paired = rmse(err) / rmse(best)
            margin = paired_rmse_margin(err, best) - 1.0
            cells.append(f"{rmse(err):.2e} | {rmse(err) / crlb:.2f} | {paired:.2f} "
                         f"(±{paired * margin:.2f})")
        print(f"| {formulation} | {r.seconds_per_snapshot:.3f} | "
              f"{int(r.converged.sum())}/{trials} | " + " | ".join(cells) + " |", flush=True)
    for what, i in (("position", 0), ("yaw", 1)):
        ours, reference = errors["decoupled"][i], errors["hankel"][i]
        paired = rmse(ours) / rmse(reference)
        margin = paired_rmse_margin(ours, reference) - 1.0
        print(f"decoupled / hankel {what} RMSE on the same trials: {paired:.2f} "
              f"(±{paired * margin:.2f}, 3σ)")
    h, d = results["hankel"], results["decoupled"]
    print(f"speed-up hankel / decoupled: "
          f"{h.seconds_per_snapshot / d.seconds_per_snapshot:.1f}x; largest difference of "
          f"the two fixes {np.max(np.linalg.norm(h.position - d.position, axis=1)):.2e} m")
    return results


def twin_run(path: Path, snapshots: list[int], snr_db: float, seed: int) -> None:
    from estimators.observe import select_snapshots
    from twin.runfile import read_run
    from twin.sounding import observation_from_run

    run = read_run(path)
    obs = observation_from_run(run, rng=np.random.default_rng(seed), seed=seed,
                               snr_db=snr_db, **Locman.sounding)
    obs = select_snapshots(obs, snapshots)
    truth = run.drive.position[snapshots, :2]
    print(f"\n{path}: snapshots {snapshots} at {snr_db:g} dB (seed {seed}); "
          f"{obs.num_bs} BSs, y {obs.y.shape}", flush=True)
    print("| formulation | s / snapshot | converged | UE error per snapshot [m] |")
    print("| --- | --- | --- | --- |")
    results = {}
    for formulation in anm.FORMULATIONS:
        r = results[formulation] = run_estimator(obs, formulation)
        errors = np.linalg.norm(r.position - truth, axis=1)
        print(f"| {formulation} | {r.seconds_per_snapshot:.2f} | "
              f"{int(r.converged.sum())}/{len(snapshots)} | "
              + ", ".join(f"{e:.4f}" for e in errors) + " |", flush=True)
    h, d = results["hankel"], results["decoupled"]
    print(f"speed-up hankel / decoupled on the run: "
          f"{h.seconds_per_snapshot / d.seconds_per_snapshot:.1f}x")


def profile(path: Path, snapshot: int, snr_db: float, seed: int) -> None:
    import cProfile
    import pstats

    from estimators.observe import select_snapshots
    from twin.runfile import read_run
    from twin.sounding import observation_from_run

    run = read_run(path)
    obs = observation_from_run(run, rng=np.random.default_rng(seed), seed=seed,
                               snr_db=snr_db, **Locman.sounding)
    obs = select_snapshots(obs, [snapshot])
    for formulation in anm.FORMULATIONS:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        Locman(formulation=formulation).estimate(obs, np.random.default_rng(0))
        profiler.disable()
        print(f"\n{path} snapshot {snapshot}, {snr_db:g} dB, {formulation}: "
              f"{time.perf_counter() - start:.2f} s", flush=True)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run", type=Path, help="a ue_array run file of the twin")
    parser.add_argument("--snapshots", default="2,5,11,16",
                        help="comma-separated snapshot indices of --run")
    parser.add_argument("--profile", type=int, metavar="T",
                        help="only profile snapshot T of --run, per formulation")
    args = parser.parse_args()
    if args.profile is not None:
        if args.run is None:
            parser.error("--profile needs --run")
        profile(args.run, args.profile, args.snr_db, args.seed)
        return
    print(f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    for name, scenario in SETTINGS:
        model_setting(name, scenario, args.trials, args.snr_db, args.seed)
    if args.run is not None:
        twin_run(args.run, [int(t) for t in args.snapshots.split(",")], args.snr_db,
                 args.seed)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (1 min), "
          f"{os.getloadavg()[1]:.2f} (5 min)")


if __name__ == "__main__":
    main()
