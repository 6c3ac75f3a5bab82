"""What a map draws (:class:`MapData`) and what one view of it shows (:class:`Layers`).

A map shows, in the world frame [m]:

* the scene mesh, semi-transparent (indoors, the ceiling and whatever lies wholly above
  the highest device + :data:`~twin.maps.style.CLIP_ABOVE_DEVICES_M` is hidden:
  :func:`~twin.maps.geometry.split_ceiling`);
* the base stations, the true UE track and each algorithm's estimated UE track;
* the run's RIS tiles (if any), each a filled rectangle of its true extent
  (:func:`~twin.maps.geometry.ris_tile_corners`), drawn
  :data:`~twin.maps.style.DRAWN_TILE_OFFSET_M` in front of its plane;
* the true interaction points: the single-bounce truth set (:func:`twin.scoring.truth_sets`),
  coloured by what the drawn algorithms made of them (:class:`PointStatus`: mapped by at
  least one, missed by all that can represent them, or unmodelled — on a floor or
  ceiling, which 2D algorithms cannot represent);
* each algorithm's estimated scatterers (one colour per algorithm) and a segment from
  each to the true point it is matched to;
* the name of every object that holds true points, at those points, and a table of
  which walls were mapped: per object and algorithm, matched / modelled true points.

The matchings are handed in (:class:`twin.scoring.AlgorithmMatching`, computed once by
``twin evaluate`` or by :func:`twin.maps.render.load_map`), so the map and ``report.md``
count the same pairs; over the whole drive the table equals the report's "which walls
were mapped". Scored truth is that of BS 0, as in ``twin evaluate``; a map without
estimates shows the single-bounce points of every BS.

Without ``snapshot`` a view shows the whole drive (every snapshot's points); with it,
that snapshot's points and matches and the tracks up to it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from estimators import Estimate
from estimators.arrays import SPEED_OF_LIGHT
from estimators.typing import FloatArray
from twin.errors import TwinInputError
from twin.maps.geometry import (
    Triangles,
    concat_meshes,
    crop,
    finite_rows,
    inside,
    outline,
    ris_tile_corners,
    split_ceiling,
)
from twin.maps.style import DRAWN_TILE_OFFSET_M, FOCUS_PAD_M, MIN_MARGIN_M, PointStatus
from twin.metrics import Matching
from twin.runfile import RunData
from twin.scoring import AlgorithmMatching, TruthPoints

if TYPE_CHECKING:
    import trimesh


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


def ris_quads(data: MapData) -> list[tuple[str, Triangles]]:
    """Each RIS tile's name and rectangle as two triangles (front side counter-clockwise),
    :data:`DRAWN_TILE_OFFSET_M` in front of its plane."""
    faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
    return [
        (name, Triangles(vertices=corners + DRAWN_TILE_OFFSET_M * normal, faces=faces))
        for name, corners, normal in zip(data.ris_name, data.ris_corners, data.ris_normal,
                                         strict=True)
    ]


def map_data(
    run_path: Path, run: RunData, truth: Sequence[TruthPoints],
    estimates: Mapping[str, Estimate], matchings: Mapping[str, AlgorithmMatching], *,
    estimate_paths: Sequence[Path] = (), cutoff: float, with_scene: bool = True,
) -> MapData:
    """Everything a map of ``run`` draws.

    Parameters
    ----------
    run_path, run : the run file and its content.
    truth : per snapshot, the true points drawn (the single-bounce truth the matchings
        were made against; without algorithms, any BS's).
    estimates : algorithm → its :class:`~estimators.base.Estimate`, in the order drawn.
    matchings : algorithm → its scatterers matched to ``truth``
        (:func:`twin.scoring.match_algorithm`).
    estimate_paths : the files the estimates came from (named in warnings).
    cutoff : the matchings' cut-off [m] (shown).
    with_scene : load and draw the scene mesh (a missing scene file is a warning).
    """
    names = tuple(estimates)
    points = tuple(np.asarray(p.points, dtype=np.float64).reshape(-1, 3) for p in truth)
    objects = tuple(tuple(p.objects) for p in truth)

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
    scene, ceiling = concat_meshes(shown), concat_meshes(crop(hidden, region))
    drawn = [focus] + ([scene.vertices] if scene is not None else [])
    everything = np.concatenate(drawn)
    box = np.stack([everything.min(axis=0), everything.max(axis=0)])

    est_ue: dict[str, FloatArray] = {}
    outside = 0
    for name, est in estimates.items():
        matching = matchings[name]
        outside += sum(int((~inside(finite_rows(q), region)).sum()) for q in matching.estimated)
        ue = np.where(est.converged[:, None], np.asarray(est.ue_position, np.float64), np.nan)
        outside += int((np.all(np.isfinite(ue), axis=1) & ~inside(ue, region)).sum())
        est_ue[name] = ue
    estimated = [finite_rows(p) for name in names for p in matchings[name].estimated]
    estimated += [finite_rows(u) for u in est_ue.values()]
    cloud = np.concatenate([focus, *estimated])
    cloud = cloud[inside(cloud, region)]
    pad = np.array([FOCUS_PAD_M, FOCUS_PAD_M, 0.0])
    focus_box = np.stack([np.maximum(cloud.min(axis=0) - pad, box[0]),
                          np.minimum(cloud.max(axis=0) + pad, box[1])])
    focus_box[:, 2] = box[:, 2]
    if outside:
        from twin.scene import TwinWarning

        paths = dict.fromkeys(str(path) for path in estimate_paths)
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
        dimensions={name: matchings[name].dimensions for name in names}, est_ue=est_ue,
        est_points={name: matchings[name].estimated for name in names},
        modelled={name: matchings[name].modelled for name in names},
        matches={name: matchings[name].matchings for name in names},
        cutoff=float(cutoff), scene=scene, ceiling=ceiling,
        scene_edges=outline(shown), region=region, box=box, focus=focus_box,
        ris_name=run.ris.name if run.ris is not None else (), ris_corners=ris_corners,
        ris_normal=ris_normal,
    )


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
        ue[~inside(ue, data.region)] = np.nan
        cloud = finite_rows(np.concatenate([empty, *points]))
        out.est_track[name] = ue[:end]
        out.est_now[name] = (
            finite_rows(ue[snapshot:snapshot + 1]) if snapshot is not None else empty
        )
        out.est_points[name] = cloud[inside(cloud, data.region)]
        out.segments[name] = np.concatenate([np.zeros((0, 2, 3)), *segments])
    return out



def title(data: MapData, snapshot: int | None) -> str:
    """One line: run, scene and what is shown."""
    when = (f"snapshot {snapshot} (t = {data.time[snapshot]:g} s)" if snapshot is not None
            else f"all {data.num_snapshots} snapshots")
    return f"{data.run_name} · {Path(data.scene_source).name} · {when}"

