"""RIS tiles: geometry, phase profiles, the per-element reradiation model, both hops ray
traced (per sub-tile for ``near_field`` tiles), the cascade of the two, and the cascaded
paths (docs/RIS.md).

A tile is a planar array of ``rows × cols`` passive elements, spaced ``spacing``
[m], laid out as :func:`estimators.arrays.planar_array_positions` (local y–z plane,
normal = local +x) and posed by ``position`` and ``orientation`` (yaw, pitch, roll).

**Reradiation model** (Tang et al., "Wireless Communications With Reconfigurable
Intelligent Surface: Path Loss Modeling and Experimental Measurement", IEEE TWC 20(1),
2021, Theorem 1, eq. (7)): the power received through the tile is

    P_r = P_t G_t G_r G d_x d_y λ² / (64 π³) · |Σ_e sqrt(F(θ_in,e) F(θ_out,e)) Γ_e
          e^{−j2π(r_in,e + r_out,e)/λ} / (r_in,e r_out,e)|²,

with the element's normalised power pattern ``F(θ) = cos^q θ`` in front of the tile (0
behind), its gain ``G = 2(q + 1)`` (``4π / ∫F dΩ``; Tang's measured element has
``q = 3``), element size ``d_x × d_y`` (the spacing), and reflection coefficient
``Γ_e = A θ_e`` (amplitude ``A``, the configured unit-modulus phase ``θ_e``). Each hop
traced with isotropic element antennas carries ``λ/(4π r) e^{−j2πr/λ}``, so the element's
cascade is ``h_out,e · κ · sqrt(F(θ_in,e) F(θ_out,e)) · θ_e · h_in,e`` with the constant
``κ = A sqrt(4π G d_x d_y) / λ`` (:func:`reradiation_amplitude`): Tang's factor,
folded into the cascade once, the pattern into each hop's paths.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, planar_array_positions, rotation_matrix
from estimators.typing import ComplexArray, FloatArray
from twin.errors import TwinInputError
from twin.outputs import regular_file
from twin.paths import InteractionType, PathSet
from twin.runfile import RisData
from twin.scene import TwinWarning

#: Tang et al.'s measured element pattern: F(θ) = cos³ θ.
PATTERN_EXPONENT = 3.0


@dataclass(frozen=True)
class RisTile:
    """One tile. ``position [3]`` [m] (centre), ``orientation [3]`` (yaw, pitch, roll)
    [rad], ``rows × cols`` elements ``spacing`` [m] apart, reflection amplitude
    ``amplitude`` (Tang's ``A``)."""

    name: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float]
    rows: int
    cols: int
    spacing: float
    amplitude: float = 1.0

    @classmethod
    def checked(cls, name: str, position: npt.ArrayLike, orientation: npt.ArrayLike,
                elements: tuple[int, int], spacing_wavelengths: float, wavelength: float,
                amplitude: float = 1.0) -> RisTile:
        """A tile from user input: a tile with no element or a non-finite pose is an error
        (one line, naming the tile); a spacing over one wavelength warns (grating
        lobes)."""
        rows, cols = (int(v) for v in elements)
        p = np.asarray(position, dtype=np.float64)
        o = np.asarray(orientation, dtype=np.float64)
        if rows < 1 or cols < 1:
            raise TwinInputError(f"ris '{name}': elements must be >= 1 x 1, got {rows} x {cols}")
        if p.shape != (3,) or o.shape != (3,) or not (np.all(np.isfinite(p))
                                                      and np.all(np.isfinite(o))):
            raise TwinInputError(f"ris '{name}': position and orientation must be 3 finite "
                                 f"numbers, got {p.tolist()} and {o.tolist()}")
        if not spacing_wavelengths > 0 or not 0 < amplitude <= 1:
            raise TwinInputError(f"ris '{name}': spacing_wavelengths must be > 0 and the "
                                 f"amplitude in (0, 1], got {spacing_wavelengths}, {amplitude}")
        if spacing_wavelengths > 1:
            warnings.warn(f"ris '{name}': element spacing {spacing_wavelengths} wavelengths "
                          "> 1: grating lobes", TwinWarning, stacklevel=2)
        return cls(name, (float(p[0]), float(p[1]), float(p[2])),
                   (float(o[0]), float(o[1]), float(o[2])), rows, cols,
                   float(spacing_wavelengths * wavelength), float(amplitude))

    @property
    def num_elements(self) -> int:
        return self.rows * self.cols

    @property
    def normal(self) -> FloatArray:
        """``[3]`` the unit normal (local +x in the world)."""
        return np.asarray(rotation_matrix(self.orientation)[:, 0])

    def element_positions(self) -> FloatArray:
        """``[element, 3]`` [m], world positions (column by column, as Sionna's arrays)."""
        local = planar_array_positions(self.rows, self.cols, vertical_spacing_m=self.spacing,
                                       horizontal_spacing_m=self.spacing)
        return np.asarray(self.position) + local @ rotation_matrix(self.orientation).T


def element_pattern(cos_theta: npt.ArrayLike, exponent: float = PATTERN_EXPONENT
                    ) -> FloatArray:
    """Tang's normalised power pattern ``F = cos^q θ`` in front of the tile, 0 behind;
    ``cos_theta [...]`` = the direction's cosine with the tile normal."""
    c = np.asarray(cos_theta, dtype=np.float64)
    return np.where(c > 0, np.clip(c, 0, 1) ** exponent, 0.0)


def element_gain(exponent: float = PATTERN_EXPONENT) -> float:
    """``G = 4π / ∫ F dΩ = 2(q + 1)`` for ``F = cos^q θ`` over the front half-space."""
    return 2.0 * (exponent + 1.0)


def reradiation_amplitude(tile: RisTile, wavelength: float,
                          exponent: float = PATTERN_EXPONENT) -> float:
    """``κ = A sqrt(4π G d_x d_y) / λ`` (module docstring): Tang's eq. (7) over the
    product of two isotropic free-space hops, per element."""
    gain = element_gain(exponent)
    return float(tile.amplitude * np.sqrt(4 * np.pi * gain * tile.spacing**2) / wavelength)


# ---------------------------------------------------------------------- phase profiles


def uniform_profile(tile: RisTile) -> ComplexArray:
    """``θ_e = 1``: the tile as a plain (specular) reflector."""
    return np.ones(tile.num_elements, dtype=np.complex128)


def focus_profile(tile: RisTile, source: npt.ArrayLike, target: npt.ArrayLike,
                  wavelength: float) -> ComplexArray:
    """Phases that align every element's path from ``source [3]`` to ``target [3]`` [m]
    (spherical distances, so near-field focusing too): ``θ_e = e^{+j2π(r_in,e +
    r_out,e)/λ}``."""
    r = tile.element_positions()
    length = (np.linalg.norm(r - np.asarray(source, float), axis=1)
              + np.linalg.norm(r - np.asarray(target, float), axis=1))
    return np.exp(2j * np.pi * length / wavelength)


def reflect_profile(tile: RisTile, source: npt.ArrayLike, direction: npt.ArrayLike,
                    wavelength: float) -> ComplexArray:
    """Anomalous reflection of the wave from ``source [3]`` [m] into the far-field
    ``direction [3]`` (unit vector from the tile): a linear phase gradient ``θ_e =
    e^{−j2π (u_in + u_out)·(r_e − c)/λ}``, ``u_in`` the unit vector from the tile centre
    ``c`` to the source."""
    r = tile.element_positions() - np.asarray(tile.position)
    u_in = np.asarray(source, float) - np.asarray(tile.position)
    u_in = u_in / np.linalg.norm(u_in)
    u_out = np.asarray(direction, float) / np.linalg.norm(direction)
    return np.exp(-2j * np.pi * (r @ (u_in + u_out)) / wavelength)


def file_profile(tile: RisTile, path: str | Path) -> ComplexArray:
    """A ``.npy`` of ``num_elements`` complex values (their phases are used) or real
    phases [rad]; a file of another length, a non-finite or (complex) zero value is an
    error naming the file."""
    where = f"ris '{tile.name}': profile file {path}"
    regular_file(Path(path), f"ris '{tile.name}': profile file")
    try:
        # Memory-mapped: the header's shape is checked before any value is read.
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise TwinInputError(f"{where}: {exc}") from None
    if values.size != tile.num_elements:
        raise TwinInputError(f"{where} has {values.size} values, the tile has "
                             f"{tile.num_elements} elements")
    if values.dtype.kind not in "iufc":  # integer, unsigned, float or complex numbers
        raise TwinInputError(f"{where}: expected numbers, got dtype {values.dtype}")
    values = np.array(values).ravel()
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise TwinInputError(f"{where}: {bad.size} non-finite value(s) (first: element "
                             f"{bad[0]})")
    if np.iscomplexobj(values):
        magnitude = np.abs(values)
        zero = np.flatnonzero(magnitude == 0)
        if zero.size:
            raise TwinInputError(f"{where}: {zero.size} zero value(s) have no phase (first: "
                                 f"element {zero[0]})")
        return values / magnitude
    return np.exp(1j * values.astype(np.float64))


# ------------------------------------------------------------------------------ cascade


def free_space_hop(tx_positions: npt.ArrayLike, rx_positions: npt.ArrayLike,
                   carrier_frequency: float, frequencies: npt.ArrayLike) -> ComplexArray:
    """Line-of-sight hop between isotropic points, as the twin's CFRs write it: ``[rx,
    tx, subcarrier]`` ``λ/(4π d) e^{−j2π(f_c + f_k) d/c}``. The reference the traced hops
    are checked against (and the closed-form tests' hops)."""
    t = np.asarray(tx_positions, dtype=np.float64).reshape(-1, 3)
    r = np.asarray(rx_positions, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(frequencies, dtype=np.float64)
    d = np.linalg.norm(r[:, None, :] - t[None, :, :], axis=-1)
    wavelength = SPEED_OF_LIGHT / carrier_frequency
    return (wavelength / (4 * np.pi * d))[..., None] * np.exp(
        -2j * np.pi * (carrier_frequency + f) * d[..., None] / SPEED_OF_LIGHT)


def free_space_tile_hops(
    tile: RisTile, bs_position: npt.ArrayLike, ue_position: npt.ArrayLike,
    carrier_frequency: float, frequencies: npt.ArrayLike,
    exponent: float = PATTERN_EXPONENT,
) -> tuple[ComplexArray, ComplexArray]:
    """Both hops of one tile in free space, single-antenna BSs and UEs, the element
    pattern ``sqrt(F)`` on each: ``bs_to_ris [bs, 1, element, 1, subcarrier]`` and
    ``ris_to_ue [ue, 1, 1, element, subcarrier]`` (the layouts of :func:`cascade_cfr`).
    The closed form the ray-traced hops must reproduce in free space."""
    r = tile.element_positions()
    bs = np.asarray(bs_position, dtype=np.float64).reshape(-1, 3)
    ue = np.asarray(ue_position, dtype=np.float64).reshape(-1, 3)

    def pattern(points: FloatArray) -> FloatArray:  # [point, element]
        d = points[:, None, :] - r[None, :, :]
        cos = (d @ tile.normal) / np.linalg.norm(d, axis=-1)
        return np.sqrt(element_pattern(cos, exponent))

    inbound = free_space_hop(bs, r, carrier_frequency, frequencies)  # [element, bs, k]
    outbound = free_space_hop(r, ue, carrier_frequency, frequencies)  # [ue, element, k]
    bs_to_ris = np.transpose(inbound, (1, 0, 2)) * pattern(bs)[..., None]
    ris_to_ue = outbound * pattern(ue)[..., None]
    return bs_to_ris[:, None, :, None, :], ris_to_ue[:, None, None, :, :]


#: [m] the traced tile sits this far in front of its plane (along the normal), so a wall it
#: is mounted on does not occlude its own hops; the tile itself is no scene geometry.
#: :func:`_at_tile_plane` takes the offset back out of every traced path.
MOUNT_OFFSET_M = 5e-3


def _at_tile_plane(pathset: PathSet, directions: FloatArray, normal: FloatArray,
                   frequency_hz: float, exponent: float) -> PathSet:
    """A hop traced at the mounted (offset) tile, brought back to the tile's plane: each
    path's gain times ``sqrt(F)`` of its direction at the tile (``directions [..., path,
    2]`` azimuth, zenith), and lengthened by the offset along that direction, ``Δ =
    MOUNT_OFFSET_M cos θ``: delay ``+ Δ/c``, carrier phase, and spherical spreading ``τ /
    (τ + Δ/c)`` (exact for LOS and specular chains; plane-wave over 5 mm: the spherical
    correction is below ``offset² / 2r``, 13 µm at 1 m)."""
    from estimators.arrays import unit_direction

    safe = np.where(np.isfinite(directions), directions, 0.0)
    cos = unit_direction(safe[..., 0], safe[..., 1]) @ normal
    weight = np.sqrt(element_pattern(cos, exponent))
    extra_s = MOUNT_OFFSET_M * np.clip(cos, 0, 1) / SPEED_OF_LIGHT
    with np.errstate(invalid="ignore"):
        spreading = np.where(pathset.valid, pathset.tau / (pathset.tau + extra_s), 0.0)
    factor = weight * spreading * np.exp(-2j * np.pi * frequency_hz * extra_s)
    return dataclasses.replace(
        pathset, tau=pathset.tau + extra_s,
        gain=(pathset.gain * factor[..., None, None]).astype(pathset.gain.dtype))


def sub_tile_layout(tile: RisTile, sub_tiles: tuple[int, int] = (1, 1)
                    ) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """A tile split into ``sub_tiles = (rows, cols)`` equal sub-tiles (``(1, 1)``: the
    whole tile; ``(tile.rows, tile.cols)``: every element).

    Returns ``elements [sub_tile, sub_element]``, the tile's element indices of each
    sub-tile in the order of a sub-tile-sized planar array (column by column), and
    ``centres [sub_tile, 3]`` [m], the sub-tiles' centres (in the tile's plane). Sub-tiles
    are numbered column by column too.
    """
    split_rows, split_cols = (int(v) for v in sub_tiles)
    if tile.rows % split_rows or tile.cols % split_cols:
        raise TwinInputError(f"ris '{tile.name}': sub_tiles {split_rows} x {split_cols} must "
                             f"divide its {tile.rows} x {tile.cols} elements")
    rows, cols = tile.rows // split_rows, tile.cols // split_cols
    local_row, local_col = np.meshgrid(np.arange(rows), np.arange(cols), indexing="xy")
    tile_row, tile_col = np.meshgrid(np.arange(split_rows), np.arange(split_cols),
                                     indexing="xy")
    row = tile_row.reshape(-1, 1) * rows + local_row.reshape(1, -1)
    col = tile_col.reshape(-1, 1) * cols + local_col.reshape(1, -1)
    elements = (col * tile.rows + row).astype(np.int64)
    return elements, tile.element_positions()[elements].mean(axis=1)


def element_groups(rows: int, cols: int, groups: tuple[int, int]) -> npt.NDArray[np.int64]:
    """``[element]`` the group of each element of a ``rows × cols`` tile split into
    ``groups = (rows, cols)`` equal rectangles, numbered as :func:`sub_tile_layout`'s
    sub-tiles (elements column by column, as Sionna's arrays)."""
    elements, _ = sub_tile_layout(RisTile("groups", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                                          int(rows), int(cols), 1.0), groups)
    group = np.empty(elements.size, dtype=np.int64)
    group[elements] = np.arange(elements.shape[0])[:, None]
    return group


def far_field_distance(tile: RisTile, wavelength: float,
                       sub_tiles: tuple[int, int] = (1, 1)) -> float:
    """Fraunhofer distance ``2 D² / λ`` [m] of one (sub-)tile, ``D`` the diagonal of its
    aperture (``rows × cols`` elements ``spacing`` apart, each ``spacing`` wide)."""
    rows, cols = tile.rows / sub_tiles[0], tile.cols / sub_tiles[1]
    return float(2 * tile.spacing**2 * (rows**2 + cols**2) / wavelength)


def _warn_near_field(tile: RisTile, sub_tiles: tuple[int, int], wavelength: float,
                     points: FloatArray) -> None:
    """Warn when BSs or UE positions ``points [n, 3]`` lie closer to a (sub-)tile than its
    far-field distance: its synthetic-array (plane-wave) phases are approximate there."""
    limit = far_field_distance(tile, wavelength, sub_tiles)
    _, centres = sub_tile_layout(tile, sub_tiles)
    distance = np.linalg.norm(points[:, None, :] - centres[None], axis=-1).min(axis=1)
    close = int(np.count_nonzero(distance < limit))
    if close:
        what = "tile" if tuple(sub_tiles) == (1, 1) else f"{sub_tiles[0]} x {sub_tiles[1]} " \
                                                         "sub-tiles"
        warnings.warn(f"ris '{tile.name}': {close} BS/UE position(s) lie within the far-field "
                      f"distance {limit:.2f} m of its {what} (nearest {distance.min():.2f} m); "
                      "the plane-wave phases over it are approximate there: use near_field: "
                      "true, or finer sub_tiles", TwinWarning, stacklevel=3)


@dataclass(frozen=True)
class TileHops:
    """Both ray-traced hops of one tile, per sub-tile (one sub-tile, the whole tile, in
    the far field).

    Attributes
    ----------
    inbound : BS → sub-tile paths ``[sub_tile, bs, path, sub_element, bs_ant]`` (a
        :class:`~twin.paths.PathSet` whose snapshot axis is the sub-tile), the element
        pattern ``sqrt(F)`` in the gains.
    outbound : sub-tile → UE paths ``[snapshot, sub_tile, path, ue_ant, sub_element]``
        (its BS axis is the sub-tile), likewise.
    elements : ``[sub_tile, sub_element]`` the tile's element indices
        (:func:`sub_tile_layout`).
    centres : ``[sub_tile, 3]`` [m] sub-tile centres in the tile's plane.
    """

    inbound: PathSet
    outbound: PathSet
    elements: npt.NDArray[np.int64]
    centres: FloatArray

    def snapshots(self, selection: slice) -> TileHops:
        """The hops to some of the UE snapshots (the BS → tile hop is shared)."""
        return dataclasses.replace(self, outbound=self.outbound.snapshots(selection))

    def channels(self, frequencies: npt.ArrayLike, num_elements: int
                 ) -> tuple[ComplexArray, ComplexArray]:
        """Per-element hop CFRs: ``bs_to_ris [bs, element, bs_ant, subcarrier]`` and
        ``ris_to_ue [snapshot, ue_ant, element, subcarrier]`` (``num_elements`` ≥ the
        tile's; the rest zero)."""
        from twin.channel import cfr

        inbound = cfr(self.inbound, frequencies)  # [sub, B, sub_el, Nt, K]
        outbound = cfr(self.outbound, frequencies)  # [T, sub, Nr, sub_el, K]
        _, B, _, Nt, K = inbound.shape
        T, Nr = outbound.shape[0], outbound.shape[2]
        order = self.elements.ravel()
        bs_to_ris = np.zeros((B, num_elements, Nt, K), dtype=np.complex128)
        bs_to_ris[:, order] = inbound.transpose(1, 0, 2, 3, 4).reshape(B, -1, Nt, K)
        ris_to_ue = np.zeros((T, Nr, num_elements, K), dtype=np.complex128)
        ris_to_ue[:, :, order] = outbound.transpose(0, 2, 1, 3, 4).reshape(T, Nr, -1, K)
        return bs_to_ris, ris_to_ue


def trace_tile_hops(
    scene: Any,
    tile: RisTile,
    base_stations: Sequence[Any],
    bs_array: Any,
    drive: Any,
    ue_array: Any,
    *,
    frequency_hz: float,
    tracing: Any,
    seed: int,
    sub_tiles: tuple[int, int] = (1, 1),
    exponent: float = PATTERN_EXPONENT,
) -> TileHops:
    """Both hops of one tile, ray traced through the scene with the direct channel's
    solver and settings: BS → tile (the tile a receiving array) and tile → UE (the tile a
    transmitting array), the element pattern ``sqrt(F)`` on every traced path.
    Multi-bounce hops are whatever ``tracing`` allows (``max_depth``).

    In the far field (``sub_tiles = (1, 1)``) the tile is one synthetic array: plane-wave
    element phases. ``near_field`` tiles are split into ``sub_tiles`` (up to one per
    element), each traced from its own centre, so the wavefront over the tile is the
    sub-tiles' spherical one and blockage can differ across the tile.
    """
    from twin.config import ArrayConfig
    from twin.drive import Drive
    from twin.trace import BaseStation, DriveTracer, concat_base_stations

    wavelength = SPEED_OF_LIGHT / frequency_hz
    elements, centres = sub_tile_layout(tile, sub_tiles)
    sub_array = ArrayConfig(rows=tile.rows // sub_tiles[0], cols=tile.cols // sub_tiles[1],
                            spacing_wavelengths=tile.spacing / wavelength)
    mounted = centres + MOUNT_OFFSET_M * tile.normal
    pose = np.asarray(tile.orientation, dtype=np.float64)
    inbound = DriveTracer(scene, base_stations, frequency_hz=frequency_hz, bs_array=bs_array,
                          ue_array=sub_array, tracing=tracing, seed=seed)
    count = len(mounted)
    at_tile = Drive(time=np.zeros(count), position=mounted, velocity=np.zeros((count, 3)),
                    orientation=np.broadcast_to(pose, (count, 3)).copy())
    paths_in = inbound.trace(at_tile)
    # The sub-tiles transmit; Sionna's memory grows with its sources: a few per trace.
    groups = range(0, count, SOURCES_PER_TRACE)
    paths_out = concat_base_stations([
        DriveTracer(scene, [BaseStation(f"{tile.name}-{j}", mounted[j], pose)
                            for j in range(lo, min(lo + SOURCES_PER_TRACE, count))],
                    frequency_hz=frequency_hz, bs_array=sub_array, ue_array=ue_array,
                    tracing=tracing, seed=seed).trace(drive)
        for lo in groups])
    return TileHops(inbound=_at_tile_plane(paths_in, paths_in.aoa, tile.normal, frequency_hz,
                                           exponent),
                    outbound=_at_tile_plane(paths_out, paths_out.aod, tile.normal,
                                            frequency_hz, exponent),
                    elements=elements, centres=centres)


#: Sub-tiles traced as transmitters per ``PathSolver`` call (near-field tiles): the solver's
#: memory grows with its sources (36 at once: 13.7 GB for the office walk).
SOURCES_PER_TRACE = 4

#: Bound on the complex entries of one gather in :func:`tile_pairs`.
_PAIR_CHUNK_ENTRIES = 1 << 23


@dataclass(frozen=True)
class TilePairs:
    """Every BS → sub-tile path paired with every sub-tile → UE path of the same sub-tile
    where both carry power: indices ``snapshot, bs, sub_tile, inbound, outbound [pair]``
    into :class:`TileHops` (sorted by snapshot, then BS) and the pair's ``gain [pair,
    ue_ant, bs_ant]``."""

    snapshot: npt.NDArray[np.int64]
    bs: npt.NDArray[np.int64]
    sub_tile: npt.NDArray[np.int64]
    inbound: npt.NDArray[np.int64]
    outbound: npt.NDArray[np.int64]
    gain: ComplexArray

    @property
    def power(self) -> FloatArray:
        """``[pair]`` mean ``|gain|²`` over the antenna pairs."""
        return np.mean(np.abs(self.gain) ** 2, axis=(1, 2))


def tile_pairs(hops: TileHops, weights: npt.ArrayLike) -> TilePairs:
    """The cascade of one tile split into path pairs: a pair's gain ``[ue_ant, bs_ant]`` is
    ``Σ_e out[.., e] w_e in[e, ..]`` over its sub-tile's elements, ``weights [element] =
    κ θ``, so that the pairs, each with the sum of its two delays, make up
    :func:`cascade_cfr`'s cascade exactly."""
    w = np.asarray(weights, dtype=np.complex128)[hops.elements]  # [sub, sub_el]
    pin, pout = hops.inbound, hops.outbound
    gain_in = pin.gain.astype(np.complex128) * w[:, None, None, :, None]  # [S, B, Pi, e, Nt]
    gain_out = pout.gain.astype(np.complex128)  # [T, S, Po, Nr, e]
    live_in = pin.valid & np.any(gain_in != 0, axis=(-2, -1))  # [S, B, Pi]
    live_out = pout.valid & np.any(gain_out != 0, axis=(-2, -1))  # [T, S, Po]
    pair = live_out[:, None, :, None, :] & live_in.transpose(1, 0, 2)[None, :, :, :, None]
    t, b, s, p, q = np.nonzero(pair)
    Nr, E, Nt = gain_out.shape[3], gain_in.shape[3], gain_in.shape[4]
    gain = np.empty((t.size, Nr, Nt), dtype=np.complex128)
    step = max(1, _PAIR_CHUNK_ENTRIES // (E * (Nr + Nt)))
    for lo in range(0, t.size, step):
        sl = slice(lo, lo + step)
        gain[sl] = gain_out[t[sl], s[sl], q[sl]] @ gain_in[s[sl], b[sl], p[sl]]
    return TilePairs(t, b, s, p, q, gain)


def pair_paths(hops: TileHops, pairs: TilePairs, keep: npt.ArrayLike, object_id: int,
               num_snapshots: int, num_bs: int) -> PathSet:
    """The kept pairs (``keep [pair]`` bool) as paths ``[snapshot, bs, path, ...]``.

    A pair's delay, Doppler and depth add up (depth ``d_in + 1 + d_out``); its AoD is the
    inbound path's, its AoA the outbound's; its vertices are the inbound path's, then the
    sub-tile centre (type ``RIS``, ``object_id``, primitive = the sub-tile index), then the
    outbound path's; it has no virtual anchor (NaN). ``object_names`` is left empty (the
    caller's :func:`twin.trace.merge_paths` names them).
    """
    from twin.trace import PAD

    sel = np.flatnonzero(np.asarray(keep, dtype=bool))
    t, b, s = pairs.snapshot[sel], pairs.bs[sel], pairs.sub_tile[sel]
    p, q = pairs.inbound[sel], pairs.outbound[sel]
    n = sel.size
    group = t * num_bs + b
    rank = np.arange(n) - np.searchsorted(group, group)  # pairs come sorted by (t, b)
    num_paths = int(rank.max(initial=-1)) + 1
    pin, pout = hops.inbound, hops.outbound
    d_in = pin.depth[s, b, p].astype(np.int64)
    depth = pin.max_depth + 1 + pout.max_depth
    rows = np.arange(n)

    def vertices(key: str, ris_value: Any) -> np.ndarray:
        a_in, a_out = getattr(pin, key)[s, b, p], getattr(pout, key)[t, s, q]
        out = np.full((n, depth, *a_in.shape[2:]), PAD[key], dtype=a_in.dtype)
        out[:, :pin.max_depth] = a_in
        out[rows, d_in] = ris_value
        for k in range(pout.max_depth):
            out[rows, d_in + 1 + k] = a_out[:, k]
        return out

    flat = {
        "valid": np.ones(n, dtype=bool),
        "tau": pin.tau[s, b, p] + pout.tau[t, s, q],
        "gain": pairs.gain[sel].astype(np.complex64),
        "aod": pin.aod[s, b, p],
        "aoa": pout.aoa[t, s, q],
        "doppler": pin.doppler[s, b, p] + pout.doppler[t, s, q],
        "depth": (d_in + 1 + pout.depth[t, s, q]).astype(np.int16),
        "interaction_types": vertices("interaction_types", InteractionType.RIS),
        "interaction_points": vertices("interaction_points", hops.centres[s]),
        "object_ids": vertices("object_ids", object_id),
        "primitive_ids": vertices("primitive_ids", s),
        "virtual_anchor": np.full((n, 3), np.nan),
    }
    out = {}
    for key, value in flat.items():
        full = np.full((num_snapshots, num_bs, num_paths, *value.shape[1:]), PAD[key],
                       dtype=value.dtype)
        full[t, b, rank] = value
        out[key] = full
    return PathSet(**out, object_names=())


def cascaded_paths(ris: RisData, hops: Sequence[TileHops], direct: PathSet,
                   dynamic_range_db: float | None) -> PathSet:
    """The direct paths and the cascaded pairs of every tile (:func:`tile_pairs`) as one
    :class:`~twin.paths.PathSet`, ``object_names`` the direct set's then the tiles' (a
    tile vertex's object id).

    Pairs more than ``dynamic_range_db`` below the strongest path (direct or cascaded) of
    their (snapshot, BS) are left out (the CFR keeps them; ``None`` keeps every pair): a
    tile multiplies the paths of its two hops, and sub-tiles split each into many.
    """
    from twin.trace import merge_paths

    T, B = direct.valid.shape[:2]
    pairs = [tile_pairs(h, a * p) for h, a, p in zip(hops, ris.amplitude, ris.profile,
                                                     strict=True)]
    strongest = np.where(direct.valid, np.mean(np.abs(direct.gain) ** 2, axis=(3, 4)),
                         0.0).max(axis=2, initial=0.0)
    for pr in pairs:
        np.maximum.at(strongest, (pr.snapshot, pr.bs), pr.power)
    names = (*direct.object_names, *ris.name)
    cascaded = []
    for r, (h, pr) in enumerate(zip(hops, pairs, strict=True)):
        keep = np.ones(pr.power.shape, dtype=bool) if dynamic_range_db is None else \
            pr.power >= strongest[pr.snapshot, pr.bs] * 10 ** (-dynamic_range_db / 10)
        cascaded.append(pair_paths(h, pr, keep, len(direct.object_names) + r, T, B))
    return merge_paths([direct, *cascaded], names)


def profile_path(spec: Any, base_dir: Path) -> Path:
    """The ``.npy`` a tile's ``profile: {kind: file}`` names, relative paths resolved."""
    path = Path(spec.profile.file).expanduser()
    return path if path.is_absolute() else base_dir / path


def build_ris(config: Any, base_dir: Path, scene: Any, base_stations: Sequence[Any],
              drive: Any, frequencies: npt.ArrayLike) -> tuple[RisData, list[TileHops]]:
    """Every tile of a run config: poses checked, hops traced, profiles resolved.

    Returns the :class:`RisData` (with an empty ``cfr_direct``, which the caller fills in)
    and each tile's :class:`TileHops` (for :func:`cascaded_paths`). Run before the direct
    channel's tracer is made (the hop tracers reconfigure the scene)."""
    frequency = config.radio.frequency_hz
    wavelength = SPEED_OF_LIGHT / frequency
    bs_names = [bs.name for bs in base_stations]
    tiles, profiles = [], []
    # Every tile's pose and profile (files included) is checked before any hop is traced.
    for spec in config.ris:
        tile = RisTile.checked(spec.name, spec.position, spec.orientation,
                               spec.elements, spec.spacing_wavelengths, wavelength,
                               spec.amplitude)
        inside = scene.objects_containing(np.asarray([tile.position]))[0]
        if inside:
            warnings.warn(f"ris '{tile.name}': its centre lies inside the closed object "
                          f"'{inside}'", TwinWarning, stacklevel=2)
        _warn_near_field(tile, spec.traced_sub_tiles, wavelength, np.concatenate(
            [np.stack([bs.position for bs in base_stations]), drive.position]))
        source = base_stations[bs_names.index(spec.profile.source or bs_names[0])].position
        kind = spec.profile.kind
        if kind == "uniform":
            profile = uniform_profile(tile)
        elif kind == "focus":
            profile = focus_profile(tile, source, spec.profile.target, wavelength)
        elif kind == "reflect":
            from estimators.arrays import unit_direction

            direction = unit_direction(spec.profile.azimuth, spec.profile.zenith)
            profile = reflect_profile(tile, source, direction, wavelength)
        else:
            profile = file_profile(tile, profile_path(spec, base_dir))
        tiles.append(tile)
        profiles.append(profile)
    hops = [trace_tile_hops(
        scene, tile, base_stations, config.base_stations[0].array, drive, config.ue.array,
        frequency_hz=frequency, tracing=config.tracing, seed=config.seed,
        sub_tiles=spec.traced_sub_tiles) for tile, spec in zip(tiles, config.ris, strict=True)]
    size = max(t.num_elements for t in tiles)
    channels = [h.channels(frequencies, size) for h in hops]

    def pad(a: np.ndarray, axis: int, fill: complex | float = 0) -> np.ndarray:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, size - a.shape[axis])
        return np.pad(a, widths, constant_values=fill)

    ris = RisData(
        name=tuple(t.name for t in tiles),
        position=np.array([t.position for t in tiles]),
        orientation=np.array([t.orientation for t in tiles]),
        element_positions=np.stack([pad(t.element_positions(), 0, np.nan) for t in tiles]),
        element_grid=np.array([[t.rows, t.cols] for t in tiles], dtype=np.int64),
        profile=np.stack([pad(p, 0) for p in profiles]),
        amplitude=np.array([reradiation_amplitude(t, wavelength) for t in tiles]),
        bs_to_ris=np.stack([c[0] for c in channels], axis=1).astype(np.complex64),
        ris_to_ue=np.stack([c[1] for c in channels], axis=1).astype(np.complex64),
        cfr_direct=np.zeros((0,), dtype=np.complex64))
    return ris, hops


def recompute_cfr(ris: RisData, profile: npt.ArrayLike) -> ComplexArray:
    """A run's total CFR for another phase configuration ``profile [ris, element]``
    (unit modulus; e.g. an optimiser's), without re-tracing."""
    return cascade_cfr(ris.cfr_direct, ris.bs_to_ris, ris.ris_to_ue, profile, ris.amplitude)


def cascade_cfr(cfr_direct: npt.ArrayLike, bs_to_ris: npt.ArrayLike,
                ris_to_ue: npt.ArrayLike, profile: npt.ArrayLike,
                amplitude: npt.ArrayLike) -> ComplexArray:
    """The total CFR for one phase configuration, without re-tracing:

    ``H = H_direct + Σ_r κ_r Σ_e θ_{r,e} · ris_to_ue[..., r, :, e, k] ·
    bs_to_ris[b, r, e, :, k]``.

    Parameters
    ----------
    cfr_direct : ``[snapshot, bs, ue_ant, bs_ant, subcarrier]``.
    bs_to_ris : ``[bs, ris, element, bs_ant, subcarrier]`` (the element pattern in it).
    ris_to_ue : ``[snapshot, ris, ue_ant, element, subcarrier]`` (likewise).
    profile : ``[ris, element]`` unit-modulus ``θ``.
    amplitude : ``[ris]`` ``κ`` (:func:`reradiation_amplitude`).

    Returns
    -------
    ``[snapshot, bs, ue_ant, bs_ant, subcarrier]`` complex128: one batched matrix
    product over (tile, element) per subcarrier, no Python loop over elements.
    """
    theta = np.asarray(profile, dtype=np.complex128) * np.asarray(
        amplitude, dtype=np.float64)[:, None]
    outbound = np.asarray(ris_to_ue, dtype=np.complex128)
    inbound = np.asarray(bs_to_ris, dtype=np.complex128) * theta[None, :, :, None, None]
    T, R, U, E, K = outbound.shape
    B, S = inbound.shape[0], inbound.shape[3]
    # One batched matrix product per subcarrier: [k, (t u), (r e)] @ [k, (r e), (b s)].
    left = outbound.transpose(4, 0, 2, 1, 3).reshape(K, T * U, R * E)
    right = inbound.transpose(4, 1, 2, 0, 3).reshape(K, R * E, B * S)
    cascade = (left @ right).reshape(K, T, U, B, S).transpose(1, 3, 2, 4, 0)
    return np.asarray(cfr_direct, dtype=np.complex128) + cascade
