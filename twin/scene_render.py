"""Scene renders with Sionna's Mitsuba renderer (traced paths drawn); the camera and the
indoor clip height are those of the maps (:func:`twin.maps.geometry.auto_camera`,
:func:`twin.maps.geometry.indoor_clip_height`).

A run's RIS tiles are no scene geometry (they must not block rays), and the paths
through them are not Sionna's: both are drawn as extra emissive shapes of the overlay
that Sionna's renderer composites over the scene (:func:`ris_overlay`), added by
wrapping ``sionna.rt.renderer.get_overlay_scene`` for the duration of the render
(:func:`_overlay_extras`). A run without tiles renders exactly as Sionna alone does.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT
from estimators.typing import FloatArray
from twin.backend import mitsuba, sionna_rt
from twin.maps.geometry import (
    auto_camera,
    indoor_clip_height,
    ris_tile_corners,
)
from twin.maps.style import (
    DRAWN_TILE_OFFSET_M,
    RIS_RGB,
)
from twin.outputs import Artifact, atomic_file, stamp, stamped
from twin.paths import InteractionType

SIONNA_FOV_DEG = 45.0
"""Horizontal field of view of the scene render (Sionna's default; a given ``fov`` is
horizontal in ``render_to_file``)."""
DRAWN_TILE_THICKNESS_M = 0.01
"""Thickness [m] of a drawn RIS tile: a flat box whose front face lies
:data:`twin.maps.style.DRAWN_TILE_OFFSET_M` in front of the tile's plane (a box, unlike a
rectangle, emits on both sides)."""
RIS_PATH_RADIUS_OF_TILE = 0.125
"""The drawn paths through RIS tiles are at most this fraction of the smallest tile side
in radius (and half as thick as Sionna's own), so that a tile stays visible where its
paths meet at its centre."""
MIN_SEGMENT_M = 1e-6
"""Path segments shorter than this [m] are not drawn."""
RIS_PATHS_DRAWN_DB = 20.0
"""Paths through tiles more than this below the strongest one (of their snapshot and BS)
are not drawn: a tile multiplies the paths of its two hops."""

if TYPE_CHECKING:
    from twin.runfile import RunData
    from twin.simulate import Simulation



def ris_path_segments(run: RunData, snapshots: Sequence[int],
                      range_db: float = RIS_PATHS_DRAWN_DB) -> FloatArray:
    """The segments of the paths through a RIS tile at ``snapshots``, those within
    ``range_db`` of the strongest such path of their snapshot and BS.

    A path goes through a tile when one of its vertices is an
    :attr:`~twin.paths.InteractionType.RIS` interaction; its polyline is the BS, its
    interaction points, the UE.

    Returns
    -------
    ``[M, 2, 3]`` [m] (start, end) of each segment.
    """
    p = run.paths
    parts = [np.zeros((0, 2, 3))]
    for t in snapshots:
        through = p.valid[t] & np.any(p.interaction_types[t] == InteractionType.RIS, axis=-1)
        power = np.where(through, np.mean(np.abs(p.gain[t]) ** 2, axis=(-2, -1)), 0.0)
        through &= power >= power.max(axis=-1, keepdims=True) * 10 ** (-range_db / 10)
        for b, k in zip(*np.nonzero(through), strict=True):
            polyline = np.concatenate([run.bs_position[b][None],
                                       p.interaction_points[t, b, k, :p.depth[t, b, k]],
                                       run.drive.position[t][None]])
            parts.append(np.stack([polyline[:-1], polyline[1:]], axis=1))
    return np.concatenate(parts)


def ris_overlay(mi: Any, run: RunData, snapshots: Sequence[int], sionna_radius: float
                ) -> dict[str, dict[str, Any]]:
    """Mitsuba shapes (emissive, :data:`twin.maps.style.RIS_RGB`) of a run's RIS tiles and of
    the paths through them at ``snapshots``, for Sionna's overlay scene.

    Parameters
    ----------
    mi : the ``mitsuba`` module, in the rendering variant.
    run : a run with tiles (``run.ris`` not None).
    snapshots : snapshot indices whose RIS paths are drawn.
    sionna_radius : radius [m] of Sionna's own drawn path segments (cylinders); those
        through the tiles are thinner (:data:`RIS_PATH_RADIUS_OF_TILE`).

    Returns
    -------
    ``ris-tile-<r>``: a flat box per tile, of its true extent
    (:func:`twin.maps.geometry.ris_tile_corners`), its front face
    :data:`twin.maps.style.DRAWN_TILE_OFFSET_M` in front of its plane;
    ``ris-path-<i>``: a cylinder per path segment (:func:`ris_path_segments`).
    """
    assert run.ris is not None
    emitter = {"type": "area", "radiance": {"type": "rgb", "value": list(RIS_RGB)}}
    corners, normals = ris_tile_corners(run.ris, SPEED_OF_LIGHT / run.carrier_frequency)
    shapes: dict[str, dict[str, Any]] = {}
    for r, (c, n) in enumerate(zip(corners, normals, strict=True)):
        to_world = np.eye(4)
        to_world[:3, 0] = (c[1] - c[0]) / 2
        to_world[:3, 1] = (c[3] - c[0]) / 2
        to_world[:3, 2] = n * DRAWN_TILE_THICKNESS_M / 2
        to_world[:3, 3] = c.mean(axis=0) + n * (DRAWN_TILE_OFFSET_M
                                                 - DRAWN_TILE_THICKNESS_M / 2)
        shapes[f"ris-tile-{r}"] = {"type": "cube", "to_world": mi.ScalarTransform4f(to_world),
                                   "emitter": emitter}
    sides = np.linalg.norm(corners[:, [1, 3]] - corners[:, :1], axis=-1)
    radius = min(0.5 * sionna_radius, RIS_PATH_RADIUS_OF_TILE * float(sides.min()))
    segments = ris_path_segments(run, snapshots)
    keep = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=-1) > MIN_SEGMENT_M
    for i, (start, end) in enumerate(segments[keep]):
        shapes[f"ris-path-{i:06d}"] = {"type": "cylinder", "p0": start, "p1": end,
                                       "radius": radius, "emitter": emitter}
    return shapes


@contextlib.contextmanager
def _overlay_extras(extra: Callable[[Any], dict[str, dict[str, Any]]]) -> Iterator[None]:
    """Within the block, Sionna's renderer adds ``extra(sionna_scene)`` to the overlay
    scene it builds (devices, paths); ``extra`` runs in the rendering variant.

    Sionna RT 2.x has no way to pass extra shapes to a render: its ``render`` looks up
    ``get_overlay_scene`` in its module at each call, so that name is wrapped here and
    restored afterwards.
    """
    renderer: Any = importlib.import_module("sionna.rt.renderer")
    original = renderer.get_overlay_scene

    def build(scene: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        overlay: dict[str, Any] = original(scene, *args, **kwargs)
        added = extra(scene)
        clash = overlay.keys() & added.keys()
        if clash:
            raise ValueError(f"overlay keys {sorted(clash)} are Sionna's own")
        return {**overlay, **added}

    renderer.get_overlay_scene = build
    try:
        yield
    finally:
        renderer.get_overlay_scene = original


SCENE_RENDER_STAMP = "scene render"
#: The demo's ``scene.png``: Sionna's render of the scene with the traced paths.
SCENE_RENDER = Artifact("twin scene render", "twin demo", stamped(SCENE_RENDER_STAMP))


def render_scene_png(
    sim: Simulation,
    path: Path,
    *,
    snapshots: list[int] | None = None,
    resolution: tuple[int, int] = (960, 640),
    num_samples: int = 64,
) -> Path:
    """Render the scene with the traced paths of a few snapshots to a PNG.

    With RIS tiles, each tile and the paths through them (from ``sim.run.paths``, in
    :data:`twin.maps.style.RIS_RGB`) are drawn too (:func:`ris_overlay`).

    Parameters
    ----------
    sim : a finished simulation (its live scene and tracer are reused).
    path : the PNG to write (atomically).
    snapshots : snapshot indices whose paths are drawn (default: first, middle, last).
    resolution : (width, height) [pixels].
    num_samples : samples per pixel.
    """
    rt = sionna_rt()
    mi = mitsuba()
    run = sim.run
    drive = run.drive
    drawn = snapshots if snapshots is not None else sorted(
        {0, drive.num_snapshots // 2, drive.num_snapshots - 1})
    idx = np.asarray(drawn)
    paths = sim.tracer.solve(drive.position[idx], drive.velocity[idx], drive.orientation[idx])
    devices = np.concatenate([run.bs_position, drive.position])
    box = sim.scene.bounding_box()
    clip = indoor_clip_height(float(box[1, 2]), devices)
    aspect = resolution[0] / resolution[1]
    vertical_fov = np.degrees(2 * np.arctan(np.tan(np.radians(SIONNA_FOV_DEG) / 2) / aspect))
    view = auto_camera(box, fov_deg=float(vertical_fov), aspect=aspect)
    camera = rt.Camera(position=mi.Point3f(*map(float, view.position)),
                       look_at=mi.Point3f(*map(float, view.target)))
    extras: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if run.ris is not None:
        from sionna.rt.utils import scene_scale

        def extra(scene: Any) -> dict[str, dict[str, Any]]:
            scale = float(scene_scale(scene)) or 1.0
            return ris_overlay(mi, run, drawn, min(0.20, 0.005 * scale))  # Sionna's path radius

        extras = _overlay_extras(extra)
    with atomic_file(path) as tmp:
        png = tmp.with_suffix(".png")
        try:
            with extras:
                sim.scene.sionna_scene.render_to_file(
                    camera=camera, filename=str(png), paths=paths, clip_at=clip,
                    fov=SIONNA_FOV_DEG, resolution=resolution, num_samples=num_samples,
                )
            png.replace(tmp)
        finally:
            png.unlink(missing_ok=True)
        stamp(tmp, SCENE_RENDER_STAMP)
    return path
