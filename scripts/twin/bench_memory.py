"""Peak memory and time of tracing vs samples_per_src, batch size and solver mode; and
the memory estimate of ``twin.resources`` against the measured peak.

    .venv/bin/python -m scripts.twin.bench_memory [CONFIG]
    .venv/bin/python -m scripts.twin.bench_memory --estimate [CASE]

Each setting runs ``simulate`` in a fresh process (peak RSS is per process) on the
bundled street drive (71 snapshots) unless another drive config is given. With
``--estimate``, each case (a bundled drive with some keys changed) prints the estimate
``twin simulate`` checks before it starts next to the peak RSS of the whole run
(:func:`twin.simulate.simulate_to_file`, what ``twin simulate`` runs) in a fresh process
(cold: the kernels are compiled as a user's first run would), and their ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = [  # (samples_per_src, batch_size, deterministic)
    (100_000, 64, True), (300_000, 64, True), (1_000_000, 16, True), (1_000_000, 64, True),
    (100_000, 64, False), (1_000_000, 64, False),
]
CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from twin.config import load_config
from twin.simulate import simulate
config, base = load_config({config!r})
tracing = config.tracing.model_copy(update={{"samples_per_src": {samples}, "batch_size": {batch},
                                            "deterministic": {det}}})
config = config.model_copy(update={{"tracing": tracing}})
simulate(config, base)  # warm-up: Dr.Jit kernel cache
start = time.perf_counter()
run = simulate(config, base).run
print(json.dumps({{"seconds": time.perf_counter() - start,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "paths": int(run.paths.valid.sum()), "snapshots": run.paths.num_snapshots}}))
"""


ESTIMATE_CHILD = """
import json, os, resource, sys, tempfile, warnings
warnings.simplefilter("ignore")
import h5py, yaml
from pathlib import Path
from twin.config import parse_config
from twin.resources import PROCESS_BYTES
from twin.simulate import run_inputs, run_needs, simulate_to_file
path = Path({config!r})
data = yaml.safe_load(path.read_text())
for key, value in {changes!r}.items():
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
config = parse_config(data)
scene, _ = run_inputs(config, path.parent)
needs, _ = run_needs(config, scene, path.parent)
estimate = PROCESS_BYTES + sum(n.bytes for n in needs)
# What `twin simulate` runs: the changed config beside the original (its relative paths
# hold), the run streamed to a file.
with tempfile.TemporaryDirectory() as tmp:
    changed = path.parent / f".bench-memory-{{os.getpid()}}.yaml"
    changed.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        simulate_to_file(changed, Path(tmp) / "run.h5")
    finally:
        changed.unlink()
    with h5py.File(Path(tmp) / "run.h5") as f:
        snapshots, _, paths = f["paths/valid"].shape
print(json.dumps({{"estimate_gb": estimate / 1e9, "snapshots": snapshots, "paths": paths,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""
STREET, OFFICE = ROOT / "scenes/street/drive.yaml", ROOT / "scenes/office_floor"
CONFIGS = ROOT / "scripts/configs"
POSITIONS_64 = {"ue.trajectory.sample_period_s": 70.0 / 10.0 / 63}
ESTIMATE_CASES: list[tuple[str, Path, dict[str, object]]] = [
    ("street drive (71 snapshots, depth 3)", STREET, {}),
    ("street, depth 1", STREET, {"tracing.max_depth": 1}),
    ("street, depth 5", STREET, {"tracing.max_depth": 5}),
    ("street, 1e6 samples", STREET, {"tracing.samples_per_src": 1_000_000}),
    ("street, 1e7 samples, not deterministic", STREET,
     {"tracing.samples_per_src": 10_000_000, "tracing.deterministic": False}),
    ("street, BS 128 x 128", STREET, {**POSITIONS_64, "base_stations.0.array.rows": 128,
                                      "base_stations.0.array.cols": 128}),
    ("street, BS 64 x 64, UE 1 x 8", STREET, {"base_stations.0.array.rows": 64,
                                             "base_stations.0.array.cols": 64,
                                             "ue.array.cols": 8}),
    ("street, 262144 subcarriers", STREET, {**POSITIONS_64,
                                            "radio.num_subcarriers": 262_144}),
    ("office drive", OFFICE / "drive.yaml", {}),
    ("builtin:munich drive, BS on a 27 m mast", CONFIGS / "munich_drive.yaml", {}),
    ("builtin:munich, BS 8 x 16, depth 4", CONFIGS / "munich_drive.yaml",
     {"base_stations.0.array.rows": 8, "tracing.max_depth": 4}),
    ("builtin:simple_street_canyon drive", CONFIGS / "simple_street_canyon_drive.yaml", {}),
    ("office RIS drive (96 x 96 tile)", OFFICE / "ris_drive.yaml", {}),
]


TRAIN_CHILD = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from pathlib import Path
from twin.dataset.config import parse_dataset_config
from twin.dataset.store import read_manifest
from twin.resources import PROCESS_BYTES
from twin.train import setting_from, train_daun_on_dataset, training_needs
data = Path({data!r})
manifest = read_manifest(data)
config = parse_dataset_config(manifest["config"])
spacing, validation, batch, layers = {spacing}, {validation}, {batch}, {layers}
setting, _ = setting_from(config, spacing, 100)
needs = training_needs(config, setting, manifest["num_samples"], validation, batch, layers)
train_daun_on_dataset(data, data.parent / "m.pt", overwrite=True, grid_spacing_m=spacing,
                      validation=validation, batch_size=batch, num_layers=layers,
                      samples_per_layer=20)
print(json.dumps({{"estimate_gb": (PROCESS_BYTES + sum(n.bytes for n in needs)) / 1e9,
                  "points": setting["grid_shape"][0] * setting["grid_shape"][1],
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""
#: (grid spacing [m], validation samples, batch size, layers) on a 400-sample UMa dataset
#: of the street's four 1 x 16 BSs (80 x 40 m).
TRAIN_CASES = [(0.5, 200, 7, 1), (0.25, 20, 7, 1), (0.1, 20, 7, 1), (0.25, 20, 70, 3)]


def train_estimate_vs_peak() -> None:
    import tempfile

    import yaml

    from tests.twin.test_dataset import uma_config
    from twin.dataset.engine import make_dataset

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "uma.yaml"
        config.write_text(yaml.safe_dump(uma_config(num_samples=400, samples_per_shard=200)))
        make_dataset(config, Path(tmp) / "data")
        for spacing, validation, batch, layers in TRAIN_CASES:
            code = TRAIN_CHILD.format(root=str(ROOT), data=str(Path(tmp) / "data"),
                                      spacing=spacing, validation=validation, batch=batch,
                                      layers=layers)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                 text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  train daun, --grid-spacing {spacing} ({r['points']} points), "
                  f"--validation {validation}, --batch-size {batch}, --layers {layers}: "
                  f"{r['estimate_gb']:.2f} GB, {r['peak_gb']:.2f} GB, "
                  f"{r['estimate_gb'] / r['peak_gb']:.2f}")


def estimate_vs_peak(only: str = "") -> None:
    print("case: estimate, measured peak RSS (fresh process), estimate / peak")
    for name, config, changes in ESTIMATE_CASES:
        if only not in name:
            continue
        code = ESTIMATE_CHILD.format(root=str(ROOT), config=str(config), changes=changes)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {name} ({r['snapshots']} snapshots, {r['paths']} paths max): "
              f"{r['estimate_gb']:.2f} GB, {r['peak_gb']:.2f} GB, "
              f"{r['estimate_gb'] / r['peak_gb']:.2f}")
    if only in "train daun":
        train_estimate_vs_peak()


def main() -> None:
    if sys.argv[1:2] == ["--estimate"]:
        estimate_vs_peak(" ".join(sys.argv[2:]))
        return
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "scenes/street/drive.yaml"
    print(f"{config}: samples, batch, deterministic -> time, peak RSS, paths")
    for samples, batch, det in SETTINGS:
        code = CHILD.format(root=str(ROOT), config=str(config), samples=samples, batch=batch,
                            det=det)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {samples:.0e} x {batch:3d} deterministic={det!s:5}: {r['seconds']:6.2f} s, "
              f"{r['peak_gb']:5.2f} GB, {r['paths']} paths over {r['snapshots']} snapshots")


if __name__ == "__main__":
    main()
