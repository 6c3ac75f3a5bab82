"""PNG maps (:mod:`twin.maps.data`): Open3D's offscreen renderer, matplotlib as the fallback.

The image is the 3D view on the left and a panel on the right with the legend and the
"which walls were mapped" table (matched / modelled true points per object and
algorithm, cells tinted by recall); every object holding true points is named at them
in the view. RIS tiles are opaque quads in their exact colour (unlit, both sides).

Open3D (Filament) runs on a CPU through Mesa's software rasteriser, in a child process
(a renderer that cannot start aborts its process; the child also keeps Filament's
console chatter out of the CLI's output). What keeps it fast and predictable there
(measured on 2 cores, Open3D 0.20, Mesa 22.3; ``scripts/twin/bench_render.py``,
``docs/BENCHMARKS.md``):

* few renderables: every sphere in one mesh, lines one set per width (the demo map's 11
  sphere sets as 11 renderables: about 11.5 s a frame instead of 0.6 s);
* post-processing off (no FXAA, no tone mapping: vertex and line colours come out
  exactly; the image is rendered at :data:`SUPERSAMPLING` × the size and averaged down
  instead; a lone sphere at 2560 × 1600 took 37 s a frame with it, 21 s without);
* meshes as triangle soups (with the spheres as a dozen renderables, shared vertices
  made a frame 3.5× slower; merged, no difference was measured);
* points as unlit spheres with Lambert shading baked into vertex colours;
* a watchdog on the child (:data:`OPEN3D_FRAME_TIMEOUT_S`, :data:`OPEN3D_ATTEMPTS`).

The camera is given to Open3D as intrinsics and extrinsics (:func:`camera_matrices`), so
the wall labels are placed with exactly the projection that drew the points.

If Open3D fails, matplotlib's 3D axes draw the same layers, with a warning saying why;
``backend="open3d"|"matplotlib"`` (``TWIN_PNG_BACKEND``) forces one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators.typing import FloatArray
from twin.maps.data import (
    Layers,
    MapData,
    drawn_statuses,
    layers,
    ris_quads,
    title,
)
from twin.maps.geometry import (
    Camera,
    Triangles,
    auto_camera,
    camera_basis,
    finite_rows,
)
from twin.maps.style import (
    BS_RGB,
    DEFAULT_SIZE,
    EDGE_RGB,
    FIELD_OF_VIEW_DEG,
    MESH_RGBA,
    RIS_RGB,
    STATUS_STYLE,
    TRUE_UE_RGB,
    PointStatus,
    algorithm_rgb,
    wall_cell,
)

SUPERSAMPLING = 2
"""Open3D renders at this multiple of the PNG size, then averages down (antialiasing)."""
OPEN3D_ATTEMPTS = 4
OPEN3D_SETUP_TIMEOUT_S = 60.0
"""Limit on the child's start (imports, renderer, geometry; about 1.5 s)."""
OPEN3D_FRAME_TIMEOUT_S = 10.0
"""Limit on the frame (about 0.6 s). Open3D 0.20's offscreen loop on the software
rasteriser has been seen never to deliver its frame (up to 4 renders in 20 of an
earlier version of this child, whatever the thread count; none in 22 of this one): such
a child is killed and the render retried in a fresh process, :data:`OPEN3D_ATTEMPTS`
times in all, each retry with the meshes in twice as many pieces
(:func:`_mesh_pieces`)."""
PANEL_FRACTION = 0.3
"""Share of the PNG's width given to the legend and the walls table."""
MAX_TABLE_ROWS = 14
"""Objects listed in the PNG's walls table (those with the most true points)."""
DPI = 100


@dataclass
class _DrawList:
    """Backend-neutral drawables: meshes (lit, RGBA), flat meshes (opaque, unlit: their
    exact RGB), spheres (points) and line segments."""

    meshes: list[tuple[Triangles, tuple[float, ...]]] = field(default_factory=list)
    flat: list[tuple[Triangles, tuple[float, ...]]] = field(default_factory=list)
    spheres: list[tuple[FloatArray, float, tuple[float, ...]]] = field(default_factory=list)
    lines: list[tuple[FloatArray, float, tuple[float, ...]]] = field(default_factory=list)


def camera_matrices(
    camera: Camera, width: int, height: int, *, fov_deg: float = FIELD_OF_VIEW_DEG
) -> tuple[FloatArray, FloatArray]:
    """Pinhole intrinsics ``K [3, 3]`` (vertical field of view ``fov_deg``, principal
    point at the centre) and world → camera extrinsics ``[4, 4]`` (camera looks along
    +z, image y down; z of the world is up in the image)."""
    rotation = camera_basis(camera) * np.array([[1.0], [-1.0], [1.0]])  # image y is down
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rotation
    extrinsic[:3, 3] = -rotation @ camera.position
    focal = 0.5 * height / np.tan(np.radians(fov_deg) / 2)
    intrinsic = np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    return intrinsic, extrinsic


def project(points: FloatArray, intrinsic: FloatArray, extrinsic: FloatArray
            ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Pixel coordinates ``[N, 2]`` (x right, y down) of world points ``[N, 3]`` [m] and
    whether each lies in front of the camera."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    cam = pts @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    uvw = cam @ intrinsic.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return uvw[:, :2] / uvw[:, 2:], cam[:, 2] > 0


def _polyline(points: FloatArray) -> FloatArray:
    """Consecutive segments ``[M, 2, 3]`` of a track, skipping NaN positions."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 2:
        return np.zeros((0, 2, 3))
    seg = np.stack([pts[:-1], pts[1:]], axis=1)
    return seg[np.all(np.isfinite(seg), axis=(1, 2))]


def _draw_list(data: MapData, view: Layers) -> tuple[_DrawList, list[tuple[str, str, Any]]]:
    """Drawables of a view, and legend entries ``(kind, label, rgb)``."""
    extent = float(np.max(data.box[1] - data.box[0]))
    r = max(0.004 * extent, 0.02)
    draw = _DrawList()
    legend: list[tuple[str, str, Any]] = []
    if data.scene is not None:
        draw.meshes.append((data.scene, MESH_RGBA))
        draw.lines.append((data.scene_edges, 1.0, EDGE_RGB))
        legend.append(("mesh", "scene", MESH_RGBA))
    for name, quad in ris_quads(data):
        both_sides = np.concatenate([quad.faces, quad.faces[:, ::-1]])
        draw.flat.append((Triangles(quad.vertices, both_sides), RIS_RGB))
        legend.append(("tile", f"RIS tile {name}", RIS_RGB))
    draw.spheres.append((data.bs_position, 2.5 * r, BS_RGB))
    legend.append(("point", "base stations", BS_RGB))
    draw.lines.append((_polyline(view.ue_track), 3.0, TRUE_UE_RGB))
    draw.spheres.append((finite_rows(view.ue_track), 0.8 * r, TRUE_UE_RGB))
    draw.spheres.append((finite_rows(view.ue_now), 2.0 * r, TRUE_UE_RGB))
    legend.append(("track", "true UE track", TRUE_UE_RGB))
    for status in drawn_statuses(data):
        label, rgb = STATUS_STYLE[status]
        size = 0.8 * r if status == PointStatus.UNMODELLED else r
        draw.spheres.append((view.truth[view.truth_status == status], size, rgb))
        legend.append(("point", label, rgb))
    for i, name in enumerate(data.algorithms):
        rgb = algorithm_rgb(i)
        draw.lines.append((_polyline(view.est_track[name]), 2.0, rgb))
        draw.spheres.append((finite_rows(view.est_track[name]), 0.8 * r, rgb))
        draw.spheres.append((view.est_now[name], 2.0 * r, rgb))
        draw.spheres.append((view.est_points[name], 1.1 * r, rgb))
        draw.lines.append((view.segments[name], 2.0, rgb))
        legend.append(("track", f"{name}: UE track", rgb))
        legend.append(("scatterers", f"{name}: scatterers — matched (< {data.cutoff:g} m)",
                       rgb))
    return draw, legend


def write_png(
    data: MapData,
    path: Path,
    *,
    snapshot: int | None = None,
    camera: Camera | None = None,
    size: tuple[int, int] = DEFAULT_SIZE,
    backend: str | None = None,
) -> str:
    """Render the map to a PNG of ``size`` pixels; returns the backend used.

    ``backend``: ``open3d``, ``matplotlib``, or None for Open3D with a fallback to
    matplotlib (warning with the reason) when the offscreen renderer fails.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    view = layers(data, snapshot)
    draw, legend = _draw_list(data, view)
    width, height = size
    view_width = width - round(PANEL_FRACTION * width)
    cam = camera or auto_camera(data.focus, aspect=view_width / height)
    intrinsic, extrinsic = camera_matrices(cam, view_width, height)
    image = None
    if backend in (None, "open3d"):
        try:
            scaled = intrinsic * SUPERSAMPLING
            scaled[2, 2] = 1.0
            big = _render_open3d(draw, scaled, extrinsic,
                                 (view_width * SUPERSAMPLING, height * SUPERSAMPLING))
        except RuntimeError as exc:
            if backend == "open3d":
                raise
            from twin.scene import TwinWarning

            warnings.warn(f"Open3D offscreen rendering failed ({exc}); drawing the PNG "
                          "with matplotlib instead", TwinWarning, stacklevel=2)
        else:
            image = big.reshape(height, SUPERSAMPLING, view_width, SUPERSAMPLING, -1).mean(
                axis=(1, 3)) / 255.0
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)  # a renderer for the labels' extents
    rect = (0.0, 0.0, view_width / width, 1.0)
    font = max(5.0, min(9.0, width / 150, height / 60))
    if image is not None:
        ax = fig.add_axes(rect)
        ax.imshow(np.clip(image, 0.0, 1.0), interpolation="none")
        ax.set_xlim(-0.5, view_width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_axis_off()
        names = list(view.walls)
        pixels, ahead = project(np.array([view.walls[n] for n in names]).reshape(-1, 3),
                                intrinsic, extrinsic)
        seen = ahead & np.all((pixels >= 0) & (pixels < (view_width, height)), axis=1)
        _place_labels(fig, ax, [(n, xy) for n, xy, ok in zip(names, pixels, seen, strict=True)
                                if ok], font * 0.85)
    else:
        _draw_matplotlib(fig, rect, draw, cam, data.box, view, font)
    _panel(fig, (view_width / width, 0.0, 1.0 - view_width / width, 1.0), legend,
           view, data, font)
    fig.text(view_width / width - 0.005, 0.01, title(data, snapshot), ha="right",
             va="bottom", fontsize=font * 0.9, color="0.3")
    fig.savefig(path, dpi=DPI, format="png")
    return "open3d" if image is not None else "matplotlib"


def _place_labels(fig: Any, ax: Any, labels: Sequence[tuple[str, FloatArray]],
                  font: float) -> None:
    """Name points (pixel coordinates of ``ax``'s image) without overlapping labels: each
    label takes the first of a few offsets that clears those placed before it (with a
    thin leader line when moved off its point)."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    step = 1.6 * font
    offsets = [(4.0, 4.0)] + [(4.0, 4.0 + dy) for k in range(1, 6) for dy in (k * step,
                                                                            -k * step)]
    for name, (x, y) in labels:
        for n, offset in enumerate(offsets):
            label = ax.annotate(
                name, (x, y), xytext=offset, textcoords="offset points", fontsize=font,
                color="0.15", clip_on=True, zorder=3,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
                arrowprops=None if n == 0 else {"arrowstyle": "-", "color": "0.45", "lw": 0.5},
            )
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or n == len(offsets) - 1:
                placed.append(box)
                break
            label.remove()


# ---------------------------------------------------------------------------- Open3D


def _save_draw_list(draw: _DrawList, intrinsic: FloatArray, extrinsic: FloatArray,
                    size: tuple[int, int], merge_spheres: bool, spec: Path) -> None:
    arrays: dict[str, Any] = {"intrinsic": intrinsic, "extrinsic": extrinsic}
    items: list[dict[str, Any]] = []
    for i, (tri, rgba) in enumerate(draw.meshes):
        arrays[f"mesh{i}_v"], arrays[f"mesh{i}_f"] = tri.vertices, tri.faces
        items.append({"kind": "mesh", "key": f"mesh{i}", "rgba": list(rgba)})
    for i, (tri, rgb) in enumerate(draw.flat):
        arrays[f"flat{i}_v"], arrays[f"flat{i}_f"] = tri.vertices, tri.faces
        items.append({"kind": "flat", "key": f"flat{i}", "rgb": list(rgb)})
    for i, (centres, radius, rgb) in enumerate(draw.spheres):
        if len(centres):
            arrays[f"sph{i}"] = centres
            items.append({"kind": "spheres", "key": f"sph{i}", "radius": radius,
                          "rgb": list(rgb)})
    for i, (segments, width, rgb) in enumerate(draw.lines):
        if len(segments):
            arrays[f"lin{i}"] = segments
            items.append({"kind": "lines", "key": f"lin{i}", "width": width, "rgb": list(rgb)})
    manifest = {"items": items, "size": list(size), "merge_spheres": merge_spheres}
    np.savez(spec, manifest=json.dumps(manifest), **arrays)


def _render_open3d(
    draw: _DrawList, intrinsic: FloatArray, extrinsic: FloatArray, size: tuple[int, int],
    *, merge_spheres: bool = True,
) -> npt.NDArray[Any]:
    """Render the drawables with Open3D's offscreen renderer in a child process.

    A child that stalls is killed (:func:`_run_worker`) and the render retried
    (:data:`OPEN3D_ATTEMPTS` in all). ``merge_spheres=False`` (benchmarks only) gives
    each sphere set a renderable of its own. Returns the ``[height, width, 3]`` uint8
    image; raises RuntimeError (with the child's last error line) if it fails.
    """
    with tempfile.TemporaryDirectory(prefix="twin-render-") as tmp:
        spec, out, log = Path(tmp) / "spec.npz", Path(tmp) / "image.npy", Path(tmp) / "log"
        _save_draw_list(draw, intrinsic, extrinsic, size, merge_spheres, spec)
        for attempt in range(OPEN3D_ATTEMPTS):
            finished, code = _run_worker(spec, out, log, pieces=2**attempt)
            if not finished:
                continue
            if code != 0 or not out.is_file():
                lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()
                         if ln.strip()]
                errors = [ln for ln in lines if "rror" in ln or "reason" in ln or "what()" in ln]
                last = (errors or lines or ["no message"])[-1]
                raise RuntimeError(f"exit code {code}: {last[:200]}")
            image: npt.NDArray[Any] = np.load(out)
            break
        else:
            raise RuntimeError(f"no image after {OPEN3D_ATTEMPTS} tries (a frame never came)")
    if image.ndim != 3 or float(image.std()) == 0.0:
        raise RuntimeError("the renderer returned a blank image")
    return image[..., :3]


def _run_worker(spec: Path, out: Path, log: Path, pieces: int = 1) -> tuple[bool, int]:
    """Run the child once, each mesh in ``pieces`` renderables (:func:`_mesh_pieces`);
    it writes a byte to a pipe as its frame starts. Returns (finished, exit code); a child
    that stalls (:data:`OPEN3D_SETUP_TIMEOUT_S` to start, :data:`OPEN3D_FRAME_TIMEOUT_S`
    for the frame) is killed: (False, -9)."""
    import select

    read_end, write_end = os.pipe()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "twin.maps.png", "--open3d-worker", str(spec), str(out),
               str(write_end), str(pieces)]
    try:
        with log.open("wb") as sink:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, env=env, pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        limit = OPEN3D_SETUP_TIMEOUT_S
        with os.fdopen(read_end, "rb", buffering=0) as progress:
            read_end = -1
            while True:
                ready, _, _ = select.select([progress], [], [], limit)
                if not ready:
                    proc.kill()
                    proc.wait()
                    return False, -9
                if not progress.read(64):  # the child closed the pipe: it has ended
                    return True, proc.wait()
                limit = OPEN3D_FRAME_TIMEOUT_S
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)


def _shaded_spheres(
    centres: FloatArray, radius: float, rgb: Sequence[float], light: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
    """Icospheres at ``centres`` with Lambert shading baked into vertex colours.

    Returns vertices ``[V, 3]``, faces ``[F, 3]`` and colours ``[V, 3]`` (unlit shaders
    cost a fraction of lit ones on a software rasteriser).
    """
    import trimesh

    unit = trimesh.creation.icosphere(subdivisions=1)
    v0, f0 = np.asarray(unit.vertices), np.asarray(unit.faces, dtype=np.int64)
    # A triangle soup (no vertex shared between faces), as the scene mesh.
    v0, f0 = v0[f0].reshape(-1, 3), np.arange(3 * len(f0)).reshape(-1, 3)
    shade = 0.55 + 0.45 * np.clip(v0 @ light, 0.0, 1.0)
    vertices = (v0[None] * radius + centres[:, None]).reshape(-1, 3)
    faces = (f0[None] + len(v0) * np.arange(len(centres))[:, None, None]).reshape(-1, 3)
    colours = np.tile(shade[:, None] * np.asarray(rgb)[None, :3], (len(centres), 1))
    return vertices, faces, colours


def _mesh_pieces(faces: npt.NDArray[np.int64], pieces: int) -> list[npt.NDArray[np.int64]]:
    """``faces [F, 3]`` in ``pieces`` runs of consecutive faces (fewer where ``F`` is
    smaller), one renderable each.

    Why: some meshes never deliver a frame as one renderable on the software rasteriser,
    every time, and render at once in two: the scene mesh of the bundled street's
    ``ue_array`` drive (109 triangles) did, where its first 108 did not and faces 1-108
    did — no pattern found in the geometry. The retries of :func:`_render_open3d` split
    the meshes in 2, 4, 8 pieces instead of repeating the same frame.
    """
    return [part for part in np.array_split(faces, max(1, pieces)) if len(part)]


def _open3d_worker(spec: Path, out: Path, progress_fd: int, pieces: int = 1) -> None:
    """Child process: build Open3D geometry from ``spec`` (each mesh in ``pieces``
    renderables, :func:`_mesh_pieces`) and render it to ``out`` (.npy); a byte is
    written to ``progress_fd`` as the frame starts (the parent's watchdog)."""
    import open3d as o3d
    from open3d.visualization import rendering

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    with np.load(spec) as f:
        manifest = json.loads(str(f["manifest"]))
        arrays = {k: f[k] for k in f.files if k != "manifest"}
    width, height = manifest["size"]
    intrinsic, extrinsic = arrays["intrinsic"], arrays["extrinsic"]
    renderer = rendering.OffscreenRenderer(width, height)
    view = renderer.scene.view
    # No post-processing: on the software rasteriser it costs tens of seconds a large
    # frame (the image is supersampled instead), and tone mapping would change the given
    # colours.
    view.set_post_processing(False)
    view.set_antialiasing(False)
    view.set_shadowing(False, rendering.View.ShadowType.PCF)
    view.set_ambient_occlusion(False)
    scene = renderer.scene
    scene.set_background([1.0, 1.0, 1.0, 1.0])
    sun = extrinsic[2, :3] + np.array([0.3, 0.5, -0.6])  # the view direction, tilted
    scene.set_lighting(rendering.Open3DScene.LightingProfile.NO_SHADOWS,
                       (sun / np.linalg.norm(sun)).astype(np.float32))
    light = -sun / np.linalg.norm(sun)
    # Few renderables: every sphere in one mesh, lines one set per width (with a dozen
    # renderables a frame took 50x longer on the software rasteriser).
    spheres: list[tuple[FloatArray, npt.NDArray[np.int64], FloatArray]] = []
    lines: dict[float, list[tuple[FloatArray, FloatArray]]] = {}
    for n, item in enumerate(manifest["items"]):
        if item["kind"] in ("mesh", "flat"):
            for k, faces in enumerate(_mesh_pieces(arrays[item["key"] + "_f"], pieces)):
                soup = arrays[item["key"] + "_v"][faces].reshape(-1, 3)
                mesh = o3d.geometry.TriangleMesh(
                    o3d.utility.Vector3dVector(soup),
                    o3d.utility.Vector3iVector(
                        np.arange(len(soup), dtype=np.int32).reshape(-1, 3)),
                )
                mesh.compute_vertex_normals()
                material = rendering.MaterialRecord()
                if item["kind"] == "flat":  # vertex colours come out exactly, a base not
                    mesh.vertex_colors = o3d.utility.Vector3dVector(
                        np.tile(item["rgb"], (len(soup), 1)))
                    material.shader = "defaultUnlit"
                else:
                    material.shader = "defaultLitTransparency"
                    material.base_color = item["rgba"]
                    material.base_roughness = 0.9
                scene.add_geometry(f"mesh{n}.{k}", mesh, material)
        elif item["kind"] == "spheres":
            spheres.append(_shaded_spheres(arrays[item["key"]], item["radius"], item["rgb"],
                                           light))
        else:
            segments = arrays[item["key"]]
            lines.setdefault(float(item["width"]), []).append(
                (segments.reshape(-1, 3), np.tile(item["rgb"], (len(segments), 1))))
    groups = [spheres] if manifest["merge_spheres"] else [[one] for one in spheres]
    for k, group in enumerate(g for g in groups if g):
        offsets = np.cumsum([0] + [len(v) for v, _, _ in group[:-1]])
        balls = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(np.concatenate([v for v, _, _ in group])),
            o3d.utility.Vector3iVector(np.concatenate(
                [f + o for (_, f, _), o in zip(group, offsets, strict=True)]).astype(np.int32)),
        )
        balls.vertex_colors = o3d.utility.Vector3dVector(np.concatenate([c for *_, c in group]))
        material = rendering.MaterialRecord()
        material.shader = "defaultUnlit"
        scene.add_geometry(f"spheres{k}", balls, material)
    for k, (line_width, parts) in enumerate(sorted(lines.items())):
        ends = np.concatenate([e for e, _ in parts])
        line_set = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(ends),
            o3d.utility.Vector2iVector(np.arange(len(ends)).reshape(-1, 2)))
        line_set.colors = o3d.utility.Vector3dVector(np.concatenate([c for _, c in parts]))
        material = rendering.MaterialRecord()
        material.shader = "unlitLine"
        material.line_width = line_width * height / 800.0
        scene.add_geometry(f"lines{k}", line_set, material)
    renderer.setup_camera(intrinsic, extrinsic, width, height)
    os.write(progress_fd, b".")
    image = np.asarray(renderer.render_to_image())[..., :3]
    np.save(out, image)
    os.close(progress_fd)


# ---------------------------------------------------------------------------- matplotlib


def _draw_matplotlib(fig: Any, rect: tuple[float, float, float, float], draw: _DrawList,
                     camera: Camera, box: FloatArray, view: Layers, font: float) -> None:
    """The fallback: the same drawables (and wall names) on matplotlib's 3D axes."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection

    ax: Any = fig.add_axes(rect, projection="3d")
    for tri, rgba in draw.meshes:
        ax.add_collection3d(Poly3DCollection(
            tri.vertices[tri.faces], facecolor=rgba[:3], alpha=rgba[3] * 0.6,
            edgecolor=(*rgba[:3], 0.3), linewidth=0.2))
    for tri, rgb in draw.flat:
        ax.add_collection3d(Poly3DCollection(tri.vertices[tri.faces], facecolor=rgb,
                                             edgecolor="none", shade=False))
    width_px = fig.get_figwidth() * fig.dpi * rect[2]
    scale = min(width_px, fig.get_figheight() * fig.dpi) / 800
    for segments, lw, rgb in draw.lines:
        if len(segments):
            ax.add_collection3d(Line3DCollection(segments, colors=[rgb], linewidths=lw * scale))
    extent = float(np.max(box[1] - box[0]))
    for centres, radius, rgb in draw.spheres:
        if len(centres):
            s = (radius / extent * 1500 * scale) ** 2
            ax.scatter(centres[:, 0], centres[:, 1], centres[:, 2], s=s, color=[rgb],
                       depthshade=False)
    for name, anchor in view.walls.items():
        ax.text(*anchor, f" {name}", fontsize=font * 0.85, color="0.15")
    ax.set_xlim(box[0, 0], box[1, 0])
    ax.set_ylim(box[0, 1], box[1, 1])
    ax.set_zlim(box[0, 2], box[1, 2])
    ax.set_box_aspect(np.maximum(box[1] - box[0], 1e-3))
    d = camera.position - camera.target
    ax.view_init(elev=float(np.degrees(np.arctan2(d[2], np.hypot(d[0], d[1])))),
                 azim=float(np.degrees(np.arctan2(d[1], d[0]))))
    ax.set_axis_off()


# ---------------------------------------------------------------------------- panel


def _legend_handles(legend: Sequence[tuple[str, str, Any]]) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    for kind, label, rgb in legend:
        if kind == "mesh":
            handles.append(Patch(facecolor=rgb[:3], alpha=0.5, edgecolor="none", label=label))
        elif kind == "tile":
            handles.append(Patch(facecolor=rgb[:3], edgecolor="none", label=label))
        elif kind == "track":
            handles.append(Line2D([], [], color=rgb, lw=2, marker="o", ms=3, label=label))
        else:  # a point, or scatterers with the segment to their match
            handles.append(Line2D([], [], color=rgb, lw=1.5 if kind == "scatterers" else 0,
                                  marker="o", ms=6, label=label))
    return handles


def _panel(fig: Any, rect: tuple[float, float, float, float],
           legend: Sequence[tuple[str, str, Any]], view: Layers, data: MapData,
           font: float) -> None:
    """The legend and, below it, the "which walls were mapped" table."""
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    ax.legend(handles=_legend_handles(legend), loc="upper left", fontsize=font,
              frameon=False, borderaxespad=0.3, handlelength=1.6)
    rows = sorted(view.table, key=lambda r: -r.points)[:MAX_TABLE_ROWS]
    rows.sort(key=lambda r: r.name)
    if not rows:
        return
    header = ["object", "points", *data.algorithms]
    cells, colours = [], []
    for row in rows:
        line = [row.name, str(row.points)]
        tint: list[Any] = ["white", "white"]
        for name in data.algorithms:
            text, colour = wall_cell(*row.counts[name])
            line.append(text)
            tint.append(colour)
        cells.append(line)
        colours.append(tint)
    table_font = font * 0.8
    row_height = 1.9 * table_font / 72 * DPI / (fig.get_figheight() * DPI * rect[3])
    height = min(0.5, row_height * (len(rows) + 1))
    more = len(view.table) - len(rows)
    caption = "which walls were mapped: matched / modelled true points" + (
        f" ({more} more objects in report.md)" if more else "")
    ax.text(0.0, 0.02 + height + 0.01, caption, fontsize=table_font, va="bottom",
            transform=ax.transAxes, wrap=True)
    table = ax.table(cellText=cells, colLabels=header, cellColours=colours,
                     bbox=(0.0, 0.02, 0.98, height), cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(table_font)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("0.85")
        cell.set_linewidth(0.5)
        if r == 0 and c >= 2:
            cell.get_text().set_color(algorithm_rgb(c - 2))
        if c == 0:
            cell.get_text().set_horizontalalignment("left")
    table.auto_set_column_width(list(range(len(header))))


if __name__ == "__main__":  # the Open3D child process of _render_open3d
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--open3d-worker":
        _open3d_worker(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]),
                       int(sys.argv[5]) if len(sys.argv) == 6 else 1)
    else:
        sys.exit("usage: python -m twin.maps.png --open3d-worker SPEC.npz OUT.npy FD "
                 "[PIECES]")
