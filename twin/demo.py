"""``twin demo``: the whole chain on the bundled office floor.

simulate (``run.h5``, ``scene.png``: Sionna's render with the traced paths) → every
registered estimator that fits the drive (``est.h5``; the drive's UE has one antenna, so
estimators that need a UE array are skipped, with the reason) → evaluation against the
ray-traced truth (``report/``, with the estimated vs true map in 3D: ``map.png``,
``map.html``) → a second walk with a RIS tile on a wall, around a corner
(``ris_run.h5``, ``ris_scene.png``: the tile and the paths through it drawn at the walk's
last, hidden position, where the tile is focused; docs/RIS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from estimators import ESTIMATORS
from twin.config import load_config
from twin.estimate import estimate_run
from twin.estimatefile import ESTIMATE_FILE
from twin.evaluate import REPORT, evaluate_to_dir
from twin.outputs import check_output
from twin.runfile import RUN_FILE
from twin.scene import BUNDLED_DIR
from twin.scene_render import SCENE_RENDER, render_scene_png
from twin.simulate import run_inputs, simulate_to_file

DEMO_CONFIG = BUNDLED_DIR / "office_floor" / "drive.yaml"
RIS_DEMO_CONFIG = BUNDLED_DIR / "office_floor" / "ris_drive.yaml"
#: Estimator settings of the demo: the office channel is rich, so model 4 paths.
DEMO_SETTINGS = ("num_paths=4",)


def run_demo(
    out_dir: Path,
    on_progress: Callable[[int, int], None] | None = None,
    on_task: Callable[[str, int, int], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Path]:
    """Run the demo chain into ``out_dir`` (replacing the files an earlier demo wrote
    there, and nothing else: every output is checked before any work,
    :func:`twin.outputs.check_output`); returns the files written, labelled.
    ``on_task(task, done, total)`` follows each estimator's snapshots, then the evaluation
    and the maps. Estimators the demo drive does not fit (another UE array, say) are left
    out and named to ``on_skip(algorithm, reason)``."""
    task = on_task or (lambda name, done, total: None)
    run_path, png_path = out_dir / "run.h5", out_dir / "scene.png"
    est_path, report = out_dir / "est.h5", out_dir / "report"
    ris_run_path, ris_png_path = out_dir / "ris_run.h5", out_dir / "ris_scene.png"
    inputs: list[Path] = []
    for config_path in (DEMO_CONFIG, RIS_DEMO_CONFIG):
        scene, others = run_inputs(*load_config(config_path))
        inputs += [config_path, *scene, *others]
    for path, artifact in ((run_path, RUN_FILE), (png_path, SCENE_RENDER),
                           (est_path, ESTIMATE_FILE), (report, REPORT),
                           (ris_run_path, RUN_FILE), (ris_png_path, SCENE_RENDER)):
        check_output(path, artifact, overwrite=True, inputs=inputs, what="demo output")
    sim = simulate_to_file(DEMO_CONFIG, run_path, overwrite=True, on_progress=on_progress)
    render_scene_png(sim, png_path)
    estimate_run(run_path, sorted(ESTIMATORS), est_path, overwrite=True,
                 settings=DEMO_SETTINGS, on_progress=on_task,
                 on_skip=on_skip or (lambda name, reason: None))
    task("evaluate, draw maps", 0, 1)
    evaluate_to_dir(run_path, [est_path], report, overwrite=True)
    task("evaluate, draw maps", 1, 1)
    task("RIS walk", 0, 1)
    ris_sim = simulate_to_file(RIS_DEMO_CONFIG, ris_run_path, overwrite=True)
    render_scene_png(ris_sim, ris_png_path, snapshots=[ris_sim.run.drive.num_snapshots - 1])
    task("RIS walk", 1, 1)
    return {"run file": run_path, "scene render": png_path, "estimates": est_path,
            "report": report / "report.md", "map (PNG)": report / "map.png",
            "map (interactive, open in a browser)": report / "map.html",
            "RIS walk (run file)": ris_run_path,
            "RIS walk render (the tile, the paths through it)": ris_png_path}
