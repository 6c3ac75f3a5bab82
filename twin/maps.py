"""3D maps of a run and its estimates: ``twin render run.h5 [est.h5] -o map.png|map.html``.

A map shows, in the world frame [m]:

* the scene mesh, semi-transparent (indoors, the ceiling and whatever lies wholly above
  the highest device + :data:`CLIP_ABOVE_DEVICES_M` is hidden: :func:`split_ceiling`);
* the base stations, the true UE track and each algorithm's estimated UE track;
* the run's RIS tiles (if any), each a filled rectangle of its true extent
  (:func:`ris_tile_corners`), drawn :data:`DRAWN_TILE_OFFSET_M` in front of its plane;
* the true interaction points: the single-bounce truth set of ``twin evaluate``
  (:func:`twin.evaluate.truth_sets`), coloured by what the drawn algorithms made of them
  (:class:`PointStatus`: mapped by at least one, missed by all that can represent them,
  or unmodelled — on a floor or ceiling, which 2D algorithms cannot represent);
* each algorithm's estimated scatterers (one colour per algorithm) and a segment from
  each to the true point it is matched to;
* the name of every object that holds true points, at those points, and a table of
  which walls were mapped: per object and algorithm, matched / modelled true points.

The matching is the evaluation's own (:func:`twin.evaluate.match_snapshot`: optimal
assignment under the cut-off, in the horizontal plane for 2D algorithms), so the map and
``report.md`` count the same pairs; over the whole drive the table equals the report's
"which walls were mapped". Scored truth is that of BS 0, as in ``twin evaluate``; a map
without estimates shows the single-bounce points of every BS.

Without ``snapshot`` a map shows the whole drive (every snapshot's points); with it,
that snapshot's points and matches and the tracks up to it. The PNG is drawn by
:mod:`twin.map_png`, the self-contained HTML page by :mod:`twin.map_html`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from estimators.typing import FloatArray
from twin.errors import TwinInputError
from twin.outputs import Artifact, stamped

if TYPE_CHECKING:
    import trimesh

    from twin.estimate import EstimateFile
    from twin.metrics import Matching
    from twin.runfile import RisData, RunData


DEFAULT_CUTOFF_M = 1.0
"""Matching cut-off [m] between estimated scatterers and true interaction points (as
``twin evaluate``)."""
DEFAULT_SIZE = (1280, 800)
"""PNG size (width, height) [pixels]."""
OUTPUT_SUFFIXES = (".png", ".html")
PNG_BACKENDS = ("open3d", "matplotlib")
INDOOR_HEADROOM_M = 3.0
"""A scene whose top is less than this above the highest device is indoor (has a ceiling)."""
CLIP_ABOVE_DEVICES_M = 0.3
"""Indoors, faces wholly above the highest device + this are hidden."""
EDGE_ANGLE_DEG = 20.0
"""Scene edges drawn: mesh boundaries and creases sharper than this."""
FIELD_OF_VIEW_DEG = 40.0
"""Vertical field of view of the PNG camera."""
FOCUS_PAD_M = 2.0
"""Horizontal margin [m] of the default PNG view around devices and points."""
MIN_MARGIN_M = 10.0
"""The map's region: devices and true points plus max(this, half the drive's width)."""

DRAWN_TILE_OFFSET_M = 0.02
"""A RIS tile is drawn this far [m] in front of its plane (along its normal), so that the
wall it is mounted on does not hide it."""
SAME_COORDINATE_M = 1e-6
"""Element coordinates closer than this [m] along a tile axis lie in one row or column."""

# Colours: the scene in pale grey-blue, truth in green / red / grey by status, the BSs in
# gold, the true UE in black, RIS tiles in magenta, one colour per algorithm.
MESH_RGBA = (0.80, 0.83, 0.90, 0.25)
EDGE_RGB = (0.45, 0.48, 0.55)
BS_RGB = (0.93, 0.68, 0.05)
TRUE_UE_RGB = (0.10, 0.10, 0.10)
RIS_RGB = (0.90, 0.00, 0.50)
ALGORITHM_RGB = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.58, 0.40, 0.74), (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76), (0.09, 0.75, 0.81), (0.74, 0.74, 0.13), (0.50, 0.50, 0.50),
)


class PointStatus(IntEnum):
    """What the drawn algorithms made of a true interaction point at its snapshot."""

    TRUTH = 0
    """No algorithm drawn (a map of the truth alone)."""
    MAPPED = 1
    """Matched by at least one algorithm's scatterer (within the cut-off)."""
    MISSED = 2
    """Representable by at least one algorithm, matched by none."""
    UNMODELLED = 3
    """Representable by none (a floor or ceiling point, and only 2D algorithms drawn)."""


STATUS_STYLE: dict[PointStatus, tuple[str, tuple[float, float, float]]] = {
    PointStatus.TRUTH: ("true interaction points", (0.13, 0.55, 0.13)),
    PointStatus.MAPPED: ("true points, mapped", (0.13, 0.55, 0.13)),
    PointStatus.MISSED: ("true points, missed", (0.84, 0.10, 0.11)),
    PointStatus.UNMODELLED: ("true points, unmodelled (2D)", (0.62, 0.62, 0.62)),
}
"""Legend label and colour of each :class:`PointStatus`."""


# ---------------------------------------------------------------------------- data


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


@dataclass(frozen=True)
class WallRow:
    """One object of the "which walls were mapped" table.

    ``points``: its true interaction points in view; ``counts``: algorithm →
    (matched, modelled) among them (modelled 0: the algorithm cannot represent them).
    """

    name: str
    points: int
    counts: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class MapData:
    """Everything a map draws (see the module docstring).

    Attributes
    ----------
    run_name, scene_source : the run file's name and the scene it was traced in.
    time : ``[T]`` [s] snapshot times.
    bs_name, bs_position : the BSs, ``[B, 3]`` [m].
    ue_position : ``[T, 3]`` [m], the true UE track.
    truth_points : per snapshot ``[N_t, 3]`` [m], true single-bounce interaction points.
    truth_objects : per snapshot, the names of the objects those points lie on.
    algorithms : the algorithms drawn, in the estimate file's order.
    dimensions : algorithm → 2 (horizontal plane) or 3.
    est_ue : algorithm → ``[T, 3]`` [m] estimated UE positions (NaN where none).
    est_points : algorithm → per snapshot ``[Q_t, 3]`` [m], the reported scatterers.
    modelled : algorithm → per snapshot ``[N_t]``, whether it can represent each true point.
    matches : algorithm → per snapshot :class:`twin.metrics.Matching` of ``est_points``
        (estimate index) against ``truth_points`` (truth index).
    cutoff : the matching cut-off [m].
    scene : the drawn scene triangles (None without a mesh); ``ceiling``: the hidden
        part (objects named ``ceiling*``; indoors, faces above the devices).
    scene_edges : ``[M, 2, 3]`` [m] outline of the drawn scene (boundaries, creases).
    region : ``[2, 3]`` [m] (min, max) corners of the drive's area; estimated positions
        outside it are not drawn.
    box : ``[2, 3]`` [m] (min, max) corners of what is drawn.
    focus : ``[2, 3]`` [m] (min, max) corners of what matters (devices, RIS tiles, true
        and estimated points in the region, :data:`FOCUS_PAD_M` around them horizontally,
        the box's full height): what the default PNG camera frames.
    ris_name : the run's RIS tiles (empty without tiles).
    ris_corners : ``[R, 4, 3]`` [m] the tiles' rectangles, ``ris_normal [R, 3]`` their
        unit normals (:func:`ris_tile_corners`).
    """

    run_name: str
    scene_source: str
    time: FloatArray
    bs_name: tuple[str, ...]
    bs_position: FloatArray
    ue_position: FloatArray
    truth_points: tuple[FloatArray, ...]
    truth_objects: tuple[tuple[str, ...], ...]
    algorithms: tuple[str, ...]
    dimensions: dict[str, int]
    est_ue: dict[str, FloatArray]
    est_points: dict[str, tuple[FloatArray, ...]]
    modelled: dict[str, tuple[npt.NDArray[np.bool_], ...]]
    matches: dict[str, tuple[Matching, ...]]
    cutoff: float
    scene: Triangles | None
    ceiling: Triangles | None
    scene_edges: FloatArray
    region: FloatArray
    box: FloatArray
    focus: FloatArray
    ris_name: tuple[str, ...] = ()
    ris_corners: FloatArray = field(default_factory=lambda: np.zeros((0, 4, 3)))
    ris_normal: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def num_snapshots(self) -> int:
        return int(self.time.shape[0])

    def matched(self, name: str, t: int) -> npt.NDArray[np.bool_]:
        """``[N_t]``: which true points of snapshot ``t`` algorithm ``name`` matched."""
        hit = np.zeros(len(self.truth_points[t]), bool)
        hit[self.matches[name][t].pairs[:, 1]] = True
        return hit

    def status(self, t: int) -> npt.NDArray[np.int64]:
        """``[N_t]`` :class:`PointStatus` of snapshot ``t``'s true points."""
        n = len(self.truth_points[t])
        if not self.algorithms:
            return np.full(n, PointStatus.TRUTH, dtype=np.int64)
        mapped = np.any([self.matched(a, t) for a in self.algorithms], axis=0)
        modelled = np.any([self.modelled[a][t] for a in self.algorithms], axis=0)
        return np.select([mapped, modelled], [PointStatus.MAPPED, PointStatus.MISSED],
                         PointStatus.UNMODELLED).astype(np.int64)


@dataclass(frozen=True)
class Layers:
    """What one view of a map shows: one snapshot, or the whole drive (``snapshot=None``).

    ``ue_track [k, 3]`` up to the snapshot; ``ue_now [0 or 1, 3]`` the UE at the
    snapshot; ``truth [N, 3]`` with ``truth_status [N]`` (:class:`PointStatus`) and
    ``truth_text`` (object, snapshot and each algorithm's verdict); ``walls``: object
    name → label anchor ``[3]`` (the object's true point nearest their centroid);
    ``table``: the "which walls were mapped" rows; per algorithm ``est_track``,
    ``est_now``, ``est_points [Q, 3]`` (inside the map's region) and ``segments
    [M, 2, 3]`` (estimate → matched truth).
    """

    snapshot: int | None
    ue_track: FloatArray
    ue_now: FloatArray
    truth: FloatArray
    truth_status: npt.NDArray[np.int64]
    truth_text: tuple[str, ...]
    walls: dict[str, FloatArray]
    table: tuple[WallRow, ...]
    est_track: dict[str, FloatArray] = field(default_factory=dict)
    est_now: dict[str, FloatArray] = field(default_factory=dict)
    est_points: dict[str, FloatArray] = field(default_factory=dict)
    segments: dict[str, FloatArray] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_map` wrote: ``path``, ``backend`` (``open3d``, ``matplotlib``
    or ``plotly``), the number of snapshots of the run and the algorithms drawn."""

    path: Path
    backend: str
    num_snapshots: int
    algorithms: tuple[str, ...]


# ---------------------------------------------------------------------------- inputs


def parse_camera(text: str) -> Camera:
    """Parse ``"x,y,z:tx,ty,tz"`` (camera position : look-at point, metres).

    Raises
    ------
    TwinInputError
        One line naming ``--camera`` for anything else (or position == target).
    """
    usage = f"--camera: expected 'x,y,z:tx,ty,tz' (metres), got '{text}'"
    parts = text.split(":")
    if len(parts) != 2:
        raise TwinInputError(usage)
    try:
        values = [np.array([float(v) for v in part.split(",")]) for part in parts]
    except ValueError:
        raise TwinInputError(usage) from None
    if any(v.shape != (3,) or not np.all(np.isfinite(v)) for v in values):
        raise TwinInputError(usage)
    if np.allclose(values[0], values[1]):
        raise TwinInputError(f"--camera: position and look-at point coincide in '{text}'")
    return Camera(position=values[0], target=values[1])


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"`` in pixels (each 64 … 8192)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise TwinInputError(f"--size: expected WIDTHxHEIGHT in pixels, got '{text}'") from None
    if not (64 <= width <= 8192 and 64 <= height <= 8192):
        raise TwinInputError(f"--size: {text}: width and height must be 64..8192 pixels")
    return width, height


# ---------------------------------------------------------------------------- scene


def indoor_clip_height(scene_top: float, devices: FloatArray) -> float | None:
    """Height [m] above which an indoor scene is hidden so that its inside shows: the
    highest device + :data:`CLIP_ABOVE_DEVICES_M` when the scene's top is less than
    :data:`INDOOR_HEADROOM_M` above it; None outdoors."""
    highest = float(np.max(np.asarray(devices)[:, 2]))
    return highest + CLIP_ABOVE_DEVICES_M if scene_top - highest < INDOOR_HEADROOM_M else None


def _scene_meshes(run: RunData, run_path: Path) -> list[tuple[str, trimesh.Trimesh]]:
    """The run's scene objects (name, world mesh), or ``[]`` with a warning."""
    import yaml

    from twin.config import SceneConfig
    from twin.scene import TwinWarning, load_twin_scene

    source = run.scene_source
    prefixed = ":" in source.split("/")[0]
    if not prefixed and not Path(source).is_file():
        warnings.warn(
            f"{run_path}: scene file {source} not found; drawing the map without the mesh",
            TwinWarning, stacklevel=3,
        )
        return []
    try:
        section = (yaml.safe_load(run.config_yaml) or {}).get("scene") or {}
        config = SceneConfig(**{**section, "file": source})
        scene = load_twin_scene(config, Path.cwd(), run.carrier_frequency)
    except (TwinInputError, ValueError, TypeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(
            f"{run_path}: cannot load the scene {source} ({reason}); drawing the map "
            "without the mesh", TwinWarning, stacklevel=3,
        )
        return []
    if scene.sha256 != run.scene_sha256:
        warnings.warn(
            f"{run_path}: the scene {source} changed since the run was traced (SHA-256 "
            f"{scene.sha256[:12]}… vs the run's {run.scene_sha256[:12]}…); drawing the "
            "current file", TwinWarning, stacklevel=3,
        )
    return [(name, scene.object_mesh(i)) for i, name in enumerate(scene.object_names)]


def _concat(meshes: Sequence[trimesh.Trimesh]) -> Triangles | None:
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


def _inside(points: FloatArray, region: FloatArray) -> npt.NDArray[np.bool_]:
    return np.all((points >= region[0]) & (points <= region[1]), axis=-1)


# ---------------------------------------------------------------------------- RIS tiles


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


def ris_quads(data: MapData) -> list[tuple[str, Triangles]]:
    """Each RIS tile's name and rectangle as two triangles (front side counter-clockwise),
    :data:`DRAWN_TILE_OFFSET_M` in front of its plane."""
    faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
    return [
        (name, Triangles(vertices=corners + DRAWN_TILE_OFFSET_M * normal, faces=faces))
        for name, corners, normal in zip(data.ris_name, data.ris_corners, data.ris_normal,
                                         strict=True)
    ]


# ---------------------------------------------------------------------------- loading


def load_map(
    run_path: str | Path,
    estimate_paths: str | Path | Sequence[str | Path] | None = None,
    *,
    algorithms: str | Sequence[str] | None = None,
    cutoff: float = DEFAULT_CUTOFF_M,
    with_scene: bool = True,
) -> MapData:
    """Read a run (and an estimate file) into what a map draws.

    Parameters
    ----------
    run_path : run file (``twin simulate``).
    estimate_paths : estimate file(s) of that run (``twin estimate``), optional.
    algorithms : algorithms of the estimate file(s) to draw (``"a,b"`` or a sequence;
        default: all; an algorithm found in two files must be narrowed down to one).
    cutoff : matching cut-off [m] between estimated and true points.
    with_scene : load and draw the scene mesh (a missing scene file is a warning).

    Raises
    ------
    TwinInputError
        One line: unreadable run or estimate file, estimates of another run, unknown
        algorithm, non-positive cut-off.
    """
    from twin.estimate import gather_estimates, split_names
    from twin.evaluate import check_cutoff
    from twin.runfile import read_run

    check_cutoff(cutoff)
    run_path = Path(run_path)
    run = read_run(run_path)
    paths = _as_paths(estimate_paths)
    if not paths and algorithms is not None and split_names(algorithms):
        raise TwinInputError("--algorithms: needs an estimate file (twin render RUN EST ...)")
    selected = gather_estimates(run_path, run, paths, algorithms)
    return map_data(run_path, run, selected, cutoff=cutoff, with_scene=with_scene)


def map_data(
    run_path: Path, run: RunData, selected: dict[str, tuple[Path, EstimateFile]], *,
    cutoff: float = DEFAULT_CUTOFF_M, with_scene: bool = True,
) -> MapData:
    """:func:`load_map` on a run and its estimates already read and checked
    (:func:`twin.estimate.gather_estimates`)."""
    from estimators.arrays import SPEED_OF_LIGHT
    from twin.evaluate import algorithm_dimensions, match_snapshot, snapshot_scatterers, truth_sets

    names = tuple(selected)

    # Scored truth is the evaluation's (BS 0); the truth alone shows every BS's points.
    scored = [truth_sets(run, b)["single_bounce"] for b in ((0,) if names else
                                                             range(len(run.bs_name)))]
    points = tuple(np.concatenate([s[t].points for s in scored]).reshape(-1, 3)
                   for t in range(run.drive.num_snapshots))
    objects = tuple(tuple(o for s in scored for o in s[t].objects)
                    for t in range(run.drive.num_snapshots))

    devices = np.concatenate([run.bs_position, finite_rows(run.drive.position)])
    ris_corners, ris_normal = (
        ris_tile_corners(run.ris, SPEED_OF_LIGHT / run.carrier_frequency)
        if run.ris is not None else (np.zeros((0, 4, 3)), np.zeros((0, 3))))
    focus = np.concatenate([devices, ris_corners.reshape(-1, 3), *points])
    extent = float(np.max(np.ptp(focus, axis=0)[:2]))
    margin = max(MIN_MARGIN_M, 0.5 * extent)
    region = np.stack([focus.min(axis=0) - margin, focus.max(axis=0) + margin])

    meshes = _scene_meshes(run, run_path) if with_scene else []
    shown, hidden = split_ceiling(meshes, devices)
    shown = crop(shown, region)
    scene, ceiling = _concat(shown), _concat(crop(hidden, region))
    drawn = [focus] + ([scene.vertices] if scene is not None else [])
    everything = np.concatenate(drawn)
    box = np.stack([everything.min(axis=0), everything.max(axis=0)])

    dimensions: dict[str, int] = {}
    est_ue: dict[str, FloatArray] = {}
    est_points: dict[str, tuple[FloatArray, ...]] = {}
    modelled: dict[str, tuple[npt.NDArray[np.bool_], ...]] = {}
    matches: dict[str, tuple[Matching, ...]] = {}
    outside = 0
    for name, (_, est_file) in selected.items():
        e, dims = est_file.estimates[name], algorithm_dimensions(est_file.params.get(name, {}))
        per_t, per_modelled, per_match = [], [], []
        for t, truth in enumerate(scored[0]):
            q = snapshot_scatterers(e, t)
            m, is_modelled = match_snapshot(q, truth, dims, cutoff)
            per_match.append(m)
            per_modelled.append(is_modelled)
            per_t.append(q)
            outside += int((~_inside(finite_rows(q), region)).sum())
        ue = np.where(e.converged[:, None], np.asarray(e.ue_position, np.float64), np.nan)
        outside += int((np.all(np.isfinite(ue), axis=1) & ~_inside(ue, region)).sum())
        dimensions[name], est_ue[name] = dims, ue
        est_points[name], modelled[name], matches[name] = (
            tuple(per_t), tuple(per_modelled), tuple(per_match))
    estimated = [finite_rows(p) for e in est_points.values() for p in e]
    estimated += [finite_rows(u) for u in est_ue.values()]
    cloud = np.concatenate([focus, *estimated])
    cloud = cloud[_inside(cloud, region)]
    pad = np.array([FOCUS_PAD_M, FOCUS_PAD_M, 0.0])
    focus_box = np.stack([np.maximum(cloud.min(axis=0) - pad, box[0]),
                          np.minimum(cloud.max(axis=0) + pad, box[1])])
    focus_box[:, 2] = box[:, 2]
    if outside:
        from twin.scene import TwinWarning

        paths = dict.fromkeys(str(path) for path, _ in selected.values())
        warnings.warn(
            f"{', '.join(paths)}: {outside} estimated position(s) lie more than "
            f"{margin:.0f} m outside the drive's area and are not drawn", TwinWarning,
            stacklevel=2,
        )
    return MapData(
        run_name=run_path.name, scene_source=run.scene_source, time=run.drive.time,
        bs_name=run.bs_name, bs_position=np.asarray(run.bs_position, dtype=np.float64),
        ue_position=np.asarray(run.drive.position, dtype=np.float64),
        truth_points=points, truth_objects=objects, algorithms=names,
        dimensions=dimensions, est_ue=est_ue, est_points=est_points, modelled=modelled,
        matches=matches, cutoff=float(cutoff), scene=scene, ceiling=ceiling,
        scene_edges=outline(shown), region=region, box=box, focus=focus_box,
        ris_name=run.ris.name if run.ris is not None else (), ris_corners=ris_corners,
        ris_normal=ris_normal,
    )


def _as_paths(paths: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if paths is None:
        return []
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _verdicts(data: MapData, t: int, j: int) -> str:
    """What each algorithm made of true point ``j`` of snapshot ``t`` (hover text)."""
    parts = []
    for name in data.algorithms:
        m = data.matches[name][t]
        hit = np.flatnonzero(m.pairs[:, 1] == j)
        if hit.size:
            parts.append(f"mapped by {name} ({m.distances[hit[0]]:.2f} m)")
        elif data.modelled[name][t][j]:
            parts.append(f"missed by {name}")
        else:
            parts.append(f"unmodelled by {name} (2D)")
    return "<br>".join(parts)


def wall_table(data: MapData, snapshots: Sequence[int]) -> tuple[WallRow, ...]:
    """Per object holding true points at ``snapshots`` (sorted by name): the number of
    points and, per algorithm, (matched, modelled) among them."""
    counts: dict[str, dict[str, list[int]]] = {}
    totals: dict[str, int] = {}
    for t in snapshots:
        matched = {a: data.matched(a, t) for a in data.algorithms}
        for j, obj in enumerate(data.truth_objects[t]):
            totals[obj] = totals.get(obj, 0) + 1
            row = counts.setdefault(obj, {a: [0, 0] for a in data.algorithms})
            for a in data.algorithms:
                row[a][0] += int(matched[a][j])
                row[a][1] += int(data.modelled[a][t][j])
    return tuple(
        WallRow(name=obj, points=totals[obj],
                counts={a: (c[0], c[1]) for a, c in counts[obj].items()})
        for obj in sorted(totals)
    )


def wall_cell(matched: int, modelled: int) -> tuple[str, tuple[float, float, float]]:
    """A walls-table cell: ``"matched/modelled"`` (``"2D: —"`` when the algorithm cannot
    represent the object's points) and its tint, white to green with the recall."""
    share = matched / modelled if modelled else 0.0
    text = f"{matched}/{modelled}" if modelled else "2D: —"
    return text, (1.0 - 0.45 * share, 1.0 - 0.15 * share, 1.0 - 0.45 * share)


def drawn_statuses(data: MapData) -> list[PointStatus]:
    """The true-point layers of a map, the same for every view of it: the truth alone,
    or mapped and missed (and unmodelled where the drive has such points)."""
    if not data.algorithms:
        return [PointStatus.TRUTH]
    found = {PointStatus(s) for t in range(data.num_snapshots) for s in data.status(t)}
    return [PointStatus.MAPPED, PointStatus.MISSED] + (
        [PointStatus.UNMODELLED] if PointStatus.UNMODELLED in found else [])


def layers(data: MapData, snapshot: int | None) -> Layers:
    """The layers of one snapshot's view (``None``: the whole drive)."""
    snaps = list(range(data.num_snapshots)) if snapshot is None else [snapshot]
    end = data.num_snapshots if snapshot is None else snapshot + 1
    empty = np.zeros((0, 3))
    truth = np.concatenate([empty, *(data.truth_points[t] for t in snaps)])
    objects = [o for t in snaps for o in data.truth_objects[t]]
    text = tuple(
        f"{obj} · snapshot {t}" + (f"<br>{_verdicts(data, t, j)}" if data.algorithms else "")
        for t in snaps for j, obj in enumerate(data.truth_objects[t])
    )
    walls: dict[str, FloatArray] = {}
    for obj in sorted(set(objects)):
        on = truth[np.array([o == obj for o in objects])]
        walls[obj] = on[np.argmin(np.linalg.norm(on - on.mean(axis=0), axis=1))]
    out = Layers(
        snapshot=snapshot, ue_track=data.ue_position[:end],
        ue_now=data.ue_position[snapshot:snapshot + 1] if snapshot is not None else empty,
        truth=truth,
        truth_status=np.concatenate([np.zeros(0, np.int64), *(data.status(t) for t in snaps)]),
        truth_text=text, walls=walls, table=wall_table(data, snaps),
    )
    for name in data.algorithms:
        points = [data.est_points[name][t] for t in snaps]
        segments = [
            np.stack([p[m.pairs[:, 0]], data.truth_points[t][m.pairs[:, 1]]], axis=1)
            for p, t in zip(points, snaps, strict=True) for m in [data.matches[name][t]]
        ]
        ue = data.est_ue[name].copy()
        ue[~_inside(ue, data.region)] = np.nan
        cloud = finite_rows(np.concatenate([empty, *points]))
        out.est_track[name] = ue[:end]
        out.est_now[name] = (
            finite_rows(ue[snapshot:snapshot + 1]) if snapshot is not None else empty
        )
        out.est_points[name] = cloud[_inside(cloud, data.region)]
        out.segments[name] = np.concatenate([np.zeros((0, 2, 3)), *segments])
    return out


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


# ---------------------------------------------------------------------------- render


MAP_STAMP = "map"
#: What ``twin render`` writes (``--overwrite`` replaces only this): a PNG or an HTML page
#: stamped :data:`MAP_STAMP`.
MAP = Artifact("twin map", "twin render", stamped(MAP_STAMP))


def render_map(
    run_path: str | Path,
    estimate_paths: str | Path | Sequence[str | Path] | None,
    output: str | Path,
    *,
    algorithms: str | Sequence[str] | None = None,
    snapshot: int | None = None,
    camera: Camera | str | None = None,
    cutoff: float = DEFAULT_CUTOFF_M,
    size: tuple[int, int] | str = DEFAULT_SIZE,
    overwrite: bool = False,
    png_backend: str | None = None,
) -> RenderResult:
    """Draw a run (and its estimates) as a PNG or a self-contained HTML page.

    Parameters
    ----------
    run_path : run file.
    estimate_paths : estimate file(s) of that run, or None (truth only).
    output : ``.png`` or ``.html``; written atomically.
    algorithms : algorithms to draw (default: all in the estimate file(s)).
    snapshot : snapshot index to show (PNG: that snapshot only, tracks up to it; HTML:
        the slider's starting position). Default: the whole drive.
    camera : :class:`Camera` or ``"x,y,z:tx,ty,tz"``; default :func:`auto_camera`. The
        HTML page takes only its viewing direction (it can be turned with the mouse).
    cutoff : matching cut-off [m].
    size : PNG ``(width, height)`` or ``"WxH"`` [pixels].
    overwrite : replace an existing output.
    png_backend : ``open3d`` or ``matplotlib``; default ``$TWIN_PNG_BACKEND``, else
        Open3D with matplotlib as the fallback.

    Raises
    ------
    TwinInputError
        One line naming the input (see :func:`load_map`; also an unsupported output
        extension, an existing output without ``overwrite``, a snapshot out of range,
        a malformed camera or size). Nothing is written then.
    """
    from twin.outputs import atomic_file, check_output

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise TwinInputError(
            f"{output}: unsupported output format '{output.suffix or '(none)'}' "
            "(use .png or .html)"
        )
    cam = parse_camera(camera) if isinstance(camera, str) else camera
    width, height = parse_size(size) if isinstance(size, str) else size
    backend = png_backend or os.environ.get("TWIN_PNG_BACKEND") or None
    if backend is not None and backend not in PNG_BACKENDS:
        raise TwinInputError(
            f"TWIN_PNG_BACKEND: unknown PNG backend '{backend}' (use {', '.join(PNG_BACKENDS)})"
        )
    check_output(output, MAP, overwrite=overwrite,
                 inputs=[Path(run_path), *_as_paths(estimate_paths)])
    data = load_map(run_path, estimate_paths, algorithms=algorithms, cutoff=cutoff)
    if snapshot is not None and not 0 <= snapshot < data.num_snapshots:
        raise TwinInputError(
            f"--snapshot: {snapshot} is out of range ({run_path} has {data.num_snapshots} "
            f"snapshots: 0..{data.num_snapshots - 1})"
        )
    with atomic_file(output) as tmp:
        used = write_map(data, tmp, html=suffix == ".html", snapshot=snapshot, camera=cam,
                         size=(width, height), png_backend=backend)
    return RenderResult(path=output, backend=used, num_snapshots=data.num_snapshots,
                        algorithms=data.algorithms)


def write_map(
    data: MapData, path: Path, *, html: bool, snapshot: int | None = None,
    camera: Camera | None = None, size: tuple[int, int] = DEFAULT_SIZE,
    png_backend: str | None = None,
) -> str:
    """Write ``data`` to ``path`` as an HTML page or a PNG (as is, not atomically),
    stamped as twin's map (:data:`MAP`); returns the backend that drew it (``plotly``,
    ``open3d`` or ``matplotlib``)."""
    from twin.map_html import write_html
    from twin.map_png import write_png
    from twin.outputs import stamp

    if html:
        write_html(data, path, snapshot=snapshot, camera=camera)
        used = "plotly"
    else:
        used = write_png(data, path, snapshot=snapshot, camera=camera, size=size,
                         backend=png_backend)
    stamp(path, MAP_STAMP)
    return used


def algorithm_rgb(index: int) -> tuple[float, float, float]:
    """The colour of the ``index``-th algorithm drawn."""
    return ALGORITHM_RGB[index % len(ALGORITHM_RGB)]


def title(data: MapData, snapshot: int | None) -> str:
    """One line: run, scene and what is shown."""
    when = (f"snapshot {snapshot} (t = {data.time[snapshot]:g} s)" if snapshot is not None
            else f"all {data.num_snapshots} snapshots")
    return f"{data.run_name} · {Path(data.scene_source).name} · {when}"
