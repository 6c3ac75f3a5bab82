"""Whole-run behaviour: snapshots without paths, optional CIR, run-file round trip, the
run file written batch by batch, the memory estimate."""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from estimators.arrays import SPEED_OF_LIGHT
from tests.conftest import make_config, run_config, wall_y, write_obj
from tests.tolerances import (
    CIR_TRUNCATION_REL,
)
from twin.channel import cfr
from twin.config import load_config, parse_config
from twin.errors import TwinInputError
from twin.paths import PathSet
from twin.resources import DRIVE_BYTES_PER_SNAPSHOT, TRACED_BYTES_PER_SNAPSHOT
from twin.runfile import read_run, run_summary, write_run
from twin.scene import TwinWarning
from twin.simulate import run_inputs, run_needs, simulate, simulate_to_file
from twin.trace import check_float32_precision


def test_snapshots_without_paths_are_flagged_not_a_crash(tmp_path: Path) -> None:
    """Behind a wall's back with LOS off, a UE has no path; batches of one make P = 0."""
    scene = write_obj(tmp_path / "wall.obj", wall_y("wall", 10.0, half=20.0))
    # Snapshot 0 sees the wall's reflection; snapshot 1 is beyond the wall (no reflection
    # reaches it and LOS is disabled).
    config = make_config(scene.name, ue_positions=[[5.0, 2.0, 1.5], [5.0, 30.0, 1.5]],
                         tracing={"max_depth": 1, "los": False, "refraction": False,
                                  "batch_size": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.warns(TwinWarning, match="1 of 2 snapshot"):
        sim = simulate_to_file(tmp_path / "c.yaml", tmp_path / "run.h5")
    assert sim.run.paths.valid[0].any() and not sim.run.paths.valid[1].any()
    assert np.all(sim.run.cfr[1] == 0)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["ue/no_path"][()].tolist() == [False, True]


def test_cir_output_and_round_trip(tmp_path: Path) -> None:
    walls = {**wall_y("north", 10.0), **wall_y("south", -10.0)}
    scene = write_obj(tmp_path / "walls.obj", walls)
    config = make_config(scene.name, ue_positions=[[10.0, 1.0, 1.5], [-4.0, -2.0, 1.0]],
                         bs_array={"rows": 2, "cols": 2}, ue_array={"rows": 1, "cols": 2},
                         tracing={"max_depth": 2})
    config["outputs"] = {"cir": True, "cir_num_taps": 48}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    sim = simulate_to_file(tmp_path / "c.yaml", tmp_path / "run.h5")
    back = read_run(tmp_path / "run.h5")
    assert back.cir is not None and back.cir.shape == (2, 1, 2, 4, 48)
    np.testing.assert_array_equal(back.cfr, sim.run.cfr)
    for field in fields(PathSet):
        np.testing.assert_array_equal(getattr(back.paths, field.name),
                                      getattr(sim.run.paths, field.name))
    np.testing.assert_array_equal(back.drive.position, sim.run.drive.position)
    np.testing.assert_array_equal(back.bs_array.element_positions,
                                  sim.run.bs_array.element_positions)
    assert (back.bs_array.rows, back.bs_array.cols) == (2, 2)
    assert back.seed == 1 and back.scene_sha256 == sim.run.scene_sha256
    # The CIR's energy equals the CFR's (Parseval) to within the sinc tails' truncation.
    cfr_energy = np.sum(np.abs(back.cfr) ** 2) / back.cfr.shape[-1]
    cir_energy = np.sum(np.abs(back.cir) ** 2)
    assert cir_energy == pytest.approx(cfr_energy, rel=CIR_TRUNCATION_REL)


#: Beyond the north wall, beyond the south one, in the corridor twice, beyond the north.
CORRIDOR_DRIVE = [[5.0, 30.0, 1.5], [0.0, -30.0, 1.5], [10.0, 1.0, 1.5], [-4.0, -2.0, 1.0],
                  [7.0, 35.0, 1.5]]


def _corridor_config(tmp_path: Path, positions: list[list[float]] = CORRIDOR_DRIVE,
                     batch: int = 2, fingerprints: dict[str, Any] | None = None,
                     **outputs: Any) -> Path:
    """A corridor between two walls, depth 2, batches of two: in the corridor a UE has
    five paths (LOS, two single and two double bounces), beyond a wall none (refraction
    off), so the batches' path axes are 0, 5 and 0 (the file's grows, then a batch is
    shorter)."""
    walls = {**wall_y("north", 10.0), **wall_y("south", -10.0)}
    scene = write_obj(tmp_path / "walls.obj", walls)
    config = make_config(scene.name, ue_positions=positions,
                         bs_array={"rows": 1, "cols": 2}, ue_array={"rows": 1, "cols": 2},
                         tracing={"max_depth": 2, "batch_size": batch, "refraction": False})
    config["outputs"] = outputs
    if fingerprints is not None:
        config["fingerprints"] = fingerprints
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _datasets(path: Path) -> dict[str, tuple[tuple[int, ...], str, bytes | list[Any]]]:
    """Every dataset of an HDF5 file: its shape, dtype and bytes (strings as a list)."""
    out: dict[str, tuple[tuple[int, ...], str, bytes | list[Any]]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            value = obj[()]
            out[name] = (value.shape, str(value.dtype),
                         value.tolist() if value.dtype == object else value.tobytes())

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


@pytest.mark.parametrize("outputs", [
    {}, {"cir": True, "cir_num_taps": 16},
    # Four blocks traced after the drive: a batch holds the last snapshot and a block.
    {"fingerprints": {"area": [[-4.0, -4.0], [4.0, 4.0]], "block_size": 4.0}},
], ids=["cfr", "cir", "radio-map"])
def test_a_streamed_run_holds_the_arrays_of_one_simulated_whole(
        tmp_path: Path, outputs: dict[str, Any]) -> None:
    """twin simulate writes batch by batch; the file has the same arrays, byte for byte,
    as the drive simulated in memory and written whole (the path axis grown to the
    longest batch's, the rest padded)."""
    config_path = _corridor_config(tmp_path, **outputs)
    with pytest.warns(TwinWarning, match="3 of 5 snapshot"):
        streamed = simulate_to_file(config_path, tmp_path / "streamed.h5")
    assert streamed.run_file == tmp_path / "streamed.h5"
    with pytest.warns(TwinWarning, match="3 of 5 snapshot"):
        whole = simulate(*load_config(config_path)).run
    write_run(tmp_path / "whole.h5", whole)
    stream_sets, whole_sets = _datasets(tmp_path / "streamed.h5"), _datasets(tmp_path / "whole.h5")
    assert stream_sets.keys() == whole_sets.keys()
    assert ("channel/cir" in stream_sets) == ("cir" in outputs)
    assert ("fingerprints/cfr_direct" in stream_sets) == ("fingerprints" in outputs)
    for name, value in whole_sets.items():
        assert stream_sets[name] == value, name
    # The batches' path axes differed: the file's is the longest, padded where shorter.
    assert whole.paths.num_paths == 5
    assert whole.paths.valid[2:4].any(axis=(1, 2)).all()
    assert not whole.paths.valid[[0, 1, 4]].any()
    back = read_run(tmp_path / "streamed.h5")
    for field in fields(PathSet):
        got, want = getattr(back.paths, field.name), getattr(whole.paths, field.name)
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), field.name
    assert back.cfr.tobytes() == whole.cfr.tobytes()
    # The simulation twin simulate returns reads the same run back; its summary reads
    # only the paths' validity.
    assert streamed.run.cfr.tobytes() == whole.cfr.tobytes()
    assert run_summary(tmp_path / "streamed.h5") == (5, int(whole.paths.valid.sum()))


def test_a_run_failing_mid_stream_leaves_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after some batches were written leaves the previous run file as it was
    and no temporary file."""
    config_path = _corridor_config(tmp_path)
    output = tmp_path / "run.h5"
    output.write_bytes(b"")  # an empty file may be replaced
    calls = []

    def failing_cfr(paths: PathSet, frequencies: Any) -> Any:
        calls.append(paths.num_snapshots)
        if len(calls) == 2:
            raise RuntimeError("killed mid-drive")
        return cfr(paths, frequencies)

    monkeypatch.setattr("twin.simulate.compute_cfr", failing_cfr)
    with pytest.raises(RuntimeError, match="killed mid-drive"):
        simulate_to_file(config_path, output, overwrite=True)
    assert output.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "run.h5", "walls.obj"]


def _memory_and_file(tmp_path: Path, sample_period_s: float, ris: bool = False
                     ) -> tuple[float, float]:
    config = make_config("builtin:simple_street_canyon", trajectory={
        "waypoints": [[-20.0, 0.0, 1.5], [20.0, 0.0, 1.5]], "speed_mps": 1.0,
        "sample_period_s": sample_period_s}, tracing={"batch_size": 16})
    if ris:
        config["ris"] = [{"name": "r", "position": [0.0, 8.0, 3.0], "orientation": [0, 0, 0],
                          "elements": [8, 8]}]
    parsed = parse_config(config)
    scene, _ = run_inputs(parsed, tmp_path)
    memory, file = run_needs(parsed, scene, tmp_path)
    return sum(n.bytes for n in memory), sum(n.bytes for n in file)


def test_the_memory_estimate_is_flat_in_the_drive_length(tmp_path: Path) -> None:
    """Streamed, 100 times the snapshots (41 -> 4 001) add only what stays per snapshot
    (the drive's poses, what tracing keeps) to the memory estimate, not their paths and
    channels, and 100 times the run file; with RIS tiles (held whole) the memory
    grows with the drive too."""
    short_memory, short_file = _memory_and_file(tmp_path, 1.0)
    long_memory, long_file = _memory_and_file(tmp_path, 0.01)
    assert long_memory - short_memory == pytest.approx(
        (DRIVE_BYTES_PER_SNAPSHOT + TRACED_BYTES_PER_SNAPSHOT) * (4001 - 41), rel=1e-12)
    assert long_file / short_file == pytest.approx(4001 / 41, rel=1e-12)
    ris_short, _ = _memory_and_file(tmp_path, 1.0, ris=True)
    ris_long, _ = _memory_and_file(tmp_path, 0.01, ris=True)
    assert ris_long - ris_short > 2 * (long_memory - short_memory)


def test_a_short_last_batch_traced_full_gives_the_paths_traced_alone(tmp_path: Path) -> None:
    """The last batch, shorter than the others, is traced with its last state repeated
    (no second receiver count in the scene); its snapshots' paths are those they get
    traced alone."""
    in_corridor = [[10.0, 1.0, 1.5], [-4.0, -2.0, 1.0], [3.0, 4.0, 1.5], [6.0, -3.0, 1.5],
                   [-8.0, 5.0, 1.5]]
    sim = simulate(*load_config(_corridor_config(tmp_path, in_corridor, batch=3)))
    tracer, drive = sim.tracer, sim.run.drive
    (first, _), (last, batched) = tracer.batches(drive)
    assert (first, last) == (slice(0, 3), slice(3, 5))
    alone = PathSet(**tracer.extract(tracer.solve(drive.position[last], drive.velocity[last],
                                                  drive.orientation[last])),
                    object_names=batched.object_names)
    assert batched.valid.any(axis=(1, 2)).all()
    for field in fields(PathSet):
        got = getattr(batched.snapshots(slice(None)), field.name)
        want = getattr(alone.snapshots(slice(None)), field.name)
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), field.name


def test_positions_far_from_the_origin_warn_then_refuse(tmp_path: Path) -> None:
    """Sionna RT traces in float32, whose spacing doubles at each power of two: 6.1e-5 m
    below 1 024 m (0.006 wavelengths at 28 GHz: silent), 1.2e-4 m from it (0.011: a
    warning), 2.0e-3 m from 16 384 m (0.18: refused). A drive in a survey frame (UTM) is
    refused by ``simulate`` in one line before anything is traced."""
    wavelength = SPEED_OF_LIGHT / 28.0e9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_float32_precision([[1023.9, 0.0, 1.5]], wavelength)
    with pytest.warns(TwinWarning, match=r"reach 1024 m .* 0.12 mm apart"):
        check_float32_precision([[0.0, -1024.0, 1.5]], wavelength)
    with pytest.warns(TwinWarning, match="reach 8192 m"):
        check_float32_precision([[8192.0, 0.0, 1.5]], wavelength)
    with pytest.raises(TwinInputError, match=r"reach 16384 m .* 2 mm apart"):
        check_float32_precision([[16384.0, 0.0, 1.5]], wavelength)
    scene = write_obj(tmp_path / "wall.obj", wall_y("wall", 10.0, half=20.0))
    config = make_config(scene.name, bs_position=(500_000.0, 5_600_000.0, 30.0),
                         ue_positions=[[500_010.0, 5_600_000.0, 1.5]])
    with pytest.raises(TwinInputError, match=r"reach 5600000 m .* translate"):
        run_config(config, tmp_path)
