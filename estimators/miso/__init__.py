"""MISO: single-snapshot localization and mapping, single-antenna UE (Fascista et al.).

The registered classes live in ``estimators.py``; the derivations in
``docs/estimators/miso.md``.
"""
