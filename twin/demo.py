"""``twin demo``: the whole chain on the bundled office floor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from twin.render import render_scene_png
from twin.runfile import check_output_path
from twin.scene import BUNDLED_DIR
from twin.simulate import simulate_to_file

DEMO_CONFIG = BUNDLED_DIR / "office_floor" / "drive.yaml"


def run_demo(
    out_dir: Path, on_progress: Callable[[int, int], None] | None = None
) -> dict[str, Path]:
    """Simulate the demo drive and render it; returns the files written."""
    run_path = out_dir / "run.h5"
    png_path = out_dir / "scene.png"
    check_output_path(png_path, overwrite=True, what="demo output")
    sim = simulate_to_file(DEMO_CONFIG, run_path, overwrite=True, on_progress=on_progress)
    render_scene_png(sim, png_path)
    return {"run file": run_path, "scene render": png_path}
