"""LOCMAN's forward model: the MIMO-OFDM channel of a ULA-to-ULA link and its geometry.

A BS with an ``Nt``-element ULA sends ``G`` pilot transmissions on ``K`` subcarriers to
a target with an ``Nr``-element ULA of unknown yaw (Li et al., eqs. 1-4; Shahmansoori
et al.'s model)::

    Y[k] = H[k] X[k] + N[k],   H[k] = Σ_l g_l e^{-j2π f_k τ_l} a_R(ω_R,l) a_T(ω_T,l)^T,

``Y[k] [rx_ant, G]``, ``X[k] = F diag(s[:, k]) [tx_ant, G]``, ``a(ω)_m =
e^{jω(m - (N-1)/2)}`` (the twin's steering vector of a centred ULA, ``ω = 2π d/λ
u·e_axis`` [rad] per element step). Path ``l = 0`` is the LOS; each NLOS path bounces
once off a scatterer ``s_l``.

Geometry (eq. 3): 2-D unknowns — UE ``(x, y)`` [m], yaw ``α`` [rad], scatterers
``(x, y)`` [m] — in a 3-D world with known heights: the UE at ``ue_height`` (default:
the BS's), each scatterer on a vertical reflector, its height following the unfolded
path, ``z_s = z_b + (z_p - z_b) d_1 / (d_1 + d_2)`` with ``d_1, d_2`` the horizontal
BS-s and s-UE distances. With all heights equal this is exactly the paper's planar
geometry; on the twin it is exact for wall reflections. The UE array is horizontal and
only its yaw is unknown (pitch = roll = 0). Derivations: ``docs/estimators/locman.md``.

References
----------
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022: signal model (1)-(4), geometry (3), gains by least squares (footnote 2).
A. Shahmansoori, G. E. Garcia, G. Destino, G. Seco-Granados, H. Wymeersch, "Position
and orientation estimation through millimeter-wave MIMO in 5G systems", IEEE Trans.
Wireless Commun. 17(3), 2018: the channel FIM (eqs. 14-16).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.linalg import qr, solve_triangular

from estimators.arrays import SPEED_OF_LIGHT, rotation_matrix
from estimators.base import EstimatorInputError
from estimators.fisher import gaussian_fim
from estimators.types import ArrayGeometry, Observation
from estimators.typing import ComplexArray, FloatArray


@dataclass(frozen=True)
class Ula:
    """A uniform linear array: ``size`` elements ``spacing`` [m] apart along ``axis``
    (unit vector in the device's local frame), centred on the device position."""

    size: int
    spacing: float
    axis: FloatArray

    @classmethod
    def of(cls, array: ArrayGeometry, what: str) -> Ula:
        layout = array.linear_layout()
        if layout is None or not layout.centred:
            raise EstimatorInputError(
                f"{what}: needs a centred, single-polarized uniform linear array of >= 2 "
                f"antennas (rows=1 or cols=1), got {array.rows}x{array.cols} "
                f"{array.polarization}"
            )
        return cls(layout.size, layout.spacing, layout.axis)

    def response(self, phase: npt.ArrayLike) -> ComplexArray:
        """``a(ω)``: ``[..., size]`` for spatial frequencies ``ω [...]`` [rad/element]."""
        m = np.arange(self.size) - (self.size - 1) / 2
        return np.exp(1j * np.asarray(phase, dtype=np.float64)[..., None] * m)


@dataclass(frozen=True)
class LinkGeometry:
    """Known geometry of one BS-UE link (world frame).

    ``bs_position [3]`` [m], ``bs_axis [3]`` world ULA axis of the BS, ``bs_boresight
    [3]`` its world broadside (the half-space the BS serves), ``ue_axis_local [3]`` the
    UE ULA axis in the UE frame, ``ue_height`` [m], ``wavelength`` [m], spacings [m].
    """

    bs_position: FloatArray
    bs_axis: FloatArray
    bs_boresight: FloatArray
    bs_spacing: float
    ue_axis_local: FloatArray
    ue_spacing: float
    ue_height: float
    wavelength: float

    def ue_axis(self, yaw: float) -> FloatArray:
        """``[3]`` the UE ULA's world axis at ``yaw`` [rad] (pitch = roll = 0)."""
        return np.asarray(rotation_matrix([yaw, 0.0, 0.0]) @ self.ue_axis_local)

    def paths(self, x: FloatArray,
              ground_height: float | npt.ArrayLike | None = None) -> FloatArray:
        """The mapping ``x ↦ η`` of eq. (3): ``[..., path, 3]`` of ``(c τ [m], ω_R, ω_T)``.

        ``x [..., n] = (p_x, p_y, α, s_1x, s_1y, ...)`` [m, rad] (leading dimensions: a
        batch of points). Heights: UE at ``ue_height``, scatterers on vertical
        reflectors (module docstring). ``ground_height`` [m] (a scalar, or ``[...]`` per
        point): where given (outside the paper), each path's bounce off a horizontal
        ground at that height follows, in the same order: the same horizontal (unfolded)
        path from the BS's image in the ground, of length ``sqrt(D² + (z_b + z_p - 2
        h)²)`` (``D`` its horizontal length), leaving and arriving at that downward slope.
        """
        x = np.asarray(x, dtype=np.float64)
        b = self.bs_position
        batch = x.shape[:-1]
        p = np.stack([x[..., 0], x[..., 1], np.full(batch, self.ue_height)], axis=-1)
        k = 2 * np.pi / self.wavelength
        yaw = x[..., 2]
        e_r = rotation_matrix(np.stack([yaw, np.zeros(batch), np.zeros(batch)], axis=-1)) \
            @ self.ue_axis_local  # [..., 3]
        e_t = self.bs_axis
        s = self.scatterer_position(x)  # [..., Q, 3]
        v = p - b
        dist = np.linalg.norm(v, axis=-1)
        u = v / dist[..., None]
        los = np.stack([dist, -k * self.ue_spacing * np.sum(u * e_r, axis=-1),
                        k * self.bs_spacing * (u @ e_t)], axis=-1)[..., None, :]
        vt, vr = s - b, s - p[..., None, :]
        lt, lr = np.linalg.norm(vt, axis=-1), np.linalg.norm(vr, axis=-1)
        bounces = np.stack([lt + lr,
                            k * self.ue_spacing * np.sum(vr * e_r[..., None, :], axis=-1) / lr,
                            k * self.bs_spacing * (vt @ e_t) / lt], axis=-1)
        rows = [los, bounces]
        if ground_height is not None:
            # Each path's ground bounce: the same horizontal (unfolded) path, the BS's
            # image in the ground as its source — it leaves and arrives at the same
            # downward slope (in either order of a wall and the ground).
            drop = 2.0 * np.asarray(ground_height, dtype=np.float64) - p[..., 2] - b[2]
            start = np.concatenate([v[..., None, :2], vt[..., :2]], axis=-2)  # [..., L, 2]
            end = np.concatenate([-v[..., None, :2], vr[..., :2]], axis=-2)
            start_len = np.hypot(start[..., 0], start[..., 1])
            end_len = np.hypot(end[..., 0], end[..., 1])
            horizontal = np.concatenate([start_len[..., :1],
                                         start_len[..., 1:] + end_len[..., 1:]], axis=-1)
            drop = np.broadcast_to(drop[..., None], horizontal.shape)
            lg = np.hypot(horizontal, drop)
            dt = np.concatenate([start * (horizontal / start_len)[..., None], drop[..., None]],
                                axis=-1) / lg[..., None]
            dr = np.concatenate([end * (horizontal / end_len)[..., None], drop[..., None]],
                                axis=-1) / lg[..., None]
            rows.append(np.stack([lg, k * self.ue_spacing * np.sum(dr * e_r[..., None, :],
                                                                    axis=-1),
                                  k * self.bs_spacing * (dt @ e_t)], axis=-1))
        return np.concatenate(rows, axis=-2)

    def scatterer_position(self, x: FloatArray) -> FloatArray:
        """``[..., Q, 3]`` scatterers of ``x [..., n]`` with their vertical-reflector
        heights [m]."""
        x = np.asarray(x, dtype=np.float64)
        b = self.bs_position
        q = x[..., 3:3 + 2 * ((x.shape[-1] - 3) // 2)].reshape(*x.shape[:-1], -1, 2)
        d1 = np.hypot(q[..., 0] - b[0], q[..., 1] - b[1])
        d2 = np.hypot(x[..., None, 0] - q[..., 0], x[..., None, 1] - q[..., 1])
        height = b[2] + (self.ue_height - b[2]) * d1 / np.maximum(d1 + d2, 1e-12)
        return np.concatenate([q, height[..., None]], axis=-1)


# --------------------------------------------------------------------- the link


def least_squares_gains(A: ComplexArray, y: ComplexArray) -> ComplexArray:
    """``argmin_g ||y - A g||`` for atoms ``A [sample, path]``, ``y [sample]``.

    By Householder QR (4x faster than ``numpy.linalg.lstsq``'s SVD at ``4096 x 4``,
    a drive snapshot's size, where the ground refit solves it hundreds of times), or by
    ``lstsq`` (least norm) where ``A`` is numerically rank-deficient, at ``lstsq``'s own
    cut-off (``eps max(A.shape)`` of the largest singular value, ``|R_ii|`` here).
    """
    Q, R = qr(A, mode="economic", check_finite=False)
    diagonal = np.abs(np.diag(R))
    if diagonal.size and diagonal.min() > np.finfo(float).eps * max(A.shape) * diagonal.max():
        return np.asarray(solve_triangular(R, Q.conj().T @ y, check_finite=False),
                          dtype=np.complex128)
    return np.asarray(np.linalg.lstsq(A, y, rcond=None)[0], dtype=np.complex128)


@dataclass(frozen=True)
class LocmanSnapshot:
    """One snapshot of a MIMO observation in the paper's form (eq. 4).

    ``y [subcarrier, Nr, G]``, ``x [subcarrier, Nt, G]`` (``X[k] = F diag(s[:, k])``),
    ``frequencies [subcarrier]`` [Hz], the ULAs, the link geometry and ``σ²`` [W];
    ``free_space_known``: a LOS's amplitude is Friis' (``Observation.free_space_known``).
    """

    y: ComplexArray
    x: ComplexArray
    frequencies: FloatArray
    rx: Ula
    tx: Ula
    geometry: LinkGeometry
    noise_variance: float
    free_space_known: bool = False

    @property
    def spacing_hz(self) -> float:
        return float(self.frequencies[1] - self.frequencies[0])

    def channel(self, gain: ComplexArray, params: FloatArray) -> ComplexArray:
        """``H [subcarrier, Nr, Nt]`` of paths ``params [path, 3] = (c τ, ω_R, ω_T)``."""
        delay = np.exp(-2j * np.pi * np.outer(params[:, 0] / SPEED_OF_LIGHT, self.frequencies))
        return np.asarray(np.einsum("l,lk,lr,lt->krt", gain, delay, self.rx.response(
            params[:, 1]), self.tx.response(params[:, 2])))

    def atoms(self, params: FloatArray) -> ComplexArray:
        """Unit-gain received signals of each path: ``[path, subcarrier, Nr, G]``."""
        delay = np.exp(-2j * np.pi * np.outer(params[:, 0] / SPEED_OF_LIGHT, self.frequencies))
        at_x = np.einsum("lt,ktg->lkg", self.tx.response(params[:, 2]), self.x)
        return np.asarray(delay[:, :, None, None] * self.rx.response(params[:, 1])[:, None, :,
                          None] * at_x[:, :, None, :])

    def fit_gains(self, params: FloatArray) -> ComplexArray:
        """Least-squares path gains given the geometry (the paper's footnote 2)."""
        return least_squares_gains(self.atoms(params).reshape(len(params), -1).T,
                                   self.y.ravel())

    def atom_derivatives(self, params: FloatArray) -> tuple[ComplexArray, ComplexArray]:
        """The atoms (:meth:`atoms`, ``[path, subcarrier, Nr, G]``) and their derivatives
        ``∂/∂(c τ, ω_R, ω_T)``: ``[path, 3, subcarrier, Nr, G]``."""
        atoms = self.atoms(params)  # [L, K, Nr, G]
        m_r = np.arange(self.rx.size) - (self.rx.size - 1) / 2
        m_t = np.arange(self.tx.size) - (self.tx.size - 1) / 2
        at_x = np.einsum("lt,t,ktg->lkg", self.tx.response(params[:, 2]), 1j * m_t, self.x)
        delay = np.exp(-2j * np.pi * np.outer(params[:, 0] / SPEED_OF_LIGHT, self.frequencies))
        d_tx = delay[:, :, None, None] * self.rx.response(params[:, 1])[:, None, :, None] * \
            at_x[:, :, None, :]
        d_range = atoms * (-2j * np.pi * self.frequencies / SPEED_OF_LIGHT)[None, :, None, None]
        d_rx = atoms * (1j * m_r)[None, None, :, None]
        return atoms, np.stack([d_range, d_rx, d_tx], axis=1)

    def jacobian(self, gain: ComplexArray, params: FloatArray) -> ComplexArray:
        """``∂μ/∂η``: ``[K Nr G, 5 path]``, per path ``(c τ, ω_R, ω_T, Re g, Im g)``."""
        atoms, d_atoms = self.atom_derivatives(params)
        columns = []
        for l_ in range(len(params)):
            g = gain[l_]
            columns += [g * d_atoms[l_, 0], g * d_atoms[l_, 1], g * d_atoms[l_, 2],
                        atoms[l_], 1j * atoms[l_]]
        return np.stack([c.ravel() for c in columns], axis=-1)

    def pilot_compressed(self) -> tuple[LocmanSnapshot, float]:
        """The snapshot projected on its pilots' row space, and the energy [W] it drops.

        With ``X[k]^H = Q_k R_k`` (economic QR, ``Q_k [G, r]``, ``r = min(G, Nt)``),
        ``||Y[k] - H X[k]||² = ||Y[k] Q_k - H R_k^H||² + ||Y[k] (I - Q_k Q_k^H)||²`` for
        every channel ``H``: the snapshot with ``y = Y Q``, ``x = R^H`` has the same
        least-squares fits, its residuals less the dropped energy (the second term, which
        no model changes), and white noise of the same ``σ²`` (``Q_k`` is orthonormal).
        ``G / r`` times fewer samples; the snapshot itself (and 0) where ``G <= Nt``.
        """
        num_tx, num_pilots = self.x.shape[1:]
        if num_pilots <= num_tx:
            return self, 0.0
        Q, R = np.linalg.qr(np.conj(np.swapaxes(self.x, 1, 2)))  # [K, G, r], [K, r, Nt]
        y = self.y @ Q  # [K, Nr, r]
        dropped = float(np.sum(np.abs(self.y - y @ np.conj(np.swapaxes(Q, 1, 2))) ** 2))
        compressed = replace(
            self, y=np.ascontiguousarray(y),
            x=np.ascontiguousarray(np.conj(np.swapaxes(R, 1, 2))))
        return compressed, dropped

    def fim(self, gain: ComplexArray, params: FloatArray) -> FloatArray:
        """Channel-domain FIM ``(2/σ²) Re{D^H D}`` over ``(c τ, ω_R, ω_T, Re g, Im g)``."""
        return gaussian_fim(self.jacobian(gain, params), self.noise_variance)


def snapshot(obs: Observation, t: int, bs: int, ue_height: float | None) -> LocmanSnapshot:
    """The paper's per-subcarrier form of snapshot ``t``, BS ``bs`` of a validated
    downlink observation with identity combining."""
    bs_array, ue_array = obs.bs_array, obs.ue_array
    tx, rx = Ula.of(bs_array, "BS array"), Ula.of(ue_array, "UE array")
    rot = rotation_matrix(obs.bs_orientation[bs])
    b = np.asarray(obs.bs_position[bs], dtype=np.float64)
    geometry = LinkGeometry(
        bs_position=b, bs_axis=np.asarray(rot @ tx.axis), bs_boresight=np.asarray(rot[:, 0]),
        bs_spacing=tx.spacing,
        ue_axis_local=rx.axis, ue_spacing=rx.spacing,
        ue_height=float(b[2] if ue_height is None else ue_height), wavelength=obs.wavelength,
    )
    F = obs.precoders[t, bs]  # [Nt, G]
    x = np.einsum("tg,gk->ktg", F, obs.pilots)
    return LocmanSnapshot(
        y=np.ascontiguousarray(obs.y[t, bs].transpose(2, 0, 1)), x=np.ascontiguousarray(x),
        frequencies=np.asarray(obs.frequencies, dtype=np.float64), rx=rx, tx=tx,
        geometry=geometry, noise_variance=float(obs.noise_variance[t, bs]),
        free_space_known=obs.free_space_known,
    )


# ------------------------------------------------------------ channel parameters


@dataclass(frozen=True)
class ChannelEstimate:
    """Estimated paths, LOS first: ``params [path, 3] = (c τ [m], ω_R, ω_T)`` [rad per
    element step], ``gain [path]`` complex; ``order`` the number of paths found;
    ``diagnostics`` of the channel stage (e.g. the solver's iterations)."""

    params: FloatArray
    gain: ComplexArray
    diagnostics: Mapping[str, float] = field(default_factory=dict)

    @property
    def order(self) -> int:
        return int(self.params.shape[0])


def order_paths(
    snap: LocmanSnapshot, params: FloatArray,
    los_path: Literal["auto", "strongest", "earliest"],
    diagnostics: Mapping[str, float] | None = None,
) -> ChannelEstimate:
    """Gains by least squares; LOS = strongest (§III-D; also for ``"auto"``, which the
    position stage may revise) or earliest path; NLOS by delay."""
    gain = snap.fit_gains(params)
    los = int(np.argmax(np.abs(gain))) if los_path == "strongest" else int(np.argmin(params[:, 0]))
    rest = [i for i in np.argsort(params[:, 0]) if i != los]
    idx = [los, *rest]
    return ChannelEstimate(params=params[idx], gain=gain[idx], diagnostics=diagnostics or {})


def range_from_delay_phase(phase: FloatArray, spacing_hz: float) -> FloatArray:
    """``c τ`` [m] from ``ω_τ = 2π Δf τ`` (mod 2π), in ``[0, c/Δf)``."""
    return np.asarray(np.mod(phase, 2 * np.pi) / (2 * np.pi * spacing_hz) * SPEED_OF_LIGHT)
