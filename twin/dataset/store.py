"""A dataset directory: ``manifest.json`` and ``shard-NNNNN.h5``, written atomically.

``manifest.json`` (rewritten whole, atomically, after every shard): ``schema_version``,
``config`` (the resolved config), ``seed``, ``versions`` (packages), ``scene_sha256``,
``num_samples``, ``samples_per_shard``, ``num_shards``, ``complete``, and ``shards``: one
entry per finished shard, ``{index, file, num_samples, bytes, sha256}``. A shard file is
written under a temporary name and renamed when complete, then entered in the manifest;
a kill (even ``SIGKILL``) leaves at most a stray temporary file and a shard the manifest
does not list, both redone by ``--resume``.

``schema_version`` (manifest and shards) is an integer, the major version
(:data:`twin.dataset.config.SCHEMA_VERSION`); readers take ``MAJOR`` or ``"MAJOR.MINOR"``
and follow :mod:`twin.schema`: a dataset of the same major is read (a newer minor's
added fields ignored), another major is refused in one line naming both; ``--resume``
goes on only with a dataset of exactly this version.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from twin.dataset.config import SCHEMA_VERSION
from twin.errors import TwinInputError
from twin.outputs import Artifact, file_sha256, regular_file, write_bytes_atomic
from twin.schema import check_schema_version

MANIFEST = "manifest.json"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


#: A manifest's fields and their JSON types; a shard entry's.
_MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "config": dict, "seed": int, "num_samples": int, "samples_per_shard": int,
    "num_shards": int, "shards": list}
_SHARD_FIELDS: dict[str, type] = {"index": int, "file": str, "num_samples": int,
                                  "bytes": int, "sha256": str}
#: [B] a manifest at most (its shard list grows ~150 B per shard).
MAX_MANIFEST_BYTES = 256 * 2**20


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, or a one-line TwinInputError naming what is wrong with it: missing,
    unreadable, another major schema (both versions named), or damaged (a field missing
    or of the wrong type, a shard entry that does not name its own ``shard-NNNNN.h5``)."""
    path = directory / MANIFEST
    if not path.exists():
        raise TwinInputError(f"{directory}: no {MANIFEST} (not a dataset directory)")
    regular_file(path, "manifest", MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TwinInputError(f"{path}: unreadable manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or "schema_version" not in manifest:
        raise TwinInputError(f"{path}: not a dataset manifest (no schema_version)")
    check_schema_version(manifest["schema_version"], SCHEMA_VERSION, what="dataset",
                         path=path)
    _check_fields(manifest, _MANIFEST_FIELDS, path, "")
    for i, entry in enumerate(manifest["shards"]):
        if not isinstance(entry, dict):
            raise TwinInputError(f"{path}: damaged manifest: shards[{i}] is not an object")
        _check_fields(entry, _SHARD_FIELDS, path, f"shards[{i}].")
        if not (0 <= entry["index"] < manifest["num_shards"]
                and entry["file"] == shard_name(entry["index"])):
            raise TwinInputError(f"{path}: damaged manifest: shards[{i}] names "
                                 f"{entry['file']!r} as shard {entry['index']}")
    return manifest


def _check_fields(mapping: dict[str, Any], fields: dict[str, Any], path: Path,
                  where: str) -> None:
    for key, kind in fields.items():
        value = mapping.get(key)
        # JSON has no integer subtype of bool, Python has: true is not a count.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = "missing" if key not in mapping else f"a {type(value).__name__}"
            raise TwinInputError(f"{path}: damaged manifest: {where}{key} is {got}, "
                                 f"expected a {kind.__name__ if isinstance(kind, type) else kind}")


def is_dataset_directory(path: Path) -> bool:
    """Whether ``path`` holds a readable dataset manifest (what ``--resume`` goes on)."""
    try:
        read_manifest(path)
    except TwinInputError:
        return False
    return True


#: What ``twin dataset`` writes: a directory it fills in place (``--resume`` goes on
#: with one, never another).
DATASET = Artifact("twin dataset directory", "twin dataset", is_dataset_directory,
                   directory=True, in_place=True)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    manifest["shards"] = sorted(manifest["shards"], key=lambda s: s["index"])
    manifest["complete"] = len(manifest["shards"]) == manifest["num_shards"]
    write_bytes_atomic(directory / MANIFEST,
                       (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify` found: the file's name and what is wrong."""

    file: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


def verify(directory: Path) -> list[Problem]:
    """Re-hash every shard against the manifest.

    Reports, by file name: a shard the manifest lists that is missing, shorter or longer
    than recorded (torn), or whose bytes differ (altered) or do not open as HDF5; a shard
    the manifest does not list yet (an unfinished run: ``--resume``); stray temporary
    files. An empty list: the dataset is complete and intact.
    """
    manifest = read_manifest(directory)
    problems: list[Problem] = []
    listed = {entry["index"]: entry for entry in manifest["shards"]}
    # Runs of shards not generated yet, one problem each (a manifest's count may be huge).
    edges = [-1, *sorted(listed), manifest["num_shards"]]
    for before, after in itertools.pairwise(edges):
        if after - before > 1:
            first, last = before + 1, after - 1
            name = shard_name(first) if first == last else (
                f"{shard_name(first)} … {shard_name(last)}")
            many = "" if first == last else f" ({last - first + 1} shards)"
            problems.append(Problem(name, f"not generated{many} (the run did not finish: "
                                          "--resume)"))
    for index, entry in sorted(listed.items()):
        name = shard_name(index)
        path = directory / name
        if not path.is_file():
            problems.append(Problem(name, "missing"))
            continue
        size = path.stat().st_size
        if size != entry["bytes"]:
            problems.append(Problem(name, f"torn: {size} bytes, the manifest says "
                                          f"{entry['bytes']}"))
            continue
        if file_sha256(path) != entry["sha256"]:
            problems.append(Problem(name, "altered: SHA-256 differs from the manifest"))
            continue
        try:
            with h5py.File(path, "r") as f:
                count = int(f.attrs["num_samples"])
        except (OSError, KeyError):
            problems.append(Problem(name, "does not open as a shard"))
            continue
        if count != entry["num_samples"]:
            problems.append(Problem(name, f"holds {count} samples, the manifest says "
                                          f"{entry['num_samples']}"))
    for stray in sorted(directory.glob(".*.tmp")):
        problems.append(Problem(stray.name, "stray temporary file (a killed run: --resume)"))
    return problems
