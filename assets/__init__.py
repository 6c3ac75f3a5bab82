"""Small data the estimators ship with (DAUN's trained checkpoints in ``daun/``).

Installed as the package ``estimators._assets`` (pyproject.toml maps this folder there),
so a wheel carries them; :data:`estimators.daun.checkpoint.CHECKPOINTS_DIR` finds them
with :mod:`importlib.resources`. Nothing here is code.
"""
