"""A PyTorch ``Dataset`` over a dataset directory's shards: lazy, memory-bounded.

Nothing is read up front but the manifest and each shard's sample count; a sample is
read from its shard when asked for, and at most ``max_open`` shard files are held open
(least recently used closed first), so memory does not grow with the dataset. Safe with
``DataLoader(num_workers > 0)``: every worker process opens its own files.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from twin.dataset.store import read_manifest, shard_name
from twin.errors import TwinInputError

#: Fields returned by default: DAUN's inputs and its label.
DEFAULT_FIELDS = ("observations/y", "observations/snr_db", "ue_position")


def read_fields(directory: str | Path, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Whole fields of every shard of a finished dataset, concatenated in shard order
    (for sets that fit in memory; :class:`ShardDataset` streams instead). A field the
    shards lack is a one-line :class:`TwinInputError`."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if not manifest["complete"]:
        raise TwinInputError(f"{directory}: the dataset is unfinished (twin dataset --resume)")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    for entry in sorted(manifest["shards"], key=lambda e: e["index"]):
        with h5py.File(directory / shard_name(entry["index"]), "r") as f:
            missing = [name for name in fields if name not in f]
            if missing:
                raise TwinInputError(f"{directory}: no field(s) {', '.join(missing)} in the "
                                     "shards (see dataset.keep)")
            for name in fields:
                parts[name].append(f[name][()])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


class ShardDataset(Dataset[dict[str, torch.Tensor]]):
    """Samples of a ``twin dataset`` directory as dicts of tensors.

    Parameters
    ----------
    directory : the dataset directory (``manifest.json``, ``shard-NNNNN.h5``).
    fields : HDF5 dataset names inside a shard (e.g. ``"observations/y"``
        ``[bs, bs_ant]`` complex64, ``"ue_position"`` ``[3]`` [m], ``"paths/tau"``); each
        sample comes back as ``{field: tensor}`` (complex stays complex).
    max_open : shard files held open at once.
    allow_incomplete : serve the finished shards of an unfinished dataset.
    """

    def __init__(self, directory: str | Path, *, fields: Sequence[str] = DEFAULT_FIELDS,
                 max_open: int = 4, allow_incomplete: bool = False) -> None:
        self.directory = Path(directory)
        manifest = read_manifest(self.directory)
        if not manifest["complete"] and not allow_incomplete:
            raise TwinInputError(f"{self.directory}: the dataset is unfinished "
                                 "(twin dataset --resume, or allow_incomplete=True)")
        entries = sorted(manifest["shards"], key=lambda e: e["index"])
        self.files = [self.directory / shard_name(e["index"]) for e in entries]
        counts = np.array([e["num_samples"] for e in entries], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.fields = tuple(fields)
        self.max_open = max(1, int(max_open))
        self.manifest = manifest
        self._open: OrderedDict[int, h5py.File] = OrderedDict()
        if self.files:
            with h5py.File(self.files[0], "r") as f:
                missing = [name for name in self.fields if name not in f]
            if missing:
                raise TwinInputError(f"{self.directory}: no field(s) {', '.join(missing)} "
                                     "in the shards (see dataset.keep)")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _shard(self, position: int) -> h5py.File:
        if position in self._open:
            self._open.move_to_end(position)
            return self._open[position]
        if len(self._open) >= self.max_open:
            self._open.popitem(last=False)[1].close()
        handle = h5py.File(self.files[position], "r")
        self._open[position] = handle
        return handle

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} outside 0..{len(self) - 1}")
        index %= len(self)
        position = int(np.searchsorted(self.offsets, index, side="right") - 1)
        local = index - int(self.offsets[position])
        shard = self._shard(position)
        return {name: torch.from_numpy(np.asarray(shard[name][local])) for name in self.fields}

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own files
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        return state
