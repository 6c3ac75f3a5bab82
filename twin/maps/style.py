"""What a map looks like: sizes, distances, colours, and what a true point's colour says
(:class:`PointStatus`)."""

from __future__ import annotations

from enum import IntEnum

DEFAULT_CUTOFF_M = 1.0
"""Matching cut-off [m] between estimated scatterers and true interaction points (as
``twin evaluate``)."""
DEFAULT_SIZE = (1280, 800)
"""PNG size (width, height) [pixels]."""
OUTPUT_SUFFIXES = (".png", ".html")
PNG_BACKENDS = ("open3d", "matplotlib")
INDOOR_HEADROOM_M = 3.0
"""A scene whose top is less than this above the highest device is indoor (has a ceiling)."""
CLIP_ABOVE_DEVICES_M = 0.3
"""Indoors, faces wholly above the highest device + this are hidden."""
EDGE_ANGLE_DEG = 20.0
"""Scene edges drawn: mesh boundaries and creases sharper than this."""
FIELD_OF_VIEW_DEG = 40.0
"""Vertical field of view of the PNG camera."""
FOCUS_PAD_M = 2.0
"""Horizontal margin [m] of the default PNG view around devices and points."""
MIN_MARGIN_M = 10.0
"""The map's region: devices and true points plus max(this, half the drive's width)."""

DRAWN_TILE_OFFSET_M = 0.02
"""A RIS tile is drawn this far [m] in front of its plane (along its normal), so that the
wall it is mounted on does not hide it."""
SAME_COORDINATE_M = 1e-6
"""Element coordinates closer than this [m] along a tile axis lie in one row or column."""

# Colours: the scene in pale grey-blue, truth in green / red / grey by status, the BSs in
# gold, the true UE in black, RIS tiles in magenta, one colour per algorithm.
MESH_RGBA = (0.80, 0.83, 0.90, 0.25)
EDGE_RGB = (0.45, 0.48, 0.55)
BS_RGB = (0.93, 0.68, 0.05)
TRUE_UE_RGB = (0.10, 0.10, 0.10)
RIS_RGB = (0.90, 0.00, 0.50)
ALGORITHM_RGB = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.58, 0.40, 0.74), (0.55, 0.34, 0.29),
    (0.89, 0.47, 0.76), (0.09, 0.75, 0.81), (0.74, 0.74, 0.13), (0.50, 0.50, 0.50),
)


class PointStatus(IntEnum):
    """What the drawn algorithms made of a true interaction point at its snapshot."""

    TRUTH = 0
    """No algorithm drawn (a map of the truth alone)."""
    MAPPED = 1
    """Matched by at least one algorithm's scatterer (within the cut-off)."""
    MISSED = 2
    """Representable by at least one algorithm, matched by none."""
    UNMODELLED = 3
    """Representable by none (a floor or ceiling point, and only 2D algorithms drawn)."""


STATUS_STYLE: dict[PointStatus, tuple[str, tuple[float, float, float]]] = {
    PointStatus.TRUTH: ("true interaction points", (0.13, 0.55, 0.13)),
    PointStatus.MAPPED: ("true points, mapped", (0.13, 0.55, 0.13)),
    PointStatus.MISSED: ("true points, missed", (0.84, 0.10, 0.11)),
    PointStatus.UNMODELLED: ("true points, unmodelled (2D)", (0.62, 0.62, 0.62)),
}
"""Legend label and colour of each :class:`PointStatus`."""


def algorithm_rgb(index: int) -> tuple[float, float, float]:
    """The colour of the ``index``-th algorithm drawn."""
    return ALGORITHM_RGB[index % len(ALGORITHM_RGB)]



def wall_cell(matched: int, modelled: int) -> tuple[str, tuple[float, float, float]]:
    """A walls-table cell: ``"matched/modelled"`` (``"2D: —"`` when the algorithm cannot
    represent the object's points) and its tint, white to green with the recall."""
    share = matched / modelled if modelled else 0.0
    text = f"{matched}/{modelled}" if modelled else "2D: —"
    return text, (1.0 - 0.45 * share, 1.0 - 0.15 * share, 1.0 - 0.45 * share)


