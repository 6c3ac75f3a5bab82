"""Same config + seed ⇒ identical arrays in the run file; the seed and provenance are stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import yaml

from tests.conftest import make_config, wall_y, write_obj
from twin.config import SceneConfig
from twin.scene import load_twin_scene
from twin.simulate import simulate_to_file


def dataset_digests(path: Path) -> dict[str, str]:
    digests: dict[str, str] = {}

    def visit(name: str, node: object) -> None:
        if isinstance(node, h5py.Dataset):
            data = node[()]
            raw = np.asarray(data).tobytes() if node.dtype.kind != "O" else repr(data).encode()
            digests[name] = hashlib.sha256(raw).hexdigest()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return digests


def write_config(tmp_path: Path, seed: int) -> Path:
    walls = {**wall_y("wall_north", 10.0), **wall_y("wall_south", -10.0)}
    scene = write_obj(tmp_path / "walls.obj", walls)
    trajectory = {"waypoints": [[-20.0, 2.0, 1.5], [20.0, -3.0, 1.5]], "speed_mps": 8.0,
                  "sample_period_s": 0.5}
    config = make_config(scene.name, trajectory=trajectory, bs_array={"rows": 1, "cols": 8},
                         tracing={"max_depth": 3, "batch_size": 4}, seed=seed)
    path = tmp_path / f"config-{seed}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_same_config_and_seed_give_identical_arrays(tmp_path: Path) -> None:
    config = write_config(tmp_path, seed=11)
    simulate_to_file(config, tmp_path / "a.h5")
    # Loading another scene in between shifts Mitsuba's internal object ids: the run
    # file's object ids must not depend on the process's history.
    load_twin_scene(SceneConfig(file="bundled:street"), tmp_path, 28e9)
    simulate_to_file(config, tmp_path / "b.h5")
    a, b = dataset_digests(tmp_path / "a.h5"), dataset_digests(tmp_path / "b.h5")
    assert a.keys() == b.keys() and "paths/gain" in a and "channel/cfr" in a
    assert a == b
    with h5py.File(tmp_path / "a.h5", "r") as f:
        attrs = f["config"].attrs
        assert int(attrs["seed"]) == 11
        assert yaml.safe_load(str(attrs["yaml"]))["seed"] == 11
        assert len(str(attrs["scene_sha256"])) == 64
        assert f["paths/valid"][()].sum() > 3 * f["ue/time"].shape[0]  # multipath everywhere
