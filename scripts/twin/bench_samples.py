"""Choose ``tracing.samples_per_src``: paths found vs the 1e7 reference, and time.

    .venv/bin/python -m scripts.twin.bench_samples [--snapshots N]

For every bundled scene (its drive.yaml, first N snapshots), or the drive configs
given, it traces with several
sample counts and prints, for each, the fraction of the reference (1e7) paths it
found (paths matched by snapshot, interaction sequence, objects hit and delay) and
the tracing time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from twin.config import load_config
from twin.scene import bundled_scenes
from twin.simulate import simulate

REFERENCE = 10_000_000
CANDIDATES = (100_000, 300_000, 1_000_000, 3_000_000)


def trace(config_path: Path, samples: int, snapshots: int) -> tuple[set[tuple[object, ...]], float]:
    config, base = load_config(config_path)
    traj = config.ue.trajectory
    assert traj is not None
    # Non-deterministic mode: same paths, and memory that a 1e7 reference fits in.
    config = config.model_copy(update={"tracing": config.tracing.model_copy(
        update={"samples_per_src": samples, "batch_size": snapshots, "deterministic": False})})
    # Keep the first `snapshots` samples of the drive: shorten it.
    length = traj.speed_mps * traj.sample_period_s * (snapshots - 1)
    start = traj.waypoints[0]
    direction = [b - a for a, b in zip(traj.waypoints[0], traj.waypoints[1], strict=True)]
    norm = sum(d * d for d in direction) ** 0.5
    end = tuple(a + d / norm * min(length, norm) for a, d in zip(start, direction, strict=True))
    config = config.model_copy(update={"ue": config.ue.model_copy(update={
        "trajectory": traj.model_copy(update={"waypoints": [start, end]})})})
    t0 = time.perf_counter()
    sim = simulate(config, base)
    return sim.run.paths.path_signatures(), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=16)
    parser.add_argument("configs", nargs="*", type=Path,
                        help="drive configs (default: every bundled scene's drive.yaml)")
    args = parser.parse_args()
    configs = args.configs or [xml.parent / "drive.yaml" for xml in bundled_scenes().values()]
    for config_path in configs:
        name = config_path.parent.name if config_path.name == "drive.yaml" else config_path.stem
        trace(config_path, CANDIDATES[0], args.snapshots)  # warm-up (JIT compilation)
        ref, ref_time = trace(config_path, REFERENCE, args.snapshots)
        print(f"{name}: reference {REFERENCE:.0e} samples: {len(ref)} paths in {ref_time:.2f} s")
        for samples in CANDIDATES:
            keys, elapsed = trace(config_path, samples, args.snapshots)
            found = len(ref & keys) / max(len(ref), 1)
            print(f"  {samples:.0e}: {len(keys)} paths, {100 * found:.2f}% of reference, "
                  f"{elapsed:.2f} s ({elapsed / ref_time:.2f}x the reference time)")


if __name__ == "__main__":
    main()
