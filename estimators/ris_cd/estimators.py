"""Two-stage fingerprint positioning with a position prior (Sang, Gui, Ying, Diao, Ng,
"correlation dispersion", §II-B): ``ris-cd`` (CFR fingerprints) and its RSS baseline
``ris-rss`` (the paper's reference [20]: received-signal-strength fingerprints with the
same prior).

Both see a downlink observation with a radio map (``Observation.fingerprints``: every
block's channel as the database knows it, for the RIS configuration in use) and a
Gaussian position prior (``Observation.prior``, e.g. GNSS; eq. 39). Stage 1 (prediction)
keeps the blocks whose centres lie inside the prior's confidence region (eq. 14: the
ellipse of probability ``confidence`` of the horizontal prior; for an isotropic prior of
standard deviation ``σ`` per axis the circle of radius ``σ sqrt(−2 ln(1 − confidence))``).
Stage 2 (correction) matches the received pilots against the candidates' predicted
pilots ``ŷ_i = W^H H_i F s`` (the observation's own precoder, combiner and pilots):

* ``ris-cd``: the scaled ℓ2 norm of eq. (5), ``‖y − ŷ_i‖² / σ²``;
* ``ris-rss``: the Gaussian log-likelihood of the measured mean power ``(1/n) Σ |y|²``,
  mean ``(1/n) Σ |ŷ_i|² + σ²`` and variance ``(2 σ² (1/n) Σ |ŷ_i|² + σ⁴) / n``.

"Instead of pinpointing the exact location, we consider all locations within this
confidence range without any bias" (§II-B): the candidates are scored without the prior;
``prior_weighted=True`` adds eq. (5)'s ``− ln p(i)`` (the plain MAP).

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and Positioning
Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme", arXiv 2212.00241,
eqs. (4), (5), (14), (39), §II-B. H. Zhang et al., "RSS fingerprinting based multi-user
outdoor localization using reconfigurable intelligent surfaces", ISMICT 2021 ([20]).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from estimators.base import Estimator, EstimatorInputError, SnapshotEstimate, register
from estimators.ris_cd.design import confidence_radius
from estimators.types import Observation
from estimators.typing import ComplexArray, FloatArray


def confidence_region(points: npt.ArrayLike, mean: npt.ArrayLike, covariance: npt.ArrayLike,
                      confidence: float) -> npt.NDArray[np.bool_]:
    """``[point]`` whether each of ``points [point, 3]`` lies in the horizontal prior's
    region of probability ``confidence`` (eq. 14): the Mahalanobis distance in (x, y)
    under ``mean [3]``, ``covariance [3, 3]`` within :func:`confidence_radius` of a unit
    prior (``sqrt(−2 ln(1 − p))``; for ``σ² I`` the circle of that radius times ``σ``)."""
    p = np.asarray(points, dtype=np.float64)[:, :2] - np.asarray(mean, dtype=np.float64)[:2]
    inverse = np.linalg.inv(np.asarray(covariance, dtype=np.float64)[:2, :2])
    distance_sq = np.einsum("ni,ij,nj->n", p, inverse, p)
    return np.asarray(distance_sq <= confidence_radius(1.0, confidence) ** 2)


def predicted_pilots(obs: Observation, t: int) -> ComplexArray:
    """``[block, bs, rx_stream, tx_beam, subcarrier]`` the noiseless pilots of snapshot
    ``t`` at every block of the radio map: ``W^H H_i F s``."""
    assert obs.fingerprints is not None
    return np.einsum("brn,ibrsk,bsm,mk->ibnmk", obs.combiners[t].conj(),
                     obs.fingerprints.cfr, obs.precoders[t], obs.pilots)


class FingerprintLocalizer(Estimator):
    """Base of the two-stage fingerprint localizers: prior → candidate blocks → the
    subclass's score (:meth:`_scores`, lower is better) → the best block's centre."""

    #: The twin sounds with its radio map, the fixed MRT precoder and a 2 m GNSS-like
    #: prior (:func:`twin.sounding.observation_from_run`).
    sounding: ClassVar[Mapping[str, Any]] = {
        "link": "downlink", "radio_map": True, "precoder": "mrt", "combiner": "identity",
        "pilots": "ones", "prior_std_m": 2.0}

    def __init__(self, *, confidence: float = 0.95, prior_weighted: bool = False) -> None:
        self.confidence = confidence
        self.prior_weighted = prior_weighted

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

    def _estimate_snapshot(self, obs: Observation, t: int, rng: np.random.Generator
                           ) -> SnapshotEstimate:
        assert obs.fingerprints is not None and obs.prior is not None
        blocks = obs.fingerprints.block_positions
        mean, covariance = obs.prior.mean[t], obs.prior.covariance[t]
        candidates = np.flatnonzero(confidence_region(blocks, mean, covariance,
                                                      self.confidence))
        if candidates.size == 0:  # a region smaller than a block: the nearest block
            horizontal = blocks[:, :2] - mean[:2]
            candidates = np.array([int(np.argmin(np.sum(horizontal**2, axis=1)))])
        y = obs.y[t]
        predicted = predicted_pilots(obs, t)[candidates]
        scores = self._scores(y, predicted, float(np.mean(obs.noise_variance[t])))
        if self.prior_weighted:
            d = blocks[candidates, :2] - mean[:2]
            scores = scores + 0.5 * np.einsum("ni,ij,nj->n", d,
                                              np.linalg.inv(covariance[:2, :2]), d)
        best = candidates[int(np.argmin(scores))]
        return SnapshotEstimate(
            ue_position=blocks[best].copy(), scatterers=np.zeros((0, 3)),
            scatterer_valid=np.zeros(0, bool), path_tau=np.zeros(0), path_aod=np.zeros((0, 2)),
            path_gain=np.zeros(0, np.complex128),
            diagnostics={"candidates": float(candidates.size), "block": float(best),
                         "score": float(np.min(scores))})

    @abc.abstractmethod
    def _scores(self, y: ComplexArray, predicted: ComplexArray, noise_variance: float
                ) -> FloatArray:
        """``[candidate]`` the stage-2 score of ``y [bs, stream, beam, subcarrier]``
        against ``predicted [candidate, ...]`` (lower is better)."""


@register
class RisCd(FingerprintLocalizer):
    """CFR fingerprints (eq. 5): ``‖y − ŷ_i‖² / σ²`` over the candidate blocks."""

    name = "ris-cd"

    def _scores(self, y: ComplexArray, predicted: ComplexArray, noise_variance: float
                ) -> FloatArray:
        residual = np.abs(y[None] - predicted) ** 2
        return np.asarray(residual.reshape(len(predicted), -1).sum(axis=1) / noise_variance)


@register
class RisRss(FingerprintLocalizer):
    """RSS fingerprints ([20]): the measured mean power against each candidate's."""

    name = "ris-rss"

    def _scores(self, y: ComplexArray, predicted: ComplexArray, noise_variance: float
                ) -> FloatArray:
        n = y.size
        measured = float(np.mean(np.abs(y) ** 2))
        signal = np.mean(np.abs(predicted.reshape(len(predicted), -1)) ** 2, axis=1)
        mean = signal + noise_variance
        variance = (2 * noise_variance * signal + noise_variance**2) / n
        return np.asarray((measured - mean) ** 2 / (2 * variance) + 0.5 * np.log(variance))
