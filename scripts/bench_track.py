"""Raw vs tracked, side by side in one run: ``twin track`` on the suite's estimates of
whole drives, both scored by ``twin evaluate`` against the ray-traced truth.

    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.bench_suite --out OUT \\
        --drives office,street --snr 10,20 --slow-snapshots 1000 [--algorithms ...]
    .venv/bin/python -m scripts.bench_track --out OUT [--drives office,street] [--snr 10,20]

The first command (``scripts/bench_suite.py``) estimates every snapshot of the drives
(``--slow-snapshots 1000``: the slow estimators too); this script tracks each estimate
file it finds there (``OUT/<drive>/<setup>/est_<snr>dB*.h5``, every algorithm with at
least one converged fix, defaults: motion and noise scale from the data) into
``OUT/<drive>/<setup>/track_<snr>dB.h5`` and scores raw and tracked together. Per
algorithm: the fixes (converged/snapshots) and the tracked snapshots, the RMSE of the
raw fixes, of the track on the same snapshots and of the track on all it reports, the
median bound, the share of reported 95 % regions that hold the truth (raw, tracked),
fixes the gate rejected, the motion noise and the noise scale chosen, and the landmark
map against the persistent landmarks (recall, precision, "—" for an empty map; raw: the
fused per-snapshot points); each coverage judged against the 0.90–0.98 band by its exact
binomial interval, per row and pooled per paper family. Writes ``OUT/bench_track.json``,
``OUT/bench_track.md`` and ``docs/figures/bench_track.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from estimators import ESTIMATORS
from scripts.bench_suite import _m, _ratio
from twin.estimatefile import read_estimates
from twin.evaluate import evaluate
from twin.scoring import CALIBRATION_BAND, calibration_verdict, coverage_interval
from twin.track import SUFFIX, track_file
from twin.tracking.motion import FixStatus

SETUPS = ("single", "multi", "ue_array", "ris")
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "bench_track.png"


def _rmse(errors: np.ndarray) -> float | None:
    e = errors[np.isfinite(errors)]
    return float(np.sqrt(np.mean(e**2))) if len(e) else None


def _precision(fused_map: dict[str, Any]) -> float | None:
    """A fused map's landmark precision; None for an empty map (the scoring's 1.0 for no
    points is vacuous: the table shows "—")."""
    return fused_map["landmark_precision"] if fused_map["fused_points"] else None


def _covered(integrity: dict[str, Any]) -> int:
    """How many reported 95 % regions held the truth."""
    if integrity["coverage_95"] is None:
        return 0
    return round(integrity["coverage_95"] * integrity["with_covariance"])


def calibration_summary(rows: list[dict[str, Any]]) -> str:
    """The rows' calibration verdicts (each coverage judged by its exact binomial
    interval against the band), and the coverage pooled per paper family."""
    lines = [f"Calibration against {CALIBRATION_BAND[0]:.2f}–{CALIBRATION_BAND[1]:.2f}, "
             "each coverage judged by its exact 95 % binomial interval "
             "(`twin.scoring.calibration_verdict`):", ""]
    for side in ("raw", "track"):
        verdicts = [r[f"{side}_calibration"] for r in rows
                    if r["tracked"] and r[f"{side}_calibration"] is not None]
        counts = {v: verdicts.count(v) for v in ("consistent", "over-confident",
                                                 "conservative")}
        lines.append(f"* {side}: " + ", ".join(f"{v} {n}" for v, n in counts.items())
                     + f" (of {len(verdicts)} rows with a track)")
    lines += ["", "| family | raw: held/regions | coverage [95 % interval] | verdict | "
              "track: held/regions | coverage [95 % interval] | verdict |",
              "| --- " * 7 + "|"]
    families = dict.fromkeys(ESTIMATORS[r["algorithm"]].paper for r in rows)
    for family in families:
        members = [r for r in rows if ESTIMATORS[r["algorithm"]].paper == family
                   and r["tracked"]]
        cells = []
        for side in ("raw", "track"):
            held = sum(r[f"{side}_covered"] for r in members)
            total = sum(r[f"{side}_with_covariance"] for r in members)
            if not total:
                cells += ["—", "—", "—"]
                continue
            low, high = coverage_interval(held, total)
            cells += [f"{held}/{total}", f"{held / total:.2f} [{low:.2f}, {high:.2f}]",
                      calibration_verdict(held, total)]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bench(out: Path, drive: str, setup: str, snr: float) -> list[dict[str, Any]]:
    directory = out / drive / setup
    files = sorted(directory.glob(f"est_{snr:g}dB*.h5"))
    if not files:
        return []
    est_path = max(files, key=lambda p: p.stat().st_mtime)
    run_path = directory / ("ris.h5" if setup == "ris" else f"{setup}.h5")
    raw = read_estimates(est_path)
    names = [n for n, e in raw.estimates.items() if e.converged.any()]
    if not names:
        return []
    tracked_path = directory / f"track_{snr:g}dB.h5"
    track_file(est_path, tracked_path, algorithms=names, run=run_path, overwrite=True)
    tracked = read_estimates(tracked_path)
    metrics, series = evaluate(run_path, [est_path, tracked_path],
                               algorithms=names + [n + SUFFIX for n in names])
    rows = []
    for name in names:
        a, b = metrics["algorithms"][name], metrics["algorithms"][name + SUFFIX]
        raw_error, track_error = series[name]["ue_error"], series[name + SUFFIX]["ue_error"]
        same = np.isfinite(raw_error)
        status = np.asarray(tracked.estimates[name + SUFFIX].diagnostics["fix_status"])
        used = tracked.params[name + SUFFIX]["used"]
        rows.append({
            "drive": drive, "setup": setup, "snr_db": snr, "algorithm": name,
            "dimensions": a["dimensions"], "snapshots": a["snapshots"],
            "converged": a["converged"], "tracked": b["converged"],
            "raw_rmse_m": _rmse(raw_error), "track_rmse_same_m": _rmse(track_error[same]),
            "track_rmse_m": _rmse(track_error),
            "bound_median_m": (a["bound"] or {}).get("peb_median_m"),
            "raw_coverage_95": a["integrity"]["coverage_95"],
            "track_coverage_95": b["integrity"]["coverage_95"],
            "raw_covered": _covered(a["integrity"]), "track_covered": _covered(b["integrity"]),
            "raw_with_covariance": a["integrity"]["with_covariance"],
            "track_with_covariance": b["integrity"]["with_covariance"],
            "raw_calibration": a["integrity"]["calibration"],
            "track_calibration": b["integrity"]["calibration"],
            "track_snapshot_coverage_95": b["integrity"]["snapshot_coverage_95"],
            "raw_confident_wild": a["integrity"]["confident_wild"],
            "track_confident_wild": b["integrity"]["confident_wild"],
            "rejected": int((status == FixStatus.REJECTED).sum()),
            "motion_std": used["motion_std"], "noise_scale": used["noise_scale"],
            "residual_scale": used["residual_scale"],
            "raw_landmark_recall": a["fused_map"]["landmark_recall"],
            "raw_landmark_precision": _precision(a["fused_map"]),
            "raw_map_points": a["fused_map"]["fused_points"],
            "track_landmark_recall": b["fused_map"]["landmark_recall"],
            "track_landmark_precision": _precision(b["fused_map"]),
            "track_landmarks": used["landmarks"],
            "maps": bool(raw.estimates[name].scatterer_valid.any()),
        })
    return rows


#: Marks on a coverage whose binomial interval misses the band (`calibration_summary`).
_VERDICT_MARK = {"over-confident": " ↓", "conservative": " ↑"}


def report(rows: list[dict[str, Any]]) -> str:
    lines = ["Coverage marks: ↓ over-confident, ↑ conservative (exact 95 % binomial "
             "interval wholly below or above 0.90–0.98); unmarked: consistent.", ""]
    for drive in dict.fromkeys(r["drive"] for r in rows):
        lines += [f"### {drive}", "",
                  "| set-up | algorithm | SNR | d | fixes | tracked | RMSE raw | RMSE track "
                  "(same) | RMSE track (all) | bound median | 95 % cover raw | track | "
                  "rejected | σ_a [m/s²] | noise scale | landmarks: recall raw | track | "
                  "precision raw | track | points raw | landmarks |",
                  "| --- " * 21 + "|"]
        for r in rows:
            if r["drive"] != drive:
                continue
            maps = r["maps"]

            def cell(key: str, r: dict[str, Any] = r, maps: bool = maps) -> str:
                return f"{r[key]:.2f}" if maps and r[key] is not None else "—"

            cover = [_ratio(r[f"{side}_coverage_95"])
                     + _VERDICT_MARK.get(r[f"{side}_calibration"], "")
                     for side in ("raw", "track")]
            lines.append(
                f"| {r['setup']} | {r['algorithm']} | {r['snr_db']:g} | {r['dimensions']} | "
                f"{r['converged']}/{r['snapshots']} | {r['tracked']}/{r['snapshots']} | "
                f"{_m(r['raw_rmse_m'])} | {_m(r['track_rmse_same_m'])} | "
                f"{_m(r['track_rmse_m'])} | {_m(r['bound_median_m'])} | {cover[0]} | "
                f"{cover[1]} | {r['rejected']} | {r['motion_std']:.2g} | "
                f"{r['noise_scale']:.2g} | {cell('raw_landmark_recall')} | "
                f"{cell('track_landmark_recall')} | {cell('raw_landmark_precision')} | "
                f"{cell('track_landmark_precision')} | "
                f"{r['raw_map_points'] if maps else '—'} | "
                f"{r['track_landmarks'] if maps else '—'} |")
        lines.append("")
    return "\n".join(lines)


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Raw vs tracked: RMSE on the same snapshots, and the 95 % coverage, one point per
    algorithm, drive and SNR."""
    fig, (ax_rmse, ax_cover) = plt.subplots(1, 2, figsize=(11, 4.6))
    markers = {"office": "o", "street": "s"}
    for r in rows:
        if r["track_rmse_same_m"] is None or r["raw_rmse_m"] is None:
            continue
        style = {"marker": markers.get(r["drive"], "^"), "alpha": 0.8,
                 "color": "C0" if r["snr_db"] >= 20 else "C1"}
        ax_rmse.loglog(r["raw_rmse_m"], r["track_rmse_same_m"], ls="none", **style)
        if r["raw_coverage_95"] is not None and r["track_coverage_95"] is not None:
            ax_cover.plot(r["raw_coverage_95"], r["track_coverage_95"], ls="none", **style)
    lo, hi = ax_rmse.get_xlim()
    ax_rmse.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax_rmse.set(xlabel="raw RMSE [m]", ylabel="tracked RMSE, same snapshots [m]",
                title="UE error: below the line, the track helps")
    ax_cover.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax_cover.axhspan(0.90, 0.98, color="g", alpha=0.12, label="calibrated (0.90-0.98)")
    ax_cover.set(xlabel="raw: share of 95 % regions holding the truth",
                 ylabel="tracked", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03),
                 title="Calibration of the reported 95 % regions")
    for drive, marker in markers.items():
        ax_cover.plot([], [], marker, color="gray", ls="none", label=drive)
    ax_cover.plot([], [], "o", color="C0", ls="none", label="20 dB")
    ax_cover.plot([], [], "o", color="C1", ls="none", label="10 dB")
    ax_cover.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-suite"))
    parser.add_argument("--drives", default="office,street")
    parser.add_argument("--snr", default="10,20")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--figure", default=str(FIGURE),
                        help="where to draw the figure ('': none)")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for drive in args.drives.split(","):
        for setup in args.setups.split(","):
            for snr in (float(s) for s in args.snr.split(",")):
                found = bench(args.out, drive, setup, snr)
                rows += found
                for r in found:
                    print(f"{drive}/{setup} {snr:g} dB {r['algorithm']}: RMSE raw "
                          f"{_m(r['raw_rmse_m'])} track {_m(r['track_rmse_same_m'])} "
                          f"(all {_m(r['track_rmse_m'])}), cover "
                          f"{_ratio(r['raw_coverage_95'])} → "
                          f"{_ratio(r['track_coverage_95'])}", flush=True)
    (args.out / "bench_track.json").write_text(json.dumps(rows, indent=1))
    (args.out / "bench_track.md").write_text(report(rows) + "\n" + calibration_summary(rows))
    if args.figure:
        figure(rows, Path(args.figure))
    print(report(rows))
    print(calibration_summary(rows))


if __name__ == "__main__":
    main()
