"""Benchmark: peak memory and time of ``twin simulate`` on long drives.

    .venv/bin/python -m scripts.twin.bench_long_drive [--snapshots 1000,5000,20000]
        [--compare DIR] [--estimate-only]

The drive is ``scripts/configs/munich_drive.yaml`` (``builtin:munich``, one 1 × 16 BS on
a 27 m mast, the 150 m street, depth 3, batches of 64) sampled more densely so that it has
exactly the asked number of snapshots. Each run is ``twin simulate CONFIG -o RUN -q`` in a
fresh process (cold, as a user's first run; peak RSS is per process, read with
``os.wait4``); next to it the memory ``twin simulate`` estimated before it started
(:func:`twin.simulate.run_needs`, the check of :mod:`twin.resources`).

With ``--compare DIR`` (a checkout of another version, e.g. ``git worktree add /tmp/old
HEAD``), the same drive is also simulated by DIR's code in a fresh process, in the same
run; both peaks and times are printed with their ratio, and every dataset of the two run
files is compared byte for byte (the streamed file must hold the same arrays).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
MUNICH = ROOT / "scripts/configs/munich_drive.yaml"
CHILD = """
import sys, warnings
warnings.simplefilter("ignore")
from twin.cli import main
sys.argv = ["twin", "simulate", {config!r}, "-o", {output!r}, "-q"]
main()
"""


def drive_config(directory: Path, snapshots: int) -> Path:
    """The munich drive sampled so that it has ``snapshots`` snapshots (same street,
    same speed, a shorter sample period)."""
    data = yaml.safe_load(MUNICH.read_text())
    trajectory = data["ue"]["trajectory"]
    waypoints = np.asarray(trajectory["waypoints"], dtype=np.float64)
    length = float(np.sum(np.linalg.norm(np.diff(waypoints, axis=0), axis=1)))
    trajectory["sample_period_s"] = length / trajectory["speed_mps"] / (snapshots - 1)
    path = directory / f"munich_{snapshots}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def estimate_bytes(config_path: Path) -> tuple[int, float]:
    """The snapshots of a config and the memory ``twin simulate`` estimates for it [B]."""
    from twin.config import load_config
    from twin.drive import snapshot_count
    from twin.resources import PROCESS_BYTES
    from twin.simulate import run_inputs, run_needs

    config, base_dir = load_config(config_path)
    scene, _ = run_inputs(config, base_dir)
    needs, _ = run_needs(config, scene, base_dir)
    return (int(snapshot_count(config.ue, base_dir)),
            PROCESS_BYTES + sum(n.bytes for n in needs))


def simulate_child(code: Path, config: Path, output: Path) -> tuple[float, float]:
    """``twin simulate`` with ``code`` 's package in a fresh process: its peak RSS [B]
    and wall time [s]."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(config=str(config), output=str(output))],
        cwd=code, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"twin simulate ({code}) failed with exit code {child.returncode}")
    return usage.ru_maxrss * 1024.0, seconds


def differing_datasets(a: Path, b: Path) -> list[str]:
    """Datasets of two HDF5 files whose shape, dtype or bytes differ (or that only one
    has); the versions attribute (package versions) is not a dataset."""
    differ: list[str] = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a: list[str] = []
        names_b: list[str] = []
        fa.visititems(lambda n, o: names_a.append(n) if isinstance(o, h5py.Dataset) else None)
        fb.visititems(lambda n, o: names_b.append(n) if isinstance(o, h5py.Dataset) else None)
        differ += sorted(set(names_a) ^ set(names_b))
        for name in sorted(set(names_a) & set(names_b)):
            x, y = fa[name][()], fb[name][()]
            if x.shape != y.shape or x.dtype != y.dtype or (
                    x.dtype != object and x.tobytes() != y.tobytes()) or (
                    x.dtype == object and x.tolist() != y.tolist()):
                differ.append(name)
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshots", default="1000,5000,20000",
                        help="comma-separated drive lengths [snapshots]")
    parser.add_argument("--compare", type=Path, default=None,
                        help="another checkout to run side by side (e.g. the old code)")
    parser.add_argument("--estimate-only", action="store_true",
                        help="print the memory estimates alone, simulating nothing")
    args = parser.parse_args()
    counts = [int(n) for n in args.snapshots.split(",")]
    if args.estimate_only:
        with tempfile.TemporaryDirectory() as tmp:
            for count in counts:
                snapshots, estimate = estimate_bytes(drive_config(Path(tmp), count))
                print(f"{snapshots} snapshots: estimate {estimate / 1e9:.2f} GB")
        return
    print(f"twin simulate, {MUNICH.name} resampled, depth 3, batch 64 "
          f"(peak RSS of a fresh process; OMP_NUM_THREADS=1)")
    header = "| snapshots | estimate | peak RSS | time | file |"
    if args.compare:
        header += f" {args.compare} peak RSS | its time | peak ratio new/old | same arrays |"
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            config = drive_config(Path(tmp), count)
            snapshots, estimate = estimate_bytes(config)
            if snapshots != count:
                raise SystemExit(f"{config}: {snapshots} snapshots, not {count}")
            output = Path(tmp) / f"new_{count}.h5"
            peak, seconds = simulate_child(ROOT, config, output)
            row = {"snapshots": count, "estimate_gb": estimate / 1e9, "peak_gb": peak / 1e9,
                   "seconds": seconds, "file_mb": output.stat().st_size / 1e6}
            line = (f"| {count} | {estimate / 1e9:.2f} GB | {peak / 1e9:.2f} GB | "
                    f"{seconds:.0f} s | {row['file_mb']:.0f} MB |")
            if args.compare:
                old_output = Path(tmp) / f"old_{count}.h5"
                old_peak, old_seconds = simulate_child(args.compare, config, old_output)
                differ = differing_datasets(output, old_output)
                row.update(old_peak_gb=old_peak / 1e9, old_seconds=old_seconds,
                           differing=differ)
                line += (f" {old_peak / 1e9:.2f} GB | {old_seconds:.0f} s | "
                         f"{peak / old_peak:.2f} | "
                         f"{'yes' if not differ else 'NO: ' + ', '.join(differ)} |")
                old_output.unlink()
            output.unlink()
            results.append(row)
            print(line, flush=True)
    if len(results) > 1:
        first, last = results[0], results[-1]
        slope = (last["peak_gb"] - first["peak_gb"]) / (last["snapshots"] - first["snapshots"])
        print(f"peak RSS slope {slope * 1e6:.1f} kB per snapshot "
              f"({first['snapshots']} -> {last['snapshots']})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
