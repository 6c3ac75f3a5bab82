"""Ground truth of traced paths: :class:`PathSet`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


class InteractionType(enum.IntEnum):
    """Interaction at a path vertex (``NONE`` pads paths shorter than the max depth).

    A line-of-sight path is a valid path of depth 0.
    """

    NONE = 0
    SPECULAR = 1
    DIFFUSE = 2
    REFRACTION = 3
    DIFFRACTION = 4
    RIS = 5


@dataclass(frozen=True)
class PathSet:
    """Every traced path and the truth behind it.

    Dims: ``T`` snapshots, ``B`` base stations, ``P`` paths (padded to the max over
    the run; see ``valid``), ``D`` max depth, ``Nr``/``Nt`` UE/BS antenna ports.
    Paths run from the BS (transmitter) to the UE (receiver); vertex ``0`` is the
    interaction closest to the BS. Within a (snapshot, BS), valid paths come first,
    sorted by delay (the earliest, e.g. the LOS, is path 0). Invalid (padding) entries
    are NaN for floats, ``-1`` for ids and depth, ``NONE`` for interaction types.

    Attributes
    ----------
    valid : ``[T, B, P]`` bool.
    tau : ``[T, B, P]`` float64 [s], absolute propagation delay.
    gain : ``[T, B, P, Nr, Nt]`` complex64, channel coefficient per UE/BS antenna
        pair, including the carrier phase and the synthetic-array phase shifts.
    aod, aoa : ``[T, B, P, 2]`` float64 (azimuth, zenith) [rad] at the BS / UE.
    doppler : ``[T, B, P]`` float64 [Hz].
    depth : ``[T, B, P]`` int16, number of interactions (0 = LOS).
    interaction_types : ``[T, B, P, D]`` uint8 (:class:`InteractionType`).
    interaction_points : ``[T, B, P, D, 3]`` float64 [m].
    object_ids : ``[T, B, P, D]`` int32, index into ``object_names`` (sorted names:
        stable across runs, unlike Sionna's own ids).
    primitive_ids : ``[T, B, P, D]`` int64, triangle index within the object (at a RIS
        vertex: the sub-tile index, docs/RIS.md).
    virtual_anchor : ``[T, B, P, 3]`` float64 [m]: the BS mirrored through the
        reflecting planes of a path made only of specular reflections and (thin-slab,
        undeflected) refractions, so that ``c τ = |virtual_anchor - UE|``; the BS
        itself for LOS; NaN for paths with diffuse or diffracted vertices, or through a
        RIS tile.
    object_names : the scene's object names, sorted, then the run's RIS tiles (in
        ``/ris/name`` order); ``object_names[id]``.
    """

    valid: npt.NDArray[np.bool_]
    tau: npt.NDArray[np.float64]
    gain: npt.NDArray[np.complex64]
    aod: npt.NDArray[np.float64]
    aoa: npt.NDArray[np.float64]
    doppler: npt.NDArray[np.float64]
    depth: npt.NDArray[np.int16]
    interaction_types: npt.NDArray[np.uint8]
    interaction_points: npt.NDArray[np.float64]
    object_ids: npt.NDArray[np.int32]
    primitive_ids: npt.NDArray[np.int64]
    virtual_anchor: npt.NDArray[np.float64]
    object_names: tuple[str, ...]

    @property
    def num_snapshots(self) -> int:
        return int(self.valid.shape[0])

    @property
    def num_paths(self) -> int:
        return int(self.valid.shape[2])

    @property
    def max_depth(self) -> int:
        return int(self.interaction_types.shape[3])

    def snapshots(self, selection: slice) -> PathSet:
        """The paths of some snapshots, the path axis trimmed to their most valid paths
        (valid paths come first)."""
        from dataclasses import fields, replace

        valid = self.valid[selection]
        keep = int(valid.sum(axis=2).max(initial=0)) if valid.size else 0
        return replace(self, **{
            f.name: getattr(self, f.name)[selection][:, :, :keep]
            for f in fields(self) if f.name != "object_names"})

    def interaction_object_names(self) -> npt.NDArray[np.str_]:
        """``[T, B, P, D]`` names of the objects hit (``""`` where none)."""
        table = np.array([*self.object_names, ""], dtype=object)
        ids = np.where(self.object_ids >= 0, self.object_ids, len(self.object_names))
        return table[ids].astype(str)

    def path_signatures(self, delay_resolution_s: float = 1e-10) -> set[tuple[object, ...]]:
        """Identity of every valid path, comparable across runs and scene loads.

        ``(snapshot, bs, interaction types, object names, delay / resolution rounded)``;
        object *names*, so that runs on differently numbered scenes compare.
        """
        names = self.interaction_object_names()
        return {
            (
                int(t), int(b), tuple(self.interaction_types[t, b, p].tolist()),
                tuple(names[t, b, p].tolist()),
                round(float(self.tau[t, b, p]) / delay_resolution_s),
            )
            for t, b, p in zip(*self.valid.nonzero(), strict=True)
        }


def mirror_through_planes(
    anchor: npt.ArrayLike,
    points: npt.ArrayLike,
    normals: npt.ArrayLike,
    mirrors: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Image method: mirror an anchor successively through planes.

    Parameters
    ----------
    anchor : ``[..., 3]`` [m], the point to mirror (the BS).
    points : ``[..., D, 3]`` [m], a point on each plane (the interaction point).
    normals : ``[..., D, 3]``, unit plane normals.
    mirrors : ``[..., D]`` bool, whether vertex ``d`` mirrors (False: pass through).

    Returns
    -------
    ``[..., 3]`` [m], the virtual anchor.
    """
    x = np.array(anchor, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    m = np.asarray(mirrors, dtype=bool)
    for d in range(p.shape[-2]):
        dist = np.einsum("...i,...i->...", x - p[..., d, :], n[..., d, :])
        x = np.where(m[..., d, None], x - 2.0 * dist[..., None] * n[..., d, :], x)
    return x
