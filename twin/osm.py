"""OpenStreetMap buildings → a Sionna-format scene (``twin scene osm``).

Buildings (closed ways and multipolygon relations tagged ``building``) are read with
pyosmium (its area assembler joins relation members and keeps holes), projected with
pyproj to a local metric frame around an origin (x east, y north, z up [m], z = 0 the
ground), extruded to their height with trimesh (earcut triangulation) and written with
:func:`twin.scene.write_mitsuba_scene`: ``DIR/scene.xml``, one PLY per building named
after its OSM id and name, and ``DIR/scene.json`` with the origin, the projection and a
table of the buildings. The same ``scene.json`` turns latitude/longitude into scene
coordinates (:func:`load_georeference`), for ``ue.positions_latlon`` and lat/lon CSVs.

The projection is a transverse Mercator with its natural origin at the scene origin and
scale 1 (``+proj=tmerc +lat_0 +lon_0 +k=1`` on WGS 84): east and north in metres, a
scale error of x²/2R² (1.2e-6 at 10 km east or west of the origin).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import trimesh

from twin.errors import TwinInputError
from twin.install import require_extra
from twin.outputs import Artifact, atomic_directory, check_output, file_sha256, regular_file

#: ``scene.json``'s ``format`` value: how ``--overwrite`` recognises an OSM scene.
SCENE_FORMAT = "mmwave-twin osm scene"
SCENE_SCHEMA_VERSION = 1
SCENE_XML = "scene.xml"
SCENE_JSON = "scene.json"
#: Height of one storey [m] (``building:levels`` x this).
LEVEL_HEIGHT_M = 3.0
#: Material of buildings without a usable ``building:material`` tag, and of the ground.
DEFAULT_MATERIAL = "itu_concrete"
GROUND_MATERIAL = "itu_concrete"
GROUND_NAME = "ground"
#: Margin [m] of the ground plane around the buildings (without ``--bbox``).
GROUND_MARGIN_M = 20.0
#: A footprint ring closer than this [m²] to zero area is degenerate.
MIN_FOOTPRINT_AREA_M2 = 0.01

#: ``building:material`` (OSM's values) → ITU material.
OSM_MATERIALS: dict[str, str] = {
    "concrete": "itu_concrete",
    "reinforced_concrete": "itu_concrete",
    "cement_block": "itu_concrete",
    "stone": "itu_concrete",
    "sandstone": "itu_concrete",
    "limestone": "itu_concrete",
    "granite": "itu_concrete",
    "plaster": "itu_concrete",
    "masonry": "itu_brick",
    "brick": "itu_brick",
    "bricks": "itu_brick",
    "marble": "itu_marble",
    "glass": "itu_glass",
    "mirror": "itu_glass",
    "wood": "itu_wood",
    "timber": "itu_wood",
    "timber_framing": "itu_wood",
    "log": "itu_wood",
    "metal": "itu_metal",
    "metal_plates": "itu_metal",
    "steel": "itu_metal",
    "aluminium": "itu_metal",
    "copper": "itu_metal",
    "plasterboard": "itu_plasterboard",
}
#: Tags read for the facade material, first found wins.
MATERIAL_TAGS = ("building:material", "building:facade:material", "facade:material")

OSM_SCENE = Artifact(
    "scene directory written by twin scene osm", "twin scene osm",
    lambda path: _is_osm_scene(path), directory=True,
)


def _is_osm_scene(path: Path) -> bool:
    try:
        meta = json.loads((path / SCENE_JSON).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == SCENE_FORMAT


# ------------------------------------------------------------------ georeference


@dataclass(frozen=True)
class Georeference:
    """The scene's local frame: origin (WGS 84) and the PROJ string of the projection.

    Attributes
    ----------
    latitude_deg, longitude_deg : the origin [°] (x = y = 0; z = 0 is the ground).
    crs : PROJ string of the projection (x east, y north [m]).
    """

    latitude_deg: float
    longitude_deg: float
    crs: str

    @classmethod
    def at(cls, latitude_deg: float, longitude_deg: float) -> Georeference:
        """A transverse Mercator frame centred on the origin (scale 1, WGS 84)."""
        lat, lon = float(latitude_deg), float(longitude_deg)
        crs = (f"+proj=tmerc +lat_0={lat!r} +lon_0={lon!r} +k=1 +x_0=0 "
               "+y_0=0 +ellps=WGS84 +units=m +no_defs +type=crs")
        return cls(lat, lon, crs)

    def _transformer(self, inverse: bool = False) -> Any:
        from pyproj import Transformer

        wgs84 = "EPSG:4326"
        source, target = (self.crs, wgs84) if inverse else (wgs84, self.crs)
        return Transformer.from_crs(source, target, always_xy=True)

    def to_local(self, latitude_deg: npt.ArrayLike, longitude_deg: npt.ArrayLike
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """East, north [m] of points given in latitude and longitude [°] (any shape)."""
        x, y = self._transformer().transform(np.asarray(longitude_deg, dtype=np.float64),
                                             np.asarray(latitude_deg, dtype=np.float64))
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_latlon(self, east_m: npt.ArrayLike, north_m: npt.ArrayLike
                  ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Latitude, longitude [°] of scene points (east, north [m]; any shape)."""
        lon, lat = self._transformer(inverse=True).transform(
            np.asarray(east_m, dtype=np.float64), np.asarray(north_m, dtype=np.float64))
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    def positions(self, latlon_height: npt.ArrayLike, where: str) -> npt.NDArray[np.float64]:
        """Scene positions ``[N, 3]`` [m] of ``[N, 3]`` (latitude [°], longitude [°],
        height above the ground [m]) rows; ``where`` names them in errors."""
        rows = np.asarray(latlon_height, dtype=np.float64).reshape(-1, 3)
        if not np.all(np.isfinite(rows)):
            raise TwinInputError(f"{where}: positions must be finite numbers")
        bad = np.flatnonzero((np.abs(rows[:, 0]) > 90) | (np.abs(rows[:, 1]) > 180))
        if bad.size:
            raise TwinInputError(f"{where}[{bad[0]}]: ({rows[bad[0], 0]:g}, "
                                 f"{rows[bad[0], 1]:g}) is not a latitude, longitude [°]")
        x, y = self.to_local(rows[:, 0], rows[:, 1])
        return np.stack([x, y, rows[:, 2]], axis=1)


def load_georeference(scene_path: Path, where: str) -> Georeference:
    """The georeference of a scene written by ``twin scene osm``: ``scene.json`` beside
    its XML. ``where`` (the config key that needs it) names the input in errors."""
    meta_path = Path(scene_path).parent / SCENE_JSON
    try:
        meta = json.loads(meta_path.read_text())
        origin = meta["origin"]
        return Georeference(float(origin["latitude_deg"]), float(origin["longitude_deg"]),
                            str(meta["crs"]))
    except FileNotFoundError:
        raise TwinInputError(
            f"{where}: the scene {scene_path} has no georeference ({SCENE_JSON} beside it, "
            "written by `twin scene osm`); give positions in metres") from None
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise TwinInputError(f"{where}: {meta_path}: not a scene georeference "
                             f"({type(exc).__name__})") from None


# ------------------------------------------------------------------ tags


def parse_length(text: str | None) -> float | None:
    """A length tag [m]: ``12``, ``12.5 m``, ``40 ft``, ``40'``; None if absent or not one."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]+(?:[.,][0-9]*)?)\s*(m|metres?|meters?|ft|feet|')?\s*",
                         text)
    if match is None:
        return None
    value = float(match.group(1).replace(",", "."))
    return value * 0.3048 if match.group(2) in ("ft", "feet", "'") else value


def _levels(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def building_heights(tags: dict[str, str], default_height_m: float, label: str
                     ) -> tuple[float, float, str]:
    """Top and bottom [m] of a building and where its top came from.

    The top is ``height``, else ``building:levels`` x :data:`LEVEL_HEIGHT_M`, else
    ``default_height_m``; the bottom ``min_height``, else ``building:min_level`` x
    :data:`LEVEL_HEIGHT_M`, else 0. A tag present but unreadable is warned about
    (naming ``label``) and the next source is used.
    """
    top, source = parse_length(tags.get("height")), "height"
    if top is None or top <= 0:
        if "height" in tags:
            _warn(f"{label}: height '{tags['height']}' is not a length; using the next source")
        levels = _levels(tags.get("building:levels"))
        if levels is not None and levels > 0:
            top, source = levels * LEVEL_HEIGHT_M, "building:levels"
        else:
            if "building:levels" in tags:
                _warn(f"{label}: building:levels '{tags['building:levels']}' is not a "
                      "number of levels; using the default height")
            top, source = default_height_m, "default"
    bottom = parse_length(tags.get("min_height"))
    if bottom is None:
        if "min_height" in tags:
            _warn(f"{label}: min_height '{tags['min_height']}' is not a length; ignored")
        min_level = _levels(tags.get("building:min_level"))
        bottom = min_level * LEVEL_HEIGHT_M if min_level is not None else 0.0
    return float(top), float(bottom), source


def building_material(tags: dict[str, str]) -> tuple[str, str | None]:
    """The ITU material of a building and the tag value it came from (None: default)."""
    for key in MATERIAL_TAGS:
        value = tags.get(key)
        if value is not None:
            material = OSM_MATERIALS.get(value.strip().lower())
            if material is not None:
                return material, value
    return DEFAULT_MATERIAL, None


def object_name(osm_type: str, osm_id: int, name: str | None) -> str:
    """``way123_Name``: the OSM type and id, then the name in ASCII (accents dropped)."""
    from twin.scene import _safe_name

    base = f"{osm_type}{osm_id}"
    if not name:
        return base
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = _safe_name(ascii_name)
    return f"{base}_{ascii_name[:48]}" if ascii_name != "object" else base


def _warn(message: str) -> None:
    from twin.scene import TwinWarning

    warnings.warn(message, TwinWarning, stacklevel=3)


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Building:
    """One extruded building, as ``scene.json`` lists it.

    Attributes
    ----------
    object : its object name in the scene (the PLY's stem; what paths report).
    osm : ``way/ID`` or ``relation/ID``.
    name : its ``name`` tag ("" if none).
    height_m, min_height_m : top and bottom above the ground [m].
    height_source : ``height``, ``building:levels`` or ``default``.
    material : ITU material; ``material_tag`` the OSM value it came from ("" if default).
    footprint_m2 : footprint area [m²] (holes excluded).
    """

    object: str
    osm: str
    name: str
    height_m: float
    min_height_m: float
    height_source: str
    material: str
    material_tag: str
    footprint_m2: float


@dataclass(frozen=True)
class OsmScene:
    """What :func:`osm_scene` wrote.

    Attributes
    ----------
    xml : ``DIR/scene.xml``.
    georeference : origin and projection.
    buildings : the buildings written, in object-name order.
    skipped : one line per building left out (why).
    ground : a ground plane was written (object ``ground``).
    """

    xml: Path
    georeference: Georeference
    buildings: tuple[Building, ...]
    skipped: tuple[str, ...]
    ground: bool


@dataclass(frozen=True)
class _Footprint:
    osm_type: str
    osm_id: int
    tags: dict[str, str]
    wkb: str  # hex-encoded WKB, lon/lat [°]


def _read_footprints(source: Path) -> tuple[list[_Footprint], list[tuple[str, int, Any]]]:
    """Building areas (lon/lat WKB) and the building candidates the area assembler did
    not turn into an area: (type, id, for a relation its name, for a way (closed, node
    count, the lon/lat [°] of its nodes the file locates, its name))."""
    import osmium

    factory = osmium.geom.WKBFactory()
    areas: list[_Footprint] = []
    candidates: dict[tuple[str, int], Any] = {}
    building = osmium.filter.KeyFilter("building")
    try:
        processor = osmium.FileProcessor(str(source)).with_areas(building).with_filter(building)
        for obj in processor:
            tags = {tag.k: tag.v for tag in obj.tags}
            if tags.get("building", "no") == "no":
                continue
            if isinstance(obj, osmium.osm.Area):
                try:
                    wkb = factory.create_multipolygon(obj)  # hex-encoded WKB
                except RuntimeError:
                    continue  # reported below as not assembled
                areas.append(_Footprint("way" if obj.from_way() else "relation",
                                        int(obj.orig_id()), tags, wkb))
            elif isinstance(obj, osmium.osm.Way):
                located = [(n.lon, n.lat) for n in obj.nodes if n.location.valid()]
                candidates[("way", int(obj.id))] = (obj.is_closed(), len(obj.nodes), located,
                                                    tags.get("name"))
            elif isinstance(obj, osmium.osm.Relation) and tags.get("type") == "multipolygon":
                candidates[("relation", int(obj.id))] = tags.get("name")
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TwinInputError(f"{source}: not a readable OSM file ({first[:200]})") from None
    made = {(a.osm_type, a.osm_id) for a in areas}
    failed = [(kind, osm_id, where) for (kind, osm_id), where in candidates.items()
              if (kind, osm_id) not in made]
    return areas, failed


# ------------------------------------------------------------------ the scene


def osm_scene(
    source: Path,
    output: Path,
    *,
    bbox: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    default_height_m: float = 12.0,
    ground: bool = False,
    overwrite: bool = False,
) -> OsmScene:
    """Extrude the buildings of an OSM file into a Sionna scene directory.

    Parameters
    ----------
    source : ``.osm`` (XML) or ``.osm.pbf`` file (anything pyosmium reads).
    output : the scene directory to write (``scene.xml``, ``meshes/``, ``scene.json``),
        replaced whole and atomically.
    bbox : ``(west, south, east, north)`` [°]: only buildings whose footprint centroid
        lies inside (default: all).
    origin : ``(latitude, longitude)`` [°] of the local frame's origin (default: the
        bbox centre, else the centre of the buildings' bounds).
    default_height_m : height of buildings without ``height`` or ``building:levels`` [m].
    ground : also write a ground plane (object ``ground``, z = 0) under the bbox (or the
        buildings with a 20 m margin).
    overwrite : replace an existing scene directory written by this function.

    Raises
    ------
    TwinInputError
        Unreadable file, bad bbox or origin, no buildings (inside the bbox), no building
        that could be built, or an output the rules of :mod:`twin.outputs` refuse.
        Nothing is written then; also without the ``osm`` extra's packages.
    """
    require_extra("osm", "twin scene osm")
    import shapely

    source, output = Path(source), Path(output)
    if not source.exists():
        raise TwinInputError(f"{source}: file not found")
    regular_file(source, "OSM file")
    if not math.isfinite(default_height_m) or default_height_m <= 0:
        raise TwinInputError(f"--default-height: must be a positive length [m], got "
                             f"{default_height_m:g}")
    box = _check_bbox(bbox)
    if origin is not None:
        lat0, lon0 = _check_origin(origin)
    check_output(output, OSM_SCENE, overwrite=overwrite, inputs=[source], what="output")

    areas, failed = _read_footprints(source)
    skipped: list[str] = []
    chosen: list[tuple[_Footprint, Any]] = []
    for area in areas:
        geom = shapely.from_wkb(area.wkb)
        if box is not None:
            c = geom.centroid
            if not (box[0] <= c.x <= box[2] and box[1] <= c.y <= box[3]):
                continue
        chosen.append((area, geom))
    for kind, osm_id, info in failed:
        if kind == "relation":  # its whereabouts are unknown without its members
            if box is None:
                skipped.append(_skip(_label_of(kind, osm_id, info), "its members could not "
                                     "be assembled into polygons (self-intersecting, "
                                     "unclosed or missing members)"))
            continue
        closed, count, located, name = info
        if box is not None and located:
            lon, lat = np.mean(located, axis=0)
            if not (box[0] <= lon <= box[2] and box[1] <= lat <= box[3]):
                continue
        if len(located) < count:
            reason = (f"{count - len(located)} of its {count} nodes are missing from the file "
                      "(cut at the extract's edge)")
        elif not closed or count < 4:
            reason = "its outline is not a closed ring"
        else:
            reason = "its outline could not be assembled into a polygon (self-intersecting)"
        skipped.append(_skip(_label_of(kind, osm_id, name), reason))
    where = f" inside --bbox {','.join(f'{v:g}' for v in box)}" if box is not None else ""
    if not chosen:
        for line in skipped:
            _warn(line)
        if skipped:
            raise TwinInputError(f"{source}: none of the {len(skipped)} buildings{where} "
                                 "could be built (see the warnings)")
        raise TwinInputError(f"{source}: no buildings{where} (ways or multipolygon "
                             "relations tagged building)")
    if origin is None:
        if box is not None:
            lat0, lon0 = (box[1] + box[3]) / 2, (box[0] + box[2]) / 2
        else:
            west, south, east, north = shapely.total_bounds([g for _, g in chosen])
            lat0, lon0 = (south + north) / 2, (west + east) / 2
    geo = Georeference.at(lat0, lon0)
    forward = geo._transformer()

    def project(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = forward.transform(coords[:, 0], coords[:, 1])
        return np.stack([x, y], axis=1)

    meshes: dict[str, trimesh.Trimesh] = {}
    materials: dict[str, str] = {}
    buildings: list[Building] = []
    from twin.scene import _unique_name

    for area, geom in chosen:
        label = _label(area)
        local = shapely.transform(geom, project)
        if not local.is_valid:
            skipped.append(_skip(label, f"invalid footprint ({shapely.is_valid_reason(local)})"))
            continue
        if local.area < MIN_FOOTPRINT_AREA_M2:
            skipped.append(_skip(label, f"degenerate footprint ({local.area:.3g} m²)"))
            continue
        top, bottom, height_source = building_heights(area.tags, default_height_m, label)
        if bottom >= top:
            skipped.append(_skip(label, f"min_height {bottom:g} m is not below its height "
                                 f"{top:g} m"))
            continue
        try:
            mesh = _extrude(local, bottom, top)
        except Exception as exc:  # triangulation of a pathological footprint
            skipped.append(_skip(label, f"footprint could not be triangulated "
                                 f"({type(exc).__name__})"))
            continue
        name = _unique_name(object_name(area.osm_type, area.osm_id, area.tags.get("name")),
                            meshes)
        material, tag = building_material(area.tags)
        meshes[name] = mesh
        materials[name] = material
        buildings.append(Building(
            name, f"{area.osm_type}/{area.osm_id}", area.tags.get("name", ""), top, bottom,
            height_source, material, tag or "", float(local.area)))
    for line in skipped:
        _warn(line)
    if not meshes:
        raise TwinInputError(f"{source}: none of the {len(skipped)} buildings{where} could "
                             "be built (see the warnings)")
    if ground:  # building names start with "way" or "relation": no clash
        meshes[GROUND_NAME] = _ground(meshes, box, geo)
        materials[GROUND_NAME] = GROUND_MATERIAL
    buildings.sort(key=lambda b: b.object)
    meta = {
        "format": SCENE_FORMAT,
        "schema_version": SCENE_SCHEMA_VERSION,
        "source": {"file": source.name, "sha256": file_sha256(source)},
        "origin": {"latitude_deg": geo.latitude_deg, "longitude_deg": geo.longitude_deg},
        "crs": geo.crs,
        "frame": "x east, y north, z up [m]; z = 0 is the ground",
        "bbox": list(box) if box is not None else None,
        "default_height_m": default_height_m,
        "level_height_m": LEVEL_HEIGHT_M,
        "ground": ground,
        "buildings": [asdict(b) for b in buildings],
        "skipped": skipped,
    }
    from twin.scene import write_mitsuba_scene

    with atomic_directory(output) as tmp:
        write_mitsuba_scene(meshes, materials, tmp, xml_name=SCENE_XML)
        (tmp / SCENE_JSON).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return OsmScene(output / SCENE_XML, geo, tuple(buildings), tuple(skipped), ground)


def _label(area: _Footprint) -> str:
    return _label_of(area.osm_type, area.osm_id, area.tags.get("name"))


def _label_of(osm_type: str, osm_id: int, name: str | None) -> str:
    return f"{osm_type}/{osm_id}" + (f" ({name})" if name else "")


def _skip(label: str, reason: str) -> str:
    return f"building {label} skipped: {reason}"


def _extrude(footprint: Any, bottom: float, top: float) -> trimesh.Trimesh:
    """A closed prism per polygon of ``footprint`` (holes kept) from ``bottom`` to ``top``."""
    parts = []
    for polygon in getattr(footprint, "geoms", [footprint]):
        part = trimesh.creation.extrude_polygon(polygon, top - bottom, engine="earcut")
        part.apply_translation([0.0, 0.0, bottom])
        parts.append(part)
    mesh = cast(trimesh.Trimesh, trimesh.util.concatenate(parts))
    keep = mesh.nondegenerate_faces(height=1e-9)
    if not keep.all():
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise ValueError("no triangles")
    return mesh


def _ground(meshes: dict[str, trimesh.Trimesh], box: tuple[float, ...] | None,
            geo: Georeference) -> trimesh.Trimesh:
    """A rectangle at z = 0 (normal up) under the bbox, else under the buildings + margin."""
    if box is not None:
        x, y = geo.to_local([box[1], box[1], box[3], box[3]], [box[0], box[2], box[0], box[2]])
        x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    else:
        lo = np.min([m.bounds[0] for m in meshes.values()], axis=0) - GROUND_MARGIN_M
        hi = np.max([m.bounds[1] for m in meshes.values()], axis=0) + GROUND_MARGIN_M
        x0, y0, x1, y1 = lo[0], lo[1], hi[0], hi[1]
    vertices = np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]])
    return trimesh.Trimesh(vertices, np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def _check_bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    values = tuple(float(v) for v in bbox)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise TwinInputError("--bbox: expected four numbers west,south,east,north [°]")
    west, south, east, north = values
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise TwinInputError(f"--bbox: {west:g},{south:g},{east:g},{north:g} is not "
                             "west,south,east,north with west < east and south < north [°]")
    return west, south, east, north


def _check_origin(origin: Sequence[float]) -> tuple[float, float]:
    values = tuple(float(v) for v in origin)
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or not (
            abs(values[0]) <= 90 and abs(values[1]) <= 180):
        raise TwinInputError("--origin: expected lat,lon [°] (|lat| <= 90, |lon| <= 180)")
    return values[0], values[1]


def parse_numbers(text: str, count: int, option: str) -> list[float]:
    """``count`` comma-separated numbers of a CLI option, or a one-line error."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise TwinInputError(f"{option}: expected {count} comma-separated numbers, got "
                             f"'{text}'")
    return values


__all__ = ["Building", "Georeference", "OsmScene", "building_heights", "building_material",
           "load_georeference", "object_name", "osm_scene", "parse_length"]
