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
from scipy.stats import chi2

from estimators.arrays import SPEED_OF_LIGHT, wrap_angle
from estimators.base import EstimatorInputError, register
from estimators.fisher import crlb as invert_fim
from estimators.locman.bound import geometric_transform
from estimators.locman.model import (
    ChannelEstimate,
    LocmanSnapshot,
    order_paths,
    range_from_delay_phase,
)
from estimators.locman.wls import Fit, WlsLocalizer, geometric_weight
from estimators.types import Area, Observation
from estimators.typing import FloatArray

#: The probability a LOS + single-bounce channel's fit passes DCS-SOMP's integrity test
#: (:meth:`DcsSomp._fix_covariance`): 1 in 100 good fixes is refused.
FIT_PROBABILITY = 0.99
#: Eigenvalues of the WLS's normal matrix below this share of the largest are taken as
#: zero (the 1e12 condition limit of :func:`estimators.fisher.crlb`); a null direction
#: moving the UE by more than its square root (1e-6 of a unit step) leaves it undetermined.
RANK_TOLERANCE = 1e-12


@register
class DcsSomp(WlsLocalizer):
    """``dcs-somp``: Shahmansoori et al.'s DCS-SOMP channel estimation + the position
    stage of LOCMAN (no SAGE refinement, as Li et al. compare).

    Parameters
    ----------
    num_paths, order_threshold, los_path, ue_height, area, max_iterations, bs, los_margin_db
        As :class:`estimators.locman.wls.WlsLocalizer` ; DCS-SOMP takes
        ``num_paths`` atoms, then, where a threshold is in effect (``order_threshold``,
        or :data:`estimators.locman.wls.AUTO_ORDER_THRESHOLD` for ``"auto"``), keeps
        those whose coefficient power is at least that share of the strongest's).
    oversampling : the dictionary's grid has ``oversampling x`` array-size spatial
        frequencies per side, uniform over ``[-π, π)``; all subcarriers share the
        support (joint sparsity).

    Notes
    -----
    Integrity (issue 22): a grid estimate is not efficient, so the fix is checked and
    its covariance formed against DCS-SOMP's resolution rather than the model's FIM
    (:meth:`_fix_covariance`); the other checks are the pipeline's.
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
        los_margin_db: float = 6.0,
        oversampling: int = 4,
    ) -> None:
        super().__init__(num_paths=num_paths, order_threshold=order_threshold,
                         los_path=los_path, ue_height=ue_height, area=area,
                         max_iterations=max_iterations, bs=bs,
                         los_margin_db=los_margin_db)
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

    def measurement_covariance(self, snap: LocmanSnapshot,
                               channel: ChannelEstimate) -> FloatArray:
        """``[3 L, 3 L]`` covariance of the per-path ``(c τ [m], ω_R, ω_T [rad])`` that
        DCS-SOMP measures: the channel's CRLB at the estimated channel (the noise) plus
        its resolution, uniform over a cell — the angles on the dictionary's grid (step
        ``2π / (oversampling N)``), the ranges within a range cell ``c / B`` (paths
        closer than that are not resolved and pull the phase progression) — each
        ``step² / 12``. NaN where the channel's FIM is singular."""
        L = channel.order
        keep = (5 * np.arange(L)[:, None] + np.arange(3)).ravel()
        noise = invert_fim(snap.fim(channel.gain, channel.params))[np.ix_(keep, keep)]
        cell = SPEED_OF_LIGHT / (snap.spacing_hz * snap.frequencies.size)
        step_r = 2 * np.pi / (self.oversampling * snap.rx.size)
        step_t = 2 * np.pi / (self.oversampling * snap.tx.size)
        grid = np.tile(np.array([cell, step_r, step_t]) ** 2 / 12.0, L)
        return np.asarray(noise + np.diag(grid), dtype=np.float64)

    def _fix_covariance(self, snap: LocmanSnapshot, channel: ChannelEstimate, fit: Fit,
                        variance_factor: float, ground_height: float | None
                        ) -> tuple[FloatArray, str, dict[str, float]]:
        """The fix against DCS-SOMP's resolution (:meth:`measurement_covariance`, ``C``).

        The EXIP weight ``W`` of eq. (20) takes the channel estimate as efficient; a
        grid estimate is not, so the model's inverse FIM understates its spread and the
        WLS cost in noise units does not test the fit. Here the residual of the fit
        ``r = η̂ - η(x̂)`` is tested against ``C``: ``r^T C^-1 r`` is chi-squared with
        ``L - 1`` degrees of freedom (``3 L`` measurements, ``3 + 2 (L - 1)``
        unknowns) where the LOS + single-bounce geometry explains the measured paths,
        and the fix fails above its 99 % quantile (:data:`FIT_PROBABILITY`; a path
        taken for the LOS that is not). The covariance is that of the weighted least
        squares under ``C``, ``H^-1 A^T W C W A H^-1`` (``A = ∂η/∂x``, ``H = A^T W A``),
        inflated by ``max(1, r^T C^-1 r / (L - 1))``; a fix whose ``H`` is singular
        (a scatterer the paths cannot place) fails too.
        """
        L = channel.order
        C = self.measurement_covariance(snap, channel)
        keep = (5 * np.arange(L)[:, None] + np.arange(3)).ravel()
        A = geometric_transform(snap.geometry, fit.x, L)[keep, : len(fit.x)]
        W = geometric_weight(snap, channel)
        r = channel.params - snap.geometry.paths(fit.x)
        r[:, 1:] = wrap_angle(r[:, 1:])
        if not np.all(np.isfinite(C)):
            return np.full((2, 2), np.nan), "the channel's parameters are not identifiable", {}
        statistic = float(r.ravel() @ np.linalg.solve(C, r.ravel()))
        dof = L - 1
        checked = {"grid_fit": statistic}
        if dof > 0 and statistic > chi2.ppf(FIT_PROBABILITY, dof):
            return np.full((2, 2), np.nan), (
                f"the paths do not fit a LOS + single-bounce geometry: residual "
                f"{statistic:.0f} against the grid resolution (99 % of chi2({dof}): "
                f"{chi2.ppf(FIT_PROBABILITY, dof):.1f})"), checked
        # The unknowns (m, rad) are of one scale. A direction the paths do not determine
        # (the yaw of an arrival at the UE array's endfire, a scatterer on the LOS) is
        # left to the generalized inverse: the PSD H maps it to zero with its coupling,
        # so the position is unaffected unless the direction moves the UE itself.
        H = A.T @ W @ A
        w, V = np.linalg.eigh(0.5 * (H + H.T))
        known = w > RANK_TOLERANCE * max(float(w[-1]), 1e-300)
        if np.any(np.linalg.norm(V[:2, ~known], axis=0) > RANK_TOLERANCE ** 0.5):
            return np.full((2, 2), np.nan), "the paths do not determine the UE position", checked
        H_pinv = (V[:, known] / w[known]) @ V[:, known].T
        gain = H_pinv @ A.T @ W
        factor = max(1.0, statistic / dof) if dof > 0 else 1.0
        covariance = (gain @ C @ gain.T)[:2, :2] * factor
        return np.asarray(covariance, dtype=np.float64), "", checked

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

