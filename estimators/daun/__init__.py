"""DAUN: fast direct localization via deep ADMM unfolding (Fan et al.).

Rooms: ``model`` (eqs. 1–2: the dictionaries, the narrowband uplink), ``scenario`` (the
paper's §IV setting), ``bound`` (the LOS-only position bound), ``grid`` (the grid
localizers' base and the paper's grid), ``admm`` (eqs. 3–18 and Algorithm 1 in torch,
the training), ``checkpoint`` (trained parameters), ``estimators`` (``p-admm``, ``daun``,
``daun-r``), ``baselines`` (``dpd``, ``stansfield``, ``srl``, ``cvx-direct``). The
derivations are in ``docs/estimators/daun.md``.
"""
