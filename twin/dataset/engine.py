"""``twin dataset``: make (or finish) a sharded dataset with a local process pool or Ray.

The driver (this process) validates the config, checks that positions can be drawn,
and owns the directory: workers only compute shard bytes (:class:`ShardGenerator`), the
driver writes each shard atomically and updates the manifest (:mod:`twin.dataset.store`).
So workers need no shared file system with the driver, only the scene files, and a
shard is the same bytes whichever worker made it (:func:`~twin.dataset.generate.
shard_seed`).

Engines:

* ``local``: ``workers`` processes (``spawn``), each loading the scene once; with one
  worker the driver generates in-process.
* ``ray``: ``workers`` Ray actors, each loading the scene once and making many shards
  (``ray.util.ActorPool``, results unordered). A local Ray instance is started (and
  stopped) unless ``address`` names a running cluster (``ray start --head`` on one node,
  ``ray start --address=HEAD:6379`` on the others; every node needs this package and
  the scene files at the same path).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from twin.dataset.config import SCHEMA_VERSION, DatasetConfig, load_dataset_config
from twin.dataset.generate import ShardGenerator, sha256_of
from twin.dataset.store import (
    DATASET,
    MANIFEST,
    read_manifest,
    shard_name,
    write_manifest,
)
from twin.errors import TwinInputError
from twin.install import require_extra
from twin.outputs import check_output, file_sha256, write_bytes_atomic
from twin.resources import (
    PROCESS_BYTES,
    Need,
    TraceSize,
    check_disk,
    check_memory,
    mesh_need,
    tracing_needs,
)
from twin.runfile import package_versions
from twin.scene import resolve_scene_path, scene_files

Engine = Literal["local", "ray"]
Progress = Callable[[int, int], None]

# ---------------------------------------------------------------- local workers

_worker: ShardGenerator | None = None


def _init_worker(config: dict[str, Any], base_dir: str, driver: int) -> None:
    global _worker
    _die_with(driver)
    _worker = ShardGenerator(DatasetConfig.model_validate(config), Path(base_dir))


def _die_with(driver: int) -> None:
    """End this worker when the driver process ``driver`` ends, even by SIGKILL (the
    pool's pipes would otherwise keep an orphan waiting for work for good)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        def watch() -> None:
            while os.getppid() == driver:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != driver:  # the driver ended before the signal was armed
        os._exit(1)


#: ``prctl`` option: the signal a process gets when its parent ends (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _generate(index: int) -> tuple[int, bytes]:
    assert _worker is not None
    return index, _worker.generate(index)


def _local(generator: ShardGenerator, pending: list[int], workers: int
           ) -> Iterator[tuple[int, bytes]]:
    if workers == 1:
        for index in pending:
            yield index, generator.generate(index)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(generator.config.to_json_dict(), str(generator.base_dir),
                      os.getpid())) as pool:
        queue = list(pending)
        running: set[Future[tuple[int, bytes]]] = set()
        while queue or running:
            while queue and len(running) < 2 * workers:  # bounded: shards wait in memory
                running.add(pool.submit(_generate, queue.pop(0)))
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


# ------------------------------------------------------------------ Ray workers


class _RayWorker:
    """A Ray actor: loads the scene once, makes shards on request."""

    def __init__(self, config: dict[str, Any], base_dir: str) -> None:
        self.generator = ShardGenerator(DatasetConfig.model_validate(config), Path(base_dir))

    def generate(self, index: int) -> tuple[int, bytes]:
        return index, self.generator.generate(index)


def _ray(generator: ShardGenerator, pending: list[int], workers: int, address: str | None
         ) -> Iterator[tuple[int, bytes]]:
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "configure_logging": False}
        if address is None:
            # "local" starts an instance of our own: a bare ray.init() would join a
            # cluster already running on this machine (ray start), where num_cpus is
            # refused.
            options["address"] = "local"
            options["num_cpus"] = workers
        else:
            options["address"] = address
        try:
            ray.init(**options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise TwinInputError(f"--address {address}: cannot connect to Ray "
                                 f"({str(exc).splitlines()[0][:120]})") from None
    try:
        actor = ray.remote(num_cpus=1)(_RayWorker)
        config, base = generator.config.to_json_dict(), str(generator.base_dir)
        pool = ActorPool([actor.remote(config, base) for _ in range(workers)])
        yield from pool.map_unordered(lambda a, index: a.generate.remote(index), pending)
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------- driver


def _new_manifest(config: DatasetConfig, generator: ShardGenerator) -> dict[str, Any]:
    section = config.dataset
    return {
        "schema_version": SCHEMA_VERSION, "config": config.to_json_dict(),
        "seed": config.seed, "versions": package_versions(),
        "scene_sha256": generator.scene_sha256, "num_samples": section.num_samples,
        "samples_per_shard": section.samples_per_shard, "num_shards": section.num_shards,
        "shards": [],
    }


def _resume_state(output: Path, config: DatasetConfig) -> dict[str, Any]:
    """The manifest to go on from: its config must be this config; shards whose file is
    missing or differs from its entry are dropped (made again); stray temporary files
    are removed."""
    manifest = read_manifest(output)
    if manifest["schema_version"] != SCHEMA_VERSION:  # its shards are of another layout
        raise TwinInputError(f"{output}: --resume of a dataset of schema "
                             f"{manifest['schema_version']}, this twin writes schema "
                             f"{SCHEMA_VERSION}; make it again in a new directory")
    if manifest["config"] != config.to_json_dict():
        raise TwinInputError(f"{output}: --resume with a config that differs from the one "
                             f"in {MANIFEST}")
    kept = []
    for entry in manifest["shards"]:
        path = output / entry["file"]
        if (path.is_file() and path.stat().st_size == entry["bytes"]
                and file_sha256(path) == entry["sha256"]):
            kept.append(entry)
    manifest["shards"] = kept
    for stray in output.glob(".*.tmp"):
        stray.unlink()
    return manifest


def make_dataset(
    config_path: Path, output: Path, *, engine: Engine = "local", workers: int = 1,
    address: str | None = None, resume: bool = False, on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Make the dataset of ``config_path`` in ``output`` (or finish it: ``resume``).

    Returns the final manifest. Raises a one-line :class:`TwinInputError` on a bad config,
    an existing directory without ``resume``, a ``resume`` of another config or schema,
    ``engine="ray"`` without the ``ray`` extra installed.
    """
    if workers < 1:
        raise TwinInputError(f"--workers must be >= 1, got {workers}")
    if engine not in ("local", "ray"):
        raise TwinInputError(f"--engine must be local or ray, got {engine!r}")
    if address is not None and engine != "ray":
        raise TwinInputError("--address needs --engine ray")
    if engine == "ray":
        require_extra("ray", "twin dataset --engine ray")
    config, base_dir = load_dataset_config(config_path)
    if resume:
        if not output.is_dir():
            raise TwinInputError(f"{output}: nothing to resume (no such directory)")
    elif output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise TwinInputError(f"{output}: exists and is not empty (--resume to finish it)")
    scene = [] if config.scene is None else scene_files(
        resolve_scene_path(config.scene.file, base_dir))
    check_output(output, DATASET, overwrite=resume, inputs=[config_path, *scene])
    memory, disk = dataset_needs(config, scene, workers, engine)
    check_memory(memory, "twin dataset")
    check_disk(output / MANIFEST, disk, "twin dataset")
    generator = ShardGenerator(config, base_dir)
    generator.check()
    created = not output.exists()
    written = 0
    try:
        if resume:
            manifest = _resume_state(output, config)
        else:
            output.mkdir(parents=True, exist_ok=True)
            manifest = _new_manifest(config, generator)
            write_manifest(output, manifest)
        done = {entry["index"] for entry in manifest["shards"]}
        pending = [i for i in range(config.dataset.num_shards) if i not in done]
        total = config.dataset.num_shards
        if on_progress is not None:
            on_progress(len(done), total)
        results = (_local(generator, pending, workers) if engine == "local"
                   else _ray(generator, pending, workers, address))
        for index, data in results:
            name = shard_name(index)
            write_bytes_atomic(output / name, data)
            written += 1
            manifest["shards"].append({
                "index": index, "file": name, "num_samples": config.dataset.shard_size(index),
                "bytes": len(data), "sha256": sha256_of(data)})
            write_manifest(output, manifest)
            if on_progress is not None:
                on_progress(len(manifest["shards"]), total)
    except BaseException:
        if created and not written:
            # Nothing but our own manifest yet: no directory is left behind.
            shutil.rmtree(output, ignore_errors=True)
        raise
    return json.loads((output / MANIFEST).read_text())


def dataset_needs(config: DatasetConfig, scene: list[Path], workers: int,
                  engine: Engine = "local") -> tuple[list[Need], list[Need]]:
    """The memory of making a dataset (each worker traces one shard at a time and holds
    the scene; the driver holds up to two shards per worker in flight) and its size on
    disk (:mod:`twin.resources`)."""
    section = config.dataset
    bs = len(config.base_stations)
    array = config.base_stations[0].array
    bs_ant, ue_ant = array.rows * array.cols, config.ue.array.rows * config.ue.array.cols
    subcarriers = config.radio.num_subcarriers if "cfr" in section.keep else 1
    per_sample = 8.0 * bs * bs_ant * 2 + 48.0  # y and h, the SNR, noise, position, flags
    if "cfr" in section.keep:
        per_sample += 8.0 * bs * ue_ant * bs_ant * subcarriers
    if "paths" in section.keep:
        per_sample += bs * section.max_paths * (60.0 + 33.0 * config.tracing.max_depth)
    shard = section.samples_per_shard * per_sample
    per_worker: list[Need] = []
    if section.source == "twin":
        per_worker = [mesh_need(scene), *tracing_needs(TraceSize(
            snapshots=section.samples_per_shard, batch=config.tracing.batch_size, bs=bs,
            bs_antennas=bs_ant, ue_antennas=ue_ant, subcarriers=subcarriers,
            samples=config.tracing.samples_per_src,
            path_slots=config.tracing.max_num_paths_per_src, max_depth=config.tracing.max_depth,
            deterministic=config.tracing.deterministic,
            snapshots_knob="dataset.samples_per_shard"))]
    # A shard is packed from its arrays: the arrays, the HDF5 image, its bytes.
    per_worker.append(Need("a shard being packed", 3 * shard, "dataset.samples_per_shard"))
    if section.positions.kind == "grid" and section.positions.spacing_m is not None:
        region = section.positions.box or section.positions.polygon or ()
        xs, ys = [c[0] for c in region], [c[1] for c in region]
        points = ((max(xs) - min(xs)) / section.positions.spacing_m + 1) * (
            (max(ys) - min(ys)) / section.positions.spacing_m + 1)
        per_worker.append(Need("the grid of positions", 64.0 * points,
                               "dataset.positions.spacing_m",
                               "a larger dataset.positions.spacing_m"))
    # Separate processes each hold their own; one local worker runs in the driver.
    processes = workers if workers > 1 or engine == "ray" else 0
    memory = [replace(n, what=n.what + (f" (x {processes} workers)" if processes else ""),
                      bytes=n.bytes * max(processes, 1)) for n in per_worker]
    if processes:
        memory += [Need("the worker processes", PROCESS_BYTES * processes, "--workers"),
                   Need("shards in flight", 2 * processes * shard, "--workers")]
    disk = [Need("the shards", section.num_samples * per_sample, "dataset.num_samples")]
    return memory, disk
