"""LOCMAN's position stage: UE position, yaw and scatterers from channel parameters.

The EXIP-weighted nonlinear least squares of Li et al. eqs. (19)-(21): the measured
per-path ``(c τ [m], ω_R, ω_T [rad])`` are fitted by the geometry of eq. (3)
(:meth:`LinkGeometry.paths`) under the weight of eq. (20), by Levenberg-Marquardt
from every starting point of eq. (21). :class:`WlsLocalizer` is the estimator pipeline
that LOCMAN and its baseline share: a channel stage (the subclass's), then this fit.

References
----------
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022: eqs. (19)-(21), §III-D (LOS = strongest path).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.optimize import least_squares

from estimators.arrays import SPEED_OF_LIGHT, wrap_angle
from estimators.base import (
    Bound,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    estimate_bytes,
    largest_stage,
)
from estimators.locman.bound import DESCRIPTION, locman_bounds
from estimators.locman.model import (
    ChannelEstimate,
    LinkGeometry,
    LocmanSnapshot,
    Ula,
    snapshot,
)
from estimators.types import Observation, Truth, bs_truth
from estimators.typing import FloatArray


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
            yaw = float(wrap_angle(phi + np.pi - yaw_offset))
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
        err = abs(float(wrap_angle(g.paths(x)[1, 1] - w_r)))
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
        diff[angular] = wrap_angle(diff[angular])
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


# ------------------------------------------------------------------ estimators


class WlsLocalizer(Estimator):
    """The pipeline LOCMAN and its baseline share: per-path channel parameters (the
    subclass's :meth:`channel_parameters`), then the WLS of eqs. (19)-(21).

    The unknowns are planar (eq. 3): the UE's height is known (``ue_height``, default
    the BS's), so positions are scored in the horizontal plane
    (:meth:`position_dimensions` = 2), and every subclass returns the paper's bound
    (:mod:`estimators.locman.bound`).

    Parameters
    ----------
    num_paths : paths of the model, the LOS and ``num_paths - 1`` single bounces (the
        most paths the channel stage returns).
    order_threshold : None: the order is ``num_paths``; else the channel stage's
        eigenvalue threshold ε of §III-D (where it has one).
    los_path : which estimated path is the LOS: ``"strongest"`` (§III-D) or
        ``"earliest"``.
    ue_height : the UE's known height [m]; None: the BS's (the paper's plane).
    max_iterations : Levenberg-Marquardt evaluations per starting point of eq. (21).
    bs : which BS of the observation.
    """

    paper: ClassVar[str] = "locman"
    bound: ClassVar[str] = DESCRIPTION
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

    def position_dimensions(self, obs: Observation) -> int:
        """2: the UE height is known (eq. 3's planar unknowns), never estimated."""
        return 2

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

    @abc.abstractmethod
    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        """Per-path ``(c τ [m], ω_R, ω_T [rad])`` and gains, LOS first (the method's first
        stage)."""

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

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The paper's bounds (:attr:`bound`) at the true channel of every snapshot.

        The first ``num_paths`` valid paths of BS ``bs``'s ``truth`` are the model's (path 0 the
        LOS, the others single bounces); a snapshot where they are not (no LOS, a
        multi-bounce path, too few paths) gets NaN. The UE height is the truth's, a
        known parameter of the model (``ue_height`` is this estimator's assumption of
        it, not the channel's). ``position_error_bound [snapshot]`` [m] on the UE
        ``(x, y)``, ``orientation_error_bound [snapshot]`` [rad] on the yaw,
        ``scatterer_error_bound [snapshot, num_paths - 1]`` [m], ``channel_crlb
        [snapshot, 5 num_paths, 5 num_paths]`` on per-path ``(c τ [m], ω_R, ω_T [rad],
        Re g, Im g)`` (:func:`estimators.locman.bound.locman_bounds`).
        """
        self.check(obs)
        return locman_bounds(obs, bs_truth(truth, self.bs), self.num_paths, self.bs).bound
