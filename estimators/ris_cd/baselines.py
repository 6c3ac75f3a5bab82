"""The RSS baseline of RIS-CD (Sang et al.'s reference [20]): ``ris-rss``, received-signal
strength fingerprints with the same prior and the same two-stage scheme
(:mod:`estimators.ris_cd.localizer`).

References
----------
H. Zhang et al., "RSS fingerprinting based multi-user outdoor localization using
reconfigurable intelligent surfaces", ISMICT 2021 ([20] of Sang et al., arXiv 2212.00241).
"""

from __future__ import annotations

import numpy as np

from estimators.base import register
from estimators.ris_cd.localizer import FingerprintLocalizer
from estimators.typing import ComplexArray, FloatArray


@register
class RisRss(FingerprintLocalizer):
    """RSS fingerprints: the Gaussian negative log-likelihood of the measured mean power
    ``(1/n) Σ |y|²`` given candidate ``i``'s mean ``(1/n) Σ |ŷ_i|² + σ²`` and variance
    ``(2 σ² (1/n) Σ |ŷ_i|² + σ⁴) / n`` (``n`` received samples)."""

    name = "ris-rss"

    def _scores(self, y: ComplexArray, predicted: ComplexArray, noise_variance: float
                ) -> FloatArray:
        n = y.size
        measured = float(np.mean(np.abs(y) ** 2))
        signal = np.mean(np.abs(predicted.reshape(len(predicted), -1)) ** 2, axis=1)
        mean = signal + noise_variance
        variance = (2 * noise_variance * signal + noise_variance**2) / n
        return np.asarray((measured - mean) ** 2 / (2 * variance) + 0.5 * np.log(variance))
