"""The two-stage fingerprint scheme of Sang et al. (§II-B) that ``ris-cd`` and its RSS
baseline ``ris-rss`` share: prior → candidate blocks → a score per candidate → the best
block's centre.

Both see a downlink observation with a radio map (``Observation.fingerprints``: every
block's channel as the database knows it, for the RIS configuration in use) and a
Gaussian position prior (``Observation.prior``, e.g. GNSS; eq. 39). Stage 1 (prediction)
keeps the blocks whose centres lie inside the prior's confidence region (eq. 14,
:func:`estimators.ris_cd.model.candidate_blocks`). Stage 2 (correction) matches the
received pilots against the candidates' predicted pilots ``ŷ_i = W^H H_i F s``
(:func:`estimators.ris_cd.model.predicted_pilots`) by the subclass's score.

"Instead of pinpointing the exact location, we consider all locations within this
confidence range without any bias" (§II-B): the candidates are scored without the prior;
``prior_weighted=True`` adds eq. (5)'s ``− ln p(i)`` (the plain MAP).

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and Positioning
Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme", arXiv 2212.00241,
eqs. (4), (5), (14), (39), §II-B, §IV.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from estimators.base import (
    Bound,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    position_covariance,
)
from estimators.ris_cd.bound import fingerprint_bound
from estimators.ris_cd.model import (
    block_variation,
    candidate_blocks,
    map_dimensions,
    predicted_pilots,
)
from estimators.types import Observation, Truth, bs_truth
from estimators.typing import ComplexArray, FloatArray


class FingerprintLocalizer(Estimator):
    """Base of the two-stage fingerprint localizers: prior → candidate blocks → the
    subclass's score (:meth:`_scores`, lower is better) → the best block's centre.

    Parameters
    ----------
    confidence : stage 1's probability ``p`` of the prior's region (eq. 14), in (0, 1).
    prior_weighted : add ``− ln p(i)`` of the prior to the score (eq. 5's MAP) instead of
        scoring the candidates "without any bias" (§II-B).
    """

    paper: ClassVar[str] = "ris_cd"
    bound: ClassVar[str] = (
        "position: the geometric bound with the position prior (eq. 44′) of the radio "
        "map's Jacobian at the true position; other['two_stage_position_m']: the two-stage "
        "scheme's bound (Lemma 2, eqs. 41–48, 43′) over the stage-1 candidates (eq. 14)")
    #: The twin sounds with its radio map, the fixed MRT precoder and a 2 m GNSS-like
    #: prior (:func:`twin.sounding.observation_from_run`).
    sounding: ClassVar[Mapping[str, Any]] = {
        "link": "downlink", "radio_map": True, "precoder": "mrt", "combiner": "identity",
        "pilots": "ones", "prior_std_m": 2.0}

    def __init__(self, *, confidence: float = 0.95, prior_weighted: bool = False) -> None:
        self.confidence = confidence
        self.prior_weighted = prior_weighted

    def position_dimensions(self, obs: Observation) -> int:
        """The blocks' dimensions: 2 for a horizontal grid of blocks (the paper's and the
        twin's maps), 3 where the blocks differ in height."""
        self.check(obs)
        return map_dimensions(obs)

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The paper's bounds (:attr:`bound`, :func:`estimators.ris_cd.bound.fingerprint_bound`)
        at the true UE positions (BS 0's ``truth``); NaN for a snapshot where they do not apply."""
        self.check(obs)
        return fingerprint_bound(obs, bs_truth(truth, 0), confidence=self.confidence)

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if obs.link != "downlink":
            raise EstimatorInputError(f"{self.name}: needs a downlink observation")
        if obs.fingerprints is None:
            raise EstimatorInputError(f"{self.name}: needs a radio map (Observation."
                                      "fingerprints)")
        if obs.prior is None:
            raise EstimatorInputError(f"{self.name}: needs a position prior "
                                      "(Observation.prior)")
        T, B, _, _, K = obs.y.shape
        fp = obs.fingerprints
        expected = (B, obs.combiners.shape[2], obs.precoders.shape[2], K)
        if fp.cfr.ndim != 5 or fp.cfr.shape[1:] != expected or \
                fp.block_positions.shape != (fp.cfr.shape[0], 3):
            raise EstimatorInputError(
                f"{self.name}: radio map {fp.cfr.shape} does not match the observation "
                f"(blocks, {', '.join(map(str, expected))})")
        if obs.prior.mean.shape != (T, 3) or obs.prior.covariance.shape != (T, 3, 3):
            raise EstimatorInputError(f"{self.name}: prior does not match {T} snapshots")
        if not 0 < self.confidence < 1:
            raise EstimatorInputError(f"{self.name}: confidence must be in (0, 1), got "
                                      f"{self.confidence}")

    @staticmethod
    def _covariance(obs: Observation, centres: FloatArray, chosen: FloatArray,
                    scores: FloatArray) -> FloatArray:
        """The reported ``[3, 3]`` covariance [m²] of a fix: the candidates' spread about
        the chosen block under the posterior ``∝ exp(−score)`` (both scores are negative
        log-likelihoods up to a constant, eq. 5; the caller tempers them by the
        a-posteriori variance factor, the best block's residual over the noise, so that a
        radio map that explains the pilots poorly widens the posterior), plus the block's
        own quantization variance ``size² / 12`` per horizontal axis."""
        assert obs.fingerprints is not None
        d = map_dimensions(obs)
        # Clipped: exp(-700) is still a normal float (no underflow under errstate).
        weight = np.exp(-np.minimum(scores - np.min(scores), 700.0))
        weight /= weight.sum()
        offset = centres[:, :d] - chosen[:d]
        spread = np.einsum("n,ni,nj->ij", weight, offset, offset)
        quantization = np.zeros(d)
        quantization[:2] = np.asarray(obs.fingerprints.block_size, dtype=np.float64) ** 2 / 12
        return position_covariance(spread + np.diag(quantization))

    def _estimate_snapshot(self, obs: Observation, t: int, rng: np.random.Generator
                           ) -> SnapshotEstimate:
        assert obs.fingerprints is not None and obs.prior is not None
        blocks = obs.fingerprints.block_positions
        mean, covariance = obs.prior.mean[t], obs.prior.covariance[t]
        candidates = candidate_blocks(obs, t, self.confidence)
        predicted = predicted_pilots(obs, t)[candidates]
        scores = self._scores(obs.y[t], predicted, float(np.mean(obs.noise_variance[t])))
        if self.prior_weighted:
            offset = blocks[candidates, :2] - mean[:2]
            scores = scores + 0.5 * np.einsum("ni,ij,nj->n", offset,
                                              np.linalg.inv(covariance[:2, :2]), offset)
        best_index = int(np.argmin(scores))
        best = candidates[best_index]
        noise_variance = float(np.mean(obs.noise_variance[t]))
        # The a-posteriori variance factor: what a sample of the pilots differs from the
        # true block's prediction by, over the noise. The best block's residual (the
        # radio map's own errors, eq. 4) is only a floor for it: it is the least of many
        # candidates'. A UE anywhere in its block is off the block's centre by what the
        # map varies over a block, which the adjacent blocks' predictions show.
        misfit = max(1.0, float(np.sum(np.abs(obs.y[t] - predicted[best_index]) ** 2)
                                / (noise_variance * obs.y[t].size)),
                     1.0 + block_variation(predicted, blocks[candidates],
                                           obs.fingerprints.block_size) / noise_variance)
        return SnapshotEstimate(
            ue_position=blocks[best].copy(),
            position_covariance=self._covariance(obs, blocks[candidates], blocks[best],
                                                 scores / misfit), scatterers=np.zeros((0, 3)),
            scatterer_valid=np.zeros(0, bool), path_tau=np.zeros(0), path_aod=np.zeros((0, 2)),
            path_gain=np.zeros(0, np.complex128),
            diagnostics={"candidates": float(candidates.size), "block": float(best),
                         "score": float(np.min(scores))})

    @abc.abstractmethod
    def _scores(self, y: ComplexArray, predicted: ComplexArray, noise_variance: float
                ) -> FloatArray:
        """The stage-2 score ``[candidate]`` (lower is better) of the received pilots
        ``y [bs, rx_stream, tx_beam, subcarrier]`` against each candidate's predicted
        pilots ``predicted [candidate, bs, rx_stream, tx_beam, subcarrier]``, with the
        noise variance ``noise_variance`` [W] per sample."""
