"""SLAB with its defaults on real multi-BS runs with BSs on masts above the UE.

    .venv/bin/python -m scripts.slab.real [--runs mast,screened,canyon] [--snr-db 20] [--seed 7]
        [--snapshots 7] [--set key=value ...]

Runs (real Sionna traces, simulated here):

* ``mast``: the test scene of ``tests/twin/test_real_slab.py``: a ground plane, two
  street walls (y = ±12 m) and an end wall (x = 40 m); three BSs with 1x4 ULAs on 8 m
  masts (``MAST_BS``); a UE 1x4 ULA at 1.5 m, yaw 0.3 rad, driving along y = 2 m;
  28 GHz, 32 subcarriers over 25 MHz (32 does not divide by 3: SLAB uses 30), depth 1.
* ``screened``: ``mast`` with a screen (``SCREEN``) that blocks BS 2's LOS along the
  whole drive (the model's premise, the LOS of every BS, does not hold).
* ``canyon``: Sionna's built-in ``simple_street_canyon``, three BSs on 9 m masts
  (``CANYON_BS``), the same arrays and radio, depth 3 (multi-bounce paths too).

``twin estimate``'s path: ``observation_from_run`` with ``Slab.sounding``, then
``slab`` and ``slab-lce`` with their defaults (``--set`` overrides, e.g.
``--set num_nlos=2``). Per estimator: the horizontal UE error (median, p90), the median
bound (``crlb``), converged count, wild (converged and > 5 m off) and confident-wild
counts, ``coverage_95`` of the reported covariance (``twin.scoring.integrity_metrics``),
the median residual ratio and the runtime per snapshot.
"""

from __future__ import annotations

import argparse
import ast
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from estimators import ESTIMATORS
from tests.conftest import Quad, write_obj

#: (position [m], yaw [rad]) of the BSs of the ``mast`` run: 8 m masts over a UE at 1.5 m.
MAST_BS = (((0.0, -10.0, 8.0), np.pi / 2), ((-30.0, 10.0, 8.0), -np.pi / 2),
           ((30.0, 10.0, 8.0), -np.pi / 2))
#: The ``mast`` drive: along y = 2 m at 1.5 m.
MAST_DRIVE = ((-15.0, 2.0, 1.5), (15.0, 2.0, 1.5))
CANYON_BS = (((0.0, -8.0, 9.0), np.pi / 2), ((-30.0, 12.0, 9.0), -np.pi / 2),
             ((30.0, 12.0, 9.0), -np.pi / 2))
CANYON_DRIVE = ((-20.0, 5.0, 1.5), (20.0, 5.0, 1.5))
UE_YAW = 0.3
RADIO = {"frequency_hz": 28e9, "bandwidth_hz": 25e6, "num_subcarriers": 32}


#: The ``screened`` run's screen: a 12 m high quad on y = 7 m from x = 10 to 45 m, between
#: BS 2 and the drive (its LOS blocked at every snapshot; the north wall's echo passes
#: west of the screen's end where the UE is at x < -4 m).
SCREEN: Quad = ((10.0, 7.0, 0.0), (35.0, 0.0, 0.0), (0.0, 0.0, 12.0))


def _quads(path: Path, *, screened: bool = False) -> Path:
    """The ``mast`` scene: ground, two street walls, an end wall (OBJ quads); with
    ``screened``, :data:`SCREEN` too."""
    quads: dict[str, Quad] = {
        "ground": ((-100.0, -100.0, 0.0), (200.0, 0.0, 0.0), (0.0, 200.0, 0.0)),
        "wall_north": ((-100.0, 12.0, 0.0), (200.0, 0.0, 0.0), (0.0, 0.0, 20.0)),
        "wall_south": ((-100.0, -12.0, 0.0), (200.0, 0.0, 0.0), (0.0, 0.0, 20.0)),
        "wall_east": ((40.0, -12.0, 0.0), (0.0, 24.0, 0.0), (0.0, 0.0, 20.0)),
        **({"screen": SCREEN} if screened else {}),
    }
    return write_obj(path, quads)


def config(scene: str, stations: Any, drive: Any, snapshots: int, depth: int
           ) -> dict[str, Any]:
    """A config mapping: BSs ``stations``, a straight drive of ``snapshots`` samples."""
    (x0, y0, _), (x1, y1, _) = drive
    length = float(np.hypot(x1 - x0, y1 - y0))
    speed = 10.0
    period = length / speed / max(snapshots - 1, 1)
    return {
        "seed": 1, "scene": {"file": scene}, "radio": dict(RADIO),
        "base_stations": [{"name": f"bs{j}", "position": list(p),
                           "orientation": [yaw, 0.0, 0.0], "array": {"rows": 1, "cols": 4}}
                          for j, (p, yaw) in enumerate(stations)],
        "ue": {"array": {"rows": 1, "cols": 4}, "orientation": [UE_YAW, 0.0, 0.0],
               "trajectory": {"waypoints": [list(drive[0]), list(drive[1])],
                              "speed_mps": speed, "sample_period_s": period}},
        "tracing": {"max_depth": depth, "samples_per_src": 100_000, "refraction": False},
    }


def simulate_run(kind: str, snapshots: int, directory: Path) -> Any:
    from twin.config import parse_config
    from twin.simulate import simulate

    if kind in ("mast", "screened"):
        scene = _quads(directory / f"{kind}.obj", screened=kind == "screened")
        cfg = config(scene.name, MAST_BS, MAST_DRIVE, snapshots, depth=1)
    else:
        cfg = config("builtin:simple_street_canyon", CANYON_BS, CANYON_DRIVE, snapshots,
                     depth=3)
    return simulate(parse_config(cfg, kind), directory).run


def evaluate(run: Any, name: str, *, snr_db: float, seed: int,
             settings: dict[str, Any]) -> dict[str, float]:
    """``name`` with ``settings`` on ``run`` as ``twin estimate`` runs it: the row of the
    module docstring."""
    from twin.scoring import integrity_metrics
    from twin.sounding import channel_truth, observation_from_run

    cls = ESTIMATORS[name]
    obs = observation_from_run(run, rng=np.random.default_rng(seed), seed=seed,
                               snr_db=snr_db, **cls.sounding)
    estimator = cls(**settings)
    start = time.perf_counter()
    est = estimator.estimate(obs, np.random.default_rng(seed))
    elapsed = time.perf_counter() - start
    truth = tuple(channel_truth(run, bs=j) for j in range(obs.num_bs))
    bound = estimator.crlb(obs, truth).position_error_bound
    true_xy = run.drive.position[:, :2]
    err = np.linalg.norm(est.ue_position[:, :2] - true_xy, axis=1)
    ok = est.converged
    integrity = integrity_metrics(est, run.drive.position, dimensions=2)
    return {
        "snapshots": float(len(err)), "converged": float(ok.sum()),
        "median_m": float(np.median(err[ok])) if ok.any() else np.nan,
        "p90_m": float(np.percentile(err[ok], 90)) if ok.any() else np.nan,
        "median_all_m": float(np.nanmedian(err)),
        "bound_median_m": float(np.nanmedian(bound)),
        "wild": float(integrity["wild"]), "confident_wild": float(integrity["confident_wild"]),
        "coverage_95": float(integrity["coverage_95"] if integrity["coverage_95"]
                             is not None else np.nan),
        "residual_ratio_median": float(np.nanmedian(est.diagnostics["residual_ratio"])),
        "runtime_s_per_snapshot": elapsed / len(err),
        "errors": err, "converged_mask": ok, "bound": bound,
        "ratios": est.diagnostics["residual_ratio"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", default="mast,screened,canyon")
    parser.add_argument("--estimators", default="slab,slab-lce")
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--snapshots", type=int, default=7)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    settings: dict[str, Any] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        settings[key] = ast.literal_eval(value)  # numbers, None, tuples
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.runs.split(","):
            start = time.perf_counter()
            run = simulate_run(kind, args.snapshots, Path(tmp))
            print(f"{kind}: {run.drive.num_snapshots} snapshots simulated in "
                  f"{time.perf_counter() - start:.0f} s; settings {settings}")
            for name in args.estimators.split(","):
                row = evaluate(run, name, snr_db=args.snr_db, seed=args.seed,
                               settings=settings)
                shown = {k: v for k, v in row.items() if not isinstance(v, np.ndarray)}
                print(f"  {name}: " + ", ".join(f"{k}={v:.3g}" for k, v in shown.items()))
                if args.verbose:
                    print("    errors", np.round(row["errors"], 3))
                    print("    converged", np.asarray(row["converged_mask"]).astype(int))
                    print("    bound", np.round(row["bound"], 3))
                    print("    ratio", np.round(row["ratios"], 1))


if __name__ == "__main__":
    main()
