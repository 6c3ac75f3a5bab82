"""DAUN's trained checkpoints: the ones shipped in ``assets/daun/`` and files written by
``twin train daun`` (:mod:`twin.train`).

A checkpoint is a ``torch.save`` of plain types (read with ``weights_only=True``):
``format`` (:data:`CHECKPOINT_FORMAT`), ``parameters {rho, tau1, tau2 [layer], w [bs]}``,
``setting {area, grid_shape, ue_height, num_angles}`` (the grid it was trained on),
``geometry`` (what it was trained for: ``bs_position``, ``bs_orientation``, ``bs_array
[rows, cols]``, ``element_positions``, ``carrier_frequency``; DAUN refuses an observation
of another geometry, :func:`checkpoint_for`) and ``training``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT
from estimators.base import EstimatorInputError
from estimators.types import Observation

#: Trained checkpoints shipped with the package (``checkpoint="street"`` etc.): the
#: repository's ``assets/daun/``, installed in the package ``estimators._assets``
#: (pyproject.toml maps it; a wheel carries it), found through :mod:`importlib.resources`.
CHECKPOINTS_DIR = Path(str(resources.files("estimators._assets"))) / "daun"
CHECKPOINT_FORMAT = "daun-checkpoint/1"


@functools.lru_cache(maxsize=8)
def load_checkpoint(checkpoint: str) -> dict[str, Any]:
    """A DAUN checkpoint: a shipped name (``assets/daun/NAME.pt``) or a path.

    Raises :class:`~estimators.base.EstimatorInputError` (one line) for a name that is not
    shipped, an unreadable file, or a file of another format.
    """
    import torch

    path = Path(checkpoint)
    if not path.suffix:
        path = CHECKPOINTS_DIR / f"{checkpoint}.pt"
    if not path.is_file():
        shipped = sorted(p.stem for p in CHECKPOINTS_DIR.glob("*.pt"))
        raise EstimatorInputError(
            f"daun: checkpoint '{checkpoint}' not found (shipped: {', '.join(shipped)})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: one line, no traceback
        raise EstimatorInputError(f"daun: checkpoint '{path}' is not readable ({exc})"
                                  ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise EstimatorInputError(f"daun: '{path}' is not a {CHECKPOINT_FORMAT} file")
    return data


#: Shipped checkpoints ``checkpoint=None`` chooses from, in this order: the first whose
#: geometry is the observation's (eq. 18's loss, the paper's, before the others).
DEFAULT_CHECKPOINTS = ("street", "paper", "paper-small")
#: How far a run's BSs may be from a checkpoint's [m], [rad], and its carrier (relative).
POSITION_TOLERANCE_M = 0.1
ORIENTATION_TOLERANCE_RAD = 0.01
CARRIER_TOLERANCE = 1e-6
#: The two commands that make a checkpoint for a run's geometry.
MAKE_CHECKPOINT = ("make one for it: `twin dataset CONFIG.yaml -o DIR` (CONFIG: the run's "
                   "base_stations, radio and scene with a dataset: section, as "
                   "configs/datasets/street_daun.yaml), then `twin train daun DIR -o "
                   "daun.pt`, and pass `--set daun.checkpoint=daun.pt`")


def observation_geometry(obs: Observation) -> dict[str, Any]:
    """The geometry a checkpoint records (``twin train daun``'s ``geometry``) of an
    observation: BS positions [m], orientations [rad], the array's ``[rows, cols]`` and
    local element positions [m], the carrier [Hz]."""
    return {"bs_position": np.asarray(obs.bs_position, float).tolist(),
            "bs_orientation": np.asarray(obs.bs_orientation, float).tolist(),
            "bs_array": [int(obs.bs_array.rows), int(obs.bs_array.cols)],
            "element_positions": np.asarray(obs.bs_array.element_positions, float).tolist(),
            "carrier_frequency": float(obs.carrier_frequency)}


def describe_geometry(geometry: Mapping[str, Any]) -> str:
    """A geometry in a few words: ``4 BSs at (x, y, z) yaw°, ...; 1x16 array; 28 GHz``."""
    if "bs_position" not in geometry:
        return "an unrecorded geometry"
    bss = ", ".join(f"({p[0]:g}, {p[1]:g}, {p[2]:g}) {np.degrees(o[0]):.0f}°" for p, o in
                    zip(geometry["bs_position"], geometry["bs_orientation"], strict=True))
    rows, cols = geometry["bs_array"]
    return (f"{len(geometry['bs_position'])} BSs at {bss}; {rows}x{cols} array; "
            f"{geometry['carrier_frequency'] / 1e9:g} GHz")


def geometry_matches(trained: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
    """Whether a checkpoint's ``geometry`` is a run's (:func:`observation_geometry`):
    the same BSs in the same order (within :data:`POSITION_TOLERANCE_M` and
    :data:`ORIENTATION_TOLERANCE_RAD`), the same array (its element positions where the
    checkpoint records them, else ``[rows, cols]``) and carrier."""
    if "bs_position" not in trained:
        return False
    p, q = np.asarray(trained["bs_position"], float), np.asarray(run["bs_position"], float)
    if p.shape != q.shape or np.max(np.abs(p - q)) > POSITION_TOLERANCE_M:
        return False
    o = np.asarray(trained["bs_orientation"], float)
    turn = np.angle(np.exp(1j * (o - np.asarray(run["bs_orientation"], float))))
    if np.max(np.abs(turn)) > ORIENTATION_TOLERANCE_RAD:
        return False
    if list(trained["bs_array"]) != list(run["bs_array"]):
        return False
    if "element_positions" in trained:
        e, f = (np.asarray(g["element_positions"], float) for g in (trained, run))
        wavelength = SPEED_OF_LIGHT / float(run["carrier_frequency"])
        if e.shape != f.shape or np.max(np.abs(e - f)) > 1e-3 * wavelength:
            return False
    carrier = float(trained["carrier_frequency"])
    return abs(carrier - float(run["carrier_frequency"])) <= CARRIER_TOLERANCE * carrier


def checkpoint_for(checkpoint: str | None, obs: Observation) -> str:
    """The checkpoint DAUN runs with on ``obs``: ``checkpoint`` if its geometry is the
    observation's, or for None the first of :data:`DEFAULT_CHECKPOINTS` that is.

    Raises :class:`~estimators.base.EstimatorInputError`, one line naming both
    geometries and the two commands that make a matching checkpoint, where none fits
    (never a checkpoint trained for other BSs: its fixes would be silently wrong).
    """
    run = observation_geometry(obs)
    if checkpoint is not None:
        trained = load_checkpoint(checkpoint).get("geometry", {})
        if geometry_matches(trained, run):
            return checkpoint
        raise EstimatorInputError(
            f"daun: checkpoint '{checkpoint}' was trained for {describe_geometry(trained)}; "
            f"the observation has {describe_geometry(run)}: {MAKE_CHECKPOINT}")
    for name in DEFAULT_CHECKPOINTS:
        if geometry_matches(load_checkpoint(name).get("geometry", {}), run):
            return name
    shipped = "; ".join(f"'{name}': {describe_geometry(load_checkpoint(name)['geometry'])}"
                        for name in DEFAULT_CHECKPOINTS)
    raise EstimatorInputError(
        f"daun: no shipped checkpoint was trained for the observation's geometry "
        f"({describe_geometry(run)}; shipped: {shipped}): {MAKE_CHECKPOINT}")
