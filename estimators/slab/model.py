"""SLAB's signal model (Zhou, Liu, Lau, IEEE TSP 2019, §II, eqs. 1-19), reconstructed.

``J`` BSs with ``N_B``-element ULAs and known poses send downlink pilots to a UE with an
``N_U``-element ULA of unknown 2D position ``x`` and orientation ``ϑ``. Each BS reaches
the UE over a LOS path (``l = 0``) and ``L`` single-bounce NLOS paths off point
scatterers ``v_{l,j}``. The ``N'_C`` subcarriers are interleaved across the BSs
(``Θ_j = {j, j + J, ..., j + (N_C - 1) J}``, ``N_C = N'_C / J``); on each of its
subcarriers BS ``j`` sends ``M`` training beamforming (BF) vectors ``ω_j[n, m]``
(pilot symbols included, ``‖ω_j[n, m]‖ ≤ 1``). In time slot ``k``:

    z_j[k, n, m] = H̃_j[k, n] ω_j[n, m] + ε,   ε ~ CN(0, σ² I_{N_U})            (11)
    H̃_j[k, n] = √(N_B N_U) Σ_l h_{l,j}[k] e^{-j2π f_n τ_{l,j}} a_U,n(θ_U,l,j) a_B,n(θ_B,l,j)^H

with i.i.d. small-scale fading ``h[k] ~ CN(0, Σ)`` across slots while the geometry
(``τ``, ``θ_B``, ``θ_U``, i.e. ``α = [x; ϑ; v]``) stays fixed.

Choices where the extracted paper is silent or garbled (each says why):

* **Geometry is planar** (the paper's ``u_j, x, v_{l,j} ∈ R²``): coordinates ``(x, y)``
  [m] in the world's horizontal plane. Angles (eqs. 7-10) are *azimuths* relative to the
  array broadside: ``θ_B = az(target - u_j) - φ_j``, ``θ_U = az(source - x) - ϑ`` with
  ``az`` the full ``atan2`` azimuth. The extracted eqs. write ``arccos(d·e_X / ‖d‖)``,
  which equals the azimuth only for ``d_y ≥ 0`` and would make the array response blind
  to the sign of ``d_y``; the azimuth is the physical angle.
* **Arrays**: ULAs along the device's local y axis (broadside = orientation azimuth),
  centred on the device position, element ``t`` at ``d (t - (N-1)/2)``, response
  ``a(θ)_t = exp(+j 2π d/λ_n (t - (N-1)/2) sin θ)``. This is the project's convention
  (``estimators.arrays.steering_vector`` of a ``1 x N`` array rotated by the yaw), so the
  model can later run on the twin's channels. The extracted eqs. (2), (4) read
  ``e^{-j dπ/λ_n (t-1) sin θ}``: the sign and the first-element reference are a
  relabelling of the elements and a phase reference (centred: ``τ`` refers to the array
  centres, as eqs. 5-6 assume); ``dπ/λ`` is taken as the standard ``2π d/λ`` (with
  ``d = λ_c / 2``, §VII-A, this is the half-wavelength ULA).
* **Beam squint** as in the paper: ``λ_n = c / (f_c + n / (N'_C T_s))`` per subcarrier
  (the extracted §VII-A lost the ``n``); ``beam_squint=False`` uses ``λ_c`` everywhere
  (the twin's narrowband array model).
* **Subcarrier frequencies**: ``f_n = n / (N'_C T_s)`` with the paper's indices
  ``n ∈ Θ_j ⊂ {1, ..., N'_C}`` (eq. in §II-B and eq. 50; the channel equation's
  ``N_c`` is ``N'_C`` there). Unlike the project's centred baseband offsets this reference
  matters: the long-term FIM (Lemma 1) drops the α-h cross terms, so it depends on the
  frequency origin; the paper's is kept.
* ``G`` (eqs. 14-18) follows eq. (11) and eqs. (1)-(4): ``G[r, m, n, l] = Σ_t
  μ^{(r,t)}_{l,j,n} ω^{(t)}_j[n, m]`` with ``μ`` of eq. (19) times ``√(N_B N_U)``. The
  extracted eqs. (15)-(17) conjugate ``μ`` (``g = ω^H μ``, rows ``g^H``), which would
  contradict eq. (11).
* **Fading covariance** (§VII-A): ``h_{l,j} = h'_{l,j} / φ_{l,j}^3``, ``h' ~ CN(0, 1)``, so
  ``Σ_j = diag(φ_{l,j}^{-6})`` with ``φ`` the path length; the exponent is a field.
* **Random BF** (the paper's initial ``w[1]``): i.i.d. complex Gaussian vectors
  normalised to unit norm (uniform on the sphere), per BS, subcarrier and beam.
* The speed of light is the project's ``299 792 458 m/s`` (the paper rounds to 3e8).

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: frame and ``Θ_j``
(§II-A), channel (1)-(4) and ``H_j`` (§II-B), geometry (5)-(10), received signal
(11)-(19), simulation setting (§VII-A). The paper's synthetic setting (placement, SNR):
:mod:`estimators.slab.scenario`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, wrap_angle
from estimators.observe import complex_normal
from estimators.typing import ComplexArray, FloatArray, IntArray

# ----------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class SlabGeometry:
    """Known BS poses and the long-term location parameters ``α`` (§II-B, §II-C).

    Attributes
    ----------
    bs_position : ``[bs, 2]`` [m], ``u_j``.
    bs_orientation : ``[bs]`` [rad], ``φ_j``: azimuth of the BS array's broadside.
    ue_position : ``[2]`` [m], ``x``.
    ue_yaw : [rad], ``ϑ``: azimuth of the UE array's broadside.
    scatterers : ``[bs, nlos, 2]`` [m], ``v_{l,j}`` (``nlos = L`` may be 0).
    height_offset : ``[bs]`` [m] or ``None`` (all 0: the paper's plane), ``Δh_j``: BS
        ``j``'s array height above the UE's (known BS heights, a UE height hypothesis;
        the extension for BSs on masts, module docstring).
    ground_offset : ``[bs]`` [m] or ``None`` (no ground bounce, the paper's model):
        ``h_j + h_UE - 2 h_ground``, the height of BS ``j``'s image in the ground above
        the UE; where given, each BS has one more path, last: the ground bounce, whose
        geometry follows from ``x`` (module docstring).
    """

    bs_position: FloatArray
    bs_orientation: FloatArray
    ue_position: FloatArray
    ue_yaw: float
    scatterers: FloatArray
    height_offset: FloatArray | None = None
    ground_offset: FloatArray | None = None

    @property
    def has_ground(self) -> bool:
        """A ground bounce per BS is modelled (``ground_offset`` given)."""
        return self.ground_offset is not None

    @property
    def path_heights(self) -> FloatArray:
        """``[bs, path]`` [m], the height difference of each path's ends: ``Δh_j`` for the
        LOS and the (vertical-wall) scatterer paths, ``ground_offset`` for the ground
        bounce (the UE and the BS's image in the ground)."""
        dh = np.repeat(self.heights[:, None], self.num_nlos + 1, axis=1)
        if self.ground_offset is not None:
            dh = np.concatenate([dh, np.asarray(self.ground_offset, np.float64)[:, None]],
                                axis=1)
        return np.asarray(dh)

    @property
    def heights(self) -> FloatArray:
        """``Δh [bs]`` [m] (zeros where ``height_offset`` is ``None``)."""
        if self.height_offset is None:
            return np.zeros(self.num_bs)
        return np.asarray(self.height_offset, dtype=np.float64)

    @property
    def num_bs(self) -> int:
        """``J``."""
        return int(self.bs_position.shape[0])

    @property
    def num_nlos(self) -> int:
        """``L``, NLOS paths per BS."""
        return int(self.scatterers.shape[1])

    @property
    def num_paths(self) -> int:
        """``L + 1`` paths per BS, the LOS first (``L + 2`` with the ground bounce, last)."""
        return self.num_nlos + 1 + int(self.has_ground)

    @property
    def num_alpha(self) -> int:
        """``2 J L + 3``, the length of ``α``."""
        return 2 * self.num_bs * self.num_nlos + 3

    def alpha(self) -> FloatArray:
        """``α = [x; ϑ; v]`` ``[2JL + 3]`` [m, rad, m], ``v = vec[v_{l,j}]`` with ``l``
        varying fastest (§II-C)."""
        return np.concatenate(
            [self.ue_position, [self.ue_yaw], self.scatterers.reshape(-1)]
        )

    def with_alpha(self, alpha: npt.ArrayLike) -> SlabGeometry:
        """The same BSs with location parameters ``alpha [2JL + 3]``."""
        a = np.asarray(alpha, dtype=np.float64)
        if a.shape != (self.num_alpha,):
            raise ValueError(f"alpha: expected shape ({self.num_alpha},), got {a.shape}")
        return SlabGeometry(
            bs_position=self.bs_position, bs_orientation=self.bs_orientation,
            ue_position=a[:2].copy(), ue_yaw=float(a[2]),
            scatterers=a[3:].reshape(self.num_bs, self.num_nlos, 2),
            height_offset=self.height_offset, ground_offset=self.ground_offset,
        )


def slant(horizontal: npt.ArrayLike, height_offset: npt.ArrayLike
          ) -> tuple[FloatArray, FloatArray]:
    """A path of unfolded horizontal length ``D`` between ends ``Δh`` apart in height
    (image method: vertical walls keep the unfolded length): its length ``φ = √(D² +
    Δh²)`` [m] and ``cos ε = D / φ`` (1 where ``φ = 0``), the cosine of its elevation at
    both ends, which scales what a horizontal ULA sees: ``sin θ = cos ε sin(az)``.
    Broadcast over ``horizontal`` and ``height_offset``."""
    d = np.asarray(horizontal, dtype=np.float64)
    length = np.hypot(d, np.asarray(height_offset, dtype=np.float64))
    cos_el = np.divide(d, length, out=np.ones(np.broadcast(d, length).shape),
                       where=length > 0)
    return np.asarray(length), np.asarray(cos_el)


def cone_angle(relative_azimuth: npt.ArrayLike, cos_el: npt.ArrayLike) -> FloatArray:
    """The angle ``θ`` a horizontal ULA measures [rad]: ``sin θ = cos ε sin(az)``, on the
    side (front ``|θ| ≤ π/2`` or back) of ``az``; ``θ = az`` at ``cos ε = 1``."""
    az = np.asarray(relative_azimuth, dtype=np.float64)
    s = np.sin(az) * np.asarray(cos_el, dtype=np.float64)
    c = np.where(np.cos(az) >= 0, 1.0, -1.0) * np.sqrt(np.clip(1.0 - s * s, 0.0, None))
    return np.asarray(np.arctan2(s, c))


def departure_points(geometry: SlabGeometry) -> FloatArray:
    """``[bs, path, 2]`` [m]: the point each path leaves the BS towards — the UE for the
    LOS (``l = 0``), the scatterer ``v_{l,j}`` for NLOS paths."""
    ue = np.broadcast_to(geometry.ue_position, (geometry.num_bs, 1, 2))
    ground = [ue] if geometry.has_ground else []  # the ground bounce leaves towards x
    return np.concatenate([ue, geometry.scatterers, *ground], axis=1)


def horizontal_lengths(geometry: SlabGeometry) -> FloatArray:
    """``D_{l,j}`` ``[bs, path]`` [m], the paper's planar ``φ``: ``‖x - u_j‖`` (LOS),
    ``‖u_j - v‖ + ‖x - v‖`` (§VII-A)."""
    points = departure_points(geometry)
    to_point = np.linalg.norm(points - geometry.bs_position[:, None, :], axis=-1)
    to_ue = np.linalg.norm(geometry.ue_position - points, axis=-1)  # 0 for the LOS
    return np.asarray(to_point + to_ue)


def path_lengths(geometry: SlabGeometry) -> FloatArray:
    """``φ_{l,j}`` ``[bs, path]`` [m]: :func:`horizontal_lengths`, with the BS
    ``Δh_j`` above the UE ``√(D² + Δh²)`` (:func:`slant`; ``D`` where ``Δh = 0``)."""
    return slant(horizontal_lengths(geometry), geometry.path_heights)[0]


def departure_vectors(geometry: SlabGeometry) -> FloatArray:
    """``[bs, path, 2]`` [m], from each BS to the first point of each path (eqs. 7-8)."""
    return np.asarray(departure_points(geometry) - geometry.bs_position[:, None, :])


def arrival_vectors(geometry: SlabGeometry) -> FloatArray:
    """``[bs, path, 2]`` [m], from the UE back along each path: to the BS (LOS) or to the
    scatterer (eqs. 9-10)."""
    bs = geometry.bs_position[:, None, :]
    ground = [bs] if geometry.has_ground else []
    sources = np.concatenate([bs, geometry.scatterers, *ground], axis=1)
    return np.asarray(sources - geometry.ue_position)


def azimuth(vector: npt.ArrayLike) -> FloatArray:
    """Azimuth ``atan2(v_y, v_x)`` [rad] of 2D vectors ``[..., 2]``."""
    v = np.asarray(vector, dtype=np.float64)
    return np.asarray(np.arctan2(v[..., 1], v[..., 0]))


@dataclass(frozen=True)
class PathParameters:
    """Per-path delays and angles of one geometry (eqs. 5-10).

    ``tau [bs, path]`` [s]; ``aod``, ``aoa [bs, path]`` [rad], ``θ_B`` and ``θ_U``: azimuths
    relative to the BS and UE broadsides, wrapped to ``(-π, π]``; path 0 is the LOS.
    """

    tau: FloatArray
    aod: FloatArray
    aoa: FloatArray


def path_parameters(geometry: SlabGeometry) -> PathParameters:
    """Delays, AODs and AOAs of every path (eqs. 5-10, azimuth form: module docstring)."""
    aod = azimuth(departure_vectors(geometry)) - geometry.bs_orientation[:, None]
    aoa = azimuth(arrival_vectors(geometry)) - geometry.ue_yaw
    length, cos_el = slant(horizontal_lengths(geometry), geometry.path_heights)
    return PathParameters(tau=length / SPEED_OF_LIGHT,
                          aod=wrap_angle(cone_angle(aod, cos_el)),
                          aoa=wrap_angle(cone_angle(aoa, cos_el)))


# ------------------------------------------------------------------ the system


def subcarrier_indices(num_subcarriers: int, num_bs: int) -> IntArray:
    """``Θ_j`` ``[bs, subcarrier]``: the paper's 1-based indices ``{j, j + J, ...}`` (§II-A).

    Raises ``ValueError`` unless ``N'_C`` is a multiple of ``J`` (the paper assumes it).
    """
    if num_bs < 1 or num_subcarriers % num_bs:
        raise ValueError(
            f"N'_C = {num_subcarriers} subcarriers must split evenly over J = {num_bs} BSs"
        )
    per_bs = num_subcarriers // num_bs
    return np.arange(1, num_bs + 1)[:, None] + num_bs * np.arange(per_bs)[None, :]


@dataclass(frozen=True)
class SlabSystem:
    """What the UE knows about the transmission besides the BS poses.

    Attributes
    ----------
    num_bs_antennas, num_ue_antennas : ``N_B``, ``N_U``.
    bs_spacing, ue_spacing : element spacings ``d_B``, ``d_U`` [m].
    frequencies : ``[bs, subcarrier]`` [Hz], ``f_n = n / (N'_C T_s)`` for ``n ∈ Θ_j``.
    wavelengths : ``[bs, subcarrier]`` [m], ``λ_n`` used by the array responses.
    """

    num_bs_antennas: int
    num_ue_antennas: int
    bs_spacing: float
    ue_spacing: float
    frequencies: FloatArray
    wavelengths: FloatArray

    @property
    def num_bs(self) -> int:
        return int(self.frequencies.shape[0])

    @property
    def num_subcarriers_per_bs(self) -> int:
        """``N_C``."""
        return int(self.frequencies.shape[1])

    @property
    def amplitude(self) -> float:
        """``√(N_B N_U)`` of ``H_j[k, n]`` (§II-B)."""
        return float(np.sqrt(self.num_bs_antennas * self.num_ue_antennas))


def ula_response(
    num_antennas: int, *, spacing: float, wavelength: npt.ArrayLike, angle: npt.ArrayLike
) -> ComplexArray:
    """Centred ULA response (eqs. 2, 4; convention: module docstring).

    Parameters
    ----------
    num_antennas : ``N``.
    spacing : ``d`` [m].
    wavelength : ``[...]`` [m], broadcast against ``angle``.
    angle : ``[...]`` [rad], from the broadside.

    Returns
    -------
    a : ``[..., ant]`` complex128, ``exp(j 2π d/λ (t - (N-1)/2) sin θ)``.
    """
    offsets = np.arange(num_antennas) - (num_antennas - 1) / 2
    phase = 2 * np.pi * spacing / np.asarray(wavelength, dtype=np.float64) * np.sin(
        np.asarray(angle, dtype=np.float64))
    return np.exp(1j * phase[..., None] * offsets)


def path_responses(system: SlabSystem, geometry: SlabGeometry) -> ComplexArray:
    """``√(N_B N_U) μ^{(r,t)}_{l,j,n}`` of eq. (19), independent of the BF vectors.

    Returns
    -------
    mu : ``[bs, subcarrier, ue_ant, bs_ant, path]`` complex128,
        ``√(N_B N_U) a_U,n(θ_U)_r e^{-j2π f_n τ} a_B,n(θ_B)_t^*``.
    """
    p = path_parameters(geometry)
    lam = system.wavelengths[:, :, None]  # [bs, subcarrier, 1]
    a_u = ula_response(system.num_ue_antennas, spacing=system.ue_spacing, wavelength=lam,
                       angle=p.aoa[:, None, :])  # [bs, subcarrier, path, ue_ant]
    a_b = ula_response(system.num_bs_antennas, spacing=system.bs_spacing, wavelength=lam,
                       angle=p.aod[:, None, :])  # [bs, subcarrier, path, bs_ant]
    delay = np.exp(-2j * np.pi * system.frequencies[:, :, None] * p.tau[:, None, :])
    mu = np.einsum("bkpr,bkp,bkpt->bkrtp", a_u, delay, a_b.conj())
    return np.asarray(system.amplitude * mu)


def coefficient_matrix(responses: ComplexArray, beamformers: npt.ArrayLike) -> ComplexArray:
    """``G(α; ω)`` of eqs. (14)-(18), one block per BS (the matrix is block diagonal).

    Parameters
    ----------
    responses : ``[bs, subcarrier, ue_ant, bs_ant, path]`` (:func:`path_responses`).
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, ``ω_j[n, m]``.

    Returns
    -------
    G : ``[bs, ue_ant, beam, subcarrier, path]`` complex128; the noiseless signal is
        ``z_j[r, m, n] = Σ_l G[j, r, m, n, l] h_{l,j}``.
    """
    w = np.asarray(beamformers, dtype=np.complex128)
    return np.asarray(np.einsum("bkrtp,btmk->brmkp", responses, w))


def received_signal(coefficients: ComplexArray, gains: npt.ArrayLike) -> ComplexArray:
    """Noiseless ``g(α, h[k]; ω) = G(α; ω) h[k]`` (eqs. 12-13).

    ``coefficients [bs, ue_ant, beam, subcarrier, path]``, ``gains [slot, bs, path]``
    → ``[slot, bs, ue_ant, beam, subcarrier]`` complex128.
    """
    h = np.asarray(gains, dtype=np.complex128)
    return np.asarray(np.einsum("brmkp,sbp->sbrmk", coefficients, h))


def pathloss_covariance(geometry: SlabGeometry, exponent: float) -> ComplexArray:
    """``Σ`` of §VII-A per BS: ``diag(φ_{l,j}^{-2 exponent})`` ``[bs, path, path]``."""
    eta2 = path_lengths(geometry) ** (-2.0 * exponent)
    return np.asarray(eta2[:, :, None] * np.eye(geometry.num_paths), dtype=np.complex128)


def draw_gains(
    covariance: npt.ArrayLike, num_slots: int, rng: np.random.Generator
) -> ComplexArray:
    """i.i.d. small-scale fading ``h[k] ~ CN(0, Σ)`` (§II-B): ``[slot, bs, path]``.

    ``covariance [bs, path, path]`` Hermitian PSD (BSs independent: only the per-BS
    blocks of ``Σ`` enter the model, ``G`` being block diagonal).
    """
    cov = np.asarray(covariance, dtype=np.complex128)
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]
    shape = (num_slots, *cov.shape[:2])
    white = complex_normal(rng, shape)
    return np.asarray(np.einsum("bpq,sbq->sbp", root, white))


def random_beamformers(
    num_bs: int, num_bs_antennas: int, num_beams: int, num_subcarriers_per_bs: int,
    rng: np.random.Generator,
) -> ComplexArray:
    """Random unit-norm BF vectors (the paper's initial random BF): ``[bs, bs_ant, beam,
    subcarrier]``, each ``ω_j[n, m]`` uniform on the unit sphere of ``C^{N_B}``."""
    shape = (num_bs, num_bs_antennas, num_beams, num_subcarriers_per_bs)
    # Isotropic Gaussian vectors normalised: uniform on the sphere (any variance will do).
    w = complex_normal(rng, shape, 2.0)
    return np.asarray(w / np.linalg.norm(w, axis=1, keepdims=True))
