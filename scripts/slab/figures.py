"""SLAB on the paper's synthetic model (Zhou, Liu, Lau 2019, §VII).

    .venv/bin/python -m scripts.slab.figures [--parts lce,random,slots,gain,cdf]
        [--seed 2026] [--trials 50] [--max-iterations 300]         # lce
        [--placements 500]                                         # random
        [--slot-trials 30] [--slots 10] [--lmi-trials 10]          # slots
        [--gain-draws 3] [--scenarios 80] [--budget 10]            # gain, cdf
        [--out docs/figures]

Setting: :class:`estimators.slab.scenario.SlabScenario` (J = 3 BSs, N'_C = 30 subcarriers
interleaved over the BSs, L = 1 scatterer per BS, M = 20 training beams, SNR 20 dB,
N_B = N_U = 4, 6 GHz, T_s = 10 ns, 1000 × 1000 m). Parts (``--parts``), each writing to
``--out`` (``docs/figures/``):

* ``lce`` — ``slab_lce_rmse_vs_iteration.png`` (Fig. 4): UE position RMSE at the first
  slot with random BF vectors against the iteration, SLLS vs GD-LCE vs LS-LCE, all three
  from the multi-start's chosen starting point, with the long-term CRLB (Lemma 1) and the
  RMS instantaneous CRLB of the trials' fading draws; ``slab_lce.csv`` — every number (per
  method and iteration: RMSE; per trial: final error, iterations, runtime).
* ``random`` — the paper's Fig. 4 setting: its 0.028 m is an average over random
  placements (§VII-A, "at random"), not over the noise of one placement as ``lce``.
  ``--placements`` fresh placements (:meth:`SlabScenario.random`, one trial each: random
  BF, fading, noise), the first-slot multi-start + SLLS, and SLLS from the truth (to
  tell a failed search from a wrong point that fits the data better than the truth).
  Prints the RMSE over all placements with an estimate (failed starts included), the
  median, the acquired share (error < 1 m) and its RMSE, and the placements where the
  multi-start found no starting point at all; ``slab_lce_random.csv`` (per placement).
* ``slots`` — ``slab_rmse_over_slots.png`` (Fig. 5): the SLAB loop (Algorithm 1,
  :func:`estimators.slab.loop.run_slab`) over ``--slots`` slots with BFR = SLAB / GD / LMI /
  none (``slab-lce``): fused and fresh UE position RMSE per slot, with the long-term CRLB
  at the truth for each slot's beams (per slot, and accumulated over slots 1..k, the bound
  for the fused estimate). Σ known (the paper's assumption). Per trial all methods share
  ``w[1]``, the fading and the noise draws (common random numbers) and slot 1's start (the
  SLAB run's multi-start candidate; so slot 1 is the same for all, and only the SLAB
  run's slot-1 LCE runtime includes the multi-start). lmi-bfr (an SDP per slot, ~2.5 s
  each) runs on the first ``--lmi-trials`` trials only. ``slab_slots.csv`` (per trial,
  method, slot) and ``slab_slots_summary.csv`` (per method, slot).
* ``gain`` — ``slab_bfr_gain_vs_nb.png`` (Fig. 6): BFR gain κ(w[0]) / κ(w) (eq. 23: the
  initial over the optimised normalised long-term CRLB trace; κ(w[0]) = 2) at the truth
  against N_B = N_U ∈ {2, 4, 6, 8}, from ``--gain-draws`` random initial BFs each, for
  slab-bfr and gd-bfr after ``--budget`` iterations and at convergence (certified gap
  1e-6), and lmi-bfr (one SDP solve, SCS eps 1e-4, Gaussian randomisation; no iteration
  budget). κ is convex in the beam covariances (:mod:`estimators.slab.bfr`), so at
  convergence all three reach the same optimum: they differ in speed, and lmi-bfr by its
  rank-one extraction. ``slab_bfr_gain_vs_nb.csv``.
* ``cdf`` — ``slab_bfr_gain_cdf.png`` (Fig. 7): the CDF of the BFR gain over
  ``--scenarios`` random scenarios (:meth:`SlabScenario.random`: BSs, UE, scatterers uniform
  in the area, orientations uniform; SNR uniform in [-20, 60] dB; N_B = N_U = 6), at the
  equal budget and at convergence. The long-term FIM is ``∝ 1/σ²`` in both blocks, so the
  normalised cost (23) and the gain do not depend on the SNR: the spread is the
  geometry's. ``slab_bfr_gain_cdf.csv``.

Run time of lce, slots, gain and cdf with the defaults, one core of the shared 2-core
machine: ~20 min (lce ~4, slots 6.6, gain 1, cdf ~9; lmi-bfr's SDPs are most of slots
and cdf, hence ``--lmi-trials 10`` of 30 and 80 scenarios); random: ~1 s of one core a
placement (500: 21 min on the shared machine, load ~9).

One seed per run: part ``p`` (lce 0, slots 1, gain 2, cdf 3, random 4), trial ``i``
draws from ``SeedSequence([seed, i])`` (lce, as before) or ``SeedSequence([seed, p,
...])``; the seed
is a column of every new CSV and in every new figure's title.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import time
from pathlib import Path

# One BLAS thread: the problems are small, threads only wait on each other.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rich.progress import track

from estimators.fisher import crlb as invert_fim
from estimators.fisher import error_bound
from estimators.slab.baselines import gd_bfr, gd_lce, lmi_bfr, ls_lce
from estimators.slab.bfr import BfrProblem, BfrResult, slab_bfr
from estimators.slab.bound import SlabBound, SlabFisher, long_term_bound
from estimators.slab.lce import LceResult, slls
from estimators.slab.lce_init import multistart
from estimators.slab.loop import SlabRun
from estimators.slab.scenario import SlabScenario, lce_problem, run_slab_on

OUT = Path(__file__).resolve().parents[2] / "docs" / "figures"
METHODS = ("slls", "gd-lce", "ls-lce")
PARTS = ("lce", "random", "slots", "gain", "cdf")
LOOP_METHODS = ("slab", "gd", "lmi", "none")
BFR_METHODS = ("slab", "gd", "lmi")
LABELS = {"slab": "SLAB BFR", "gd": "GD-BFR", "lmi": "LMI-BFR", "none": "no BFR (slab-lce)"}
STYLES = {"slab": "o-", "gd": "s-", "lmi": "^-", "none": "x-"}
#: Iteration cap of "at convergence" (certified relative gap 1e-6, the BFR default).
CONVERGENCE_ITERATIONS = 3000
#: Budgets (iterations) recorded in the CSVs besides ``--budget``.
BUDGETS = (1, 3, 10, 30)
NB_VALUES = (2, 4, 6, 8)


def _errors(result: LceResult, truth: np.ndarray, length: int) -> np.ndarray:
    """UE position error [m] per iterate, held at the last one up to ``length``."""
    err = np.linalg.norm(result.alpha_history[:, :2] - truth, axis=1)
    return np.concatenate([err, np.full(max(0, length - err.size), err[-1])])[:length]


def first_slot_bounds(scenario: SlabScenario, beams: np.ndarray, gains: np.ndarray
                      ) -> tuple[float, float]:
    """PEB [m] of a slot with ``beams`` at the truth: the long-term CRLB (Lemma 1) and the
    instantaneous CRLB at the slot's fading ``gains [bs, path]`` (eq. 48)."""
    fisher = SlabFisher.at(system=scenario.system(), geometry=scenario.geometry(),
                           gain_covariance=scenario.gain_covariance(),
                           noise_variance=scenario.noise_variance())
    J, P = fisher.gain_covariance.shape[:2]
    instantaneous = SlabBound.from_fim(fisher.instantaneous(beams, gains), num_bs=J,
                                       num_nlos=P - 1)
    return (float(long_term_bound(beams, fisher=fisher).position_error_bound),
            float(instantaneous.position_error_bound))


def lce_trial(scenario: SlabScenario, seed: int, trial: int, max_iterations: int
              ) -> dict[str, object]:
    """One first-slot LCE: random BF, multi-start, then each method from its start."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, trial]))
    beams = scenario.random_beamformers(rng)
    sample = scenario.sample(beams, rng)
    problem = lce_problem(scenario, sample)
    start = multistart(problem, rng)
    alpha0 = start.candidates[start.best]
    truth = np.asarray(scenario.ue_position)
    results = {"slls": slls(problem, alpha0, max_iterations=max_iterations),
               "gd-lce": gd_lce(problem, alpha0, max_iterations=max_iterations),
               "ls-lce": ls_lce(problem, alpha0, max_iterations=max_iterations)}
    long_term, instantaneous = first_slot_bounds(scenario, beams, sample.gains[0])
    return {
        "errors": {m: _errors(r, truth, max_iterations + 1) for m, r in results.items()},
        "iterations": {m: r.iterations for m, r in results.items()},
        "converged": {m: r.converged for m, r in results.items()},
        "runtime_s": {m: r.runtime_s for m, r in results.items()},
        "multistart_s": start.runtime_s,
        "long_term_peb": long_term,
        "instantaneous_peb": instantaneous,
    }


def lce_part(args: argparse.Namespace, out: Path) -> None:
    """Fig. 4: first-slot LCE RMSE against the iteration."""
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

    with (out / "slab_lce.csv").open("w", newline="") as f:
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
    fig.savefig(out / "slab_lce_rmse_vs_iteration.png", dpi=120)
    plt.close(fig)


# ------------------------------------------- random placements (the paper's Fig. 4 setting)

#: A first-slot estimate this far from the UE is a failed start (a wrong LOS hypothesis
#: or range alias is off by metres; a converged one by millimetres).
ACQUIRED_M = 1.0


def random_trial(seed: int, trial: int) -> dict[str, object]:
    """One first-slot LCE on a fresh random placement (:meth:`SlabScenario.random`, the
    paper's §VII-A "at random"): random BF, the multi-start, and SLLS from the truth (to
    tell a failed search from a wrong point that fits the data better than the truth)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4, trial]))
    scenario = SlabScenario.random(rng)
    beams = scenario.random_beamformers(rng)
    sample = scenario.sample(beams, rng)
    problem = lce_problem(scenario, sample)
    truth = np.asarray(scenario.ue_position)
    try:
        start = multistart(problem, rng)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        # No starting point at all (e.g. every LOS hypothesis outside the area): the
        # registered estimators return converged=False with this reason.
        start, reason = None, f"{type(exc).__name__}: {exc}"[:120]
    else:
        reason = ""
    from_truth = slls(problem, scenario.geometry().alpha())
    long_term, instantaneous = first_slot_bounds(scenario, beams, sample.gains[0])
    return {
        "seed": seed, "trial": trial,
        "error_m": (float(np.linalg.norm(start.result.ue_position - truth))
                    if start is not None else float("nan")),
        "error_from_truth_m": float(np.linalg.norm(from_truth.ue_position - truth)),
        "cost": float(start.result.cost) if start is not None else float("nan"),
        "cost_from_truth": float(from_truth.cost),
        "long_term_peb_m": long_term, "instantaneous_peb_m": instantaneous,
        "multistart_s": float(start.runtime_s) if start is not None else float("nan"),
        "reason": reason,
    }


def random_part(args: argparse.Namespace, out: Path) -> None:
    """The paper's headline (0.028 m, Fig. 4) is an average over random placements: the
    first-slot SLLS error over ``--placements`` fresh placements, failed starts included."""
    rows = [random_trial(args.seed, i)
            for i in track(range(args.placements), description="random placements")]
    _write_rows(out / "slab_lce_random.csv", rows)
    error = np.array([float(r["error_m"]) for r in rows])  # type: ignore[arg-type]
    no_start = np.isnan(error)
    acquired = error < ACQUIRED_M
    cost = np.array([float(r["cost"]) for r in rows])  # type: ignore[arg-type]
    truth_cost = np.array([float(r["cost_from_truth"]) for r in rows])  # type: ignore[arg-type]
    wrong_fit_better = ~acquired & ~no_start & (cost <= truth_cost)
    peb = np.array([float(r["instantaneous_peb_m"]) for r in rows])  # type: ignore[arg-type]
    print(f"seed {args.seed}, {args.placements} random placements, first slot, random BF")
    found = error[~no_start]
    print(f"no starting point at all: {no_start.sum()}/{error.size} placements")
    print(f"over the {found.size} with an estimate (failed starts included): RMSE "
          f"{np.sqrt(np.mean(found**2)):.4g} m, median {np.median(found):.4g} m "
          f"(paper: 0.028 m)")
    print(f"acquired (< {ACQUIRED_M:g} m) {acquired.sum()}/{error.size}: RMSE "
          f"{np.sqrt(np.mean(error[acquired]**2)):.4g} m, median "
          f"{np.median(error[acquired]):.4g} m, RMS instantaneous PEB "
          f"{np.sqrt(np.mean(peb[acquired]**2)):.4g} m")
    print(f"failed starts (>= {ACQUIRED_M:g} m off): {(~acquired & ~no_start).sum()} "
          f"({wrong_fit_better.sum()} on a wrong point that fits better than SLLS from the "
          f"truth)")


# ------------------------------------------------------------------ slots (Fig. 5)


def _seed(*entropy: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(entropy)))


def _position_bound(fim_alpha: np.ndarray) -> float:
    """``sqrt(var x + var y)`` [m] of the α FIM's inverse (NaN if singular)."""
    return error_bound(invert_fim(fim_alpha), [0, 1])


def slot_trial(scenario: SlabScenario, fisher: SlabFisher, seed: int, trial: int,
               slots: int, with_lmi: bool) -> list[dict[str, object]]:
    """One trial of every loop variant (common random numbers, shared slot-1 start)."""
    truth = scenario.geometry().alpha()
    n = truth.size
    runs: dict[str, SlabRun] = {}
    runs["slab"] = run_slab_on(scenario, _seed(seed, 1, trial), num_slots=slots, bfr="slab")
    ms = runs["slab"].multistart
    assert ms is not None
    start = ms.candidates[ms.best]
    for method in ("gd", "none", *(("lmi",) if with_lmi else ())):
        runs[method] = run_slab_on(scenario, _seed(seed, 1, trial), num_slots=slots,
                                   bfr=method, initial_alpha=start)
    rows = []
    for method, run in runs.items():
        accumulated = np.zeros((n, n))
        for k in range(slots):
            fim = fisher.long_term(run.beamformers[k])[:n, :n]
            accumulated = accumulated + fim
            rows.append({
                "seed": seed, "trial": trial, "method": method, "slot": k + 1,
                "fused_error_m": float(np.linalg.norm(run.ue_position[k] - truth[:2])),
                "fresh_error_m": float(np.linalg.norm(run.estimates[k, :2] - truth[:2])),
                "peb_slot_m": _position_bound(fim),
                "peb_accumulated_m": _position_bound(accumulated),
                "peb_at_estimate_m": float(run.position_error_bound[k]),
                "bfr_cost": float(run.bfr_cost[k]),
                "lce_runtime_s": float(run.lce_runtime_s[k]),
                "bfr_runtime_s": float(run.bfr_runtime_s[k]),
                "bfr_iterations": (run.bfr_results[k].iterations  # type: ignore[union-attr]
                                   if run.bfr_results[k] is not None else 0),
                "bfr_reason": run.bfr_reasons[k],
            })
    return rows


def _write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in row.items()})


def slots_part(args: argparse.Namespace, out: Path) -> None:
    """Fig. 5: the loop's RMSE over slots per BFR strategy."""
    scenario = SlabScenario()
    fisher = SlabFisher.at(system=scenario.system(), geometry=scenario.geometry(),
                           gain_covariance=scenario.gain_covariance(),
                           noise_variance=scenario.noise_variance())
    rows: list[dict[str, object]] = []
    for trial in track(range(args.slot_trials), description="SLAB loop trials"):
        rows += slot_trial(scenario, fisher, args.seed, trial, args.slots,
                           trial < args.lmi_trials)
    _write_rows(out / "slab_slots.csv", rows)

    summary: list[dict[str, object]] = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    lmi_trials = min(args.lmi_trials, args.slot_trials)
    print(f"seed {args.seed}, {args.slot_trials} trials (lmi {lmi_trials}), {args.slots} "
          "slots, paper setting, Σ known")
    for method in LOOP_METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        table = {key: np.array([[float(r[key]) for r in mine if r["slot"] == k + 1]  # type: ignore[arg-type]
                                for k in range(args.slots)])
                 for key in ("fused_error_m", "fresh_error_m", "peb_slot_m",
                             "peb_accumulated_m", "lce_runtime_s", "bfr_runtime_s")}
        rms = {key: np.sqrt(np.mean(v**2, axis=1)) for key, v in table.items()}
        curves[method] = rms
        trials = table["fused_error_m"].shape[1]
        for k in range(args.slots):
            summary.append({
                "seed": args.seed, "method": method, "slot": k + 1, "trials": trials,
                "rmse_fused_m": float(rms["fused_error_m"][k]),
                "rmse_fresh_m": float(rms["fresh_error_m"][k]),
                "rms_peb_slot_m": float(rms["peb_slot_m"][k]),
                "rms_peb_accumulated_m": float(rms["peb_accumulated_m"][k]),
                "median_lce_runtime_s": float(np.median(table["lce_runtime_s"][k])),
                "median_bfr_runtime_s": float(np.median(table["bfr_runtime_s"][k])),
            })
        print(f"{method:5s} ({trials} trials) fused RMSE [mm] per slot: "
              + " ".join(f"{v * 1e3:.2f}" for v in rms["fused_error_m"]))
        print("      fresh RMSE [mm]: " + " ".join(f"{v * 1e3:.2f}" for v in rms["fresh_error_m"]))
        print("      PEB slot / accumulated [mm]: "
              + " ".join(f"{a * 1e3:.2f}/{b * 1e3:.2f}" for a, b in
                         zip(rms["peb_slot_m"], rms["peb_accumulated_m"], strict=True)))
        print("      median runtime LCE / BFR [s]: "
              + " ".join(f"{np.median(a):.3f}/{np.median(b):.3f}" for a, b in
                         zip(table["lce_runtime_s"], table["bfr_runtime_s"], strict=True)))
    _write_rows(out / "slab_slots_summary.csv", summary)

    slots = np.arange(1, args.slots + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), sharey=True)
    for method, rms in curves.items():
        trials = sum(1 for r in rows if r["method"] == method and r["slot"] == 1)
        label = f"{LABELS[method]} ({trials} trials)"
        line, = axes[0].semilogy(slots, rms["fused_error_m"], STYLES[method], label=label)
        axes[0].semilogy(slots, rms["peb_accumulated_m"], "--", color=line.get_color())
        axes[1].semilogy(slots, rms["fresh_error_m"], STYLES[method], color=line.get_color(),
                         label=label)
        axes[1].semilogy(slots, rms["peb_slot_m"], "--", color=line.get_color())
    axes[0].set_title("fused ᾱ[k] (25); dashed: long-term CRLB of slots 1..k")
    axes[1].set_title("fresh α̂[k] of slot k; dashed: long-term CRLB of w[k]")
    for ax in axes:
        ax.set_xlabel("time slot k")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("UE position RMSE [m]")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"SLAB loop, paper setting, SNR {scenario.snr_db:g} dB, Σ known, "
                 f"bounds at the truth (seed {args.seed})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "slab_rmse_over_slots.png", dpi=120)
    plt.close(fig)


# -------------------------------------------------------------- BFR gain (Figs. 6, 7)


def _budget_cost(result: BfrResult, budget: int) -> float:
    """κ after ``budget`` iterations (the history has no normalisation entry: the start
    is unit-norm)."""
    history = result.cost_history
    return float(history[min(budget, history.size - 1)])


def bfr_gains(scenario: SlabScenario, rng: np.random.Generator, budgets: tuple[int, ...]
              ) -> dict[str, object]:
    """slab-bfr, gd-bfr (to convergence, budgets read off their histories) and lmi-bfr
    at the truth of ``scenario`` from one random initial BF."""
    w0 = scenario.random_beamformers(rng)
    fisher = SlabFisher.at(system=scenario.system(), geometry=scenario.geometry(),
                           gain_covariance=scenario.gain_covariance(),
                           noise_variance=scenario.noise_variance())
    problem = BfrProblem.at(fisher=fisher, reference_beamformers=w0)
    initial = problem.cost(w0)
    peb0 = problem.bound(w0).position_error_bound
    row: dict[str, object] = {"initial_cost": initial}
    for method in BFR_METHODS:
        start = time.perf_counter()
        try:
            if method == "slab":
                result: BfrResult = slab_bfr(w0, problem=problem,
                                             max_iterations=CONVERGENCE_ITERATIONS)
            elif method == "gd":
                result = gd_bfr(w0, problem=problem, max_iterations=CONVERGENCE_ITERATIONS)
            else:
                result = lmi_bfr(w0, problem=problem, rng=rng)
        except (np.linalg.LinAlgError, ArithmeticError) as error:
            row[f"{method}_failed"] = str(error)
            continue
        row[f"{method}_runtime_s"] = time.perf_counter() - start
        row[f"{method}_iterations"] = result.iterations
        row[f"{method}_converged"] = result.converged
        row[f"{method}_gain"] = initial / result.cost
        row[f"{method}_gap_rel"] = result.optimality_gap / result.cost
        row[f"{method}_peb_gain"] = peb0 / problem.bound(result.beamformers).position_error_bound
        if method != "lmi":
            for budget in budgets:
                row[f"{method}_gain_at_{budget}"] = initial / _budget_cost(result, budget)
    return row


def gain_part(args: argparse.Namespace, out: Path) -> None:
    """Fig. 6: BFR gain against N_B = N_U at the paper's geometry."""
    budgets = tuple(sorted({*BUDGETS, args.budget}))
    rows: list[dict[str, object]] = []
    for nb in track(NB_VALUES, description="BFR gain vs N_B"):
        scenario = dataclasses.replace(SlabScenario(), num_bs_antennas=nb, num_ue_antennas=nb)
        for draw in range(args.gain_draws):
            row = {"seed": args.seed, "num_bs_antennas": nb, "draw": draw,
                   **bfr_gains(scenario, _seed(args.seed, 2, nb, draw), budgets)}
            rows.append(row)
    _write_rows(out / "slab_bfr_gain_vs_nb.csv", rows)

    def mean(key: str, nb: int) -> float:
        values = [float(r[key]) for r in rows  # type: ignore[arg-type]
                  if r["num_bs_antennas"] == nb and key in r]
        return float(np.mean(values)) if values else float("nan")

    print(f"seed {args.seed}, {args.gain_draws} initial BF draws per N_B, paper geometry, "
          "at the truth")
    for nb in NB_VALUES:
        parts = []
        for method in BFR_METHODS:
            parts.append(f"{method} conv {mean(f'{method}_gain', nb):.4f} "
                         f"({mean(f'{method}_iterations', nb):.0f} it, "
                         f"{mean(f'{method}_runtime_s', nb):.2f} s)")
        for method in ("slab", "gd"):
            budget_gain = mean(f"{method}_gain_at_{args.budget}", nb)
            parts.append(f"{method}@{args.budget} {budget_gain:.4f}")
        print(f"  N_B = N_U = {nb}: " + "; ".join(parts))

    nbs = np.array(NB_VALUES)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True)
    for method in ("slab", "gd"):
        for budget, style in ((3, ":"), (args.budget, "--")):
            axes[0].plot(nbs, [mean(f"{method}_gain_at_{budget}", nb) for nb in nbs],
                         STYLES[method][0] + style, color=f"C{BFR_METHODS.index(method)}",
                         label=f"{LABELS[method]}, {budget} iterations")
    axes[0].plot(nbs, [mean("lmi_gain", nb) for nb in nbs], STYLES["lmi"], color="C2",
                 label="LMI-BFR (one SDP solve)")
    axes[0].set_title("equal iteration budgets")
    for method in BFR_METHODS:
        axes[1].plot(nbs, [mean(f"{method}_gain", nb) for nb in nbs], STYLES[method],
                     color=f"C{BFR_METHODS.index(method)}", label=LABELS[method],
                     markersize=9 - 2 * BFR_METHODS.index(method))
    axes[1].set_title("at convergence (gap 1e-6): convex in the beam\n"
                      "covariance, so all three coincide", fontsize=10)
    for ax in axes:
        ax.set_xlabel("N_B = N_U")
        ax.set_xticks(nbs)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("BFR gain κ(w[0]) / κ(w)  (eq. 23)")
    fig.suptitle(f"BFR gain vs antennas, paper geometry at the truth, mean of "
                 f"{args.gain_draws} random initial BFs (seed {args.seed})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "slab_bfr_gain_vs_nb.png", dpi=120)
    plt.close(fig)


def cdf_part(args: argparse.Namespace, out: Path) -> None:
    """Fig. 7: CDF of the BFR gain over random scenarios."""
    budgets = tuple(sorted({*BUDGETS, args.budget}))
    rows: list[dict[str, object]] = []
    for index in track(range(args.scenarios), description="random scenarios"):
        rng = _seed(args.seed, 3, index)
        snr_db = float(rng.uniform(-20.0, 60.0))
        scenario = SlabScenario.random(rng, snr_db=snr_db, num_bs_antennas=6,
                                       num_ue_antennas=6)
        rows.append({"seed": args.seed, "scenario": index, "snr_db": snr_db,
                     **bfr_gains(scenario, rng, budgets)})
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    for r in rows:
        for k in keys:
            r.setdefault(k, "")
    _write_rows(out / "slab_bfr_gain_cdf.csv", [{k: r[k] for k in keys} for r in rows])

    def values(key: str) -> np.ndarray:
        return np.sort([float(r[key]) for r in rows if r[key] != ""])  # type: ignore[arg-type]

    print(f"seed {args.seed}, {args.scenarios} random scenarios, N_B = N_U = 6, "
          "SNR U[-20, 60] dB")
    failed = {m: sum(1 for r in rows if r.get(f"{m}_failed")) for m in BFR_METHODS}
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for method in BFR_METHODS:
        converged = values(f"{method}_gain")
        color = f"C{BFR_METHODS.index(method)}"
        ax.plot(converged, np.arange(1, converged.size + 1) / converged.size, "-",
                color=color, lw=3.5 - 1.0 * BFR_METHODS.index(method), label=f"{LABELS[method]}"
                + (" (SDP solve)" if method == "lmi" else ", converged")
                + f", median {np.median(converged):.3f}")
        line = (f"{method}: converged median {np.median(converged):.4f} "
                f"(p10 {np.percentile(converged, 10):.3f}, p90 "
                f"{np.percentile(converged, 90):.3f}), failed {failed[method]}, median "
                f"{np.median(values(f'{method}_iterations')):.0f} iterations, "
                f"{np.median(values(f'{method}_runtime_s')):.2f} s")
        if method != "lmi":
            budget = values(f"{method}_gain_at_{args.budget}")
            ax.plot(budget, np.arange(1, budget.size + 1) / budget.size, "--", color=color,
                    label=f"{LABELS[method]}, {args.budget} iterations, median "
                    f"{np.median(budget):.3f}")
            line += f"; @{args.budget} median {np.median(budget):.4f}"
        print("  " + line)
    ax.set_xlabel("BFR gain κ(w[0]) / κ(w)  (eq. 23)")
    ax.set_ylabel("CDF")
    ax.set_title(f"{args.scenarios} random scenarios, N_B = N_U = 6, SNR U[-20, 60] dB "
                 f"(seed {args.seed})\nκ is SNR-free; at convergence the methods coincide",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "slab_bfr_gain_cdf.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--trials", type=int, default=50, help="lce: trials")
    parser.add_argument("--max-iterations", type=int, default=300, help="lce: iterations")
    parser.add_argument("--placements", type=int, default=500,
                        help="random: random placements (one trial each)")
    parser.add_argument("--slot-trials", type=int, default=30, help="slots: trials")
    parser.add_argument("--slots", type=int, default=10, help="slots: time slots")
    parser.add_argument("--lmi-trials", type=int, default=10,
                        help="slots: trials that also run lmi-bfr (the first ones)")
    parser.add_argument("--gain-draws", type=int, default=3,
                        help="gain: random initial BFs per N_B")
    parser.add_argument("--scenarios", type=int, default=80, help="cdf: random scenarios")
    parser.add_argument("--budget", type=int, default=10,
                        help="gain, cdf: the equal iteration budget of slab-bfr and gd-bfr")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    functions = {"lce": lce_part, "random": random_part, "slots": slots_part,
                 "gain": gain_part, "cdf": cdf_part}
    for part in PARTS:
        if part in parts:
            start = time.perf_counter()
            functions[part](args, args.out)
            print(f"[{part}] {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
