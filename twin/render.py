"""Scene renders with Sionna's Mitsuba renderer (traced paths drawn); the camera and the
indoor clip height are those of the maps (:func:`twin.maps.auto_camera`,
:func:`twin.maps.indoor_clip_height`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from twin.backend import mitsuba, sionna_rt
from twin.maps import auto_camera, indoor_clip_height
from twin.runfile import atomic_path

SIONNA_FOV_DEG = 45.0
"""Horizontal field of view of the scene render (Sionna's default; a given ``fov`` is
horizontal in ``render_to_file``)."""

if TYPE_CHECKING:
    from twin.simulate import Simulation


def render_scene_png(
    sim: Simulation,
    path: Path,
    *,
    snapshots: list[int] | None = None,
    resolution: tuple[int, int] = (960, 640),
    num_samples: int = 64,
) -> Path:
    """Render the scene with the traced paths of a few snapshots to a PNG.

    Parameters
    ----------
    sim : a finished simulation (its live scene and tracer are reused).
    path : the PNG to write (atomically).
    snapshots : snapshot indices whose paths are drawn (default: first, middle, last).
    """
    rt = sionna_rt()
    mi = mitsuba()
    drive = sim.run.drive
    if snapshots is None:
        snapshots = sorted({0, drive.num_snapshots // 2, drive.num_snapshots - 1})
    idx = np.asarray(snapshots)
    paths = sim.tracer.solve(drive.position[idx], drive.velocity[idx], drive.orientation[idx])
    devices = np.concatenate([sim.run.bs_position, drive.position])
    box = sim.scene.bounding_box()
    clip = indoor_clip_height(float(box[1, 2]), devices)
    aspect = resolution[0] / resolution[1]
    vertical_fov = np.degrees(2 * np.arctan(np.tan(np.radians(SIONNA_FOV_DEG) / 2) / aspect))
    view = auto_camera(box, fov_deg=float(vertical_fov), aspect=aspect)
    camera = rt.Camera(position=mi.Point3f(*map(float, view.position)),
                       look_at=mi.Point3f(*map(float, view.target)))
    with atomic_path(path) as tmp:
        png = tmp.with_suffix(".png")
        try:
            sim.scene.sionna_scene.render_to_file(
                camera=camera, filename=str(png), paths=paths, clip_at=clip, fov=SIONNA_FOV_DEG,
                resolution=resolution, num_samples=num_samples,
            )
            png.replace(tmp)
        finally:
            png.unlink(missing_ok=True)
    return path
