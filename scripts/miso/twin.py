"""MISO estimators on the twin: the bundled office drive, scored against ray-traced truth.

    .venv/bin/python -m scripts.miso.twin [--tx-power-dbm 20] [--seed 7]

Two runs of ``scenes/office_floor/drive.yaml`` (18 snapshots, depth 3): the BS array as
configured (1x16 ULA: the paper's 2D model, UE height known) and a 4x8 planar array
(the 3D variant). For each estimator and ``num_paths`` (the default ``"auto"``, 2, 4) it
prints and writes to
``docs/figures/miso_twin.csv``: UE position error (median, RMSE, 90th percentile), the
LOS-only PEB of the ray-traced channel (what the UE error can reach in a MISO setup,
paper Theorem 1; snapshots without LOS cannot be localized in MISO), split by LOS and
non-LOS snapshots, and the scatterer error against the nearest ray-traced single-bounce
interaction point, with the share of estimated scatterers within 0.5 m of one; plus a
PNG of UE error along the drive.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from estimators import ESTIMATORS
from twin.config import load_config
from twin.scene import BUNDLED_DIR
from twin.simulate import simulate
from twin.sounding import channel_truth, observation_from_run

OUT = Path(__file__).resolve().parents[2] / "docs" / "figures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx-power-dbm", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config, base = load_config(BUNDLED_DIR / "office_floor" / "drive.yaml")
    ue_height = float(config.ue.trajectory.waypoints[0][2]) if config.ue.trajectory else None
    rows: list[dict[str, object]] = []
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, dims, array in (("ULA 1x16 (2D)", 2, {"rows": 1, "cols": 16}),
                               ("URA 4x8 (3D)", 3, {"rows": 4, "cols": 8})):
        bs = config.base_stations[0].model_copy(
            update={"array": config.base_stations[0].array.model_copy(update=array)})
        run = simulate(config.model_copy(update={"base_stations": [bs]}), base).run
        truth = channel_truth(run)
        single = run.paths.valid[:, 0] & (run.paths.depth[:, 0] == 1)
        bounce_points = [run.paths.interaction_points[t, 0, single[t], 0]
                         for t in range(run.paths.num_snapshots)]
        for name in ("miso-sp-grid", "miso-sp-refine", "miso-ml"):
            for num_paths in ("auto", 2, 4):
                cls = ESTIMATORS[name]
                params: dict[str, object] = {"num_paths": num_paths, "dimensions": dims}
                if dims == 2:
                    params["ue_height"] = ue_height
                estimator = cls(**params)
                obs = observation_from_run(
                    run, rng=np.random.default_rng(args.seed), seed=args.seed,
                    tx_power_dbm=args.tx_power_dbm, **cls.sounding)
                est = estimator.estimate(obs)
                los_only = truth.valid & (np.arange(truth.valid.shape[1]) == 0)
                los_truth = dataclasses.replace(truth, valid=los_only)
                los_bound = cls(num_paths=1, dimensions=dims).crlb(obs, los_truth)
                ue_err = np.linalg.norm(est.ue_position - run.drive.position, axis=1)
                sc_err = []
                for t in range(len(ue_err)):
                    for s in est.scatterers[t][est.scatterer_valid[t]]:
                        if len(bounce_points[t]):
                            sc_err.append(np.min(np.linalg.norm(bounce_points[t] - s, axis=1)))
                sc = np.asarray(sc_err)
                # Over the converged fixes (the others are NaN: refused, with a reason).
                ok = np.isfinite(ue_err)
                los = truth.los & ok
                fixes = ue_err[ok] if ok.any() else np.array([np.nan])
                row = {
                    "array": label, "estimator": name, "num_paths": num_paths,
                    "tx_power_dbm": args.tx_power_dbm, "snapshots": len(ue_err),
                    "converged": int(ok.sum()), "los_snapshots": int(truth.los.sum()),
                    "ue_median_los_m": float(np.median(ue_err[los])) if los.any()
                    else float("nan"),
                    "ue_median_nlos_m": float(np.median(ue_err[~truth.los & ok]))
                    if (~truth.los & ok).any() else float("nan"),
                    "ue_median_m": float(np.median(fixes)),
                    "ue_rmse_m": float(np.sqrt(np.mean(fixes**2))),
                    "ue_p90_m": float(np.percentile(fixes, 90)),
                    "los_peb_median_m": float(np.nanmedian(los_bound.position_error_bound)),
                    "scatterers": int(sc.size),
                    "scatterer_median_m": float(np.median(sc)) if sc.size else float("nan"),
                    "scatterer_within_0.5m": float(np.mean(sc < 0.5)) if sc.size else 0.0,
                    "runtime_ms_median": 1e3 * float(np.median(est.runtime_s)),
                }
                rows.append(row)
                print(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in row.items()), flush=True)
                if name == "miso-ml" and num_paths == "auto":
                    ax.semilogy(run.drive.time, ue_err, "o-", label=f"joint ML, {label}")
                    ax.semilogy(run.drive.time, los_bound.position_error_bound, "--",
                                label=f"LOS PEB, {label}")
    ax.set_xlabel("time along the drive [s]")
    ax.set_ylabel("UE position error [m]")
    ax.set_title("miso-ml (num_paths auto) on the office drive vs ray-traced truth")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "miso_twin_office_drive.png", dpi=120)
    with (OUT / "miso_twin.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT}/miso_twin.csv and miso_twin_office_drive.png")


if __name__ == "__main__":
    main()
