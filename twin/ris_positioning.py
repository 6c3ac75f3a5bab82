"""What RIS positioning (Sang et al., arXiv 2212.00241; ``estimators.ris_cd``) needs of a
run: its radio map through the tiles' configured profiles, the fixed wideband MRT
precoder of §II-A, and the fingerprint matrices for designing one tile's phases group by
group. :func:`twin.sounding.observation_from_run` attaches the radio map and the
precoder when an estimator's sounding asks for them (``radio_map``, ``precoder="mrt"``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from estimators.observe import mrt_beam
from estimators.types import FingerprintMap
from twin.ris import cascade_cfr, element_groups
from twin.runfile import RunData


def fingerprint_map(run: RunData) -> FingerprintMap | None:
    """The run's radio map (``/fingerprints``) for its tiles' configured profiles: each
    block's direct channel plus the cascade through every tile; ``None`` without one."""
    fp = run.fingerprints
    if fp is None:
        return None
    cfr = np.asarray(fp.cfr_direct, dtype=np.complex128)
    if run.ris is not None and fp.ris_to_ue is not None:
        cfr = cascade_cfr(cfr, run.ris.bs_to_ris, fp.ris_to_ue, run.ris.profile,
                          run.ris.amplitude)
    return FingerprintMap(block_positions=fp.block_positions, cfr=cfr,
                          block_size=fp.block_size)


def design_matrices(run: RunData, precoder: npt.ArrayLike, *, groups: tuple[int, int],
                    tile: int = 0, bs: int = 0
                    ) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.int64]]:
    """Sang et al.'s fingerprint matrices (eq. 3) of a run's radio map, for designing one
    tile's phases group by group (:mod:`estimators.ris_cd.design`).

    The tile's elements are split into ``groups = (rows, cols)`` equal rectangles
    (:func:`twin.ris.element_groups`); each group keeps its configured phases and gets one
    extra common phase ``φ_g``, so the tile's profile is ``θ_e = θ⁰_e φ_{g(e)}``
    (:func:`grouped_profile`). With the fixed precoder ``f``, block ``i``'s received CFR
    is ``h_i = A_i [φ; 1]``.

    Parameters
    ----------
    run : a run with tiles and a radio map (``fingerprints:``), single-antenna UE.
    precoder : ``[bs_ant]`` the fixed precoder ``f`` (e.g. :func:`mrt_precoder`).
    groups, tile, bs : the grouping, which tile and which BS.

    Returns
    -------
    ``A [block, subcarrier, group + 1]`` complex128: column ``g`` is group ``g``'s
    cascade ``κ Σ_{e∈g} θ⁰_e r_e(x_i, k) (G_k f)_e``, the last column everything else (the
    direct channel and the other tiles at their configured profiles); and the group of
    every element ``[element]`` (-1 for the zero padding of smaller tiles).

    References
    ----------
    Sang et al., arXiv 2212.00241, eqs. (1)-(3).
    """
    fp, ris = run.fingerprints, run.ris
    if fp is None or fp.ris_to_ue is None or ris is None:
        raise ValueError("design_matrices: the run has no radio map through tiles")
    if fp.ris_to_ue.shape[2] != 1:
        raise ValueError("design_matrices: expected a single-antenna UE (Sang et al.)")
    f = np.asarray(precoder, dtype=np.complex128).reshape(-1)
    group = _tile_groups(run, tile, groups)
    base = ris.profile[tile] * ris.amplitude[tile]
    # [block, element, subcarrier]: the tile's per-element cascade after the precoder.
    inbound = np.einsum("esk,s->ek", ris.bs_to_ris[bs, tile], f)
    per_element = fp.ris_to_ue[:, tile, 0] * (base[:, None] * inbound)[None]
    columns = np.stack([per_element[:, group == g].sum(axis=1)
                        for g in range(int(group.max()) + 1)], axis=-1)
    others = np.where(np.arange(ris.profile.shape[0]) == tile, 0, ris.profile)
    rest = cascade_cfr(fp.cfr_direct, ris.bs_to_ris, fp.ris_to_ue, others, ris.amplitude)
    direct = np.einsum("isk,s->ik", rest[:, bs, 0], f)
    return np.concatenate([columns, direct[..., None]], axis=-1), group


def grouped_profile(run: RunData, phases: npt.ArrayLike, *, groups: tuple[int, int],
                    tile: int = 0) -> npt.NDArray[np.complex128]:
    """``[ris, element]`` the run's profiles with ``tile``'s group ``g`` turned by the
    unit-modulus ``phases[g]`` (:func:`design_matrices`'s ``φ``)."""
    if run.ris is None:
        raise ValueError("grouped_profile: the run has no tiles")
    group = _tile_groups(run, tile, groups)
    phi = np.asarray(phases, dtype=np.complex128).reshape(-1)
    if phi.size != int(group.max()) + 1:
        raise ValueError(f"grouped_profile: expected {int(group.max()) + 1} phases, "
                         f"got {phi.size}")
    profile = np.array(run.ris.profile, dtype=np.complex128)
    profile[tile] *= np.where(group >= 0, phi[np.maximum(group, 0)], 1.0)
    return profile


def _tile_groups(run: RunData, tile: int, groups: tuple[int, int]) -> npt.NDArray[np.int64]:
    """``[element]`` (padded to the run's largest tile, -1 there) groups of one tile."""
    assert run.ris is not None
    rows, cols = (int(n) for n in run.ris.element_grid[tile])
    group = np.full(run.ris.profile.shape[1], -1, dtype=np.int64)
    group[:rows * cols] = element_groups(rows, cols, groups)
    return group


def mrt_precoder(run: RunData, *, bs: int = 0, towards: Literal["tile", "block"] = "tile"
                 ) -> npt.NDArray[np.complex128]:
    """``[bs_ant]`` the fixed unit-norm wideband MRT precoder (:func:`estimators.observe.mrt_beam`)
    of Sang et al.'s §II-A: towards the run's first RIS tile (the BS → tile hop, its
    elements as receive antennas), or, in a run without tiles, towards its radio map's block
    nearest the area's centre.

    In the paper the area's direct link is blocked, so the BS serves it through the RIS. A
    traced building is seldom so clean: in the bundled office the hidden room's direct
    channel leaks through a plasterboard wall, and an MRT towards the room's centre beams
    through that wall, ~37 dB above the tile's cascade (docs/estimators/ris_cd.md);
    ``towards="block"`` picks that beam even with tiles.
    """
    if run.ris is not None and towards == "tile":
        return mrt_beam(run.ris.bs_to_ris[bs, 0])
    fingerprints = fingerprint_map(run)
    if fingerprints is None:
        raise ValueError("an MRT precoder needs a RIS tile or a radio map")
    blocks = fingerprints.block_positions
    centre = 0.5 * (blocks.min(axis=0) + blocks.max(axis=0))
    nearest = int(np.argmin(np.sum((blocks - centre) ** 2, axis=1)))
    return mrt_beam(fingerprints.cfr[nearest, bs])


__all__ = ["design_matrices", "fingerprint_map", "grouped_profile", "mrt_precoder"]
