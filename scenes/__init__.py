"""The bundled scenes (``bundled:NAME`` in a config; ``twin scenes`` lists them).

Installed as the package ``twin._scenes`` (pyproject.toml maps this folder there), so a
wheel carries them; :data:`twin.scene.BUNDLED_DIR` finds them with
:mod:`importlib.resources`. Nothing here is code.
"""
