"""What every paper's own synthetic setting offers (``estimators/<paper>/scenario.py``).

Each paper validates its estimators on the setting of its own paper, independently of
the twin. The setting is a :class:`Scenario`; the module ``estimators.<paper>.scenario``
also defines ``small() -> Scenario``, a reduced instance of the same setting that the
conformance test runs every registered estimator of the paper on (``Estimator.paper``
names the module). The runtime path (models, estimators) never imports a scenario.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from estimators.types import ChannelTruth, Observation, Truth


@runtime_checkable
class Scenario(Protocol):
    """A paper's synthetic setting: it makes observations together with their truth."""

    def observation(
        self, n: int, rng: np.random.Generator, snr_db: float
    ) -> tuple[Observation, Truth]:
        """``n`` snapshots (trials or slots) of the setting at ``snr_db`` [dB], as the
        paper defines its SNR, and the true channel behind them (one
        :class:`~estimators.types.ChannelTruth` per BS, or a single one for one BS);
        everything random is drawn from ``rng``."""
        ...


def static_truth(
    gains: npt.NDArray[np.complex128],
    geometry: tuple[np.ndarray, np.ndarray, np.ndarray],
    ue_position: npt.ArrayLike,
    scatterers: npt.ArrayLike,
    ue_orientation: npt.ArrayLike | None = None,
) -> ChannelTruth:
    """Truth of ``trial`` realisations of one fixed LOS + single-bounce geometry.

    ``gains [trial, path]``; ``geometry`` = (``tau [path]``, ``aod``, ``aoa [path, 2]``),
    LOS first; ``scatterers [path - 1, 3]`` [m]; ``ue_orientation [3]`` [rad] or None.
    """
    trials, L = gains.shape
    tau, aod, aoa = geometry
    scatterer = np.vstack([np.full((1, 3), np.nan),
                           np.asarray(scatterers, dtype=np.float64).reshape(-1, 3)])
    return ChannelTruth(
        gain=gains, tau=np.tile(tau, (trials, 1)), aod=np.tile(aod, (trials, 1, 1)),
        aoa=np.tile(aoa, (trials, 1, 1)), valid=np.ones((trials, L), bool),
        los=np.ones(trials, bool),
        ue_position=np.tile(np.asarray(ue_position, float), (trials, 1)),
        scatterer=np.tile(scatterer, (trials, 1, 1)),
        ue_orientation=None if ue_orientation is None else np.tile(
            np.asarray(ue_orientation, float), (trials, 1)),
    )
