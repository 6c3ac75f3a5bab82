"""Types shared by the twin and the estimators (the only module both import).

Data moves one way: ``twin`` builds an :class:`Observation`; ``estimators`` consume it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, rotation_matrix

Area = tuple[tuple[float, float], tuple[float, float]]
"""A horizontal rectangle ``((x_min, y_min), (x_max, y_max))`` [m], its lower-left and
upper-right corners: the one convention of every search area and grid of the project."""


def check_area(area: Area, what: str = "area") -> Area:
    """``area`` as floats, or ``ValueError`` naming ``what`` if it is not two corners with
    ``x_min < x_max`` and ``y_min < y_max``."""
    try:
        (x0, y0), (x1, y1) = ((float(a), float(b)) for a, b in area)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected ((x_min, y_min), (x_max, y_max)) [m], "
                         f"got {area!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"{what}: the lower-left corner ({x0}, {y0}) must lie below and left "
                         f"of the upper-right one ({x1}, {y1})")
    return ((x0, y0), (x1, y1))

def in_area(area: Area, point: npt.ArrayLike) -> bool:
    """Whether the horizontal part of ``point`` (``[2]`` or ``[3]`` [m]) lies in ``area``
    (corners, edges included): the one containment test of every search area and
    service area."""
    (x0, y0), (x1, y1) = area
    x, y = np.asarray(point, dtype=np.float64)[:2]
    return bool(x0 <= x <= x1 and y0 <= y <= y1)


Link = Literal["downlink", "uplink"]


@dataclass(frozen=True)
class ServiceArea:
    """Where a deployment's users are, as the deployment knows it before measuring: the
    horizontal region they move in and their nominal height. The prior of every search
    grid, initialisation and 2-D height hypothesis that an estimator does not get as a
    hyper-parameter, so that defaults come from the run, never from a paper's setting.

    Attributes
    ----------
    area : ``((x_min, y_min), (x_max, y_max))`` [m] corners (:data:`Area`).
    ue_height : the UEs' nominal height [m] (z of the BSs' frame), the height a method
        that estimates the horizontal position assumes.
    ground_height : the height [m] of the ground under the area, where the deployment's
        map has one (the twin: its scene's, :meth:`twin.scene.TwinScene.ground_under`);
        None where unknown. What a ground-bounce model's ``ground_height="auto"`` takes
        (:func:`estimators.base.resolve_ground_height`).
    """

    area: Area
    ue_height: float
    ground_height: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "area", check_area(self.area, "ServiceArea.area"))
        if not np.isfinite(self.ue_height):
            raise ValueError(f"ServiceArea.ue_height: must be finite, got {self.ue_height}")
        if self.ground_height is not None and not np.isfinite(self.ground_height):
            raise ValueError("ServiceArea.ground_height: must be finite or None, got "
                             f"{self.ground_height}")


@dataclass(frozen=True)
class ArrayGeometry:
    """Antenna array of a device, in the device's local frame.

    Attributes
    ----------
    element_positions : ``[ant, 3]`` float64 [m], relative to the device position.
    rows, cols : element grid (local z rows, local y columns).
    polarization : ``"V"``, ``"H"``, ``"VH"`` or ``"cross"``.
    pattern : antenna pattern name (``"iso"``, ``"dipole"``, ``"hw_dipole"``, ``"tr38901"``).
    """

    element_positions: npt.NDArray[np.float64]
    rows: int
    cols: int
    polarization: str = "V"
    pattern: str = "iso"

    @property
    def num_ant(self) -> int:
        """Number of antenna ports (elements x polarizations)."""
        return int(self.element_positions.shape[0])

    def world_positions(self, orientation: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Element positions rotated by a device orientation (yaw, pitch, roll) [rad].

        Returns ``[ant, 3]`` [m] relative to the device position, world axes.
        """
        return self.element_positions @ rotation_matrix(orientation).T

    def linear_layout(self) -> LinearLayout | None:
        """The array as a uniform linear array (one polarization, >= 2 elements evenly
        spaced on a line, in order), or None if it is not one. The one ULA check of the
        project: each estimator that needs a ULA asks this, then states its own further
        needs (centred, along an axis) in its error message."""
        r = np.asarray(self.element_positions, dtype=np.float64)
        n = r.shape[0]
        if n < 2 or self.polarization in ("VH", "cross"):
            return None
        step = r[1] - r[0]
        spacing = float(np.linalg.norm(step))
        expected = r[0] + np.arange(n)[:, None] * step
        if spacing <= 0 or np.max(np.abs(r - expected)) > LINEAR_LAYOUT_REL * spacing * n:
            return None
        return LinearLayout(size=n, spacing=spacing, axis=step / spacing,
                            centre=r.mean(axis=0))


LINEAR_LAYOUT_REL = 1e-6
"""Relative tolerance (of the array's length) of :meth:`ArrayGeometry.linear_layout`."""


@dataclass(frozen=True)
class LinearLayout:
    """A uniform linear array: ``size`` elements ``spacing`` [m] apart along the unit
    ``axis [3]`` (local frame), their mean at ``centre [3]`` [m] from the device."""

    size: int
    spacing: float
    axis: npt.NDArray[np.float64]
    centre: npt.NDArray[np.float64]

    @property
    def centred(self) -> bool:
        """Whether the elements are centred on the device position."""
        return bool(np.linalg.norm(self.centre) <= LINEAR_LAYOUT_REL * self.spacing * self.size)


@dataclass(frozen=True)
class FingerprintMap:
    """A radio map for fingerprint positioning: the channel at the centre of every block
    of an area (Sang et al., §II-B: the blocks' CFR vectors are their "virtual
    coordinates"), on the observation's subcarriers, for the RIS configuration in use.

    Attributes
    ----------
    block_positions : ``[block, 3]`` [m], the blocks' centres.
    cfr : ``[block, bs, ue_ant, bs_ant, subcarrier]`` complex128, the downlink channel at
        each centre as the database knows it (an estimate: it may differ from the true
        channel there).
    block_size : ``[2]`` [m], the blocks' extent along x and y.
    """

    block_positions: npt.NDArray[np.float64]
    cfr: npt.NDArray[np.complex128]
    block_size: npt.NDArray[np.float64]


@dataclass(frozen=True)
class PositionPrior:
    """A Gaussian prior on the UE position per snapshot (e.g. GNSS), Sang et al. eq. (39):
    ``mean [snapshot, 3]`` [m] and ``covariance [snapshot, 3, 3]`` [m²]."""

    mean: npt.NDArray[np.float64]
    covariance: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Observation:
    """What an estimator sees: received pilots plus the known geometry.

    ``y[t, b, :, m, k] = W[t, b]^H (H[t, b, :, :, k] F[t, b, :, m] s[m, k] + n)``, with
    ``n ~ CN(0, noise_variance[t, b] I)`` per receive antenna; ``H`` is the downlink
    channel (BS transmits) or its reciprocal transpose (uplink, UE transmits).

    Attributes
    ----------
    y : ``[snapshot, bs, rx_stream, tx_beam, subcarrier]`` complex128.
    precoders : ``[snapshot, bs, tx_ant, tx_beam]`` complex128, unit-norm columns.
    combiners : ``[snapshot, bs, rx_ant, rx_stream]`` complex128.
    pilots : ``[tx_beam, subcarrier]`` complex128, unit modulus, scaled by
        ``sqrt(pilot_energy)``.
    frequencies : ``[subcarrier]`` [Hz], baseband offsets from the carrier.
    carrier_frequency : [Hz].
    noise_variance : ``[snapshot, bs]`` [W] per receive antenna and sample.
    bs_position, bs_orientation : ``[bs, 3]`` [m], (yaw, pitch, roll) [rad].
    bs_array, ue_array : local array geometries.
    link : ``"downlink"`` (BS → UE; tx_ant = BS antennas) or ``"uplink"``.
    snapshot_time : ``[snapshot]`` [s].
    seed : the seed the noise and pilots were drawn with.
    sounder : for closed-loop estimators (``sounding = {"closed_loop": True, ...}``): the
        same channel, re-sounded with beams the estimator chooses
        (:class:`estimators.observe.Sounder`); ``None`` otherwise.
    fingerprints : the area's radio map, for fingerprint positioning; ``None`` otherwise.
    prior : a prior on the UE position (e.g. GNSS); ``None`` otherwise.
    service_area : where the UEs are known to be (:class:`ServiceArea`): the twin's is
        the drive's horizontal extent grown by a margin and its median height
        (:func:`twin.sounding.service_area`), a paper's setting gives its own area;
        ``None`` where nothing is known (estimators that need one then need their own
        ``area``/``ue_height`` hyper-parameters).
    physical_gains : the channel's path amplitudes are physical, so that between isotropic
        elements a LOS arrives at Friis' amplitude ``λ / (4π d)`` (the twin's ray-traced
        channels; the MISO and LOCMAN settings); ``False`` for a model whose gains are
        normalised or drawn from a fading law (SLAB's setting, §VII-A), where free space
        says nothing about a path (:attr:`free_space_known`).
    """

    y: npt.NDArray[np.complex128]
    precoders: npt.NDArray[np.complex128]
    combiners: npt.NDArray[np.complex128]
    pilots: npt.NDArray[np.complex128]
    frequencies: npt.NDArray[np.float64]
    carrier_frequency: float
    noise_variance: npt.NDArray[np.float64]
    bs_position: npt.NDArray[np.float64]
    bs_orientation: npt.NDArray[np.float64]
    bs_array: ArrayGeometry
    ue_array: ArrayGeometry
    link: Link = "downlink"
    snapshot_time: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )
    seed: int | None = None
    sounder: Sounder | None = None
    fingerprints: FingerprintMap | None = None
    prior: PositionPrior | None = None
    service_area: ServiceArea | None = None
    physical_gains: bool = True

    @property
    def free_space_known(self) -> bool:
        """Whether a LOS's amplitude is known: Friis' ``λ / (4π d)`` with physical gains
        between isotropic BS and UE elements (another pattern's gain towards the path is
        not known to the estimators)."""
        return (self.physical_gains and self.bs_array.pattern == "iso"
                and self.ue_array.pattern == "iso")

    @property
    def wavelength(self) -> float:
        """Carrier wavelength [m]."""
        return SPEED_OF_LIGHT / self.carrier_frequency

    @property
    def num_snapshots(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_bs(self) -> int:
        return int(self.y.shape[1])

    @property
    def tx_array(self) -> ArrayGeometry:
        return self.bs_array if self.link == "downlink" else self.ue_array

    @property
    def rx_array(self) -> ArrayGeometry:
        return self.ue_array if self.link == "downlink" else self.bs_array


class Sounder(Protocol):
    """Closed-loop sounding: each snapshot's channel, observed again with beams chosen
    by the estimator (from what it has estimated so far). Estimators see the channel
    only through :meth:`sound`."""

    def sound(
        self, t: int, precoders: npt.NDArray[np.complex128], rng: np.random.Generator
    ) -> npt.NDArray[np.complex128]:
        """Received pilots ``[bs, rx_ant, tx_beam, subcarrier]`` of snapshot ``t`` with
        ``precoders [bs, subcarrier, tx_ant, tx_beam]`` (a precoder per subcarrier; a
        zero column is a beam not sent), identity combining, the observation's pilots
        and noise level, fresh noise from ``rng``."""
        ...


@dataclass(frozen=True)
class ChannelTruth:
    """True geometric channel of one BS, per snapshot (for bounds and synthetic models).

    Attributes
    ----------
    gain : ``[snapshot, path]`` complex128, path gain at the array reference points
        (the BS and UE positions), baseband-equivalent.
    tau : ``[snapshot, path]`` [s].
    aod, aoa : ``[snapshot, path, 2]`` (azimuth, zenith) [rad].
    valid : ``[snapshot, path]`` bool; path 0 is the LOS where ``los[t]``.
    los : ``[snapshot]`` bool, whether path 0 is a line-of-sight path.
    ue_position : ``[snapshot, 3]`` [m].
    scatterer : ``[snapshot, path, 3]`` [m], the single-bounce point of each NLOS path
        (NaN for the LOS and for paths that are not single-bounce).
    ue_orientation : ``[snapshot, 3]`` (yaw, pitch, roll) [rad] of the UE array, or
        ``None`` where the source does not give it (a single-antenna UE).
    """

    gain: npt.NDArray[np.complex128]
    tau: npt.NDArray[np.float64]
    aod: npt.NDArray[np.float64]
    aoa: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    los: npt.NDArray[np.bool_]
    ue_position: npt.NDArray[np.float64]
    scatterer: npt.NDArray[np.float64]
    ue_orientation: npt.NDArray[np.float64] | None = None


Truth = ChannelTruth | Sequence[ChannelTruth]
"""The true channel behind an observation: one :class:`ChannelTruth` per BS (a sequence
in the observation's BS order), or a single one for a single-BS observation."""


def bs_truth(truth: Truth, bs: int) -> ChannelTruth:
    """BS ``bs``'s :class:`ChannelTruth` of ``truth`` (:data:`Truth`); ``IndexError`` if
    ``truth`` does not hold it."""
    if isinstance(truth, ChannelTruth):
        if bs != 0:
            raise IndexError(f"a single ChannelTruth holds BS 0 only, not BS {bs}")
        return truth
    return truth[bs]
