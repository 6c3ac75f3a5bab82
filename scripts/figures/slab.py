"""SLAB on the paper's synthetic model (Zhou, Liu, Lau 2019, §VII).

    .venv/bin/python scripts/figures/slab.py [--trials 50] [--seed 2026]
        [--max-iterations 300]

Setting: :class:`estimators.models.slab.SlabScenario` (J = 3 BSs, N'_C = 30 subcarriers
interleaved over the BSs, L = 1 scatterer per BS, M = 20 training beams, SNR 20 dB,
N_B = N_U = 4, 6 GHz, T_s = 10 ns, 1000 × 1000 m). Writes to ``docs/figures/``:

* ``slab_lce_rmse_vs_iteration.png`` (Fig. 4): UE position RMSE at the first slot with
  random BF vectors against the iteration, SLLS vs GD-LCE vs LS-LCE, all three from the
  multi-start's chosen starting point, with the long-term CRLB (Lemma 1) and the RMS
  instantaneous CRLB of the trials' fading draws;
* ``slab_lce.csv`` — every number (per method and iteration: RMSE; per trial: final
  error, iterations, runtime).

One seed per run: trial ``i`` draws from ``SeedSequence([seed, i])``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

# One BLAS thread: the problems are small, threads only wait on each other.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from estimators.models.slab import SlabScenario
from estimators.slab import SlabBound, SlabFisher, long_term_bound
from estimators.slab_lce import LceProblem, LceResult, gd_lce, ls_lce, multistart, slls

OUT = Path(__file__).resolve().parents[2] / "docs" / "figures"
METHODS = ("slls", "gd-lce", "ls-lce")


def _errors(result: LceResult, truth: np.ndarray, length: int) -> np.ndarray:
    """UE position error [m] per iterate, held at the last one up to ``length``."""
    err = np.linalg.norm(result.alpha_history[:, :2] - truth, axis=1)
    return np.concatenate([err, np.full(max(0, length - err.size), err[-1])])[:length]


def lce_trial(scenario: SlabScenario, seed: int, trial: int, max_iterations: int
              ) -> dict[str, object]:
    """One first-slot LCE: random BF, multi-start, then each method from its start."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, trial]))
    beams = scenario.random_beamformers(rng)
    sample = scenario.sample(beams, rng)
    problem = LceProblem.from_sample(scenario, sample)
    start = multistart(problem, rng)
    alpha0 = start.candidates[start.best]
    truth = np.asarray(scenario.ue_position)
    results = {"slls": slls(problem, alpha0, max_iterations=max_iterations),
               "gd-lce": gd_lce(problem, alpha0, max_iterations=max_iterations),
               "ls-lce": ls_lce(problem, alpha0, max_iterations=max_iterations)}
    geometry = scenario.geometry()
    fisher = SlabFisher.at(system=scenario.system(), geometry=geometry,
                           gain_covariance=scenario.gain_covariance(),
                           noise_variance=scenario.noise_variance())
    J, P = fisher.gain_covariance.shape[:2]
    instantaneous = SlabBound.from_fim(fisher.instantaneous(beams, sample.gains[0]),
                                       num_bs=J, num_nlos=P - 1)
    return {
        "errors": {m: _errors(r, truth, max_iterations + 1) for m, r in results.items()},
        "iterations": {m: r.iterations for m, r in results.items()},
        "converged": {m: r.converged for m, r in results.items()},
        "runtime_s": {m: r.runtime_s for m, r in results.items()},
        "multistart_s": start.runtime_s,
        "long_term_peb": long_term_bound(beams, fisher=fisher).position_error_bound,
        "instantaneous_peb": instantaneous.position_error_bound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--max-iterations", type=int, default=300)
    args = parser.parse_args()
    scenario = SlabScenario()
    trials = [lce_trial(scenario, args.seed, i, args.max_iterations)
              for i in track(range(args.trials), description="LCE trials")]
    iterations = np.arange(args.max_iterations + 1)
    rmse = {m: np.sqrt(np.mean([t["errors"][m] ** 2 for t in trials], axis=0))  # type: ignore[index]
            for m in METHODS}
    long_term = float(np.sqrt(np.mean([t["long_term_peb"] ** 2 for t in trials])))  # type: ignore[operator]
    instantaneous = float(np.sqrt(np.mean([t["instantaneous_peb"] ** 2 for t in trials])))  # type: ignore[operator]

    print(f"seed {args.seed}, {args.trials} trials, first slot, random BF")
    print(f"long-term PEB (RMS over BF draws) {long_term * 1e3:.2f} mm, "
          f"instantaneous PEB (RMS over fading draws) {instantaneous * 1e3:.2f} mm")
    for m in METHODS:
        its = np.array([t["iterations"][m] for t in trials])  # type: ignore[index]
        conv = sum(bool(t["converged"][m]) for t in trials)  # type: ignore[index]
        times = np.array([t["runtime_s"][m] for t in trials])  # type: ignore[index]
        print(f"{m:7s}: final RMSE {rmse[m][-1] * 1e3:8.2f} mm, median {np.median(its):.0f} "
              f"iterations ({conv}/{args.trials} converged), median {np.median(times) * 1e3:.0f} "
              f"ms; RMSE after 5 / 20 / 100 iterations: "
              + " / ".join(f"{rmse[m][min(i, args.max_iterations)] * 1e3:.1f}"
                           for i in (5, 20, 100)) + " mm")
    ms = np.array([t["multistart_s"] for t in trials])
    print(f"multi-start: median {np.median(ms):.2f} s per first slot")

    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "slab_lce.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", *(f"rmse_{m}_m" for m in METHODS),
                         "long_term_peb_m", "instantaneous_peb_m"])
        for i in iterations:
            writer.writerow([i, *(f"{rmse[m][i]:.6g}" for m in METHODS),
                             f"{long_term:.6g}", f"{instantaneous:.6g}"])

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for m, style in zip(METHODS, ("o-", "s-", "^-"), strict=True):
        ax.semilogy(iterations + 1, rmse[m], style, markevery=0.1, label=m.upper())
    ax.axhline(long_term, color="k", ls="--", label="long-term CRLB (Lemma 1)")
    ax.axhline(instantaneous, color="k", ls=":", label="instantaneous CRLB (RMS)")
    ax.set_xscale("log")
    ax.set_xlabel("iteration + 1")
    ax.set_ylabel("UE position RMSE [m]")
    ax.set_title(f"First slot, random BF, SNR {scenario.snr_db:g} dB ({args.trials} trials)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "slab_lce_rmse_vs_iteration.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
