"""A dataset directory: ``manifest.json`` and ``shard-NNNNN.h5``, written atomically.

``manifest.json`` (rewritten whole, atomically, after every shard): ``schema_version``,
``config`` (the resolved config), ``seed``, ``versions`` (packages), ``scene_sha256``,
``num_samples``, ``samples_per_shard``, ``num_shards``, ``complete``, and ``shards``: one
entry per finished shard, ``{index, file, num_samples, bytes, sha256}``. A shard file is
written under a temporary name and renamed when complete, then entered in the manifest;
a kill (even ``SIGKILL``) leaves at most a stray temporary file and a shard the manifest
does not list, both redone by ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from twin.dataset.config import SCHEMA_VERSION
from twin.errors import TwinInputError

MANIFEST = "manifest.json"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` via a temporary sibling, fsynced, then renamed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, or a one-line TwinInputError naming what is wrong with it."""
    path = directory / MANIFEST
    if not path.is_file():
        raise TwinInputError(f"{directory}: no {MANIFEST} (not a dataset directory)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TwinInputError(f"{path}: unreadable manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise TwinInputError(f"{path}: not a schema-version-{SCHEMA_VERSION} manifest")
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    manifest["shards"] = sorted(manifest["shards"], key=lambda s: s["index"])
    manifest["complete"] = len(manifest["shards"]) == manifest["num_shards"]
    write_atomic(directory / MANIFEST,
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
    for index in range(int(manifest["num_shards"])):
        entry = listed.get(index)
        name = shard_name(index)
        path = directory / name
        if entry is None:
            problems.append(Problem(name, "not generated (the run did not finish: --resume)"))
            continue
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
