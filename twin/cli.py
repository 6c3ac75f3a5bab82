"""The ``twin`` command line.

Errors a user can cause print one line (``error: ...``) and exit with code 2, with no
traceback and no partial output file.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from twin.errors import TwinInputError

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,  # help text is plain: "[m]" is a unit, not markup
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mmWave radio digital twin for localization research.",
)
# soft_wrap: a message (a file path) is never broken across lines when not on a terminal.
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        from twin.install import version

        _out.print(f"mmwave-twin {version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the installed mmwave-twin version and exit.")] = False,
) -> None:
    """mmWave radio digital twin for localization research."""


def _show_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None,
                  line: Any = None) -> None:
    _err.print(f"[yellow]warning:[/yellow] {escape(str(message))}", soft_wrap=True)


def user_errors(func: F) -> F:
    """Turn :class:`TwinInputError` into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = warnings.showwarning
        warnings.showwarning = _show_warning
        try:
            return func(*args, **kwargs)
        except TwinInputError as exc:
            _err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(code=2) from None
        finally:
            warnings.showwarning = previous

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_tasks(quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display with one bar per task; yields ``update(task, done, total)``.

    The display starts at the first update (input errors found before any work print
    nothing else) and a task's bar appears at its first update. On an error the display
    is erased, so the error stays the only line printed.
    """
    if quiet:
        yield lambda name, done, total: None
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=_err, transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(name: str, done: int, total: int) -> None:
        if not tasks:
            progress.start()
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done, total=total)

    try:
        yield update
    except BaseException:
        if tasks:
            progress.live.transient = True
            progress.live.stop()  # not progress.stop(): it adds a newline off a terminal
        raise
    if tasks:
        progress.stop()


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A single rich progress bar (see :func:`progress_tasks`); yields ``update(done, total)``."""
    with progress_tasks(quiet) as update:
        yield lambda done, total: update(description, done, total)


OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Run file to write (.h5).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


@app.command()
@user_errors
def scenes() -> None:
    """List bundled and built-in scenes with their bounding boxes [m]."""
    from twin.scene import builtin_scenes, bundled_scenes, scene_bounding_box

    table = Table(title="Scenes")
    table.add_column("scene", no_wrap=True)  # names must stay copyable into a config
    for header in ("objects", "min \\[m]", "max \\[m]"):
        table.add_column(header)
    for prefix, listing in (("bundled:", bundled_scenes()), ("builtin:", builtin_scenes())):
        for name, path in listing.items():
            count, bbox = scene_bounding_box(path)
            table.add_row(
                prefix + name, str(count),
                "({:g}, {:g}, {:g})".format(*np.round(bbox[0], 1) + 0.0),
                "({:g}, {:g}, {:g})".format(*np.round(bbox[1], 1) + 0.0),
            )
    _out.print(table)


@app.command()
@user_errors
def simulate(
    config: Annotated[Path, typer.Argument(help="YAML run configuration.")],
    output: OutputOpt,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Trace a drive (or a point set) → channels + per-path truth in one HDF5 run file."""
    from twin.runfile import run_summary
    from twin.simulate import simulate_to_file

    with progress_bar("tracing snapshots", quiet) as update:
        simulate_to_file(config, output, overwrite=overwrite, on_progress=update)
    if not quiet:
        # From /paths/valid alone: reading the whole run back would undo the streaming.
        snapshots, paths = run_summary(output)
        _err.print(escape(f"wrote {output}: {snapshots} snapshots, {paths} paths"))


@app.command()
@user_errors
def estimate(
    run: Annotated[Path, typer.Argument(help="Run file written by `twin simulate`.")],
    algorithms: Annotated[list[str], typer.Option(
        "--algorithms", "-a", metavar="ALGO[,ALGO]",
        help="Estimators to run: ALGO[,ALGO] (repeatable). An unknown name lists the "
             "registered ones.",
    )],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Estimate file to write (.h5).")],
    snr_db: Annotated[float | None, typer.Option(
        "--snr-db", help="Mean received SNR per sample [dB] (instead of --tx-power-dbm).",
    )] = None,
    tx_power_dbm: Annotated[float | None, typer.Option(
        "--tx-power-dbm",
        help="Transmit power [dBm]; thermal noise, SNR from the twin's path loss "
             "(default 20 dBm when no --snr-db).",
    )] = None,
    noise_figure_db: Annotated[float | None, typer.Option(
        "--noise-figure-db", help="Receiver noise figure [dB] (default 7) with --tx-power-dbm.",
    )] = None,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", metavar="[ALGO.]KEY=VALUE",
        help="Hyper-parameter: key=value (every selected algorithm that has it) or "
             "algo.key=value (repeatable; YAML values).",
    )] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the noise and the estimators' randomness (default: the run's).",
    )] = None,
    snapshots: Annotated[list[str] | None, typer.Option(
        "--snapshots", metavar="[ALGO=]START:STOP[:STEP]",
        help="Estimate only these snapshots (a slice or I,J,K; per algorithm with ALGO=; "
             "repeatable); the others are stored as not estimated. Default: all.",
    )] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run estimators on a run file's channels → estimated UE positions and scatterers."""
    from twin.estimate import estimate_run

    with progress_tasks(quiet) as update:
        results = estimate_run(
            run, algorithms, output, snr_db=snr_db, tx_power_dbm=tx_power_dbm,
            noise_figure_db=noise_figure_db, settings=settings or (), seed=seed,
            snapshots=snapshots or (), overwrite=overwrite, on_progress=update,
        )
    if not quiet:
        _err.print(escape(f"wrote {output}"))
        for name, est in results.items():
            runtime_ms = 1e3 * float(np.median(est.runtime_s)) if est.num_snapshots else 0.0
            _err.print(escape(
                f"{name}: {int(est.converged.sum())}/{est.num_snapshots} converged, "
                f"median {runtime_ms:.3g} ms per snapshot"
            ))


@app.command()
@user_errors
def render(
    run: Annotated[Path, typer.Argument(help="Run file written by `twin simulate`.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Map to write: .png (Open3D render) or .html (plotly, "
                               "self-contained, with a snapshot slider).")],
    estimates: Annotated[list[Path] | None, typer.Argument(
        help="Estimate file(s) of that run (`twin estimate`), optional.")] = None,
    algorithms: Annotated[list[str] | None, typer.Option(
        "--algorithms", "-a", metavar="ALGO[,ALGO]",
        help="Algorithms of the estimate file(s) to draw (default: all; repeatable).",
    )] = None,
    snapshot: Annotated[int | None, typer.Option(
        "--snapshot", metavar="T",
        help="Snapshot index: the PNG shows that snapshot's points and the tracks up to "
             "it; the HTML slider starts there. Default: the whole drive.",
    )] = None,
    camera: Annotated[str | None, typer.Option(
        "--camera", metavar="x,y,z:tx,ty,tz",
        help="PNG camera position and look-at point [m] (default: looking down from the "
             "south-west at the drive's area; the HTML page takes its direction).",
    )] = None,
    cutoff: Annotated[float, typer.Option(
        "--cutoff", help="Matching cut-off [m] between estimated and true points.",
    )] = 1.0,
    size: Annotated[str, typer.Option(
        "--size", metavar="WxH", help="PNG size in pixels.")] = "1280x800",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Draw a run in 3D: scene, BSs, true and estimated UE tracks, true interaction
    points, estimated scatterers and their matches → PNG or self-contained HTML."""
    from twin.maps.render import render_map

    result = render_map(
        run, estimates, output, algorithms=algorithms, snapshot=snapshot, camera=camera,
        cutoff=cutoff, size=size, overwrite=overwrite,
    )
    if not quiet:
        how = {"open3d": "Open3D offscreen renderer", "matplotlib": "matplotlib 3D axes",
               "plotly": "plotly, self-contained"}[result.backend]
        drawn = ", ".join(result.algorithms) or "truth only"
        _err.print(escape(f"wrote {result.path} ({how}; {result.num_snapshots} snapshots; "
                          f"{drawn})"))


@app.command()
@user_errors
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path(
        "twin-demo"
    ),
    quiet: QuietOpt = False,
) -> None:
    """The whole suite on the bundled scenes: four runs (office walk, street drive under
    four BSs, a UE-array drive, a RIS walk), every registered estimator on the one that
    fits it, evaluated against the ray-traced truth with 3D maps; report.md sums up."""
    from twin.demo import run_demo

    skipped: list[str] = []
    with progress_tasks(quiet) as update:
        files = run_demo(output, on_progress=lambda done, total: update(
            "tracing snapshots", done, total), on_task=update,
            on_skip=lambda name, reason: skipped.append(f"skipped '{name}': {reason}"))
    if not quiet:
        for line in skipped:
            _err.print(escape(line))
    for label, path in files.items():
        _out.print(escape(f"{label}: {path}"))


@app.command()
@user_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run file from twin simulate.")],
    estimates: Annotated[list[Path], typer.Argument(help="Estimate file(s) from twin estimate.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report directory.")],
    algorithms: Annotated[
        str | None, typer.Option("--algorithms", "-a", help="Only these (comma-separated).")
    ] = None,
    cutoff: Annotated[
        float, typer.Option("--cutoff", help="Matching cut-off for scatterer maps [m].")
    ] = 1.0,
    maps: Annotated[bool, typer.Option(
        "--maps/--no-maps", help="Also draw map.png and map.html (as `twin render`).",
    )] = True,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score estimates against the ray-traced truth: metrics.json, report.md, plots, and
    the estimated vs true map in 3D (map.png, map.html)."""
    from twin.evaluate import evaluate_to_dir

    metrics = evaluate_to_dir(run, estimates, output, algorithms=algorithms, cutoff=cutoff,
                              maps=maps, overwrite=overwrite)
    if not quiet:
        for name, a in metrics["algorithms"].items():
            ue = a["ue"]
            median = f"{ue['median_m']:.3g} m" if ue else "no converged snapshot"
            _err.print(escape(f"{name}: UE median error {median}, "
                              f"{a['converged']}/{a['estimated']} converged"))
        drawn = ", map.png, map.html" if maps else ""
        _err.print(escape(f"wrote {output}/ (metrics.json, report.md, plots{drawn})"))


@app.command()
@user_errors
def track(
    estimates: Annotated[Path, typer.Argument(help="Estimate file from `twin estimate`.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Tracked estimate file to write (.h5).")],
    algorithms: Annotated[str | None, typer.Option(
        "--algorithms", "-a", help="Only these (comma-separated); default every one.")] = None,
    motion_std: Annotated[float | None, typer.Option(
        "--motion-std", help="White-noise acceleration of the constant-velocity model "
                             "[m/s²]; default: the maximum-likelihood value from the fixes.",
    )] = None,
    gate: Annotated[float, typer.Option(
        "--gate", help="Gate probability: a fix (or scatterer) outside this confidence "
                       "region of the prediction is rejected.")] = 0.99,
    run: Annotated[Path | None, typer.Option(
        "--run", help="The run file, for the snapshot times of an estimate file written "
                      "before they were stored (schema < 2.2).")] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fuse per-snapshot estimates into a smoothed UE track and a persistent landmark map
    (`<algorithm>+track` entries, scored and drawn like any estimate)."""
    from twin.track import track_file

    with progress_tasks(quiet) as update:
        results = track_file(estimates, output, algorithms=algorithms, motion_std=motion_std,
                             gate=gate, run=run, overwrite=overwrite, on_progress=update)
    if not quiet:
        _err.print(escape(f"wrote {output}"))
        for name, est in results.items():
            status = np.asarray(est.diagnostics["fix_status"])
            _err.print(escape(
                f"{name}: {int(est.converged.sum())}/{est.num_snapshots} tracked, "
                f"{int((status == 2).sum())} fixes rejected, "
                f"{est.scatterers.shape[1]} landmarks"))


@app.command()
@user_errors
def dataset(
    target: Annotated[str, typer.Argument(
        help="CONFIG.yaml to make a dataset, or the word 'verify' (then DIR).",
        metavar="CONFIG|verify")],
    directory: Annotated[Path | None, typer.Argument(
        help="With 'verify': the dataset directory.", metavar="[DIR]")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Dataset directory to write.")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", help="local (process pool) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="A running Ray cluster (with --engine ray).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes/actors.")] = 1,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish a dataset a killed run left unfinished.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Sharded training datasets: `twin dataset CONFIG.yaml -o DIR [--engine local|ray]
    [--address ADDR] [--workers N] [--resume]`, and `twin dataset verify DIR`."""
    if target == "verify":
        from twin.dataset.store import verify

        if directory is None:
            raise TwinInputError("dataset verify: give the dataset directory (DIR)")
        problems = verify(directory)
        for problem in problems:
            _out.print(escape(str(problem)))
        if problems:
            raise typer.Exit(code=1)
        _out.print(escape(f"{directory}: complete and intact"))
        return
    from twin.dataset.engine import make_dataset

    if directory is not None:
        raise TwinInputError(f"dataset: unexpected argument {directory} (the output "
                             "directory goes after -o)")
    if output is None:
        raise TwinInputError("dataset: give the output directory (-o DIR)")
    with progress_bar("shards", quiet) as update:
        manifest = make_dataset(Path(target), output, engine=engine,  # type: ignore[arg-type]
                                workers=workers, address=address, resume=resume,
                                on_progress=update)
    _out.print(escape(f"{output}: {manifest['num_samples']} samples in "
                      f"{manifest['num_shards']} shards"))


@app.command()
@user_errors
def train(
    model: Annotated[str, typer.Argument(help="What to train: daun.", metavar="MODEL")],
    directory: Annotated[Path, typer.Argument(help="A `twin dataset` directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint to write (.pt).")],
    layers: Annotated[int, typer.Option("--layers", help="Unfolded layers I.")] = 10,
    loss: Annotated[str, typer.Option(
        "--loss", help="residual (eq. 18, unsupervised) or position (supervised).")] = "residual",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the training run.")] = 0,
    validation: Annotated[int, typer.Option(
        "--validation", help="Samples held out for the early stop.")] = 200,
    samples_per_layer: Annotated[int, typer.Option(
        "--samples-per-layer", help="Fresh training samples per new layer.")] = 700,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Mini-batch size.")] = 7,
    grid_spacing: Annotated[float, typer.Option(
        "--grid-spacing", help="Grid cell size [m].")] = 40.0 / 30.0,
    angles: Annotated[int, typer.Option("--angles", help="NLOS angle grid size L.")] = 100,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on a dataset: `twin train daun DIR -o model.pt` (DAUN, §III-B:
    incremental layer-wise training with a validation early stop)."""
    if model != "daun":
        raise TwinInputError(f"train: unknown model '{model}' (known: daun)")
    if loss not in ("residual", "position"):
        raise TwinInputError(f"train daun: --loss must be residual or position, got '{loss}'")
    from twin.train import train_daun_on_dataset

    with progress_bar("layers", quiet) as update:
        checkpoint = train_daun_on_dataset(
            directory, output, num_layers=layers, loss=loss,  # type: ignore[arg-type]
            seed=seed, validation=validation, samples_per_layer=samples_per_layer,
            batch_size=batch_size, grid_spacing_m=grid_spacing, num_angles=angles,
            overwrite=overwrite, on_progress=update)
    log = checkpoint["training"]
    _out.print(escape(f"{output}: {layers} layers, validation loss "
                      f"{log['validation_loss'][-1]:.4g}, {log['seconds']:.0f} s"))


scene_app = typer.Typer(
    add_completion=False, rich_markup_mode=None, no_args_is_help=True,
    pretty_exceptions_enable=False, help="Make scenes: `twin scene osm` (OpenStreetMap).",
)
app.add_typer(scene_app, name="scene")


@scene_app.command("osm")
@user_errors
def scene_osm(
    source: Annotated[Path, typer.Argument(
        help="OpenStreetMap file: .osm (XML) or .osm.pbf.", metavar="FILE")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Scene directory to write (scene.xml, meshes/, scene.json).")],
    bbox: Annotated[str | None, typer.Option(
        "--bbox", metavar="west,south,east,north",
        help="Only buildings whose footprint centroid lies inside [°] (default: all).")] = None,
    origin: Annotated[str | None, typer.Option(
        "--origin", metavar="lat,lon",
        help="Origin of the local frame (x east, y north) [°] (default: the bbox centre, "
             "else the buildings' centre).")] = None,
    default_height: Annotated[float, typer.Option(
        "--default-height", help="Height of buildings without height or building:levels "
                                 "[m].")] = 12.0,
    ground: Annotated[bool, typer.Option(
        "--ground", help="Add a ground plane (object 'ground', z = 0).")] = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """OpenStreetMap buildings → a Sionna scene: extruded buildings (one PLY each, named
    after the OSM id and name), scene.xml, and scene.json (origin, projection)."""
    from twin.osm import osm_scene, parse_numbers

    result = osm_scene(
        source, output,
        bbox=parse_numbers(bbox, 4, "--bbox") if bbox is not None else None,
        origin=parse_numbers(origin, 2, "--origin") if origin is not None else None,
        default_height_m=default_height, ground=ground, overwrite=overwrite,
    )
    if not quiet:
        geo = result.georeference
        skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
        _err.print(escape(
            f"wrote {result.xml}: {len(result.buildings)} buildings{skipped}"
            f"{', ground' if result.ground else ''}; origin {geo.latitude_deg:.7f}, "
            f"{geo.longitude_deg:.7f} (x east, y north [m])"))


export_app = typer.Typer(
    add_completion=False, rich_markup_mode=None, no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export a run to other tools' formats: `twin export deepmimo`.",
)
app.add_typer(export_app, name="export")


@export_app.command("deepmimo")
@user_errors
def export_deepmimo(
    run: Annotated[Path, typer.Argument(help="Run file written by `twin simulate`.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Scenario folder to write; its name (lower case) is the "
                               "DeepMIMO scenario name.")],
    max_paths: Annotated[int, typer.Option(
        "--max-paths", help="Paths kept per snapshot and BS, the strongest.")] = 25,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """A run → a DeepMIMO v4 scenario folder the `deepmimo` package loads (params.json,
    per BS the path arrays, the scene's mesh); docs/DEEPMIMO.md."""
    from twin.export_deepmimo import export_deepmimo as export

    with progress_bar("base stations", quiet) as update:
        result = export(run, output, max_paths=max_paths, overwrite=overwrite,
                        on_progress=update)
    if not quiet:
        dropped = f", {result.dropped_paths} weaker paths left out" if result.dropped_paths else ""
        _err.print(escape(
            f"wrote {result.path}: {result.num_bs} BS x {result.num_snapshots} snapshots, "
            f"{result.num_paths} paths (at most {result.max_paths} a link{dropped})"))
        if result.late_paths:
            _err.print(escape(
                f"warning: {result.late_paths} paths arrive after K/B (the OFDM symbol): "
                "DeepMIMO's channel generation drops them"))

def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        _err.print("interrupted")
        sys.exit(130)
