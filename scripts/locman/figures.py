"""LOCMAN vs DCS-SOMP on the paper's synthetic model, against the CRLB (Li et al. §IV).

    .venv/bin/python -m scripts.locman.figures [--trials 20] [--seed 2026] [--workers 2]
        [--replot]
    .venv/bin/python -m scripts.locman.figures --efficiency [--trials 128] [--seed 1]

Setting: :class:`estimators.locman.scenario.LocmanScenario` (BS at the origin, 8-element
ULAs, 60 GHz, 100 MHz, 15 subcarriers, 16 random unit-modulus pilots, LOS + 2 NLOS).
Writes to ``docs/figures/``:

* ``locman_rmse_vs_snr.png`` — RMSE of TOA (as range), AOA, AOD (averaged over the three
  paths, matched to the truth by assignment), position and orientation vs SNR, with the
  CRLB (Figs. 5-6);
* ``locman_model_order.png`` — unknown model order: LOCMAN with the eigenvalue threshold
  ε of §III-D at several values (room for ``MAX_ORDER`` paths) vs the known order, and
  how often each ε got the order wrong (Fig. 7);
* ``locman_sync_error.png`` — a common TOA offset (eq. 22) at 20 dB (Fig. 8);
* ``locman.csv`` — every number.

``--efficiency`` instead measures LOCMAN's distance from the CRLB at ``EFFICIENCY_SNR_DB``
paired: its position and yaw errors against those of the efficient estimator on the
same noise (:func:`estimators.locman.bound.efficient_errors`, the ML linearised at the
truth, whose MSE is the CRLB), over ``--trials`` trials, with the 3-sigma spread of the
ratio (``tests.tolerances.paired_rmse_margin``); writes ``locman_efficiency.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

# One BLAS thread per worker process: the workers already use every core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rich.progress import Progress
from scipy.optimize import linear_sum_assignment

from estimators.arrays import wrap_angle
from estimators.locman.baselines import DcsSomp
from estimators.locman.bound import efficient_errors, locman_bounds, true_parameters
from estimators.locman.estimators import Locman
from estimators.locman.model import snapshot
from estimators.locman.scenario import LocmanScenario
from estimators.locman.wls import WlsLocalizer

OUT = Path(__file__).resolve().parents[2] / "docs" / "figures"
SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
THRESHOLDS = (1e-3, 1e-2, 0.1, 0.3)
SYNC_ERRORS_NS = (0.0, 0.5, 1.0, 2.0, 5.0)
SYNC_SNR_DB = 20.0
METRICS = ("range", "aoa", "aod", "position", "orientation")
EFFICIENCY_SNR_DB = 20.0
#: ``num_paths`` of the threshold variants: room for more paths than there are (3).
MAX_ORDER = 5


def _estimator(label: str) -> WlsLocalizer:
    if label == "dcs-somp":
        return DcsSomp()
    if label.startswith("locman-eps"):
        # Room for more paths than there are: the threshold must choose the order.
        return Locman(order_threshold=float(label.removeprefix("locman-eps")),
                      num_paths=MAX_ORDER)
    return Locman()


def _planar_angles(params: np.ndarray, k_d: float) -> tuple[np.ndarray, np.ndarray]:
    """AOA and AOD from the broadsides (eq. 3) of spatial frequencies ``ω = k d sin θ``."""
    return (np.arcsin(np.clip(params[:, 1] / k_d, -1, 1)),
            np.arcsin(np.clip(params[:, 2] / k_d, -1, 1)))


def run_point(job: tuple[str, float, float, int, int]) -> dict[str, np.ndarray]:
    """Squared errors of one estimator at one (SNR, sync error), ``trials`` trials."""
    label, snr_db, sync_s, trials, seed = job
    scenario = replace(LocmanScenario(), sync_error_s=sync_s)
    obs, truth = scenario.observation(trials, np.random.default_rng(seed), snr_db)
    estimator = _estimator(label)
    k_d = np.pi  # half-wavelength ULAs: k d = π
    out = {m: np.full(trials, np.nan) for m in (*METRICS, "order")}
    for t in range(trials):
        snap = snapshot(obs, t, 0, None)
        _, eta = true_parameters(snap, truth, t, np.arange(3))
        try:
            channel = estimator.channel_parameters(snap)
            est = estimator.localize(snap, channel)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            continue
        out["order"][t] = channel.order
        true_aoa, true_aod = _planar_angles(eta, k_d)
        aoa, aod = _planar_angles(channel.params, k_d)
        # Match estimated to true paths (by normalized parameter distance).
        cost = (np.abs(channel.params[:, None, 0] - eta[None, :, 0]) / 3.0
                + np.abs(aoa[:, None] - true_aoa[None]) + np.abs(aod[:, None] - true_aod[None]))
        rows, cols = linear_sum_assignment(cost)
        missing = 3 - len(rows)
        penalty = [np.inf] * missing  # an unfound path is an unbounded error
        out["range"][t] = np.mean(np.r_[(channel.params[rows, 0] - eta[cols, 0]) ** 2, penalty])
        out["aoa"][t] = np.mean(np.r_[(aoa[rows] - true_aoa[cols]) ** 2, penalty])
        out["aod"][t] = np.mean(np.r_[(aod[rows] - true_aod[cols]) ** 2, penalty])
        out["position"][t] = float(np.sum((est.ue_position[:2] - truth.ue_position[t, :2]) ** 2))
        yaw_err = wrap_angle(est.ue_yaw - truth.ue_orientation[t, 0])  # type: ignore[index]
        out["orientation"][t] = float(yaw_err**2)
    return out


def bounds_at(snr_db: float, trials: int, seed: int) -> dict[str, float]:
    scenario = LocmanScenario()
    obs, truth = scenario.observation(trials, np.random.default_rng(seed), snr_db)
    b = locman_bounds(obs, truth, 3)
    return {
        "range": float(np.sqrt(np.mean(b.range_bound**2))),
        "aoa": float(np.sqrt(np.mean(b.aoa_bound**2))),
        "aod": float(np.sqrt(np.mean(b.aod_bound**2))),
        "position": float(np.sqrt(np.mean(b.bound.position_error_bound**2))),
        "orientation": float(np.sqrt(np.mean(b.orientation_error_bound**2))),
    }


def rmse(values: np.ndarray) -> float:
    """RMSE over trials; a failed trial (NaN) counts as infinite error."""
    v = np.where(np.isnan(values), np.inf, values)
    return float(np.sqrt(np.mean(v)))


def efficiency(trials: int, seed: int) -> list[dict[str, object]]:
    """LOCMAN's RMSE over the efficient estimator's on the same noise (paired) and over
    the CRLB (unpaired), position and yaw, at ``EFFICIENCY_SNR_DB``."""
    from tests.tolerances import paired_rmse_margin

    obs, truth = LocmanScenario().observation(trials, np.random.default_rng(seed),
                                              EFFICIENCY_SNR_DB)
    bound = locman_bounds(obs, truth, 3)
    est = Locman().estimate(obs)
    efficient = efficient_errors(obs, truth, 3)
    assert truth.ue_orientation is not None
    errors = {
        "position": (est.ue_position[:, :2] - truth.ue_position[:, :2], efficient[:, :2],
                     bound.bound.position_error_bound),
        "orientation": (wrap_angle(est.ue_yaw - truth.ue_orientation[:, 0])[:, None],
                        efficient[:, 2:3], bound.orientation_error_bound),
    }
    rows: list[dict[str, object]] = []
    for metric, (ours, best, crlb) in errors.items():
        ms_ours = float(np.mean(np.sum(ours**2, axis=1)))
        ms_best = float(np.mean(np.sum(best**2, axis=1)))
        rows.append({
            "metric": metric, "snr_db": EFFICIENCY_SNR_DB, "trials": trials, "seed": seed,
            "converged": int(est.converged.sum()),
            "paired_ratio": float(np.sqrt(ms_ours / ms_best)),
            "paired_margin_3sigma": paired_rmse_margin(ours, best),
            "rmse_over_crlb": float(np.sqrt(ms_ours / np.mean(crlb**2))),
            "efficient_rmse_over_crlb": float(np.sqrt(ms_best / np.mean(crlb**2))),
        })
    return rows


def write_efficiency(trials: int, seed: int) -> None:
    """:func:`efficiency`, printed and written to ``locman_efficiency.csv``."""
    rows = efficiency(trials, seed)
    for row in rows:
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "locman_efficiency.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT / 'locman_efficiency.csv'}")


def run_jobs(jobs: Sequence[tuple[str, float, float, int, int]], workers: int
             ) -> list[dict[str, np.ndarray]]:
    results: list[dict[str, np.ndarray]] = [{} for _ in jobs]
    with Progress() as progress, ProcessPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task("Monte Carlo", total=len(jobs))
        futures = {pool.submit(run_point, job): i for i, job in enumerate(jobs)}
        for future in futures:
            results[futures[future]] = future.result()
            progress.advance(task)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--replot", action="store_true",
                        help="Only redraw the figures from docs/figures/locman.csv.")
    parser.add_argument("--efficiency", action="store_true",
                        help="only the paired efficiency measurement (locman_efficiency.csv)")
    args = parser.parse_args()
    if args.efficiency:
        write_efficiency(args.trials, args.seed)
        return
    if args.replot:
        with (OUT / "locman.csv").open() as f:
            plot(list(csv.DictReader(f)))
        return
    print(f"seed {args.seed}, {args.trials} trials per point")
    seeds = np.random.SeedSequence(args.seed).generate_state(len(SNRS_DB) + len(SYNC_ERRORS_NS))
    labels = ["locman", "dcs-somp", *(f"locman-eps{e:g}" for e in THRESHOLDS)]
    jobs = [(label, snr, 0.0, args.trials, int(seeds[i]))
            for label in labels for i, snr in enumerate(SNRS_DB)]
    jobs += [(label, SYNC_SNR_DB, ns * 1e-9, args.trials, int(seeds[len(SNRS_DB) + i]))
             for label in ("locman", "dcs-somp") for i, ns in enumerate(SYNC_ERRORS_NS)]
    results = run_jobs(jobs, args.workers)
    rows: list[dict[str, object]] = []
    for job, res in zip(jobs, results, strict=True):
        sweep = "sync" if len(rows) >= len(labels) * len(SNRS_DB) else "snr"
        row: dict[str, object] = {"estimator": job[0], "sweep": sweep, "snr_db": job[1],
                                  "sync_error_ns": job[2] * 1e9, "trials": job[3]}
        row.update({m: rmse(res[m]) for m in METRICS})
        row["failed"] = int(np.sum(np.isnan(res["position"])))
        row["mean_order"] = float(np.nanmean(res["order"]))
        row["wrong_order"] = int(np.sum(res["order"] != 3))
        rows.append(row)
    for i, snr in enumerate(SNRS_DB):
        row = {"estimator": "crlb", "sweep": "snr", "snr_db": snr, "sync_error_ns": 0.0,
               "trials": args.trials, "failed": 0, "mean_order": 3.0, "wrong_order": 0}
        row.update(bounds_at(snr, args.trials, int(seeds[i])))
        rows.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "locman.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()))
    plot(rows)


def _series(rows: list[dict[str, object]], label: str, metric: str, sync: bool = False
            ) -> tuple[list[float], list[float]]:
    chosen = [r for r in rows
              if r["estimator"] == label and r["sweep"] == ("sync" if sync else "snr")]
    key = "sync_error_ns" if sync else "snr_db"
    pts = sorted((float(r[key]), float(r[metric])) for r in chosen)  # type: ignore[arg-type]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot(rows: list[dict[str, object]]) -> None:
    units = {"range": "TOA as range [m]", "aoa": "AOA [rad]", "aod": "AOD [rad]",
             "position": "position [m]", "orientation": "orientation [rad]"}
    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    for ax, metric in zip(axes, METRICS, strict=True):
        for label, style in (("locman", "o-"), ("dcs-somp", "s-"), ("crlb", "k--")):
            x, y = _series(rows, label, metric)
            ax.semilogy(x, y, style, label=label.upper() if label != "crlb" else "CRLB")
        ax.set_xlabel("SNR [dB]")
        ax.set_ylabel(f"RMSE, {units[metric]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("LOCMAN vs DCS-SOMP vs CRLB (Li et al. Figs. 5-6 setting)")
    fig.tight_layout()
    fig.savefig(OUT / "locman_rmse_vs_snr.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric in zip(axes, ("position", "orientation", "wrong_order"), strict=True):
        for i, label in enumerate(("locman", *(f"locman-eps{e:g}" for e in THRESHOLDS))):
            if metric == "wrong_order" and label == "locman":
                continue
            x, y = _series(rows, label, metric)
            name = ("known order" if label == "locman"
                    else f"ε = {label.removeprefix('locman-eps')}")
            if metric == "wrong_order":
                trials = float(rows[0]["trials"])  # type: ignore[arg-type]
                ax.plot(x, np.asarray(y) / trials, "o-", color=f"C{i}", label=name)
            else:
                ax.semilogy(x, y, "o-", color=f"C{i}", label=name)
        if metric != "wrong_order":
            ax.semilogy(*_series(rows, "crlb", metric), "k--", label="CRLB")
        ax.set_xlabel("SNR [dB]")
        ax.set_ylabel("trials with the order ≠ 3" if metric == "wrong_order"
                      else f"RMSE, {units[metric]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Unknown model order: eigenvalue threshold ε (Li et al. §IV-D, Fig. 7)")
    fig.tight_layout()
    fig.savefig(OUT / "locman_model_order.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("orientation", "position"), strict=True):
        for label, style in (("locman", "o-"), ("dcs-somp", "s-")):
            x, y = _series(rows, label, metric, sync=True)
            ax.semilogy(x, y, style, label=label.upper())
        ax.set_xlabel("synchronization error [ns]")
        ax.set_ylabel(f"RMSE, {units[metric]}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Synchronization error at {SYNC_SNR_DB:g} dB (Li et al. §IV-D, Fig. 8)")
    fig.tight_layout()
    fig.savefig(OUT / "locman_sync_error.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
