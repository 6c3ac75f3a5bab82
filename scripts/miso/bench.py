"""Runtime per snapshot: MISO coarse grid vs SP refinement vs joint ML, side by side.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m scripts.miso.bench [--snapshots 100]

Same observations (the paper setting at 10 dB SNR, 2D with a 32-element ULA and 3D with
a 4x8 planar array) for all three estimators, in one run; prints the median time per
snapshot of each and the ratios to the grid.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from estimators.miso.estimators import MisoML, MisoSpGrid, MisoSpRefine
from estimators.miso.scenario import MisoScenario, variant_3d

SCENARIOS = {
    "2D, ULA 32, 16 beams": (MisoScenario(), 2),
    "3D, URA 4x8, 36 beams": (variant_3d(), 3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=100)
    args = parser.parse_args()
    for label, (scenario, dims) in SCENARIOS.items():
        obs, _ = scenario.observation(args.snapshots, np.random.default_rng(1), 10.0)
        medians = {}
        for cls in (MisoSpGrid, MisoSpRefine, MisoML):
            estimator = cls(dimensions=dims)
            estimator.estimate(obs)  # warm-up
            start = time.perf_counter()
            est = estimator.estimate(obs)
            total = time.perf_counter() - start
            medians[cls.name] = float(np.median(est.runtime_s))
            print(f"{label}: {cls.name:15s} median {1e3 * medians[cls.name]:7.2f} ms/snapshot "
                  f"(total {total:.2f} s for {args.snapshots})")
        grid = medians["miso-sp-grid"]
        print(f"{label}: ratios to miso-sp-grid: sp-refine "
              f"{medians['miso-sp-refine'] / grid:.2f}x, joint ML {medians['miso-ml'] / grid:.2f}x")


if __name__ == "__main__":
    main()
