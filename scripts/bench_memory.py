"""Peak memory and time of tracing vs samples_per_src, batch size and solver mode.

    .venv/bin/python scripts/bench_memory.py [CONFIG]

Each setting runs ``simulate`` in a fresh process (peak RSS is per process) on the
bundled street drive (71 snapshots) unless another drive config is given.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [  # (samples_per_src, batch_size, deterministic)
    (100_000, 64, True), (300_000, 64, True), (1_000_000, 16, True), (1_000_000, 64, True),
    (100_000, 64, False), (1_000_000, 64, False),
]
CHILD = """
import json, resource, sys, time, warnings
sys.path.insert(0, {root!r})
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


def main() -> None:
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
