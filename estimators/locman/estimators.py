"""Joint localization and orientation from MIMO-OFDM pilots (LOCMAN) and its baseline.

A BS with an ``Nt``-element ULA sends ``G`` pilot transmissions on ``K`` subcarriers to
a target with an ``Nr``-element ULA of unknown orientation (Li et al., eqs. 1-4;
Shahmansoori et al.'s model):

    Y[k] = H[k] X[k] + N[k],   H[k] = Σ_l g_l e^{-j2π f_k τ_l} a_R(ω_R,l) a_T(ω_T,l)^T,

``Y[k] [Nr, G]``, ``X[k] = F diag(s[:, k]) [Nt, G]``, ``a(ω)_m = e^{jω(m - (N-1)/2)}``
(the twin's steering vector of a centred ULA, ``ω = 2π d/λ u·e_axis`` per element
step). Path ``l = 0`` is the LOS; each NLOS path bounces once off a scatterer ``s_l``.

* ``locman`` — the paper's method: multi-dimensional atomic norm denoising of the
  virtual channel matrix (:mod:`estimators.locman.anm`, eqs. 5-17, solved by ADMM or the SDP),
  per-path ``(τ, ω_R, ω_T)`` from the Vandermonde decompositions (MaPP, §III-D), model
  order from the eigenvalue threshold, then the EXIP-weighted nonlinear least squares
  for position, orientation and scatterers (eqs. 19-21) by Levenberg-Marquardt.
* ``dcs-somp`` — Shahmansoori et al.'s DCS-SOMP channel estimation on a
  (``ω_R``, ``ω_T``) grid, TOA from the phase progression of the per-subcarrier
  coefficients, and the *same* position/orientation mapping, without SAGE refinement
  (as the paper compares, Fig. 5-6, footnote 4).

Geometry (eq. 3): 2D unknowns — UE ``(x, y)``, yaw ``α``, scatterers ``(x, y)`` — in a
3D world with known heights: the UE at ``ue_height`` (default: the BS's), each
scatterer on a vertical reflector, so its height follows the unfolded path,
``z_s = z_b + (z_p - z_b) d_1 / (d_1 + d_2)`` with ``d_1, d_2`` the horizontal BS-s and
s-UE distances. With all heights equal this is exactly the paper's planar geometry;
on the twin it is exact for wall reflections. The UE array is horizontal and only
its yaw is unknown (pitch = roll = 0).

References
----------
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022: signal model (1)-(4), geometry (3), virtual channel (5)-(6), denoiser
(13)-(14), SDP (17), MaPP and model order §III-D, EXIP WLS (19)-(21), §IV-D (22).
A. Shahmansoori, G. E. Garcia, G. Destino, G. Seco-Granados, H. Wymeersch, "Position
and orientation estimation through millimeter-wave MIMO in 5G systems", IEEE Trans.
Wireless Commun. 17(3), 2018: DCS-SOMP (§IV-A), CRLB (§III).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from estimators.arrays import SPEED_OF_LIGHT, rotation_matrix
from estimators.base import (
    Bound,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    estimate_bytes,
    largest_stage,
    register,
)
from estimators.fisher import crlb as invert_fim
from estimators.fisher import error_bound, gaussian_fim, numerical_jacobian
from estimators.locman import anm
from estimators.types import ArrayGeometry, ChannelTruth, Observation
from estimators.typing import ComplexArray, FloatArray

#: Relative collinearity/spacing tolerance when checking that an array is a ULA.
_ULA_REL = 1e-6
#: Step of the finite differences of the geometric mapping (smooth, O(1-100) m values).
_GEOMETRY_STEP = 1e-6


# ---------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Ula:
    """A uniform linear array: ``size`` elements ``spacing`` [m] apart along ``axis``
    (unit vector in the device's local frame), centred on the device position."""

    size: int
    spacing: float
    axis: FloatArray

    @classmethod
    def of(cls, array: ArrayGeometry, what: str) -> Ula:
        r = np.asarray(array.element_positions, dtype=np.float64)
        n = r.shape[0]
        if n < 2:
            raise EstimatorInputError(f"{what}: needs a ULA of >= 2 antennas, got {n}")
        step = r[1] - r[0]
        spacing = float(np.linalg.norm(step))
        expected = r[0] + np.arange(n)[:, None] * step
        scale = max(spacing * n, 1e-12)
        if spacing <= 0 or np.max(np.abs(r - expected)) > _ULA_REL * scale or np.linalg.norm(
                r.mean(axis=0)) > _ULA_REL * scale:
            raise EstimatorInputError(
                f"{what}: needs a centred, single-polarized uniform linear array "
                f"(rows=1 or cols=1), got {array.rows}x{array.cols} {array.polarization}"
            )
        return cls(n, spacing, step / spacing)

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
        return np.asarray(rotation_matrix([yaw, 0.0, 0.0]) @ self.ue_axis_local)

    def paths(self, x: FloatArray) -> FloatArray:
        """The mapping ``x ↦ η`` of eq. (3): ``[path, 3]`` of ``(c τ [m], ω_R, ω_T)``.

        ``x = (p_x, p_y, α, s_1x, s_1y, ...)`` [m, rad]. Heights: UE at ``ue_height``,
        scatterers on vertical reflectors (module docstring).
        """
        b = self.bs_position
        p = np.array([x[0], x[1], self.ue_height])
        k = 2 * np.pi / self.wavelength
        e_t, e_r = self.bs_axis, self.ue_axis(float(x[2]))
        rows = []
        v = p - b
        dist = float(np.linalg.norm(v))
        u = v / dist
        rows.append((dist, -k * self.ue_spacing * (u @ e_r), k * self.bs_spacing * (u @ e_t)))
        for q in range((len(x) - 3) // 2):
            sx, sy = x[3 + 2 * q], x[4 + 2 * q]
            d1 = float(np.hypot(sx - b[0], sy - b[1]))
            d2 = float(np.hypot(p[0] - sx, p[1] - sy))
            s = np.array([sx, sy, b[2] + (p[2] - b[2]) * d1 / max(d1 + d2, 1e-12)])
            vt, vr = s - b, s - p
            lt, lr = float(np.linalg.norm(vt)), float(np.linalg.norm(vr))
            rows.append((lt + lr, k * self.ue_spacing * (vr @ e_r) / lr,
                         k * self.bs_spacing * (vt @ e_t) / lt))
        return np.asarray(rows, dtype=np.float64)

    def scatterer_position(self, x: FloatArray) -> FloatArray:
        """``[Q, 3]`` scatterers of ``x`` with their vertical-reflector heights [m]."""
        b = self.bs_position
        out = []
        for q in range((len(x) - 3) // 2):
            sx, sy = x[3 + 2 * q], x[4 + 2 * q]
            d1 = float(np.hypot(sx - b[0], sy - b[1]))
            d2 = float(np.hypot(x[0] - sx, x[1] - sy))
            out.append([sx, sy, b[2] + (self.ue_height - b[2]) * d1 / max(d1 + d2, 1e-12)])
        return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def wrap(angle: npt.ArrayLike) -> FloatArray:
    """Angles wrapped to ``(-π, π]``."""
    return np.asarray(np.angle(np.exp(1j * np.asarray(angle, dtype=np.float64))))


# --------------------------------------------------------------------- the link


@dataclass(frozen=True)
class LocmanSnapshot:
    """One snapshot of a MIMO observation in the paper's form (eq. 4).

    ``y [subcarrier, Nr, G]``, ``x [subcarrier, Nt, G]`` (``X[k] = F diag(s[:, k])``),
    ``frequencies [subcarrier]`` [Hz], the ULAs, the link geometry and ``σ²`` [W].
    """

    y: ComplexArray
    x: ComplexArray
    frequencies: FloatArray
    rx: Ula
    tx: Ula
    geometry: LinkGeometry
    noise_variance: float

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
        A = self.atoms(params).reshape(len(params), -1)
        gains, *_ = np.linalg.lstsq(A.T, self.y.ravel(), rcond=None)
        return np.asarray(gains, dtype=np.complex128)

    def jacobian(self, gain: ComplexArray, params: FloatArray) -> ComplexArray:
        """``∂μ/∂η``: ``[K Nr G, 5 path]``, per path ``(c τ, ω_R, ω_T, Re g, Im g)``."""
        atoms = self.atoms(params)  # [L, K, Nr, G]
        m_r = np.arange(self.rx.size) - (self.rx.size - 1) / 2
        m_t = np.arange(self.tx.size) - (self.tx.size - 1) / 2
        at_x = np.einsum("lt,t,ktg->lkg", self.tx.response(params[:, 2]), 1j * m_t, self.x)
        delay = np.exp(-2j * np.pi * np.outer(params[:, 0] / SPEED_OF_LIGHT, self.frequencies))
        d_tx = delay[:, :, None, None] * self.rx.response(params[:, 1])[:, None, :, None] * \
            at_x[:, :, None, :]
        columns = []
        for l_ in range(len(params)):
            g = gain[l_]
            columns += [
                g * atoms[l_] * (-2j * np.pi * self.frequencies / SPEED_OF_LIGHT)[:, None, None],
                g * atoms[l_] * (1j * m_r)[None, :, None],
                g * d_tx[l_],
                atoms[l_],
                1j * atoms[l_],
            ]
        return np.stack([c.ravel() for c in columns], axis=-1)

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
    snap: LocmanSnapshot, params: FloatArray, los_path: Literal["strongest", "earliest"],
    diagnostics: Mapping[str, float] | None = None,
) -> ChannelEstimate:
    """Gains by least squares; LOS = strongest (§III-D) or earliest path; NLOS by delay."""
    gain = snap.fit_gains(params)
    los = int(np.argmax(np.abs(gain))) if los_path == "strongest" else int(np.argmin(params[:, 0]))
    rest = [i for i in np.argsort(params[:, 0]) if i != los]
    idx = [los, *rest]
    return ChannelEstimate(params=params[idx], gain=gain[idx], diagnostics=diagnostics or {})


def _tau_from_phase(phase: FloatArray, spacing_hz: float) -> FloatArray:
    """``c τ`` [m] from ``ω_τ = 2π Δf τ`` (mod 2π), in ``[0, c/Δf)``."""
    return np.asarray(np.mod(phase, 2 * np.pi) / (2 * np.pi * spacing_hz) * SPEED_OF_LIGHT)


# --------------------------------------------------------- position (eqs. 19-21)


def _cone_azimuths(axis: FloatArray, cosine: float, zenith: float = np.pi / 2) -> list[float]:
    """Azimuths ``φ`` with ``u(φ, zenith)·axis = cosine`` (the ULA's two mirror images)."""
    horizontal = float(np.hypot(axis[0], axis[1]))
    if horizontal < 1e-9:
        return []
    target = (cosine - np.cos(zenith) * axis[2]) / (np.sin(zenith) * horizontal)
    spread = float(np.arccos(np.clip(target, -1.0, 1.0)))
    psi = float(np.arctan2(axis[1], axis[0]))
    return [psi + spread, psi - spread]


def initial_points(geometry: LinkGeometry, channel: ChannelEstimate) -> list[FloatArray]:
    """Starting points of eq. (21): UE from the LOS TOA and AOD, yaw from the LOS AOA,
    each scatterer where its departure ray meets its TOA ellipse.

    A ULA cannot tell a direction from its mirror image through the array axis. At the
    BS the whole geometry mirrored through the axis fits equally well, so the UE is
    taken in front of the BS (its broadside half-space, as the paper's angles in
    ``(-π/2, π/2)``); the UE's own mirror ambiguity gives two yaws, both returned (the
    NLOS paths tell them apart in the WLS); each scatterer takes the mirror image whose
    arrival phase fits the UE best.
    """
    g = geometry
    b = g.bs_position
    k = 2 * np.pi / g.wavelength
    rho0, w_r0, w_t0 = channel.params[0]
    dz = g.ue_height - b[2]
    horiz = float(np.sqrt(max(rho0**2 - dz**2, 1e-12)))
    zen = float(np.arctan2(horiz, dz))
    points = []
    candidates = _cone_azimuths(g.bs_axis, w_t0 / (k * g.bs_spacing), zen)
    front = [phi for phi in candidates
             if np.cos(phi) * g.bs_boresight[0] + np.sin(phi) * g.bs_boresight[1] >= 0]
    for phi in front or candidates:
        p = b[:2] + horiz * np.array([np.cos(phi), np.sin(phi)])
        # The UE sees the BS in the opposite direction (zenith π - zen).
        for yaw_offset in _cone_azimuths(g.ue_axis_local, w_r0 / (k * g.ue_spacing), np.pi - zen):
            yaw = float(wrap(phi + np.pi - yaw_offset))
            x = [p[0], p[1], yaw]
            for rho, w_r, w_t in channel.params[1:]:
                x += list(_initial_scatterer(g, p, yaw, rho, w_r, w_t))
            points.append(np.asarray(x, dtype=np.float64))
    return points


def _initial_scatterer(
    g: LinkGeometry, p: FloatArray, yaw: float, rho: float, w_r: float, w_t: float
) -> FloatArray:
    b = g.bs_position[:2]
    k = 2 * np.pi / g.wavelength
    v = p - b
    # Horizontal (unfolded) path length of a vertical-reflector bounce.
    rho_h = float(np.sqrt(max(rho**2 - (g.ue_height - g.bs_position[2]) ** 2, 1e-12)))
    best, best_err = b + 0.5 * rho_h * v / max(float(np.linalg.norm(v)), 1e-12), np.inf
    for phi in _cone_azimuths(g.bs_axis, w_t / (k * g.bs_spacing)):
        u = np.array([np.cos(phi), np.sin(phi)])
        denom = 2.0 * (rho_h - u @ v)
        if denom <= 0:
            continue
        d = (rho_h**2 - v @ v) / denom
        if d <= 0:
            continue
        s = b + d * u
        x = np.array([p[0], p[1], yaw, s[0], s[1]])
        err = abs(float(wrap(g.paths(x)[1, 1] - w_r)))
        if err < best_err:
            best, best_err = s, err
    return np.asarray(best, dtype=np.float64)


@dataclass(frozen=True)
class Fit:
    """A WLS solution: ``x`` (eq. 19's unknowns), ``cost`` (its weighted residual)."""

    x: FloatArray
    cost: float


def geometric_weight(snap: LocmanSnapshot, channel: ChannelEstimate) -> FloatArray:
    """EXIP weight (eq. 20): the Hessian of the data term at the estimated channel with
    the gains fixed (Gauss-Newton: ``Re{D^H D}``, over ``(c τ, ω_R, ω_T)`` per path)."""
    D = snap.jacobian(channel.gain, channel.params)
    keep = (5 * np.arange(channel.order)[:, None] + np.arange(3)).ravel()
    D = D[:, keep]
    return np.real(D.conj().T @ D)


def solve_position(snap: LocmanSnapshot, channel: ChannelEstimate, max_iterations: int) -> Fit:
    """The EXIP-weighted nonlinear least squares (eq. 19) by Levenberg-Marquardt from
    every starting point of eq. (21); the fit of least weighted cost wins."""
    W = geometric_weight(snap, channel)
    w, Q = np.linalg.eigh(0.5 * (W + W.T))
    root = Q * np.sqrt(np.clip(w, 0.0, None))  # W = root root^T
    measured = channel.params.ravel()
    angular = np.tile([False, True, True], channel.order)

    def residual(x: FloatArray) -> FloatArray:
        diff = measured - snap.geometry.paths(x).ravel()
        diff[angular] = wrap(diff[angular])
        return np.asarray(root.T @ diff)

    best = Fit(np.full(3 + 2 * (channel.order - 1), np.nan), np.inf)
    for x0 in initial_points(snap.geometry, channel):
        try:
            res = least_squares(residual, x0, method="lm", max_nfev=max_iterations,
                                x_scale="jac")
        except ValueError:
            continue
        cost = float(np.sum(res.fun**2))
        if np.all(np.isfinite(res.x)) and cost < best.cost:
            best = Fit(np.asarray(res.x, dtype=np.float64), cost)
    if not np.isfinite(best.cost):
        raise ArithmeticError("no starting point of eq. (21) gave a finite fit")
    return best


# ------------------------------------------------------------------------ bound


def geometric_transform(geometry: LinkGeometry, x: FloatArray, num_paths: int) -> FloatArray:
    """``T = ∂η/∂x`` from ``(x, gains)`` to per-path ``(c τ, ω_R, ω_T, Re g, Im g)``.

    The geometric block by central differences of :meth:`LinkGeometry.paths` (a smooth
    closed form); the gains map to themselves.
    """
    n_x = len(x)
    D = np.real(numerical_jacobian(lambda v: geometry.paths(v).ravel(), x,
                                   _GEOMETRY_STEP * np.maximum(1.0, np.abs(x))))
    T = np.zeros((5 * num_paths, n_x + 2 * num_paths))
    for l_ in range(num_paths):
        T[5 * l_:5 * l_ + 3, :n_x] = D[3 * l_:3 * l_ + 3]
        T[5 * l_ + 3:5 * l_ + 5, n_x + 2 * l_:n_x + 2 * l_ + 2] = np.eye(2)
    return T


# ------------------------------------------------------------------ estimators


class _LocmanBase(Estimator):
    """Shared pipeline: channel parameters (subclass), then the WLS of eqs. (19)-(21)."""

    sounding: ClassVar[dict[str, Any]] = {
        "link": "downlink", "precoder": "random", "num_beams": 16, "combiner": "identity",
        "pilots": "random",
    }

    def __init__(
        self,
        *,
        num_paths: int = 3,
        order_threshold: float | None = None,
        los_path: Literal["strongest", "earliest"] = "strongest",
        ue_height: float | None = None,
        max_iterations: int = 200,
        bs: int = 0,
    ) -> None:
        self.num_paths = num_paths
        self.order_threshold = order_threshold
        self.los_path = los_path
        self.ue_height = ue_height
        self.max_iterations = max_iterations
        self.bs = bs

    @property
    def num_scatterers(self) -> int:
        return self.num_paths - 1

    @property
    def num_estimated_paths(self) -> int:
        return self.num_paths

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.num_paths < 1:
            raise EstimatorInputError(f"{self.name}: num_paths must be >= 1")
        samples = 2 * int(np.prod(obs.y.shape[2:]))
        unknowns = 5  # complex gain, delay, AOA, AOD
        if self.num_paths > samples // unknowns:
            raise EstimatorInputError(
                f"{self.name}: num_paths={self.num_paths} exceeds {samples // unknowns}, "
                f"the {samples} real samples of a snapshot over {unknowns} unknowns a path")
        if self.max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: max_iterations={self.max_iterations} must be >= 1")
        if self.los_path not in ("strongest", "earliest"):
            raise EstimatorInputError(f"{self.name}: los_path must be 'strongest' or 'earliest'")
        if obs.link != "downlink":
            raise EstimatorInputError(f"{self.name}: needs a downlink observation")
        if not 0 <= self.bs < obs.num_bs:
            raise EstimatorInputError(f"{self.name}: bs={self.bs} but {obs.num_bs} BS(s)")
        Nr = obs.ue_array.num_ant
        W = obs.combiners[0, self.bs]
        if W.shape != (Nr, Nr) or not np.allclose(W, np.eye(Nr)):
            raise EstimatorInputError(
                f"{self.name}: needs every UE antenna observed (combiner 'identity')")
        K = obs.frequencies.size
        if K < 3 or not np.allclose(np.diff(obs.frequencies), obs.frequencies[1]
                                    - obs.frequencies[0]):
            raise EstimatorInputError(f"{self.name}: needs >= 3 uniformly spaced subcarriers")
        Ula.of(obs.bs_array, f"{self.name}: BS array")
        ula = Ula.of(obs.ue_array, f"{self.name}: UE array")
        if abs(ula.axis[2]) > 1 - 1e-6:
            raise EstimatorInputError(f"{self.name}: a vertical UE array cannot see its yaw")

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """Bytes of the larger of the two stages: the channel stage's arrays
        (:meth:`_channel_bytes`) or, under ``num_paths``, the position stage's EXIP
        Jacobian (:func:`geometric_weight`: ``[K Nr G, 5 path]`` complex, its columns
        listed and stacked beside the paths' atoms, 192 bytes a path and received
        sample) with the per-path results."""
        T, _, S, G, K = obs.y.shape
        P = self.num_paths
        position = 192.0 * self._max_order(K) * K * S * G + estimate_bytes(T, P, P - 1)
        return largest_stage(self._channel_bytes(K, S, obs.bs_array.num_ant, G),
                             {"num_paths": position})

    def _channel_bytes(self, num_subcarriers: int, num_rx: int, num_tx: int,
                       num_beams: int) -> dict[str, float]:
        """Peak bytes of :meth:`channel_parameters` on ``K`` subcarriers, ``Nr`` x ``Nt``
        antennas and ``G`` pilot beams, keyed by hyper-parameter."""
        return {}

    def _max_order(self, num_subcarriers: int) -> int:
        """The most paths :meth:`channel_parameters` can return."""
        return self.num_paths

    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        """Per-path ``(c τ, ω_R, ω_T)`` and gains, LOS first (the method's first stage)."""
        raise NotImplementedError

    def localize(self, snap: LocmanSnapshot, channel: ChannelEstimate) -> SnapshotEstimate:
        """Position, yaw and scatterers from the channel parameters (eqs. 19-21)."""
        fit = solve_position(snap, channel, self.max_iterations)
        g = snap.geometry
        ue = np.array([fit.x[0], fit.x[1], g.ue_height])
        Q = self.num_scatterers
        scatterers = np.full((Q, 3), np.nan)
        found = g.scatterer_position(fit.x)
        scatterers[: len(found)] = found
        P = self.num_paths
        tau = np.full(P, np.nan)
        aod = np.full((P, 2), np.nan)
        gain = np.full(P, np.nan + 0j)
        L = channel.order
        tau[:L] = channel.params[:, 0] / SPEED_OF_LIGHT
        # Departure directions of the fitted geometry (the ULA alone leaves a mirror image).
        directions = np.vstack([ue, found]) - g.bs_position
        aod[:L, 0] = np.arctan2(directions[:, 1], directions[:, 0])
        aod[:L, 1] = np.arctan2(np.hypot(directions[:, 0], directions[:, 1]), directions[:, 2])
        gain[:L] = channel.gain
        valid = np.zeros(Q, bool)
        valid[: len(found)] = True
        # With the LOS alone a ULA's mirror image fits the yaw exactly as well.
        yaw = float(fit.x[2]) if L > 1 else float("nan")
        return SnapshotEstimate(
            ue_position=ue, scatterers=scatterers, scatterer_valid=valid, path_tau=tau,
            path_aod=aod, path_gain=gain, ue_yaw=yaw,
            diagnostics={"wls_cost": fit.cost, "num_paths": float(L), **channel.diagnostics},
        )

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        snap = snapshot(obs, t, self.bs, self.ue_height)
        return self.localize(snap, self.channel_parameters(snap))

    # -- bound --------------------------------------------------------------------

    def crlb(self, obs: Observation, truth: ChannelTruth) -> Bound:
        """Position and orientation error bounds (Shahmansoori et al. §III) at the true
        channel of every snapshot.

        The first ``num_paths`` valid paths of ``truth`` are the model's (path 0 the
        LOS, the others single-bounce). ``channel_crlb [snapshot, 5 L, 5 L]`` is on
        per-path ``(c τ [m], ω_R, ω_T, Re g, Im g)``; ``position_error_bound`` on the
        UE ``(x, y)``, ``scatterer_error_bound`` on each scatterer ``(x, y)``. The
        orientation bound (on the yaw, [rad]) is ``orientation_error_bound`` of
        :func:`locman_bounds`, which this wraps.
        """
        self.check(obs)
        bounds = locman_bounds(obs, truth, self.num_paths, self.bs, self.ue_height)
        return bounds.bound


@dataclass(frozen=True)
class LocmanBounds:
    """:class:`Bound` plus the orientation bound ``[snapshot]`` [rad] and the per-path
    bounds ``[snapshot, path]`` on ``c τ`` [m], AOA and AOD [rad] (the planar angles
    from the array broadsides, eq. 3)."""

    bound: Bound
    orientation_error_bound: FloatArray
    range_bound: FloatArray
    aoa_bound: FloatArray
    aod_bound: FloatArray


def true_parameters(
    snap: LocmanSnapshot, truth: ChannelTruth, t: int, paths: npt.NDArray[np.intp]
) -> tuple[FloatArray, FloatArray]:
    """``x`` (eq. 19 unknowns) and ``η [path, 3]`` of the true geometry of snapshot ``t``."""
    assert truth.ue_orientation is not None
    p = truth.ue_position[t]
    x = [p[0], p[1], truth.ue_orientation[t, 0]]
    for q in paths[1:]:
        x += list(truth.scatterer[t, q, :2])
    xs = np.asarray(x, dtype=np.float64)
    return xs, snap.geometry.paths(xs)


def locman_bounds(
    obs: Observation, truth: ChannelTruth, num_paths: int, bs: int = 0,
    ue_height: float | None = None,
) -> LocmanBounds:
    """CRLBs of channel parameters, position, orientation and scatterers per snapshot.

    Channel FIM ``J_η = (2/σ²) Re{D^H D}`` (Shahmansoori eqs. 14-16), position FIM
    ``T^T J_η T`` with ``T = ∂η/∂x`` (eqs. 17-20), ``x = (p, α, s_1..., gains)``.
    Snapshots whose first paths are not LOS + single-bounce get NaN.
    """
    T_, L, Q = obs.num_snapshots, num_paths, num_paths - 1
    peb, oeb = np.full(T_, np.nan), np.full(T_, np.nan)
    seb = np.full((T_, Q), np.nan)
    rng_b, aoa_b, aod_b = (np.full((T_, L), np.nan) for _ in range(3))
    channel = np.full((T_, 5 * L, 5 * L), np.nan)
    for t in range(T_):
        paths = np.flatnonzero(truth.valid[t])[:L]
        if (len(paths) < L or not truth.los[t] or paths[0] != 0 or truth.ue_orientation is None
                or not np.all(np.isfinite(truth.scatterer[t, paths[1:]]))):
            continue
        snap = snapshot(obs, t, bs, ue_height)
        x, eta = true_parameters(snap, truth, t, paths)
        fim = snap.fim(truth.gain[t, paths], eta)
        channel[t] = invert_fim(fim)
        k = 2 * np.pi / snap.geometry.wavelength
        # ω = k d sin θ (θ from broadside): var θ = var ω / (k d cos θ)².
        for l_ in range(L):
            rng_b[t, l_] = np.sqrt(channel[t, 5 * l_, 5 * l_])
            for col, spacing, out in ((1, snap.rx.spacing, aoa_b), (2, snap.tx.spacing, aod_b)):
                s = eta[l_, col] / (k * spacing)
                out[t, l_] = np.sqrt(channel[t, 5 * l_ + col, 5 * l_ + col]) / (
                    k * spacing * np.sqrt(max(1 - s**2, 1e-12)))
        T = geometric_transform(snap.geometry, x, L)
        bound = invert_fim(T.T @ fim @ T)
        peb[t] = error_bound(bound, [0, 1])
        oeb[t] = error_bound(bound, [2])
        for q in range(Q):
            seb[t, q] = error_bound(bound, [3 + 2 * q, 4 + 2 * q])
    return LocmanBounds(
        bound=Bound(position_error_bound=peb, scatterer_error_bound=seb, channel_crlb=channel),
        orientation_error_bound=oeb, range_bound=rng_b, aoa_bound=aoa_b, aod_bound=aod_b,
    )


@register
class Locman(_LocmanBase):
    """``locman``: atomic norm channel estimation + EXIP WLS (the paper's method).

    ``solver`` ``"admm"`` (default) or ``"sdp"`` (cvxpy/SCS, small sizes only);
    ``admm_tolerance`` its relative stopping residual (measured on the paper setting at
    0 dB, 3 trials: 1e-3 gives the positions of 1e-5 to 0.2 mm with ~1/5 of the
    iterations); ``mu_scale``
    multiplies the regularization of Prop. 3 (1 = the paper's choice).
    """

    name = "locman"

    def __init__(
        self,
        *,
        num_paths: int = 3,
        order_threshold: float | None = None,
        los_path: Literal["strongest", "earliest"] = "strongest",
        ue_height: float | None = None,
        max_iterations: int = 200,
        bs: int = 0,
        solver: Literal["admm", "sdp"] = "admm",
        admm_tolerance: float = 1e-3,
        admm_max_iterations: int = 3000,
        mu_scale: float = 1.0,
    ) -> None:
        super().__init__(num_paths=num_paths, order_threshold=order_threshold,
                         los_path=los_path, ue_height=ue_height,
                         max_iterations=max_iterations, bs=bs)
        self.solver = solver
        self.admm_tolerance = admm_tolerance
        self.admm_max_iterations = admm_max_iterations
        self.mu_scale = mu_scale

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.solver not in ("admm", "sdp"):
            raise EstimatorInputError(f"{self.name}: solver must be 'admm' or 'sdp'")
        if self.admm_max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: admm_max_iterations={self.admm_max_iterations} must be >= 1")

    def _channel_bytes(self, num_subcarriers: int, num_rx: int, num_tx: int,
                       num_beams: int) -> dict[str, float]:
        # The lifted matrices' size is the observation's (K, Nr, Nt); the solver is the
        # one setting that changes what they cost. The model order is at most
        # min(L1, L2) (channel_parameters), whatever num_paths.
        bytes_of = anm.sdp_memory_bytes if self.solver == "sdp" else anm.admm_memory_bytes
        return {"solver": bytes_of(num_subcarriers, num_rx, num_tx)}

    def _max_order(self, num_subcarriers: int) -> int:
        return min(self.num_paths, *anm.hankel_sizes(num_subcarriers))

    def denoise(self, snap: LocmanSnapshot) -> anm.AnmSolution:
        """The atomic norm denoiser (eq. 13) with ``μ`` of Prop. 3 (eq. 14)."""
        problem = anm.AnmProblem(
            y=snap.y, x=snap.x,
            mu=self.mu_scale * anm.regularization(snap.noise_variance, snap.x, snap.rx.size))
        if self.solver == "sdp":
            return anm.solve_sdp(problem)
        # The matrices are small: threaded BLAS only adds synchronization (measured
        # 50-100x slower eigen-decompositions on 2 busy cores).
        with threadpool_limits(limits=1, user_api="blas"):
            return anm.solve_admm(problem, tolerance=self.admm_tolerance,
                                  max_iterations=self.admm_max_iterations)

    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        solution = self.denoise(snap)
        K = solution.H.shape[0]
        limit = min(self.num_paths, *anm.hankel_sizes(K))
        if self.order_threshold is None:
            order = limit
        else:
            order = anm.model_order(solution.T_rx, self.order_threshold, limit)
        paths = anm.decompose(solution, order)
        params = np.column_stack([
            _tau_from_phase(paths.delay_phase, snap.spacing_hz),
            wrap(paths.rx_phase),
            # H[k] = Σ g z^k a_R(ω_R) a_T(ω_T)^T = Σ g z^k a_R(ω_R) a_T(-ω_T)^H.
            wrap(-paths.tx_phase),
        ])
        return order_paths(snap, params, self.los_path, {
            "solver_iterations": float(solution.iterations),
            "solver_converged": float(solution.converged)})


@register
class DcsSomp(_LocmanBase):
    """``dcs-somp``: Shahmansoori et al.'s DCS-SOMP channel estimation + the same
    position mapping (no SAGE refinement, as Li et al. compare).

    The dictionary is a grid of ``oversampling x`` array-size spatial frequencies per
    side, uniform over ``[-π, π)``; all subcarriers share the support (joint sparsity).
    """

    name = "dcs-somp"

    def __init__(
        self,
        *,
        num_paths: int = 3,
        order_threshold: float | None = None,
        los_path: Literal["strongest", "earliest"] = "strongest",
        ue_height: float | None = None,
        max_iterations: int = 200,
        bs: int = 0,
        oversampling: int = 4,
    ) -> None:
        super().__init__(num_paths=num_paths, order_threshold=order_threshold,
                         los_path=los_path, ue_height=ue_height,
                         max_iterations=max_iterations, bs=bs)
        self.oversampling = oversampling

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.oversampling < 1:
            raise EstimatorInputError(f"{self.name}: oversampling must be >= 1")

    def _channel_bytes(self, num_subcarriers: int, num_rx: int, num_tx: int,
                       num_beams: int) -> dict[str, float]:
        # The correlations [K, o Nr, o Nt] (complex128, the last path's alive while the
        # next one's are formed) with their magnitudes, and the transmit atoms' pilots
        # [K, o Nt, G] (complex128). The chosen atoms [path, K, Nr, G] are fewer bytes
        # than the EXIP Jacobian after them (working_memory).
        K, o = num_subcarriers, self.oversampling
        return {"oversampling": 40.0 * K * o * o * num_rx * num_tx
                + 16.0 * K * o * num_tx * num_beams}

    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        grid_r = -np.pi + 2 * np.pi * np.arange(self.oversampling * snap.rx.size) / (
            self.oversampling * snap.rx.size)
        grid_t = -np.pi + 2 * np.pi * np.arange(self.oversampling * snap.tx.size) / (
            self.oversampling * snap.tx.size)
        A_r, A_t = snap.rx.response(grid_r).T, snap.tx.response(grid_t).T  # [N, grid]
        # ||a_R a_T^T X[k]||_F per subcarrier and transmit grid point.
        norms = np.sqrt(snap.rx.size) * np.linalg.norm(np.einsum("tj,ktg->kjg", A_t, snap.x),
                                                       axis=2)  # [K, Gt]
        residual = snap.y.copy()
        support: list[tuple[int, int]] = []
        coefficients = np.zeros((snap.frequencies.size, 0), dtype=np.complex128)
        for _ in range(self.num_paths):
            corr = np.einsum("ri,krg,ktg,tj->kij", A_r.conj(), residual, snap.x.conj(), A_t.conj())
            score = np.sum(np.abs(corr) / norms[:, None, :], axis=0)
            for chosen in support:
                score[chosen] = -np.inf
            best = np.unravel_index(int(np.argmax(score)), score.shape)
            support.append((int(best[0]), int(best[1])))
            atoms = np.stack([
                np.einsum("r,t,ktg->krg", A_r[:, a], A_t[:, b], snap.x) for a, b in support
            ])  # [S, K, Nr, G]
            coefficients = np.stack([
                np.linalg.lstsq(atoms[:, k].reshape(len(support), -1).T, snap.y[k].ravel(),
                                rcond=None)[0] for k in range(snap.frequencies.size)
            ])  # [K, S]
            residual = snap.y - np.einsum("ks,skrg->krg", coefficients, atoms)
        # TOA from the phase progression of each path's coefficients over subcarriers.
        progression = np.sum(coefficients[1:] * coefficients[:-1].conj(), axis=0)
        rho = _tau_from_phase(-np.angle(progression), snap.spacing_hz)
        params = np.column_stack([rho, grid_r[[i for i, _ in support]],
                                  grid_t[[j for _, j in support]]])
        return order_paths(snap, params, self.los_path)

