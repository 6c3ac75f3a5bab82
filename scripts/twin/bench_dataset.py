"""Dataset engine throughput: direct generation vs ``local`` vs ``ray``, side by side.

    .venv/bin/python -m scripts.twin.bench_dataset [--config configs/datasets/street_daun.yaml]
        [--samples 600] [--shard 100] [--workers 2] [--nodes 2] [--runs ...] [--full]

One run, one machine, the same config cut to ``--samples`` samples in shards of
``--shard``:

* **direct**: one process, :class:`twin.dataset.generate.ShardGenerator` called in a loop
  (scene loaded once, nothing written): the work itself. An untimed warm-up shard
  first, so the Dr.Jit kernels are compiled before any timing.
* **local, 1 worker**: ``make_dataset(engine="local", workers=1)``: the same work plus
  the engine (atomic shard files, hashes, manifest after every shard).
* **ray, 1 worker**: one actor: the local 1-worker run plus Ray's own costs (start-up,
  the actor's scene load, object transfer).
* **local, N workers** and **ray, N workers**: ``N`` processes / actors, each loading
  the scene.

* **cluster, N nodes** (``--nodes N``): ``make_dataset(engine="ray", workers=N,
  address=...)`` against N Ray nodes started on this machine's loopback as on a real
  cluster (``ray start --head``, ``ray start --address``; :mod:`twin.dataset.cluster`),
  one CPU each, so the N actors sit one per node; its overhead is printed against
  **local, N workers** of the same run.

``--runs`` picks among ``direct,local-1,local-n,ray-1,ray-n,cluster`` (default: all but
``cluster``, which ``--nodes`` adds). Prints samples/s and each engine's time over the
last direct run (overhead, or speed-up with N > 1) or, without a direct run, over
``local-n``; and checks that every engine made the same shards. ``--full``: then the whole config
(10 000 samples for the bundled one) with ``--engine ray``, killed (SIGKILL) after a
third of its shards, resumed, and verified; prints the times and the shard count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


from twin.dataset.cluster import local_cluster
from twin.dataset.config import load_dataset_config, write_derived_config
from twin.dataset.engine import make_dataset
from twin.dataset.generate import ShardGenerator, sha256_of
from twin.dataset.store import verify

ROOT = Path(__file__).resolve().parents[2]
TWIN = Path(sys.executable).with_name("twin")


def hashes(directory: Path) -> list[str]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return [entry["sha256"] for entry in manifest["shards"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path,
                        default=ROOT / "configs" / "datasets" / "street_daun.yaml")
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--shard", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=0,
                        help="also run on a loopback Ray cluster of this many nodes")
    parser.add_argument("--runs", default="direct,local-1,local-n,ray-1,ray-n")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    chosen = args.runs.split(",") + (["cluster"] if args.nodes else [])
    tmp = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    try:
        config_path = write_derived_config(args.config, tmp / "cut.yaml",
                                           num_samples=args.samples,
                                           samples_per_shard=args.shard)
        config, base = load_dataset_config(config_path)
        print(f"{args.config.name}: {args.samples} samples in shards of {args.shard}, "
              f"{os.cpu_count()} cores")
        # Warm-up, untimed: Dr.Jit compiles its kernels once per process (then cached on
        # disk), so the in-process runs below start alike.
        ShardGenerator(config, base).generate(0)
        times: dict[str, float] = {}
        expected: list[str] | None = None
        if "direct" in chosen:
            start = time.perf_counter()
            generator = ShardGenerator(config, base)  # the scene load is part of every engine
            expected = [sha256_of(generator.generate(i))
                        for i in range(config.dataset.num_shards)]
            times["direct"] = time.perf_counter() - start
        n = args.workers
        runs = {"local-1": ("local, 1 worker", {"engine": "local", "workers": 1}),
                "local-n": (f"local, {n} workers", {"engine": "local", "workers": n}),
                "ray-1": ("ray, 1 worker", {"engine": "ray", "workers": 1}),
                "ray-n": (f"ray, {n} workers", {"engine": "ray", "workers": n})}
        if "cluster" in chosen:
            # Before any local Ray instance: one leaves RAY_AUTH_MODE=token in this
            # process's environment, and a driver with it cannot use the test cluster,
            # which runs without a token (twin.dataset.cluster.cluster_environment).
            with local_cluster(args.nodes, cpus_per_node=1) as address:
                label = f"ray, {args.nodes}-node cluster"
                expected = timed_run(config_path, tmp, label,
                                     {"engine": "ray", "workers": args.nodes,
                                      "address": address}, times, expected)
        for key, (label, options) in runs.items():
            if key in chosen:
                expected = timed_run(config_path, tmp, label, options, times, expected)
        if "direct" in chosen:
            # Direct again, last: whichever in-process run comes first also pays the
            # Dr.Jit compilations the warm-up shard did not trigger (measured: ~40 % of
            # its time).
            start = time.perf_counter()
            generator = ShardGenerator(config, base)
            again = [sha256_of(generator.generate(i)) for i in range(config.dataset.num_shards)]
            times["direct (again, last)"] = time.perf_counter() - start
            assert again == expected
        base_label = ("direct (again, last)" if "direct" in chosen
                      else runs["local-n"][0] if "local-n" in chosen else next(iter(times)))
        reference = times[base_label]
        for label, seconds in times.items():
            print(f"{label:>22}: {seconds:7.1f} s, {args.samples / seconds:6.1f} samples/s, "
                  f"{seconds / reference:5.2f}x {base_label}")
        print("all engines made identical shards")
        if args.full:
            full(args.config, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def timed_run(config_path: Path, tmp: Path, label: str, options: dict[str, Any],
              times: dict[str, float], expected: list[str] | None) -> list[str]:
    """Make the dataset with ``options``, record its time under ``label``, check its
    shards against ``expected`` (the first run's when None); its shard hashes."""
    out = tmp / label.replace(", ", "-").replace(" ", "")
    start = time.perf_counter()
    make_dataset(config_path, out, **options)
    times[label] = time.perf_counter() - start
    made = hashes(out)
    assert expected is None or made == expected, f"{label}: shards differ"
    return made


def full(config_path: Path, tmp: Path) -> None:
    config, _ = load_dataset_config(config_path)
    out = tmp / "full"
    total = config.dataset.num_shards
    command = [str(TWIN), "dataset", str(config_path), "-o", str(out), "--engine", "ray",
               "--workers", "2", "-q"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        manifest = out / "manifest.json"
        if manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= total // 3:
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    subprocess.run(["ray", "stop", "--force"], capture_output=True, check=False,
                   env={**os.environ, "PATH": f"{TWIN.parent}:{os.environ['PATH']}"})
    killed = len(json.loads((out / "manifest.json").read_text())["shards"])
    first = time.perf_counter() - start
    print(f"full: killed after {first:.0f} s with {killed}/{total} shards")
    start = time.perf_counter()
    subprocess.run([*command, "--resume"], check=True)
    resumed = time.perf_counter() - start
    problems = verify(out)
    samples = sum(e["num_samples"] for e in json.loads((out / "manifest.json").read_text())[
        "shards"])
    print(f"full: resumed in {resumed:.0f} s; {samples} samples, verify: "
          f"{problems if problems else 'intact'}")


if __name__ == "__main__":
    main()
