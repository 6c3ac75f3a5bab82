"""The ground under the drive (``twin.scene.TwinScene.ground_under``): stored in the run
file, carried by the service area, and taken by the ground-bounce estimators'
``ground_height="auto"`` — a scene whose ground is not at z = 0 localizes as well as one
whose ground is (``scripts/twin/shifted_ground.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from scripts.twin.shifted_ground import STREET, lifted_scene
from tests.tolerances import FLOAT32_ABS
from twin.estimate import estimate_run
from twin.estimatefile import read_estimates
from twin.runfile import read_run
from twin.simulate import simulate_to_file

LIFT_M = 35.0


def short_drive(scene: Path, dz: float, out: Path) -> Path:
    """The bundled street's UE-array drive on ``scene``, lifted by ``dz`` [m], three
    snapshots."""
    config = yaml.safe_load((STREET / "ue_array_drive.yaml").read_text())
    config["scene"]["file"] = str(scene)
    for bs in config["base_stations"]:
        bs["position"][2] += dz
    trajectory = config["ue"]["trajectory"]
    trajectory["waypoints"] = [[x, y, z + dz] for x, y, z in trajectory["waypoints"]]
    trajectory["sample_period_s"] = 3.0
    config["tracing"]["samples_per_src"] = 20000
    path = out / f"drive_{dz:g}.yaml"
    path.write_text(yaml.safe_dump(config))
    run = out / f"run_{dz:g}.h5"
    simulate_to_file(path, run)
    return run


def test_a_lifted_street_keeps_its_ground_and_locmans_fixes(tmp_path: Path) -> None:
    """The street as bundled and lifted by 35 m (scene, BSs, drive: the same physics):
    the run's ground under the drive is 0 m and 35 m, and ``locman``'s default
    ``ground_height="auto"`` takes it, so the lifted fixes are the bundled ones lifted
    (with the fixed 0 m default of before, 0.28 m off on the median:
    docs/guide/scenes.md)."""
    bundled = short_drive(STREET / "street.xml", 0.0, tmp_path)
    lifted = short_drive(lifted_scene(tmp_path, LIFT_M), LIFT_M, tmp_path)
    assert read_run(bundled).ground_height == 0.0
    assert abs(read_run(lifted).ground_height - LIFT_M) <= FLOAT32_ABS * LIFT_M
    fixes = []
    for run in (bundled, lifted):
        out = run.with_suffix(".est.h5")
        estimate_run(run, "locman", out, snr_db=20.0, seed=3)
        est = read_estimates(out)
        assert est.service_area["ground_height"] == read_run(run).ground_height
        fixes.append(est.estimates["locman"])
    assert fixes[0].converged.all() and fixes[1].converged.all()
    np.testing.assert_allclose(fixes[1].ue_position[:, :2], fixes[0].ue_position[:, :2],
                               atol=1e-3)
