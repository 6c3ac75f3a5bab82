"""RIS-CD: RIS-empowered positioning by correlation dispersion (Sang et al.).

``model`` (the fingerprint model the localizers run on), ``localizer`` (the two-stage
scheme), ``estimators`` (``ris-cd``), ``baselines`` (``ris-rss``), ``bound`` (§IV),
``design`` (the RIS design of §III), ``scenario`` (the paper's synthetic setting);
derivations in ``docs/estimators/ris_cd.md``.
"""
