"""DAUN's trained checkpoints: the ones shipped in ``assets/daun/`` and files written by
``twin train daun`` (:mod:`twin.train`).

A checkpoint is a ``torch.save`` of plain types (read with ``weights_only=True``):
``format`` (:data:`CHECKPOINT_FORMAT`), ``parameters {rho, tau1, tau2 [layer], w [bs]}``,
``setting {area, grid_shape, ue_height, num_angles}`` (the grid it was trained on),
``geometry`` and ``training``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from estimators.base import EstimatorInputError

#: Trained checkpoints shipped with the package (``checkpoint="street"`` etc.).
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "daun"
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
