"""LOCMAN: joint localization and orientation via atomic norm minimisation.

The registered classes live in ``estimators.py``; the derivations in
``docs/estimators/locman.md``.
"""
