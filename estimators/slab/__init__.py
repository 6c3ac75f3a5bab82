"""SLAB: successive localization and beamforming (Zhou et al.).

Rooms: ``model`` (the multi-BS mmWave forward model), ``bound`` (the long-term CRLB,
Lemma 1, and the eq. 23 cost), ``lce`` (SLLS), ``lce_init`` (multi-start), ``fusion``
(eqs. 25–27), ``bfr`` (SLAB's beamforming refinement), ``loop`` (Algorithm 1),
``estimators`` (``slab``, ``slab-lce`` and the baselines' registered classes),
``baselines`` (GD/LS LCE, GD and LMI BFR), ``scenario`` (the paper's synthetic
setting); derivations in ``docs/estimators/slab.md``.
"""
