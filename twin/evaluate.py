"""``twin evaluate run.h5 est.h5 [...] -o report/``: estimates scored against the truth.

Per algorithm: UE position error (RMSE, median, 90th percentile, CDF, over time; in the
horizontal plane for 2D estimators), the scatterer map snapshot by snapshot against three
truth sets — (a) single-bounce interaction points, (b) first/last interaction points of
multi-bounce paths, (c) virtual anchors of specular paths — by optimal assignment under
a cut-off (GOSPA and its parts, matched RMSE, precision/recall, per-object recall), the
drive's fused map against persistent landmarks (object + reflecting plane), the
Cramér-Rao bound along the drive where the estimator has one, and runtime.

For a 2D estimator (``dimensions == 2``) points on horizontal surfaces (floor, ceiling:
reflection normal within 60° of vertical) cannot be represented; they are scored
separately and reported as "unmodelled", never dropped silently.

Output directory (written whole or not at all): ``metrics.json`` (schema below),
``report.md``, ``ue_error_cdf.png``, ``ue_error_over_time.png``,
``map_precision_recall.png`` and (unless ``maps=False``) the 3D maps ``map.png`` and
``map.html`` of :mod:`twin.maps`.

``metrics.json``::

    {"schema_version": "1.0", "run_file", "run_scene_sha256", "cutoff_m",
     "truth_sets": {name: description},
     "algorithms": {name: {
        "estimate_file", "params", "dimensions", "snapshots", "converged",
        "ue": {"rmse_m", "median_m", "p90_m", "scored_in"} | null,
        "bound": {"peb_median_m", "peb_rms_m"} | null,
        "runtime": {"median_s", "total_s"},
        "maps": {truth_set: {"gospa_m", "localization_m", "missed_m", "false_m",
                             "matched_rmse_m", "precision", "recall",
                             "matched", "missed", "false", "unmodelled",
                             "per_object": {object: {"truth", "matched"}}}},
        "fused_map": {"landmarks", "landmarks_found", "landmark_recall",
                      "fused_points", "fused_correct", "fused_precision",
                      "found": {landmark: bool}}}}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from estimators import ESTIMATORS, Estimate, Estimator
from twin.errors import TwinInputError
from twin.estimate import EstimateFile, algorithm_rng, gather_estimates
from twin.metrics import Matching, gospa, match_points
from twin.outputs import Artifact, atomic_directory, check_output
from twin.paths import InteractionType
from twin.runfile import RunData, read_run
from twin.sounding import channel_truth, observation_from_run

SCHEMA_VERSION = "1.0"
TRUTH_SETS = {
    "single_bounce": "interaction points of single-bounce paths",
    "first_last": "first (BS side) and last (UE side) interaction points of multi-bounce "
                  "paths",
    "virtual_anchors": "virtual anchors of specular paths (BS mirrored by the walls)",
}
# A reflection whose normal is within 60° of vertical is on a floor or ceiling.
_HORIZONTAL_NORMAL_Z = 0.5
PR_CUTOFFS_M = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class TruthPoints:
    """One truth set at one snapshot: points ``[n, 3]`` [m], object names, and whether a
    2D (horizontal-plane) model can represent each point."""

    points: npt.NDArray[np.float64]
    objects: tuple[str, ...]
    planar: npt.NDArray[np.bool_]
    landmarks: tuple[str, ...] = ()


def truth_sets(run: RunData, bs: int = 0) -> dict[str, list[TruthPoints]]:
    """The three truth sets per snapshot (see the module docstring)."""
    p = run.paths
    names = p.interaction_object_names()[:, bs]
    bs_pos = run.bs_position[bs]
    sets: dict[str, list[TruthPoints]] = {k: [] for k in TRUTH_SETS}
    for t in range(p.num_snapshots):
        valid = p.valid[t, bs]
        depth = p.depth[t, bs]
        types = p.interaction_types[t, bs]
        points = p.interaction_points[t, bs]
        anchor = p.virtual_anchor[t, bs]
        hit = names[t]  # [P, D] object names
        # Reflection normal of a specular path's first bounce ∝ VA of that bounce - BS;
        # for single-bounce paths the VA is exactly that.
        normal = anchor - bs_pos
        with np.errstate(invalid="ignore"):
            normal_z = np.abs(normal[:, 2]) / np.linalg.norm(normal, axis=1)
        planar = ~(normal_z > _HORIZONTAL_NORMAL_Z)
        single = valid & (depth == 1) & (types[:, 0] != InteractionType.REFRACTION)
        sets["single_bounce"].append(TruthPoints(
            points[single, 0], tuple(hit[single, 0]), planar[single],
            tuple(_landmark(o, n, x) for o, n, x in
                  zip(hit[single, 0], normal[single], points[single, 0], strict=True))))
        multi = np.flatnonzero(valid & (depth >= 2))
        last = depth[multi] - 1
        fl_points = np.concatenate([points[multi, 0], points[multi, last]])
        fl_names = tuple(hit[multi, 0]) + tuple(hit[multi, last])
        sets["first_last"].append(TruthPoints(
            fl_points, fl_names, np.ones(len(fl_points), bool)))
        reflects = np.any(types == InteractionType.SPECULAR, axis=1)
        specular = valid & reflects & np.all(np.isfinite(anchor), axis=1)
        va_names = tuple("+".join(n for n in row if n) for row in hit[specular])
        sets["virtual_anchors"].append(TruthPoints(
            anchor[specular], va_names, planar[specular] | (depth[specular] > 1)))
    return sets


def _landmark(obj: str, normal: npt.NDArray[np.float64], point: npt.NDArray[np.float64]) -> str:
    """Persistent identity of a reflecting surface: object + plane (unit normal, offset).

    The reflection point moves along a wall as the UE moves; the wall's plane does not.
    A point with no plane (a RIS tile's: no virtual anchor) is its object alone.
    """
    if not np.all(np.isfinite(normal)):
        return obj
    n = normal / np.linalg.norm(normal)
    n = n if (n[np.argmax(np.abs(n))] > 0) else -n  # one sign per plane
    offset = float(n @ point)
    n = np.round(n, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{obj}|{n[0]:+.2f},{n[1]:+.2f},{n[2]:+.2f}|{offset:+.1f}"


def fuse_points(points: npt.ArrayLike, radius: float) -> npt.NDArray[np.float64]:
    """Fuse scattered per-snapshot points into a map: greedy clustering within ``radius``.

    Each point joins the nearest cluster whose centroid is closer than ``radius`` (or
    starts one); returns the centroids ``[C, 3]`` in order of creation.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    sums: list[npt.NDArray[np.float64]] = []
    counts: list[int] = []
    for x in pts[np.all(np.isfinite(pts), axis=1)]:
        if sums:
            centres = np.asarray(sums) / np.asarray(counts)[:, None]
            d = np.linalg.norm(centres - x, axis=1)
            j = int(np.argmin(d))
            if d[j] < radius:
                sums[j] = sums[j] + x
                counts[j] += 1
                continue
        sums.append(x.copy())
        counts.append(1)
    return np.asarray(sums).reshape(-1, 3) / np.maximum(np.asarray(counts), 1)[:, None]


def _fused_map_metrics(est: Estimate, sets: list[TruthPoints], dims: int,
                       cutoff: float) -> dict[str, Any]:
    """The drive's fused map vs the landmarks (reflecting planes) seen along the drive.

    A landmark is found when a fused point lies within the cut-off of any of its
    ray-traced reflection points; a fused point is correct when it lies within the
    cut-off of some landmark's points.
    """
    by_landmark: dict[str, list[npt.NDArray[np.float64]]] = {}
    for truth in sets:
        for k, lm in enumerate(truth.landmarks):
            if dims == 3 or truth.planar[k]:
                by_landmark.setdefault(lm, []).append(truth.points[k])
    estimated = [snapshot_scatterers(est, t) for t in range(est.num_snapshots)]
    fused = fuse_points(np.concatenate(estimated) if estimated else np.zeros((0, 3)),
                        cutoff / 2)
    found: dict[str, bool] = {}
    correct = np.zeros(len(fused), bool)
    for lm, pts in by_landmark.items():
        cloud = np.asarray(pts)[:, :dims]
        if len(fused):
            d = np.linalg.norm(fused[:, None, :dims] - cloud[None], axis=-1).min(axis=1)
            near = d < cutoff
            correct |= near
            found[lm] = bool(near.any())
        else:
            found[lm] = False
    return {
        "landmarks": len(by_landmark), "landmarks_found": int(sum(found.values())),
        "fused_points": len(fused), "fused_correct": int(correct.sum()),
        "landmark_recall": sum(found.values()) / len(found) if found else 1.0,
        "fused_precision": float(correct.mean()) if len(fused) else 1.0,
        "found": dict(sorted(found.items())),
    }


def algorithm_dimensions(params: dict[str, Any]) -> int:
    """2 for an estimator that works in the horizontal plane, else 3 (its ``dimensions``)."""
    return int(params.get("dimensions", 3) or 3)


def snapshot_scatterers(est: Estimate, t: int) -> npt.NDArray[np.float64]:
    """The scatterers an estimate reports at snapshot ``t``: ``[Q, 3]`` [m] (none when
    that snapshot did not converge)."""
    if not est.converged[t]:
        return np.zeros((0, 3))
    return np.asarray(est.scatterers[t][est.scatterer_valid[t]], dtype=np.float64)


def match_snapshot(estimated: npt.ArrayLike, truth: TruthPoints, dims: int,
                   cutoff: float) -> tuple[Matching, npt.NDArray[np.bool_]]:
    """Match one snapshot's estimated scatterers to the truth points a ``dims``-D model
    can represent (2D: the ``planar`` ones, compared in the horizontal plane).

    Returns the matching (indices into ``truth.points``; the points the model cannot
    represent take no part in it, neither matched nor missed) and ``modelled [N]``.
    """
    modelled = truth.planar if dims == 2 else np.ones(len(truth.points), bool)
    points = np.where(modelled[:, None], truth.points, np.nan)  # NaN rows are left out
    return match_points(estimated, points, cutoff, dims=dims), modelled


def check_cutoff(cutoff: float) -> None:
    """Refuse a matching cut-off that is not a positive distance (one line)."""
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise TwinInputError(f"--cutoff: must be a positive distance [m], got {cutoff}")


def _ue_metrics(est: Estimate, run: RunData, dims: int) -> tuple[dict[str, Any] | None,
                                                                   npt.NDArray[np.float64]]:
    err = np.linalg.norm((est.ue_position - run.drive.position)[:, :dims], axis=1)
    ok = est.converged & np.isfinite(err)
    if not ok.any():
        return None, err
    e = err[ok]
    return {
        "rmse_m": float(np.sqrt(np.mean(e**2))), "median_m": float(np.median(e)),
        "p90_m": float(np.percentile(e, 90)),
        "scored_in": "horizontal plane" if dims == 2 else "3D",
    }, np.where(ok, err, np.nan)


def _map_metrics(est: Estimate, sets: list[TruthPoints], dims: int,
                 cutoff: float) -> dict[str, Any]:
    totals = {"matched": 0, "missed": 0, "false": 0, "unmodelled": 0}
    g_values = []
    loc2: list[float] = []
    per_object: dict[str, dict[str, int]] = {}
    for t, truth in enumerate(sets):
        m, modelled = match_snapshot(snapshot_scatterers(est, t), truth, dims, cutoff)
        totals["unmodelled"] += int((~modelled).sum())
        g = gospa(m, cutoff)
        g_values.append(g)
        loc2.extend(m.distances**2)
        totals["matched"] += g.num_matched
        totals["missed"] += g.num_missed
        totals["false"] += g.num_false
        matched = np.zeros(len(truth.points), bool)
        matched[m.pairs[:, 1]] = True
        for j in np.flatnonzero(modelled):
            row = per_object.setdefault(truth.objects[j], {"truth": 0, "matched": 0})
            row["truth"] += 1
            row["matched"] += int(matched[j])
    n = totals["matched"]
    return {
        "gospa_m": float(np.mean([g.total for g in g_values])) if g_values else 0.0,
        "localization_m": float(np.mean([g.localization for g in g_values])),
        "missed_m": float(np.mean([g.missed for g in g_values])),
        "false_m": float(np.mean([g.false for g in g_values])),
        "matched_rmse_m": float(np.sqrt(np.mean(loc2))) if loc2 else None,
        "precision": n / (n + totals["false"]) if n + totals["false"] else 1.0,
        "recall": n / (n + totals["missed"]) if n + totals["missed"] else 1.0,
        **totals,
        "per_object": dict(sorted(per_object.items())),
    }


def _bound(name: str, est_file: EstimateFile, run: RunData) -> npt.NDArray[np.float64] | None:
    """PEB along the drive from the ray-traced channel, with the estimate's own sounding."""
    cls = ESTIMATORS.get(name)
    if cls is None or cls.crlb is Estimator.crlb:  # the base class: no bound
        return None
    estimator = cls(**est_file.params.get(name, {}))
    obs = observation_from_run(run, rng=algorithm_rng(est_file.seed, name), seed=est_file.seed,
                               **{**est_file.sounding.get(name, {}), **est_file.noise})
    truth = channel_truth(run, getattr(estimator, "bs", 0))
    try:
        return estimator.crlb(obs, truth).position_error_bound
    except NotImplementedError:
        return None


def evaluate(
    run_path: str | Path,
    estimate_paths: Sequence[str | Path],
    *,
    algorithms: str | Sequence[str] | None = None,
    cutoff: float = 1.0,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Score every (or the selected) algorithm of the estimate files.

    Returns ``(metrics, series)``: the ``metrics.json`` content and per-algorithm arrays
    for the plots (``ue_error [T]``, ``peb [T] | None``, ``precision_recall``).
    """
    check_cutoff(cutoff)
    run_path = Path(run_path)
    run = read_run(run_path)
    selected = gather_estimates(run_path, run, estimate_paths, algorithms)
    return _score(run_path, run, selected, cutoff)


def _score(run_path: Path, run: RunData, selected: dict[str, tuple[Path, EstimateFile]],
           cutoff: float) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """:func:`evaluate` on a run and its estimates already read."""
    sets = truth_sets(run)
    metrics: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_file": run_path.name,
        "run_scene_sha256": run.scene_sha256, "cutoff_m": cutoff,
        "truth_sets": TRUTH_SETS, "algorithms": {},
    }
    series: dict[str, dict[str, Any]] = {}
    for name, (path, est_file) in selected.items():
        est = est_file.estimates[name]
        params = est_file.params.get(name, {})
        dims = algorithm_dimensions(params)
        ue, ue_error = _ue_metrics(est, run, dims)
        peb = _bound(name, est_file, run)
        metrics["algorithms"][name] = {
            "estimate_file": path.name, "params": params, "dimensions": dims,
            "snapshots": est.num_snapshots, "converged": int(est.converged.sum()),
            "ue": ue,
            "bound": None if peb is None else {
                "peb_median_m": float(np.nanmedian(peb)) if np.isfinite(peb).any() else None,
                "peb_rms_m": float(np.sqrt(np.nanmean(peb**2))) if np.isfinite(peb).any()
                else None},
            "runtime": {"median_s": float(np.median(est.runtime_s)),
                        "total_s": float(np.sum(est.runtime_s))},
            "maps": {k: _map_metrics(est, v, dims, cutoff) for k, v in sets.items()},
            "fused_map": _fused_map_metrics(est, sets["single_bounce"], dims, cutoff),
        }
        series[name] = {
            "ue_error": ue_error, "peb": peb,
            "precision_recall": [
                (c, _map_metrics(est, sets["single_bounce"], dims, c)) for c in PR_CUTOFFS_M],
        }
    return metrics, series


def _plots(out: Path, run: RunData, series: dict[str, dict[str, Any]]) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in series.items():
        e = np.sort(s["ue_error"][np.isfinite(s["ue_error"])])
        if e.size:
            ax.semilogx(e, np.arange(1, e.size + 1) / e.size, label=name)
    ax.set_xlabel("UE position error [m]")
    ax.set_ylabel("CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ue_error_cdf.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, s in series.items():
        floored = np.maximum(s["ue_error"], 1e-3)
        (line,) = ax.semilogy(run.drive.time, floored, "o-", ms=3, label=name)
        if s["peb"] is not None:
            ax.semilogy(run.drive.time, s["peb"], "--", color=line.get_color(),
                        label=f"{name} bound (PEB)")
    ax.set_xlabel("time along the drive [s]")
    ax.set_ylabel("UE position error [m] (below 1 mm drawn at 1 mm)")
    ax.set_ylim(bottom=1e-3)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ue_error_over_time.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in series.items():
        cut = [c for c, _ in s["precision_recall"]]
        (line,) = ax.semilogx(cut, [m["precision"] for _, m in s["precision_recall"]], "o-",
                              label=f"{name} precision")
        ax.semilogx(cut, [m["recall"] for _, m in s["precision_recall"]], "s--",
                    color=line.get_color(), label=f"{name} recall")
    ax.set_xlabel("cut-off [m]")
    ax.set_ylabel("single-bounce scatterer map")
    ax.set_ylim(0, 1.05)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "map_precision_recall.png", dpi=110)
    plt.close(fig)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.3g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _report(metrics: dict[str, Any], maps: bool) -> str:
    algos = metrics["algorithms"]
    lines = [
        f"# Evaluation of {', '.join(algos) or 'no algorithm'} on `{metrics['run_file']}`",
        "",
        f"Scatterer maps matched to the truth by optimal assignment, cut-off "
        f"{metrics['cutoff_m']} m. 2D estimators are scored in the horizontal plane; truth "
        "points they cannot represent (on floors and ceilings) are counted as *unmodelled*.",
        "",
        "## UE position",
        "",
        "| algorithm | converged | RMSE | median | p90 | scored in | PEB (median) "
        "| runtime/snapshot |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, a in algos.items():
        ue, bound = a["ue"] or {}, a["bound"] or {}
        lines.append(
            f"| {name} | {a['converged']}/{a['snapshots']} | {_fmt(ue.get('rmse_m'), ' m')} | "
            f"{_fmt(ue.get('median_m'), ' m')} | {_fmt(ue.get('p90_m'), ' m')} | "
            f"{ue.get('scored_in', '—')} | {_fmt(bound.get('peb_median_m'), ' m')} | "
            f"{1e3 * a['runtime']['median_s']:.1f} ms |")
    if any(a["converged"] == 0 for a in algos.values()):
        lines += ["", "Algorithms with no converged snapshot have no UE or map scores: "
                      "every estimate reported `converged = false` (see `reason` in the "
                      "estimate file)."]
    for set_name, description in metrics["truth_sets"].items():
        lines += ["", f"## Scatterer map vs {description}", "",
                  "| algorithm | GOSPA | localization | missed | false | matched RMSE | "
                  "precision | recall | unmodelled |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, a in algos.items():
            m = a["maps"][set_name]
            lines.append(
                f"| {name} | {_fmt(m['gospa_m'], ' m')} | {_fmt(m['localization_m'], ' m')} | "
                f"{_fmt(m['missed_m'], ' m')} | {_fmt(m['false_m'], ' m')} | "
                f"{_fmt(m['matched_rmse_m'], ' m')} | {m['precision']:.2f} | "
                f"{m['recall']:.2f} | {m['unmodelled']} |")
    lines += ["", "## Fused map over the drive vs landmarks (reflecting planes)", "",
              "Each algorithm's scatterers of all snapshots fused into one map (clusters of "
              "half the cut-off); a landmark (object + plane) is found when a fused point "
              "lies within the cut-off of one of its reflection points.", "",
              "| algorithm | landmarks found | landmark recall | fused points | "
              "fused precision |", "| --- | --- | --- | --- | --- |"]
    for name, a in algos.items():
        f = a["fused_map"]
        lines.append(f"| {name} | {f['landmarks_found']}/{f['landmarks']} | "
                     f"{f['landmark_recall']:.2f} | {f['fused_points']} | "
                     f"{f['fused_precision']:.2f} |")
    lines += ["", "## Which walls were mapped (single-bounce points, recall per object)", "",
              "| object | " + " | ".join(algos) + " |",
              "| --- | " + " | ".join("---" for _ in algos) + " |"]
    objects = sorted({
        o for a in algos.values() for o in a["maps"]["single_bounce"]["per_object"]
    })
    for obj in objects:
        cells = []
        for a in algos.values():
            row = a["maps"]["single_bounce"]["per_object"].get(obj)
            cells.append(f"{row['matched']}/{row['truth']}" if row else "—")
        lines.append(f"| {obj} | " + " | ".join(cells) + " |")
    lines += ["", "Plots: `ue_error_cdf.png`, `ue_error_over_time.png` (with the bound where "
                  "the estimator has one), `map_precision_recall.png`."]
    if maps:
        lines += ["", "Maps: `map.png` and `map.html` (open it in a browser: turn, zoom, "
                      "toggle layers, step through the snapshots) draw the single-bounce "
                      "truth, each algorithm's scatterers and the matches scored above; "
                      "their walls table is the one above.", "", "![map](map.png)"]
    lines.append("")
    return "\n".join(lines)


#: Every file a report directory holds.
REPORT_FILES = frozenset({"metrics.json", "report.md", "ue_error_cdf.png",
                          "ue_error_over_time.png", "map_precision_recall.png", "map.png",
                          "map.html"})


def is_report_directory(path: Path) -> bool:
    """Whether ``path`` is a report directory: its ``metrics.json`` has the report's keys
    and it holds nothing but :data:`REPORT_FILES` (so nothing of the user's is lost when
    it is replaced)."""
    try:
        names = {child.name for child in path.iterdir()}
        if not names <= REPORT_FILES or "metrics.json" not in names:
            return False
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(metrics, dict) and {"schema_version", "run_scene_sha256",
                                          "algorithms"} <= set(metrics)


#: What ``twin evaluate`` writes (``--overwrite`` replaces only this).
REPORT = Artifact("twin report directory", "twin evaluate", is_report_directory,
                  directory=True)


def evaluate_to_dir(
    run_path: str | Path,
    estimate_paths: Sequence[str | Path],
    output: str | Path,
    *,
    algorithms: str | Sequence[str] | None = None,
    cutoff: float = 1.0,
    maps: bool = True,
    overwrite: bool = False,
    on_done: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate` and write the report directory whole (a directory beside it,
    renamed into place; :mod:`twin.outputs`); with ``maps``, also ``map.png`` and
    ``map.html`` of the same algorithms and cut-off (:mod:`twin.maps`: the same
    matching, drawn). ``overwrite`` replaces only a report directory (:data:`REPORT`)."""
    out, run_path = Path(output), Path(run_path)
    check_output(out, REPORT, overwrite=overwrite,
                 inputs=[run_path, *map(Path, estimate_paths)])
    check_cutoff(cutoff)
    run = read_run(run_path)
    selected = gather_estimates(run_path, run, estimate_paths, algorithms)
    metrics, series = _score(run_path, run, selected, cutoff)
    with atomic_directory(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
        (tmp / "report.md").write_text(_report(metrics, maps))
        _plots(tmp, run, series)
        if maps:
            from twin.maps import map_data, write_map

            data = map_data(run_path, run, selected, cutoff=cutoff)
            write_map(data, tmp / "map.png", html=False)
            write_map(data, tmp / "map.html", html=True)
    if on_done is not None:
        on_done(out)
    return metrics


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


__all__ = ["TRUTH_SETS", "TruthPoints", "algorithm_dimensions", "check_cutoff", "evaluate",
           "evaluate_to_dir", "fuse_points", "match_snapshot", "snapshot_scatterers",
           "truth_sets"]
