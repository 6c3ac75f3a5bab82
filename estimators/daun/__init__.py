"""DAUN: fast direct localization via deep ADMM unfolding (Fan et al.).

The registered classes live in ``estimators.py``; the derivations in
``docs/estimators/daun.md``.
"""
