"""PNG map rendering on the CPU: one sphere renderable vs one per layer, side by side.

    .venv/bin/python -m scripts.twin.bench_render [RUN.h5 EST.h5] [--repeats 5] [--camera C]

Without files it runs the demo chain into a temporary directory first. The same map (the
demo's 1280 × 800 PNG: a 1792 × 1600 supersampled view) is rendered by the Open3D child
process ``--repeats`` times with every sphere in one renderable (what ``twin render``
does) and with one renderable per sphere set (truth by status, each algorithm's track,
UE and scatterers, ...); prints each one's median and worst time per render (stalled
children killed and retried included), the stalls, and the ratio of the medians. The
frame limit is raised to :data:`FRAME_LIMIT_S` so that slow frames are measured, not
killed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from twin.maps import data as map_data
from twin.maps import geometry, render, style
from twin.maps import png as map_png

FRAME_LIMIT_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="RUN.h5 EST.h5 (default: demo)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--camera", help="x,y,z:tx,ty,tz (default: the map's own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.files:
            run, est = args.files
        else:
            from twin.demo import run_demo

            print("running the demo chain for a run and its estimates ...", flush=True)
            files = run_demo(Path(tmp))
            run, est = files["run file"], files["estimates"]
        data = render.load_map(run, est)
    width, height = style.DEFAULT_SIZE
    view_width = width - round(map_png.PANEL_FRACTION * width)
    draw, _ = map_png._draw_list(data, map_data.layers(data, None))
    camera = (render.parse_camera(args.camera) if args.camera
              else geometry.auto_camera(data.focus, aspect=view_width / height))
    intrinsic, extrinsic = map_png.camera_matrices(camera, view_width, height)
    scaled = intrinsic * map_png.SUPERSAMPLING
    scaled[2, 2] = 1.0
    size = (view_width * map_png.SUPERSAMPLING, height * map_png.SUPERSAMPLING)
    sets = sum(1 for centres, _, _ in draw.spheres if len(centres))
    print(f"map: {sets} sphere sets ({sum(len(c) for c, _, _ in draw.spheres)} spheres), "
          f"{len(draw.lines)} line sets, {data.scene.num_faces if data.scene else 0} scene "
          f"faces; frame {size[0]}x{size[1]}")
    stalls = 0
    original = map_png._run_worker

    def counting(spec: Path, out: Path, log: Path, pieces: int = 1) -> tuple[bool, int]:
        nonlocal stalls
        finished, code = original(spec, out, log, pieces)
        stalls += not finished
        return finished, code

    map_png._run_worker = counting  # type: ignore[assignment]
    map_png.OPEN3D_FRAME_TIMEOUT_S = FRAME_LIMIT_S
    medians: dict[str, float] = {}
    images = {}
    for label, merge in (("one sphere renderable", True), (f"{sets} sphere renderables", False)):
        stalls, times = 0, []
        for _ in range(args.repeats):
            start = time.perf_counter()
            images[label] = map_png._render_open3d(draw, scaled, extrinsic, size,
                                                   merge_spheres=merge)
            times.append(time.perf_counter() - start)
        medians[label] = float(np.median(times))
        print(f"{label:>24}: median {medians[label]:6.2f} s, worst {max(times):6.2f} s per "
              f"render over {args.repeats}; {stalls} stalled child(ren) killed and retried")
    merged, separate = images.values()
    same = np.mean(np.abs(merged.astype(float) - separate.astype(float)).max(axis=-1) <= 8)
    print(f"{'':>24}  pixels within 8 levels of each other: {same:.2%}")
    fast, slow = medians.values()
    print(f"ratio {sets} renderables / one (medians): {slow / fast:.1f}")


if __name__ == "__main__":
    main()
