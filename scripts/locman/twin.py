"""LOCMAN and DCS-SOMP on the twin: the bundled office drive with a multi-antenna UE.

    .venv/bin/python -m scripts.locman.twin [--tx-power-dbm 10] [--seed 7]

``scenes/office_floor/drive.yaml`` (18 snapshots, depth 3, LOS along the corridor, then
through a door into a room: the direct path crosses plasterboard, "NLOS" below) with the
radio and arrays the method needs: BS 1x8 ULA, UE 1x4 ULA at a constant yaw (0.4 rad),
28 GHz, 100 MHz on K = 15 subcarriers (c/Δf = 45 m exceeds the paths that matter; the
ADMM denoiser's matrix is 96 x 96), 16 random precoders, thermal noise at
``--tx-power-dbm`` (the SNR follows the ray-traced path loss). The drive is run twice
(``--bs-patterns``): with the drive's isotropic BS elements, and with 3GPP TR 38.901
elements, which do not radiate backwards — a ULA cannot tell front from back, and the
isotropic AP 1 m in front of the west wall sees that wall's echo on its LOS direction.
Estimators (UE height known, 1.2 m):

* ``locman`` with 3 paths (LOS + 2), known order; ``locman`` with the model order from
  the eigenvalue threshold (``--order-threshold``, at most 3 paths); ``dcs-somp``, 3 paths;
* each with known order also on the *model paths* only: the twin's CFR rebuilt from the
  LOS and the two strongest single-bounce reflections off vertical surfaces — the
  paper's model exactly, where the CRLB applies.

Per BS pattern, estimator, channel and LOS/NLOS split it prints and writes to
``docs/figures/locman_twin.csv``: UE position error (median, RMSE, 90th percentile), yaw
error, the scatterer error against the nearest ray-traced single-bounce interaction
point (one specular reflection; transmissions through walls allowed) with the share
within 0.5 m, and the median PEB / orientation bound of the model paths
(:func:`estimators.locman.bound.locman_bounds`); plus ``locman_twin_office_drive.png`` (errors
along the drive). About 14 minutes on 2 cores (``--admm-max-iterations`` caps the
denoiser's iterations, 3000 by default).

BLAS threads are limited to one (before numpy loads): the denoiser's many small
eigendecompositions are many times slower multi-threaded on a busy machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import csv
import dataclasses
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

from estimators.arrays import SPEED_OF_LIGHT, mimo_ofdm_channel, wrap_angle
from estimators.locman.baselines import DcsSomp
from estimators.locman.bound import locman_bounds
from estimators.locman.estimators import Locman
from estimators.locman.wls import WlsLocalizer
from estimators.types import ChannelTruth
from twin.config import load_config
from twin.paths import InteractionType
from twin.runfile import RunData
from twin.scene import BUNDLED_DIR
from twin.simulate import simulate
from twin.sounding import channel_truth, observation_from_run

OUT = Path(__file__).resolve().parents[2] / "docs" / "figures"
NUM_PATHS = 3
#: A reflection point lies on a vertical surface when its height matches the unfolded
#: path's height there (LOCMAN's geometry) to this [m].
VERTICAL_ABS_M = 0.01


def drive_run(
    bs_pattern: str, yaw: float, bandwidth_hz: float, num_subcarriers: int,
    sample_period_s: float | None,
) -> tuple[RunData, float]:
    """The office drive with a BS ULA (8 elements of ``bs_pattern``), a UE ULA (4) at
    ``yaw`` and the given radio (and sample period, default the drive's)."""
    config, base = load_config(BUNDLED_DIR / "office_floor" / "drive.yaml")
    trajectory = config.ue.trajectory
    assert trajectory is not None
    ue_height = float(trajectory.waypoints[0][2])
    if sample_period_s is not None:
        trajectory = trajectory.model_copy(update={"sample_period_s": sample_period_s})
    bs0 = config.base_stations[0]
    bs = bs0.model_copy(update={"array": bs0.array.model_copy(
        update={"rows": 1, "cols": 8, "pattern": bs_pattern})})
    ue = config.ue.model_copy(update={
        "array": config.ue.array.model_copy(update={"rows": 1, "cols": 4}),
        "orientation": (yaw, 0.0, 0.0), "trajectory": trajectory,
    })
    radio = config.radio.model_copy(update={"bandwidth_hz": bandwidth_hz,
                                            "num_subcarriers": num_subcarriers})
    config = config.model_copy(update={"base_stations": [bs], "ue": ue, "radio": radio})
    return simulate(config, base).run, ue_height


def single_bounce(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    """Paths with exactly one specular reflection (any transmissions through walls) and
    their reflection points: ``mask [T, P]``, ``points [T, P, 3]`` (NaN elsewhere)."""
    p = run.paths
    types = p.interaction_types[:, 0]  # [T, P, D]
    specular = types == InteractionType.SPECULAR
    through = (types == InteractionType.NONE) | (types == InteractionType.REFRACTION)
    mask = p.valid[:, 0] & (specular.sum(-1) == 1) & np.all(specular | through, axis=-1)
    first = np.argmax(specular, axis=-1)
    points = np.take_along_axis(p.interaction_points[:, 0], first[..., None, None], axis=2)[
        :, :, 0]
    return mask, np.where(mask[..., None], points, np.nan)


def model_paths(run: RunData, truth: ChannelTruth, ue_height: float) -> tuple[
        ChannelTruth, np.ndarray]:
    """The truth restricted to LOCMAN's model: the (possibly wall-crossing) direct path
    and the ``NUM_PATHS - 1`` strongest single-bounce reflections off vertical surfaces.

    Returns the restricted truth (scatterers filled for the wall-crossing bounces too)
    and ``ok [T]``: whether the snapshot has them all.
    """
    mask, points = single_bounce(run)
    b = run.bs_position[0]
    p = run.drive.position
    d1 = np.hypot(points[..., 0] - b[0], points[..., 1] - b[1])
    d2 = np.hypot(p[:, None, 0] - points[..., 0], p[:, None, 1] - points[..., 1])
    z_model = b[2] + (ue_height - b[2]) * d1 / np.maximum(d1 + d2, 1e-12)
    vertical = mask & (np.abs(points[..., 2] - z_model) < VERTICAL_ABS_M)
    valid = np.zeros_like(truth.valid)
    ok = np.zeros(len(p), bool)
    for t in range(len(p)):
        bounces = np.flatnonzero(vertical[t])
        bounces = bounces[np.argsort(-np.abs(truth.gain[t, bounces]))][: NUM_PATHS - 1]
        if truth.los[t] and len(bounces) == NUM_PATHS - 1:
            valid[t, [0, *bounces]] = True
            ok[t] = True
    scatterer = np.where(vertical[..., None], points, truth.scatterer)
    return dataclasses.replace(truth, valid=valid, scatterer=scatterer), ok


def model_cfr(run: RunData, truth: ChannelTruth) -> np.ndarray:
    """The twin's CFR of the valid paths of ``truth`` only (the estimators' forward model,
    equal to Sionna's up to float32: tests/twin/test_twin_estimators.py)."""
    cfr = np.zeros_like(run.cfr)
    tx = run.bs_array.world_positions(run.bs_orientation[0])
    for t in range(run.cfr.shape[0]):
        v = truth.valid[t]
        if v.any():
            cfr[t, 0] = mimo_ofdm_channel(
                truth.gain[t, v], truth.tau[t, v], truth.aod[t, v], truth.aoa[t, v],
                tx_element_positions=tx,
                rx_element_positions=run.ue_array.world_positions(run.drive.orientation[t]),
                wavelength=SPEED_OF_LIGHT / run.carrier_frequency, frequencies=run.frequencies)
    return cfr


def scatterer_errors(points: np.ndarray, scatterers: np.ndarray) -> np.ndarray:
    """Distance [m] of each estimated scatterer ``[Q, 3]`` to the nearest reflection
    point of ``points [P, 3]`` (NaN rows ignored; empty when there is none)."""
    pts = points[np.all(np.isfinite(points), axis=1)]
    if not len(pts) or not len(scatterers):
        return np.zeros(0)
    return np.min(np.linalg.norm(scatterers[:, None] - pts[None], axis=2), axis=1)


def stats(values: np.ndarray) -> tuple[float, float, float]:
    """Median, RMSE and 90th percentile (NaN when empty)."""
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    return (float(np.median(values)), float(np.sqrt(np.mean(values**2))),
            float(np.percentile(values, 90)))


@dataclasses.dataclass
class Drive:
    """One evaluated drive: its CSV rows and, per (estimator, channel), the UE and yaw
    errors along it."""

    pattern: str
    time_s: np.ndarray
    nlos: np.ndarray
    peb: np.ndarray
    yaw_bound: np.ndarray
    rows: list[dict[str, object]]
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]


def evaluate(pattern: str, args: argparse.Namespace, progress: Progress) -> Drive:
    """Simulate the drive with BS elements of ``pattern`` and run every variant on it."""
    start = time.perf_counter()
    run, ue_height = drive_run(pattern, args.yaw, args.bandwidth_hz, args.num_subcarriers,
                               args.sample_period_s)
    truth = channel_truth(run)
    model_truth, model_ok = model_paths(run, truth, ue_height)
    channels = {"ray-traced": run,
                "model paths": dataclasses.replace(run, cfr=model_cfr(run, model_truth))}
    _, points = single_bounce(run)
    # "NLOS": the direct path crosses a wall (Sionna's thin slabs do not deflect it).
    nlos = run.paths.depth[:, 0, 0] > 0
    T = run.drive.num_snapshots
    progress.console.print(
        f"{pattern}: simulated {T} snapshots ({int(nlos.sum())} NLOS) in "
        f"{time.perf_counter() - start:.1f} s; LOS + 2 vertical bounces in {int(model_ok.sum())}")
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("locman", "locman", {}),
        ("locman", f"locman order>{args.order_threshold:g}",
         {"order_threshold": args.order_threshold}),
        ("dcs-somp", "dcs-somp", {}),
    ]
    rows: list[dict[str, object]] = []
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    bound = None
    for channel, channel_run in channels.items():
        for name, label, extra in variants:
            if channel == "model paths" and "order_threshold" in extra:
                continue  # the matched channel is for the known order
            cls: type[WlsLocalizer] = Locman if name == "locman" else DcsSomp
            if name == "locman" and args.admm_max_iterations is not None:
                extra = {**extra, "admm_max_iterations": args.admm_max_iterations}
            estimator = cls(num_paths=NUM_PATHS, ue_height=ue_height, **extra)
            obs = observation_from_run(
                channel_run, rng=np.random.default_rng(args.seed), seed=args.seed,
                tx_power_dbm=args.tx_power_dbm, **cls.sounding)
            if bound is None:
                bound = locman_bounds(obs, model_truth, NUM_PATHS, 0)
            snr_db = 10 * np.log10(np.maximum(
                np.mean(np.abs(obs.y[:, 0]) ** 2, axis=(1, 2, 3)) / obs.noise_variance[:, 0]
                - 1, 1e-12))
            task = progress.add_task(f"{pattern}: {label} ({channel})", total=T)

            def advance(done: int, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            est = estimator.estimate(obs, on_snapshot=advance)
            ue_err = np.linalg.norm(est.ue_position[:, :2] - run.drive.position[:, :2], axis=1)
            ue_err[~est.converged] = np.nan
            yaw_err = np.abs(wrap_angle(est.ue_yaw - run.drive.orientation[:, 0]))
            curves[(label, channel)] = (ue_err, yaw_err)
            sc_err = [scatterer_errors(points[t], est.scatterers[t][est.scatterer_valid[t]])
                      for t in range(T)]
            order = est.diagnostics.get("num_paths", np.full(T, np.nan))
            for split, sel in (("LOS", ~nlos), ("NLOS", nlos), ("all", np.ones(T, bool))):
                ok = sel & est.converged
                sc = np.concatenate([sc_err[t] for t in np.flatnonzero(ok)] or [np.zeros(0)])
                med, rmse, p90 = stats(ue_err[ok])
                y_med, _, y_p90 = stats(np.degrees(yaw_err[ok]))
                has_bound = bool(np.any(model_ok[sel]))
                row = {
                    "bs_pattern": pattern, "channel": channel, "estimator": label,
                    "split": split, "tx_power_dbm": args.tx_power_dbm,
                    "snapshots": int(sel.sum()), "converged": int(ok.sum()),
                    "snr_median_db": float(np.median(snr_db[sel])),
                    "ue_median_m": med, "ue_rmse_m": rmse, "ue_p90_m": p90,
                    "peb_median_m": float(np.nanmedian(bound.bound.position_error_bound[sel]))
                    if has_bound else float("nan"),
                    "yaw_median_deg": y_med, "yaw_p90_deg": y_p90,
                    "yaw_bound_median_deg": float(np.degrees(np.nanmedian(
                        bound.orientation_error_bound[sel]))) if has_bound else float("nan"),
                    "paths_mean": float(np.nanmean(order[sel])),
                    "scatterers": int(sc.size),
                    "scatterer_median_m": float(np.median(sc)) if sc.size else float("nan"),
                    "scatterer_within_0.5m": float(np.mean(sc < 0.5)) if sc.size else 0.0,
                    "runtime_s_median": float(np.median(est.runtime_s[sel])),
                }
                rows.append(row)
                progress.console.print(
                    f"{pattern:>7}: {label:>16} {channel:>11} {split:>4}: {ok.sum()}/{sel.sum()} "
                    f"SNR {row['snr_median_db']:5.1f} dB | UE median/RMSE/p90 "
                    f"{med:.3f}/{rmse:.3f}/{p90:.3f} m (PEB {row['peb_median_m']:.4f}) | "
                    f"yaw median {y_med:.2f} deg (bound {row['yaw_bound_median_deg']:.3f}) | "
                    f"scatterers {row['scatterer_median_m']:.2f} m, "
                    f"{row['scatterer_within_0.5m']:.0%} < 0.5 m", soft_wrap=True)
    assert bound is not None
    return Drive(pattern, run.drive.time, nlos, bound.bound.position_error_bound,
                 bound.orientation_error_bound, rows, curves)


STYLES = {"locman": "o-", "dcs-somp": "s-"}


def plot(drives: list[Drive], args: argparse.Namespace) -> None:
    """UE position and yaw error along the drive, one column per BS element pattern."""
    fig, axes = plt.subplots(2, len(drives), figsize=(6.5 * len(drives), 7), sharex=True,
                             sharey="row", squeeze=False)
    for col, drive in enumerate(drives):
        ax, ax_yaw = axes[:, col]
        for (label, channel), (ue_err, yaw_err) in drive.curves.items():
            style = STYLES.get(label, "x:")
            if channel == "model paths":
                style = style.replace("-", "--")
            kw = {"label": f"{label} ({channel})", "ms": 4, "alpha": 0.9}
            ax.semilogy(drive.time_s, np.clip(ue_err, 1e-4, 1e2), style, **kw)
            ax_yaw.semilogy(drive.time_s, np.clip(np.degrees(yaw_err), 1e-3, 1e3), style, **kw)
        ax.semilogy(drive.time_s, drive.peb, "k-", lw=2, label="PEB (model paths)")
        ax_yaw.semilogy(drive.time_s, np.degrees(drive.yaw_bound), "k-", lw=2,
                        label="yaw bound (model paths)")
        for a in (ax, ax_yaw):
            if drive.nlos.any():
                a.axvspan(drive.time_s[drive.nlos].min() - 0.25,
                          drive.time_s[drive.nlos].max() + 0.25, color="0.9", zorder=0,
                          label="direct path through a wall")
            a.grid(True, which="both", alpha=0.3)
        ax.set_title(f"BS elements: {drive.pattern}", fontsize=10)
        ax_yaw.set_xlabel("time along the drive [s]")
    axes[0, 0].set_ylabel("UE position error [m]")
    axes[1, 0].set_ylabel("UE yaw error [deg]")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"LOCMAN / DCS-SOMP on the office drive vs ray-traced truth (BS 1x8, UE 1x4 "
                 f"at yaw {args.yaw:g} rad, {args.bandwidth_hz / 1e6:g} MHz, "
                 f"K={args.num_subcarriers}, {args.tx_power_dbm:g} dBm)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output_dir / "locman_twin_office_drive.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tx-power-dbm", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--yaw", type=float, default=0.4, help="UE yaw [rad]")
    parser.add_argument("--bandwidth-hz", type=float, default=100e6)
    parser.add_argument("--num-subcarriers", type=int, default=15)
    parser.add_argument("--order-threshold", type=float, default=0.1)
    parser.add_argument("--bs-patterns", default="iso,tr38901",
                        help="comma-separated BS element patterns, one drive each")
    parser.add_argument("--sample-period-s", type=float, default=None,
                        help="subsample the drive (default: the drive's 0.5 s)")
    parser.add_argument("--admm-max-iterations", type=int, default=None,
                        help="locman's ADMM iteration cap (default: the estimator's)")
    parser.add_argument("--output-dir", type=Path, default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    columns = [*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns) as progress:
        drives = [evaluate(pattern.strip(), args, progress)
                  for pattern in args.bs_patterns.split(",") if pattern.strip()]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    plot(drives, args)
    rows = [row for drive in drives for row in drive.rows]
    with (args.output_dir / "locman_twin.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.output_dir}/locman_twin.csv and locman_twin_office_drive.png "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
