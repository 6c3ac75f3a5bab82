"""DAUN and its baselines: the paper's setting (UMa) and the twin (street), with
cross-domain runs.

    .venv/bin/python -m scripts.daun.figures [--data data/daun] [--parts paper,nmse,twin]
        [--samples 300] [--snr-db -10,-5,0,5,10,15,20,25,30] [--seed 0]
        [--compare "daun (twin),dpd"]

``paper``, ``nmse``, ``twin`` need ``scripts/daun/checkpoints.py`` first (datasets in
``--data``, checkpoints in ``assets/daun/``). Test sets: the held-out ``*-test``
datasets' noiseless channels (``observations/h``), the first ``--samples`` of them, with
fresh noise at each SNR (one ``σ²`` per sample for all BSs: the mean ``|h|²`` over BSs
and elements over ``σ²``, the dataset engine's definition); and the held-out twin drive
``scenes/street/daun_drive.yaml`` (traced here), each snapshot with ``--drive-draws``
noise draws. Every method gets the same noisy samples. Errors are horizontal (the user's
height is known).

Parts:

* ``paper``: the paper's setting (4 BSs at (±50, ±50) m, 50-element ULAs, 40 × 40 m,
  K = 900, L = 100, 30 GHz, UMa): MSE and P(error < 1 m) vs SNR for ``daun``,
  ``daun-r``, ``daun`` trained with the position loss, ``p-admm`` (as many iterations as
  DAUN has layers), ``dpd``, ``stansfield``, ``srl`` → ``docs/figures/daun_paper.png``.
* ``eq1``: the paper's eq. (1) model with the LOS at every BS (``DaunScenario``), DAUN
  trained on it here: the setting the paper's claims assume → ``daun_eq1.png``.
* ``nmse``: NMSE ``E‖y − Ax − Bz‖²/E‖y‖²`` vs iteration, DAUN (its layers) vs P-ADMM,
  paper setting at 10 dB → ``daun_nmse.png``.
* ``twin``: the street (4 BSs with 1×16 ULAs, 80 × 40 m, K = 60 × 30): on the held-out
  twin drive and the held-out twin positions, DAUN trained on the twin, on UMa with the
  street's geometry (cross-domain) and on the paper's UMa setting; and, the reverse, on
  the street's UMa test set → ``daun_twin.png``.

* ``efficiency``: the off-grid baselines against the LOS-only bound on eq. (1) with the
  LOS alone (``DaunScenario``, 16 elements, 30 users, 30 dB).
* ``cli``: ``twin simulate`` the held-out drive, ``twin estimate -a daun,daun-r --snr-db
  20``: median errors as a user gets them.
* ``compare``: reads ``docs/figures/daun.csv`` and prints the MSE ratio of the two
  methods of ``--compare`` per test set and SNR (writes nothing).

All numbers go to ``docs/figures/daun.csv`` (part, test set, method, SNR, MSE, P<1 m,
median error, seconds per localization, samples); a run replaces the rows of its parts.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from estimators.daun.admm import AdmmParameters, TorchProblem, parameters_from, residual
from estimators.daun.baselines import Dpd, Srl, Stansfield
from estimators.daun.bound import los_position_error_bound
from estimators.daun.checkpoint import load_checkpoint
from estimators.daun.estimators import Daun, DaunR, PAdmm
from estimators.daun.grid import GridLocalizer, grid_parameters
from estimators.daun.model import DirectLocalizationProblem
from estimators.daun.scenario import DaunScenario
from estimators.observe import complex_normal
from twin.config import load_config
from twin.dataset.config import parse_dataset_config
from twin.dataset.loader import read_fields
from twin.dataset.store import read_manifest
from twin.scene import BUNDLED_DIR
from twin.simulate import simulate
from twin.train import problem_from

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "figures"


def test_set(directory: Path, count: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """Noiseless ``h [n, bs, bs_ant]``, positions ``[n, 3]`` and the config of a dataset."""
    fields = read_fields(directory, ("observations/h", "ue_position"))
    config = parse_dataset_config(read_manifest(directory)["config"])
    return fields["observations/h"][:count], fields["ue_position"][:count], config


def with_noise(h: np.ndarray, snr_db: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """``y = h + n`` with one ``σ²`` per sample (all BSs), and ``σ² [n, bs]``."""
    power = np.mean(np.abs(h) ** 2, axis=(1, 2))
    sigma2 = power / 10 ** (snr_db / 10)
    noise = complex_normal(rng, h.shape, sigma2[:, None, None])
    return h + noise, np.repeat(sigma2[:, None], h.shape[1], axis=1)


def methods(checkpoints: dict[str, str], setting: dict[str, Any]) -> dict[str, GridLocalizer]:
    """Label -> estimator: DAUN variants per checkpoint, then the baselines on the
    checkpoints' grid, P-ADMM with as many iterations as DAUN has layers."""
    chosen: dict[str, GridLocalizer] = {}
    layers = 10
    for label, checkpoint in checkpoints.items():
        kind = DaunR if label.startswith("daun-r") else Daun
        chosen[label] = kind(checkpoint=checkpoint)
        layers = len(load_checkpoint(checkpoint)["parameters"]["rho"])
    grid = grid_parameters(setting)
    chosen["p-admm"] = PAdmm(iterations=layers, **grid)
    for name, baseline in (("dpd", Dpd), ("stansfield", Stansfield), ("srl", Srl)):
        chosen[name] = baseline(**grid)
    return chosen


def evaluate(problem: DirectLocalizationProblem, chosen: dict[str, GridLocalizer],
             h: np.ndarray, truth: np.ndarray, args: argparse.Namespace, part: str,
             test: str, rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Run every method at every SNR on the same noisy samples (``srl``, ~1 s per
    localization, on the first ``--srl-samples`` only); append CSV rows."""
    snrs, seed = args.snr_db, args.seed
    curves: dict[str, dict[str, list[float]]] = {m: {"mse": [], "p1": []} for m in chosen}
    for snr in snrs:
        y, sigma2 = with_noise(h, snr, np.random.default_rng([seed, int(snr * 10) + 1000]))
        for label, estimator in chosen.items():
            n = min(len(y), args.srl_samples) if label == "srl" else len(y)
            start = time.perf_counter()
            estimate, _ = estimator.localize(problem, y[:n], sigma2[:n],
                                             np.random.default_rng(seed))
            seconds = (time.perf_counter() - start) / n
            error = np.linalg.norm(estimate[:, :2] - truth[:n, :2], axis=1)
            error = np.where(np.isfinite(error), error, np.inf)
            finite = np.isfinite(error)
            mse = float(np.mean(error[finite] ** 2)) if finite.all() else float("inf")
            p1 = float(np.mean(error < 1.0))
            curves[label]["mse"].append(mse)
            curves[label]["p1"].append(p1)
            rows.append({"part": part, "test": test, "method": label, "snr_db": snr,
                         "mse_m2": f"{mse:.4g}", "p_sub_meter": f"{p1:.3f}",
                         "median_m": f"{np.median(error):.3g}",
                         "seconds_per_localization": f"{seconds:.3g}", "samples": n})
            print(f"{part:6} {test:18} {label:22} {snr:5.0f} dB: MSE {mse:9.3g} m², "
                  f"P<1m {p1:.2f}, median {np.median(error):.3g} m, {seconds * 1e3:.3g} ms",
                  flush=True)
    return curves


def bound_curve(problem: DirectLocalizationProblem, h: np.ndarray, truth: np.ndarray,
                snrs: list[float], part: str, test: str, rows: list[dict[str, Any]],
                los_gain: np.ndarray | None = None) -> list[float]:
    """Mean squared LOS-only position error bound over the samples, per SNR (``σ²`` from
    the mean ``|h|²``, as :func:`with_noise`), with LOS gains ``los_gain [sample, bs]``
    (default: all of each BS's received power in its LOS path, so a lower bound on the
    LOS-only bound); appended to ``rows`` as method ``los-crb``."""
    gain = np.sqrt(np.mean(np.abs(h) ** 2, axis=2)) if los_gain is None else los_gain
    power = np.mean(np.abs(h) ** 2, axis=(1, 2))
    geometry = (problem.bs_position, problem.element_positions, problem.wavelength)
    unit = np.array([los_position_error_bound(*geometry, truth[i], gain[i], power[i]) ** 2
                     for i in range(len(h))])  # at 0 dB; the bound scales as σ
    bound = [float(np.mean(unit) / 10 ** (snr / 10)) for snr in snrs]
    rows.extend({"part": part, "test": test, "method": "los-crb", "snr_db": snr,
                 "mse_m2": f"{value:.4g}", "samples": len(h)}
                for snr, value in zip(snrs, bound, strict=True))
    return bound


def plot(curves: dict[str, dict[str, list[float]]], snrs: list[float], title: str,
         axes: Any, bound: list[float] | None = None) -> None:
    for label, curve in curves.items():
        style = "-o" if label.startswith("daun") else "--s"
        axes[0].semilogy(snrs, curve["mse"], style, label=label, markersize=4)
        axes[1].plot(snrs, curve["p1"], style, label=label, markersize=4)
    if bound is not None:
        axes[0].semilogy(snrs, bound, "k:", label="LOS-only CRB (all power in LOS)")
    axes[0].set(xlabel="SNR [dB]", ylabel="MSE [m²]", title=f"{title}: MSE")
    axes[1].set(xlabel="SNR [dB]", ylabel="P(error < 1 m)", ylim=(-0.02, 1.02),
                title=f"{title}: sub-meter")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7)


def paper(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    h, truth, config = test_set(args.data / "paper-uma-test", args.samples)
    setting = load_checkpoint("paper")["setting"]
    problem = problem_from(config, setting)
    chosen = methods({"daun": "paper", "daun-r": "paper", "daun (position loss)":
                      "paper-position"}, setting)
    curves = evaluate(problem, chosen, h, truth, args, "paper",
                      "paper-uma-test", rows)
    bound = bound_curve(problem, h, truth, args.snr_db, "paper", "paper-uma-test", rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot(curves, args.snr_db, "paper setting, 3GPP UMa", axes, bound)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "daun_paper.png", dpi=120)


def nmse(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import torch

    from estimators.daun.admm import unfolded_admm

    h, _, config = test_set(args.data / "paper-uma-test", args.samples)
    checkpoint = load_checkpoint("paper")
    problem = problem_from(config, checkpoint["setting"])
    tp = TorchProblem(problem)
    y = tp.tensor(with_noise(h, 10.0, np.random.default_rng(args.seed))[0])
    energy = float(torch.sum(torch.abs(y) ** 2))

    def curve(parameters: AdmmParameters) -> list[float]:
        p = {k: torch.tensor(v, dtype=torch.float32) for k, v in parameters.as_dict().items()}
        with torch.no_grad():
            xs, zs = unfolded_admm(tp.A, tp.B, y, p["rho"], p["tau1"], p["tau2"], p["w"],
                                   every_layer=True)
            return [float(torch.sum(residual(tp.A, tp.B, y, X, z))) / energy
                    for X, z in zip(xs, zs, strict=True)]

    trained = parameters_from(checkpoint["parameters"])
    daun = curve(trained)
    padmm = curve(AdmmParameters.fixed(50, problem.num_bs))
    for i, value in enumerate(daun):
        rows.append({"part": "nmse", "test": "paper-uma-test @10 dB", "method": "daun",
                     "snr_db": i + 1, "mse_m2": f"{value:.4g}"})
    for i, value in enumerate(padmm):
        rows.append({"part": "nmse", "test": "paper-uma-test @10 dB", "method": "p-admm",
                     "snr_db": i + 1, "mse_m2": f"{value:.4g}"})
    reached = next((i + 1 for i, v in enumerate(padmm) if v <= daun[-1]), None)
    print(f"NMSE after {len(daun)} layers: DAUN {daun[-1]:.3g}; P-ADMM reaches it after "
          f"{reached} iterations (of {len(padmm)})", flush=True)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.semilogy(range(1, len(daun) + 1), daun, "-o", label="DAUN", markersize=4)
    ax.semilogy(range(1, len(padmm) + 1), padmm, "--", label="P-ADMM (ρ=5, τ=0.5)")
    ax.set(xlabel="iteration / layer", ylabel="NMSE", title="paper setting, UMa, 10 dB")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "daun_nmse.png", dpi=120)


def eq1(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The paper's eq. (1) model with the LOS at every BS (``DaunScenario``: planar, two
    NLOS paths at −6 dB per BS): DAUN trained on it here (the paper's recipe, seed 0,
    cached in ``--data/eq1.pt``), then the same comparison as ``paper``."""
    from estimators.daun.admm import train_daun
    from twin.train import write_checkpoint

    scenario = DaunScenario()
    problem = scenario.problem()
    setting = {"area": [list(c) for c in scenario.area],
               "grid_shape": list(scenario.grid_shape), "ue_height": scenario.height,
               "num_angles": scenario.num_angles}
    checkpoint = args.data / "eq1.pt"
    if not checkpoint.is_file():
        rng = np.random.default_rng(0)
        snr = rng.uniform(-10.0, 30.0, 10_000)
        y, p = scenario.batch(snr, rng)
        parameters, log = train_daun(problem, (y[:-200], snr[:-200], p[:-200]),
                                     (y[-200:], snr[-200:], p[-200:]), num_layers=10,
                                     rng=np.random.default_rng(0))
        write_checkpoint(checkpoint, parameters, log, setting, {"model": "DaunScenario()"},
                         {"seed": 0, "num_train": 9800, "num_validation": 200})
        print(f"eq1: trained in {log.seconds:.0f} s, epochs {log.epochs}", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    truth = scenario.positions(args.samples, rng)
    h, _ = scenario.channels(truth, rng)
    chosen = methods({"daun": str(checkpoint), "daun-r": str(checkpoint)}, setting)
    curves = evaluate(problem, chosen, h, truth, args, "eq1", "DaunScenario()", rows)
    gain = np.ones((len(h), problem.num_bs))  # the LOS amplitude of the model
    bound = bound_curve(problem, h, truth, args.snr_db, "eq1", "DaunScenario()", rows,
                        los_gain=gain)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot(curves, args.snr_db, "paper's eq. (1), LOS at every BS", axes, bound)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "daun_eq1.png", dpi=120)


def twin_drive() -> tuple[np.ndarray, np.ndarray]:
    """The held-out drive: ``h [snapshot, bs, bs_ant]`` (uplink) and positions."""
    config, base = load_config(BUNDLED_DIR / "street" / "daun_drive.yaml")
    run = simulate(config, base).run
    return run.cfr[:, :, 0, :, 0].astype(np.complex128), run.drive.position


def twin(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    setting = load_checkpoint("street")["setting"]
    h_test, p_test, config = test_set(args.data / "street-twin-test", args.samples)
    problem = problem_from(config, setting)
    h_drive, p_drive = twin_drive()
    has_signal = np.any(np.abs(h_drive) > 0, axis=(1, 2))
    h_drive, p_drive = h_drive[has_signal], p_drive[has_signal]
    draws = args.drive_draws
    h_drive, p_drive = np.repeat(h_drive, draws, axis=0), np.repeat(p_drive, draws, axis=0)
    chosen = methods({"daun (twin)": "street", "daun-r (twin)": "street",
                      "daun (twin, position loss)": "street-position",
                      "daun (street UMa)": "street-uma", "daun (paper UMa)": "paper"}, setting)
    drive = evaluate(problem, chosen, h_drive, p_drive, args, "twin",
                     "daun_drive", rows)
    evaluate(problem, chosen, h_test, p_test, args, "twin",
             "street-twin-test", rows)
    h_uma, p_uma, _ = test_set(args.data / "street-uma-test", args.samples)
    reverse = {k: v for k, v in chosen.items() if k.startswith("daun")}
    evaluate(problem, reverse, h_uma, p_uma, args, "twin",
             "street-uma-test", rows)
    bound = bound_curve(problem, h_drive, p_drive, args.snr_db, "twin", "daun_drive", rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot(drive, args.snr_db, "twin: held-out street drive", axes, bound)
    fig.tight_layout()
    fig.savefig(OUT / "daun_twin.png", dpi=120)


def efficiency(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The off-grid baselines against the LOS-only bound where it is the exact bound: the
    paper's eq. (1) with the LOS alone (``DaunScenario``, 16-element ULAs), 30 users at
    30 dB (``--seed``), the paper's SNR (unit noise). Prints each method's RMSE over the
    bound's RMS (the ratio ``tests/estimators/daun/test_baselines.py`` holds)."""
    scenario = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32,
                            num_nlos=0)
    shape, angles = scenario.grid_shape, scenario.num_angles
    count, snr = 30, 30.0
    obs, truths = scenario.observation(count, np.random.default_rng(args.seed + 11), snr)
    truth = truths[0].ue_position
    estimators: dict[str, GridLocalizer] = {
        "dpd (refine)": Dpd(refine=True, grid_shape=shape, num_angles=angles),
        "stansfield": Stansfield(grid_shape=shape, num_angles=angles),
        "srl": Srl(grid_shape=shape, num_angles=angles)}
    bound = estimators["stansfield"].crlb(obs, truths).position_error_bound
    bound_rms = float(np.sqrt(np.mean(bound**2)))
    test = "DaunScenario(16 elements, LOS only)"
    rows.append({"part": "efficiency", "test": test, "method": "los-crb", "snr_db": snr,
                 "mse_m2": f"{bound_rms**2:.4g}", "samples": count})
    for label, estimator in estimators.items():
        error = np.linalg.norm(estimator.estimate(obs).ue_position[:, :2] - truth[:, :2],
                               axis=1)
        rmse = float(np.sqrt(np.mean(error**2)))
        rows.append({"part": "efficiency", "test": test, "method": label, "snr_db": snr,
                     "mse_m2": f"{rmse**2:.4g}", "median_m": f"{np.median(error):.3g}",
                     "samples": count})
        print(f"efficiency {label:14} RMSE {rmse:.4g} m, bound {bound_rms:.4g} m, "
              f"ratio {rmse / bound_rms:.3f}", flush=True)


def cli(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """``twin simulate scenes/street/daun_drive.yaml``, then ``twin estimate -a
    daun,daun-r --snr-db 20`` (the estimate command's per-BS SNR, its default seed) on
    it: median horizontal errors and converged snapshots, as a user would get them."""
    import tempfile

    from twin.estimate import estimate_run
    from twin.estimatefile import read_estimates
    from twin.runfile import read_run
    from twin.simulate import simulate_to_file

    with tempfile.TemporaryDirectory() as tmp:
        run_path, est_path = Path(tmp) / "run.h5", Path(tmp) / "est.h5"
        simulate_to_file(BUNDLED_DIR / "street" / "daun_drive.yaml", run_path)
        estimate_run(run_path, "daun,daun-r", est_path, snr_db=20.0)
        run, estimates = read_run(run_path), read_estimates(est_path)
    for name, estimate in estimates.estimates.items():
        error = np.linalg.norm(estimate.ue_position[:, :2] - run.drive.position[:, :2],
                               axis=1)[estimate.converged]
        converged = f"{int(estimate.converged.sum())}/{len(estimate.converged)}"
        rows.append({"part": "cli", "test": "daun_drive (twin estimate, converged)",
                     "method": name, "snr_db": 20.0, "median_m": f"{np.median(error):.3g}",
                     "samples": converged})
        print(f"cli {name}: median {np.median(error):.3g} m, converged {converged}",
              flush=True)


def compare(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """From ``docs/figures/daun.csv`` (no computation): the MSE of ``--compare A,B``'s
    method A over method B's, per test set and SNR, and the largest deviation from 1."""
    first, second = args.compare.split(",")
    with (OUT / "daun.csv").open() as f:
        table = list(csv.DictReader(f))
    mse = {(r["test"], r["method"], float(r["snr_db"])): float(r["mse_m2"])
           for r in table if r["part"] in ("paper", "twin", "eq1") and r["mse_m2"]}
    for test in sorted({t for t, _, _ in mse}):
        pairs = [(snr, mse[test, first, snr] / mse[test, second, snr])
                 for (t, m, snr) in sorted(mse) if t == test and m == first
                 and (test, second, snr) in mse]
        if pairs:
            worst = max(pairs, key=lambda pair: abs(pair[1] - 1))
            listed = ", ".join(f"{snr:g} dB {ratio:.3f}" for snr, ratio in pairs)
            print(f"{test}: MSE {first} / {second}: {listed}; furthest from 1: "
                  f"{worst[1]:.3f} at {worst[0]:g} dB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "daun")
    parser.add_argument("--parts", default="paper,nmse,twin")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--drive-draws", type=int, default=10)
    parser.add_argument("--srl-samples", type=int, default=40)
    parser.add_argument("--snr-db", default="-10,-5,0,5,10,15,20,25,30")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", default="daun (twin),dpd",
                        help="two method labels for --parts compare")
    args = parser.parse_args()
    args.snr_db = [float(s) for s in args.snr_db.split(",")]
    rows: list[dict[str, Any]] = []
    parts = {"paper": paper, "nmse": nmse, "twin": twin, "eq1": eq1, "efficiency": efficiency,
             "cli": cli, "compare": compare}
    for part in args.parts.split(","):
        parts[part](args, rows)
    if args.parts == "compare":
        return
    target = OUT / "daun.csv"
    fields = ["part", "test", "method", "snr_db", "mse_m2", "p_sub_meter", "median_m",
              "seconds_per_localization", "samples"]
    existing = []
    if target.is_file():
        with target.open() as f:
            existing = [r for r in csv.DictReader(f) if r["part"] not in args.parts.split(",")]
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(existing + rows)
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
