"""LOCMAN's baseline: Shahmansoori et al.'s DCS-SOMP channel estimation + the same WLS.

``dcs-somp`` (registered): DCS-SOMP on a ``(ω_R, ω_T)`` grid (joint support over the
subcarriers), TOA from the phase progression of each path's coefficients over the
subcarriers, then the position stage LOCMAN uses (:mod:`estimators.locman.wls`),
without SAGE refinement — as Li et al. compare (Figs. 5-6, footnote 4).

References
----------
A. Shahmansoori, G. E. Garcia, G. Destino, G. Seco-Granados, H. Wymeersch, "Position
and orientation estimation through millimeter-wave MIMO in 5G systems", IEEE Trans.
Wireless Commun. 17(3), 2018: DCS-SOMP (§IV-A, Algorithm 1).
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022: the comparison (§IV, footnote 4).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from estimators.base import EstimatorInputError, register
from estimators.locman.model import (
    ChannelEstimate,
    LocmanSnapshot,
    order_paths,
    range_from_delay_phase,
)
from estimators.locman.wls import WlsLocalizer
from estimators.types import Area, Observation


@register
class DcsSomp(WlsLocalizer):
    """``dcs-somp``: Shahmansoori et al.'s DCS-SOMP channel estimation + the position
    stage of LOCMAN (no SAGE refinement, as Li et al. compare).

    Parameters
    ----------
    num_paths, order_threshold, los_path, ue_height, area, max_iterations, bs
        As :class:`estimators.locman.wls.WlsLocalizer` ; DCS-SOMP takes
        ``num_paths`` atoms, then, where a threshold is in effect (``order_threshold``,
        or :data:`estimators.locman.wls.AUTO_ORDER_THRESHOLD` for ``"auto"``), keeps
        those whose coefficient power is at least that share of the strongest's).
    oversampling : the dictionary's grid has ``oversampling x`` array-size spatial
        frequencies per side, uniform over ``[-π, π)``; all subcarriers share the
        support (joint sparsity).
    """

    name = "dcs-somp"

    def __init__(
        self,
        *,
        num_paths: int | Literal["auto"] = "auto",
        order_threshold: float | None = None,
        los_path: Literal["auto", "strongest", "earliest"] = "auto",
        ue_height: float | None = None,
        area: Area | None = None,
        max_iterations: int = 200,
        bs: int | Literal["auto"] = "auto",
        oversampling: int = 4,
    ) -> None:
        super().__init__(num_paths=num_paths, order_threshold=order_threshold,
                         los_path=los_path, ue_height=ue_height, area=area,
                         max_iterations=max_iterations, bs=bs)
        self.oversampling = oversampling

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.oversampling < 1:
            raise EstimatorInputError(f"{self.name}: oversampling must be >= 1")

    def _channel_bytes(self, num_subcarriers: int, num_rx: int, num_tx: int,
                       num_beams: int) -> dict[str, float]:
        # The correlations [K, o Nr, o Nt] (complex128, the last path's alive while the
        # next one's are formed) with their magnitudes, and the transmit atoms' pilots
        # [K, o Nt, G] (complex128). The chosen atoms [path, K, Nr, G] are fewer bytes
        # than the EXIP Jacobian after them (working_memory).
        K, o = num_subcarriers, self.oversampling
        return {"oversampling": 40.0 * K * o * o * num_rx * num_tx
                + 16.0 * K * o * num_tx * num_beams}

    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        grid_r = -np.pi + 2 * np.pi * np.arange(self.oversampling * snap.rx.size) / (
            self.oversampling * snap.rx.size)
        grid_t = -np.pi + 2 * np.pi * np.arange(self.oversampling * snap.tx.size) / (
            self.oversampling * snap.tx.size)
        A_r, A_t = snap.rx.response(grid_r).T, snap.tx.response(grid_t).T  # [N, grid]
        # ||a_R a_T^T X[k]||_F per subcarrier and transmit grid point.
        norms = np.sqrt(snap.rx.size) * np.linalg.norm(np.einsum("tj,ktg->kjg", A_t, snap.x),
                                                       axis=2)  # [K, Gt]
        residual = snap.y.copy()
        support: list[tuple[int, int]] = []
        coefficients = np.zeros((snap.frequencies.size, 0), dtype=np.complex128)
        for _ in range(self.max_paths):
            corr = np.einsum("ri,krg,ktg,tj->kij", A_r.conj(), residual, snap.x.conj(), A_t.conj())
            score = np.sum(np.abs(corr) / norms[:, None, :], axis=0)
            for chosen in support:
                score[chosen] = -np.inf
            best = np.unravel_index(int(np.argmax(score)), score.shape)
            support.append((int(best[0]), int(best[1])))
            atoms = np.stack([
                np.einsum("r,t,ktg->krg", A_r[:, a], A_t[:, b], snap.x) for a, b in support
            ])  # [S, K, Nr, G]
            coefficients = np.stack([
                np.linalg.lstsq(atoms[:, k].reshape(len(support), -1).T, snap.y[k].ravel(),
                                rcond=None)[0] for k in range(snap.frequencies.size)
            ])  # [K, S]
            residual = snap.y - np.einsum("ks,skrg->krg", coefficients, atoms)
        # TOA from the phase progression of each path's coefficients over subcarriers.
        progression = np.sum(coefficients[1:] * coefficients[:-1].conj(), axis=0)
        rho = range_from_delay_phase(-np.angle(progression), snap.spacing_hz)
        params = np.column_stack([rho, grid_r[[i for i, _ in support]],
                                  grid_t[[j for _, j in support]]])
        threshold = self.threshold
        if threshold is not None:
            power = np.mean(np.abs(coefficients) ** 2, axis=0)
            params = params[power >= threshold * np.max(power)]
        return order_paths(snap, params, self.los_path)

