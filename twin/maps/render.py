"""``twin render run.h5 [est.h5] -o map.png|map.html``: a run (and its estimates) drawn.

:func:`load_map` reads the run and the estimate file(s), matches each algorithm's
scatterers to the single-bounce truth as ``twin evaluate`` does
(:func:`twin.scoring.match_algorithm`, in each estimator's stored
``position_dimensions``) and gathers what a map draws (:mod:`twin.maps.data`);
:func:`write_map` draws it with :mod:`twin.maps.png` or :mod:`twin.maps.html`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.errors import TwinInputError
from twin.estimatefile import gather_estimates, split_names
from twin.maps.data import MapData, map_data
from twin.maps.geometry import Camera
from twin.maps.html import write_html
from twin.maps.png import write_png
from twin.maps.style import DEFAULT_CUTOFF_M, DEFAULT_SIZE, OUTPUT_SUFFIXES, PNG_BACKENDS
from twin.outputs import Artifact, atomic_file, check_output, stamp, stamped
from twin.runfile import read_run
from twin.scoring import TruthPoints, check_cutoff, match_algorithm, truth_sets


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render_map` wrote: ``path``, ``backend`` (``open3d``, ``matplotlib``
    or ``plotly``), the number of snapshots of the run and the algorithms drawn."""

    path: Path
    backend: str
    num_snapshots: int
    algorithms: tuple[str, ...]



def parse_camera(text: str) -> Camera:
    """Parse ``"x,y,z:tx,ty,tz"`` (camera position : look-at point, metres).

    Raises
    ------
    TwinInputError
        One line naming ``--camera`` for anything else (or position == target).
    """
    usage = f"--camera: expected 'x,y,z:tx,ty,tz' (metres), got '{text}'"
    parts = text.split(":")
    if len(parts) != 2:
        raise TwinInputError(usage)
    try:
        values = [np.array([float(v) for v in part.split(",")]) for part in parts]
    except ValueError:
        raise TwinInputError(usage) from None
    if any(v.shape != (3,) or not np.all(np.isfinite(v)) for v in values):
        raise TwinInputError(usage)
    if np.allclose(values[0], values[1]):
        raise TwinInputError(f"--camera: position and look-at point coincide in '{text}'")
    return Camera(position=values[0], target=values[1])


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"`` in pixels (each 64 … 8192)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise TwinInputError(f"--size: expected WIDTHxHEIGHT in pixels, got '{text}'") from None
    if not (64 <= width <= 8192 and 64 <= height <= 8192):
        raise TwinInputError(f"--size: {text}: width and height must be 64..8192 pixels")
    return width, height



def load_map(
    run_path: str | Path,
    estimate_paths: str | Path | Sequence[str | Path] | None = None,
    *,
    algorithms: str | Sequence[str] | None = None,
    cutoff: float = DEFAULT_CUTOFF_M,
    with_scene: bool = True,
) -> MapData:
    """Read a run (and an estimate file) into what a map draws.

    Parameters
    ----------
    run_path : run file (``twin simulate``).
    estimate_paths : estimate file(s) of that run (``twin estimate``), optional.
    algorithms : algorithms of the estimate file(s) to draw (``"a,b"`` or a sequence;
        default: all; an algorithm found in two files must be narrowed down to one).
    cutoff : matching cut-off [m] between estimated and true points.
    with_scene : load and draw the scene mesh (a missing scene file is a warning).

    Raises
    ------
    TwinInputError
        One line: unreadable run or estimate file, estimates of another run, unknown
        algorithm, non-positive cut-off.
    """
    check_cutoff(cutoff)
    run_path = Path(run_path)
    run = read_run(run_path)
    paths = _as_paths(estimate_paths)
    if not paths and algorithms is not None and split_names(algorithms):
        raise TwinInputError("--algorithms: needs an estimate file (twin render RUN EST ...)")
    selected = gather_estimates(run_path, run, paths, algorithms)
    estimates = {name: est_file.estimates[name] for name, (_, est_file) in selected.items()}
    if selected:
        truth = truth_sets(run)["single_bounce"]
    else:  # the truth alone shows every BS's points
        per_bs = [truth_sets(run, b)["single_bounce"] for b in range(len(run.bs_name))]
        truth = [_merged([s[t] for s in per_bs]) for t in range(run.drive.num_snapshots)]
    matchings = {
        name: match_algorithm(estimates[name], truth, cutoff=cutoff,
                              dimensions=est_file.position_dimensions[name])
        for name, (_, est_file) in selected.items()
    }
    return map_data(run_path, run, truth, estimates, matchings,
                    estimate_paths=[path for path, _ in selected.values()], cutoff=cutoff,
                    with_scene=with_scene)


def _merged(parts: Sequence[TruthPoints]) -> TruthPoints:
    """One snapshot's truth points of several BSs as one set."""
    return TruthPoints(
        points=np.concatenate([p.points for p in parts]).reshape(-1, 3),
        objects=tuple(o for p in parts for o in p.objects),
        planar=np.concatenate([p.planar for p in parts]).astype(bool),
        landmarks=tuple(lm for p in parts for lm in p.landmarks),
    )


def _as_paths(paths: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if paths is None:
        return []
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]



MAP_STAMP = "map"
#: What ``twin render`` writes (``--overwrite`` replaces only this): a PNG or an HTML page
#: stamped :data:`MAP_STAMP`.
MAP = Artifact("twin map", "twin render", stamped(MAP_STAMP))


def render_map(
    run_path: str | Path,
    estimate_paths: str | Path | Sequence[str | Path] | None,
    output: str | Path,
    *,
    algorithms: str | Sequence[str] | None = None,
    snapshot: int | None = None,
    camera: Camera | str | None = None,
    cutoff: float = DEFAULT_CUTOFF_M,
    size: tuple[int, int] | str = DEFAULT_SIZE,
    overwrite: bool = False,
    png_backend: str | None = None,
) -> RenderResult:
    """Draw a run (and its estimates) as a PNG or a self-contained HTML page.

    Parameters
    ----------
    run_path : run file.
    estimate_paths : estimate file(s) of that run, or None (truth only).
    output : ``.png`` or ``.html``; written atomically.
    algorithms : algorithms to draw (default: all in the estimate file(s)).
    snapshot : snapshot index to show (PNG: that snapshot only, tracks up to it; HTML:
        the slider's starting position). Default: the whole drive.
    camera : :class:`Camera` or ``"x,y,z:tx,ty,tz"``; default :func:`auto_camera`. The
        HTML page takes only its viewing direction (it can be turned with the mouse).
    cutoff : matching cut-off [m].
    size : PNG ``(width, height)`` or ``"WxH"`` [pixels].
    overwrite : replace an existing output.
    png_backend : ``open3d`` or ``matplotlib``; default ``$TWIN_PNG_BACKEND``, else
        Open3D with matplotlib as the fallback.

    Raises
    ------
    TwinInputError
        One line naming the input (see :func:`load_map`; also an unsupported output
        extension, an existing output without ``overwrite``, a snapshot out of range,
        a malformed camera or size). Nothing is written then.
    """

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise TwinInputError(
            f"{output}: unsupported output format '{output.suffix or '(none)'}' "
            "(use .png or .html)"
        )
    cam = parse_camera(camera) if isinstance(camera, str) else camera
    width, height = parse_size(size) if isinstance(size, str) else size
    backend = png_backend or os.environ.get("TWIN_PNG_BACKEND") or None
    if backend is not None and backend not in PNG_BACKENDS:
        raise TwinInputError(
            f"TWIN_PNG_BACKEND: unknown PNG backend '{backend}' (use {', '.join(PNG_BACKENDS)})"
        )
    check_output(output, MAP, overwrite=overwrite,
                 inputs=[Path(run_path), *_as_paths(estimate_paths)])
    data = load_map(run_path, estimate_paths, algorithms=algorithms, cutoff=cutoff)
    if snapshot is not None and not 0 <= snapshot < data.num_snapshots:
        raise TwinInputError(
            f"--snapshot: {snapshot} is out of range ({run_path} has {data.num_snapshots} "
            f"snapshots: 0..{data.num_snapshots - 1})"
        )
    with atomic_file(output) as tmp:
        used = write_map(data, tmp, html=suffix == ".html", snapshot=snapshot, camera=cam,
                         size=(width, height), png_backend=backend)
    return RenderResult(path=output, backend=used, num_snapshots=data.num_snapshots,
                        algorithms=data.algorithms)


def write_map(
    data: MapData, path: Path, *, html: bool, snapshot: int | None = None,
    camera: Camera | None = None, size: tuple[int, int] = DEFAULT_SIZE,
    png_backend: str | None = None,
) -> str:
    """Write ``data`` to ``path`` as an HTML page or a PNG (as is, not atomically),
    stamped as twin's map (:data:`MAP`); returns the backend that drew it (``plotly``,
    ``open3d`` or ``matplotlib``)."""
    if html:
        write_html(data, path, snapshot=snapshot, camera=camera)
        used = "plotly"
    else:
        used = write_png(data, path, snapshot=snapshot, camera=camera, size=size,
                         backend=png_backend)
    stamp(path, MAP_STAMP)
    return used


