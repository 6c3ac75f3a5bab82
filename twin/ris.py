"""RIS tiles: geometry, phase profiles, the per-element reradiation model, both hops ray
traced, and the cascade of the two (docs/RIS.md; RIS paths in ``/paths`` and
``near_field`` tracing are not in yet).

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
from twin.errors import TwinInputError
from twin.runfile import RisData
from twin.scene import TwinWarning

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

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
    phases [rad]; a file of another length is an error naming both lengths."""
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TwinInputError(f"ris '{tile.name}': profile file {path}: {exc}") from None
    values = np.asarray(values).ravel()
    if values.size != tile.num_elements:
        raise TwinInputError(f"ris '{tile.name}': profile file {path} has {values.size} "
                             f"values, the tile has {tile.num_elements} elements")
    if np.iscomplexobj(values):
        magnitude = np.abs(values)
        return np.where(magnitude > 0, values / np.where(magnitude > 0, magnitude, 1), 1.0)
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
MOUNT_OFFSET_M = 5e-3


def _weighted(pathset: Any, directions: FloatArray, normal: FloatArray,
              exponent: float) -> Any:
    """``pathset`` with each path's gain times ``sqrt(F)`` of its direction at the tile
    (``directions [..., path, 2]`` azimuth, zenith)."""
    from estimators.arrays import unit_direction

    safe = np.where(np.isfinite(directions), directions, 0.0)
    cos = unit_direction(safe[..., 0], safe[..., 1]) @ normal
    weight = np.sqrt(element_pattern(cos, exponent))
    return dataclasses.replace(pathset, gain=(pathset.gain * weight[..., None, None]
                                              ).astype(pathset.gain.dtype))


def trace_tile_hops(
    scene: Any,
    tile: RisTile,
    base_stations: Sequence[Any],
    bs_array: Any,
    drive: Any,
    ue_array: Any,
    *,
    frequency_hz: float,
    frequencies: npt.ArrayLike,
    tracing: Any,
    seed: int,
    exponent: float = PATTERN_EXPONENT,
) -> tuple[ComplexArray, ComplexArray]:
    """Both hops of one tile, ray traced through the scene with the direct channel's
    solver and settings: BS → tile (the tile a receiving array) and tile → UE (the tile a
    transmitting array), with synthetic-array (far-field) element phases and the element
    pattern ``sqrt(F)`` on every traced path. Multi-bounce hops are whatever ``tracing``
    allows (``max_depth``).

    Returns ``bs_to_ris [bs, 1, element, bs_ant, subcarrier]`` and ``ris_to_ue [snapshot,
    1, ue_ant, element, subcarrier]`` (:func:`cascade_cfr`'s layouts).
    """
    from twin.channel import cfr
    from twin.config import ArrayConfig
    from twin.drive import Drive
    from twin.trace import BaseStation, DriveTracer

    wavelength = SPEED_OF_LIGHT / frequency_hz
    elements = ArrayConfig(rows=tile.rows, cols=tile.cols,
                           spacing_wavelengths=tile.spacing / wavelength)
    centre = np.asarray(tile.position) + MOUNT_OFFSET_M * tile.normal
    pose = np.asarray(tile.orientation, dtype=np.float64)
    inbound = DriveTracer(scene, base_stations, frequency_hz=frequency_hz, bs_array=bs_array,
                          ue_array=elements, tracing=tracing, seed=seed)
    at_tile = Drive(time=np.zeros(1), position=centre[None], velocity=np.zeros((1, 3)),
                    orientation=pose[None])
    paths_in = inbound.trace(at_tile)
    hop_in = _weighted(paths_in, paths_in.aoa, tile.normal, exponent)
    bs_to_ris = cfr(hop_in, frequencies)[0][:, None]  # [bs, 1, element, bs_ant, k]
    outbound = DriveTracer(scene, [BaseStation(tile.name, centre, pose)],
                           frequency_hz=frequency_hz, bs_array=elements, ue_array=ue_array,
                           tracing=tracing, seed=seed)
    paths_out = outbound.trace(drive)
    hop_out = _weighted(paths_out, paths_out.aod, tile.normal, exponent)
    ris_to_ue = cfr(hop_out, frequencies)  # [snapshot, 1, ue_ant, element, k]
    return bs_to_ris.astype(np.complex128), ris_to_ue.astype(np.complex128)


def build_ris(config: Any, base_dir: Path, scene: Any, base_stations: Sequence[Any],
              drive: Any, frequencies: npt.ArrayLike) -> RisData:
    """Every tile of a run config: poses checked, hops traced, profiles resolved; the
    returned :class:`RisData` has an empty ``cfr_direct`` (the caller fills it in). Run
    before the direct channel's tracer is made (the hop tracers reconfigure the scene)."""
    frequency = config.radio.frequency_hz
    wavelength = SPEED_OF_LIGHT / frequency
    bs_names = [bs.name for bs in base_stations]
    tiles, inbound, outbound, profiles = [], [], [], []
    for spec in config.ris:
        tile = RisTile.checked(spec.name, spec.position, spec.orientation,
                               spec.elements, spec.spacing_wavelengths, wavelength,
                               spec.amplitude)
        inside = scene.objects_containing(np.asarray([tile.position]))[0]
        if inside:
            warnings.warn(f"ris '{tile.name}': its centre lies inside the closed object "
                          f"'{inside}'", TwinWarning, stacklevel=2)
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
            path = Path(spec.profile.file)
            profile = file_profile(tile, path if path.is_absolute() else base_dir / path)
        hop_in, hop_out = trace_tile_hops(
            scene, tile, base_stations, config.base_stations[0].array, drive, config.ue.array,
            frequency_hz=frequency, frequencies=frequencies, tracing=config.tracing,
            seed=config.seed)
        tiles.append(tile)
        inbound.append(hop_in[:, 0])
        outbound.append(hop_out[:, 0])
        profiles.append(profile)
    size = max(t.num_elements for t in tiles)

    def pad(a: np.ndarray, axis: int, fill: complex | float = 0) -> np.ndarray:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, size - a.shape[axis])
        return np.pad(a, widths, constant_values=fill)

    return RisData(
        name=tuple(t.name for t in tiles),
        position=np.array([t.position for t in tiles]),
        orientation=np.array([t.orientation for t in tiles]),
        element_positions=np.stack([pad(t.element_positions(), 0, np.nan) for t in tiles]),
        profile=np.stack([pad(p, 0) for p in profiles]),
        amplitude=np.array([reradiation_amplitude(t, wavelength) for t in tiles]),
        bs_to_ris=np.stack([pad(h, 1) for h in inbound], axis=1).astype(np.complex64),
        ris_to_ue=np.stack([pad(h, 2) for h in outbound], axis=1).astype(np.complex64),
        cfr_direct=np.zeros((0,), dtype=np.complex64))


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
