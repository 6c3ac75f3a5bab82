"""``twin render``: 3D maps of a run and its estimates (twin/maps/).

Contract: ``twin render run.h5 [est.h5] -o map.png|map.html`` draws the scene mesh
(semi-transparent; an indoor ceiling hidden), the BSs, the true and estimated UE tracks,
the true single-bounce interaction points coloured by what the algorithms made of them
(mapped / missed / unmodelled), each algorithm's estimated scatterers, a segment per
matched pair, the names of the objects holding true points and a "which walls were
mapped" table — with the matching of ``twin evaluate``, so that map and report agree.
The PNG comes from Open3D's offscreen renderer (matplotlib if it cannot run); the HTML is
one self-contained plotly page (no network at view time) with toggleable layers and a
snapshot slider, and it renders in a real browser (headless Chromium, WebGL in software)
without console errors. User errors are one ``error:`` line, exit code 2, no partial
file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import make_config, write_obj
from tests.tolerances import FLOAT64_ABS
from tests.twin.test_cli import assert_no_output, assert_one_line_error, run_twin
from twin.errors import TwinInputError
from twin.estimate import estimate_run
from twin.evaluate import evaluate
from twin.maps import data as map_data
from twin.maps import geometry as map_geometry
from twin.maps import png as map_png
from twin.maps import render as map_render
from twin.maps import style as map_style
from twin.runfile import read_run
from twin.scene import TwinWarning, scene_sha256
from twin.scoring import truth_sets

UE_POSITIONS = [(6.0, 1.0, 3.0), (9.0, -1.0, 3.0), (12.0, 2.0, 3.0), (15.0, 0.0, 3.0)]
T = len(UE_POSITIONS)
# An indoor box open to the south and west: its ceiling must be hidden on the map.
QUADS = {
    "wall_north": ((-5.0, 8.0, 0.0), (35.0, 0.0, 0.0), (0.0, 0.0, 4.0)),
    "wall_east": ((30.0, -8.0, 0.0), (0.0, 16.0, 0.0), (0.0, 0.0, 4.0)),
    "floor": ((-5.0, -8.0, 0.0), (35.0, 0.0, 0.0), (0.0, 16.0, 0.0)),
    "ceiling": ((-5.0, -8.0, 4.0), (35.0, 0.0, 0.0), (0.0, 16.0, 0.0)),
}
# Image checks. A blank (single-colour) image has zero spread; a drawn map has a white
# background plus mesh, points and lines: its pixel standard deviation is tens of grey
# levels and it holds hundreds of distinct colours. A colour "is drawn" when pixels lie
# within COLOUR_TOL (Euclidean, 0-255 RGB) of it: unlit markers keep their exact colour
# at their centres, antialiased edges blend with neighbours.
MIN_PIXEL_STD = 10.0
MIN_DISTINCT_COLOURS = 20
COLOUR_TOL = 40.0
MIN_COLOUR_PIXELS = 5

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # WebGL without a GPU: SwiftShader through ANGLE. Chromium's automatic software
    # fallback is deprecated; these opt in explicitly.
    "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
    "--window-size=1200,800",
]
BROWSER_TIMEOUT_S = 120.0
"""A generous limit on waiting for Chromium (it takes a few seconds); not an assertion."""


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A traced run in the open indoor box and a ``miso-ml`` estimate file of it."""
    tmp = tmp_path_factory.mktemp("render")
    write_obj(tmp / "room.obj", QUADS)
    config = make_config(
        "room.obj", bs_position=(0.0, 0.0, 3.0), ue_positions=UE_POSITIONS,
        bs_array={"rows": 1, "cols": 8}, tracing={"max_depth": 1, "refraction": False},
        seed=5,
    )
    (tmp / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    from twin.simulate import simulate_to_file

    simulate_to_file(tmp / "run.yaml", tmp / "run.h5")
    estimate_run(tmp / "run.h5", "miso-ml", tmp / "est.h5", snr_db=20.0)
    return {"run": tmp / "run.h5", "est": tmp / "est.h5", "scene": tmp / "room.obj"}


@pytest.fixture(scope="module")
def png(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The whole drive as a 480 x 300 PNG; (path, backend used)."""
    out = tmp_path_factory.mktemp("png") / "map.png"
    result = map_render.render_map(files["run"], files["est"], out, size=(480, 300))
    return out, result.backend


@pytest.fixture(scope="module")
def html(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "map.html"
    map_render.render_map(files["run"], files["est"], out)
    return out


def _copy_with_attrs(src: Path, dst: Path, **attrs: Any) -> Path:
    """A copy of an HDF5 file with some /config attributes replaced."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        f["config"].attrs.update(attrs)
    return dst


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"), dtype=np.float64)


def _colour_pixels(rgb: np.ndarray, colour: tuple[float, ...]) -> int:
    target = 255.0 * np.asarray(colour[:3])
    return int(np.sum(np.linalg.norm(rgb - target, axis=-1) < COLOUR_TOL))


def _assert_not_blank(rgb: np.ndarray) -> None:
    assert rgb.std() > MIN_PIXEL_STD, f"blank image (pixel std {rgb.std():.2f})"
    distinct = len(np.unique(rgb.reshape(-1, 3), axis=0))
    assert distinct > MIN_DISTINCT_COLOURS, f"only {distinct} distinct colours"


# ----------------------------------------------------------------------------- map data


def test_map_holds_truth_estimates_and_matches(files: dict[str, Path]) -> None:
    data = map_render.load_map(files["run"], files["est"])
    run = read_run(files["run"])
    p = run.paths
    for t in range(T):
        single = p.valid[t, 0] & (p.depth[t, 0] == 1)
        np.testing.assert_array_equal(
            np.sort(data.truth_points[t], axis=0),
            np.sort(p.interaction_points[t, 0][single][:, 0], axis=0))
        assert set(data.truth_objects[t]) <= set(QUADS)
        m = data.matches["miso-ml"][t]
        # miso-ml is 2D: matched in the horizontal plane, within the cut-off.
        d = np.linalg.norm(data.est_points["miso-ml"][t][m.pairs[:, 0], :2]
                           - data.truth_points[t][m.pairs[:, 1], :2], axis=1)
        np.testing.assert_allclose(d, m.distances, atol=FLOAT64_ABS)
        assert np.all(d < map_style.DEFAULT_CUTOFF_M)
    assert data.algorithms == ("miso-ml",) and data.dimensions == {"miso-ml": 2}
    assert sum(m.pairs.shape[0] for m in data.matches["miso-ml"]) > 0, "nothing matched"
    # The ceiling (above the devices, indoors) is hidden; the walls and floor are drawn.
    assert data.ceiling is not None and data.scene is not None
    assert data.ceiling.vertices[data.ceiling.faces][..., 2].min() > 3.0
    assert data.scene.vertices[data.scene.faces][..., 2].min(axis=1).max() < 3.3


def test_point_status_follows_the_matching(files: dict[str, Path]) -> None:
    """Mapped ⇔ matched; a 2D algorithm cannot represent floor and ceiling points
    (unmodelled); every other point it did not match is missed."""
    data = map_render.load_map(files["run"], files["est"], with_scene=False)
    statuses = set()
    for t in range(T):
        status = data.status(t)
        statuses |= set(status.tolist())
        horizontal = np.array([o in ("floor", "ceiling") for o in data.truth_objects[t]])
        np.testing.assert_array_equal(status == map_style.PointStatus.MAPPED,
                                      data.matched("miso-ml", t))
        np.testing.assert_array_equal(status == map_style.PointStatus.UNMODELLED, horizontal)
        np.testing.assert_array_equal(data.modelled["miso-ml"][t], ~horizontal)
    assert statuses == {map_style.PointStatus.MAPPED, map_style.PointStatus.MISSED,
                        map_style.PointStatus.UNMODELLED}
    truth_only = map_render.load_map(files["run"], with_scene=False)
    assert all(set(truth_only.status(t).tolist()) == {map_style.PointStatus.TRUTH}
               for t in range(T))


def test_wall_table_is_the_report_s(files: dict[str, Path]) -> None:
    """Over the whole drive, the map's "which walls were mapped" counts are those of
    ``twin evaluate`` (metrics.json: single-bounce map, per object)."""
    metrics, _ = evaluate(files["run"], [files["est"]])
    report = metrics["algorithms"]["miso-ml"]["maps"]["single_bounce"]
    data = map_render.load_map(files["run"], files["est"], with_scene=False)
    table = map_data.wall_table(data, range(T))
    truth = truth_sets(read_run(files["run"]))["single_bounce"]
    assert [r.name for r in table] == sorted({o for t in truth for o in t.objects})
    for row in table:
        matched, modelled = row.counts["miso-ml"]
        if modelled:
            assert report["per_object"][row.name] == {"truth": modelled, "matched": matched}
        else:
            assert row.name not in report["per_object"]
            assert row.name in ("floor", "ceiling")
    assert report["matched"] > 0  # the sums below compare something
    assert sum(r.counts["miso-ml"][0] for r in table) == report["matched"]
    assert sum(r.points - r.counts["miso-ml"][1] for r in table) == report["unmodelled"]


def test_wider_cutoff_matches_at_least_as_many(files: dict[str, Path]) -> None:
    narrow = map_render.load_map(files["run"], files["est"], cutoff=0.05, with_scene=False)
    wide = map_render.load_map(files["run"], files["est"], cutoff=5.0, with_scene=False)
    count = [sum(m.pairs.shape[0] for m in d.matches["miso-ml"]) for d in (narrow, wide)]
    assert count[1] > 0 and count[0] <= count[1]  # a comparison of two zeros proves nothing
    for data, cutoff in ((narrow, 0.05), (wide, 5.0)):
        assert all(np.all(m.distances < cutoff) for m in data.matches["miso-ml"])


def test_snapshot_layers_show_the_track_up_to_it(files: dict[str, Path]) -> None:
    data = map_render.load_map(files["run"], files["est"], with_scene=False)
    view = map_data.layers(data, 2)
    np.testing.assert_array_equal(view.ue_track, data.ue_position[:3])
    np.testing.assert_array_equal(view.ue_now, data.ue_position[2:3])
    np.testing.assert_array_equal(view.truth, data.truth_points[2])
    assert view.segments["miso-ml"].shape == (data.matches["miso-ml"][2].pairs.shape[0], 2, 3)
    np.testing.assert_array_equal(view.truth_status, data.status(2))
    assert set(view.walls) == set(data.truth_objects[2])
    for name, anchor in view.walls.items():  # each name sits on one of its own points
        mine = data.truth_points[2][np.array(data.truth_objects[2]) == name]
        assert np.min(np.linalg.norm(mine - anchor, axis=1)) == 0.0
    whole = map_data.layers(data, None)
    assert len(whole.truth) == sum(len(p) for p in data.truth_points)
    assert len(whole.truth_text) == len(whole.truth)


def test_split_ceiling_hides_named_ceiling_and_faces_above_devices() -> None:
    import trimesh

    box = trimesh.creation.box(extents=(10.0, 10.0, 3.0))
    box.apply_translation((0.0, 0.0, 1.5))
    slab = trimesh.creation.box(extents=(10.0, 10.0, 0.1))
    slab.apply_translation((0.0, 0.0, 2.95))
    devices = np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 1.5]])
    shown, hidden = map_geometry.split_ceiling([("room", box), ("Ceiling_tiles", slab)], devices)
    assert slab in hidden
    top = np.concatenate([m.vertices[m.faces][..., 2].min(axis=1) for m in hidden])
    assert top.min() > 2.0 + map_style.CLIP_ABOVE_DEVICES_M - 0.5  # box top faces and the slab
    assert all(m.vertices[m.faces][..., 2].min(axis=1).max() <= 2.3 for m in shown)
    # Outdoors (more than 3 m of geometry above the devices) nothing but 'ceiling*' hides.
    tall = trimesh.creation.box(extents=(10.0, 10.0, 30.0))
    shown, hidden = map_geometry.split_ceiling([("tower", tall)], devices)
    assert hidden == [] and len(shown) == 1


def test_crop_clips_a_huge_wall_to_the_drive_area() -> None:
    import trimesh

    half = 200.0  # a 400 m x 400 m wall in the plane y = 10 (as tests.conftest.wall_y)
    wall = trimesh.Trimesh(
        [[-half, 10, -half], [half, 10, -half], [half, 10, half], [-half, 10, half]],
        [[0, 1, 2], [0, 2, 3]], process=False)
    region = np.array([[-5.0, 0.0, 0.0], [25.0, 20.0, 4.0]])
    (cut,) = map_geometry.crop([wall], region)
    assert np.all(cut.vertices >= region[0] - FLOAT64_ABS)
    assert np.all(cut.vertices <= region[1] + FLOAT64_ABS)
    np.testing.assert_allclose(cut.area, 30.0 * 4.0, atol=FLOAT64_ABS * 1e3)
    normals = np.tile(wall.face_normals[:1], (len(cut.faces), 1))
    np.testing.assert_allclose(cut.face_normals, normals, atol=FLOAT64_ABS)  # winding kept
    inside = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    inside.apply_translation((1.0, 5.0, 2.0))
    far = inside.copy()
    far.apply_translation((100.0, 0.0, 0.0))
    assert map_geometry.crop([inside, far], region) == [inside]


def test_parse_camera_and_size() -> None:
    cam = map_render.parse_camera("1,2,3:4,5,6.5")
    np.testing.assert_array_equal(cam.position, [1, 2, 3])
    np.testing.assert_array_equal(cam.target, [4, 5, 6.5])
    for bad in ("1,2,3", "1,2:3,4,5", "a,b,c:1,2,3", "1,2,3:1,2,3", "1,2,nan:0,0,0"):
        with pytest.raises(TwinInputError, match="--camera"):
            map_render.parse_camera(bad)
    assert map_render.parse_size("640x480") == (640, 480)
    for bad in ("640", "10x10", "axb"):
        with pytest.raises(TwinInputError, match="--size"):
            map_render.parse_size(bad)


def test_auto_camera_frames_the_box_and_projection_is_a_pinhole() -> None:
    box = np.array([[-3.0, 2.0, 0.0], [27.0, 14.0, 3.5]])
    width, height = 900, 800
    cam = map_geometry.auto_camera(box, aspect=width / height)
    k, e = map_png.camera_matrices(cam, width, height)
    corners = np.array([[x, y, z] for x in box[:, 0] for y in box[:, 1] for z in box[:, 2]])
    pixels, ahead = map_png.project(corners, k, e)
    assert ahead.all()
    assert np.all((pixels >= 0) & (pixels <= (width, height)))
    # Tight: some corner reaches the edge of the 92 % frame exactly (a closed form).
    spread = np.max(np.abs(pixels - (width / 2, height / 2)) / ((width / 2, height / 2)))
    assert spread == pytest.approx(0.92, abs=FLOAT64_ABS)
    # The look-at point is the image centre; "up" in the world is up in the image.
    centre, _ = map_png.project(cam.target[None], k, e)
    np.testing.assert_allclose(centre[0], (width / 2, height / 2), atol=1e-9)
    above, _ = map_png.project(cam.target[None] + (0.0, 0.0, 1.0), k, e)
    assert above[0, 1] < height / 2
    # Right-handed view from the south-west: east (+x) is to the right.
    east, _ = map_png.project(cam.target[None] + (1.0, 0.0, 0.0), k, e)
    assert east[0, 0] > width / 2


# ----------------------------------------------------------------------------- scene file


def test_missing_scene_file_is_a_warning_and_the_map_has_no_mesh(
    files: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy_with_attrs(files["run"], tmp_path / "run.h5",
                           scene_source=str(tmp_path / "gone" / "room.obj"))
    with pytest.warns(TwinWarning, match="not found; drawing the map without the mesh"):
        data = map_render.load_map(run)
    assert data.scene is None and data.ceiling is None
    out = tmp_path / "map.html"
    with pytest.warns(TwinWarning):
        map_render.render_map(run, None, out)
    assert out.is_file() and "Mesh3d" not in out.read_text()[-200_000:]


def test_changed_scene_file_is_a_warning(files: dict[str, Path], tmp_path: Path) -> None:
    changed = tmp_path / "room.obj"
    changed.write_text(files["scene"].read_text() + "# edited after the run\n")
    assert scene_sha256(changed) != read_run(files["run"]).scene_sha256
    run = _copy_with_attrs(files["run"], tmp_path / "run.h5", scene_source=str(changed))
    with pytest.warns(TwinWarning, match="changed since the run was traced"):
        data = map_render.load_map(run)
    assert data.scene is not None


def test_unchanged_scene_loads_without_warning(files: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        data = map_render.load_map(files["run"], files["est"])
    assert data.scene is not None and data.scene_edges.shape[1:] == (2, 3)


# ----------------------------------------------------------------------------- PNG


def test_png_is_a_non_blank_open3d_render_of_the_requested_size(png: tuple[Path, str]) -> None:
    path, backend = png
    assert backend == "open3d", "Open3D's offscreen renderer did not run (see warnings)"
    rgb = _pixels(path)
    assert rgb.shape == (300, 480, 3)
    _assert_not_blank(rgb)
    for colour in (map_style.STATUS_STYLE[map_style.PointStatus.MAPPED][1],
                   map_style.ALGORITHM_RGB[0], map_style.BS_RGB):
        assert _colour_pixels(rgb, colour) >= MIN_COLOUR_PIXELS, f"colour {colour} not drawn"


def test_png_pixels_sit_where_the_camera_projects_them(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The BS, drawn with a given camera, lands on the pixel the camera model
    projects it to (the wall labels use that projection)."""
    data = map_render.load_map(files["run"], with_scene=False)
    width, height = 500, 400
    view_width = width - round(map_png.PANEL_FRACTION * width)
    cam = map_render.parse_camera("-5,-12,14:6,2,1")
    k, e = map_png.camera_matrices(cam, view_width, height)
    ((x, y),), _ = map_png.project(data.bs_position, k, e)
    out = tmp_path / "bs.png"
    map_render.render_map(files["run"], None, out, camera=cam, size=(width, height),
                    png_backend="open3d")
    rgb = _pixels(out)
    near = rgb[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].reshape(-1, 3)
    distance = np.linalg.norm(near - 255.0 * np.asarray(map_style.BS_RGB), axis=1)
    assert distance.min() < COLOUR_TOL, f"no BS colour at the projected pixel ({x:.0f}, {y:.0f})"


def test_png_matplotlib_backend(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    result = map_render.render_map(files["run"], files["est"], out, size=(400, 260),
                             png_backend="matplotlib", snapshot=1)
    assert result.backend == "matplotlib"
    rgb = _pixels(out)
    assert rgb.shape == (260, 400, 3)
    _assert_not_blank(rgb)


def test_png_falls_back_to_matplotlib_when_open3d_fails(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("exit code -6: Unable to create Vulkan instance")

    monkeypatch.setattr(map_png, "_render_open3d", broken)
    _assert_matplotlib_draws(files, tmp_path, monkeypatch,
                             "Open3D offscreen rendering failed.*Vulkan")


def _assert_matplotlib_draws(files: dict[str, Path], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, warning: str) -> None:
    """With no backend forced, the PNG is drawn by matplotlib after ``warning``."""
    monkeypatch.delenv("TWIN_PNG_BACKEND", raising=False)
    out = tmp_path / "map.png"
    with pytest.warns(TwinWarning, match=warning):
        result = map_render.render_map(files["run"], None, out, size=(320, 200))
    assert result.backend == "matplotlib"
    _assert_not_blank(_pixels(out))


def test_a_stalled_renderer_is_killed_and_retried_then_matplotlib_draws(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog: a child whose frame does not come within the frame limit is killed
    (here every one: the limit is far below a frame's time), retried, and the PNG is drawn
    by matplotlib with a warning. A child left to finish would have delivered its image,
    and Open3D would have drawn the PNG."""
    monkeypatch.setattr(map_png, "OPEN3D_FRAME_TIMEOUT_S", 1e-4)
    monkeypatch.setattr(map_png, "OPEN3D_ATTEMPTS", 2)
    _assert_matplotlib_draws(files, tmp_path, monkeypatch, "no image after 2 tries")


def test_a_retry_draws_the_meshes_in_pieces_and_the_same_map(
    files: dict[str, Path], png: tuple[Path, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry of the Open3D child renders each mesh in several renderables
    (``_mesh_pieces``, against meshes whose one-renderable frame never comes): the same
    map as one renderable (the module's PNG; measured: every pixel the same, held at
    0.1 % beyond 8 grey levels); the faces are split in order, none lost."""
    faces = np.arange(33).reshape(11, 3)
    parts = map_png._mesh_pieces(faces, 4)
    assert [len(part) for part in parts] == [3, 3, 3, 2]
    np.testing.assert_array_equal(np.concatenate(parts), faces)
    assert len(map_png._mesh_pieces(faces[:2], 8)) == 2
    whole, backend = png
    assert backend == "open3d"
    original = map_png._run_worker
    tries: list[int] = []

    def first_stalls(spec: Path, out: Path, log: Path, pieces: int = 1) -> tuple[bool, int]:
        tries.append(pieces)
        return (False, -9) if pieces == 1 else original(spec, out, log, pieces)

    monkeypatch.setattr(map_png, "_run_worker", first_stalls)
    out = tmp_path / "map.png"
    result = map_render.render_map(files["run"], files["est"], out, size=(480, 300))
    # The software rasteriser can stall a frame at random on a loaded machine: the
    # watchdog then retries once more, in more pieces (OPEN3D_ATTEMPTS).
    assert result.backend == "open3d" and tries[:2] == [1, 2]
    assert tries[1:] == [2**k for k in range(1, len(tries))], tries
    differs = np.abs(_pixels(out) - _pixels(whole)).max(axis=-1) > 8
    assert differs.mean() <= 1e-3, differs.mean()


# ----------------------------------------------------------------------------- HTML


def _plotly_call(text: str, function: str) -> list[Any]:
    """The JSON arguments of the page's ``Plotly.<function>("id", ...)`` call."""
    start = text.index(f"Plotly.{function}(")
    decoder = json.JSONDecoder()
    pos = text.index(",", start) + 1
    args = []
    while True:
        while text[pos] in " \n\t":
            pos += 1
        if text[pos] not in "[{":
            return args
        value, end = decoder.raw_decode(text, pos)
        args.append(value)
        pos = text.index(",", end) + 1 if text[end:].lstrip().startswith(",") else end


def _values(array: Any) -> np.ndarray:
    """A plotly array: a list, or plotly's typed-array encoding ``{dtype, bdata}``."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray([np.nan if v is None else v for v in array], dtype=np.float64)


def test_html_is_self_contained(html: Path) -> None:
    text = html.read_text()
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", text), "script from the web"
    assert "<script src=\"http" not in text
    assert "cdn.plot.ly" not in text.split("</script>")[-1]
    assert "plotly.js v" in text or "Plotly.version" in text, "plotly.js is not embedded"
    assert len(text) > 1_000_000  # the ~4.6 MB plotly.js bundle is inside


def test_html_has_layers_slider_and_frames(html: Path, files: dict[str, Path]) -> None:
    text = html.read_text()
    data, layout = _plotly_call(text, "newPlot")[:2]
    frames = _plotly_call(text, "addFrames")[0]
    types = {trace["type"] for trace in data}
    assert {"mesh3d", "scatter3d", "table"} <= types
    meshes = [tr for tr in data if tr["type"] == "mesh3d"]
    assert all(tr["opacity"] < 1 for tr in meshes)
    ceiling = [tr for tr in meshes if tr["name"].startswith("ceiling")]
    assert ceiling and ceiling[0]["visible"] == "legendonly"  # toggleable, hidden at start
    names = {tr["name"] for tr in data}
    status = [map_style.STATUS_STYLE[s][0] for s in (map_style.PointStatus.MAPPED,
                                                 map_style.PointStatus.MISSED,
                                                 map_style.PointStatus.UNMODELLED)]
    for layer in ("base stations", "true UE track", *status, "object names",
                  "miso-ml: UE track", "miso-ml: scatterers"):
        assert layer in names
    assert layout["scene"]["aspectmode"] == "data"
    labels = ["all", *(str(t) for t in range(T))]
    assert [f["name"] for f in frames] == labels
    assert [s["label"] for s in layout["sliders"][0]["steps"]] == labels
    mapdata = map_render.load_map(files["run"], files["est"], with_scene=False)
    for t in range(T):
        frame = frames[t + 1]["data"]
        for code, label in zip((1, 2, 3), status, strict=True):
            points = next(tr for tr in frame if tr["name"] == label)
            x = _values(points["x"])
            assert np.count_nonzero(np.isfinite(x)) == np.count_nonzero(
                mapdata.status(t) == code)
        track = next(tr for tr in frame if tr["name"] == "true UE track")
        assert len(_values(track["x"])) == t + 1  # the UE positions up to that time
        table = next(tr for tr in frame if tr["type"] == "table")
        rows = map_data.wall_table(mapdata, [t])
        assert table["cells"]["values"][0] == [r.name for r in rows]
        assert table["cells"]["values"][2] == [
            f"{r.counts['miso-ml'][0]}/{r.counts['miso-ml'][1]}" if r.counts["miso-ml"][1]
            else "2D: —" for r in rows]


def test_estimates_that_never_converged_draw_as_all_missed(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """An estimate file whose every snapshot failed: the map is drawn, no scatterer or
    match, every modelled true point missed and the table says 0 of n."""
    est = tmp_path / "failed.h5"
    shutil.copyfile(files["est"], est)
    with h5py.File(est, "a") as f:
        f["estimates/miso-ml/converged"][...] = False
    data = map_render.load_map(files["run"], est, with_scene=False)
    view = map_data.layers(data, None)
    assert len(view.est_points["miso-ml"]) == 0 and len(view.segments["miso-ml"]) == 0
    assert not np.isfinite(view.est_track["miso-ml"]).any()
    assert set(view.truth_status.tolist()) == {map_style.PointStatus.MISSED,
                                               map_style.PointStatus.UNMODELLED}
    assert all(r.counts["miso-ml"][0] == 0 for r in view.table)
    out = tmp_path / "map.html"
    map_render.render_map(files["run"], est, out)
    assert out.is_file()


def test_several_estimate_files_on_one_map(files: dict[str, Path], tmp_path: Path) -> None:
    """Algorithms of two estimate files side by side, each in its own colour; one found
    in both files must be chosen with ``algorithms``."""
    second = tmp_path / "grid.h5"
    estimate_run(files["run"], "miso-sp-grid", second, snr_db=20.0)
    data = map_render.load_map(files["run"], [files["est"], second], with_scene=False)
    assert data.algorithms == ("miso-ml", "miso-sp-grid")
    one = map_render.load_map(files["run"], [second], with_scene=False)
    for t in range(T):  # each algorithm's matching is its own, whatever else is drawn
        np.testing.assert_array_equal(data.matches["miso-sp-grid"][t].pairs,
                                      one.matches["miso-sp-grid"][t].pairs)
    with pytest.raises(TwinInputError, match="more than one estimate file"):
        map_render.load_map(files["run"], [files["est"], files["est"]], with_scene=False)
    only = map_render.load_map(files["run"], [files["est"], second], algorithms="miso-sp-grid",
                         with_scene=False)
    assert only.algorithms == ("miso-sp-grid",)
    out = tmp_path / "map.html"
    result = run_twin("render", str(files["run"]), str(files["est"]), str(second), "-o",
                      str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "miso-ml, miso-sp-grid" in result.stderr


def test_html_snapshot_option_sets_the_slider(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "map.html"
    map_render.render_map(files["run"], files["est"], out, snapshot=2, algorithms="miso-ml")
    layout = _plotly_call(out.read_text(), "newPlot")[1]
    assert layout["sliders"][0]["active"] == 3  # step 0 is "all"


# ----------------------------------------------------------------------------- browser


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and Path("/usr/bin/chromium").exists():
        exe = "/usr/bin/chromium"
    if exe is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's "
                    "'chromium'); the browser test cannot run")
    return exe


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    the browser reads NUL-terminated JSON commands on fd 3, answers on fd 4)."""

    def __init__(self, exe: str, profile: Path) -> None:
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()

        def wire() -> None:  # in the child: the pipe ends become fds 3 and 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [exe, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0.0))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command; return its result (events arriving meanwhile are kept)."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._read_message(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message

    def close(self) -> str:
        """Close the browser; return its stderr."""
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        os.close(self._to_browser)
        os.close(self._from_browser)
        return err.decode(errors="replace")


@contextlib.contextmanager
def devtools(tmp: Path) -> Iterator[DevTools]:
    exe = _chromium()
    try:
        browser = DevTools(exe, tmp / "profile")
    except OSError as exc:
        pytest.skip(f"chromium cannot be started: {exc}")
    try:
        yield browser
    finally:
        browser.close()


def _frames_drawn(browser: DevTools, session: str, frames: int = 3) -> None:
    """Return once the page has drawn ``frames`` more animation frames (so that WebGL's
    first frames, or a slider step's, are on the canvas): an event, not a fixed wait."""
    browser.send("Runtime.evaluate", session, awaitPromise=True, returnByValue=True,
                 expression=(f"new Promise(done => {{ let left = {frames};"
                             " const tick = () => (--left ? requestAnimationFrame(tick)"
                             " : done(true)); requestAnimationFrame(tick); }})"))


def _page_problems(events: list[dict[str, Any]]) -> list[str]:
    """Exceptions, console errors, error log entries and non-local requests of a page."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            problems.append(f"exception: {details.get('exception', {}).get('description')}"
                            f" {details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description")) for a in params.get("args", [])]
            problems.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            problems.append(f"log: {params['entry'].get('text')} {params['entry'].get('url')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                problems.append(f"network request: {url}")
    return problems


def test_html_renders_in_headless_chromium_without_console_errors(
    html: Path, tmp_path: Path
) -> None:
    """Open the map from file:// in headless Chromium (WebGL in SwiftShader): no exception,
    console error or network request; plotly drew its WebGL scene; the screenshot shows
    the true interaction points inside the 3D view."""
    with devtools(tmp_path) as browser:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target,
                               flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session)
        browser.send("Emulation.setDeviceMetricsOverride", session, width=1200, height=800,
                     deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", session, url=html.resolve().as_uri())
        browser.wait_event("Page.loadEventFired", BROWSER_TIMEOUT_S)
        drawn = ("(() => { const gd = document.querySelector('.js-plotly-plot');"
                 " return !!(gd && gd._fullLayout && gd._fullLayout.scene"
                 " && gd._fullLayout.scene._scene && gd.querySelector('canvas')); })()")
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while not browser.send("Runtime.evaluate", session, expression=drawn,
                               returnByValue=True)["result"].get("value"):
            assert time.monotonic() < deadline, "plotly never drew its 3D scene"
            time.sleep(0.2)
        _frames_drawn(browser, session)
        no_webgl = browser.send("Runtime.evaluate", session, returnByValue=True,
                                expression="document.body.innerText.includes('WebGL')")
        shot = browser.send("Page.captureScreenshot", session, format="png")
        # Move the slider to snapshot 2 (what a click on its step does): the drawn UE
        # track then holds the positions up to it (plotly's count of drawn points).
        step = browser.send("Runtime.evaluate", session, awaitPromise=True,
                            returnByValue=True, expression=(
            "(async () => { const gd = document.querySelector('.js-plotly-plot');"
            " await Plotly.animate(gd, ['2'], {mode: 'immediate', frame: {duration: 0,"
            " redraw: true}, transition: {duration: 0}});"
            " return gd._fullData.find(t => t.name === 'true UE track')._length; })()"))
        _frames_drawn(browser, session)
        events = list(browser.events)
    assert not no_webgl["result"].get("value"), "plotly reports that WebGL is unavailable"
    assert _page_problems(events) == []
    assert step["result"].get("value") == 3, step
    path = tmp_path / "shot.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    rgb = _pixels(path)
    _assert_not_blank(rgb)
    # The 3D view is the upper left of the page (the legend is on the right, the slider
    # and the table below it): the true interaction points there were drawn by WebGL.
    height, width = rgb.shape[:2]
    view = rgb[int(0.05 * height):int(0.62 * height), : int(0.72 * width)]
    for status in (map_style.PointStatus.MAPPED, map_style.PointStatus.MISSED):
        assert _colour_pixels(view, map_style.STATUS_STYLE[status][1]) >= MIN_COLOUR_PIXELS
    assert _colour_pixels(view, map_style.BS_RGB) >= MIN_COLOUR_PIXELS


def test_html_screenshot_with_chromium_command_line(html: Path, tmp_path: Path) -> None:
    """The plain command-line way: ``--screenshot`` after a virtual-time budget; no
    uncaught error in Chromium's log and a non-blank screenshot."""
    exe = _chromium()
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
         "--virtual-time-budget=10000", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
    )
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    assert not [ln for ln in console if "Uncaught" in ln or "ERROR:CONSOLE" in ln], console
    assert shot.is_file(), proc.stderr[-2000:]
    _assert_not_blank(_pixels(shot))


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_a_png_with_snapshot_and_camera(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    result = run_twin("render", str(files["run"]), str(files["est"]), "-o", str(out),
                      "--snapshot", "1", "--camera", "-10,-20,25:10,0,0", "--size", "320x200",
                      "-a", "miso-ml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"wrote {out}" in result.stderr
    rgb = _pixels(out)
    assert rgb.shape == (200, 320, 3)
    _assert_not_blank(rgb)


@pytest.mark.parametrize(("case", "needles"), [
    ("missing-run", ("missing.h5", "not found")),
    ("other-run-hash", ("other-est.h5", "run.h5", "another run", "SHA-256")),
    ("other-run-count", ("other-est.h5", "run.h5", "another run", "snapshots")),
    ("unknown-algorithm", ("--algorithms", "'nope'", "available: miso-ml")),
    ("extension", ("map.pdf", "'.pdf'", ".png or .html")),
    ("snapshot", ("--snapshot", "out of range")),
    ("camera", ("--camera", "x,y,z:tx,ty,tz")),
])
def test_bad_input_is_one_line_exit_2_no_output(
    files: dict[str, Path], tmp_path: Path, case: str, needles: tuple[str, ...]
) -> None:
    run, est, out = str(files["run"]), str(files["est"]), tmp_path / "map.png"
    if case == "other-run-hash":
        est = str(_copy_with_attrs(files["est"], tmp_path / "other-est.h5",
                                   run_scene_sha256="0" * 64))
    elif case == "other-run-count":
        est = str(_copy_with_attrs(files["est"], tmp_path / "other-est.h5",
                                   run_num_snapshots=T + 3))
    args = {
        "missing-run": [str(tmp_path / "missing.h5"), "-o", str(out)],
        "other-run-hash": [run, est, "-o", str(out)],
        "other-run-count": [run, est, "-o", str(out)],
        "unknown-algorithm": [run, est, "-a", "miso-ml,nope", "-o", str(out)],
        "extension": [run, est, "-o", str(tmp_path / "map.pdf")],
        "snapshot": [run, est, "--snapshot", str(T), "-o", str(out)],
        "camera": [run, est, "--camera", "0,0,10", "-o", str(out)],
    }[case]
    result = run_twin("render", *args, cwd=tmp_path)
    assert_one_line_error(result, needles)
    assert_no_output(out)
    assert not (tmp_path / "map.pdf").exists()


def test_existing_output_is_refused_without_overwrite(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "map.html"
    out.write_text("keep me")
    result = run_twin("render", str(files["run"]), "-o", str(out), cwd=tmp_path)
    assert_one_line_error(result, (str(out), "--overwrite"))
    assert out.read_text() == "keep me"
    # --overwrite replaces only a map twin drew, not this page of the user's.
    result = run_twin("render", str(files["run"]), "-o", str(out), "--overwrite", cwd=tmp_path)
    assert_one_line_error(result, (str(out), "not a twin map"))
    assert out.read_text() == "keep me"
    out.unlink()
    for _ in range(2):
        result = run_twin("render", str(files["run"]), "-o", str(out), "--overwrite", "-q",
                          cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "<html>" in out.read_text()[:200].lower()
