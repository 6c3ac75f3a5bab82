"""Scenes: Sionna built-ins, Mitsuba XML, or any mesh trimesh reads.

Every scene is loaded with per-object identity (no shape merging), so ground truth
says *which* object (by name) a path hit. Meshes from trimesh are checked (NaN/inf
vertices, empty meshes are errors; degenerate faces are dropped with a warning),
converted to z-up metres, and written as one PLY per object into a Mitsuba XML.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trimesh

from twin.backend import mitsuba, sionna_rt
from twin.config import SceneConfig
from twin.errors import TwinInputError
from twin.outputs import regular_file

#: The bundled scenes: the repository's ``scenes/`` folder, installed as the package
#: ``twin._scenes`` (pyproject.toml maps it; a wheel carries it, an editable install
#: points at the folder), found through :mod:`importlib.resources`.
BUNDLED_DIR = Path(str(resources.files("twin._scenes")))
MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")

# Slab thickness [m] used for each ITU material (Sionna's thin-slab model).
MATERIAL_THICKNESS_M: dict[str, float] = {
    "concrete": 0.2,
    "brick": 0.2,
    "plasterboard": 0.0125,
    "wood": 0.04,
    "glass": 0.01,
    "clear_acrylic": 0.01,
    "ceiling_board": 0.02,
    "chipboard": 0.02,
    "plywood": 0.02,
    "marble": 0.03,
    "floorboard": 0.02,
    "vinyl_tile": 0.005,
    "carpet_tile": 0.01,
    "asphalt_concrete": 0.1,
    "metal": 0.002,
    "very_dry_ground": 1.0,
    "medium_dry_ground": 1.0,
    "wet_ground": 1.0,
}
# glTF/OBJ exporters are usually y-up; the twin's world (Sionna's) is z-up.
_Y_UP_TO_Z_UP = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


GROUND_TILT_RAD = float(np.deg2rad(5.0))
"""Faces whose normal is within this of vertical count as ground
(:meth:`TwinScene.ground_under`)."""
GROUND_POINTS = 64
"""Drive positions :meth:`TwinScene.ground_under` looks under (evenly spaced)."""


class TwinWarning(UserWarning):
    """Something the user should know about their input; the run goes on."""


def itu_materials() -> dict[str, list[tuple[float, float]]]:
    """Valid material names (``itu_<type>``) and the frequency ranges [Hz] they cover."""
    from sionna.rt.radio_materials.itu import ITU_MATERIALS_PROPERTIES

    return {
        f"itu_{itu_type}": _merge_ranges((low * 1e9, high * 1e9) for low, high in table)
        for itu_type, table in ITU_MATERIALS_PROPERTIES.items()
        if itu_type != "vacuum"
    }


def _merge_ranges(ranges: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def check_material(name: str, frequency_hz: float, where: str) -> None:
    """Raise a one-line error for an unknown material or one undefined at the frequency."""
    valid = itu_materials()
    if name not in valid:
        raise TwinInputError(
            f"{where}: unknown material '{name}' (valid: {', '.join(sorted(valid))})"
        )
    ranges = valid[name]
    if not any(low <= frequency_hz <= high for low, high in ranges):
        spans = ", ".join(f"{low / 1e9:g}-{high / 1e9:g} GHz" for low, high in ranges)
        raise TwinInputError(
            f"{where}: material '{name}' is defined for {spans}, not {frequency_hz / 1e9:g} GHz"
        )


@dataclass
class TwinScene:
    """A loaded Sionna scene plus the identity and geometry the truth needs.

    Attributes
    ----------
    sionna_scene : the ``sionna.rt.Scene``.
    source : what was loaded (``builtin:NAME``, a path).
    sha256 : hash of the scene file and every mesh file it references.
    object_names : the objects' names, sorted; an object's (canonical) id is its index
        here. Sionna's own ids depend on what the process loaded before, so they never
        leave this class (see :meth:`canonical_object_ids`).
    """

    sionna_scene: Any
    source: str
    sha256: str
    object_names: list[str]
    _sionna_to_canonical: npt.NDArray[np.int64] = field(repr=False)
    _face_normals: dict[int, npt.NDArray[np.float64]] = field(default_factory=dict, repr=False)
    _meshes: dict[int, trimesh.Trimesh] = field(default_factory=dict, repr=False)

    def object_mesh(self, object_id: int) -> trimesh.Trimesh:
        """World-space triangle mesh of an object (cached)."""
        if object_id not in self._meshes:
            name = self.object_names[object_id]
            mi_mesh = self.sionna_scene.objects[name].mi_mesh
            vertices = np.asarray(mi_mesh.vertex_positions_buffer(), dtype=np.float64)
            faces = np.asarray(mi_mesh.faces_buffer(), dtype=np.int64)
            self._meshes[object_id] = trimesh.Trimesh(
                vertices.reshape(-1, 3), faces.reshape(-1, 3), process=False
            )
        return self._meshes[object_id]

    def face_normals(self, object_id: int) -> npt.NDArray[np.float64]:
        """Unit normals ``[face, 3]`` of an object's triangles, float64."""
        if object_id not in self._face_normals:
            mesh = self.object_mesh(object_id)
            tri = mesh.triangles
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            norm = np.linalg.norm(n, axis=1, keepdims=True)
            self._face_normals[object_id] = n / np.where(norm > 0, norm, 1.0)
        return self._face_normals[object_id]

    @classmethod
    def from_sionna(cls, sionna_scene: Any, source: str, sha256: str) -> TwinScene:
        """Wrap a loaded Sionna scene, numbering its objects by sorted name."""
        objects = sionna_scene.objects
        names = sorted(objects)
        size = max((int(o.object_id) for o in objects.values()), default=-1) + 1
        table = np.full(size, -1, dtype=np.int64)
        for index, name in enumerate(names):
            table[int(objects[name].object_id)] = index
        return cls(sionna_scene, source, sha256, names, table)

    def canonical_object_ids(self, sionna_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Map Sionna object ids (any shape) to canonical ids (-1 where unknown)."""
        ids = np.asarray(sionna_ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self._sionna_to_canonical))
        return np.where(inside, self._sionna_to_canonical[np.where(inside, ids, 0)], -1)

    @property
    def object_ids(self) -> list[int]:
        return list(range(len(self.object_names)))

    def bounding_box(self) -> npt.NDArray[np.float64]:
        """``[2, 3]`` (min, max) corner of all objects [m]."""
        bbox = self.sionna_scene.mi_scene.bbox()
        return np.array([list(bbox.min), list(bbox.max)], dtype=np.float64)

    def ground_under(self, points: npt.ArrayLike) -> float | None:
        """The height [m] of the ground under ``points [N, 3]`` [m]: for each point the
        highest horizontal face (normal within :data:`GROUND_TILT_RAD` of vertical) whose
        footprint holds it and that lies below it, then the median over the points with
        one (at most :data:`GROUND_POINTS`, evenly spaced); None where no point has one.

        The ground the estimators' pinned ground bounce reflects off (their
        ``ground_height``): where the drive is, not a fixed z = 0."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        pts = pts[np.unique(np.linspace(0, len(pts) - 1, min(len(pts), GROUND_POINTS))
                            .astype(np.int64))] if len(pts) else pts
        faces = [self.object_mesh(oid).triangles[np.abs(self.face_normals(oid)[:, 2])
                                                 >= np.cos(GROUND_TILT_RAD)]
                 for oid in self.object_ids]
        tri = np.concatenate([f for f in faces if len(f)] or [np.zeros((0, 3, 3))])
        if not len(tri) or not len(pts):
            return None
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        e1, e2 = (b - a)[:, :2], (c - a)[:, :2]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        ok = np.abs(det) > 1e-12
        heights = []
        for p in pts:
            d = p[:2] - a[:, :2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / det
                v = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / det
            z = a[:, 2] + u * (b - a)[:, 2] + v * (c - a)[:, 2]
            hit = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (z <= p[2])
            if hit.any():
                heights.append(float(z[hit].max()))
        return float(np.median(heights)) if heights else None

    def objects_containing(self, points: npt.ArrayLike) -> list[str]:
        """For each point ``[N, 3]``, the name of a closed object containing it, or ``""``.

        Only watertight objects are tested (an open surface has no inside).
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        inside = [""] * len(pts)
        for oid in self.object_ids:
            mesh = self.object_mesh(oid)
            lo, hi = mesh.bounds
            near = np.flatnonzero(np.all((pts >= lo) & (pts <= hi), axis=1))
            if near.size == 0 or not mesh.is_watertight:
                continue
            hit = mesh.contains(pts[near])
            for idx in near[hit]:
                inside[idx] = inside[idx] or self.object_names[oid]
        return inside


# --------------------------------------------------------------------- sources


def builtin_scenes() -> dict[str, Path]:
    """Sionna RT's built-in scenes: name -> XML path."""
    rt = sionna_rt()
    out = {}
    for name in dir(rt.scene):
        value = getattr(rt.scene, name)
        if isinstance(value, str) and value.endswith(".xml"):
            out[name] = Path(value)
    return dict(sorted(out.items()))


def bundled_scenes() -> dict[str, Path]:
    """The project's bundled scenes (``scenes/<name>/<name>.xml``): name -> XML path."""
    if not BUNDLED_DIR.is_dir():
        return {}
    xmls = sorted(BUNDLED_DIR.glob("*/*.xml"))
    return {p.parent.name: p for p in xmls if p.stem == p.parent.name}


def resolve_scene_path(file: str, base_dir: Path) -> Path:
    """Path of the scene file named in the config (``builtin:``/``bundled:`` or a path)."""
    for prefix, table in (("builtin:", builtin_scenes), ("bundled:", bundled_scenes)):
        if file.startswith(prefix):
            name = file.removeprefix(prefix)
            scenes = table()
            if name not in scenes:
                raise TwinInputError(
                    f"scene.file: unknown scene '{file}' "
                    f"(available: {', '.join(prefix + n for n in scenes)})"
                )
            return scenes[name]
    path = Path(file).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise TwinInputError(f"scene.file: {file}: file not found")
    return path


def scene_files(path: Path) -> list[Path]:
    """A scene file and every file it references that exists (XML meshes, glTF buffers
    and images, OBJ material libraries; a missing one is the loader's to report), each
    checked to be a regular file: not a device or a pipe, which a loader would read
    without end."""
    files = [path, *(ref for ref in _referenced_files(path) if os.path.lexists(ref))]
    for file in files:
        regular_file(file, f"scene.file: {path.name} references" if file != path
                     else "scene.file")
    return files


def scene_sha256(path: Path, files: Sequence[Path] | None = None) -> str:
    """SHA-256 over a scene file and every file it references (:func:`scene_files`,
    or ``files`` when the caller has them already)."""
    digest = hashlib.sha256()
    for file in scene_files(path) if files is None else files:
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _referenced_files(path: Path) -> list[Path]:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return list(_xml_referenced_files(path))
    if suffix == ".gltf":
        try:
            gltf = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return []  # the loader reports the unreadable file
        uris = [item.get("uri", "") for key in ("buffers", "images") for item in gltf.get(key, [])]
        return [path.parent / u for u in uris if u and not u.startswith("data:")]
    if suffix == ".obj":
        refs: list[Path] = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("mtllib "):
                refs.extend(path.parent / name for name in line.split()[1:])
        return refs
    return []


def _xml_referenced_files(path: Path) -> Iterator[Path]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise TwinInputError(f"scene.file: {path}: not a valid XML scene ({exc})") from None
    for node in root.iter("string"):
        if node.get("name") == "filename" and node.get("value"):
            yield path.parent / str(node.get("value"))


# --------------------------------------------------------------------- loading


def load_twin_scene(config: SceneConfig, base_dir: Path, frequency_hz: float) -> TwinScene:
    """Load the scene named in the config.

    Parameters
    ----------
    config : the ``scene`` section.
    base_dir : directory that relative paths resolve against.
    frequency_hz : carrier [Hz]; materials are checked against their ITU range.
    """
    for key, name in [("default", config.materials.default)] + [
        (f"overrides['{glob}']", mat) for glob, mat in config.materials.overrides.items()
    ]:
        check_material(name, frequency_hz, f"scene.materials.{key}")
    path = resolve_scene_path(config.file, base_dir)
    files = scene_files(path)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        if config.unit_scale != 1.0 or config.up_axis != "z":
            raise TwinInputError(
                "scene.unit_scale/up_axis: apply only to mesh files, not Mitsuba XML scenes"
            )
        sionna_scene = _load_xml(path)
    elif suffix in MESH_SUFFIXES:
        meshes = read_mesh_objects(path, unit_scale=config.unit_scale, up_axis=config.up_axis)
        materials = {
            name: _material_for(name, mesh_material, config)
            for name, (_, mesh_material) in meshes.items()
        }
        with tempfile.TemporaryDirectory(prefix="twin-scene-") as tmp:
            xml = write_mitsuba_scene(
                {n: m for n, (m, _) in meshes.items()}, materials, Path(tmp)
            )
            sionna_scene = _load_xml(xml)
    else:
        raise TwinInputError(
            f"scene.file: {path}: unsupported format '{suffix}' "
            f"(use .xml or one of {', '.join(MESH_SUFFIXES)})"
        )
    if suffix == ".xml":
        _apply_overrides(sionna_scene, config)
    if not sionna_scene.objects:
        raise TwinInputError(f"scene.file: {path}: the scene has no objects")
    _check_scene_materials(sionna_scene, frequency_hz, path)
    source = config.file if ":" in config.file.split("/")[0] else str(path)
    return TwinScene.from_sionna(sionna_scene, source, scene_sha256(path, files))


def _check_scene_materials(sionna_scene: Any, frequency_hz: float, path: Path) -> None:
    """Every ITU material the scene uses must be defined at the carrier frequency."""
    rt = sionna_rt()
    checked: set[str] = set()
    for name, obj in sionna_scene.objects.items():
        material = obj.radio_material
        if not isinstance(material, rt.ITURadioMaterial) or material.name in checked:
            continue
        checked.add(material.name)
        check_material(f"itu_{material.itu_type}", frequency_hz,
                       f"scene.file: {path.name}: object '{name}'")


def _load_xml(path: Path) -> Any:
    rt = sionna_rt()
    try:
        return rt.load_scene(str(path), merge_shapes=False)
    except Exception as exc:  # Mitsuba raises RuntimeError with a multi-line message
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise TwinInputError(f"scene.file: {path}: cannot load scene ({first[:200]})") from None


def _material_for(object_name: str, mesh_material: str | None, config: SceneConfig) -> str:
    for glob, material in config.materials.overrides.items():
        if fnmatch.fnmatchcase(object_name.lower(), glob.lower()):
            return material
    if mesh_material is not None and mesh_material in itu_materials():
        return mesh_material
    return config.materials.default


def _apply_overrides(sionna_scene: Any, config: SceneConfig) -> None:
    if not config.materials.overrides:
        return
    for name, obj in sionna_scene.objects.items():
        for glob, material in config.materials.overrides.items():
            if fnmatch.fnmatchcase(name.lower(), glob.lower()):
                obj.radio_material = _radio_material(sionna_scene, material)
                break


def _radio_material(sionna_scene: Any, name: str) -> Any:
    rt = sionna_rt()
    existing = sionna_scene.get(name)
    if existing is not None:
        return existing
    itu_type = name.removeprefix("itu_")
    return rt.ITURadioMaterial(name, itu_type, thickness=MATERIAL_THICKNESS_M.get(itu_type, 0.1))


def read_mesh_objects(
    path: Path, *, unit_scale: float = 1.0, up_axis: str = "z"
) -> dict[str, tuple[trimesh.Trimesh, str | None]]:
    """Read a mesh file into named, checked, z-up, metric objects.

    Returns
    -------
    objects : name -> (mesh in world coordinates [m], the file's material name or None).
    """
    kwargs: dict[str, Any] = {}
    if path.suffix.lower() == ".obj":
        kwargs = {"split_objects": True, "split_groups": True, "group_material": False}
    try:
        loaded = trimesh.load_scene(str(path), process=False, **kwargs)
    except Exception as exc:  # trimesh raises many types for unreadable files
        reason = type(exc).__name__
        raise TwinInputError(f"scene.file: {path}: unreadable mesh ({reason})") from None
    transform_fix = np.diag([unit_scale, unit_scale, unit_scale, 1.0])
    if up_axis == "y":
        transform_fix = transform_fix @ _Y_UP_TO_Z_UP
    objects: dict[str, tuple[trimesh.Trimesh, str | None]] = {}
    for node in loaded.graph.nodes_geometry:
        transform, geom_name = loaded.graph[node]
        geometry = loaded.geometry[geom_name]
        if not isinstance(geometry, trimesh.Trimesh):
            continue
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        if not np.all(np.isfinite(vertices)):
            raise TwinInputError(
                f"scene.file: {path}: object '{node}' has NaN/inf vertex coordinates"
            )
        faces = np.asarray(geometry.faces)
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise TwinInputError(
                f"scene.file: {path}: object '{node}' has faces indexing missing vertices"
            )
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        mesh.apply_transform(transform_fix @ np.asarray(transform))
        keep = mesh.nondegenerate_faces(height=1e-9)
        if not keep.all():
            warnings.warn(
                f"{path}: object '{node}': dropped {int((~keep).sum())} degenerate face(s)",
                TwinWarning,
                stacklevel=2,
            )
            mesh.update_faces(keep)
            mesh.remove_unreferenced_vertices()
        if len(mesh.faces) == 0:
            continue
        material = getattr(getattr(geometry.visual, "material", None), "name", None)
        objects[_unique_name(_safe_name(str(node)), objects)] = (mesh, material)
    if not objects:
        raise TwinInputError(f"scene.file: {path}: empty mesh (no triangles)")
    return objects


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).strip("_")
    return safe or "object"


def _unique_name(name: str, taken: dict[str, Any] | Sequence[str]) -> str:
    candidate, k = name, 1
    while candidate in taken:
        candidate = f"{name}_{k}"
        k += 1
    return candidate


def write_mitsuba_scene(
    meshes: dict[str, trimesh.Trimesh], materials: dict[str, str], out_dir: Path,
    *, xml_name: str | None = None,
) -> Path:
    """Write named meshes as ``meshes/<name>.ply`` plus a Sionna-ready Mitsuba XML.

    Parameters
    ----------
    meshes : object name -> world-space triangle mesh [m].
    materials : object name -> ITU material name (``itu_<type>``).
    out_dir : directory to write into; the XML is ``out_dir / f"{out_dir.name}.xml"``.
    xml_name : the XML's file name instead (e.g. ``scene.xml``).

    Returns
    -------
    The XML path.
    """
    (out_dir / "meshes").mkdir(parents=True, exist_ok=True)
    root = ET.Element("scene", version="2.1.0")
    for material in sorted(set(materials.values())):
        itu_type = material.removeprefix("itu_")
        bsdf = ET.SubElement(root, "bsdf", type="itu-radio-material", id=material)
        ET.SubElement(bsdf, "string", name="type", value=itu_type)
        ET.SubElement(
            bsdf, "float", name="thickness", value=repr(MATERIAL_THICKNESS_M.get(itu_type, 0.1))
        )
    for name, mesh in meshes.items():
        rel = f"meshes/{name}.ply"
        mesh.export(str(out_dir / rel), file_type="ply", encoding="binary")
        shape = ET.SubElement(root, "shape", type="ply", id=f"mesh-{name}")
        ET.SubElement(shape, "string", name="filename", value=rel)
        ET.SubElement(shape, "boolean", name="face_normals", value="true")
        ET.SubElement(shape, "ref", id=materials[name], name="bsdf")
    ET.indent(root)
    xml_path = out_dir / (xml_name or f"{out_dir.name}.xml")
    xml_path.write_text(ET.tostring(root, encoding="unicode") + "\n")
    return xml_path


def scene_bounding_box(path: Path) -> tuple[int, np.ndarray]:
    """Number of shapes and ``[2, 3]`` bounding box [m] of a Mitsuba XML scene."""
    mi = mitsuba()  # after sionna_rt(): Sionna's radio-material plugins are registered
    scene = mi.load_file(str(path), optimize=False)  # optimize=True merges shapes
    bbox = scene.bbox()
    return len(scene.shapes()), np.array([list(bbox.min), list(bbox.max)], dtype=np.float64)
