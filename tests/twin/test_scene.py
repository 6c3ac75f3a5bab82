"""Scene loading: mesh formats, units and axes, input errors, materials, identity, inside test."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh

from tests.conftest import make_config, run_config, write_obj
from tests.tolerances import (
    FLOAT32_ABS,
    FLOAT32_REL,
    FLOAT64_ABS,
    MESH_IO_ABS_M,
    SIONNA_VERTEX_M,
)
from twin.config import MaterialsConfig, SceneConfig
from twin.errors import TwinInputError
from twin.scene import (
    BUNDLED_DIR,
    MATERIAL_THICKNESS_M,
    TwinScene,
    TwinWarning,
    check_material,
    load_twin_scene,
    read_mesh_objects,
    scene_sha256,
    write_mitsuba_scene,
)

FREQ = 28.0e9
OFFICE_XML = BUNDLED_DIR / "office_floor" / "office_floor.xml"

# The three objects of the multi-object test scene: name -> (bounds [2, 3], triangles).
EXPECTED = {
    "box_a": (np.array([[9.5, 19.0, 0.0], [10.5, 21.0, 3.0]]), 12),
    "box_b": (np.array([[-6.0, 3.0, 0.0], [-4.0, 5.0, 2.0]]), 12),
    "wall_q": (np.array([[0.0, -10.0, 0.0], [4.0, -10.0, 5.0]]), 2),
}
UNION_BOUNDS = np.array([[-6.0, -10.0, 0.0], [10.5, 21.0, 5.0]])
MULTI_OBJECT_FORMATS = ("obj", "glb", "gltf")
SINGLE_MESH_FORMATS = ("ply", "stl", "off")


def _multi_object_scene() -> trimesh.Scene:
    """Two named boxes and a named vertical quad at distinct, known places."""
    scene = trimesh.Scene()
    for name, (bounds, _) in EXPECTED.items():
        lo, hi = bounds
        if name == "wall_q":
            mesh = trimesh.Trimesh(
                [lo, [hi[0], lo[1], lo[2]], hi, [lo[0], lo[1], hi[2]]],
                [[0, 1, 2], [0, 2, 3]],
                process=False,
            )
        else:
            mesh = trimesh.creation.box(extents=hi - lo)
            mesh.apply_translation((lo + hi) / 2)
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    return scene


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test scene exported by trimesh to every supported mesh format (one dir each)."""
    out = {}
    for ext in MULTI_OBJECT_FORMATS + SINGLE_MESH_FORMATS:
        path = tmp_path_factory.mktemp(ext) / f"scene.{ext}"
        scene = _multi_object_scene()
        if ext == "off":  # trimesh exports OFF from a single mesh only
            scene.to_mesh().export(str(path))
        else:
            scene.export(str(path))
        out[ext] = path
    return out


def _names(scene: TwinScene) -> list[str]:
    return sorted(n for n in scene.object_names if n)


def _mesh(scene: TwinScene, name: str) -> trimesh.Trimesh:
    return scene.object_mesh(scene.object_names.index(name))


def _material(scene: TwinScene, name: str) -> str:
    return str(scene.sionna_scene.objects[name].radio_material.name)


def _load(
    file: str | Path, base_dir: Path, frequency_hz: float = FREQ, **kwargs: object
) -> TwinScene:
    config = SceneConfig(file=str(file), **kwargs)  # type: ignore[arg-type]
    return load_twin_scene(config, base_dir, frequency_hz)


def _input_error(call: object) -> str:
    """Run ``call()``, expect a TwinInputError, return its (single-line) message."""
    with pytest.raises(TwinInputError) as info:
        call()  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize("ext", MULTI_OBJECT_FORMATS)
def test_read_mesh_objects_keeps_object_names_and_coordinates(
    exported: dict[str, Path], ext: str
) -> None:
    """OBJ/GLB/GLTF keep one named object per input object, coordinates unchanged."""
    objects = read_mesh_objects(exported[ext])
    assert sorted(objects) == sorted(EXPECTED)
    for name, (bounds, num_faces) in EXPECTED.items():
        mesh, _material_name = objects[name]
        np.testing.assert_allclose(mesh.bounds, bounds, rtol=0, atol=MESH_IO_ABS_M)
        assert len(mesh.faces) == num_faces


@pytest.mark.parametrize("ext", SINGLE_MESH_FORMATS)
def test_read_mesh_objects_single_mesh_formats(exported: dict[str, Path], ext: str) -> None:
    """PLY/STL/OFF hold one mesh: a single object named after the file, all triangles."""
    path = exported[ext]
    objects = read_mesh_objects(path)
    assert list(objects) == [path.name]
    mesh, _material_name = objects[path.name]
    np.testing.assert_allclose(mesh.bounds, UNION_BOUNDS, rtol=0, atol=FLOAT32_ABS)
    assert len(mesh.faces) == sum(n for _, n in EXPECTED.values())


@pytest.mark.parametrize("ext", MULTI_OBJECT_FORMATS + SINGLE_MESH_FORMATS)
def test_load_twin_scene_from_mesh_file(exported: dict[str, Path], ext: str) -> None:
    """The whole chain to Sionna keeps names, geometry and the default material."""
    path = exported[ext]
    scene = _load(path, path.parent)
    if ext in MULTI_OBJECT_FORMATS:
        expected = {name: bounds for name, (bounds, _) in EXPECTED.items()}
    else:
        expected = {path.name: UNION_BOUNDS}
    assert _names(scene) == sorted(expected)
    assert sorted(scene.sionna_scene.objects) == sorted(expected)
    for name, bounds in expected.items():
        np.testing.assert_allclose(_mesh(scene, name).bounds, bounds, rtol=0, atol=SIONNA_VERTEX_M)
        assert _material(scene, name) == "itu_concrete"
    np.testing.assert_allclose(scene.bounding_box(), UNION_BOUNDS, rtol=0, atol=SIONNA_VERTEX_M)
    assert scene.source == str(path)
    assert scene.sha256 == scene_sha256(path)


def test_object_names_are_sanitized(tmp_path: Path) -> None:
    """Characters Mitsuba ids/file names cannot hold become underscores."""
    path = write_obj(tmp_path / "names.obj", {"my wall #2": ((0, 0, 0), (1, 0, 0), (0, 0, 1))})
    assert list(read_mesh_objects(path)) == ["my_wall__2"]
    assert _names(_load(path, tmp_path)) == ["my_wall__2"]


# ------------------------------------------------------------ units and axes


def test_unit_scale_converts_millimetres_to_metres(tmp_path: Path) -> None:
    """A mesh drawn in millimetres with unit_scale 0.001 has metre coordinates."""
    path = write_obj(
        tmp_path / "mm.obj",
        {"slab": ((1000.0, 2000.0, 0.0), (4000.0, 0.0, 0.0), (0.0, 0.0, 2500.0))},
    )
    expected = np.array([[1.0, 2.0, 0.0], [5.0, 2.0, 2.5]])
    mesh, _ = read_mesh_objects(path, unit_scale=0.001)["slab"]
    np.testing.assert_allclose(mesh.bounds, expected, rtol=0, atol=FLOAT64_ABS)
    scene = _load(path, tmp_path, unit_scale=0.001)
    np.testing.assert_allclose(_mesh(scene, "slab").bounds, expected, rtol=0, atol=SIONNA_VERTEX_M)
    # Without the scale, the same file is read as metres.
    np.testing.assert_allclose(read_mesh_objects(path)["slab"][0].bounds, expected * 1000)


@pytest.fixture(scope="module")
def y_up_box(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A y-up glTF box: x in [0, 2], height y in [0, 3], depth z in [-7, -3]."""
    box = trimesh.creation.box(extents=(2.0, 3.0, 4.0))
    box.apply_translation((1.0, 1.5, -5.0))
    scene = trimesh.Scene()
    scene.add_geometry(box, node_name="tower", geom_name="tower")
    path = tmp_path_factory.mktemp("yup") / "tower.gltf"
    scene.export(str(path))
    return path, np.asarray(box.vertices, dtype=np.float64)


def test_up_axis_y_maps_to_z_up(y_up_box: tuple[Path, np.ndarray]) -> None:
    """up_axis y maps every vertex (x, y, z) -> (x, -z, y): the top at y=3 ends at z=3."""
    path, vertices = y_up_box
    mesh, _ = read_mesh_objects(path, up_axis="y")["tower"]
    mapped = np.column_stack([vertices[:, 0], -vertices[:, 2], vertices[:, 1]])
    np.testing.assert_allclose(mesh.vertices, mapped, rtol=0, atol=FLOAT32_ABS)
    np.testing.assert_allclose(mesh.bounds, [[0.0, 3.0, 0.0], [2.0, 7.0, 3.0]], atol=FLOAT32_ABS)
    scene = _load(path, path.parent, up_axis="y")
    tower = _mesh(scene, "tower").bounds
    np.testing.assert_allclose(tower, [[0.0, 3.0, 0.0], [2.0, 7.0, 3.0]], atol=SIONNA_VERTEX_M)


def test_up_axis_y_and_unit_scale_combine(y_up_box: tuple[Path, np.ndarray]) -> None:
    """Scale and axis change compose: (x, y, z) -> s * (x, -z, y)."""
    path, _ = y_up_box
    mesh, _ = read_mesh_objects(path, unit_scale=0.5, up_axis="y")["tower"]
    np.testing.assert_allclose(mesh.bounds, [[0.0, 1.5, 0.0], [1.0, 3.5, 1.5]], atol=FLOAT32_ABS)


# ------------------------------------------------------------------- errors


TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
PLY_HEADER = (
    "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
)


@pytest.mark.parametrize(
    "file_name, content, expected",
    [
        ("nan.obj", "o bad_wall\nv nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "'bad_wall' has NaN/inf"),
        ("inf.obj", "o bad_wall\nv 0 inf 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "'bad_wall' has NaN/inf"),
        ("nan.ply", PLY_HEADER + "0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n", "has NaN/inf"),
        ("no_faces.obj", "o points_only\n" + TRIANGLE, "empty mesh"),
        ("empty.obj", "", "empty mesh"),
        ("garbage.ply", "this is not a mesh\x00\x01\x02\n", "unreadable mesh"),
        ("garbage.glb", "\x7f\x00 definitely not glTF " * 8, "unreadable mesh"),
        ("garbage.off", "hello world\n", "unreadable mesh"),
    ],
    ids=["nan-obj", "inf-obj", "nan-ply", "no-faces", "empty-file", "garbage-ply",
         "garbage-glb", "garbage-off"],
)
def test_bad_mesh_file_is_a_one_line_input_error(
    tmp_path: Path, file_name: str, content: str, expected: str
) -> None:
    """Broken meshes raise TwinInputError naming the file (read directly or via the loader)."""
    path = tmp_path / file_name
    path.write_text(content)
    for call in (lambda: read_mesh_objects(path), lambda: _load(path, tmp_path)):
        message = _input_error(call)
        assert str(path) in message
        assert expected in message


def test_face_index_out_of_range_is_an_input_error(tmp_path: Path) -> None:
    """A PLY face referencing a vertex that does not exist is a TwinInputError."""
    path = tmp_path / "bad_index.ply"
    path.write_text(PLY_HEADER + "0 0 0\n1 0 0\n0 1 0\n3 0 1 9\n")
    message = _input_error(lambda: read_mesh_objects(path))
    assert str(path) in message


def test_missing_file(tmp_path: Path) -> None:
    """A scene path that does not exist names the path."""
    message = _input_error(lambda: _load("nowhere/scene.obj", tmp_path))
    assert message == "scene.file: nowhere/scene.obj: file not found"


def test_unsupported_extension(tmp_path: Path) -> None:
    """A file that is neither XML nor a mesh format lists the formats accepted."""
    path = tmp_path / "scene.txt"
    path.write_text("v 0 0 0\n")
    message = _input_error(lambda: _load(path, tmp_path))
    assert str(path) in message
    assert "'.txt'" in message
    assert all(ext in message for ext in (".xml", ".obj", ".ply", ".glb", ".gltf", ".stl", ".off"))


@pytest.mark.parametrize(
    "file, available",
    [
        ("builtin:no_such_scene", ["builtin:simple_street_canyon", "builtin:munich"]),
        ("bundled:no_such_scene", ["bundled:office_floor", "bundled:street"]),
    ],
)
def test_unknown_named_scene_lists_available(
    tmp_path: Path, file: str, available: list[str]
) -> None:
    """An unknown builtin:/bundled: name is rejected with the names that exist."""
    message = _input_error(lambda: _load(file, tmp_path))
    assert f"unknown scene '{file}'" in message
    assert all(name in message for name in available)


@pytest.mark.parametrize(
    "kwargs", [{"unit_scale": 0.001}, {"up_axis": "y"}], ids=["unit_scale", "up_axis"]
)
def test_unit_scale_and_up_axis_rejected_for_xml(tmp_path: Path, kwargs: dict[str, object]) -> None:
    """unit_scale/up_axis only apply to mesh files, not to Mitsuba XML scenes."""
    message = _input_error(lambda: _load("bundled:office_floor", tmp_path, **kwargs))
    assert message.startswith("scene.unit_scale/up_axis:")
    assert "XML" in message


@pytest.mark.parametrize(
    "materials, where",
    [
        ({"default": "itu_unobtainium"}, "scene.materials.default"),
        ({"overrides": {"glass*": "glass"}}, "scene.materials.overrides['glass*']"),
    ],
    ids=["default", "override"],
)
def test_unknown_material_lists_valid_names(
    tmp_path: Path, materials: dict[str, object], where: str
) -> None:
    """An unknown material names the config key and lists the valid ITU names."""
    config = SceneConfig(file="bundled:office_floor", materials=MaterialsConfig(**materials))
    message = _input_error(lambda: load_twin_scene(config, tmp_path, FREQ))
    assert message.startswith(f"{where}: unknown material")
    assert "itu_concrete" in message
    assert "itu_glass" in message


def test_material_outside_its_frequency_range(tmp_path: Path) -> None:
    """itu_floorboard starts at 50 GHz: at 28 GHz it is rejected with its range."""
    config = SceneConfig(
        file="bundled:office_floor", materials=MaterialsConfig(default="itu_floorboard")
    )
    message = _input_error(lambda: load_twin_scene(config, tmp_path, FREQ))
    assert message.startswith("scene.materials.default: material 'itu_floorboard'")
    assert re.search(r"defined for 50-\d+ GHz, not 28 GHz", message)
    # Inside its range it is accepted.
    check_material("itu_floorboard", 60e9, "scene.materials.default")


def test_sionna_rejects_frequencies_between_itu_ranges() -> None:
    """Sionna's ITU tables have gaps (brick: 1-40 and 110-330 GHz)."""
    from sionna.rt.radio_materials.itu import itu_material

    itu_material("brick", 30e9)
    with pytest.raises(ValueError, match="not defined"):
        itu_material("brick", 60e9)


def test_material_in_a_gap_of_its_frequency_ranges(tmp_path: Path) -> None:
    """itu_brick is undefined at 60 GHz (between 40 and 110 GHz): one-line input error."""
    config = SceneConfig(
        file="bundled:office_floor", materials=MaterialsConfig(default="itu_brick")
    )
    message = _input_error(lambda: load_twin_scene(config, tmp_path, 60e9))
    assert "itu_brick" in message


# -------------------------------------------------------- degenerate faces


def test_degenerate_faces_are_dropped_with_a_warning(tmp_path: Path) -> None:
    """Zero-area triangles are removed with a TwinWarning naming the object; the rest stay."""
    path = tmp_path / "degenerate.obj"
    path.write_text(
        "o wall_a\n" + TRIANGLE + "v 2 2 2\nf 1 2 3\nf 1 2 1\nf 1 4 4\n"
        "o wall_b\nv 0 0 5\nv 1 0 5\nv 0 1 5\nf 5 6 7\n"
    )
    with pytest.warns(TwinWarning, match=r"object 'wall_a': dropped 2 degenerate face") as record:
        objects = read_mesh_objects(path)
    assert not [w for w in record if "wall_b" in str(w.message)]
    wall_a, _ = objects["wall_a"]
    np.testing.assert_array_equal(wall_a.vertices, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert wall_a.faces.tolist() == [[0, 1, 2]]
    assert len(objects["wall_b"][0].faces) == 1
    with pytest.warns(TwinWarning, match="wall_a"):
        scene = _load(path, tmp_path)
    assert _names(scene) == ["wall_a", "wall_b"]
    assert len(_mesh(scene, "wall_a").faces) == 1


# ---------------------------------------------------------------- materials


def test_override_glob_assigns_matching_objects_only(tmp_path: Path) -> None:
    """``glass*`` gets itu_glass; every other object gets the default."""
    quad = ((0, 0, 0), (1, 0, 0), (0, 0, 1))
    path = write_obj(tmp_path / "facade.obj", {
        "glass_front": quad,
        "glass_back": ((0, 5, 0), (1, 0, 0), (0, 0, 1)),
        "wall_glass": ((0, 9, 0), (1, 0, 0), (0, 0, 1)),
    })
    config = SceneConfig(
        file=str(path),
        materials=MaterialsConfig(default="itu_brick", overrides={"glass*": "itu_glass"}),
    )
    scene = load_twin_scene(config, tmp_path, FREQ)
    assert {n: _material(scene, n) for n in _names(scene)} == {
        "glass_back": "itu_glass", "glass_front": "itu_glass", "wall_glass": "itu_brick",
    }
    glass = scene.sionna_scene.objects["glass_front"].radio_material
    assert glass.itu_type == "glass"
    assert float(glass.thickness[0]) == pytest.approx(MATERIAL_THICKNESS_M["glass"])


def test_material_named_in_mesh_file_is_used(tmp_path: Path) -> None:
    """A glTF material named like an ITU material is kept; other names get the default."""
    scene = trimesh.Scene()
    for name, material, x in (("pane", "itu_glass", 0.0), ("crate", "red_paint", 5.0)):
        box = trimesh.creation.box(extents=(1, 1, 1))
        box.apply_translation((x, 0, 0.5))
        box.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(name=material)
        )
        scene.add_geometry(box, node_name=name, geom_name=name)
    path = tmp_path / "materials.glb"
    scene.export(str(path))
    loaded = _load(path, tmp_path)
    assert _material(loaded, "pane") == "itu_glass"
    assert _material(loaded, "crate") == "itu_concrete"


def test_overrides_apply_to_xml_scenes(tmp_path: Path) -> None:
    """Overrides re-assign XML scene objects by glob; the others keep the XML's material."""
    plain = _load("bundled:office_floor", tmp_path)
    assert _material(plain, "window_south") == "itu_glass"
    assert _material(plain, "wall_outer_north") == "itu_concrete"
    config = SceneConfig(
        file="bundled:office_floor",
        materials=MaterialsConfig(overrides={"window_*": "itu_metal", "wall_outer_*": "itu_brick"}),
    )
    scene = load_twin_scene(config, tmp_path, FREQ)
    assert _material(scene, "window_south") == "itu_metal"
    for wall in ("wall_outer_north", "wall_outer_west", "wall_outer_east"):
        assert _material(scene, wall) == "itu_brick"
    assert _material(scene, "glass_meeting_room") == "itu_glass"
    assert _material(scene, "desk_0") == "itu_wood"
    brick = scene.sionna_scene.objects["wall_outer_north"].radio_material
    assert brick.itu_type == "brick"
    assert float(brick.thickness[0]) == pytest.approx(MATERIAL_THICKNESS_M["brick"])


@pytest.mark.parametrize("source", ["xml", "mesh"])
def test_scene_material_undefined_at_frequency_is_an_input_error(
    tmp_path: Path, source: str
) -> None:
    """itu_metal is defined up to 100 GHz; a scene using it at 150 GHz is an input error."""
    if source == "xml":
        file = "bundled:office_floor"  # cabinets are itu_metal
    else:
        box = trimesh.creation.box(extents=(1, 1, 1))
        box.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(name="itu_metal")
        )
        scene = trimesh.Scene()
        scene.add_geometry(box, node_name="cabinet", geom_name="cabinet")
        file = str(tmp_path / "cabinet.glb")
        scene.export(file)
    _input_error(lambda: _load(file, tmp_path, frequency_hz=150e9))


# ------------------------------------------------- bundled and built-in scenes


@pytest.mark.parametrize(
    "file, expected",
    [
        ("bundled:office_floor", {"floor", "ceiling", "glass_meeting_room", "desk_0",
                                  "window_south", "wall_outer_north", "cabinet_0"}),
        ("bundled:street", {"ground", "building_north_0", "building_south_3"}),
        ("builtin:simple_street_canyon", {"floor", "building_1", "building_6"}),
    ],
)
def test_named_scenes_load_with_per_object_names(
    tmp_path: Path, file: str, expected: set[str]
) -> None:
    """Bundled and built-in scenes keep one Sionna object per shape, by name."""
    scene = _load(file, tmp_path)
    names = _names(scene)
    assert expected <= set(names)
    assert len(names) == len(set(names)) == len(scene.sionna_scene.objects)
    assert scene.source == file
    assert re.fullmatch(r"[0-9a-f]{64}", scene.sha256)
    assert _load(file, tmp_path).sha256 == scene.sha256


def test_office_object_count_matches_xml_shapes(tmp_path: Path) -> None:
    """No shape merging: one object per <shape> in the office XML."""
    shapes = OFFICE_XML.read_text().count("<shape ")
    assert len(_names(_load("bundled:office_floor", tmp_path))) == shapes == 32


def test_scene_sha256_follows_referenced_meshes(tmp_path: Path) -> None:
    """The digest covers the XML and every PLY it references."""
    copy = tmp_path / "office_floor"
    shutil.copytree(OFFICE_XML.parent, copy)
    xml = copy / "office_floor.xml"
    original = scene_sha256(xml)
    assert original == scene_sha256(OFFICE_XML) == _load("bundled:office_floor", tmp_path).sha256
    mesh = copy / "meshes" / "desk_0.ply"
    data = bytearray(mesh.read_bytes())
    data[-1] ^= 0x01
    mesh.write_bytes(bytes(data))
    changed = scene_sha256(xml)
    assert re.fullmatch(r"[0-9a-f]{64}", changed)
    assert changed != original
    data[-1] ^= 0x01
    mesh.write_bytes(bytes(data))
    assert scene_sha256(xml) == original


def test_scene_sha256_follows_gltf_buffers(tmp_path: Path) -> None:
    """Moving a vertex in a .gltf's external buffer changes the geometry and so the digest."""
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    scene = trimesh.Scene()
    scene.add_geometry(box, node_name="box", geom_name="box")
    path = tmp_path / "box.gltf"
    scene.export(str(path))
    gltf = json.loads(path.read_text())
    positions = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = gltf["bufferViews"][positions["bufferView"]]
    buffer = tmp_path / gltf["buffers"][view["buffer"]]["uri"]
    before = scene_sha256(path)
    data = bytearray(buffer.read_bytes())
    start = view.get("byteOffset", 0) + positions.get("byteOffset", 0)
    data[start:start + 4] = np.float32(-50.0).tobytes()  # x of vertex 0
    buffer.write_bytes(bytes(data))
    assert read_mesh_objects(path)["box"][0].bounds[0, 0] == -50.0  # the geometry did change
    assert scene_sha256(path) != before


# ------------------------------------------------------------------ inside


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> TwinScene:
    return _load("bundled:office_floor", tmp_path_factory.mktemp("office"))


def test_office_desk_is_a_closed_box(office: TwinScene) -> None:
    """desk_0: a watertight 1.6 x 0.8 x 0.75 box centred at (4.0, 2.5, 0.375)."""
    desk = _mesh(office, "desk_0")
    assert desk.is_watertight
    np.testing.assert_allclose(desk.bounds.mean(axis=0), [4.0, 2.5, 0.375], atol=SIONNA_VERTEX_M)
    np.testing.assert_allclose(np.ptp(desk.bounds, axis=0), [1.6, 0.8, 0.75], atol=SIONNA_VERTEX_M)
    assert not _mesh(office, "floor").is_watertight
    assert not _mesh(office, "wall_outer_north").is_watertight


def test_objects_containing_ignores_open_surfaces(office: TwinScene) -> None:
    """Points in free space or lying on single-quad walls/floor are inside nothing."""
    points = [
        [3.0, 7.0, 1.2],    # corridor
        [3.0, 7.0, 0.0],    # on the floor plane
        [5.0, 14.0, 1.5],   # on wall_outer_north
        [15.0, 8.0, 1.5],   # on glass_meeting_room
        [10.0, 4.0, 3.0],   # on the ceiling
    ]
    assert office.objects_containing(points) == [""] * len(points)


def test_objects_containing_ignores_open_box(tmp_path: Path) -> None:
    """A box missing its lid has no inside, even for a point within its bounds."""
    box = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    lid = box.face_normals[:, 2] > 0.5
    open_box = trimesh.Trimesh(box.vertices, box.faces[~lid], process=False)
    assert not open_box.is_watertight
    path = tmp_path / "open_box.obj"
    trimesh.Scene({"open_box": open_box}).export(str(path))
    scene = _load(path, tmp_path)
    assert _names(scene) == ["open_box"]
    assert scene.objects_containing([[0.0, 0.0, 0.0], [0.5, -0.5, 0.9]]) == ["", ""]


def test_objects_containing_flags_points_inside_closed_objects(office: TwinScene) -> None:
    """Points inside desk_0 and cabinet_0 are named; a corridor point is not."""
    points = [[4.0, 2.5, 0.375], [0.4, 4.5, 1.0], [3.0, 7.0, 1.2], [4.0, 2.5, 0.8]]
    assert office.objects_containing(points) == ["desk_0", "cabinet_0", "", ""]


def test_simulation_flags_ue_inside_desk(tmp_path: Path) -> None:
    """A UE inside desk_0 is flagged in the run and warned about; one in the corridor is not."""
    config = make_config(
        OFFICE_XML, bs_position=(1.0, 7.0, 2.6),
        ue_positions=[[4.0, 2.5, 0.3], [3.0, 7.0, 1.2]], tracing={"max_depth": 1},
    )
    # Recorded rather than pytest.warns: an exception inside pytest.warns becomes "DID NOT WARN".
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        sim = run_config(config, tmp_path)
    messages = [str(w.message) for w in record if issubclass(w.category, TwinWarning)]
    assert [m for m in messages if "inside closed object(s) desk_0" in m], messages
    assert sim.run.ue_inside.tolist() == [True, False]
    assert sim.run.ue_inside_object == ("desk_0", "")


# ----------------------------------------------------------- XML round trip


def test_write_mitsuba_scene_round_trip(tmp_path: Path) -> None:
    """Named meshes written as Mitsuba XML load back with their names, materials, geometry."""
    crate = trimesh.creation.box(extents=(1.0, 2.0, 0.5))
    crate.apply_translation((3.0, -1.0, 0.25))
    pane = trimesh.Trimesh(
        [[0, 4, 0], [2, 4, 0], [2, 4, 3], [0, 4, 3]], [[0, 1, 2], [0, 2, 3]], process=False
    )
    out_dir = tmp_path / "roundtrip"
    xml = write_mitsuba_scene(
        {"crate": crate, "pane": pane}, {"crate": "itu_wood", "pane": "itu_glass"}, out_dir
    )
    assert xml == out_dir / "roundtrip.xml"
    assert (out_dir / "meshes" / "crate.ply").is_file()
    assert (out_dir / "meshes" / "pane.ply").is_file()
    scene = _load(xml, tmp_path)
    assert _names(scene) == ["crate", "pane"]
    for name, mesh, itu_type in (("crate", crate, "wood"), ("pane", pane, "glass")):
        material = scene.sionna_scene.objects[name].radio_material
        assert material.name == f"itu_{itu_type}"
        assert material.itu_type == itu_type
        assert float(material.thickness[0]) == pytest.approx(MATERIAL_THICKNESS_M[itu_type])
        loaded = _mesh(scene, name)
        np.testing.assert_allclose(loaded.bounds, mesh.bounds, rtol=0, atol=SIONNA_VERTEX_M)
        assert len(loaded.faces) == len(mesh.faces)
        assert loaded.area == pytest.approx(mesh.area, rel=FLOAT32_REL)
    assert scene.sha256 == scene_sha256(xml)
