"""Scene renders with Sionna's Mitsuba renderer (traced paths drawn)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from twin.backend import mitsuba, sionna_rt
from twin.runfile import atomic_path

if TYPE_CHECKING:
    from twin.simulate import Simulation


def auto_camera(
    bbox: np.ndarray, devices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Camera position, look-at point and clip height from the scene bounds.

    The camera looks down at the scene's centre from the south-west at ~50° elevation.
    Indoor scenes (geometry less than 3 m above the highest device, i.e. a ceiling)
    are clipped just above the devices so the inside is visible.
    """
    lo, hi = bbox
    centre = (lo + hi) / 2
    extent = float(np.max(hi[:2] - lo[:2]))
    top = float(devices[:, 2].max())
    clip = top + 0.3 if hi[2] - top < 3.0 else None
    target = np.array([centre[0], centre[1], lo[2]])
    position = target + np.array([-0.3, -0.95, 1.15]) * extent
    return position, target, clip


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
    position, target, clip = auto_camera(sim.scene.bounding_box(), devices)
    camera = rt.Camera(
        position=mi.Point3f(*map(float, position)), look_at=mi.Point3f(*map(float, target))
    )
    with atomic_path(path) as tmp:
        png = tmp.with_suffix(".png")
        try:
            sim.scene.sionna_scene.render_to_file(
                camera=camera, filename=str(png), paths=paths, clip_at=clip,
                resolution=resolution, num_samples=num_samples,
            )
            png.replace(tmp)
        finally:
            png.unlink(missing_ok=True)
    return path
