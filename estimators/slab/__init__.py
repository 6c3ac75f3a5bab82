"""SLAB: successive localization and beamforming (Zhou et al.).

The registered classes live in ``estimators.py``; the derivations in
``docs/estimators/slab.md``.
"""
