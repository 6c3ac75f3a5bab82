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

import json
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from twin.dataset.config import SCHEMA_VERSION, DatasetConfig, load_dataset_config
from twin.dataset.generate import ShardGenerator, sha256_of
from twin.dataset.store import (
    MANIFEST,
    file_sha256,
    read_manifest,
    shard_name,
    write_atomic,
    write_manifest,
)
from twin.errors import TwinInputError
from twin.runfile import package_versions

Engine = Literal["local", "ray"]
Progress = Callable[[int, int], None]

# ---------------------------------------------------------------- local workers

_worker: ShardGenerator | None = None


def _init_worker(config: dict[str, Any], base_dir: str) -> None:
    global _worker
    _worker = ShardGenerator(DatasetConfig.model_validate(config), Path(base_dir))


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
            initargs=(generator.config.to_json_dict(), str(generator.base_dir))) as pool:
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
    an existing directory without ``resume``, a ``resume`` of another config.
    """
    if workers < 1:
        raise TwinInputError(f"--workers must be >= 1, got {workers}")
    if engine not in ("local", "ray"):
        raise TwinInputError(f"--engine must be local or ray, got {engine!r}")
    if address is not None and engine != "ray":
        raise TwinInputError("--address needs --engine ray")
    config, base_dir = load_dataset_config(config_path)
    if resume:
        if not output.is_dir():
            raise TwinInputError(f"{output}: nothing to resume (no such directory)")
    elif output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise TwinInputError(f"{output}: exists and is not empty (--resume to finish it)")
    generator = ShardGenerator(config, base_dir)
    generator.check()
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
        write_atomic(output / name, data)
        manifest["shards"].append({
            "index": index, "file": name, "num_samples": config.dataset.shard_size(index),
            "bytes": len(data), "sha256": sha256_of(data)})
        write_manifest(output, manifest)
        if on_progress is not None:
            on_progress(len(manifest["shards"]), total)
    return json.loads((output / MANIFEST).read_text())
