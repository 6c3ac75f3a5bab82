"""What this installation of the twin holds: its version and its optional extras.

The distribution is ``mmwave-twin``; ``twin --version`` and every file's ``versions``
metadata report :func:`version`. Commands that need an optional extra
(``pip install 'mmwave-twin[ray]'``, ``[osm]``; ``[all]`` for every one) check for it
with :func:`require_extra` before any work, so a missing one is one line naming the
extra, not a traceback.
"""

from __future__ import annotations

from importlib import metadata, util

#: The distribution's name on the package index.
DISTRIBUTION = "mmwave-twin"

#: The optional extras (pyproject.toml ``[project.optional-dependencies]``): name -> the
#: modules they provide, and what needs them.
EXTRAS: dict[str, tuple[str, ...]] = {
    "ray": ("ray",),  # twin dataset --engine ray
    "osm": ("osmium", "pyproj", "shapely", "mapbox_earcut"),  # twin scene osm
}


def version() -> str:
    """The installed ``mmwave-twin`` version (``"unknown"`` when run from a folder that
    was never installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` (a key of :data:`EXTRAS`) that cannot be imported."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            found = util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or blocked install is a missing one
            found = False
        if not found:
            missing.append(module)
    return missing


def require_extra(extra: str, what: str) -> None:
    """Raise a one-line :class:`~twin.errors.TwinInputError` when ``extra``'s modules are
    not installed: ``"{what} needs the '{extra}' extra: pip install
    'mmwave-twin[{extra}]' (missing: ...)"``."""
    from twin.errors import TwinInputError

    missing = missing_modules(extra)
    if missing:
        raise TwinInputError(f"{what} needs the '{extra}' extra: pip install "
                             f"'{DISTRIBUTION}[{extra}]' (missing: {', '.join(missing)})")


__all__ = ["DISTRIBUTION", "EXTRAS", "missing_modules", "require_extra", "version"]
