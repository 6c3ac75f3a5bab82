"""Statistical 3GPP TR 38.901 UMa narrowband channels (the dataset engine's statistical mode).

The DAUN paper setting: ``M`` base stations, each with a horizontal ``1 x N`` ULA, and a
single-antenna user; the narrowband uplink channel at the carrier from the user's
isotropic antenna to every BS element, with path loss and shadow fading included.

How the channel is built
------------------------
Sionna 2.2's PHY package (:mod:`sionna.phy.channel.tr38901`, PyTorch) draws everything
random of the UMa model, link by link (one Sionna batch example per sample, one UT, all
BSs, so samples are independent drops):

* the large-scale parameters and path loss: :class:`~sionna.phy.channel.tr38901.UMaScenario`
  and :class:`~sionna.phy.channel.tr38901.LSPGenerator` (steps 1-4 of §7.5, §7.4.1; all
  UEs outdoor, so no O2I loss);
* the clusters and rays: :class:`~sionna.phy.channel.tr38901.RaysGenerator` (steps 5-9:
  cluster delays, powers, per-ray azimuth/zenith at the BS, random coupling).

The narrowband channel is then assembled here (step 11, eqs. 7.5-22 and 7.5-29/30) with
the project's own array response :func:`estimators.arrays.steering_vector`, instead of
Sionna's :class:`~sionna.phy.channel.tr38901.ChannelCoefficientsGenerator`, so that the
array convention is the project's by construction::

    h_n = 10^(-PL/20) sqrt(SF) [ sqrt(1/(K+1)) Σ_{c,m} sqrt(P_c/20) exp(j Φ_cm) a_n(φ_cm, θ_cm)
                                + sqrt(K/(K+1)) exp(-j 2π d_3D/λ) a_n(φ_LOS, θ_LOS) ]

(``K = 0`` and no LOS term on NLOS links), where ``a_n(φ, θ) = exp(+j 2π/λ u(φ, θ)·p_n)``
is the response of element ``n`` at world position ``p_n = R(yaw) p_n^local`` with the
local positions of :func:`estimators.arrays.planar_array_positions` ``(1, N, λ/2, λ/2)``
(elements along local y, broadside local +x). Elements are isotropic and vertically
polarized at both ends and the BS is rotated in yaw only, so the field term of eq.
7.5-22 reduces to ``exp(j Φ^θθ)``: XPR and the other three initial phases drop out.
Narrowband at the carrier, the cluster delays (and the sub-cluster delay splits of the
two strongest clusters) only set phases, which the uniform initial phases ``Φ`` already
randomize, so the channel is the plain sum over all rays. The uplink channel equals the
downlink one by reciprocity: Sionna's ray angles at the BS (its "departure" angles) are
the uplink arrival angles.

This was checked against Sionna's own :class:`ChannelCoefficientsGenerator` fed with the
same rays and phases and a ``1 x N`` omni :class:`~sionna.phy.channel.tr38901.PanelArray`
(same element order: column ``j`` at local ``y = (j - (N-1)/2) λ/2``), summed over paths:
they agree to float64 round-off (``tests/twin/test_uma.py``).

Randomness
----------
Every draw comes from a local ``torch.Generator`` seeded from ``seed`` (one per internal
chunk of samples, through :class:`numpy.random.SeedSequence`): Sionna's objects are
subclassed so that their ``torch_rng`` is that generator, and the LOS state of
``los="auto"`` is drawn here (eq. of Table 7.4.2-1) rather than by Sionna's
``sample_bernoulli``, which would use Sionna's global generator. Neither Sionna's nor
torch's global random state is read or changed: the same inputs and seed give
bit-identical arrays. Sionna runs on the CPU in float64.

Parameter tables: Sionna's ``"16.1"`` tables (:data:`SPEC_VERSION`), the edition nearest the
cited v17 (UMa LSP values taken as unchanged from v16.1 to v17, not checked against the
v17 text here). Sionna's default ``"19.2"`` tables carry a later UMa update (other delay
and angle spread means, e.g. ``lgDS`` and ``lgASD``); path loss and LOS probability are the
same in both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from estimators.arrays import (
    SPEED_OF_LIGHT,
    planar_array_positions,
    rotation_matrix,
    steering_vector,
    wrap_angle,
)
from estimators.typing import FloatArray
from twin.errors import TwinInputError

__all__ = ["SPEC_VERSION", "UmaChannels", "UmaInputError", "los_probability", "uma_channels"]

SPEC_VERSION = "16.1"
"""Sionna's TR 38.901 parameter-table version used for UMa."""

LosMode = Literal["auto", "los", "nlos"]

_CHUNK = 1000
"""Samples per Sionna batch (bounds memory; fixed, so results do not depend on it)."""

_RAYS_PER_CLUSTER = 20
"""UMa rays per cluster (TR 38.901 Table 7.5-6)."""



class UmaInputError(TwinInputError, ValueError):
    """A bad input of :func:`uma_channels` (a :class:`ValueError` the CLI prints as one line)."""


@dataclass(frozen=True)
class UmaChannels:
    """Narrowband UMa uplink channels.

    Attributes
    ----------
    h : ``[sample, bs, bs_ant]`` complex128, channel from the UE's isotropic antenna to
        each BS element at the carrier, absolute gain in linear amplitude (path loss and
        shadow fading included): received power = transmit power ``* |h|**2``.
    los : ``[sample, bs]`` bool, LOS state of the link.
    los_aoa : ``[sample, bs]`` float64 [rad], geometric azimuth of the UE seen from the
        BS in the BS's local frame (0 = broadside, local +x; positive toward local +y,
        the direction of increasing element index), wrapped to ``(-π, π]``.
    path_loss_db : ``[sample, bs]`` float64 [dB], TR 38.901 UMa path loss (Table 7.4.1-1,
        LOS or NLOS by ``los``), without shadow fading.
    shadow_fading_db : ``[sample, bs]`` float64 [dB], the shadow fading drawn with the
        link's large-scale parameters (``h`` includes ``-path_loss_db + shadow_fading_db``).
    """

    h: npt.NDArray[np.complex128]
    los: npt.NDArray[np.bool_]
    los_aoa: FloatArray
    path_loss_db: FloatArray
    shadow_fading_db: FloatArray


def uma_channels(
    *,
    ue_position: npt.ArrayLike,
    bs_position: npt.ArrayLike,
    bs_yaw: npt.ArrayLike,
    num_bs_antennas: int,
    carrier_frequency: float,
    seed: int,
    los: str = "auto",
) -> UmaChannels:
    """Draw 3GPP TR 38.901 UMa narrowband uplink channels for UE positions.

    Each sample is an independent drop: its links to all BSs get their own LOS states,
    large-scale parameters and rays (co-located BSs, i.e. sectors of one site, share
    them as in TR 38.901).

    Parameters
    ----------
    ue_position : ``[sample, 3]`` [m], UE positions (outdoor, heights 1.5-22.5 m).
    bs_position : ``[bs, 3]`` [m], BS array positions, each higher than every UE.
        Horizontal UE-BS distances must lie in [10 m, 5 km] (validity of Table 7.4.1-1).
    bs_yaw : ``[bs]`` [rad], yaw of each BS: the ULA's broadside azimuth (pitch = roll = 0).
    num_bs_antennas : N, elements of each BS's horizontal ``1 x N`` ULA, λ/2 spacing.
    carrier_frequency : [Hz], 0.5-100 GHz.
    seed : non-negative integer; the same inputs and seed give bit-identical outputs.
    los : ``"auto"`` (LOS drawn with the UMa LOS probability, Table 7.4.2-1), ``"los"``
        or ``"nlos"`` (all links forced).

    Returns
    -------
    UmaChannels
        ``h [sample, bs, bs_ant]`` complex128 and the per-link ``los``, ``los_aoa`` [rad],
        ``path_loss_db`` and ``shadow_fading_db`` ``[sample, bs]``.

    Raises
    ------
    UmaInputError
        (a :class:`ValueError`) for a bad shape or value, naming the input.

    Notes
    -----
    Runtime (2-core CPU shared with another job): about 7-8 s per 1000 samples x 4 BSs x
    50 antennas, 70 s for 10 000 (peak RSS 0.85 GB); roughly 55 % Sionna's LSP and ray
    generation, 40 % the steering vectors. Samples are processed in chunks of 1000.

    References
    ----------
    3GPP TR 38.901 v17.0.0, "Study on channel model for frequencies from 0.5 to 100 GHz":
    §7.4.1 (path loss, Table 7.4.1-1), §7.4.2 (LOS probability, Table 7.4.2-1), §7.5
    (fast fading model, steps 1-11, Table 7.5-6).
    J. Hoydis et al., "Sionna: An Open-Source Library for Next-Generation Physical Layer
    Research", 2022; Sionna 2.2 ``sionna.phy.channel.tr38901`` (UMa, LSPGenerator,
    RaysGenerator).
    """
    ue, bs, yaw, n_ant, fc, seed_, los_mode = _validate(
        ue_position, bs_position, bs_yaw, num_bs_antennas, carrier_frequency, seed, los
    )
    wavelength = SPEED_OF_LIGHT / fc
    local = planar_array_positions(
        1, n_ant, vertical_spacing_m=wavelength / 2, horizontal_spacing_m=wavelength / 2
    )
    orientation = np.stack([yaw, np.zeros_like(yaw), np.zeros_like(yaw)], axis=-1)
    element_positions = np.einsum("bij,aj->bai", rotation_matrix(orientation), local)

    num_samples, num_bs = ue.shape[0], bs.shape[0]
    delta = ue[:, None, :] - bs[None, :, :]  # BS -> UE, [sample, bs, 3]
    los_azimuth = np.arctan2(delta[..., 1], delta[..., 0])
    distance_2d = np.hypot(delta[..., 0], delta[..., 1])
    los_zenith = np.arctan2(distance_2d, delta[..., 2])
    distance_3d = np.linalg.norm(delta, axis=-1)

    h = np.empty((num_samples, num_bs, n_ant), dtype=np.complex128)
    los_state = np.empty((num_samples, num_bs), dtype=bool)
    path_loss_db = np.empty((num_samples, num_bs))
    shadow_fading_db = np.empty((num_samples, num_bs))
    for k, start in enumerate(range(0, num_samples, _CHUNK)):
        sl = slice(start, min(start + _CHUNK, num_samples))
        chunk_seed = int(
            np.random.SeedSequence(seed_, spawn_key=(k,)).generate_state(1, dtype=np.uint64)[0]
        )
        draw = _draw_links(ue[sl], bs, yaw, fc, los_mode, chunk_seed, distance_2d=distance_2d[sl])
        amplitude = 10.0 ** (-draw["path_loss_db"] / 20.0) * 10.0 ** (draw["sf_db"] / 20.0)
        h[sl] = _narrowband_channel(
            element_positions=element_positions,
            wavelength=wavelength,
            ray_azimuth=draw["ray_azimuth"],
            ray_zenith=draw["ray_zenith"],
            cluster_power=draw["cluster_power"],
            ray_phase=draw["ray_phase"],
            los=draw["los"],
            k_factor=draw["k_factor"],
            los_azimuth=los_azimuth[sl],
            los_zenith=los_zenith[sl],
            distance_3d=distance_3d[sl],
            amplitude=amplitude,
        )
        los_state[sl] = draw["los"]
        path_loss_db[sl] = draw["path_loss_db"]
        shadow_fading_db[sl] = draw["sf_db"]

    los_aoa = wrap_angle(los_azimuth - yaw[None, :])
    return UmaChannels(
        h=h,
        los=los_state,
        los_aoa=los_aoa,
        path_loss_db=path_loss_db,
        shadow_fading_db=shadow_fading_db,
    )


def los_probability(distance_2d: npt.ArrayLike, ue_height: npt.ArrayLike) -> FloatArray:
    """UMa LOS probability (TR 38.901 Table 7.4.2-1), outdoor UEs.

    Parameters
    ----------
    distance_2d : ``[...]`` [m], horizontal BS-UE distance.
    ue_height : ``[...]`` [m], UE height (broadcast against ``distance_2d``).

    Returns
    -------
    ``[...]`` float64 in [0, 1].
    """
    d = np.asarray(distance_2d, dtype=np.float64)
    h_ut = np.asarray(ue_height, dtype=np.float64)
    c = np.where(h_ut <= 13.0, 0.0, np.abs((h_ut - 13.0) / 10.0) ** 1.5)
    d_safe = np.maximum(d, 18.0)
    p = (18.0 / d_safe + np.exp(-d_safe / 63.0) * (1.0 - 18.0 / d_safe)) * (
        1.0 + c * 5.0 / 4.0 * (d_safe / 100.0) ** 3 * np.exp(-d_safe / 150.0)
    )
    return np.asarray(np.where(d <= 18.0, 1.0, np.clip(p, 0.0, 1.0)), dtype=np.float64)


def _narrowband_channel(
    *,
    element_positions: FloatArray,
    wavelength: float,
    ray_azimuth: FloatArray,
    ray_zenith: FloatArray,
    cluster_power: FloatArray,
    ray_phase: FloatArray,
    los: npt.NDArray[np.bool_],
    k_factor: FloatArray,
    los_azimuth: FloatArray,
    los_zenith: FloatArray,
    distance_3d: FloatArray,
    amplitude: FloatArray,
) -> npt.NDArray[np.complex128]:
    """Narrowband channel at the carrier from TR 38.901 clusters and rays (step 11).

    Parameters
    ----------
    element_positions : ``[bs, bs_ant, 3]`` [m], world-rotated element positions.
    wavelength : [m].
    ray_azimuth, ray_zenith : ``[sample, bs, cluster, ray]`` [rad], ray directions at
        the BS (world frame, pointing from the BS toward the scatterer).
    cluster_power : ``[sample, bs, cluster]``, normalized cluster powers (sum 1, NLOS part).
    ray_phase : ``[sample, bs, cluster, ray]`` [rad], initial phases ``Φ^θθ``.
    los : ``[sample, bs]`` bool.
    k_factor : ``[sample, bs]`` linear Ricean K-factor (used on LOS links only).
    los_azimuth, los_zenith : ``[sample, bs]`` [rad], BS -> UE direction (world frame).
    distance_3d : ``[sample, bs]`` [m].
    amplitude : ``[sample, bs]``, ``10^(-PL/20) sqrt(SF)``.

    Returns
    -------
    h : ``[sample, bs, bs_ant]`` complex128.
    """
    num_samples, num_bs, num_clusters, num_rays = ray_azimuth.shape
    num_ant = element_positions.shape[1]
    h = np.zeros((num_samples, num_bs, num_ant), dtype=np.complex128)
    k = np.where(los, k_factor, 0.0)
    for b in range(num_bs):
        positions = element_positions[b]
        diffuse = np.zeros((num_samples, num_ant), dtype=np.complex128)
        for c in range(num_clusters):
            power = cluster_power[:, b, c]
            if not np.any(power > 0.0):
                continue
            gain = np.sqrt(power / num_rays)[:, None] * np.exp(1j * ray_phase[:, b, c, :])
            a = steering_vector(
                positions, ray_azimuth[:, b, c, :], ray_zenith[:, b, c, :], wavelength
            )
            diffuse += np.matmul(gain[:, None, :], a)[:, 0, :]
        a_los = steering_vector(positions, los_azimuth[:, b], los_zenith[:, b], wavelength)
        los_gain = np.sqrt(k[:, b] / (k[:, b] + 1.0)) * np.exp(
            -2j * np.pi * distance_3d[:, b] / wavelength
        )
        h[:, b, :] = amplitude[:, b, None] * (
            np.sqrt(1.0 / (k[:, b] + 1.0))[:, None] * diffuse + los_gain[:, None] * a_los
        )
    return h


@functools.cache
def _sionna_classes() -> dict[str, Any]:
    """Sionna's UMa classes with ``torch_rng`` bound to a per-object local generator.

    Imported on first use (Sionna and torch are slow to import). The scenario class's
    name must start with ``"UMa"``: Sionna infers the scenario kind from it.
    """
    from sionna.phy.channel.tr38901 import (
        LSPGenerator,
        PanelArray,
        RaysGenerator,
        UMaScenario,
    )

    class _LocalRng:
        _local_rng: Any

        @property
        def torch_rng(self) -> Any:
            return self._local_rng

    class UMaScenarioLocalRng(_LocalRng, UMaScenario):
        pass

    class LSPGeneratorLocalRng(_LocalRng, LSPGenerator):
        pass

    class RaysGeneratorLocalRng(_LocalRng, RaysGenerator):
        pass

    return {
        "scenario": UMaScenarioLocalRng,
        "lsp": LSPGeneratorLocalRng,
        "rays": RaysGeneratorLocalRng,
        "panel": PanelArray,
    }


def _draw_links(
    ue: FloatArray,
    bs: FloatArray,
    yaw: FloatArray,
    carrier_frequency: float,
    los_mode: LosMode,
    chunk_seed: int,
    *,
    distance_2d: FloatArray,
) -> dict[str, Any]:
    """Draw LOS states, large-scale parameters and rays with Sionna for one chunk.

    Returns numpy arrays: ``los [s, b]``, ``k_factor [s, b]`` (linear), ``path_loss_db``,
    ``sf_db [s, b]``, ``ray_azimuth``, ``ray_zenith``, ``ray_phase [s, b, c, r]`` [rad]
    (BS side, world frame) and ``cluster_power [s, b, c]``.
    """
    import torch

    classes = _sionna_classes()
    generator = torch.Generator(device="cpu")
    generator.manual_seed(chunk_seed)
    num_samples, num_bs = ue.shape[0], bs.shape[0]
    dtype = torch.float64

    los_arg: bool | Any
    if los_mode == "auto":
        p = los_probability(distance_2d, ue[:, None, 2])
        u = torch.rand((num_samples, num_bs), generator=generator, dtype=dtype).numpy()
        los_arg = torch.from_numpy(u < p).unsqueeze(-1)  # [sample, bs, ut]
    else:
        los_arg = los_mode == "los"

    with torch.no_grad():
        array = classes["panel"](
            num_rows_per_panel=1,
            num_cols_per_panel=1,
            polarization="single",
            polarization_type="V",
            antenna_pattern="omni",
            carrier_frequency=carrier_frequency,
            precision="double",
            device="cpu",
        )
        scenario = classes["scenario"](
            carrier_frequency,
            "low",
            array,
            array,
            "uplink",
            precision="double",
            device="cpu",
            spec_version=SPEC_VERSION,
        )
        scenario._local_rng = generator
        lsp_generator = classes["lsp"](scenario)
        lsp_generator._local_rng = generator
        rays_generator = classes["rays"](scenario)
        rays_generator._local_rng = generator

        scenario.set_topology(
            ut_loc=torch.from_numpy(ue[:, None, :].copy()),
            bs_loc=torch.from_numpy(np.broadcast_to(bs, (num_samples, num_bs, 3)).copy()),
            ut_orientations=torch.zeros((num_samples, 1, 3), dtype=dtype),
            bs_orientations=torch.from_numpy(
                np.broadcast_to(
                    np.stack([yaw, np.zeros_like(yaw), np.zeros_like(yaw)], axis=-1),
                    (num_samples, num_bs, 3),
                ).copy()
            ),
            ut_velocities=torch.zeros((num_samples, 1, 3), dtype=dtype),
            in_state=torch.zeros((num_samples, 1), dtype=torch.bool),
            los=los_arg,
        )
        lsp_generator.topology_updated_callback()
        rays_generator.topology_updated_callback()
        lsp = lsp_generator()
        rays = rays_generator(lsp)
        phase = (
            torch.rand(tuple(rays.aod.shape), generator=generator, dtype=dtype) * 2.0 - 1.0
        ) * np.pi

        def out(t: Any) -> FloatArray:
            return np.asarray(t.detach().cpu().numpy()[:, :, 0], dtype=np.float64)

        return {
            "los": out(scenario.los).astype(bool),
            "k_factor": out(lsp.k_factor),
            "path_loss_db": out(lsp.pathloss),
            "sf_db": 10.0 * np.log10(out(lsp.sf)),
            "ray_azimuth": out(rays.aod),
            "ray_zenith": out(rays.zod),
            "ray_phase": out(phase),
            "cluster_power": out(rays.powers),
        }


def _validate(
    ue_position: npt.ArrayLike,
    bs_position: npt.ArrayLike,
    bs_yaw: npt.ArrayLike,
    num_bs_antennas: int,
    carrier_frequency: float,
    seed: int,
    los: str,
) -> tuple[FloatArray, FloatArray, FloatArray, int, float, int, LosMode]:
    """Check the inputs of :func:`uma_channels`; raise :class:`UmaInputError` naming one."""
    ue = _real_array("ue_position", ue_position)
    bs = _real_array("bs_position", bs_position)
    yaw = _real_array("bs_yaw", bs_yaw)
    if ue.ndim != 2 or ue.shape[1] != 3 or ue.shape[0] < 1:
        raise UmaInputError(f"ue_position: expected shape [sample >= 1, 3], got {ue.shape}")
    if bs.ndim != 2 or bs.shape[1] != 3 or bs.shape[0] < 1:
        raise UmaInputError(f"bs_position: expected shape [bs >= 1, 3], got {bs.shape}")
    if yaw.shape != (bs.shape[0],):
        raise UmaInputError(
            f"bs_yaw: expected shape [bs] = ({bs.shape[0]},) like bs_position, got {yaw.shape}"
        )
    if (
        not isinstance(num_bs_antennas, Integral)
        or isinstance(num_bs_antennas, bool)
        or num_bs_antennas < 1
    ):
        raise UmaInputError(f"num_bs_antennas: expected an integer >= 1, got {num_bs_antennas!r}")
    if (
        not isinstance(carrier_frequency, Real)
        or isinstance(carrier_frequency, bool)
        or not np.isfinite(float(carrier_frequency))
        or not 0.5e9 <= float(carrier_frequency) <= 100e9
    ):
        raise UmaInputError(
            "carrier_frequency: expected a value in [0.5e9, 100e9] Hz (TR 38.901 range), "
            f"got {carrier_frequency!r}"
        )
    if not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0:
        raise UmaInputError(f"seed: expected a non-negative integer, got {seed!r}")
    if not isinstance(los, str) or los not in ("auto", "los", "nlos"):
        raise UmaInputError(f"los: expected 'auto', 'los' or 'nlos', got {los!r}")
    h_ut = ue[:, 2]
    if np.any((h_ut < 1.5) | (h_ut > 22.5)):
        i = int(np.flatnonzero((h_ut < 1.5) | (h_ut > 22.5))[0])
        raise UmaInputError(
            f"ue_position: UE heights must lie in [1.5, 22.5] m (TR 38.901 UMa), "
            f"sample {i} has {h_ut[i]:g} m"
        )
    if np.any(bs[:, 2] <= h_ut.max()):
        j = int(np.argmin(bs[:, 2]))
        raise UmaInputError(
            f"bs_position: every BS must be higher than every UE (UMa: BS above rooftop, "
            f"nominally 25 m); BS {j} is at {bs[j, 2]:g} m, the highest UE at {h_ut.max():g} m"
        )
    d2 = np.hypot(ue[:, None, 0] - bs[None, :, 0], ue[:, None, 1] - bs[None, :, 1])
    bad = (d2 < 10.0) | (d2 > 5000.0)
    if np.any(bad):
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise UmaInputError(
            "ue_position: horizontal UE-BS distances must lie in [10, 5000] m "
            f"(TR 38.901 Table 7.4.1-1); sample {i} is {d2[i, j]:.3g} m from BS {j}"
        )
    los_mode = cast(LosMode, los)
    return ue, bs, yaw, int(num_bs_antennas), float(carrier_frequency), int(seed), los_mode


def _real_array(name: str, value: npt.ArrayLike) -> FloatArray:
    """``value`` as a finite float64 array, or :class:`UmaInputError` naming ``name``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UmaInputError(f"{name}: expected real numbers ({exc})") from None
    if not np.all(np.isfinite(array)):
        raise UmaInputError(f"{name}: expected finite values, got NaN or inf")
    return array
