"""Schema versions of the files the twin writes, and the one rule for reading them.

Every file format carries a ``schema_version``: the run file and the estimate file
``"MAJOR.MINOR"`` (``/config`` attribute), a dataset's ``manifest.json`` and shards an
integer ``MAJOR`` (read as ``MAJOR.0``). A reader of schema ``R`` given a file of schema
``F``:

* same major (``F.major == R.major``), any minor: **read**. A newer minor only adds
  fields, which this reader ignores; an older minor lacks fields added since, which
  each reader documents (read as None or NaN, or a one-line error where it cannot go on).
* a newer major: **refused**, one line naming both versions (upgrade ``mmwave-twin``).
* an older major: **refused**, one line naming both versions (make the file again).

A change that a reader of the same major could misread (a field renamed, removed, or
of another meaning or unit) is a new major; a new field is a new minor.
"""

from __future__ import annotations

import numbers
import re
from pathlib import Path

from twin.errors import TwinInputError
from twin.install import version

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def parse_schema_version(value: object) -> tuple[int, int] | None:
    """``"MAJOR.MINOR"``, ``"MAJOR"`` or an integer as ``(major, minor)``; None for
    anything else (a bool, a float, text of another shape)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):  # numpy integers too (HDF5 attributes)
        value = int(value)
    elif isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, str | int):
        return None
    match = _VERSION.fullmatch(str(value).strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def check_schema_version(found: object, reads: str | int, *, what: str,
                         path: str | Path) -> tuple[int, int]:
    """Apply the module's rule to a file of schema ``found`` read by a reader of schema
    ``reads``; return ``found`` as ``(major, minor)``.

    Raises
    ------
    TwinInputError
        One line naming ``path``, ``what`` (e.g. ``"run file"``) and both versions: a
        newer or an older major, or a version that is not ``MAJOR[.MINOR]``.
    """
    mine = parse_schema_version(reads)
    if mine is None:  # pragma: no cover - a constant of this package
        raise ValueError(f"bad reader schema {reads!r}")
    theirs = parse_schema_version(found)
    if theirs is None:
        raise TwinInputError(f"{path}: {what} schema version {found!r} is not MAJOR.MINOR "
                             f"(this twin reads {what} schema {reads})")
    if theirs[0] > mine[0]:
        raise TwinInputError(f"{path}: {what} schema {found} is newer than this twin reads "
                             f"({what} schema {reads}, mmwave-twin {version()}); upgrade "
                             "mmwave-twin to read it")
    if theirs[0] < mine[0]:
        raise TwinInputError(f"{path}: {what} schema {found} is older than this twin reads "
                             f"({what} schema {reads}, mmwave-twin {version()}); make it "
                             "again with this version")
    return theirs


__all__ = ["check_schema_version", "parse_schema_version"]
