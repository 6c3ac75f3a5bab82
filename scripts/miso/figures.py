"""Reproduce the MISO paper's figures on its own synthetic model (Fascista et al.).

    .venv/bin/python -m scripts.miso.figures [--trials 500] [--seed 2026]
    .venv/bin/python -m scripts.miso.figures --efficiency [--trials 150] [--seeds 11 21 31]

Writes into docs/figures/: ``miso_rmse_vs_snr_los_stronger.png`` (paper Fig. 6),
``miso_rmse_vs_snr_los_weaker.png`` (Fig. 7), ``miso_rmse_vs_lmr.png`` (Fig. 8),
``miso_rmse_vs_snr_3d.png`` (the 3D variant) and ``miso.csv`` with every number
(RMSE of the MS position and of the scatterer position per estimator over its converged
trials, the share converged, the RMS bounds, trials, setting). The setting is
:class:`estimators.miso.scenario.MisoScenario`.

``--efficiency`` instead measures joint ML against the efficient estimator on the same
noise (:func:`estimators.miso.bound.efficient_errors`) in the settings of
``tests/estimators/miso/test_estimators.py``, one row per setting and seed, into
``miso_efficiency.csv``: RMSE / bound, the efficient estimator's RMSE / bound (its
Monte-Carlo spread alone), and the paired ratio with its standard error.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from estimators.miso.bound import efficient_errors
from estimators.miso.estimators import MisoML, MisoSpGrid, MisoSpRefine
from estimators.miso.scenario import MisoScenario, variant_3d

OUT = Path(__file__).resolve().parents[2] / "docs" / "figures"
ESTIMATORS = (MisoSpGrid, MisoSpRefine, MisoML)
STYLE = {"miso-sp-grid": ("s-.", "SP ML, coarse grid"),
         "miso-sp-refine": ("D-.", "SP ML with refinement"), "miso-ml": ("o-", "Joint ML")}


def rmse(x: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(x**2)))


def evaluate(scenario: MisoScenario, snr_db: float, trials: int, seed: int, dims: int,
             experiment: str, x_name: str, x_value: float) -> list[dict[str, object]]:
    obs, truth = scenario.observation(trials, np.random.default_rng(seed), snr_db)
    bound = MisoML(dimensions=dims).crlb(obs, truth)
    rows = []
    for cls in ESTIMATORS:
        start = time.perf_counter()
        est = cls(dimensions=dims).estimate(obs)
        elapsed = (time.perf_counter() - start) / trials
        ue_err = np.linalg.norm(est.ue_position - truth.ue_position, axis=1)
        # A refused fix (not converged) maps nothing: its scatterer slot is not valid.
        sc_err = np.where(est.scatterer_valid[:, 0],
                          np.linalg.norm(est.scatterers[:, 0] - truth.scatterer[:, 1], axis=1),
                          np.nan)
        rows.append({
            "experiment": experiment, x_name: x_value, "snr_db": snr_db,
            "lmr_db": scenario.lmr_db[0], "estimator": cls.name, "trials": trials,
            "ue_rmse_m": rmse(ue_err), "scatterer_rmse_m": rmse(sc_err),
            "peb_m": rmse(bound.position_error_bound),
            "scatterer_bound_m": rmse(bound.scatterer_error_bound[:, 0]),
            "converged": float(est.converged.mean()), "runtime_ms": 1e3 * elapsed,
        })
    return rows


#: The settings of tests/estimators/miso/test_estimators.py: (experiment, scenario,
#: dimensions, SNR [dB]).
EFFICIENCY_SETTINGS = (
    ("los_stronger", MisoScenario(lmr_db=(3.0,)), 2, 10.0),
    ("los_weaker", MisoScenario(lmr_db=(-6.0,)), 2, 0.0),
    ("los_stronger", MisoScenario(lmr_db=(3.0,)), 2, 30.0),
    ("3d", variant_3d(), 3, 10.0),
)


def paired_ratio(errors: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """``RMSE(errors) / RMSE(reference)`` over paired trials ``[trial, dims]`` and its
    standard error (delta method)."""
    a, b = np.sum(errors**2, axis=-1), np.sum(reference**2, axis=-1)
    mse_ratio = a.mean() / b.mean()
    standard_error = np.std(a - mse_ratio * b, ddof=1) / (np.sqrt(a.size) * b.mean())
    return float(np.sqrt(mse_ratio)), float(standard_error / (2 * np.sqrt(mse_ratio)))


def efficiency(trials: int, seeds: list[int]) -> list[dict[str, object]]:
    """Joint ML vs the efficient estimator on the same noise, per setting and seed."""
    rows: list[dict[str, object]] = []
    for experiment, scenario, dims, snr_db in EFFICIENCY_SETTINGS:
        for seed in seeds:
            obs, truth = scenario.observation(trials, np.random.default_rng(seed), snr_db)
            estimator = MisoML(dimensions=dims)
            est = estimator.estimate(obs)
            bound = estimator.crlb(obs, truth)
            ue_efficient, scatterer_efficient = efficient_errors(obs, truth, dimensions=dims)
            row: dict[str, object] = {
                "experiment": experiment, "snr_db": snr_db, "dimensions": dims,
                "seed": seed, "trials": trials, "converged": float(est.converged.mean())}
            for what, errors, efficient, rms_bound in (
                ("ue", (est.ue_position - truth.ue_position)[:, :dims], ue_efficient,
                 rmse(bound.position_error_bound)),
                ("scatterer", (est.scatterers[:, 0] - truth.scatterer[:, 1])[:, :dims],
                 scatterer_efficient[:, 0], rmse(bound.scatterer_error_bound[:, 0])),
            ):
                ratio, standard_error = paired_ratio(errors, efficient)
                row |= {
                    f"{what}_rmse_over_bound":
                        rmse(np.linalg.norm(errors, axis=1)) / rms_bound,
                    f"{what}_efficient_rmse_over_bound":
                        rmse(np.linalg.norm(efficient, axis=1)) / rms_bound,
                    f"{what}_paired_ratio": ratio,
                    f"{what}_paired_standard_error": standard_error,
                }
            rows.append(row)
            print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.items()), flush=True)
    return rows


def write_csv(rows: list[dict[str, object]], path: Path, fields: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, object]], x_name: str, xlabel: str, title: str,
         path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, (err, bnd, what) in zip(axes, [("ue_rmse_m", "peb_m", "MS position"),
                                           ("scatterer_rmse_m", "scatterer_bound_m",
                                            "scatterer position")], strict=True):
        for name, (marker, label) in STYLE.items():
            sel = [r for r in rows if r["estimator"] == name]
            ax.semilogy([r[x_name] for r in sel], [r[err] for r in sel], marker, label=label)
        sel = [r for r in rows if r["estimator"] == "miso-ml"]
        ax.semilogy([r[x_name] for r in sel], [r[bnd] for r in sel], "k--", label="bound (CRLB)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"RMSE of the {what} [m]")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--efficiency", action="store_true",
                        help="only the paired efficiency measurement (miso_efficiency.csv)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 21, 31])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.efficiency:
        rows = efficiency(args.trials, args.seeds)
        write_csv(rows, OUT / "miso_efficiency.csv", list(rows[0]))
        print(f"wrote {OUT}/miso_efficiency.csv")
        return
    snrs = [-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 30.0]
    all_rows: list[dict[str, object]] = []
    experiments = [
        ("los_stronger", MisoScenario(lmr_db=(3.0,)), 2, "LOS 3 dB stronger than NLOS (LMR +3 dB)"),
        ("los_weaker", MisoScenario(lmr_db=(-6.0,)), 2, "LOS 6 dB weaker than NLOS (LMR -6 dB)"),
        ("3d", variant_3d(), 3, "3D variant: 4x8 planar array, MS 5 m below the BS"),
    ]
    for key, scenario, dims, title in experiments:
        rows = []
        for snr in snrs:
            rows += evaluate(scenario, snr, args.trials, args.seed, dims, key, "snr_db", snr)
            print(f"{key} SNR {snr:+.0f} dB done", flush=True)
        plot(rows, "snr_db", "SNR [dB]", title, OUT / f"miso_rmse_vs_snr_{key}.png")
        all_rows += rows
    rows = []
    for lmr in [-10.0, -6.0, -3.0, 0.0, 3.0, 6.0, 10.0, 15.0]:
        rows += evaluate(MisoScenario(lmr_db=(lmr,)), 10.0, args.trials, args.seed, 2,
                         "lmr_sweep", "lmr_x", lmr)
        print(f"LMR {lmr:+.0f} dB done", flush=True)
    for r in rows:
        r["lmr_db"] = r.pop("lmr_x")
    plot(rows, "lmr_db", "LOS-to-multipath ratio LMR [dB]", "RMSE vs LMR at SNR 10 dB",
         OUT / "miso_rmse_vs_lmr.png")
    all_rows += rows
    write_csv(all_rows, OUT / "miso.csv", sorted({k for r in all_rows for k in r}))
    print(f"wrote {OUT}/miso_*.png and miso.csv ({len(all_rows)} rows)")


if __name__ == "__main__":
    main()
