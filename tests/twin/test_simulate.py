"""Whole-run behaviour: snapshots without paths, optional CIR, run-file round trip."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import make_config, wall_y, write_obj
from tests.tolerances import (
    CIR_TRUNCATION_REL,
)
from twin.paths import PathSet
from twin.runfile import read_run
from twin.scene import TwinWarning
from twin.simulate import simulate_to_file


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
