"""The twin against closed forms: Friis, image method, Doppler, steering vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from estimators.arrays import direction_angles, mimo_ofdm_channel
from tests.conftest import make_config, run_config, wall_y, write_obj
from tests.tolerances import (
    ANGLE_FLOAT32_ABS,
    DELAY_ABS_S,
    DOPPLER_REL,
    FRIIS_REL,
    GEOMETRY_ABS_M,
    SPEED_OF_LIGHT,
    STEERING_REL,
)
from twin.paths import InteractionType
from twin.simulate import Simulation

FREQ = 28.0e9
WAVELENGTH = SPEED_OF_LIGHT / FREQ
BS = np.array([0.0, 0.0, 3.0])


def mirror(point: np.ndarray, plane_y: float) -> np.ndarray:
    out = point.copy()
    out[1] = 2 * plane_y - point[1]
    return out


def hit_plane(a: np.ndarray, b: np.ndarray, plane_y: float) -> np.ndarray:
    """Intersection of segment a→b with the plane y = plane_y."""
    s = (plane_y - a[1]) / (b[1] - a[1])
    return a + s * (b - a)


@pytest.fixture(scope="module")
def free_space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, np.ndarray]:
    """LOS only: a tiny triangle 1 km away is the whole scene."""
    tmp = tmp_path_factory.mktemp("free")
    scene = write_obj(tmp / "far.obj", {"speck": ((1000, 0, 0), (0.1, 0, 0), (0, 0.1, 0))})
    ue = np.array([[5.0, 1.0, 1.5], [20.0, -7.0, 1.0], [80.0, 30.0, 2.0], [-150.0, 60.0, 1.5]])
    sim = run_config(make_config(scene, ue_positions=ue, tracing={"max_depth": 0}), tmp)
    return sim, ue


def test_friis_free_space_gain_and_delay(free_space: tuple[Simulation, np.ndarray]) -> None:
    sim, ue = free_space
    paths = sim.run.paths
    assert paths.valid.sum(axis=2).tolist() == [[1]] * len(ue)
    d = np.linalg.norm(ue - BS, axis=1)
    power = np.abs(paths.gain[:, 0, 0, 0, 0]) ** 2
    np.testing.assert_allclose(power, (WAVELENGTH / (4 * np.pi * d)) ** 2, rtol=FRIIS_REL)
    np.testing.assert_allclose(paths.tau[:, 0, 0], d / SPEED_OF_LIGHT, rtol=0, atol=DELAY_ABS_S)
    assert np.all(paths.depth[:, 0, 0] == 0)
    # The LOS "virtual anchor" is the BS itself.
    np.testing.assert_allclose(paths.virtual_anchor[:, 0, 0], np.tile(BS, (len(ue), 1)),
                               atol=GEOMETRY_ABS_M)


def _path_by_objects(sim: Simulation, t: int, names: tuple[str, ...]) -> int:
    paths = sim.run.paths
    hits = paths.interaction_object_names()[t, 0]
    for p in np.flatnonzero(paths.valid[t, 0]):
        if tuple(n for n in hits[p] if n) == names:
            return int(p)
    raise AssertionError(f"no path hitting {names} at snapshot {t}")


@pytest.fixture(scope="module")
def two_walls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, np.ndarray]:
    tmp = tmp_path_factory.mktemp("walls")
    walls = {**wall_y("wall_north", 10.0), **wall_y("wall_south", -10.0)}
    scene = write_obj(tmp / "walls.obj", walls)
    ue = np.array([[20.0, 2.0, 1.5], [-15.0, 5.0, 2.0], [5.0, -3.0, 1.0]])
    config = make_config(
        scene, ue_positions=ue,
        tracing={"max_depth": 2, "refraction": False, "samples_per_src": 1_000_000},
    )
    return run_config(config, tmp), ue


@pytest.mark.parametrize("wall, plane_y", [("wall_north", 10.0), ("wall_south", -10.0)])
def test_single_bounce_matches_image_method(
    two_walls: tuple[Simulation, np.ndarray], wall: str, plane_y: float
) -> None:
    sim, ue = two_walls
    paths = sim.run.paths
    for t, u in enumerate(ue):
        p = _path_by_objects(sim, t, (wall,))
        image = mirror(BS, plane_y)
        expected_point = hit_plane(image, u, plane_y)
        assert paths.depth[t, 0, p] == 1
        assert paths.interaction_types[t, 0, p, 0] == InteractionType.SPECULAR
        np.testing.assert_allclose(paths.interaction_points[t, 0, p, 0], expected_point,
                                   atol=GEOMETRY_ABS_M)
        np.testing.assert_allclose(paths.virtual_anchor[t, 0, p], image, atol=GEOMETRY_ABS_M)
        length = SPEED_OF_LIGHT * paths.tau[t, 0, p]
        assert abs(length - np.linalg.norm(image - u)) < GEOMETRY_ABS_M


@pytest.mark.parametrize("first, second", [(("wall_north", 10.0), ("wall_south", -10.0)),
                                           (("wall_south", -10.0), ("wall_north", 10.0))])
def test_double_bounce_matches_image_method(
    two_walls: tuple[Simulation, np.ndarray],
    first: tuple[str, float],
    second: tuple[str, float],
) -> None:
    sim, ue = two_walls
    paths = sim.run.paths
    for t, u in enumerate(ue):
        p = _path_by_objects(sim, t, (first[0], second[0]))
        image1 = mirror(BS, first[1])
        image2 = mirror(image1, second[1])
        point2 = hit_plane(image2, u, second[1])
        point1 = hit_plane(image1, point2, first[1])
        np.testing.assert_allclose(paths.interaction_points[t, 0, p, 0], point1,
                                   atol=GEOMETRY_ABS_M)
        np.testing.assert_allclose(paths.interaction_points[t, 0, p, 1], point2,
                                   atol=GEOMETRY_ABS_M)
        np.testing.assert_allclose(paths.virtual_anchor[t, 0, p], image2, atol=GEOMETRY_ABS_M)
        length = SPEED_OF_LIGHT * paths.tau[t, 0, p]
        assert abs(length - np.linalg.norm(image2 - u)) < GEOMETRY_ABS_M


def test_two_walls_path_inventory(two_walls: tuple[Simulation, np.ndarray]) -> None:
    """Depth ≤ 2 between two parallel walls: LOS, 2 single and 2 double bounces."""
    sim, ue = two_walls
    paths = sim.run.paths
    for t in range(len(ue)):
        depths = sorted(paths.depth[t, 0][paths.valid[t, 0]].tolist())
        assert depths == [0, 1, 1, 2, 2]


def test_los_doppler(tmp_path: Path) -> None:
    scene = write_obj(tmp_path / "far.obj", {"speck": ((1000, 0, 0), (0.1, 0, 0), (0, 0.1, 0))})
    trajectory = {"waypoints": [[-30.0, 8.0, 1.5], [30.0, -4.0, 1.5]], "speed_mps": 25.0,
                  "sample_period_s": 0.2}
    sim = run_config(make_config(scene, trajectory=trajectory, tracing={"max_depth": 0}), tmp_path)
    drive, paths = sim.run.drive, sim.run.paths
    towards_bs = BS - drive.position
    towards_bs /= np.linalg.norm(towards_bs, axis=1, keepdims=True)
    expected = np.einsum("ti,ti->t", drive.velocity, towards_bs) / WAVELENGTH
    assert np.all(np.abs(expected) > 100.0)  # a meaningful check, not ~0
    np.testing.assert_allclose(paths.doppler[:, 0, 0], expected, rtol=DOPPLER_REL)


def test_steering_consistency_with_estimator_forward_model(tmp_path: Path) -> None:
    """Twin LOS CFR (Sionna's synthetic arrays) = estimators' closed-form forward model.

    Pins the angle, array, orientation and OFDM-phase conventions for every estimator.
    """
    scene = write_obj(tmp_path / "far.obj", {"speck": ((1000, 0, 0), (0.1, 0, 0), (0, 0.1, 0))})
    # Yaw only: with pitch or roll, Sionna's polarization mismatch (a real effect the
    # scalar forward model does not include) changes the gain by ~1%.
    bs_orientation = np.array([0.5, 0.0, 0.0])
    ue_orientation = np.array([-1.2, 0.0, 0.0])
    ue = np.array([[12.0, 4.0, 1.5], [30.0, -11.0, 1.0], [7.0, 9.0, 2.5]])
    config = make_config(
        scene, ue_positions=ue, bs_orientation=bs_orientation, ue_orientation=ue_orientation,
        bs_array={"rows": 1, "cols": 16}, ue_array={"rows": 2, "cols": 2},
        tracing={"max_depth": 0},
        radio={"frequency_hz": FREQ, "bandwidth_hz": 400e6, "num_subcarriers": 64},
    )
    run = run_config(config, tmp_path).run
    tx_pos = run.bs_array.world_positions(bs_orientation)
    rx_pos = run.ue_array.world_positions(ue_orientation)
    assert run.cfr.shape == (3, 1, 4, 16, 64)
    for t, u in enumerate(ue):
        d = float(np.linalg.norm(u - BS))
        gain = WAVELENGTH / (4 * np.pi * d) * np.exp(-2j * np.pi * d / WAVELENGTH)
        aod = np.stack(direction_angles(u - BS), axis=-1)[None]
        aoa = np.stack(direction_angles(BS - u), axis=-1)[None]
        model = mimo_ofdm_channel(
            [gain], [d / SPEED_OF_LIGHT], aod, aoa, tx_element_positions=tx_pos,
            rx_element_positions=rx_pos, wavelength=WAVELENGTH, frequencies=run.frequencies,
        )
        twin = run.cfr[t, 0]
        rel = np.linalg.norm(twin - model) / np.linalg.norm(model)
        assert rel < STEERING_REL, f"snapshot {t}: relative error {rel:.2e}"
        # The recorded angles are the geometric ones too.
        np.testing.assert_allclose(run.paths.aod[t, 0, 0], aod[0], atol=ANGLE_FLOAT32_ABS)
        np.testing.assert_allclose(run.paths.aoa[t, 0, 0], aoa[0], atol=ANGLE_FLOAT32_ABS)


def test_user_glb_mesh_end_to_end_run_file(tmp_path: Path) -> None:
    """A user's GLB (y-up, centimetres) + YAML → `twin simulate` → run file whose
    single-bounce points and virtual anchors match the image method and name the wall."""
    import subprocess
    import sys

    import trimesh
    import yaml

    from twin.runfile import read_run

    def y_up_cm(corner: tuple[float, float, float], u: tuple[float, float, float],
                v: tuple[float, float, float]) -> trimesh.Trimesh:
        c, du, dv = (np.asarray(a, float) for a in (corner, u, v))
        z_up = np.array([c, c + du, c + du + dv, c + dv])
        y_up = np.stack([z_up[:, 0], z_up[:, 2], -z_up[:, 1]], axis=-1) * 100.0
        return trimesh.Trimesh(y_up, [[0, 1, 2], [0, 2, 3]], process=False)

    glb = tmp_path / "building.glb"
    trimesh.Scene({
        "facade_east": y_up_cm((-100, 10, -50), (200, 0, 0), (0, 0, 100)),
        "facade_west": y_up_cm((-100, -10, -50), (200, 0, 0), (0, 0, 100)),
    }).export(str(glb))
    ue = np.array([[20.0, 2.0, 1.5], [-15.0, 5.0, 2.0]])
    config = make_config(glb.name, ue_positions=ue, tracing={"max_depth": 1})
    config["scene"].update({"unit_scale": 0.01, "up_axis": "y"})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    twin = Path(sys.executable).parent / "twin"
    done = subprocess.run([str(twin), "simulate", "run.yaml", "-o", "run.h5", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    run = read_run(tmp_path / "run.h5")
    p = run.paths
    names = p.interaction_object_names()
    for wall, plane_y in (("facade_east", 10.0), ("facade_west", -10.0)):
        for t, u in enumerate(ue):
            single = p.valid[t, 0] & (p.depth[t, 0] == 1)
            hits = np.flatnonzero(single & (names[t, 0, :, 0] == wall))
            assert hits.size == 1, f"{wall} at snapshot {t}"
            k = hits[0]
            image = mirror(BS, plane_y)
            np.testing.assert_allclose(p.interaction_points[t, 0, k, 0],
                                       hit_plane(image, u, plane_y), atol=GEOMETRY_ABS_M)
            np.testing.assert_allclose(p.virtual_anchor[t, 0, k], image, atol=GEOMETRY_ABS_M)
