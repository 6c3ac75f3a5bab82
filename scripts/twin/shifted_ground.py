"""The bundled street lifted by ``--dz`` metres (the scene, the BSs and the drives; the
physics does not change) against the street as bundled: the ground-bounce estimators'
errors with their defaults, and with ``ground_height=0`` (the fixed default of before).

    .venv/bin/python -m scripts.twin.shifted_ground --out OUT [--dz 35] [--snr 20]

A user's mesh need not have its ground at z = 0 (a survey frame, terrain at an
elevation). ``miso-ml``, ``locman`` and ``slab`` pin each path's ground bounce to a
horizontal ground at their ``ground_height``: by default (``"auto"``) the scene's ground
under the drive, which the run file stores (schema 1.2); ``ground_height=0`` is the
fixed default of before, measured here on a ground 35 m up. Writes the runs and
estimates under ``OUT`` and prints one row per variant and algorithm (converged, median,
p90, RMSE [m], the share of 95 % regions that hold the truth).

Then where a lifted run differs from the bundled one: the traced channels themselves
(Sionna RT traces in float32, so coordinates 35 m up carry coarser rounding: the CFRs'
largest difference relative to their peak), and each algorithm on the *bundled* run's
observation translated by ``dz`` (its BSs, service area and ground moved; the same pilots,
noise and seed): converged snapshots and the largest change of a fix, which is 0 for an
estimator that depends on the geometry only through differences of positions.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import yaml

from estimators import ESTIMATORS
from estimators.types import Observation
from twin.estimate import algorithm_rng, estimate_run
from twin.evaluate import evaluate
from twin.runfile import RunData, read_run
from twin.scene import BUNDLED_DIR
from twin.simulate import simulate_to_file
from twin.sounding import observation_from_run

STREET = BUNDLED_DIR / "street"
#: (drive config, algorithms) on the bundled street.
DRIVES = (("drive.yaml", "miso-ml"), ("ue_array_drive.yaml", "locman,slab"))


def lifted_scene(out: Path, dz: float) -> Path:
    """``street.xml`` with every shape translated by ``dz`` [m] in z (its meshes
    linked)."""
    xml = (STREET / "street.xml").read_text()
    lift = f'\n    <transform name="to_world"><translate z="{dz:g}"/></transform>'
    marker = '<boolean name="face_normals" value="true" />'
    scene = out / "street.xml"
    scene.write_text(xml.replace(marker, marker + lift))
    meshes = out / "meshes"
    if not meshes.exists():
        meshes.symlink_to(STREET / "meshes")
    return scene


def config(name: str, scene: Path, dz: float, out: Path) -> Path:
    """The bundled drive ``name`` on ``scene``, its BSs and waypoints lifted by ``dz``."""
    c = yaml.safe_load((STREET / name).read_text())
    c["scene"]["file"] = str(scene)
    for bs in c["base_stations"]:
        bs["position"][2] += dz
    for point in c["ue"].get("trajectory", {}).get("waypoints", []):
        point[2] += dz
    path = out / f"{Path(name).stem}_dz{dz:g}.yaml"
    path.write_text(yaml.safe_dump(c))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dz", type=float, default=35.0)
    parser.add_argument("--snr", type=float, default=20.0)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    lifted = lifted_scene(out, args.dz)
    print("| variant | algorithm | converged | median | p90 | RMSE | 95 % cover |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, algorithms in DRIVES:
        variants: list[tuple[str, Path, float, list[str]]] = [
            ("as bundled", STREET / "street.xml", 0.0, []),
            (f"lifted {args.dz:g} m", lifted, args.dz, []),
            ("lifted, ground_height=0 (the default before 1.2)", lifted, args.dz,
             ["ground_height=0"])]
        for label, scene, dz, settings in variants:
            tag = f"{Path(name).stem}_dz{dz:g}"
            run = out / f"{tag}.h5"
            if not run.exists():
                simulate_to_file(config(name, scene, dz, out), run)
            est = out / f"{tag}_{len(settings)}_est.h5"
            estimate_run(run, algorithms, est, snr_db=args.snr, settings=settings,
                         overwrite=True)
            metrics, _ = evaluate(run, [est])
            for algo, a in metrics["algorithms"].items():
                ue = a["ue"] or {}
                cover = a["integrity"]["coverage_95"]
                print(f"| {label} | {algo} | {a['converged']}/{a['estimated']} | "
                      f"{ue.get('median_m', np.nan):.3g} | {ue.get('p90_m', np.nan):.3g} | "
                      f"{ue.get('rmse_m', np.nan):.3g} | "
                      f"{'—' if cover is None else f'{cover:.2f}'} |", flush=True)

    for name, algorithms in DRIVES:
        bundled, lifted_run = (read_run(out / f"{Path(name).stem}_dz{dz:g}.h5")
                               for dz in (0.0, args.dz))
        cfr = bundled.cfr
        change = np.max(np.abs(lifted_run.cfr - cfr)) / np.max(np.abs(cfr))
        print(f"\n{name}: lifted CFR vs bundled, largest difference / peak: {change:.2g}")
        for algorithm in algorithms.split(","):
            fixes = [ESTIMATORS[algorithm]().estimate(*_observation(bundled, algorithm,
                                                                    args.snr, dz))
                     for dz in (0.0, args.dz)]
            moved = fixes[1].ue_position - fixes[0].ue_position
            moved[..., 2] -= args.dz
            print(f"  {algorithm} on the bundled observation translated by {args.dz:g} m: "
                  f"converged {fixes[0].converged.sum()} -> {fixes[1].converged.sum()} of "
                  f"{len(moved)}, largest change of a fix {np.nanmax(np.abs(moved)):.2g} m")


def _observation(run: RunData, algorithm: str, snr_db: float,
                 dz: float) -> tuple[Observation, np.random.Generator]:
    """``algorithm``'s observation of ``run`` as ``twin estimate`` sounds it, its geometry
    translated by ``dz`` [m] in z, and the generator to estimate with (the one that drew
    the noise, as there)."""
    rng = algorithm_rng(run.seed, algorithm)
    obs = observation_from_run(run, rng=rng, seed=run.seed,
                               **{**ESTIMATORS[algorithm].sounding, "snr_db": snr_db})
    area = obs.service_area
    assert area is not None
    bs_position = obs.bs_position.copy()
    bs_position[:, 2] += dz
    return dataclasses.replace(obs, bs_position=bs_position, service_area=dataclasses.replace(
        area, ue_height=area.ue_height + dz,
        ground_height=None if area.ground_height is None else area.ground_height + dz)), rng

if __name__ == "__main__":
    main()
