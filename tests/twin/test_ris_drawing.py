"""RIS tiles drawn: the tile rectangle's geometry (twin/maps/), the tiles and the paths
through them in Sionna's scene render (twin/scene_render.py), and the tiles in the 3D maps
(twin/maps/png.py, twin/maps/html.py).

Renders are compared pixel by pixel with the render of the same run without tiles:
Mitsuba's sampling is seeded, so two renders differ only where something was added.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from estimators.arrays import SPEED_OF_LIGHT, rotation_matrix
from tests.conftest import make_config, write_obj
from tests.twin.test_render import _pixels, _plotly_call, _values
from twin.maps import data as map_data
from twin.maps import geometry as map_geometry
from twin.maps import png as map_png
from twin.maps import render as map_render
from twin.maps import style as map_style
from twin.paths import InteractionType, PathSet
from twin.runfile import RisData, RunData
from twin.scene import TwinWarning
from twin.scene_render import SIONNA_FOV_DEG, _overlay_extras, render_scene_png, ris_path_segments

FC = 3.5e9
WAVELENGTH = SPEED_OF_LIGHT / FC
# A floor and a north wall with a 32 x 32 tile (1.37 m square) on it, facing south, toward
# the default cameras (from the south-west); BS and UEs south of it.
QUADS = {
    "floor": ((-10.0, -10.0, 0.0), (20.0, 0.0, 0.0), (0.0, 20.0, 0.0)),
    "wall_north": ((-10.0, 8.0, 0.0), (20.0, 0.0, 0.0), (0.0, 0.0, 5.0)),
}
TILE_CENTRE = (-4.0, 8.0, 2.5)  # away from the specular paths off the wall
TILE_ORIENTATION = (-np.pi / 2, 0.0, 0.0)  # normal -y
TILE_ELEMENTS = 32
SIZE = (320, 240)
SAMPLES = 4
SRGB_RIS = 255.0 * np.where(np.asarray(map_style.RIS_RGB) <= 0.0031308,
                            12.92 * np.asarray(map_style.RIS_RGB),
                            1.055 * np.asarray(map_style.RIS_RGB) ** (1 / 2.4) - 0.055)
"""The tiles' emitted colour as Sionna writes it (8-bit sRGB)."""
COLOUR_TOL = 40.0
"""Euclidean distance (0-255 RGB) within which a pixel has a given colour."""
EDGE_PX = 3.0
"""Antialiased edges: changed pixels lie within this of a drawn shape's projection."""


def _ris_data(centres: np.ndarray, orientations: np.ndarray,
              elements: list[np.ndarray]) -> RisData:
    """Tiles with only their geometry filled in (elements NaN-padded to the largest)."""
    r, e = len(centres), max(len(x) for x in elements)
    padded = np.full((r, e, 3), np.nan)
    for i, x in enumerate(elements):
        padded[i, :len(x)] = x
    return RisData(
        name=tuple(f"ris{i}" for i in range(r)), position=centres, orientation=orientations,
        element_positions=padded,
        element_grid=np.array([[len(x), 1] for x in elements], dtype=np.int64),
        profile=np.zeros((r, e), complex),
        amplitude=np.ones(r), bs_to_ris=np.zeros((0,), np.complex64),
        ris_to_ue=np.zeros((0,), np.complex64), cfr_direct=np.zeros((0,), np.complex64))


def _grid(centre: np.ndarray, orientation: np.ndarray, ny: int, nz: int, dy: float,
          dz: float) -> np.ndarray:
    """``[ny * nz, 3]`` element positions: a grid in the tile's local y-z plane."""
    y = (np.arange(ny) - (ny - 1) / 2) * dy
    z = (np.arange(nz) - (nz - 1) / 2) * dz
    local = np.stack([np.zeros(ny * nz), *(a.ravel() for a in np.meshgrid(y, z))], axis=-1)
    return centre + local @ rotation_matrix(orientation).T


def test_tile_rectangle_spans_the_elements_plus_half_a_spacing() -> None:
    """Tilted tiles: corners in the tile's plane, around its centre, sides = elements ×
    spacing (the outermost elements half a spacing inside the edges), the normal local +x,
    corners counter-clockwise seen from the front. NaN padding, a single row (the other
    axis' spacing) and a single element (half a wavelength) handled."""
    s = 0.4 * WAVELENGTH
    centres = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 2.0], [0.0, 0.0, 1.0], [5.0, 5.0, 5.0]])
    orientations = np.array([[0.3, -0.4, 0.2], [np.pi, 0.0, 0.0], [-1.0, 0.5, 0.0],
                             [0.2, 0.1, 0.3]])
    grids = [(6, 4, s, 1.5 * s), (3, 2, s, s), (5, 1, s, s), (1, 1, s, s)]
    spacings = [(s, 1.5 * s), (s, s), (s, s), (WAVELENGTH / 2, WAVELENGTH / 2)]
    ris = _ris_data(centres, orientations, [_grid(c, o, *g) for c, o, g in
                                            zip(centres, orientations, grids, strict=True)])
    corners, normals = map_geometry.ris_tile_corners(ris, WAVELENGTH)
    assert corners.shape == (4, 4, 3) and normals.shape == (4, 3)
    for r, ((ny, nz, _, _), spacing) in enumerate(zip(grids, spacings, strict=True)):
        np.testing.assert_allclose(normals[r], rotation_matrix(orientations[r])[:, 0],
                                   atol=1e-12)
        np.testing.assert_allclose((corners[r] - centres[r]) @ normals[r], 0.0, atol=1e-12)
        np.testing.assert_allclose(corners[r].mean(axis=0), centres[r], atol=1e-12)
        u, v = corners[r, 1] - corners[r, 0], corners[r, 3] - corners[r, 0]
        sides = np.array([ny, nz]) * np.array(spacing)
        np.testing.assert_allclose([np.linalg.norm(u), np.linalg.norm(v)], sides, rtol=1e-9)
        np.testing.assert_allclose(corners[r, 2] - corners[r, 1], v, atol=1e-12)
        assert abs(u @ v) < 1e-12
        assert np.cross(u, v) @ normals[r] > 0
        elements = map_geometry.finite_rows(ris.element_positions[r])
        along = (elements - corners[r, 0]) @ np.stack([u / sides[0], v / sides[1]]).T
        np.testing.assert_allclose(along.min(axis=0), np.array(spacing) / 2, atol=1e-9)
        np.testing.assert_allclose(along.max(axis=0), sides - np.array(spacing) / 2,
                                   atol=1e-9)


def _path_set(run: RunData, rows: list[tuple[int, list[tuple[float, ...]], list[int]]],
              num_paths: int) -> PathSet:
    """Paths of BS 0 by hand: ``(snapshot, interaction points, interaction types)``, at
    most ``num_paths`` a snapshot; every other field NaN or padding."""
    T, D = run.drive.num_snapshots, max(len(r[1]) for r in rows)
    valid = np.zeros((T, 1, num_paths), bool)
    depth = np.full((T, 1, num_paths), -1, np.int16)
    types = np.zeros((T, 1, num_paths, D), np.uint8)
    points = np.full((T, 1, num_paths, D, 3), np.nan)
    count = np.zeros(T, int)
    for t, pts, kinds in rows:
        p = count[t]
        count[t] += 1
        valid[t, 0, p], depth[t, 0, p] = True, len(pts)
        types[t, 0, p, :len(kinds)] = kinds
        points[t, 0, p, :len(pts)] = pts
    nan = np.full((T, 1, num_paths), np.nan)
    return PathSet(
        valid=valid, tau=nan, gain=np.zeros((T, 1, num_paths, 1, 1), np.complex64),
        aod=np.stack([nan, nan], -1), aoa=np.stack([nan, nan], -1), doppler=nan, depth=depth,
        interaction_types=types, interaction_points=points,
        object_ids=np.full((T, 1, num_paths, D), -1, np.int32),
        primitive_ids=np.full((T, 1, num_paths, D), -1, np.int64),
        virtual_anchor=np.full((T, 1, num_paths, 3), np.nan),
        object_names=run.paths.object_names)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A traced run with one tile (its run file as ``sim.path``)."""
    tmp = tmp_path_factory.mktemp("ris-drawing")
    write_obj(tmp / "wall.obj", QUADS)
    config = make_config(
        "wall.obj", bs_position=(-6.0, 0.0, 3.0), ue_positions=[(6.0, 0.0, 1.5),
                                                                (3.0, -3.0, 1.5)],
        tracing={"max_depth": 1}, radio={"frequency_hz": FC, "bandwidth_hz": 20e6,
                                         "num_subcarriers": 2})
    config["ris"] = [{"name": "ris0", "position": list(TILE_CENTRE),
                      "orientation": list(TILE_ORIENTATION),
                      "elements": [TILE_ELEMENTS, TILE_ELEMENTS],
                      "profile": {"kind": "focus", "target": [6.0, 0.0, 1.5]}}]
    (tmp / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    from twin.simulate import simulate_to_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        return simulate_to_file(tmp / "run.yaml", tmp / "run.h5"), tmp / "run.h5"


def test_ris_path_segments_are_bs_interactions_ue(sim: Any) -> None:
    s, _ = sim
    run = s.run
    tile = np.array(TILE_CENTRE)
    wall = (0.0, 8.0, 0.5)
    paths = _path_set(run, [
        (0, [tuple(tile)], [InteractionType.RIS]),
        (0, [wall], [InteractionType.SPECULAR]),
        (1, [wall, tuple(tile)], [InteractionType.SPECULAR, InteractionType.RIS]),
    ], num_paths=2)
    run = dataclasses.replace(run, paths=paths)
    bs, ue = run.bs_position[0], run.drive.position
    np.testing.assert_allclose(ris_path_segments(run, [0]), [[bs, tile], [tile, ue[0]]])
    np.testing.assert_allclose(ris_path_segments(run, [1]),
                               [[bs, wall], [wall, tile], [tile, ue[1]]])
    assert ris_path_segments(run, [0, 1]).shape == (5, 2, 3)
    empty = dataclasses.replace(run, paths=_path_set(run, [(0, [wall], [1])], 1))
    assert ris_path_segments(empty, [0, 1]).shape == (0, 2, 3)


# ----------------------------------------------------------------------- scene render


def _camera(s: Any) -> tuple[np.ndarray, np.ndarray]:
    """The scene render's camera (render_scene_png's) as intrinsics and extrinsics."""
    width, height = SIZE
    aspect = width / height
    fov = float(np.degrees(2 * np.arctan(np.tan(np.radians(SIONNA_FOV_DEG) / 2) / aspect)))
    view = map_geometry.auto_camera(s.scene.bounding_box(), fov_deg=fov, aspect=aspect)
    return map_png.camera_matrices(view, width, height, fov_deg=fov)


def _near_segments(shape: tuple[int, int], segments: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: pixels within :data:`EDGE_PX` of 2D segments ``[M, 2, 2]``."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    pix = np.stack([xx + 0.5, yy + 0.5], axis=-1)[..., None, :]
    a, b = segments[:, 0], segments[:, 1]
    ab = b - a
    f = np.clip(np.sum((pix - a) * ab, axis=-1) / np.maximum(np.sum(ab * ab, axis=-1),
                                                               1e-12), 0, 1)
    distance = np.linalg.norm(pix - (a + f[..., None] * ab), axis=-1)
    return np.any(distance < EDGE_PX, axis=-1)


@contextlib.contextmanager
def _overlay_builders(seen: list[Any]) -> Iterator[None]:
    """Record the overlay builder in effect at each Sionna render."""
    scene_module = importlib.import_module("sionna.rt.scene")
    renderer = importlib.import_module("sionna.rt.renderer")
    real = scene_module.render

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(renderer.get_overlay_scene)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scene_module, "render", spy)
        yield


@pytest.fixture(scope="module")
def renders(sim: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run rendered without tiles, with the tile alone (no path through it) and with
    the tile and a hand-made path through it per snapshot; the overlay builders in effect
    during each render."""
    s, _ = sim
    tmp = tmp_path_factory.mktemp("ris-render")
    run = s.run
    through = np.any(run.paths.interaction_types == InteractionType.RIS, axis=-1)
    direct = dataclasses.replace(run.paths, valid=run.paths.valid & ~through)
    tile = [(t, [TILE_CENTRE], [InteractionType.RIS]) for t in range(run.drive.num_snapshots)]
    variants = {
        "without": dataclasses.replace(run, ris=None),
        "tile": dataclasses.replace(run, paths=direct),
        "paths": dataclasses.replace(run, paths=_path_set(run, tile, num_paths=1)),
    }
    seen: list[Any] = []
    images = {}
    with _overlay_builders(seen):
        for name, variant in variants.items():
            out = render_scene_png(dataclasses.replace(s, run=variant), tmp / f"{name}.png",
                                   resolution=SIZE, num_samples=SAMPLES)
            images[name] = _pixels(out)
    return {"images": images, "builders": seen, "runs": variants}


def test_render_without_tiles_is_sionna_s_own(renders: dict[str, Any]) -> None:
    """No tile: Sionna's overlay builder draws alone; with one, it is wrapped for the
    render only; after an error in the render, Sionna's is back."""
    renderer = importlib.import_module("sionna.rt.renderer")
    original = renderer.get_overlay_scene
    without, tile, paths = renders["builders"]
    assert without is original
    assert tile is not original and paths is not original
    with pytest.raises(RuntimeError, match="boom"), _overlay_extras(lambda scene: {}):
        assert renderer.get_overlay_scene is not original
        raise RuntimeError("boom")
    assert renderer.get_overlay_scene is original


def test_render_draws_the_tile_where_it_lies(sim: Any, renders: dict[str, Any]) -> None:
    """With the tile (and no path through it) the render changes only over the tile's
    projected rectangle, which it fills in the tile's colour."""
    s, _ = sim
    images = renders["images"]
    changed = np.any(images["tile"] != images["without"], axis=-1)
    corners, _ = map_geometry.ris_tile_corners(s.run.ris, WAVELENGTH)
    (pix, ahead) = map_png.project(corners[0], *_camera(s))
    assert ahead.all()
    lo, hi = pix.min(axis=0) - EDGE_PX, pix.max(axis=0) + EDGE_PX
    ys, xs = np.nonzero(changed)
    assert len(xs) > 0, "the tile was not drawn"
    assert np.all((xs + 0.5 >= lo[0]) & (xs + 0.5 <= hi[0]) & (ys + 0.5 >= lo[1])
                  & (ys + 0.5 <= hi[1])), "pixels changed away from the tile"
    x, y = pix.mean(axis=0)
    d1, d2 = pix[2] - pix[0], pix[3] - pix[1]
    area = 0.5 * abs(d1[0] * d2[1] - d1[1] * d2[0])
    assert area > 50, "the tile is too small in this view for the test"
    assert changed.sum() >= 0.7 * area
    centre = images["tile"][int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].reshape(-1, 3)
    assert np.all(np.linalg.norm(centre - SRGB_RIS, axis=1) < COLOUR_TOL)


def test_render_draws_the_paths_through_the_tile(sim: Any, renders: dict[str, Any]) -> None:
    """The paths through the tile (BS → tile → UE) add pixels along their projected
    segments only, every segment drawn."""
    s, _ = sim
    images = renders["images"]
    changed = np.any(images["paths"] != images["tile"], axis=-1)
    segments = ris_path_segments(renders["runs"]["paths"], [0, 1])
    assert segments.shape == (4, 2, 3)
    k, e = _camera(s)
    pix, ahead = map_png.project(segments.reshape(-1, 3), k, e)
    assert ahead.all()
    flat = pix.reshape(-1, 2, 2)
    assert np.all(changed <= _near_segments(changed.shape, flat)), "pixels changed off paths"
    for seg in flat:
        mid = _near_segments(changed.shape, np.array([[seg.mean(axis=0), seg.mean(axis=0)]]))
        assert np.any(changed & mid), f"segment {seg.tolist()} not drawn"
    toward = (np.linalg.norm(images["paths"][changed] - SRGB_RIS, axis=-1)
              < np.linalg.norm(images["tile"][changed] - SRGB_RIS, axis=-1))
    assert toward.mean() > 0.9, "the paths are not drawn in the tile's colour"


# ----------------------------------------------------------------------------- maps


def test_map_data_and_html_hold_the_tile(sim: Any, tmp_path: Path) -> None:
    s, run_path = sim
    data = map_render.load_map(run_path, with_scene=False)
    corners, normals = map_geometry.ris_tile_corners(s.run.ris, WAVELENGTH)
    assert data.ris_name == ("ris0",)
    np.testing.assert_allclose(data.ris_corners, corners)
    np.testing.assert_allclose(data.ris_normal, normals)
    assert np.all((corners[0] >= data.focus[0]) & (corners[0] <= data.focus[1]))
    (name, quad), = map_data.ris_quads(data)
    assert name == "ris0" and quad.num_faces == 2
    np.testing.assert_allclose(quad.vertices,
                               corners[0] + map_style.DRAWN_TILE_OFFSET_M * normals[0])
    _, legend = map_png._draw_list(data, map_data.layers(data, None))
    assert ("tile", "RIS tile ris0", map_style.RIS_RGB) in legend
    out = tmp_path / "map.html"
    map_render.write_map(data, out, html=True)
    traces = _plotly_call(out.read_text(), "newPlot")[0]
    (tile,) = [tr for tr in traces if tr["name"] == "RIS tile ris0"]
    assert tile["type"] == "mesh3d" and tile["showlegend"]
    xyz = np.stack([_values(tile[a]) for a in "xyz"], axis=-1)
    np.testing.assert_allclose(xyz, quad.vertices, atol=1e-5)


def test_map_png_draws_the_tile(sim: Any, tmp_path: Path) -> None:
    """Open3D draws the tile in its exact colour where the camera projects it (a point off
    its centre, where the true interaction point sits); without the tile, none of it."""
    _, run_path = sim
    data = map_render.load_map(run_path, with_scene=False)
    bare = dataclasses.replace(data, ris_name=(), ris_corners=np.zeros((0, 4, 3)),
                               ris_normal=np.zeros((0, 3)))
    width, height = 400, 300
    view_width = width - round(map_png.PANEL_FRACTION * width)
    cam = map_geometry.Camera(position=np.array([0.0, -4.0, 5.0]), target=np.array(TILE_CENTRE))
    c = data.ris_corners[0]
    on_tile = c[0] + 0.3 * (c[1] - c[0]) + 0.3 * (c[3] - c[0])
    ((x, y),), _ = map_png.project(on_tile, *map_png.camera_matrices(cam, view_width, height))
    images = {}
    for label, d in (("with", data), ("without", bare)):
        out = tmp_path / f"{label}.png"
        assert map_png.write_png(d, out, camera=cam, size=(width, height),
                                 backend="open3d") == "open3d"
        images[label] = _pixels(out)[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2]
    tile = 255.0 * np.asarray(map_style.RIS_RGB)
    assert np.all(np.linalg.norm(images["with"] - tile, axis=-1) < COLOUR_TOL)
    assert np.all(np.linalg.norm(images["without"] - tile, axis=-1) > COLOUR_TOL)


def test_map_png_matplotlib_fallback_draws_the_tile(sim: Any, tmp_path: Path) -> None:
    _, run_path = sim
    data = map_render.load_map(run_path, with_scene=False)
    out = tmp_path / "map.png"
    cam = map_geometry.Camera(position=np.array([0.0, -4.0, 5.0]), target=np.array(TILE_CENTRE))
    assert map_png.write_png(data, out, camera=cam, size=(400, 300),
                             backend="matplotlib") == "matplotlib"
    rgb = _pixels(out)
    tile = np.linalg.norm(rgb - 255.0 * np.asarray(map_style.RIS_RGB), axis=-1) < COLOUR_TOL
    assert tile.sum() >= 20  # the tile in the view (and its legend patch)
