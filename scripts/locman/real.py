"""LOCMAN and DCS-SOMP with their defaults on small real (ray-traced) runs: BSs on masts.

    .venv/bin/python -m scripts.locman.real [--snr-db 20] [--seed 1] [--runs mast,blocked]
    .venv/bin/python -m scripts.locman.real --paper-coverage 64
    .venv/bin/python -m scripts.locman.real --bench office,street [--per-bs]

``--bench DRIVES``: instead, LOCMAN with its defaults on the bench's ``ue_array`` runs
(``/work/bench/<drive>/ue_array/ue_array.h5``, ``--bench-root``), on the snapshots
``scripts/bench_suite.py`` estimates (``step//2 : T : step``, ``step = ceil(T/3)``), the
observation as ``twin estimate`` sounds it (the run's seed, ``--snr-db``): per snapshot
the chosen BS, the error and reported sigma, the paper's bound (``Estimator.crlb``: least
over BSs) and, at the chosen BS, the paper's bound and that of the model LOCMAN refits
(every path with its ground bounce, :func:`estimators.locman.bound.locman_bounds` with
``ground_height``), the fitted LOS against free space (diagnostic
``los_free_space_db``) and, where refused, the reason; ``--per-bs``: LOCMAN at every BS
alone too.

``--paper-coverage N``: instead, the calibration of the reported covariance on the
paper's setting (``LocmanScenario``, N trials at ``--snr-db``, seed 2026): RMSE, the
median bound and the 95 % coverage of both estimators.

Each run is a mesh written here and traced by Sionna RT (depth 2: ground and wall
bounces and their pairs), 28 GHz, 100 MHz on 15 subcarriers (c/Δf = 45 m, beyond every
path), BS 1x8 ULAs 6 m up on masts, UE 1x4 ULA at 1.5 m facing the BS side:

* ``mast``: one BS, a concrete ground and one wall 10 m beside the drive (LOS, ground
  bounce 0.2-1.4 m behind it, wall bounce, wall-ground pairs);
* ``no-ground``: ``mast`` without its ground (LOCMAN still models one at 0 m: its cost);
* ``blocked``: the same with a tall screen between the BS and the drive: no LOS (and no
  ground bounce) at the BS, the wall bounce and its ground pair only;
* ``two``: ``blocked`` plus a second BS with LOS, on the drive's other side.

Per run and estimator (defaults: ``num_paths="auto"``, ``bs="auto"``, the run's service
area and UE height): the horizontal UE error against the position bound
(``Estimator.crlb``), converged share, wild fixes (> 5 m, converged) and those not
covered at 99 % by the reported covariance, the 95 % coverage, the chosen BS and the
runtime per snapshot. Numbers of ``docs/estimators/locman.md`` ("On real drives").
BLAS threads are limited to one (before numpy loads).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from estimators.base import Estimator
from estimators.locman.baselines import DcsSomp
from estimators.locman.estimators import Locman
from tests.conftest import Quad, write_obj
from twin.config import parse_config
from twin.runfile import RunData
from twin.simulate import simulate
from twin.sounding import channel_truth, observation_from_run

#: Chi-square quantiles of 2 degrees of freedom: the 95 % and 99 % ellipses.
CHI2_95, CHI2_99 = 5.991, 9.210
#: The drive: UE positions (x, y) [m], at 1.5 m.
DRIVE = [(x, y) for x, y in zip(np.linspace(9.0, 27.0, 7), [0.0, 1.5, 3.0, 1.0, 2.5, 0.5, 2.0],
                                strict=True)]
UE_HEIGHT = 1.5
BS_HEIGHT = 6.0

GROUND: dict[str, Quad] = {"ground": ((-100.0, -100.0, 0.0), (200.0, 0.0, 0.0), (0.0, 200.0, 0.0))}
WALL: dict[str, Quad] = {"wall": ((-100.0, 10.0, 0.0), (200.0, 0.0, 0.0), (0.0, 0.0, 30.0))}
#: A screen 4 m in front of BS 0 up to y = 2.5 m: it blocks the LOS to the drive (and the
#: ground bounce beneath it), not the wall bounce.
SCREEN: dict[str, Quad] = {"screen": ((4.0, -30.0, 0.0), (0.0, 32.5, 0.0), (0.0, 0.0, 40.0))}
BS0 = {"name": "bs0", "position": [0.0, 0.0, BS_HEIGHT], "orientation": [0.0, 0.0, 0.0],
       "array": {"rows": 1, "cols": 8}}
BS1 = {"name": "bs1", "position": [36.0, -2.0, BS_HEIGHT], "orientation": [np.pi, 0.0, 0.0],
       "array": {"rows": 1, "cols": 8}}
RUNS: dict[str, tuple[dict[str, Quad], list[dict[str, Any]]]] = {
    "mast": ({**GROUND, **WALL}, [BS0]),
    "no-ground": (WALL, [BS0]),
    "blocked": ({**GROUND, **WALL, **SCREEN}, [BS0]),
    "two": ({**GROUND, **WALL, **SCREEN}, [BS0, BS1]),
}


def real_run(name: str, folder: Path, drive: Sequence[tuple[float, float]] = DRIVE,
             num_subcarriers: int = 15) -> RunData:
    """Trace run ``name`` of :data:`RUNS` (UE yaw π: its ULA's broadside towards -x)."""
    quads, bss = RUNS[name]
    scene = write_obj(folder / f"{name}.obj", quads)
    config = {
        "seed": 1, "scene": {"file": scene.name},
        "radio": {"frequency_hz": 28e9, "bandwidth_hz": 100e6,
                  "num_subcarriers": num_subcarriers},
        "base_stations": bss,
        "ue": {"array": {"rows": 1, "cols": 4}, "orientation": [np.pi, 0.0, 0.0],
               "positions": [[x, y, UE_HEIGHT] for x, y in drive]},
        "tracing": {"max_depth": 2, "refraction": False, "samples_per_src": 100_000},
    }
    return simulate(parse_config(config, name), folder).run


def evaluate(run: RunData, estimator: Estimator, snr_db: float, seed: int) -> dict[str, Any]:
    """``estimator`` on ``run`` at ``snr_db``, as ``twin estimate`` sounds it: errors,
    bound, integrity."""
    obs = observation_from_run(run, rng=np.random.default_rng(seed), seed=seed, snr_db=snr_db,
                               **estimator.sounding)
    truth = [channel_truth(run, b) for b in range(len(run.bs_name))]
    start = time.perf_counter()
    est = estimator.estimate(obs)
    runtime = (time.perf_counter() - start) / obs.num_snapshots
    bound = estimator.crlb(obs, truth).position_error_bound
    err = est.ue_position[:, :2] - run.drive.position[:, :2]
    dist = np.linalg.norm(err, axis=1)
    assert est.position_covariance is not None
    cov = est.position_covariance[:, :2, :2]
    m2 = np.array([e @ np.linalg.solve(c, e) if np.all(np.isfinite(c)) else np.nan
                   for e, c in zip(err, cov, strict=True)])
    ok = est.converged
    wild = ok & (dist > 5.0)
    return {
        "error": dist, "bound": bound, "converged": ok, "reason": est.reason,
        "los": np.array([t.los for t in truth]).T, "bs": est.diagnostics.get("bs"),
        "wild": int(wild.sum()), "confident_wild": int(np.sum(wild & ~(m2 <= CHI2_99))),
        "coverage_95": float(np.mean(m2[ok] <= CHI2_95)) if ok.any() else float("nan"),
        "sigma": np.sqrt(np.trace(cov, axis1=1, axis2=2)), "runtime_s": runtime,
        "diagnostics": est.diagnostics,
    }


def summary(name: str, r: dict[str, Any]) -> str:
    ok = r["converged"]
    e = r["error"][ok]
    med = f"{np.median(e):.3f}" if ok.any() else "-"
    p90 = f"{np.percentile(e, 90):.3f}" if ok.any() else "-"
    return (f"{name:9s} conv {ok.sum()}/{ok.size}  median {med} m  p90 {p90} m  "
            f"bound median {np.nanmedian(r['bound']):.4f} m  wild {r['wild']}  "
            f"confident wild {r['confident_wild']}  coverage95 {r['coverage_95']:.2f}  "
            f"{r['runtime_s']:.2f} s/snapshot")


def paper_coverage(trials: int, snr_db: float) -> None:
    """The reported covariance's 95 % coverage on the paper's own setting."""
    from estimators.locman.scenario import LocmanScenario

    for estimator in (Locman(), DcsSomp()):
        obs, truth = LocmanScenario().observation(trials, np.random.default_rng(2026), snr_db)
        est = estimator.estimate(obs)
        assert est.position_covariance is not None
        err = est.ue_position[:, :2] - truth.ue_position[:, :2]
        m2 = np.array([e @ np.linalg.solve(c, e) for e, c in
                       zip(err, est.position_covariance[:, :2, :2], strict=True)])
        peb = estimator.crlb(obs, truth).position_error_bound
        print(f"{estimator.name:9s} RMSE {np.sqrt(np.mean(np.sum(err**2, 1))):.4f} m  "
              f"bound median {np.median(peb):.4f} m  coverage95 {np.mean(m2 <= CHI2_95):.2f}  "
              f"variance factor median {np.median(est.diagnostics['variance_factor']):.1f}")


def bench_drive(path: Path, snr_db: float, per_bs: bool) -> None:
    """LOCMAN's defaults on a bench ``ue_array`` run (module docstring, ``--bench``)."""
    import math

    from estimators.locman.bound import locman_bounds
    from estimators.observe import select_snapshots
    from twin.estimate import algorithm_rng, resolve_noise
    from twin.runfile import read_run

    run = read_run(path)
    T = run.drive.num_snapshots
    step = max(1, math.ceil(T / 3))
    index = np.arange(step // 2, T, step)
    obs = observation_from_run(run, rng=algorithm_rng(run.seed, "locman"), seed=run.seed,
                               **Locman.sounding, **resolve_noise(snr_db, None, None))
    truth = [channel_truth(run, b) for b in range(obs.num_bs)]
    chosen = select_snapshots(obs, index)
    estimators = [("auto", Locman())] + ([(f"BS {b}", Locman(bs=b)) for b in
                                          range(obs.num_bs)] if per_bs else [])
    paper = Locman().crlb(obs, truth).position_error_bound[index]
    print(f"== {path}: snapshots {index.tolist()}, paper's bound (least over BSs) "
          f"{np.round(paper * 1e3, 2).tolist()} mm, median {np.median(paper) * 1e3:.2f} mm")
    for label, estimator in estimators:
        start = time.perf_counter()
        est = estimator.estimate(chosen)
        runtime = (time.perf_counter() - start) / index.size
        err = np.linalg.norm(est.ue_position[:, :2] - run.drive.position[index, :2], axis=1)
        assert est.position_covariance is not None
        sigma = np.sqrt(np.trace(est.position_covariance[:, :2, :2], axis1=1, axis2=2))
        rows = []
        for i, t in enumerate(index):
            b = int(est.diagnostics["bs"][i]) if np.isfinite(est.diagnostics["bs"][i]) else 0
            at = [np.nan, np.nan]
            for L in range(3, 0, -1):  # the most model paths the truth has (<= 3)
                at[0] = locman_bounds(obs, truth[b], L, b).bound.position_error_bound[t]
                if np.isfinite(at[0]):
                    at[1] = locman_bounds(obs, truth[b], L, b, 0.0).bound.position_error_bound[t]
                    break
            los = est.diagnostics.get("los_free_space_db", np.full(index.size, np.nan))[i]
            rows.append(f"t{t} BS{b} {err[i] * 1e3:7.1f} mm (sigma {sigma[i] * 1e3:6.1f}, "
                        f"bound here {at[0] * 1e3:6.2f} / with ground {at[1] * 1e3:6.2f}, "
                        f"LOS {los:+.1f} dB vs free space) "
                        f"{'' if est.converged[i] else est.reason[i][:120]}")
        ok = est.converged
        med = np.median(err[ok]) if ok.any() else np.nan
        print(f"  {label:6s} median {med * 1e3:7.1f} mm = {med / np.median(paper):5.1f}x the "
              f"bound, p90 {np.percentile(err[ok], 90) if ok.any() else np.nan:.3f} m, "
              f"converged {ok.sum()}/{ok.size}, {runtime:.0f} s/snapshot")
        for row in rows:
            print("     " + row)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", default="mast,no-ground,blocked,two")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--paper-coverage", type=int, default=0)
    parser.add_argument("--bench", default="", help="bench drives, e.g. office,street")
    parser.add_argument("--bench-root", default="/work/bench")
    parser.add_argument("--per-bs", action="store_true")
    args = parser.parse_args(argv)
    if args.bench:
        for drive in args.bench.split(","):
            bench_drive(Path(args.bench_root) / drive / "ue_array" / "ue_array.h5",
                        args.snr_db, args.per_bs)
        return
    if args.paper_coverage:
        paper_coverage(args.paper_coverage, args.snr_db)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.runs.split(","):
            run = real_run(name, Path(tmp))
            los = [list(map(int, channel_truth(run, b).los)) for b in range(len(run.bs_name))]
            print(f"== {name}: LOS per BS {los}")
            for estimator in (Locman(), DcsSomp()):
                r = evaluate(run, estimator, args.snr_db, args.seed)
                print(summary(estimator.name, r))
                if args.verbose:
                    d = r["diagnostics"]
                    for t in range(r["error"].size):
                        print(f"   t{t} err {r['error'][t]:8.3f} sigma {r['sigma'][t]:8.3f} "
                              f"peb {r['bound'][t]:.4f} bs {d.get('bs', [np.nan]*99)[t]:.0f} "
                              f"L {d['num_paths'][t]:.0f} rf {d['residual_factor'][t]:8.1f} "
                              f"gf {d['geometry_factor'][t]:9.1f} unexpl {d['unexplained'][t]:.3f} "
                              f"earlier {d['earlier_m'][t]:6.2f} "
                              f"vf {d.get('variance_factor', [np.nan] * 99)[t]:7.1f} "
                              f"ground shift {d.get('ground_shift_m', [np.nan] * 99)[t]:.3f} "
                              f"{r['reason'][t][:90]}")


if __name__ == "__main__":
    main()
