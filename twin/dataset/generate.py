"""One shard of a dataset: UE positions drawn, channels traced (or drawn from 38.901 UMa),
observations sounded, everything packed into one HDF5 file's bytes.

Shard ``i`` is a pure function of the resolved config and ``(seed, i)``
(:func:`shard_seed`): the same bytes whichever engine, worker or process makes it, and
whatever was made before. The scene is loaded once per :class:`ShardGenerator` (a worker
makes many shards with one).

Shard layout (``schema_version`` 1; ``n`` samples, ``B`` BSs, ``N`` BS antennas, ``P =
max_paths``, ``D = tracing.max_depth``, ``K`` subcarriers):

* attrs: ``schema_version``, ``index``, ``seed``, ``first_sample``, ``num_samples``,
  ``source``.
* ``ue_position [n, 3]`` float64 [m]; ``drive [n]`` int64 (``kind: drives``: the global
  index of the sample's drive, the index of its first sample; else the sample's own).
* ``observations/``: ``y [n, B, N]`` complex64 (``y_m = h_m + n_m``), ``h [n, B, N]``
  complex64 (noiseless, at the carrier), ``snr_db [n]``, ``noise_variance [n]`` float64
  [W], ``has_path [n, B]`` and ``los [n, B]`` bool.
* ``cfr [n, B, ue_ant, N, K]`` complex64 (downlink, as ``simulate``'s).
* ``paths/``: ``valid [n, B, P]``, ``tau [n, B, P]`` [s], ``gain [n, B, P]`` complex64
  (antenna pair 0, 0), ``aod``/``aoa [n, B, P, 2]`` (azimuth, zenith) [rad], ``depth [n,
  B, P]``, ``interaction_types [n, B, P, D]``, ``interaction_points [n, B, P, D, 3]`` [m]:
  the first ``P`` paths by delay, padded as in :class:`twin.paths.PathSet`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from matplotlib.path import Path as Polygon

from estimators.observe import complex_normal
from estimators.typing import FloatArray
from twin.channel import cfr as compute_cfr
from twin.dataset.config import SCHEMA_VERSION, DatasetConfig, PositionsConfig
from twin.drive import Drive
from twin.errors import TwinInputError

#: Candidates drawn per wanted position in a round of rejection sampling, and the rounds
#: before a region with no valid position is given up.
_OVERDRAW, _MAX_ROUNDS = 4, 200
#: Headings tried before a drive that cannot go on ends (a new one starts).
_MAX_TURNS = 32
#: [m] the smallest BS-UE ground distance of 38.901's UMa model (Table 7.4.1-1).
UMA_MIN_DISTANCE_M = 10.0


def shard_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed of shard ``index``: a function of ``(seed, index)`` only."""
    return np.random.SeedSequence(entropy=seed, spawn_key=(index,))


class Region:
    """The drawing region of :class:`PositionsConfig` (box or polygon) in the plane."""

    def __init__(self, positions: PositionsConfig) -> None:
        if positions.box is not None:
            (x0, y0), (x1, y1) = positions.box
            vertices = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        else:
            assert positions.polygon is not None
            vertices = np.asarray(positions.polygon, dtype=np.float64)
        self.vertices = vertices
        self.low, self.high = vertices.min(axis=0), vertices.max(axis=0)
        self._polygon = Polygon(vertices)
        self._is_box = positions.box is not None

    def contains(self, xy: FloatArray) -> npt.NDArray[np.bool_]:
        """``[n]`` whether each point ``[n, 2]`` lies in the region (boundary included for
        a box)."""
        if self._is_box:
            return np.all((xy >= self.low) & (xy <= self.high), axis=1)
        return np.asarray(self._polygon.contains_points(xy), dtype=bool)

    def uniform(self, rng: np.random.Generator, count: int) -> FloatArray:
        """``[count, 2]`` uniform draws in the bounding box (callers reject)."""
        return rng.uniform(self.low, self.high, size=(count, 2))

    def grid(self, spacing: float) -> FloatArray:
        """``[g, 2]`` the square grid's points in the region, row by row (y, then x)."""
        xs = np.arange(self.low[0], self.high[0] + 1e-9, spacing)
        ys = np.arange(self.low[1], self.high[1] + 1e-9, spacing)
        points = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
        return points[self.contains(points)]


class ShardGenerator:
    """Makes shards of one dataset; loads the scene and sets up the tracer once.

    Parameters
    ----------
    config : the validated dataset config.
    base_dir : directory the config's relative paths resolve against.
    """

    def __init__(self, config: DatasetConfig, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir
        self.section = config.dataset
        self.region = Region(self.section.positions)
        self.height = float(self.section.positions.height)
        self.scene: Any = None
        self.tracer: Any = None
        if self.section.source == "twin":
            from twin.scene import load_twin_scene
            from twin.trace import BaseStation, DriveTracer

            assert config.scene is not None
            self.scene = load_twin_scene(config.scene, base_dir, config.radio.frequency_hz)
            self.tracer = DriveTracer(
                self.scene,
                [BaseStation(bs.name, np.asarray(bs.position, float),
                             np.asarray(bs.orientation, float)) for bs in config.base_stations],
                frequency_hz=config.radio.frequency_hz, bs_array=config.base_stations[0].array,
                ue_array=config.ue.array, tracing=config.tracing, seed=config.seed)
        self._grid: FloatArray | None = None

    # ------------------------------------------------------------------ positions

    @property
    def scene_sha256(self) -> str | None:
        return None if self.scene is None else str(self.scene.sha256)

    def valid(self, xy: FloatArray) -> npt.NDArray[np.bool_]:
        """``[n]``: in the region and, on a scene, not inside a closed object; with
        ``source: uma``, at least 10 m from every BS (38.901's UMa range)."""
        ok = self.region.contains(xy)
        if self.section.source == "uma":
            bs = np.array([b.position[:2] for b in self.config.base_stations])
            distance = np.linalg.norm(xy[:, None, :] - bs[None], axis=-1)
            ok &= np.all(distance >= UMA_MIN_DISTANCE_M, axis=1)
        if self.scene is not None and ok.any():
            points = np.column_stack([xy[ok], np.full(int(ok.sum()), self.height)])
            inside = np.array([bool(name) for name in self.scene.objects_containing(points)])
            ok[np.flatnonzero(ok)[inside]] = False
        return ok

    def grid_points(self) -> FloatArray:
        """``[g, 2]`` the valid grid points (``kind: grid``), cached."""
        if self._grid is None:
            spacing = self.section.positions.spacing_m
            assert spacing is not None
            points = self.region.grid(spacing)
            self._grid = points[self.valid(points)] if len(points) else points
        return self._grid

    def check(self) -> None:
        """One-line :class:`TwinInputError` if the positions cannot be drawn (no valid
        position in the region, a grid smaller than ``num_samples``) or, on a scene, lie
        too far from its origin for float32 (:func:`twin.trace.check_float32_precision`,
        which warns short of that)."""
        where = "dataset.positions"
        if self.tracer is not None:
            from estimators.arrays import SPEED_OF_LIGHT
            from twin.trace import check_float32_precision

            corners = [[*self.region.low, self.height], [*self.region.high, self.height]]
            check_float32_precision(
                [*corners, *(bs.position for bs in self.config.base_stations)],
                SPEED_OF_LIGHT / self.config.radio.frequency_hz,
                inputs=f"base_stations, {where}")
        if self.section.positions.kind == "grid":
            count = len(self.grid_points())
            if count < self.section.num_samples:
                raise TwinInputError(
                    f"{where}: the grid has {count} valid point(s) outside buildings, "
                    f"fewer than dataset.num_samples = {self.section.num_samples}")
            return
        rng = np.random.default_rng(0)
        for _ in range(5):
            if self.valid(self.region.uniform(rng, 2000)).any():
                return
        raise TwinInputError(f"{where}: no valid position in the region (10000 draws, all "
                             "outside it or inside buildings)")

    def _uniform(self, rng: np.random.Generator, count: int) -> FloatArray:
        out: list[FloatArray] = []
        have = 0
        for _ in range(_MAX_ROUNDS):
            draws = self.region.uniform(rng, _OVERDRAW * max(count - have, 1))
            kept = draws[self.valid(draws)][: count - have]
            out.append(kept)
            have += len(kept)
            if have == count:
                return np.concatenate(out)
        raise TwinInputError("dataset.positions: too few valid positions in the region "
                             f"({have} of {count} after {_MAX_ROUNDS} rounds)")

    def _drives(self, rng: np.random.Generator, count: int, first: int
                ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        step = self.section.positions.step_m
        length = self.section.positions.samples_per_drive
        xy = np.empty((count, 2))
        drive = np.empty(count, dtype=np.int64)
        i = 0
        while i < count:
            start = i
            xy[i] = self._uniform(rng, 1)[0]
            heading = rng.uniform(0, 2 * np.pi)
            drive[i] = first + start
            i += 1
            while i < count and i - start < length:
                turns = np.concatenate([[heading], rng.uniform(0, 2 * np.pi, _MAX_TURNS - 1)])
                nxt = xy[i - 1] + step * np.column_stack([np.cos(turns), np.sin(turns)])
                ok = np.flatnonzero(self.valid(nxt))
                if ok.size == 0:
                    break  # boxed in: this drive ends, the next starts elsewhere
                heading = float(turns[ok[0]])
                xy[i], drive[i] = nxt[ok[0]], first + start
                i += 1
        return xy, drive

    def positions(self, index: int, rng: np.random.Generator
                  ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Shard ``index``'s UE positions ``[n, 3]`` [m] and drive indices ``[n]``."""
        count = self.section.shard_size(index)
        first = index * self.section.samples_per_shard
        kind = self.section.positions.kind
        if kind == "grid":
            xy = self.grid_points()[first:first + count]
            drive = first + np.arange(count, dtype=np.int64)
        elif kind == "drives":
            xy, drive = self._drives(rng, count, first)
        else:
            xy = self._uniform(rng, count)
            drive = first + np.arange(count, dtype=np.int64)
        return np.column_stack([xy, np.full(count, self.height)]), drive

    # ------------------------------------------------------------------- channels

    def _trace(self, position: FloatArray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Ray-traced truth (``paths/`` arrays), the CFR ``[n, B, ue_ant, N, K]`` (or an
        empty array) and the narrowband uplink ``h [n, B, N]``."""
        from estimators.arrays import subcarrier_frequencies

        n = len(position)
        orientation = np.broadcast_to(np.asarray(self.config.ue.orientation, float),
                                      position.shape).copy()
        drive = Drive(np.zeros(n), position, np.zeros_like(position), orientation)
        paths = self.tracer.trace(drive)
        arrays: dict[str, np.ndarray] = {}
        # The carrier itself (offset 0): DAUN's narrowband pilot; uplink = transpose.
        arrays["h"] = compute_cfr(paths, np.zeros(1))[:, :, 0, :, 0]
        arrays["los"] = np.any(paths.valid & (paths.depth == 0), axis=2)
        if "cfr" in self.section.keep:
            radio = self.config.radio
            arrays["cfr"] = compute_cfr(
                paths, subcarrier_frequencies(radio.num_subcarriers, radio.bandwidth_hz))
        if "paths" in self.section.keep:
            arrays.update(_paths_arrays(paths, self.section.max_paths,
                                        self.config.tracing.max_depth))
        return arrays, paths.valid.any(axis=2)

    def _uma(self, position: FloatArray, seed: np.random.SeedSequence
             ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        from twin.uma import uma_channels

        stations = self.config.base_stations
        array = stations[0].array
        out = uma_channels(
            ue_position=position, bs_position=np.array([bs.position for bs in stations]),
            bs_yaw=np.array([bs.orientation[0] for bs in stations]),
            num_bs_antennas=array.cols, carrier_frequency=self.config.radio.frequency_hz,
            seed=int(seed.generate_state(1)[0]))
        h = np.asarray(out.h)
        return {"h": h, "los": np.asarray(out.los)}, np.any(np.abs(h) > 0, axis=2)

    # ---------------------------------------------------------------------- shard

    def generate(self, index: int) -> bytes:
        """Shard ``index`` as the bytes of its HDF5 file (module docstring)."""
        if not 0 <= index < self.section.num_shards:
            raise ValueError(f"shard index {index} outside 0..{self.section.num_shards - 1}")
        position_seed, channel_seed, noise_seed = shard_seed(self.config.seed, index).spawn(3)
        position, drive = self.positions(index, np.random.default_rng(position_seed))
        if self.section.source == "twin":
            arrays, has_path = self._trace(position)
        else:
            arrays, has_path = self._uma(position, channel_seed)
        h = arrays.pop("h").astype(np.complex128)
        rng = np.random.default_rng(noise_seed)
        low, high = self.section.sounding.snr_range_db
        snr_db = rng.uniform(low, high, len(position))
        power = np.mean(np.abs(h) ** 2, axis=(1, 2))
        noise_variance = power / 10 ** (snr_db / 10)
        noise = complex_normal(rng, h.shape, noise_variance[:, None, None])
        observations = {
            "y": (h + noise).astype(np.complex64), "h": h.astype(np.complex64),
            "snr_db": snr_db, "noise_variance": noise_variance,
            "has_path": has_path, "los": arrays.pop("los")}
        return _pack(self.config, index, position, drive, observations, arrays)


def _paths_arrays(paths: Any, max_paths: int, max_depth: int) -> dict[str, np.ndarray]:
    """``paths/`` arrays padded (or cut) to ``max_paths`` paths and ``max_depth``
    interactions, the first paths by delay (PathSet's order)."""
    n, b, p = paths.valid.shape
    keep = min(p, max_paths)

    def fit(array: np.ndarray, fill: Any, depth_axis: bool = False) -> np.ndarray:
        shape = (n, b, max_paths, *array.shape[3:])
        if depth_axis:
            shape = (n, b, max_paths, max_depth, *array.shape[4:])
        out = np.full(shape, fill, dtype=array.dtype)
        d = min(array.shape[3], max_depth) if depth_axis else None
        if depth_axis:
            out[:, :, :keep, :d] = array[:, :, :keep, :d]
        else:
            out[:, :, :keep] = array[:, :, :keep]
        return out

    return {
        "paths/valid": fit(paths.valid, False), "paths/tau": fit(paths.tau, np.nan),
        "paths/gain": fit(paths.gain[..., 0, 0].astype(np.complex64), 0),
        "paths/aod": fit(paths.aod, np.nan), "paths/aoa": fit(paths.aoa, np.nan),
        "paths/depth": fit(paths.depth, -1),
        "paths/interaction_types": fit(paths.interaction_types, 0, depth_axis=True),
        "paths/interaction_points": fit(paths.interaction_points, np.nan, depth_axis=True),
    }


def _pack(config: DatasetConfig, index: int, position: FloatArray,
          drive: npt.NDArray[np.int64], observations: dict[str, np.ndarray],
          arrays: dict[str, np.ndarray]) -> bytes:
    """The shard's HDF5 file as bytes: no timestamps, fixed order, so equal arrays give
    equal bytes."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", track_order=False) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["index"] = index
        f.attrs["seed"] = config.seed
        f.attrs["first_sample"] = index * config.dataset.samples_per_shard
        f.attrs["num_samples"] = len(position)
        f.attrs["source"] = config.dataset.source

        def put(name: str, data: np.ndarray) -> None:
            f.create_dataset(name, data=data, track_times=False)

        put("ue_position", position)
        put("drive", drive)
        if "observations" in config.dataset.keep:
            for name, data in observations.items():
                put(f"observations/{name}", data)
        for name, data in sorted(arrays.items()):
            put(name, data)
    return buffer.getvalue()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
