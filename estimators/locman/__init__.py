"""LOCMAN: joint localization and orientation via atomic norm minimization (Li et al.).

``model`` (the MIMO-OFDM channel and geometry the estimators run on), ``anm`` (atomic
norm denoising: virtual channel, SDP and ADMM, Vandermonde decomposition), ``wls``
(position, yaw and scatterers from channel parameters), ``estimators`` (``locman``),
``baselines`` (``dcs-somp``), ``bound`` (the CRLB), ``scenario`` (the paper's synthetic
setting); derivations in ``docs/estimators/locman.md``.
"""
