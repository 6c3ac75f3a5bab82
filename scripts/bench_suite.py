"""The whole suite on real drives: every registered estimator on the runs it fits, on four
drives, at 0, 10 and 20 dB, scored against the ray-traced truth and its own bound.

    .venv/bin/python -m scripts.bench_suite [--out bench-suite] [--drives office,street,...]
        [--setups single,multi,ue_array,ris] [--snr 0,10,20] [--slow-snapshots 3] [--fresh]
    .venv/bin/python -m scripts.bench_suite --out bench-suite --report

The numbers in docs/BENCHMARKS.md: two processes, one per core (``OMP_NUM_THREADS=1``),
``--drives office,street`` and ``--drives canyon,munich``, then ``--report``.

Drives (:data:`DRIVES`): the bundled office walk and street drive, Sionna's built-in
``simple_street_canyon`` and ``munich``, each with BSs on masts (access points at 2.6 m
indoors) above the UE, and the held-out city ``etoile``: Sionna's Place Charles de Gaulle
exported as a y-up GLB without materials (:func:`etoile_glb`, written to ``OUT``), a loop
around the Arc de Triomphe with BSs on 8 m masts, on which nothing was tuned. Per drive,
three set-ups (:data:`SETUPS`), each the realistic arrays of the families it serves:

* ``single``: one BS with a 4x8 URA (MISO's 3-D form), a single-antenna UE;
* ``multi``: four BSs with 1x16 ULAs, a single-antenna UE, narrowband: the direct (grid)
  localizers; DAUN gets a checkpoint trained here for the drive's BSs (a small one:
  :data:`DAUN_SAMPLES` ray-traced samples in the drive's service area,
  ``twin train daun`` with :data:`DAUN_TRAIN`);
* ``ue_array``: three BSs with 1x8 ULAs and a 1x4 UE array: LOCMAN (one BS, its choice)
  and SLAB (all three).

The office drive also has the RIS positioning walk (``ris``: RIS-CD and its baseline).
Every estimator runs with its defaults (``twin estimate`` with no ``--set``, except the
DAUN checkpoint); the slow ones (:data:`SLOW`) on ``--slow-snapshots`` snapshots spread
over the drive. Per estimator, drive and SNR: median, p90 and RMSE of the UE error in
the dimensions it estimates, the same of its bound, the share of converged fixes more
than 5 m off and how many of those the reported covariance does not cover, the 95 %
coverage, scatterer precision/recall (single-bounce truth, 1 m cut-off) and the runtime
per snapshot. Writes ``OUT/results.json``, ``OUT/bench_suite.md`` (a table per drive) and
``docs/figures/bench_suite.png``; runs, datasets and checkpoints are cached in ``OUT``
(``--fresh`` redoes them).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import yaml

from estimators import ESTIMATORS
from twin.estimate import estimate_run
from twin.estimatefile import estimated, read_estimates
from twin.evaluate import evaluate
from twin.runfile import read_run
from twin.scene import BUNDLED_DIR
from twin.simulate import simulate_to_file
from twin.sounding import service_area

REPO = Path(__file__).resolve().parents[1]
FIGURE = REPO / "docs" / "figures" / "bench_suite.png"

Bs = tuple[tuple[float, float, float], float]  # (position [m], yaw [rad])


@dataclass(frozen=True)
class Drive:
    """A drive: its scene, waypoints [m], speed [m/s] and sample period [s], its radio,
    and the BSs of each set-up (position on its mast, yaw of the boresight)."""

    scene: str
    waypoints: tuple[tuple[float, float, float], ...]
    speed_mps: float
    period_s: float
    bandwidth_hz: float
    single: Bs
    multi: tuple[Bs, ...]
    ue_array: tuple[Bs, ...]
    up_axis: str = "z"


HALF_PI, PI = math.pi / 2, math.pi
#: The held-out city: Sionna's Place Charles de Gaulle (``etoile``) exported by
#: :func:`etoile_glb` as one y-up GLB with one object per building and no materials (what
#: a user brings from another tool); nothing in the suite was tuned on it. The drive
#: circles the Arc de Triomphe (centre below) 60 m out; the masts stand 100 m out, facing
#: the Arc, so the Arc blocks the LOS over part of the loop.
ETOILE_CENTRE = (-127.3, 38.1)
ETOILE_GLB = "etoile.glb"


def _around(radius: float, degrees: float, height: float) -> tuple[float, float, float]:
    a = math.radians(degrees)
    return (ETOILE_CENTRE[0] + radius * math.cos(a), ETOILE_CENTRE[1] + radius * math.sin(a),
            height)


def _mast(degrees: float) -> Bs:
    """A BS on an 8 m mast 100 m from the Arc at ``degrees``, facing it."""
    return _around(100.0, degrees, 8.0), math.radians(degrees) + PI

DRIVES: dict[str, Drive] = {
    "office": Drive(
        scene=str(BUNDLED_DIR / "office_floor" / "office_floor.xml"),
        waypoints=((3.0, 7.0, 1.2), (11.5, 7.0, 1.2), (11.5, 3.0, 1.2)),
        speed_mps=1.4, period_s=0.5, bandwidth_hz=400e6,
        single=((1.0, 7.0, 2.6), 0.0),
        multi=(((1.0, 7.0, 2.6), 0.0), ((23.0, 7.0, 2.6), PI),
               ((11.5, 6.3, 2.6), HALF_PI), ((6.0, 7.7, 2.6), -HALF_PI)),
        ue_array=(((1.0, 7.0, 2.6), 0.0), ((23.0, 7.0, 2.6), PI),
                  ((11.5, 7.7, 2.6), -HALF_PI))),
    "street": Drive(
        scene=str(BUNDLED_DIR / "street" / "street.xml"),
        waypoints=((-35.0, -4.0, 1.5), (-2.0, -4.0, 1.5), (-2.0, 18.0, 1.5)),
        speed_mps=5.0, period_s=0.6, bandwidth_hz=100e6,
        single=((0.0, -8.0, 10.0), HALF_PI),
        multi=(((-45.0, 0.0, 8.0), 0.0), ((45.0, 0.0, 8.0), PI),
               ((0.0, -9.0, 8.0), HALF_PI), ((0.0, 9.0, 8.0), -HALF_PI)),
        ue_array=(((-45.0, 0.0, 8.0), 0.0), ((45.0, 0.0, 8.0), PI),
                  ((0.0, -9.0, 8.0), HALF_PI))),
    "canyon": Drive(
        scene="builtin:simple_street_canyon",
        waypoints=((-45.0, 3.0, 1.5), (45.0, 3.0, 1.5)),
        speed_mps=5.0, period_s=0.9, bandwidth_hz=100e6,
        single=((0.0, -7.5, 9.0), HALF_PI),
        multi=(((-40.0, -7.5, 9.0), HALF_PI), ((40.0, 8.5, 9.0), -HALF_PI),
               ((-10.0, 8.5, 9.0), -HALF_PI), ((15.0, -7.5, 9.0), HALF_PI)),
        ue_array=(((-30.0, -7.5, 9.0), HALF_PI), ((30.0, 8.5, 9.0), -HALF_PI),
                  ((0.0, -7.5, 9.0), HALF_PI))),
    "munich": Drive(
        scene="builtin:munich",
        waypoints=((-57.0, -40.0, 1.5), (-49.0, -10.0, 1.5), (-43.0, 20.0, 1.5)),
        speed_mps=5.0, period_s=1.0, bandwidth_hz=100e6,
        single=((-42.0, -5.0, 10.0), PI),
        multi=(((-59.0, -30.0, 10.0), 0.0), ((-42.0, -5.0, 10.0), PI),
               ((-46.0, 25.0, 10.0), 0.0), ((-55.0, -50.0, 10.0), HALF_PI)),
        ue_array=(((-59.0, -30.0, 10.0), 0.0), ((-42.0, -5.0, 10.0), PI),
                  ((-46.0, 25.0, 10.0), 0.0))),
    "etoile": Drive(
        scene=ETOILE_GLB, up_axis="y",
        waypoints=tuple(_around(60.0, a, 1.5) for a in range(0, 361, 30)),
        speed_mps=8.0, period_s=2.5, bandwidth_hz=100e6,
        single=_mast(200.0),
        multi=tuple(_mast(a) for a in (20.0, 110.0, 200.0, 290.0)),
        ue_array=tuple(_mast(a) for a in (20.0, 140.0, 260.0))),
}

#: Which estimators each set-up serves (every registered one somewhere; checked).
SETUPS: dict[str, tuple[str, ...]] = {
    "single": ("miso-ml", "miso-sp-grid", "miso-sp-refine"),
    "multi": ("dpd", "stansfield", "srl", "cvx-direct", "p-admm", "daun", "daun-r"),
    "ue_array": ("locman", "dcs-somp", "slab", "slab-lce", "gd-lce", "ls-lce", "gd-bfr",
                 "lmi-bfr"),
    "ris": ("ris-cd", "ris-rss"),
}
#: Estimators run on a few snapshots only (seconds to minutes per snapshot: the convex
#: baselines, LOCMAN's ADMM, SLAB's closed loop).
SLOW = ("srl", "cvx-direct", "locman", "dcs-somp", "slab", "slab-lce", "gd-lce", "ls-lce",
        "gd-bfr", "lmi-bfr")
DAUN_SAMPLES = 1500
DAUN_TRAIN = ("--layers", "6", "--samples-per-layer", "200", "--validation", "100")
RIS_CONFIG = BUNDLED_DIR / "office_floor" / "ris_positioning.yaml"


def _bs(name: str, bs: Bs, rows: int, cols: int) -> dict[str, Any]:
    (x, y, z), yaw = bs
    return {"name": name, "position": [x, y, z], "orientation": [yaw, 0.0, 0.0],
            "array": {"rows": rows, "cols": cols}}


def etoile_glb(out: Path) -> Path:
    """``OUT/etoile.glb``: Sionna's ``etoile`` meshes as one y-up GLB, one object per
    building (its PLY parts merged), no materials (:data:`ETOILE_CENTRE`)."""
    import collections

    import sionna.rt
    import trimesh

    path = out / ETOILE_GLB
    if path.exists():
        return path
    meshes = Path(sionna.rt.__file__).parent / "scenes" / "etoile" / "meshes"
    parts: dict[str, list[trimesh.Trimesh]] = collections.defaultdict(list)
    for ply in sorted(meshes.glob("*.ply")):
        parts[ply.stem.split("-itu_")[0]].append(trimesh.load(ply, process=False))
    z_up_to_y_up = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
    scene = trimesh.Scene()
    for name, pieces in parts.items():
        mesh = trimesh.util.concatenate(pieces)
        mesh.apply_transform(z_up_to_y_up)
        scene.add_geometry(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False),
                           node_name=name, geom_name=name)
    out.mkdir(parents=True, exist_ok=True)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def setup_config(drive: Drive, setup: str, seed: int) -> dict[str, Any]:
    """The run config of one set-up of a drive (the module docstring's arrays)."""
    if setup == "single":
        stations = [_bs("bs0", drive.single, 4, 8)]
    elif setup == "multi":
        stations = [_bs(f"bs{j}", bs, 1, 16) for j, bs in enumerate(drive.multi)]
    else:
        stations = [_bs(f"bs{j}", bs, 1, 8) for j, bs in enumerate(drive.ue_array)]
    ue_cols = 4 if setup == "ue_array" else 1
    return {
        "seed": seed, "scene": {"file": drive.scene,
                                **({"up_axis": drive.up_axis} if drive.up_axis != "z" else {})},
        "radio": {"frequency_hz": 28e9, "bandwidth_hz": drive.bandwidth_hz,
                  "num_subcarriers": 1 if setup == "multi" else 64},
        "base_stations": stations,
        "ue": {"array": {"rows": 1, "cols": ue_cols}, "orientation": [0.0, 0.0, 0.0],
               "trajectory": {"waypoints": [list(w) for w in drive.waypoints],
                              "speed_mps": drive.speed_mps,
                              "sample_period_s": drive.period_s}},
        "tracing": {"max_depth": 2, "samples_per_src": 100_000, "batch_size": 64},
    }


def _simulate(config: dict[str, Any], directory: Path, name: str, fresh: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config_path, run_path = directory / f"{name}.yaml", directory / f"{name}.h5"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if fresh or not run_path.exists():
        simulate_to_file(config_path, run_path, overwrite=True)
    return run_path


def daun_checkpoint(config: dict[str, Any], run_path: Path, directory: Path,
                    fresh: bool) -> Path:
    """A DAUN checkpoint for the run's BSs, the way a user makes one: ``twin dataset``
    of the run's BSs over its service area, then ``twin train daun``."""
    import subprocess
    import sys

    checkpoint = directory / "daun.pt"
    if checkpoint.exists() and not fresh:
        return checkpoint
    area = service_area(read_run(run_path))
    dataset_config = {k: v for k, v in config.items() if k not in ("ue",)}
    dataset_config["dataset"] = {
        "num_samples": DAUN_SAMPLES, "samples_per_shard": 500, "source": "twin",
        "positions": {"kind": "uniform", "box": [list(c) for c in area.area],
                      "height": area.ue_height},
        "sounding": {"model": "uplink-narrowband", "snr_db": [-10.0, 30.0]},
        "keep": ["observations", "paths"], "max_paths": 16}
    dataset_yaml = directory / "daun_dataset.yaml"
    dataset_yaml.write_text(yaml.safe_dump(dataset_config, sort_keys=False))
    twin = [str(Path(sys.executable).parent / "twin")]  # the venv's console script
    dataset = directory / "daun_dataset"
    if fresh and dataset.exists():
        import shutil

        shutil.rmtree(dataset)
    subprocess.run([*twin, "dataset", str(dataset_yaml), "-o", str(dataset), "--quiet",
                    *(["--resume"] if dataset.exists() else [])], check=True)
    subprocess.run([*twin, "train", "daun", str(dataset), "-o",
                    str(checkpoint), *DAUN_TRAIN, "--overwrite", "--quiet"], check=True)
    return checkpoint


def _spread(values: np.ndarray) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    if not v.size:
        return {"median": None, "p90": None, "rmse": None}
    return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "rmse": float(np.sqrt(np.mean(v**2)))}


def score(run_path: Path, est_path: Path, snr_db: float) -> list[dict[str, Any]]:
    """One row per algorithm of an estimate file (the module docstring's numbers)."""
    metrics, series = evaluate(run_path, [est_path])
    est_file = read_estimates(est_path)
    rows = []
    for name, a in metrics["algorithms"].items():
        est = est_file.estimates[name]
        ran = estimated(est)
        bound = est_file.bounds.get(name)
        peb = (np.full(est.num_snapshots, np.nan) if bound is None
               else np.where(ran, bound.position_m, np.nan))
        single = a["maps"]["single_bounce"]
        rows.append({
            "algorithm": name, "snr_db": snr_db, "dimensions": a["dimensions"],
            "estimated": int(ran.sum()), "converged": a["converged"],
            "error": _spread(series[name]["ue_error"]), "bound": _spread(peb),
            "bound_description": None if bound is None else bound.description,
            **a["integrity"],
            # None: the estimator reports no scatterer at all (nothing to score).
            "precision": single["precision"] if single["matched"] + single["false"] else None,
            "recall": single["recall"] if single["matched"] + single["false"] else None,
            "runtime_s": float(np.median(est.runtime_s[ran])),
        })
    return rows


def run_drive(name: str, drive: Drive, out: Path, snrs: list[float], slow_snapshots: int,
              fresh: bool, simulate_only: bool = False,
              only: tuple[str, ...] = tuple(SETUPS),
              only_algorithms: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    setups = [s for s in SETUPS if s != "ris"] + (["ris"] if name == "office" else [])
    for seed, setup in enumerate(setups, start=1):
        if setup not in only:
            continue
        directory = out / name / setup
        if setup == "ris":
            directory.mkdir(parents=True, exist_ok=True)
            run_path = directory / "ris.h5"
            if fresh or not run_path.exists():
                simulate_to_file(RIS_CONFIG, run_path, overwrite=True)
            config: dict[str, Any] = {}
        else:
            config = setup_config(drive, setup, seed)
            run_path = _simulate(config, directory, setup, fresh)
        run = read_run(run_path)
        total = run.drive.num_snapshots
        los = [float(np.mean(run.paths.valid[:, b, 0] & (run.paths.depth[:, b, 0] == 0)))
               for b in range(len(run.bs_name))]
        print(f"{name}/{setup}: {total} snapshots, LOS share per BS "
              f"{', '.join(f'{v:.2f}' for v in los)}", flush=True)
        if simulate_only:
            continue
        step = max(1, math.ceil(total / slow_snapshots))
        settings = []
        if setup == "multi":
            checkpoint = daun_checkpoint(config, run_path, directory, fresh)
            settings = [f"daun.checkpoint={checkpoint}", f"daun-r.checkpoint={checkpoint}"]
        algorithms = tuple(a for a in SETUPS[setup] if not only_algorithms
                           or a in only_algorithms)
        if not algorithms:
            continue
        snapshots = [f"{a}={step // 2}:{total}:{step}" for a in algorithms if a in SLOW]
        for snr in snrs:
            # A partial re-run (--algorithms) keeps the full run's estimate file.
            suffix = "_" + "-".join(only_algorithms) if only_algorithms else ""
            est_path = directory / f"est_{snr:g}dB{suffix}.h5"
            start = time.perf_counter()
            estimate_run(run_path, algorithms, est_path, snr_db=snr, settings=settings,
                         snapshots=snapshots, overwrite=True,
                         on_skip=lambda algo, why: print(f"  skipped {algo}: {why}"))
            for row in score(run_path, est_path, snr):
                rows.append({"drive": name, "setup": setup, "snapshots": total, **row})
            print(f"{name}/{setup} at {snr:g} dB: {time.perf_counter() - start:.0f} s",
                  flush=True)
    return rows


def _m(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}" if value < 10 else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """A table per drive: every estimator at every SNR."""
    lines: list[str] = []
    for drive in dict.fromkeys(r["drive"] for r in rows):
        lines += [f"### {drive}", "",
                  "| set-up | algorithm | SNR | d | converged | median | p90 | RMSE | "
                  "bound median | bound p90 | > 5 m (not covered) | 95 % cover | "
                  "precision | recall | s/snapshot |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
                  "| --- | --- | --- |"]
        for r in (r for r in rows if r["drive"] == drive):
            e, b = r["error"], r["bound"]
            cover = "—" if r["coverage_95"] is None else f"{r['coverage_95']:.2f}"
            lines.append(
                f"| {r['setup']} | {r['algorithm']} | {r['snr_db']:g} | {r['dimensions']} | "
                f"{r['converged']}/{r['estimated']} | {_m(e['median'])} | {_m(e['p90'])} | "
                f"{_m(e['rmse'])} | {_m(b['median'])} | {_m(b['p90'])} | "
                f"{r['wild']} ({r['confident_wild']}) | {cover} | "
                f"{_ratio(r['precision'])} | {_ratio(r['recall'])} | {r['runtime_s']:.2g} |")
        lines.append("")
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]], snr_db: float) -> None:
    """Median error vs median bound per estimator and drive at ``snr_db``."""
    drives = list(dict.fromkeys(r["drive"] for r in rows))
    fig, axes = plt.subplots(len(drives), 1, figsize=(11, 2.6 * len(drives)), squeeze=False)
    for ax, drive in zip(axes[:, 0], drives, strict=True):
        chosen = [r for r in rows if r["drive"] == drive and r["snr_db"] == snr_db]
        x = np.arange(len(chosen))
        error = [r["error"]["median"] or np.nan for r in chosen]
        p90 = [r["error"]["p90"] or np.nan for r in chosen]
        bound = [r["bound"]["median"] or np.nan for r in chosen]
        ax.bar(x - 0.2, error, 0.4, label="median error")
        ax.scatter(x - 0.2, p90, marker="_", s=120, color="k", label="p90 error")
        ax.bar(x + 0.2, bound, 0.4, label="median bound", color="tab:green")
        ax.axhline(5.0, color="tab:red", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_xticks(x, [r["algorithm"] for r in chosen], rotation=30, ha="right",
                      fontsize=8)
        ax.set_ylabel("[m]")
        ax.set_title(f"{drive} at {snr_db:g} dB", fontsize=10)
    axes[0, 0].legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-suite"))
    parser.add_argument("--drives", default=",".join(DRIVES))
    parser.add_argument("--snr", default="0,10,20")
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help="a subset of the set-ups (single, multi, ue_array, ris)")
    parser.add_argument("--algorithms", default="",
                        help="only these estimators (comma-separated; default: all); their "
                             "rows replace earlier ones in --report")
    parser.add_argument("--slow-snapshots", type=int, default=3)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--simulate-only", action="store_true",
                        help="only simulate (and cache) the runs, print their LOS shares")
    parser.add_argument("--report", action="store_true",
                        help="no runs: the tables and the figure from every OUT/results_*.json "
                             "(drives run in separate processes, one per core)")
    args = parser.parse_args()
    placed = [a for algos in SETUPS.values() for a in algos]
    if sorted(placed) != sorted(ESTIMATORS):
        raise SystemExit(f"SETUPS does not place every registered estimator once: "
                         f"{sorted(set(ESTIMATORS) ^ set(placed))}")
    snrs = [float(s) for s in args.snr.split(",")]
    rows: list[dict[str, Any]] = []
    if args.report:
        # Oldest file first: a later re-run's rows replace the earlier ones.
        latest: dict[tuple[Any, ...], dict[str, Any]] = {}
        for path in sorted(args.out.glob("results_*.json"), key=lambda p: p.stat().st_mtime):
            for row in json.loads(path.read_text()):
                latest[(row["drive"], row["setup"], row["algorithm"], row["snr_db"])] = row
        drives, placed = list(DRIVES), [a for algos in SETUPS.values() for a in algos]
        rows = sorted(latest.values(), key=lambda r: (
            drives.index(r["drive"]), list(SETUPS).index(r["setup"]),
            placed.index(r["algorithm"]), r["snr_db"]))
        report(rows, args.out, snrs)
        return
    results = args.out / (f"results_{args.drives.replace(',', '-')}"
                          f"{'_' + args.algorithms.replace(',', '-') if args.algorithms else ''}"
                          ".json")
    for name in args.drives.split(","):
        drive = DRIVES[name]
        if drive.scene == ETOILE_GLB:
            drive = replace(drive, scene=str(etoile_glb(args.out).resolve()))
        rows += run_drive(name, drive, args.out, snrs, args.slow_snapshots, args.fresh,
                          args.simulate_only, tuple(args.setups.split(",")),
                          tuple(a for a in args.algorithms.split(",") if a))
        if args.simulate_only:
            continue
        results.write_text(json.dumps(rows, indent=1))
    if not args.simulate_only:
        report(rows, args.out, snrs)


def report(rows: list[dict[str, Any]], out: Path, snrs: list[float]) -> None:
    """``OUT/bench_suite.md`` (and stdout): the tables; the figure at the highest SNR."""
    table = markdown(rows)
    (out / "bench_suite.md").write_text(table)
    figure(rows, max(snrs))
    print(table)


if __name__ == "__main__":
    main()
