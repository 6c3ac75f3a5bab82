"""Benchmark: raw Sionna RT PathSolver vs ``twin simulate`` on the same work.

    .venv/bin/python -m scripts.twin.bench_trace [--positions 256] [--samples N] [--repeats 3]

Scene ``builtin:simple_street_canyon``, max depth 3, one BS with a 16-element ULA,
UE positions on a 40 m line, traced in batches of 64 receivers in both cases.

* raw: ``load_scene`` + one ``PathSolver`` call per batch (same solver settings as the
  twin) + the coefficients and delays copied to numpy (what any use of them needs);
* twin: ``simulate_to_file`` = the same tracing + truth extraction (interaction
  points, objects, virtual anchors, canonical order) + CFR + the HDF5 file.

Each is run once to warm Dr.Jit's kernel cache, then ``--repeats`` times alternately;
the ratio twin / raw of the medians and of the minima (the least-disturbed runs) is
printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from twin.backend import mitsuba, sionna_rt
from twin.config import DEFAULT_SAMPLES_PER_SRC, load_config
from twin.simulate import simulate_to_file

BATCH = 64


def make_config(directory: Path, positions: np.ndarray, samples: int) -> Path:
    config = {
        "seed": 7,
        "scene": {"file": "builtin:simple_street_canyon"},
        "radio": {"frequency_hz": 28e9, "bandwidth_hz": 100e6, "num_subcarriers": 64},
        "base_stations": [{"name": "bs0", "position": [0.0, 0.0, 10.0],
                           "array": {"rows": 1, "cols": 16}}],
        "ue": {"positions": positions.tolist()},
        "tracing": {"max_depth": 3, "samples_per_src": samples, "batch_size": BATCH},
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_raw(config_path: Path) -> float:
    """Sionna RT alone, with the settings the twin uses."""
    rt, mi = sionna_rt(), mitsuba()
    config, _ = load_config(config_path)
    t = config.tracing
    positions = np.asarray(config.ue.positions)
    start = time.perf_counter()
    scene = rt.load_scene(rt.scene.simple_street_canyon, merge_shapes=False)
    scene.frequency = config.radio.frequency_hz
    scene.tx_array = rt.PlanarArray(num_rows=1, num_cols=16, vertical_spacing=0.5,
                                    horizontal_spacing=0.5, pattern="iso", polarization="V")
    scene.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, vertical_spacing=0.5,
                                    horizontal_spacing=0.5, pattern="iso", polarization="V")
    scene.add(rt.Transmitter("bs0", position=mi.Point3f(0.0, 0.0, 10.0)))
    solver = rt.PathSolver(deterministic=t.deterministic)
    for lo in range(0, len(positions), BATCH):
        batch = positions[lo:lo + BATCH]
        for name in list(scene.receivers):
            scene.remove(name)
        for i, p in enumerate(batch):
            scene.add(rt.Receiver(f"rx{i}", position=mi.Point3f(*map(float, p))))
        paths = solver(scene, max_depth=t.max_depth, samples_per_src=t.samples_per_src,
                       max_num_paths_per_src=t.max_num_paths_per_src, synthetic_array=True,
                       los=t.los, specular_reflection=t.specular_reflection,
                       diffuse_reflection=t.diffuse_reflection, refraction=t.refraction,
                       diffraction=t.diffraction, seed=config.seed)
        _coefficients = [np.asarray(c) for c in paths.a]
        np.asarray(paths.tau)
    return time.perf_counter() - start


def run_twin(config_path: Path, output: Path) -> float:
    start = time.perf_counter()
    simulate_to_file(config_path, output, overwrite=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=256)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES_PER_SRC)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    x = np.linspace(-20.0, 20.0, args.positions)
    positions = np.stack([x, np.full_like(x, 5.0), np.full_like(x, 1.5)], axis=-1)
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(Path(tmp), positions, args.samples)
        output = Path(tmp) / "run.h5"
        run_raw(config), run_twin(config, output)  # warm-up: JIT kernel cache
        raw, twin = [], []
        for _ in range(args.repeats):
            raw.append(run_raw(config))
            twin.append(run_twin(config, output))
    raw_s, twin_s = statistics.median(raw), statistics.median(twin)
    print(f"simple_street_canyon, {args.positions} positions, depth 3, "
          f"samples_per_src {args.samples:.0e}, batches of {BATCH}")
    for label, median, runs in (("raw Sionna RT PathSolver", raw_s, raw),
                                ("twin simulate (to file) ", twin_s, twin)):
        print(f"{label} : {median:7.2f} s median  (runs: {', '.join(f'{r:.2f}' for r in runs)})")
    print(f"ratio twin / raw         : {twin_s / raw_s:7.3f} (medians), "
          f"{min(twin) / min(raw):.3f} (minima)")


if __name__ == "__main__":
    main()
