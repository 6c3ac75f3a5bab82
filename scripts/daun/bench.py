"""DAUN's timing table (the paper's Table I), measured side by side in one run.

    .venv/bin/python -m scripts.daun.bench [--data data/daun] [--samples 200]
        [--slow-samples 5] [--snr-db 10] [--rounds 3] [--speed]

The paper's setting (4 BSs, 50-element ULAs, K = 900, L = 100), the held-out UMa test
set (``scripts/daun/checkpoints.py``) at ``--snr-db``, the shipped ``paper``
checkpoint. Per-localization wall time on this machine, one sample at a time, of:

* ``daun`` (its layers: :class:`~estimators.daun.admm.AdmmOperators`), and ``daun``
  batched (all ``--samples`` in one call);
* ``daun (torch reference)``: the path ``daun`` ran before issue 24, the torch
  iteration (:class:`~estimators.daun.admm.TorchProblem`, the dictionaries made tensors
  on every call), one at a time and batched; the fixes both paths agree on are counted;
* ``dpd``, one at a time and batched;
* ``p-admm`` run to the NMSE DAUN reaches (the iteration count is found first, on the
  same samples), and ``p-admm`` with DAUN's number of iterations;
* ``cvx-direct`` (problem 3 exactly, Clarabel), ``srl``, ``stansfield``.

``cvx-direct`` and ``srl`` run on the first ``--slow-samples`` only. The DAUN and DPD
rows are timed in ``--rounds`` interleaved rounds (each the best of its rounds: the
machine's other load only slows a round down). Prints each method's time, its ratio to
DAUN's, and its MSE on the samples it ran. ``--speed``: only the DAUN and DPD rows
(issue 24's row).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from estimators.daun.admm import (
    AdmmParameters,
    TorchProblem,
    parameters_from,
    positions,
    solve,
)
from estimators.daun.baselines import CvxDirect, Dpd, Srl, Stansfield
from estimators.daun.checkpoint import load_checkpoint
from estimators.daun.estimators import Daun, PAdmm
from estimators.daun.grid import GridLocalizer, grid_parameters
from estimators.daun.model import DirectLocalizationProblem
from scripts.daun.figures import test_set, with_noise
from twin.train import problem_from

ROOT = Path(__file__).resolve().parents[2]


class TorchReference(GridLocalizer):
    """``daun`` as it ran before issue 24: the torch iteration, its dictionaries made
    tensors on every call (the reference the inference path is pinned to)."""

    name = "daun (torch reference)"

    def __init__(self, checkpoint: str) -> None:
        super().__init__()
        self.checkpoint = checkpoint

    def _localize(self, problem: DirectLocalizationProblem, y: np.ndarray,
                  noise_variance: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        trained = parameters_from(load_checkpoint(self.checkpoint)["parameters"])
        solution = TorchProblem(problem).solve(y, trained)
        return positions(problem, solution.X, refine=False), {"nmse": solution.nmse}


def per_call(estimator: GridLocalizer, problem: DirectLocalizationProblem, y: np.ndarray,
             sigma2: np.ndarray, count: int, rng: np.random.Generator
             ) -> tuple[float, np.ndarray]:
    """Seconds per localization, one sample a call, and the fixes ``[count, 3]``."""
    found = []
    start = time.perf_counter()
    for i in range(count):
        found.append(estimator.localize(problem, y[i:i + 1], sigma2[i:i + 1], rng)[0])
    return (time.perf_counter() - start) / count, np.concatenate(found)


def batched(estimator: GridLocalizer, problem: DirectLocalizationProblem, y: np.ndarray,
            sigma2: np.ndarray, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """Seconds per localization, all samples in one call, and the fixes."""
    start = time.perf_counter()
    found = estimator.localize(problem, y, sigma2, rng)[0]
    return (time.perf_counter() - start) / len(y), found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "daun")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--slow-samples", type=int, default=5)
    parser.add_argument("--snr-db", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed", action="store_true",
                        help="only the DAUN and DPD rows (one call and batched)")
    args = parser.parse_args()
    import torch

    h, truth, config = test_set(args.data / "paper-uma-test", args.samples)
    checkpoint = load_checkpoint("paper")
    setting = checkpoint["setting"]
    problem = problem_from(config, setting)
    y, sigma2 = with_noise(h, args.snr_db, np.random.default_rng(0))
    trained = parameters_from(checkpoint["parameters"])
    layers = trained.num_layers
    grid = grid_parameters(setting)
    print(f"paper setting, {args.samples} UMa test samples at {args.snr_db:g} dB, "
          f"{torch.get_num_threads()} torch threads, OPENBLAS_NUM_THREADS="
          f"{os.environ['OPENBLAS_NUM_THREADS']}", flush=True)
    rng = np.random.default_rng(0)

    def mse(found: np.ndarray) -> float:
        return float(np.mean(np.sum((found[:, :2] - truth[:len(found), :2]) ** 2, axis=1)))

    # The DAUN and DPD rows: interleaved rounds, each row its best round.
    timed = {"daun": Daun(checkpoint="paper"), "daun (torch reference)":
             TorchReference("paper"), "dpd": Dpd(**grid)}
    best: dict[str, float] = {}
    fixes: dict[str, np.ndarray] = {}
    first = {}
    for _ in range(args.rounds):
        for label, estimator in timed.items():
            start = time.perf_counter()
            estimator.localize(problem, y[:1], sigma2[:1], rng)  # warm-up
            first.setdefault(label, time.perf_counter() - start)
            for mode, run in (("", lambda e=estimator: per_call(e, problem, y, sigma2,
                                                                 args.samples, rng)),
                              (", batched", lambda e=estimator: batched(e, problem, y, sigma2,
                                                                         rng))):
                seconds, found = run()
                best[label + mode] = min(best.get(label + mode, np.inf), seconds)
                fixes[label + mode] = found
    results = {label: (seconds, mse(fixes[label]), args.samples)
               for label, seconds in best.items()}
    same = {mode: int(np.sum(np.all(fixes["daun" + mode] == fixes["daun (torch reference)"
                                                                   + mode], axis=1)))
            for mode in ("", ", batched")}
    print("first call (daun: its operators prepared): " + ", ".join(
        f"{label} {seconds * 1e3:.3g} ms" for label, seconds in first.items()))
    print(f"daun vs its torch reference: the same fix for {same['']} of {args.samples} "
          f"one at a time, {same[', batched']} batched", flush=True)
    if not args.speed:
        tp_nmse = float(np.mean(solve(problem, y, trained).nmse))

        def padmm_nmse(count: int) -> float:
            return float(np.mean(solve(problem, y, AdmmParameters.fixed(count, 4)).nmse))

        # Doubling, then bisection (the NMSE falls with the iterations).
        high = 1
        while padmm_nmse(high) > tp_nmse and high < 4096:
            high *= 2
        low = high // 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if padmm_nmse(middle) <= tp_nmse else (middle, high)
        iterations = high if padmm_nmse(high) <= tp_nmse else None
        print(f"DAUN {layers} layers reaches NMSE {tp_nmse:.3g}; P-ADMM reaches it after "
              f"{iterations} iterations", flush=True)
        runs: dict[str, tuple[GridLocalizer, int]] = {
            f"p-admm ({iterations} it., DAUN's NMSE)": (
                PAdmm(iterations=iterations or 4096, **grid), args.samples),
            f"p-admm ({layers} it.)": (PAdmm(iterations=layers, **grid), args.samples),
            "cvx-direct": (CvxDirect(**grid), args.slow_samples),
            "srl": (Srl(**grid), args.slow_samples),
            "stansfield": (Stansfield(**grid), args.samples),
        }
        for label, (estimator, count) in runs.items():
            estimator.localize(problem, y[:1], sigma2[:1], rng)  # warm-up (cvxpy)
            seconds, found = per_call(estimator, problem, y, sigma2, count, rng)
            results[label] = (seconds, mse(found), count)
    reference = results["daun"][0]
    print(f"{'method':36} {'time/loc.':>11} {'× daun':>8} {'MSE [m²]':>10} samples")
    for label, (seconds, error, count) in results.items():
        print(f"{label:36} {seconds * 1e3:9.3g} ms {seconds / reference:8.3g} {error:10.3g} "
              f"{count:5d}")
    for mode in ("", ", batched"):
        print(f"daun{mode} / dpd{mode}: {best['daun' + mode] / best['dpd' + mode]:.3g}; "
              f"daun{mode} / its torch reference: "
              f"{best['daun' + mode] / best['daun (torch reference)' + mode]:.3g}")


if __name__ == "__main__":
    main()
