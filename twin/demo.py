"""``twin demo``: the whole suite on the bundled scenes, every registered estimator on a
run that fits it.

Four runs (:data:`DEMO_RUNS`), each simulated, estimated, tracked and evaluated against
its ray-traced truth into ``OUT/<run>/`` (``run.h5``, ``est.h5``, ``tracked.h5``,
``report/`` with the 3D maps, a layer per algorithm, raw and tracked side by side):

* ``office``: a walk on the office floor, one access point, a single-antenna UE: MISO's
  setting (the UE and the walls from one BS);
* ``street``: a drive on the street under four BSs on masts, a single-antenna UE: the
  direct (grid) localizers of the DAUN paper (the BSs of its shipped checkpoint);
* ``ue_array``: a drive on the street under three BSs with a 1x4 UE array: the setting of
  LOCMAN (one BS) and SLAB (several);
* ``ris``: a RIS-aided walk through a hidden room with a radio map: RIS-CD's setting.

Every algorithm estimated on every snapshot of its run is also tracked (``twin track``:
a smoothed track and a persistent landmark map, ``<algorithm>+track``), and scored next
to its raw estimates. The slow ones estimate a few snapshots of their run (``twin
estimate --snapshots``; :data:`DemoRun.snapshots`), too few to track: the convex
baselines of the direct methods every sixth, LOCMAN (about 35 s a snapshot on 2 cores,
issue "Drive-scale speed") and SLAB's closed-loop family one (the same for all).
``report.md`` gathers every algorithm's scores in one table; ``scene.png`` is Sionna's
render of the office walk with its traced paths, ``ris_scene.png`` the tile and the
paths through it.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from estimators import ESTIMATORS
from twin.config import load_config
from twin.errors import TwinInputError
from twin.estimate import estimate_run
from twin.estimatefile import ESTIMATE_FILE
from twin.evaluate import REPORT, evaluate_to_dir
from twin.outputs import Artifact, check_output, write_bytes_atomic
from twin.runfile import RUN_FILE
from twin.scene import BUNDLED_DIR
from twin.scene_render import SCENE_RENDER, render_scene_png
from twin.simulate import run_inputs, simulate_to_file
from twin.track import TRACK_FILE, track_file

DEMO_SNR_DB = 20.0
"""The SNR of every demo estimate [dB]: the issue's reference point, so the report
compares the estimators with their bounds where both are meaningful."""


@dataclass(frozen=True)
class DemoRun:
    """One run of the demo: a bundled config and the estimators it is the setting of.

    Attributes
    ----------
    key : the run's directory under the demo's output.
    config : the bundled config it simulates.
    algorithms : the registered estimators run on it.
    snapshots : ``twin estimate --snapshots`` items (the slow ones on a few snapshots).
    what : one line for the report.
    """

    key: str
    config: Path
    algorithms: tuple[str, ...]
    snapshots: tuple[str, ...] = ()
    what: str = ""

    @property
    def tracked(self) -> tuple[str, ...]:
        """The algorithms estimated on every snapshot: those the demo tracks."""
        partial = {item.partition("=")[0] for item in self.snapshots}
        return tuple(name for name in self.algorithms if name not in partial)


DEMO_RUNS = (
    DemoRun("office", BUNDLED_DIR / "office_floor" / "drive.yaml",
            ("miso-ml", "miso-sp-grid", "miso-sp-refine"),
            what="office walk, one access point (1x16), single-antenna UE"),
    DemoRun("street", BUNDLED_DIR / "street" / "daun_drive.yaml",
            ("dpd", "stansfield", "srl", "cvx-direct", "p-admm", "daun", "daun-r"),
            snapshots=("srl=0:100:6", "cvx-direct=0:100:6"),
            what="street drive, four BSs (1x16) on 8 m masts, single-antenna UE, "
                 "narrowband (the BSs of DAUN's shipped `street` checkpoint)"),
    DemoRun("ue_array", BUNDLED_DIR / "street" / "ue_array_drive.yaml",
            ("locman", "dcs-somp", "slab", "slab-lce", "gd-lce", "ls-lce", "gd-bfr",
             "lmi-bfr"),
            snapshots=tuple(f"{name}=4" for name in ("locman", "slab", "slab-lce", "gd-lce",
                                                      "ls-lce", "gd-bfr", "lmi-bfr")),
            what="street drive, three BSs (1x8) on 8 m masts, 1x4 UE array"),
    DemoRun("ris", BUNDLED_DIR / "office_floor" / "ris_positioning.yaml",
            ("ris-cd", "ris-rss"),
            what="RIS-aided walk through a hidden room with a radio map"),
)


def _is_demo_summary(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            return path.is_file() and f.readline().startswith(SUMMARY_TITLE)
    except (OSError, UnicodeDecodeError):
        return False


SUMMARY_TITLE = "# twin demo: the suite on the bundled scenes"
DEMO_SUMMARY = Artifact("twin demo summary", "twin demo", _is_demo_summary)


def demo_outputs(out_dir: Path) -> list[tuple[Path, Artifact]]:
    """Every path the demo writes under ``out_dir``, with what it is."""
    paths: list[tuple[Path, Artifact]] = [
        (out_dir / "report.md", DEMO_SUMMARY), (out_dir / "scene.png", SCENE_RENDER),
        (out_dir / "ris_scene.png", SCENE_RENDER)]
    for run in DEMO_RUNS:
        paths += [(out_dir / run.key / "run.h5", RUN_FILE),
                  (out_dir / run.key / "est.h5", ESTIMATE_FILE),
                  (out_dir / run.key / "tracked.h5", TRACK_FILE),
                  (out_dir / run.key / "report", REPORT)]
    return paths


def check_demo_runs(registered: Sequence[str]) -> None:
    """Every registered estimator on exactly one demo run (a programming error if not:
    a new estimator must be given the run that fits it)."""
    placed = [name for run in DEMO_RUNS for name in run.algorithms]
    missing = sorted(set(registered) - set(placed))
    twice = sorted({name for name in placed if placed.count(name) > 1})
    unknown = sorted(set(placed) - set(registered))
    if missing or twice or unknown:
        raise RuntimeError(f"twin demo: estimators without a run {missing}, on two runs "
                           f"{twice}, not registered {unknown}")


def run_demo(
    out_dir: Path,
    on_progress: Callable[[int, int], None] | None = None,
    on_task: Callable[[str, int, int], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Path]:
    """Run the demo into ``out_dir`` (replacing the files an earlier demo wrote there, and
    nothing else: every output is checked before any work,
    :func:`twin.outputs.check_output`); returns the files written, labelled.

    ``on_progress(done, total)`` follows each run's tracing, ``on_task(task, done,
    total)`` each estimator's snapshots and each evaluation. ``on_skip(algorithm,
    reason)``: an estimator that does not fit its demo run (which would be a bug of the
    demo's table, :data:`DEMO_RUNS`) is reported there instead of failing the demo.
    """
    check_demo_runs(sorted(ESTIMATORS))
    task = on_task or (lambda name, done, total: None)
    inputs: list[Path] = []
    for run in DEMO_RUNS:
        scene, others = run_inputs(*load_config(run.config))
        inputs += [run.config, *scene, *others]
    for path, artifact in demo_outputs(out_dir):
        check_output(path, artifact, overwrite=True, inputs=inputs, what="demo output")
    # Each run's evaluation (its Open3D map waits on a renderer child most of the time)
    # goes on in a process of its own while the next run is traced and estimated.
    files: dict[str, Path] = {}
    scores: dict[str, dict[str, Any]] = {}
    pending: list[tuple[DemoRun, Future[_Evaluation] | None, dict[str, Path]]] = []
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        for run in DEMO_RUNS:
            labelled: dict[str, Path] = {}
            directory = out_dir / run.key
            run_path, est_path, report = (directory / "run.h5", directory / "est.h5",
                                          directory / "report")
            sim = simulate_to_file(run.config, run_path, overwrite=True,
                                   on_progress=on_progress)
            if run.key == "office":
                render_scene_png(sim, out_dir / "scene.png")
                labelled["scene render (office walk, traced paths)"] = out_dir / "scene.png"
            if run.key == "ris":
                render_scene_png(sim, out_dir / "ris_scene.png",
                                 snapshots=[sim.run.drive.num_snapshots - 1])
                labelled["RIS walk render (the tile, the paths through it)"] = (
                    out_dir / "ris_scene.png")
            del sim
            try:
                estimated = estimate_run(
                    run_path, run.algorithms, est_path, snr_db=DEMO_SNR_DB,
                    snapshots=run.snapshots, overwrite=True, on_progress=on_task,
                    on_skip=on_skip or (lambda name, reason: None))
            except TwinInputError:
                if on_skip is None:
                    raise
                pending.append((run, None, labelled))
                continue  # none of the run's estimators fits it: each was reported
            tracked_path = directory / "tracked.h5"
            to_track = [name for name in run.tracked if name in estimated]
            if to_track:
                task(f"track {run.key}", 0, 1)
                track_file(est_path, tracked_path, algorithms=to_track, overwrite=True)
                task(f"track {run.key}", 1, 1)
            task(f"evaluate {run.key}", 0, 1)
            evaluation = pool.submit(_evaluate, run_path,
                                     [est_path, *([tracked_path] if to_track else [])],
                                     report)
            labelled[f"{run.key}: run file"] = run_path
            labelled[f"{run.key}: estimates"] = est_path
            if to_track:
                labelled[f"{run.key}: tracked estimates"] = tracked_path
            labelled[f"{run.key}: report"] = report / "report.md"
            labelled[f"{run.key}: map (PNG)"] = report / "map.png"
            labelled[f"{run.key}: map (interactive, open in a browser)"] = report / "map.html"
            pending.append((run, evaluation, labelled))
        for run, submitted, labelled in pending:
            if submitted is not None:
                metrics, caught = submitted.result()
                for message, category in caught:  # shown as the command shows its own
                    warnings.warn(message, category, stacklevel=1)
                scores[run.key] = metrics["algorithms"]
                task(f"evaluate {run.key}", 1, 1)
            files.update(labelled)
    write_bytes_atomic(out_dir / "report.md", _summary(scores).encode())
    files["summary (every estimator)"] = out_dir / "report.md"
    return files


_Evaluation = tuple[dict[str, Any], list[tuple[str, type[Warning]]]]


def _evaluate(run_path: Path, estimates: list[Path], report: Path) -> _Evaluation:
    """:func:`~twin.evaluate.evaluate_to_dir` (in the demo's evaluation process): its
    metrics and the warnings it gave, for the demo's own process to show."""
    with warnings.catch_warnings(record=True) as caught:
        metrics = evaluate_to_dir(run_path, estimates, report, overwrite=True)
    return metrics, [(str(w.message), w.category) for w in caught]


def _number(value: float | None, unit: str = " m") -> str:
    return "—" if value is None else f"{value:.3g}{unit}"


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds >= 1 else f"{1e3 * seconds:.3g} ms"


def _summary(scores: dict[str, dict[str, Any]]) -> str:
    """``report.md``: one row per algorithm, grouped by run (each run's own report has
    the maps and the details)."""
    lines = [SUMMARY_TITLE, "",
             f"Every registered estimator at {DEMO_SNR_DB:g} dB on the run that fits it; "
             "errors in the dimensions each estimates, its Cramér-Rao bound (median over "
             "the snapshots where it applies), fixes more than 5 m off (in brackets: those "
             "whose reported covariance does not cover the error). `<algorithm>+track`: "
             "the same estimates through `twin track` (a smoothed track and a persistent "
             "landmark map). Details and the 3D maps: `<run>/report/report.md`.", "",
             "| run | algorithm | converged/estimated | median | p90 | RMSE | bound (median) "
             "| > 5 m off (not covered) | 95 % region holds truth | runtime/snapshot |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in DEMO_RUNS:
        for name, a in scores.get(run.key, {}).items():
            ue = a["ue"] or {}
            bound = a["bound"]
            peb = "no bound" if bound is None else _number(bound["peb_median_m"])
            integrity = a["integrity"]
            lines.append(
                f"| {run.key} | {name} | {a['converged']}/{a['estimated']} | "
                f"{_number(ue.get('median_m'))} | {_number(ue.get('p90_m'))} | "
                f"{_number(ue.get('rmse_m'))} | {peb} | "
                f"{integrity['wild']} ({integrity['confident_wild']}) | "
                f"{_number(integrity['coverage_95'], '')} | "
                f"{_duration(a['runtime']['median_s'])} |")
    lines += ["", "Runs:", ""]
    lines += [f"- `{run.key}`: {run.what} (`{run.config.relative_to(BUNDLED_DIR)}`)"
              + (f"; only some snapshots for {', '.join(s.split('=')[0] for s in run.snapshots)}"
                 if run.snapshots else "")
              for run in DEMO_RUNS]
    return "\n".join(lines) + "\n"
