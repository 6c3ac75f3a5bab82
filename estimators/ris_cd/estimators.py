"""The registered RIS-CD localizer (Sang et al., "correlation dispersion", §II-B):
``ris-cd``, CFR fingerprints matched by eq. (5) within the prior's confidence region
(the two-stage scheme, :mod:`estimators.ris_cd.localizer`). Its RSS baseline ``ris-rss``
is in :mod:`estimators.ris_cd.baselines`.

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and Positioning
Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme", arXiv 2212.00241,
eqs. (4), (5), (14), §II-B.
"""

from __future__ import annotations

import numpy as np

from estimators.base import register
from estimators.ris_cd.localizer import FingerprintLocalizer
from estimators.typing import ComplexArray, FloatArray


@register
class RisCd(FingerprintLocalizer):
    """CFR fingerprints: the candidate block of the smallest scaled ℓ2 distance
    ``‖y − ŷ_i‖² / σ²`` (eq. 5) between the received and the predicted pilots."""

    name = "ris-cd"

    def _scores(self, y: ComplexArray, predicted: ComplexArray, noise_variance: float
                ) -> FloatArray:
        residual = np.abs(y[None] - predicted) ** 2
        return np.asarray(residual.reshape(len(predicted), -1).sum(axis=1) / noise_variance)
