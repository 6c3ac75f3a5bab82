"""MISO: single-snapshot localization and mapping, single-antenna UE (Fascista et al.).

Rooms: ``model`` (the forward model), ``bound`` (the CRLBs), ``estimators`` (the
registered ``miso-*`` classes), ``scenario`` (the paper's synthetic setting, never
imported by the others). Derivations and measurements: ``docs/estimators/miso.md``.
"""
