"""Run files: one HDF5 file per run, self-describing, versioned, written atomically.

Layout (group/dataset names are the contract, see docs/formats/run.md)::

    /config   attrs: yaml, seed, schema_version, scene_sha256, scene_source, versions
    /scene    object_names[O] (sorted; /paths/object_ids index it); attrs: ground_height
              (the ground under the drive [m], NaN where the scene has none; 1.2)
    /bs       name[B], position[B,3], orientation[B,3], array/{element_positions[N,3]}
    /ue       time[T], position[T,3], velocity[T,3], orientation[T,3], inside[T],
              inside_object[T], no_path[T], array/{element_positions[N,3]}
    /channel  frequencies[K], cfr[T,B,Nr,Nt,K] (+ cir[T,B,Nr,Nt,L] on request)
              with RIS tiles: cfr = the total, cfr_direct[T,B,Nr,Nt,K],
              ris/{bs_to_ris[B,R,E,Nt,K], ris_to_ue[T,R,Nr,E,K]}
    /ris      (with RIS tiles) name[R], position[R,3], orientation[R,3],
              element_positions[R,E,3], element_grid[R,2] (rows, cols), profile[R,E],
              amplitude[R]
    /paths    valid, tau, gain, aod, aoa, doppler, depth, interaction_types,
              interaction_points, object_ids, primitive_ids, virtual_anchor
    /fingerprints  (with a radio map) block_positions[I,3], block_size[2],
              cfr_direct[I,B,Nr,Nt,K], with RIS tiles ris_to_ue[I,R,Nr,E,K]

The per-snapshot datasets (``/channel/cfr``, ``cir``, ``/paths/*``) are chunked (a batch
of snapshots and one path per chunk) and written a batch at a time (:class:`RunWriter`),
so ``twin simulate`` never holds a whole drive; :func:`read_run` reads them whole.

``schema_version`` is ``MAJOR.MINOR`` (:data:`SCHEMA_VERSION`); :func:`read_run` reads
every 1.x file and refuses another major in one line naming both (:mod:`twin.schema`).
``versions`` (JSON) holds the writer's package versions, ``mmwave-twin`` among them.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from estimators.types import ArrayGeometry
from twin.drive import Drive
from twin.errors import TwinInputError
from twin.outputs import Artifact, atomic_file
from twin.paths import InteractionType, PathSet
from twin.schema import check_schema_version

SCHEMA_VERSION = "1.2"
_VERSIONED_PACKAGES = (
    "mmwave-twin", "sionna-rt", "sionna", "mitsuba", "drjit", "numpy", "h5py", "trimesh",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's numbers."""
    out = {}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def is_run_file(path: Path) -> bool:
    """Whether ``path`` is a run file (its ``/config`` and ``/paths``), read lazily."""
    try:
        if not (path.is_file() and h5py.is_hdf5(path)):
            return False
        with h5py.File(path, "r") as f:
            attrs = f["config"].attrs if "config" in f else {}
            return "schema_version" in attrs and "yaml" in attrs and "paths" in f
    except (OSError, KeyError, ValueError):
        return False


#: What ``twin simulate`` writes (``--overwrite`` replaces only this).
RUN_FILE = Artifact("twin run file", "twin simulate", is_run_file)


def _write_array(group: h5py.Group, name: str, array: Any, **attrs: Any) -> None:
    group.create_dataset(name, data=array)
    for key, value in attrs.items():
        group[name].attrs[key] = value


def _write_strings(group: h5py.Group, name: str, values: Any) -> None:
    group.create_dataset(name, data=np.asarray(list(values), dtype=object),
                         dtype=h5py.string_dtype())


def _write_array_geometry(group: h5py.Group, array: ArrayGeometry) -> None:
    g = group.create_group("array")
    _write_array(g, "element_positions", array.element_positions, units="m, local frame")
    g.attrs.update(rows=array.rows, cols=array.cols, polarization=array.polarization,
                   pattern=array.pattern)


@dataclass(frozen=True)
class RisData:
    """The RIS tiles of a run (docs/RIS.md); ``R`` tiles, ``E`` elements (the largest
    tile's; smaller tiles are zero-padded, their padded profile entries 0).

    ``name [R]``, ``position``/``orientation [R, 3]``, ``element_positions [R, E, 3]`` [m]
    (NaN padding), ``element_grid [R, 2]`` each tile's (rows, cols) of elements (its
    first ``rows * cols`` entries along ``E``), ``profile [R, E]`` complex (the configured
    θ), ``amplitude [R]`` (κ), ``cfr_direct [T, B, Nr, Nt, K]``, ``bs_to_ris [B, R, E, Nt,
    K]``, ``ris_to_ue [T, R, Nr, E, K]``.
    """

    name: tuple[str, ...]
    position: npt.NDArray[np.float64]
    orientation: npt.NDArray[np.float64]
    element_positions: npt.NDArray[np.float64]
    element_grid: npt.NDArray[np.int64]
    profile: npt.NDArray[np.complex128]
    amplitude: npt.NDArray[np.float64]
    bs_to_ris: npt.NDArray[np.complex64]
    ris_to_ue: npt.NDArray[np.complex64]
    cfr_direct: npt.NDArray[np.complex64]


@dataclass(frozen=True)
class FingerprintData:
    """A run's radio map (docs/RIS.md): ``block_positions [I, 3]`` [m] (the centres),
    ``block_size [2]`` [m], ``cfr_direct [I, B, Nr, Nt, K]`` (the channel there without
    the tiles) and, with tiles, ``ris_to_ue [I, R, Nr, E, K]`` (the tiles' second hop to
    each centre; the first is the run's ``bs_to_ris``)."""

    block_positions: npt.NDArray[np.float64]
    block_size: npt.NDArray[np.float64]
    cfr_direct: npt.NDArray[np.complex64]
    ris_to_ue: npt.NDArray[np.complex64] | None = None


@dataclass(frozen=True)
class RunHeader:
    """What a run file holds besides its per-snapshot channels and paths (see the module
    docstring): known before any snapshot is traced, and small."""

    config_yaml: str
    seed: int
    scene_sha256: str
    scene_source: str
    versions: dict[str, str]
    bs_name: tuple[str, ...]
    bs_position: npt.NDArray[np.float64]
    bs_orientation: npt.NDArray[np.float64]
    bs_array: ArrayGeometry
    ue_array: ArrayGeometry
    drive: Drive
    ue_inside: npt.NDArray[np.bool_]
    ue_inside_object: tuple[str, ...]
    carrier_frequency: float
    bandwidth: float
    frequencies: npt.NDArray[np.float64]
    #: [m] the height of the scene's ground under the drive
    #: (:meth:`twin.scene.TwinScene.ground_under`); None: none found, or a run file
    #: older than schema 1.2.
    ground_height: float | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class RunData(RunHeader):
    """Everything in a run file, as numpy arrays (see the module docstring)."""

    cfr: npt.NDArray[np.complex64]
    paths: PathSet
    cir: npt.NDArray[np.complex64] | None = None
    ris: RisData | None = None
    fingerprints: FingerprintData | None = None


#: Snapshots a run file's per-snapshot datasets are chunked by (at most; fewer where one
#: snapshot's chunk would exceed :data:`_MAX_CHUNK_BYTES`): what ``write_run`` writes at
#: a time.
WRITE_BATCH = 64
#: [B] a chunk's size limit (HDF5's own is 4 GiB).
_MAX_CHUNK_BYTES = 1 << 26


class RunWriter:
    """Writes a run file's per-snapshot arrays batch by batch into an open HDF5 file, so
    that a drive's paths and channels are never all in memory (``twin simulate``).

    The per-snapshot datasets (``/channel/cfr``, ``cir``, ``/paths/*``) are chunked, a
    chunk per batch of snapshots and per path, sized ``[T, ...]`` up front; the path and
    vertex axes grow to the longest batch's, the rest reading as each field's padding
    (:data:`twin.trace.PAD`, the datasets' fill value). A file written in batches thus
    holds the same arrays as one written whole (:func:`write_run`, which uses this
    writer too).

    Parameters
    ----------
    f : the file, open for writing (the header is written at once).
    header : the run's header.
    object_names : the scene's objects, sorted (``/paths/object_ids`` index them).
    batch : snapshots per :meth:`write` (but the last): the chunks' length.
    """

    def __init__(self, f: h5py.File, header: RunHeader, object_names: tuple[str, ...],
                 *, batch: int) -> None:
        self._file = f
        self._batch = max(int(batch), 1)
        self._num_snapshots = header.drive.num_snapshots
        self._no_path = np.zeros(self._num_snapshots, dtype=bool)
        self._written = np.zeros(self._num_snapshots, dtype=bool)
        self._bandwidth = header.bandwidth
        self.finished = False
        _write_header(f, header, object_names)

    def write(self, start: int, paths: PathSet, cfr: npt.NDArray[np.complex64],
              cir: npt.NDArray[np.complex64] | None = None) -> None:
        """Write snapshots ``start, start + 1, ...``: their ``paths``, ``cfr [n, B, Nr,
        Nt, K]`` and (only if the run keeps one, then in every batch) ``cir [n, B, Nr,
        Nt, L]``."""
        # twin.trace loads the scene's modules (trimesh): not at import, readers of run
        # files do without.
        from twin.trace import PAD

        sl = slice(start, start + paths.num_snapshots)
        self._put("channel/cfr", sl, cfr, 0, dims="snapshot, bs, ue_ant, bs_ant, subcarrier")
        if cir is not None:
            self._put("channel/cir", sl, cir, 0, dims="snapshot, bs, ue_ant, bs_ant, tap",
                      sample_rate_hz=self._bandwidth)
        for name, pad in PAD.items():
            self._put(f"paths/{name}", sl, getattr(paths, name), pad, path_axis=2)
        self._no_path[sl] = ~paths.valid.any(axis=(1, 2))
        self._written[sl] = True

    @property
    def no_path(self) -> npt.NDArray[np.bool_]:
        """``[snapshot]`` whether no path reaches the snapshot (of those written)."""
        return self._no_path

    def finish(self, ris: RisData | None = None,
               fingerprints: FingerprintData | None = None) -> None:
        """Write what needs every snapshot (``/ue/no_path``), the RIS tiles and the
        radio map; every snapshot must have been written."""
        missing = np.flatnonzero(~self._written)
        if missing.size:
            raise ValueError(f"run file: snapshot {missing[0]} was never written")
        f = self._file
        _write_array(f["ue"], "no_path", self._no_path,
                     meaning="no path to any BS at this snapshot")
        if ris is not None:
            _write_ris(f, f["channel"], ris)
        if fingerprints is not None:
            _write_fingerprints(f, fingerprints)
        self.finished = True

    def _put(self, name: str, sl: slice, values: npt.NDArray[Any], pad: Any,
             path_axis: int | None = None, **attrs: Any) -> None:
        """Write ``values`` at snapshots ``sl`` of dataset ``name``, creating it (sized
        for every snapshot) or growing its other axes to fit."""
        ds = self._file.get(name)
        if ds is None:
            shape = (self._num_snapshots, *values.shape[1:])
            ds = self._file.create_dataset(
                name, shape=shape, dtype=values.dtype, maxshape=(None,) * len(shape),
                chunks=self._chunks(values, path_axis),
                fillvalue=np.array(pad, dtype=values.dtype))
            ds.attrs.update(attrs)
        grown = (ds.shape[0], *np.maximum(ds.shape[1:], values.shape[1:]).tolist())
        if grown != ds.shape:
            ds.resize(grown)
        if values.size:
            ds[(sl, *(slice(0, n) for n in values.shape[1:]))] = values

    def _chunks(self, values: npt.NDArray[Any], path_axis: int | None) -> tuple[int, ...]:
        """One path (a path axis' final length is known only at the end: a chunk per
        path wastes no disk whatever it becomes), the other axes but the snapshots'
        whole, and the largest divisor of the batch that keeps a chunk within
        :data:`_MAX_CHUNK_BYTES` snapshots (a batch writes whole chunks: none is read
        back)."""
        rest = [max(n, 1) for n in values.shape[1:]]
        if path_axis is not None:
            rest[path_axis - 1] = 1
        per_snapshot = values.dtype.itemsize * math.prod(rest)
        fitting = max(_MAX_CHUNK_BYTES // per_snapshot, 1)
        snapshots = max(d for d in range(1, self._batch + 1)
                        if self._batch % d == 0 and d <= fitting)
        return (snapshots, *rest)


def _write_header(f: h5py.File, header: RunHeader, object_names: tuple[str, ...]) -> None:
    """A run file's ``/config``, ``/scene``, ``/bs``, ``/ue`` (but ``no_path``), the
    channel's attributes and frequencies and the paths' attributes."""
    cfg = f.create_group("config")
    cfg.attrs.update(
        yaml=header.config_yaml, seed=header.seed, schema_version=SCHEMA_VERSION,
        scene_sha256=header.scene_sha256, scene_source=header.scene_source,
        versions=json.dumps(header.versions, sort_keys=True),
    )
    scene = f.create_group("scene")
    _write_strings(scene, "object_names", object_names)
    scene.attrs["ground_height"] = np.nan if header.ground_height is None \
        else float(header.ground_height)
    bs = f.create_group("bs")
    _write_strings(bs, "name", header.bs_name)
    _write_array(bs, "position", header.bs_position, units="m")
    _write_array(bs, "orientation", header.bs_orientation, units="rad (yaw, pitch, roll)")
    _write_array_geometry(bs, header.bs_array)
    ue = f.create_group("ue")
    _write_array(ue, "time", header.drive.time, units="s")
    _write_array(ue, "position", header.drive.position, units="m")
    _write_array(ue, "velocity", header.drive.velocity, units="m/s")
    _write_array(ue, "orientation", header.drive.orientation, units="rad (yaw, pitch, roll)")
    _write_array(ue, "inside", header.ue_inside)
    _write_strings(ue, "inside_object", header.ue_inside_object)
    _write_array_geometry(ue, header.ue_array)
    ch = f.create_group("channel")
    ch.attrs.update(carrier_frequency_hz=header.carrier_frequency,
                    bandwidth_hz=header.bandwidth)
    _write_array(ch, "frequencies", header.frequencies,
                 units="Hz, baseband offset from the carrier")
    p = f.create_group("paths")
    p.attrs["interaction_types"] = json.dumps({t.name: int(t) for t in InteractionType})
    p.attrs["direction"] = "BS (transmitter) -> UE (receiver); vertex 0 nearest the BS"


@contextlib.contextmanager
def run_writer(path: Path, header: RunHeader, object_names: tuple[str, ...], *,
               batch: int) -> Iterator[RunWriter]:
    """A :class:`RunWriter` on a temporary file beside ``path``, renamed into place when
    the block ends without an exception (atomic: a failure leaves the old file, or none,
    and nothing partial). The block must call :meth:`RunWriter.finish`."""
    with atomic_file(path) as tmp, h5py.File(tmp, "w") as f:
        writer = RunWriter(f, header, object_names, batch=batch)
        yield writer
        if not writer.finished:
            raise RuntimeError(f"{path}: run file left unfinished")


def write_run(path: Path, run: RunData) -> None:
    """Write a run file atomically (temp file + rename), :data:`WRITE_BATCH` snapshots
    at a time (the layout of ``twin simulate`` 's streamed files)."""
    with run_writer(path, run, run.paths.object_names, batch=WRITE_BATCH) as writer:
        # Rows as they are (no trimming of the path axis): the file holds run's arrays.
        for start in range(0, max(run.paths.num_snapshots, 1), WRITE_BATCH):
            sl = slice(start, start + WRITE_BATCH)
            rows = replace(run.paths, **{f.name: getattr(run.paths, f.name)[sl]
                                         for f in fields(PathSet) if f.name != "object_names"})
            writer.write(start, rows, run.cfr[sl], None if run.cir is None else run.cir[sl])
        writer.finish(run.ris, run.fingerprints)


def _write_ris(f: h5py.File, channel: h5py.Group, ris: RisData) -> None:
    g = f.create_group("ris")
    _write_strings(g, "name", ris.name)
    _write_array(g, "position", ris.position, units="m")
    _write_array(g, "orientation", ris.orientation, units="rad (yaw, pitch, roll)")
    _write_array(g, "element_positions", ris.element_positions, units="m",
                 dims="ris, element, xyz")
    _write_array(g, "element_grid", ris.element_grid, dims="ris, (rows, cols)")
    _write_array(g, "profile", ris.profile, dims="ris, element")
    _write_array(g, "amplitude", ris.amplitude,
                 meaning="Tang et al.'s reradiation factor per element (docs/RIS.md)")
    _write_array(channel, "cfr_direct", ris.cfr_direct,
                 dims="snapshot, bs, ue_ant, bs_ant, subcarrier")
    hops = channel.create_group("ris")
    _write_array(hops, "bs_to_ris", ris.bs_to_ris, dims="bs, ris, element, bs_ant, subcarrier")
    _write_array(hops, "ris_to_ue", ris.ris_to_ue,
                 dims="snapshot, ris, ue_ant, element, subcarrier")


def _write_fingerprints(f: h5py.File, fingerprints: FingerprintData) -> None:
    g = f.create_group("fingerprints")
    _write_array(g, "block_positions", fingerprints.block_positions, units="m")
    _write_array(g, "block_size", fingerprints.block_size, units="m")
    _write_array(g, "cfr_direct", fingerprints.cfr_direct,
                 dims="block, bs, ue_ant, bs_ant, subcarrier")
    if fingerprints.ris_to_ue is not None:
        _write_array(g, "ris_to_ue", fingerprints.ris_to_ue,
                     dims="block, ris, ue_ant, element, subcarrier")


def _read_fingerprints(f: h5py.File) -> FingerprintData | None:
    if "fingerprints" not in f:
        return None
    g = f["fingerprints"]
    return FingerprintData(
        block_positions=g["block_positions"][()], block_size=g["block_size"][()],
        cfr_direct=g["cfr_direct"][()],
        ris_to_ue=g["ris_to_ue"][()] if "ris_to_ue" in g else None)


def _read_ris(f: h5py.File) -> RisData | None:
    if "ris" not in f:
        return None
    g = f["ris"]
    if "element_grid" not in g:
        version = str(f["config"].attrs["schema_version"])
        raise TwinInputError(f"{f.filename}: a run file of schema {version} with RIS tiles "
                             f"lacks ris/element_grid (schema {SCHEMA_VERSION}); run "
                             "twin simulate again")
    return RisData(
        name=_strings(g["name"]), position=g["position"][()],
        orientation=g["orientation"][()], element_positions=g["element_positions"][()],
        element_grid=g["element_grid"][()], profile=g["profile"][()], amplitude=g["amplitude"][()],
        bs_to_ris=f["channel/ris/bs_to_ris"][()], ris_to_ue=f["channel/ris/ris_to_ue"][()],
        cfr_direct=f["channel/cfr_direct"][()])


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise TwinInputError(f"{path}: run file not found")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise TwinInputError(f"{path}: not an HDF5 run file") from None


def _strings(ds: h5py.Dataset) -> tuple[str, ...]:
    return tuple(s.decode() if isinstance(s, bytes) else str(s) for s in ds[()])


def _read_array_geometry(group: h5py.Group) -> ArrayGeometry:
    g = group["array"]
    return ArrayGeometry(
        element_positions=g["element_positions"][()], rows=int(g.attrs["rows"]),
        cols=int(g.attrs["cols"]), polarization=str(g.attrs["polarization"]),
        pattern=str(g.attrs["pattern"]),
    )


def read_run(path: str | Path) -> RunData:
    """Read a run file written by :func:`write_run`.

    A file of schema 1.x is read (a newer minor's added fields are ignored); a file of
    another major version is refused in one line naming both (:mod:`twin.schema`).
    """
    p = Path(path)
    with _open(p) as f:
        if "config" not in f or "schema_version" not in f["config"].attrs:
            raise TwinInputError(f"{p}: not a twin run file (no /config schema_version)")
        if f["config"].attrs.get("kind") == "estimates":
            raise TwinInputError(f"{p}: an estimate file, not a run file")
        check_schema_version(f["config"].attrs["schema_version"], SCHEMA_VERSION,
                             what="run file", path=p)
        missing = [g for g in ("bs", "ue", "channel", "paths", "scene") if g not in f]
        if missing:
            raise TwinInputError(f"{p}: not a twin run file (no /{missing[0]})")
        return _read_open_run(f)


def _read_open_run(f: h5py.File) -> RunData:
    cfg = f["config"].attrs
    pg = f["paths"]
    paths = PathSet(
        **{fl.name: pg[fl.name][()] for fl in fields(PathSet) if fl.name != "object_names"},
        object_names=_strings(f["scene/object_names"]),
    )
    drive = Drive(
        time=f["ue/time"][()], position=f["ue/position"][()],
        velocity=f["ue/velocity"][()], orientation=f["ue/orientation"][()],
    )
    return RunData(
        config_yaml=str(cfg["yaml"]), seed=int(cfg["seed"]),
        scene_sha256=str(cfg["scene_sha256"]), scene_source=str(cfg["scene_source"]),
        versions=json.loads(str(cfg["versions"])),
        bs_name=_strings(f["bs/name"]), bs_position=f["bs/position"][()],
        bs_orientation=f["bs/orientation"][()], bs_array=_read_array_geometry(f["bs"]),
        ue_array=_read_array_geometry(f["ue"]), drive=drive,
        ue_inside=f["ue/inside"][()], ue_inside_object=_strings(f["ue/inside_object"]),
        carrier_frequency=float(f["channel"].attrs["carrier_frequency_hz"]),
        bandwidth=float(f["channel"].attrs["bandwidth_hz"]),
        frequencies=f["channel/frequencies"][()], cfr=f["channel/cfr"][()],
        paths=paths, cir=f["channel/cir"][()] if "cir" in f["channel"] else None,
        ris=_read_ris(f), fingerprints=_read_fingerprints(f),
        ground_height=_ground_height(f["scene"].attrs.get("ground_height")),
    )


def _ground_height(value: Any) -> float | None:
    """``/scene`` ``ground_height``: None where NaN or absent (schema 1.1)."""
    return None if value is None or not np.isfinite(value) else float(value)


def run_summary(path: str | Path) -> tuple[int, int]:
    """A run file's number of snapshots and of valid paths, from ``/paths/valid`` alone
    (what ``twin simulate`` reports, without reading the run back whole)."""
    with _open(Path(path)) as f:
        valid = f["paths/valid"][()]
        return int(valid.shape[0]), int(np.count_nonzero(valid))
