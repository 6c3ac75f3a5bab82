"""RIS-CD: RIS-empowered positioning by correlation dispersion (Sang et al.).

The registered classes live in ``estimators.py``; the derivations in
``docs/estimators/ris_cd.md``.
"""
