"""``twin train daun DIR -o model.pt``: train DAUN on a ``twin dataset`` directory.

The dataset's manifest holds the resolved config, so the BS geometry, the carrier and the
region the positions were drawn in come from it: the grid covers the region's bounding
box at the positions' height with cells of about ``grid_spacing_m``. The last
``validation`` samples are held out for the early stop; training cycles through the rest
(:func:`estimators.daun.admm.train_daun`, the paper's §III-B recipe).

Checkpoint (``torch.save`` of plain types, written atomically; read with
``weights_only=True``): ``format``, ``parameters {rho, tau1, tau2 [layer], w [bs]}``,
``setting {area, grid_shape, ue_height, num_angles}`` (the estimators' defaults),
``geometry`` (BS positions, orientations, array size and element positions, carrier: what
it was trained for; ``daun`` refuses a run of another geometry,
:func:`estimators.daun.checkpoint.checkpoint_for`),
``training`` (loss, seed, epochs and validation loss per layer, seconds, dataset).
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT
from estimators.daun.checkpoint import CHECKPOINT_FORMAT
from estimators.daun.model import DirectLocalizationProblem
from twin.dataset.config import DatasetConfig, parse_dataset_config
from twin.dataset.store import read_manifest
from twin.errors import TwinInputError
from twin.outputs import Artifact, check_output, write_bytes_atomic
from twin.resources import Need, check_memory
from twin.simulate import array_geometry

if TYPE_CHECKING:
    from estimators.daun.admm import AdmmParameters, Loss, TrainingLog

#: The paper's grid: 30 x 30 cells over 40 x 40 m.
DEFAULT_GRID_SPACING_M = 40.0 / 30.0


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a DAUN checkpoint (its ``format``), read without running code."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # anything else: a foreign or torn file
        return False
    return isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT


#: What ``twin train daun`` writes (``--overwrite`` replaces only this).
CHECKPOINT = Artifact("DAUN checkpoint", "twin train daun", is_checkpoint)


def setting_from(config: DatasetConfig, grid_spacing_m: float, num_angles: int
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The grid setting and BS geometry of a dataset config."""
    region = config.dataset.positions
    corners = np.asarray(region.box if region.box is not None else region.polygon, float)
    low, high = corners.min(axis=0), corners.max(axis=0)
    shape = [max(1, math.ceil(float(s) / grid_spacing_m - 1e-9)) for s in high - low]
    setting = {"area": [low.tolist(), high.tolist()], "grid_shape": shape,
               "ue_height": float(region.height), "num_angles": int(num_angles)}
    array = config.base_stations[0].array
    geometry = {
        "bs_position": [list(bs.position) for bs in config.base_stations],
        "bs_orientation": [list(bs.orientation) for bs in config.base_stations],
        "bs_array": [array.rows, array.cols],
        "element_positions": array_geometry(
            array, SPEED_OF_LIGHT / config.radio.frequency_hz).element_positions.tolist(),
        "carrier_frequency": float(config.radio.frequency_hz),
    }
    return setting, geometry


#: [B] per sample, grid point and BS in a pass of the unfolded ADMM (the iterate, its
#: auxiliaries and their autograd copies; measured 37 B with 4 BSs, 6 400 points).
PASS_BYTES = 40.0


def training_needs(config: DatasetConfig, setting: dict[str, Any], num_samples: int,
                   validation: int, batch_size: int, num_layers: int) -> list[Need]:
    """The memory of training: the grid's dictionaries, the dataset's samples read whole,
    the validation pass over the held-out samples and a mini-batch's pass through every
    layer with its gradients."""
    array = config.base_stations[0].array
    antennas = array.rows * array.cols
    bs = len(config.base_stations)
    points = math.prod(setting["grid_shape"])
    grid = DirectLocalizationProblem.memory_bytes(
        num_bs=bs, num_antennas=antennas, num_grid_points=points,
        num_angles=setting["num_angles"])
    per_sample = PASS_BYTES * (points + setting["num_angles"]) * bs
    coarser = "a coarser --grid-spacing"

    def sized(count: int, knob: str) -> tuple[str, str]:
        # The pass grows with the samples and with the grid: name the larger factor.
        return (knob, "") if count > points else ("--grid-spacing", coarser)

    return [Need("the grid's dictionaries", grid, "--grid-spacing", coarser),
            # y as read (complex64) and as trained on (complex128), SNR and position.
            Need("the dataset's samples", num_samples * (24.0 * bs * antennas + 32.0),
                 "dataset.num_samples"),
            Need("the validation pass", validation * per_sample,
                 *sized(validation, "--validation")),
            Need("a mini-batch through every layer", batch_size * num_layers * per_sample,
                 *sized(batch_size * num_layers, "--batch-size"))]


def problem_from(config: DatasetConfig, setting: dict[str, Any]) -> DirectLocalizationProblem:
    wavelength = SPEED_OF_LIGHT / config.radio.frequency_hz
    array = array_geometry(config.base_stations[0].array, wavelength)
    return DirectLocalizationProblem.build(
        bs_position=[bs.position for bs in config.base_stations],
        bs_orientation=[bs.orientation for bs in config.base_stations],
        element_positions=array.element_positions, wavelength=wavelength,
        area=setting["area"], grid_shape=tuple(setting["grid_shape"]),
        ue_height=setting["ue_height"], num_angles=setting["num_angles"])


def train_daun_on_dataset(
    directory: Path,
    output: Path,
    *,
    num_layers: int = 10,
    loss: Loss = "residual",
    seed: int = 0,
    validation: int = 200,
    samples_per_layer: int = 700,
    batch_size: int = 7,
    grid_spacing_m: float = DEFAULT_GRID_SPACING_M,
    num_angles: int = 100,
    max_samples: int | None = None,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train DAUN on a dataset directory and write the checkpoint; returns it.

    ``on_progress(layers_done, num_layers)`` after each epoch, ``on_epoch(layer, epoch,
    validation_loss)`` too. Bad input (options, the dataset, the output path, a grid or a
    dataset the memory cannot hold) raises a one-line :class:`TwinInputError` before any
    work; ``overwrite`` replaces only a DAUN checkpoint (:data:`CHECKPOINT`).
    """
    if num_layers < 1 or validation < 1 or samples_per_layer < 1 or batch_size < 1:
        raise TwinInputError("train daun: --layers, --validation, --samples-per-layer and "
                             "--batch-size must be >= 1")
    if not (math.isfinite(grid_spacing_m) and grid_spacing_m > 0) or num_angles < 1:
        raise TwinInputError("train daun: --grid-spacing must be a finite number > 0 and "
                             "--angles >= 1")
    if not (directory / "manifest.json").is_file():
        raise TwinInputError(f"train daun: {directory} is not a dataset directory "
                             "(no manifest.json)")
    check_output(output, CHECKPOINT, overwrite=overwrite, inputs=[directory])
    manifest = read_manifest(directory)
    config = parse_dataset_config(manifest["config"], f"{directory}/manifest.json")
    setting, geometry = setting_from(config, grid_spacing_m, num_angles)
    check_memory(training_needs(config, setting, int(manifest["num_samples"]), validation,
                                batch_size, num_layers), "twin train daun")
    # torch, which these import, only once the input is known to be good: a bad one is
    # refused in a fraction of the time.
    from estimators.daun.admm import train_daun
    from twin.dataset.loader import read_fields

    fields = read_fields(directory, ("observations/y", "observations/snr_db", "ue_position"))
    y, snr_db, position = (fields[k] for k in ("observations/y", "observations/snr_db",
                                              "ue_position"))
    if max_samples is not None:
        y, snr_db, position = y[:max_samples], snr_db[:max_samples], position[:max_samples]
    if len(y) <= validation:
        raise TwinInputError(f"train daun: {directory} has {len(y)} samples, not more than "
                             f"the {validation} held out for validation")
    problem = problem_from(config, setting)
    train = (y[:-validation], snr_db[:-validation], position[:-validation])
    held_out = (y[-validation:], snr_db[-validation:], position[-validation:])

    def report(layer: int, epoch: int, value: float) -> None:
        if on_progress is not None:
            on_progress(layer - 1, num_layers)
        if on_epoch is not None:
            on_epoch(layer, epoch, value)

    parameters, log = train_daun(
        problem, train, held_out, num_layers=num_layers, loss=loss,
        rng=np.random.default_rng(seed), samples_per_layer=samples_per_layer,
        batch_size=batch_size,
        on_epoch=report)
    if on_progress is not None:
        on_progress(num_layers, num_layers)
    return write_checkpoint(output, parameters, log, setting, geometry, {
        "seed": seed, "num_train": len(train[0]), "num_validation": validation,
        "samples_per_layer": samples_per_layer, "batch_size": batch_size,
        "dataset": {"directory": directory.name, "seed": manifest["seed"],
                    "source": config.dataset.source,
                    "sha256": hashlib.sha256("".join(
                        e["sha256"] for e in manifest["shards"]).encode()).hexdigest()}})


def write_checkpoint(output: Path, parameters: AdmmParameters, log: TrainingLog,
                     setting: dict[str, Any], geometry: dict[str, Any],
                     training: dict[str, Any]) -> dict[str, Any]:
    """Write a DAUN checkpoint atomically (the module docstring's layout); returns it."""
    import torch

    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "parameters": parameters.as_dict(),
        "setting": setting,
        "geometry": geometry,
        "training": {"loss": log.loss, "epochs": list(log.epochs),
                     "validation_loss": list(log.validation), "seconds": log.seconds,
                     **training},
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes_atomic(output, buffer.getvalue())
    return checkpoint
