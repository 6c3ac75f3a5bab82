"""DAUN's timing table (the paper's Table I), measured side by side in one run.

    .venv/bin/python -m scripts.daun.bench [--data data/daun] [--samples 200]
        [--slow-samples 5] [--snr-db 10]

The paper's setting (4 BSs, 50-element ULAs, K = 900, L = 100), the held-out UMa test
set (``scripts/daun/checkpoints.py``) at ``--snr-db``, the shipped ``paper``
checkpoint. Per-localization wall time on this machine, one sample at a time, of:

* ``daun`` (its layers), and ``daun`` batched (all ``--samples`` in one call);
* ``p-admm`` run to the NMSE DAUN reaches (the iteration count is found first, on the
  same samples), and ``p-admm`` with DAUN's number of iterations;
* ``cvx-direct`` (problem 3 exactly, Clarabel), ``dpd``, ``srl``, ``stansfield``.

``cvx-direct`` and ``srl`` run on the first ``--slow-samples`` only. Prints each method's
time, its ratio to DAUN's, and its MSE on the samples it ran.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from estimators.daun.admm import AdmmParameters, TorchProblem, parameters_from
from estimators.daun.baselines import CvxDirect, Dpd, Srl, Stansfield
from estimators.daun.checkpoint import load_checkpoint
from estimators.daun.estimators import Daun, PAdmm
from estimators.daun.grid import GridLocalizer, grid_parameters
from scripts.daun.figures import test_set, with_noise
from twin.train import problem_from

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "daun")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--slow-samples", type=int, default=5)
    parser.add_argument("--snr-db", type=float, default=10.0)
    args = parser.parse_args()
    import torch

    h, truth, config = test_set(args.data / "paper-uma-test", args.samples)
    checkpoint = load_checkpoint("paper")
    setting = checkpoint["setting"]
    problem = problem_from(config, setting)
    y, sigma2 = with_noise(h, args.snr_db, np.random.default_rng(0))
    trained = parameters_from(checkpoint["parameters"])
    layers = trained.num_layers
    tp = TorchProblem(problem)
    target = float(np.mean(tp.solve(y, trained).nmse))
    def padmm_nmse(count: int) -> float:
        return float(np.mean(tp.solve(y, AdmmParameters.fixed(count, 4)).nmse))

    # Doubling, then bisection (the NMSE falls with the iterations).
    high = 1
    while padmm_nmse(high) > target and high < 4096:
        high *= 2
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if padmm_nmse(middle) <= target else (middle, high)
    iterations = high if padmm_nmse(high) <= target else None
    print(f"paper setting, {args.samples} UMa test samples at {args.snr_db:g} dB, "
          f"{torch.get_num_threads()} torch threads; DAUN {layers} layers reaches NMSE "
          f"{target:.3g}; P-ADMM reaches it after {iterations} iterations", flush=True)
    grid = grid_parameters(setting)
    runs: dict[str, tuple[GridLocalizer, int]] = {
        "daun": (Daun(checkpoint="paper"), args.samples),
        f"p-admm ({iterations} it., DAUN's NMSE)": (
            PAdmm(iterations=iterations or 4096, **grid), args.samples),
        f"p-admm ({layers} it.)": (PAdmm(iterations=layers, **grid), args.samples),
        "cvx-direct": (CvxDirect(**grid), args.slow_samples),
        "dpd": (Dpd(**grid), args.samples),
        "srl": (Srl(**grid), args.slow_samples),
        "stansfield": (Stansfield(**grid), args.samples),
    }
    results = {}
    rng = np.random.default_rng(0)
    for label, (estimator, count) in runs.items():
        estimator.localize(problem, y[:1], sigma2[:1], rng)  # warm-up (torch, cvxpy)
        found = []
        start = time.perf_counter()
        for i in range(count):
            found.append(estimator.localize(problem, y[i:i + 1], sigma2[i:i + 1], rng)[0])
        seconds = (time.perf_counter() - start) / count
        error = np.linalg.norm(np.concatenate(found)[:, :2] - truth[:count, :2], axis=1)
        results[label] = (seconds, float(np.mean(error**2)), count)
    estimator = runs["daun"][0]
    start = time.perf_counter()
    batch = estimator.localize(problem, y, sigma2, rng)[0]
    batched = (time.perf_counter() - start) / args.samples
    error = np.linalg.norm(batch[:, :2] - truth[:, :2], axis=1)
    results["daun, batched"] = (batched, float(np.mean(error**2)), args.samples)
    reference = results["daun"][0]
    print(f"{'method':32} {'time/loc.':>11} {'× daun':>8} {'MSE [m²]':>10} samples")
    for label, (seconds, mse, count) in results.items():
        print(f"{label:32} {seconds * 1e3:9.3g} ms {seconds / reference:8.3g} {mse:10.3g} "
              f"{count:5d}")


if __name__ == "__main__":
    main()
