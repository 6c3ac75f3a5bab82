"""``twin evaluate run.h5 est.h5 [...] -o report/``: estimates scored against the truth.

Per algorithm: UE position error (RMSE, median, 90th percentile, CDF, over time), the
scatterer map snapshot by snapshot against three truth sets, the drive's fused map
against persistent landmarks, the Cramér-Rao bound along the drive where the estimator
has one, and runtime. The scoring itself (truth sets, matching, cut-off, dimensions,
landmarks) is :mod:`twin.scoring`'s; what each estimator can represent
(``position_dimensions``) and its bound are read from the estimate file, where
``twin estimate`` stored them (:mod:`twin.estimatefile`): nothing is re-estimated or
re-sounded here. A 2-D estimator is scored in the horizontal plane, and the truth points
it cannot represent (on floors and ceilings) are reported as "unmodelled", never
dropped silently.

Output directory (written whole or not at all): ``metrics.json`` (schema below),
``report.md``, ``ue_error_cdf.png``, ``ue_error_over_time.png``,
``map_precision_recall.png`` and (unless ``maps=False``) the 3D maps ``map.png`` and
``map.html`` of :mod:`twin.maps`, drawn from the same matchings.

``metrics.json``::

    {"schema_version": "1.4", "run_file", "run_scene_sha256", "cutoff_m",
     "truth_sets": {name: description},
     "algorithms": {name: {
        "estimate_file", "params", "dimensions", "snapshots", "estimated", "converged",
        "ue": {"rmse_m", "median_m", "p90_m", "scored_in"} | null,
        "integrity": {"wild", "confident_wild", "with_covariance", "coverage_95",
                      "coverage_95_interval": [low, high], "calibration",
                      "snapshot_coverage_95"},
        "bound": {"description", "peb_median_m", "peb_rms_m",
                  "other": {name: median}} | null,
        "runtime": {"median_s" (over the estimated snapshots), "total_s"},
        "maps": {truth_set: {"gospa_m", "localization_m", "missed_m", "false_m",
                             "matched_rmse_m", "precision", "recall",
                             "matched", "missed", "false", "unmodelled",
                             "per_object": {object: {"truth", "matched"}}}},
        "fused_map": {"landmarks", "landmarks_found", "landmark_recall",
                      "fused_points", "fused_correct", "landmark_precision",
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

from estimators.typing import FloatArray
from twin.estimatefile import EstimateFile, StoredBound, estimated, gather_estimates
from twin.maps.data import map_data
from twin.maps.render import write_map
from twin.outputs import Artifact, atomic_directory, check_output
from twin.runfile import RunData, read_run
from twin.scoring import (
    TRUTH_SETS,
    AlgorithmMatching,
    TruthPoints,
    check_cutoff,
    fused_map_metrics,
    integrity_metrics,
    map_metrics,
    match_algorithm,
    truth_sets,
    ue_errors,
    ue_metrics,
)

SCHEMA_VERSION = "1.4"
PR_CUTOFFS_M = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def _coverage(integrity: dict[str, Any]) -> str:
    """``0.94 [0.74, 1.00] calibrated``: a coverage, its interval and verdict."""
    if integrity["coverage_95"] is None:
        return "—"
    low, high = integrity["coverage_95_interval"]
    return (f"{integrity['coverage_95']:.2f} [{low:.2f}, {high:.2f}] "
            f"{integrity['calibration']}")


def _bound_metrics(bound: StoredBound | None) -> dict[str, Any] | None:
    """The medians of a stored bound along the drive (None: no bound; a median None:
    the bound does not apply at any snapshot, e.g. no LOS)."""
    if bound is None:
        return None

    def median(values: FloatArray) -> float | None:
        return float(np.nanmedian(values)) if np.isfinite(values).any() else None

    peb = bound.position_m
    return {
        "description": bound.description,
        "peb_median_m": median(peb),
        "peb_rms_m": float(np.sqrt(np.nanmean(peb**2))) if np.isfinite(peb).any() else None,
        "other": {name: median(values) for name, values in bound.other.items()},
    }


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
    scores = _score(run_path, run, selected, cutoff)
    return scores.metrics, scores.series


@dataclass(frozen=True)
class Scores:
    """What :func:`_score` gives: ``metrics`` (the ``metrics.json`` content), ``series``
    (per algorithm, the arrays the plots draw), and for the maps the single-bounce truth
    (per snapshot) with each algorithm's ``matchings`` against it."""

    metrics: dict[str, Any]
    series: dict[str, dict[str, Any]]
    single_bounce: list[TruthPoints]
    matchings: dict[str, AlgorithmMatching]


def _score(run_path: Path, run: RunData, selected: dict[str, tuple[Path, EstimateFile]],
           cutoff: float) -> Scores:
    """:func:`evaluate` on a run and its estimates already read."""
    sets = truth_sets(run)
    metrics: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_file": run_path.name,
        "run_scene_sha256": run.scene_sha256, "cutoff_m": cutoff,
        "truth_sets": TRUTH_SETS, "algorithms": {},
    }
    series: dict[str, dict[str, Any]] = {}
    single_bounce: dict[str, AlgorithmMatching] = {}
    for name, (path, est_file) in selected.items():
        est = est_file.estimates[name]
        dims = est_file.position_dimensions[name]
        bound = est_file.bounds.get(name)
        ue_error = ue_errors(est, run.drive.position, dims)
        ran = estimated(est)  # the snapshots it was run on (twin estimate --snapshots)
        matchings = {k: match_algorithm(est, v, dimensions=dims, cutoff=cutoff)
                     for k, v in sets.items()}
        single_bounce[name] = matchings["single_bounce"]
        metrics["algorithms"][name] = {
            "estimate_file": path.name, "params": est_file.params.get(name, {}),
            "dimensions": dims, "snapshots": est.num_snapshots,
            "estimated": int(ran.sum()),
            "converged": int(est.converged.sum()), "ue": ue_metrics(ue_error, dims),
            "integrity": integrity_metrics(est, run.drive.position, dims, ran),
            "bound": _bound_metrics(bound),
            "runtime": {"median_s": float(np.median(est.runtime_s[ran])) if ran.any() else 0.0,
                        "total_s": float(np.sum(est.runtime_s))},
            "maps": {k: map_metrics(matchings[k], v) for k, v in sets.items()},
            "fused_map": fused_map_metrics(est, sets["single_bounce"], dims, cutoff),
        }
        series[name] = {
            "ue_error": ue_error, "peb": None if bound is None else bound.position_m,
            "precision_recall": [
                (c, map_metrics(match_algorithm(est, sets["single_bounce"], dimensions=dims,
                                                cutoff=c), sets["single_bounce"]))
                for c in PR_CUTOFFS_M],
        }
    return Scores(metrics, series, sets["single_bounce"], single_bounce)


def _plots(out: Path, run: RunData, series: dict[str, dict[str, Any]]) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in series.items():
        e = np.sort(s["ue_error"][np.isfinite(s["ue_error"])])
        if e.size:
            ax.semilogx(e, np.arange(1, e.size + 1) / e.size, label=name)
    ax.set_xlabel("UE position error [m]")
    ax.set_ylabel("CDF")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no converged estimate: an empty CDF, no legend
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
        "| algorithm | converged/estimated | RMSE | median | p90 | scored in | bound (PEB, median) "
        "| > 5 m off (not covered) | 95 % region holds truth: fixes | snapshots "
        "| runtime/snapshot |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, a in algos.items():
        ue = a["ue"] or {}
        peb = ("no bound" if a["bound"] is None
               else _fmt(a["bound"]["peb_median_m"], " m"))
        lines.append(
            f"| {name} | {a['converged']}/{a['estimated']} | {_fmt(ue.get('rmse_m'), ' m')} | "
            f"{_fmt(ue.get('median_m'), ' m')} | {_fmt(ue.get('p90_m'), ' m')} | "
            f"{ue.get('scored_in', '—')} | {peb} | "
            f"{a['integrity']['wild']} ({a['integrity']['confident_wild']}) | "
            f"{_coverage(a['integrity'])} | "
            f"{_fmt(a['integrity']['snapshot_coverage_95'])} | "
            f"{1e3 * a['runtime']['median_s']:.1f} ms |")
    lines += ["", "\"> 5 m off\": converged fixes more than 5 m from the truth; in "
                  "brackets those whose reported covariance does not cover the error (99 % "
                  "region), or that report none: confident wild fixes. \"95 % region holds "
                  "truth\": the share of fixes with a covariance whose 95 % region contains "
                  "the true position (0.95 when calibrated; in brackets its exact 95 % "
                  "binomial interval, and the verdict against 0.90–0.98 at that noise), "
                  "and of all snapshots estimated (one without a fix or a covariance "
                  "misses)."]
    bounded = {name: a["bound"] for name, a in algos.items() if a["bound"] is not None}
    if bounded:
        lines += ["", "Bounds (stored by `twin estimate` from the twin's true channel; "
                      "\"—\": the bound does not apply at any snapshot, e.g. no LOS):", ""]
        # One line per bound: a paper's estimators share theirs.
        sharing: dict[str, list[str]] = {}
        for name, b in bounded.items():
            sharing.setdefault(b["description"], []).append(name)
        lines += [f"- {', '.join(names)}: {description}"
                  for description, names in sharing.items()]
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
              "landmark precision |", "| --- | --- | --- | --- | --- |"]
    for name, a in algos.items():
        f = a["fused_map"]
        lines.append(f"| {name} | {f['landmarks_found']}/{f['landmarks']} | "
                     f"{f['landmark_recall']:.2f} | {f['fused_points']} | "
                     f"{f['landmark_precision']:.2f} |")
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
    matchings, drawn). ``overwrite`` replaces only a report directory (:data:`REPORT`)."""
    out, run_path = Path(output), Path(run_path)
    check_output(out, REPORT, overwrite=overwrite,
                 inputs=[run_path, *map(Path, estimate_paths)])
    check_cutoff(cutoff)
    run = read_run(run_path)
    selected = gather_estimates(run_path, run, estimate_paths, algorithms)
    scores = _score(run_path, run, selected, cutoff)
    metrics = scores.metrics
    with atomic_directory(out) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
        (tmp / "report.md").write_text(_report(metrics, maps))
        _plots(tmp, run, scores.series)
        if maps:
            data = map_data(
                run_path, run, scores.single_bounce,
                {name: est_file.estimates[name] for name, (_, est_file) in selected.items()},
                scores.matchings, estimate_paths=[path for path, _ in selected.values()],
                cutoff=cutoff)
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


__all__ = ["REPORT", "REPORT_FILES", "SCHEMA_VERSION", "evaluate", "evaluate_to_dir",
           "is_report_directory"]
