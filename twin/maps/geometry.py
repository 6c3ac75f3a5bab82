"""Geometry of a map: triangle soups, cameras, the scene split at the ceiling and cropped
to the drive's region, its outline, and RIS tiles as rectangles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from estimators.typing import BoolArray, FloatArray
from twin.maps.style import (
    CLIP_ABOVE_DEVICES_M,
    EDGE_ANGLE_DEG,
    FIELD_OF_VIEW_DEG,
    INDOOR_HEADROOM_M,
    SAME_COORDINATE_M,
)

if TYPE_CHECKING:
    import trimesh

    from twin.runfile import RisData


@dataclass(frozen=True)
class Triangles:
    """A triangle soup in the world frame: ``vertices [N, 3]`` [m], ``faces [F, 3]``."""

    vertices: FloatArray
    faces: npt.NDArray[np.int64]

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``position`` and ``target`` (look-at point) ``[3]`` [m]; z is up."""

    position: FloatArray
    target: FloatArray



def indoor_clip_height(scene_top: float, devices: FloatArray) -> float | None:
    """Height [m] above which an indoor scene is hidden so that its inside shows: the
    highest device + :data:`CLIP_ABOVE_DEVICES_M` when the scene's top is less than
    :data:`INDOOR_HEADROOM_M` above it; None outdoors."""
    highest = float(np.max(np.asarray(devices)[:, 2]))
    return highest + CLIP_ABOVE_DEVICES_M if scene_top - highest < INDOOR_HEADROOM_M else None


def concat_meshes(meshes: Sequence[trimesh.Trimesh]) -> Triangles | None:
    """The meshes as one triangle soup (None when they hold no face)."""
    parts = [m for m in meshes if len(m.faces)]
    if not parts:
        return None
    offsets = np.cumsum([0] + [len(m.vertices) for m in parts[:-1]])
    return Triangles(
        vertices=np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in parts]),
        faces=np.concatenate(
            [np.asarray(m.faces, dtype=np.int64) + o for m, o in zip(parts, offsets, strict=True)]
        ),
    )


def split_ceiling(
    meshes: Sequence[tuple[str, trimesh.Trimesh]], devices: FloatArray
) -> tuple[list[trimesh.Trimesh], list[trimesh.Trimesh]]:
    """Split the scene into drawn and hidden parts.

    Hidden: objects whose name starts with ``ceiling`` and, in an indoor scene (its top
    less than :data:`INDOOR_HEADROOM_M` above the highest device), every face lying
    wholly above the highest device + :data:`CLIP_ABOVE_DEVICES_M`.
    """
    import trimesh

    shown: list[trimesh.Trimesh] = []
    hidden: list[trimesh.Trimesh] = []
    if not meshes:
        return shown, hidden
    clip = indoor_clip_height(max(float(m.bounds[1, 2]) for _, m in meshes), devices)
    for name, mesh in meshes:
        if name.lower().startswith("ceiling"):
            hidden.append(mesh)
            continue
        if clip is None:
            shown.append(mesh)
            continue
        above = mesh.vertices[mesh.faces][:, :, 2].min(axis=1) > clip
        for mask, part in ((above, hidden), (~above, shown)):
            if mask.any():
                part.append(trimesh.Trimesh(mesh.vertices, mesh.faces[mask], process=False))
    return shown, hidden


def _clip_half_space(tri: FloatArray, axis: int, value: float, sign: float) -> FloatArray:
    """Clip triangles ``[F, 3, 3]`` to ``sign * (x[axis] - value) >= 0`` (winding kept)."""
    d = sign * (tri[..., axis] - value)
    inside = d >= 0
    count = inside.sum(axis=1)
    parts = [tri[count == 3]]
    for n_in in (1, 2):
        sel = count == n_in
        if not sel.any():
            continue
        t, dd, ins = tri[sel], d[sel], inside[sel]
        # Rotate each triangle (cyclically: same winding) so that the odd vertex is first.
        odd = np.argmax(ins, axis=1) if n_in == 1 else np.argmin(ins, axis=1)
        order = (odd[:, None] + np.arange(3)) % 3
        t = np.take_along_axis(t, order[..., None], axis=1)
        dd = np.take_along_axis(dd, order, axis=1)
        a, b, c = t[:, 0], t[:, 1], t[:, 2]
        ab = a + (b - a) * (dd[:, 0] / (dd[:, 0] - dd[:, 1]))[:, None]
        ac = a + (c - a) * (dd[:, 0] / (dd[:, 0] - dd[:, 2]))[:, None]
        if n_in == 1:  # a inside: one smaller triangle
            parts.append(np.stack([a, ab, ac], axis=1))
        else:  # a outside: the quad (ab, b, c, ac) as two triangles
            parts += [np.stack([ab, b, c], axis=1), np.stack([ab, c, ac], axis=1)]
    return np.concatenate(parts)


def crop(meshes: Sequence[trimesh.Trimesh], region: FloatArray) -> list[trimesh.Trimesh]:
    """Cut meshes to the axis-aligned box ``region [2, 3]`` [m] (min, max corners);
    triangles crossing its faces are clipped, those outside dropped."""
    import trimesh

    out = []
    for mesh in meshes:
        lo, hi = mesh.bounds
        if np.all(lo >= region[0]) and np.all(hi <= region[1]):
            out.append(mesh)
            continue
        if np.any(hi < region[0]) or np.any(lo > region[1]):
            continue
        tri = np.asarray(mesh.triangles, dtype=np.float64)
        for axis in range(3):
            tri = _clip_half_space(tri, axis, float(region[0, axis]), 1.0)
            tri = _clip_half_space(tri, axis, float(region[1, axis]), -1.0)
        if len(tri):
            out.append(trimesh.Trimesh(tri.reshape(-1, 3), np.arange(3 * len(tri)).reshape(-1, 3),
                                       process=False))
    return out


def outline(meshes: Sequence[trimesh.Trimesh]) -> FloatArray:
    """Edges ``[M, 2, 3]`` [m] worth drawing: boundaries and creases sharper than
    :data:`EDGE_ANGLE_DEG` (coincident vertices merged first)."""
    import trimesh
    from trimesh.grouping import group_rows

    parts = [np.zeros((0, 2, 3))]
    for mesh in meshes:
        m = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
        boundary = m.edges_sorted[group_rows(m.edges_sorted, require_count=1)]
        sharp = m.face_adjacency_edges[m.face_adjacency_angles > np.radians(EDGE_ANGLE_DEG)]
        edges = np.concatenate([boundary.reshape(-1, 2), sharp.reshape(-1, 2)])
        parts.append(np.asarray(m.vertices, dtype=np.float64)[edges])
    return np.concatenate(parts)


def finite_rows(points: FloatArray) -> FloatArray:
    """The rows ``[k, 3]`` of ``points`` without NaN (drawn positions)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return pts[np.all(np.isfinite(pts), axis=1)]


def inside(points: FloatArray, region: FloatArray) -> BoolArray:
    """``[k]``: which of ``points [k, 3]`` [m] lie in the box ``region [2, 3]`` (min, max)."""
    return np.all((points >= region[0]) & (points <= region[1]), axis=-1)



def _grid_spacing(coords: FloatArray) -> float:
    """The smallest gap [m] between the distinct values of ``coords [E]`` [m] (NaN when
    there is one value)."""
    gaps = np.diff(np.sort(coords))
    gaps = gaps[gaps > SAME_COORDINATE_M]
    return float(gaps.min()) if gaps.size else float("nan")


def ris_tile_corners(ris: RisData, wavelength: float) -> tuple[FloatArray, FloatArray]:
    """The RIS tiles as rectangles.

    A tile lies in the plane through its centre orthogonal to its normal (local +x); its
    rectangle spans its elements' extent along local y and z plus half an element spacing
    on each side. The spacing along an axis is the smallest gap between the elements'
    coordinates along it; for a single row or column, the other axis' spacing; for a
    single element, half a wavelength (the config's default spacing).

    Parameters
    ----------
    ris : the run's tiles (``element_positions [R, E, 3]`` [m], NaN-padded).
    wavelength : carrier wavelength [m].

    Returns
    -------
    corners : ``[R, 4, 3]`` [m], in local (y, z) order (−, −), (+, −), (+, +), (−, +):
        counter-clockwise seen from the front.
    normals : ``[R, 3]``, the unit normals (the side the tile reradiates into).
    """
    from estimators.arrays import rotation_matrix

    rotation = rotation_matrix(np.asarray(ris.orientation, dtype=np.float64))
    centres = np.asarray(ris.position, dtype=np.float64)
    corners = np.zeros((len(centres), 4, 3))
    for r, (centre, rot) in enumerate(zip(centres, rotation, strict=True)):
        local = (finite_rows(ris.element_positions[r]) - centre) @ rot[:, 1:]
        spacing = np.array([_grid_spacing(local[:, 0]), _grid_spacing(local[:, 1])])
        spacing = np.where(np.isnan(spacing), spacing[::-1], spacing)
        spacing = np.where(np.isnan(spacing), 0.5 * wavelength, spacing)
        lo, hi = local.min(axis=0) - spacing / 2, local.max(axis=0) + spacing / 2
        yz = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        corners[r] = centre + yz @ rot[:, 1:].T
    return corners, np.array(rotation[..., :, 0]).reshape(-1, 3)



def camera_basis(camera: Camera) -> FloatArray:
    """``[3, 3]`` rows: the camera's right, up and forward unit vectors (world z is up
    in the image; looking straight down, world y is)."""
    forward = camera.target - camera.position
    forward = forward / np.linalg.norm(forward)
    up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(right, forward), forward])


def auto_camera(
    box: FloatArray, *, fov_deg: float = FIELD_OF_VIEW_DEG, aspect: float = 1.6,
    fill: float = 0.92,
) -> Camera:
    """Look down at the box from the south-west at ~45° elevation, just far enough back
    for all its corners to fall inside ``fill`` of a ``fov_deg`` (vertical) view of
    ``aspect`` (width / height)."""
    lo, hi = np.asarray(box[0], dtype=np.float64), np.asarray(box[1], dtype=np.float64)
    target = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] + 0.25 * (hi[2] - lo[2])])
    direction = np.array([-0.35, -0.85, 1.0])
    direction /= np.linalg.norm(direction)
    right, up, forward = camera_basis(Camera(position=target + direction, target=target))
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])]) - target
    tan_y = np.tan(np.radians(fov_deg) / 2) * fill
    # A corner at (x, y) across the view and d along it, seen from distance D, projects
    # to x / (D + d): it fits when D >= |x| / tan - d.
    needed = np.maximum(np.abs(corners @ right) / (tan_y * aspect),
                        np.abs(corners @ up) / tan_y) - corners @ forward
    distance = max(float(needed.max()), 1.0)
    return Camera(position=target + distance * direction, target=target)


