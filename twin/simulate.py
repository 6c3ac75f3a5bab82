"""Config → scene → traced drive → truth + CFR → run file."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, planar_array_positions, subcarrier_frequencies
from estimators.types import ArrayGeometry
from twin.channel import cfr as compute_cfr
from twin.channel import cir_taps
from twin.config import ArrayConfig, RisConfig, TwinConfig, load_config
from twin.drive import Drive, build_drive, csv_path, snapshot_count
from twin.outputs import check_output
from twin.paths import PathSet
from twin.resources import (
    CHANNEL_BYTES,
    Need,
    TraceSize,
    check_disk,
    check_memory,
    mesh_need,
    stored_needs,
    streamed_needs,
    tracing_needs,
    transient_needs,
)
from twin.ris import (
    SOURCES_PER_TRACE,
    TileHops,
    build_ris,
    cascaded_paths,
    profile_path,
    recompute_cfr,
)
from twin.runfile import (
    RUN_FILE,
    FingerprintData,
    RisData,
    RunData,
    RunHeader,
    package_versions,
    read_run,
    run_writer,
    write_run,
)
from twin.scene import TwinScene, TwinWarning, load_twin_scene, resolve_scene_path, scene_files
from twin.trace import BaseStation, DriveTracer, check_float32_precision, concat_snapshots


def array_geometry(array: ArrayConfig, wavelength: float) -> ArrayGeometry:
    """Local element positions of a configured planar array."""
    spacing = array.spacing_wavelengths * wavelength
    pols = 2 if array.polarization in ("VH", "cross") else 1
    return ArrayGeometry(
        element_positions=planar_array_positions(
            array.rows, array.cols, vertical_spacing_m=spacing, horizontal_spacing_m=spacing,
            num_polarizations=pols,
        ),
        rows=array.rows, cols=array.cols, polarization=array.polarization, pattern=array.pattern,
    )


class _ReadOnFirstUse:
    """A :class:`Simulation` 's ``run``: the data it was given, or else its run file's,
    read on first use."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}"

    def __get__(self, sim: Simulation | None, owner: type | None = None) -> Any:
        if sim is None:
            return None  # the dataclass field's default
        held = getattr(sim, self._slot)
        if held is None:
            if sim.run_file is None:
                raise ValueError("Simulation: neither run data nor a run file")
            held = read_run(sim.run_file)
            setattr(sim, self._slot, held)
        return held

    def __set__(self, sim: Simulation, value: RunData | None) -> None:
        setattr(sim, self._slot, value)


@dataclass
class Simulation:
    """A finished simulation: the run data plus the live scene and tracer (for rendering).

    ``run`` is the run's data: held, or (a run streamed to ``run_file`` by
    :func:`simulate_to_file`) read from the file on first use.
    """

    scene: TwinScene
    tracer: DriveTracer
    config: TwinConfig
    run: RunData = _ReadOnFirstUse()  # type: ignore[assignment]
    run_file: Path | None = None


@dataclass
class _Prepared:
    """A simulation up to its tracing: the run file's header, the scene, the tracer, the
    snapshots to trace (the drive, then the radio map's block centres) and the RIS
    tiles with their hops (traced first: they reconfigure the scene)."""

    header: RunHeader
    scene: TwinScene
    tracer: DriveTracer
    traced: Drive
    blocks: np.ndarray
    ris: RisData | None
    hops: list[TileHops]


def _prepare(config: TwinConfig, base_dir: Path) -> _Prepared:
    radio = config.radio
    wavelength = SPEED_OF_LIGHT / radio.frequency_hz
    scene = load_twin_scene(config.scene, base_dir, radio.frequency_hz)
    drive = build_drive(config.ue, base_dir,
                        scene_path=resolve_scene_path(config.scene.file, base_dir))
    base_stations = [
        BaseStation(bs.name, np.asarray(bs.position, float), np.asarray(bs.orientation, float))
        for bs in config.base_stations
    ]
    inside_object = scene.objects_containing(drive.position)
    _warn_inside(inside_object)
    bs_array_cfg = config.base_stations[0].array
    frequencies = subcarrier_frequencies(radio.num_subcarriers, radio.bandwidth_hz)
    # The radio map's block centres are traced with the drive, as extra snapshots.
    blocks = config.fingerprints.block_positions() if config.fingerprints else np.zeros((0, 3))
    traced = _with_blocks(drive, blocks, config.ue.orientation)
    check_float32_precision(
        np.vstack([traced.position, *(bs.position[None] for bs in base_stations)]), wavelength)
    # The tiles' hop tracers reconfigure the scene: before the direct channel's tracer.
    ris, hops = build_ris(config, base_dir, scene, base_stations, traced, frequencies) \
        if config.ris else (None, [])
    tracer = DriveTracer(
        scene, base_stations, frequency_hz=radio.frequency_hz, bs_array=bs_array_cfg,
        ue_array=config.ue.array, tracing=config.tracing, seed=config.seed,
    )
    header = RunHeader(
        config_yaml=config.to_yaml(), seed=config.seed, scene_sha256=scene.sha256,
        scene_source=scene.source, versions=package_versions(),
        bs_name=tuple(bs.name for bs in base_stations),
        bs_position=np.stack([bs.position for bs in base_stations]),
        bs_orientation=np.stack([bs.orientation for bs in base_stations]),
        bs_array=array_geometry(bs_array_cfg, wavelength),
        ue_array=array_geometry(config.ue.array, wavelength),
        drive=drive, ue_inside=np.array([bool(n) for n in inside_object]),
        ue_inside_object=tuple(inside_object), carrier_frequency=radio.frequency_hz,
        bandwidth=radio.bandwidth_hz, frequencies=frequencies,
        ground_height=scene.ground_under(drive.position),
    )
    return _Prepared(header=header, scene=scene, tracer=tracer, traced=traced,
                     blocks=blocks, ris=ris, hops=hops)


def _channel_batches(
    prepared: _Prepared, on_progress: Callable[[int, int], None] | None
) -> Iterator[tuple[slice, PathSet, npt.NDArray[np.complex64]]]:
    """Trace the snapshots a batch at a time: each batch's snapshots, its paths and its
    channel (CFR, without RIS tiles)."""
    total = prepared.traced.num_snapshots
    on_batch = (lambda done: on_progress(done, total)) if on_progress else None
    for sl, paths in prepared.tracer.batches(prepared.traced, on_batch=on_batch):
        yield sl, paths, compute_cfr(paths, prepared.header.frequencies)


def _cir_taps(config: TwinConfig) -> int | None:
    """The CIR's taps when the run keeps one."""
    if not config.outputs.cir:
        return None
    return config.outputs.cir_num_taps or config.radio.num_subcarriers


def simulate(
    config: TwinConfig,
    base_dir: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Run a whole simulation in memory.

    Parameters
    ----------
    config : validated config.
    base_dir : directory relative paths in the config resolve against.
    on_progress : ``(snapshots_done, snapshots_total)`` callback after each batch.
    """
    prepared = _prepare(config, base_dir)
    header, ris = prepared.header, prepared.ris
    drive = header.drive
    T = drive.num_snapshots
    batches = list(_channel_batches(prepared, on_progress))
    traced_paths = concat_snapshots([paths for _, paths, _ in batches])
    traced_cfr = np.concatenate([cfr for _, _, cfr in batches])
    del batches
    paths, cfr = traced_paths.snapshots(slice(0, T)), traced_cfr[:T]
    fingerprints = None
    if config.fingerprints is not None:
        fingerprints = FingerprintData(
            block_positions=prepared.blocks,
            block_size=np.full(2, config.fingerprints.block_size),
            cfr_direct=traced_cfr[T:],
            ris_to_ue=ris.ris_to_ue[T:] if ris is not None else None)
    if ris is not None:
        ris = dataclasses.replace(ris, cfr_direct=cfr, ris_to_ue=ris.ris_to_ue[:T])
        cfr = recompute_cfr(ris, ris.profile).astype(np.complex64)
        hops = [h.snapshots(slice(0, T)) for h in prepared.hops]
        paths = cascaded_paths(ris, hops, paths, config.outputs.ris_paths_range_db)
    _warn_no_path(~paths.valid.any(axis=(1, 2)), drive)
    taps = _cir_taps(config)
    run = RunData(
        **{f.name: getattr(header, f.name) for f in dataclasses.fields(RunHeader)},
        cfr=cfr, paths=paths, cir=None if taps is None else cir_taps(
            paths, config.radio.bandwidth_hz, taps),
        ris=ris, fingerprints=fingerprints,
    )
    return Simulation(run=run, scene=prepared.scene, tracer=prepared.tracer, config=config)


def _simulate_streamed(
    config: TwinConfig,
    base_dir: Path,
    output: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """:func:`simulate` written to ``output`` batch by batch (atomically), so that its
    memory does not grow with the drive: the same arrays (runs without RIS tiles)."""
    prepared = _prepare(config, base_dir)
    header = prepared.header
    T = header.drive.num_snapshots
    taps = _cir_taps(config)
    blocks_cfr = []
    with run_writer(output, header, tuple(prepared.scene.object_names),
                    batch=config.tracing.batch_size) as writer:
        for sl, traced, cfr in _channel_batches(prepared, on_progress):
            on_drive = max(min(sl.stop, T) - sl.start, 0)
            if on_drive:
                # The path axis trimmed per batch: the file's grows to the most valid
                # paths of any snapshot, as the drive's trimmed whole.
                paths = traced.snapshots(slice(0, on_drive))
                cir = None if taps is None else cir_taps(paths, config.radio.bandwidth_hz,
                                                         taps)
                writer.write(sl.start, paths, cfr[:on_drive], cir)
            if on_drive < len(cfr):
                # A copy: a view would keep the batch's whole channel.
                blocks_cfr.append(cfr[on_drive:].copy())
        _warn_no_path(writer.no_path, header.drive)
        fingerprints = None
        if config.fingerprints is not None:
            fingerprints = FingerprintData(
                block_positions=prepared.blocks,
                block_size=np.full(2, config.fingerprints.block_size),
                cfr_direct=np.concatenate(blocks_cfr))
        writer.finish(fingerprints=fingerprints)
    return Simulation(run_file=output, scene=prepared.scene, tracer=prepared.tracer,
                      config=config)


def _with_blocks(drive: Drive, blocks: np.ndarray, orientation: object) -> Drive:
    """The drive followed by static snapshots at the radio map's block centres."""
    if not len(blocks):
        return drive
    n = len(blocks)
    pose = np.broadcast_to(np.asarray(orientation, dtype=np.float64), (n, 3))
    return Drive(time=np.concatenate([drive.time, np.zeros(n)]),
                 position=np.concatenate([drive.position, blocks]),
                 velocity=np.concatenate([drive.velocity, np.zeros((n, 3))]),
                 orientation=np.concatenate([drive.orientation, pose]))


def _warn_inside(inside_object: list[str]) -> None:
    flagged = [i for i, name in enumerate(inside_object) if name]
    if flagged:
        objects = sorted({inside_object[i] for i in flagged})
        warnings.warn(
            f"{len(flagged)} UE position(s) lie inside closed object(s) {', '.join(objects)} "
            f"(first: snapshot {flagged[0]}); flagged in /ue/inside",
            TwinWarning, stacklevel=3,
        )


def _warn_no_path(no_path: npt.ArrayLike, drive: Drive) -> None:
    """Warn of the snapshots (``no_path [snapshot]``) that no path reaches."""
    empty = np.flatnonzero(no_path)
    if empty.size:
        warnings.warn(
            f"{empty.size} of {drive.num_snapshots} snapshot(s) have no path to any BS "
            f"(first: snapshot {empty[0]}); their CFR is zero",
            TwinWarning, stacklevel=3,
        )


def run_inputs(config: TwinConfig, base_dir: Path) -> tuple[list[Path], list[Path]]:
    """The files a run reads: the scene and what it references (each checked to be a
    regular file), and the others (the CSV of positions, RIS profile files)."""
    scene = scene_files(resolve_scene_path(config.scene.file, base_dir))
    others = [profile_path(t, base_dir) for t in config.ris if t.profile.kind == "file"]
    if config.ue.positions_csv is not None:
        others.append(csv_path(config.ue, base_dir))
    return scene, others


def run_needs(config: TwinConfig, scene: Sequence[Path], base_dir: Path
              ) -> tuple[list[Need], list[Need]]:
    """The memory a simulation of ``config`` needs and the size of its run file
    (:mod:`twin.resources`), from the config and the scene files' sizes alone."""
    radio, tracing = config.radio, config.tracing
    blocks = 0
    if config.fingerprints is not None:
        (x0, y0), (x1, y1) = config.fingerprints.area
        step = config.fingerprints.block_size
        blocks = math.floor((x1 - x0) / step) * math.floor((y1 - y0) / step)
    snapshots = snapshot_count(config.ue, base_dir) + blocks
    bs_ant = _antennas(config.base_stations[0].array)
    ue_ant = _antennas(config.ue.array)
    where = "ue" if config.fingerprints is None else "ue, fingerprints.block_size"
    size = TraceSize(
        snapshots=int(min(snapshots, 2**62)), batch=tracing.batch_size,
        bs=len(config.base_stations), bs_antennas=bs_ant, ue_antennas=ue_ant,
        subcarriers=radio.num_subcarriers, samples=tracing.samples_per_src,
        path_slots=tracing.max_num_paths_per_src,
        max_depth=tracing.max_depth, deterministic=tracing.deterministic,
        snapshots_knob=f"{where} (snapshots)")
    # Without RIS tiles twin simulate holds one batch at a time (simulate_to_file).
    streamed = not config.ris
    needs = [mesh_need(scene), *(streamed_needs(size) if streamed else tracing_needs(size))]
    file = stored_needs(size)
    taps = _cir_taps(config)
    if taps is not None:
        file.append(Need("the CIR", 8.0 * size.snapshots * size.bs * bs_ant * ue_ant * taps,
                         "outputs.cir_num_taps"))
        held = min(size.batch, size.snapshots) if streamed else size.snapshots
        needs.append(dataclasses.replace(file[-1], bytes=file[-1].bytes * held
                                         / max(size.snapshots, 1)))
    if streamed and blocks:
        # The radio map's channel is written at the end, with the map.
        needs.append(Need("the radio map's channel (CFR)", CHANNEL_BYTES * blocks * size.bs
                          * bs_ant * ue_ant * radio.num_subcarriers, "fingerprints.block_size"))
    for i, tile in enumerate(config.ris):
        needs += _tile_needs(tile, size, f"ris[{i}]")
        # Both hops per element and subcarrier: [B, E, Nt, K] and [T, Nr, E, K].
        file.append(Need(f"RIS tile '{tile.name}''s hops", 8.0 * tile.elements[0]
                         * tile.elements[1] * radio.num_subcarriers
                         * (size.bs * bs_ant + size.snapshots * ue_ant), f"ris[{i}].elements"))
    return needs, file


def _tile_needs(tile: RisConfig, direct: TraceSize, where: str) -> list[Need]:
    """A tile's hop traces (:func:`twin.ris.trace_tile_hops`: BS → sub-tiles, then the
    sub-tiles as sources, a few per call, → UE) and hop channels (complex64 and a
    complex128 copy)."""
    sub_tiles = tile.traced_sub_tiles[0] * tile.traced_sub_tiles[1]
    elements = tile.elements[0] * tile.elements[1]
    sub_array = elements // sub_tiles
    inbound = dataclasses.replace(direct, snapshots=sub_tiles, ue_antennas=sub_array,
                                  subcarriers=0, snapshots_knob=f"{where}.sub_tiles")
    # The sub-tiles transmit a few per trace; the paths of all of them are kept.
    outbound = dataclasses.replace(direct, bs=min(SOURCES_PER_TRACE, sub_tiles),
                                   bs_antennas=sub_array, subcarriers=0)
    channels = 24.0 * elements * direct.subcarriers * (
        direct.bs * direct.bs_antennas + direct.snapshots * direct.ue_antennas)
    out = [Need(f"RIS tile '{tile.name}': {n.what}", n.bytes, _tile_knob(n, where))
           for n in (*tracing_needs(inbound), *transient_needs(outbound),
                     *stored_needs(dataclasses.replace(outbound, bs=sub_tiles)))]
    out.append(Need(f"RIS tile '{tile.name}''s hop channels", channels, f"{where}.elements"))
    return out


def _tile_knob(need: Need, where: str) -> str:
    return need.knob if need.knob.startswith(("tracing", where)) else f"{where}.elements"


def _antennas(array: ArrayConfig) -> int:
    return array.rows * array.cols * (2 if array.polarization in ("VH", "cross") else 1)


def simulate_to_file(
    config_path: Path,
    output: Path,
    *,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Load a YAML config, check the output path and the memory and disk the run
    needs, simulate, and write the run file atomically.

    Without RIS tiles the run is written a batch of snapshots at a time (its memory
    does not grow with the drive) and the returned simulation reads its ``run`` from
    the file when asked; with tiles it is simulated whole (:func:`simulate`), then
    written.
    """
    config, base_dir = load_config(config_path)
    scene, others = run_inputs(config, base_dir)
    check_output(output, RUN_FILE, overwrite=overwrite,
                 inputs=[config_path, *scene, *others])
    memory, file = run_needs(config, scene, base_dir)
    check_memory(memory, "twin simulate")
    check_disk(output, file, "twin simulate")
    if config.ris:
        # The tiles' hops are traced for every snapshot up front (twin.ris): held whole.
        sim = simulate(config, base_dir, on_progress=on_progress)
        write_run(output, sim.run)
        return sim
    return _simulate_streamed(config, base_dir, output, on_progress=on_progress)
