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
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import numpy as np
from scipy.linalg import qr, solve_triangular
from scipy.optimize import least_squares
from scipy.stats import chi2
from threadpoolctl import threadpool_limits

from estimators.arrays import SPEED_OF_LIGHT, free_space_ratio_db, wrap_angle
from estimators.base import (
    MIN_GROUND_CLEARANCE_M,
    Bound,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    estimate_bytes,
    largest_stage,
    position_covariance,
    resolve_service_area,
)
from estimators.fisher import crlb as invert_fim
from estimators.locman.bound import (
    DESCRIPTION,
    geometric_transform,
    locman_bounds,
    path_jacobian,
)
from estimators.locman.model import (
    ChannelEstimate,
    LinkGeometry,
    LocmanSnapshot,
    Ula,
    snapshot,
)
from estimators.types import Area, Observation, Truth, bs_truth, in_area
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
    """A WLS solution: ``x`` (eq. 19's unknowns), ``cost`` (its weighted residual);
    after :func:`refine_with_ground`, ``ground_height`` [m] the ground of the refit and
    ``ground_free`` whether the refit estimated it (an unknown of the covariance)."""

    x: FloatArray
    cost: float
    ground_height: float | None = None
    ground_free: bool = False


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


def refine_with_ground(snap: LocmanSnapshot, fit: Fit, ground_height: float,
                       max_iterations: int, free_height: bool = False) -> Fit:
    """The fix ``x`` refit to the received pilots with the LOS's ground bounce modelled
    (outside the paper: a BS on a mast sees the ground echo 0.2-1.4 m of path behind
    the LOS, inside one range cell ``c/B``; merged with the LOS it biases its delay and
    angles, hence the WLS fix).

    The paths are the geometry's — LOS and single bounces of eq. (3) and the LOS's
    ground bounce (:meth:`LinkGeometry.paths` with ``ground_height``) — and their gains
    are concentrated out by least squares (footnote 2), so ``x`` minimizes
    ``||Y - μ(η(x), ĝ(x))||²`` (the channel-domain ML for white noise), by
    Levenberg-Marquardt from the WLS fix ``fit.x``; with ``free_height``, the ground's
    height is an unknown too, from ``ground_height`` (a terrain mesh a few cm off the
    nominal ground moves each ground bounce's length by about twice that: on the bench's
    canyon, 3 cm under 0, it biased a fix 17 mm, 4x its bound). Returns the refit ``x``
    with ``cost`` its residual ``||Y - μ||²`` [W] and its ground; ``fit`` (at
    ``ground_height``) where the refit does not lower the residual.
    """
    n = len(fit.x)
    refit = _GroundRefit(snap, n, ground_height, free_height)
    v0 = np.append(fit.x, ground_height) if free_height else fit.x
    start = float(np.sum(refit.residual(v0) ** 2)) + refit.dropped
    unchanged = Fit(fit.x, start, ground_height, False)
    try:
        res = least_squares(refit.residual, v0, jac=refit.jacobian, method="lm",
                            max_nfev=max_iterations, x_scale="jac")
    except ValueError:
        return unchanged
    cost = float(np.sum(res.fun**2)) + refit.dropped
    if not (np.all(np.isfinite(res.x)) and cost < start):
        return unchanged
    v = np.asarray(res.x, dtype=np.float64)
    return Fit(v[:n], cost, float(v[n]) if free_height else ground_height, free_height)


class _GroundRefit:
    """The variable-projection residual ``r(v) = (I - P_A(v)) y`` of
    :func:`refine_with_ground` and its analytic Jacobian (Golub & Pereyra, "The
    differentiation of pseudo-inverses and nonlinear least squares problems whose
    variables separate", SIAM J. Numer. Anal., 1973):
    ``∂r/∂v_k = -P⊥ (∂A/∂v_k) ĝ - (A⁺)^H (∂A/∂v_k)^H r``, with ``∂A/∂v_k`` the atoms'
    derivatives (:meth:`LocmanSnapshot.atom_derivatives`) chained through
    ``∂η/∂v`` (:func:`path_jacobian`), on the pilot-compressed snapshot
    (:meth:`LocmanSnapshot.pilot_compressed`: the same fit, ``G/Nt`` times fewer
    samples; ``dropped`` [W] is the residual energy it leaves out). Real residuals
    stack ``(Re r, Im r)``; one QR of ``A`` serves a point's residual and Jacobian.
    """

    def __init__(self, snap: LocmanSnapshot, n: int, ground_height: float,
                 free_height: bool) -> None:
        self.snap, self.dropped = snap.pilot_compressed()
        self.y = self.snap.y.ravel()
        self.n, self.ground_height, self.free_height = n, ground_height, free_height
        self._at: FloatArray | None = None
        self._state: tuple[Any, ...] = ()

    def _paths(self, v: FloatArray) -> FloatArray:
        h = float(v[self.n]) if self.free_height else self.ground_height
        return self.snap.geometry.paths(v[: self.n], h)

    def _solve(self, v: FloatArray) -> tuple[Any, ...]:
        if self._at is not None and np.array_equal(v, self._at):
            return self._state
        eta = self._paths(v)
        A = self.snap.atoms(eta).reshape(len(eta), -1).T
        Q, R = qr(A, mode="economic", check_finite=False)
        diagonal = np.abs(np.diag(R))
        if diagonal.min() > np.finfo(float).eps * max(A.shape) * diagonal.max():
            gain = solve_triangular(R, Q.conj().T @ self.y, check_finite=False)
            # (A⁺)^H w = Q R^-H w.
            basis, adjoint_pinv = Q, lambda w: solve_triangular(R, w, trans="C",
                                                                check_finite=False)
        else:  # numerically rank-deficient: least norm, as least_squares_gains
            U, sv, Vh = np.linalg.svd(A, full_matrices=False)
            keep = sv > np.finfo(float).eps * max(A.shape) * sv[0]
            U, sv, Vh = U[:, keep], sv[keep], Vh[keep]
            gain = Vh.conj().T @ ((U.conj().T @ self.y) / sv)
            basis, adjoint_pinv = U, lambda w: (Vh @ w) / sv[:, None]
        residual = self.y - A @ gain
        self._at, self._state = v.copy(), (eta, gain, residual, basis, adjoint_pinv)
        return self._state

    def residual(self, v: FloatArray) -> FloatArray:
        r = self._solve(v)[2]
        return np.concatenate([r.real, r.imag])

    def jacobian(self, v: FloatArray) -> FloatArray:
        eta, gain, r, basis, adjoint_pinv = self._solve(v)
        D = path_jacobian(self.snap.geometry, v[: self.n] if not self.free_height else v,
                          None if self.free_height else self.ground_height,
                          ground_free=self.free_height)  # [3 P, n_v]
        E = self.snap.atom_derivatives(eta)[1].reshape(3 * len(eta), -1)  # [3 P, S]
        along = E.T @ (np.repeat(gain, 3)[:, None] * D)  # (∂A/∂v_k) ĝ: [S, n_v]
        along -= basis @ (basis.conj().T @ along)
        back = ((E.conj() @ r)[:, None] * D).reshape(len(eta), 3, -1).sum(axis=1)
        J = -(along + basis @ adjoint_pinv(back))
        return np.concatenate([J.real, J.imag])


# ------------------------------------------------------------------ integrity

#: ``num_paths="auto"``: at most this many paths (the LOS and two bounces, the paper's
#: setting), the order from the data below it (:attr:`WlsLocalizer.order_threshold`).
AUTO_MAX_PATHS = 3
#: ``order_threshold`` where ``num_paths="auto"`` and none is set: paths within 10 dB of
#: the strongest (ε = 0.1 always found the paper setting's 3 paths, from −5 dB on; the
#: model-order study of docs/estimators/locman.md).
AUTO_ORDER_THRESHOLD = 0.1
#: ``chi2.ppf(0.99, 1)``: LOCMAN's refit keeps the estimated ground height only where
#: ``(ĥ - h0)² / var(ĥ)`` exceeds it (the data reject the nominal ``h0`` at 99 %).
GROUND_HEIGHT_CHI2 = float(chi2.ppf(0.99, 1))
#: A path estimated more than this many range cells ``c / B`` before the "LOS" (the
#: strongest path) contradicts it: a LOS is the shortest path there is.
EARLIER_PATH_CELLS = 0.5


@dataclass(frozen=True)
class Integrity:
    """How well the LOS + single-bounce model explains a snapshot (all dimensionless).

    ``residual_factor``: the a-posteriori variance factor of the channel-domain fit,
    ``||Y - μ(η(x̂), ĝ)||² / ((N - n) σ²)`` (``N`` complex samples, ``n`` complex
    unknowns); ``geometry_factor``: the EXIP cost of eq. (19) in noise units per degree
    of freedom, ``(2/σ²) cost / (L - 1)`` (0 for the LOS alone); ``unexplained``: the
    share of the received energy the fitted model leaves, ``||Y - μ||² / ||Y||²``;
    ``earlier_m``: how far [m] the earliest other estimated path arrives before the
    LOS (negative: after it).
    """

    residual_factor: float
    geometry_factor: float
    unexplained: float
    earlier_m: float

    @property
    def variance_factor(self) -> float:
        """``max(1, residual_factor, geometry_factor)``: what the covariance is inflated
        by (:func:`fix_covariance`)."""
        return max(1.0, self.residual_factor, self.geometry_factor)


def integrity(snap: LocmanSnapshot, channel: ChannelEstimate, fit: Fit,
              ground_height: float | None = None) -> Integrity:
    """The model's fit to the data of a snapshot (:class:`Integrity`); ``fit.cost`` the
    WLS's EXIP cost (eq. 19), ``ground_height`` where the model has the LOS's ground
    bounce (:func:`refine_with_ground`)."""
    eta = snap.geometry.paths(fit.x, ground_height)
    gain = snap.fit_gains(eta)
    model = np.einsum("krt,ktg->krg", snap.channel(gain, eta), snap.x)
    residual = float(np.sum(np.abs(snap.y - model) ** 2))
    samples, unknowns = snap.y.size, len(fit.x) + 2 * len(eta)
    sigma2 = snap.noise_variance
    dof = channel.order - 1
    first_other = float(np.min(channel.params[1:, 0])) if channel.order > 1 else np.inf
    return Integrity(
        residual_factor=residual / (max(samples - unknowns / 2, 1) * sigma2),
        geometry_factor=2.0 * fit.cost / sigma2 / dof if dof > 0 else 0.0,
        unexplained=residual / max(float(np.sum(np.abs(snap.y) ** 2)), 1e-300),
        earlier_m=float(channel.params[0, 0] - first_other),
    )


def los_free_space_db(snap: LocmanSnapshot, fit: Fit,
                      ground_height: float | None = None) -> float:
    """[dB] the fix's LOS against free space at its length
    (:func:`~estimators.arrays.free_space_ratio_db`; 0 dB: Friis): the amplitude of the
    LOS's received signal at the fitted geometry, ``‖ĝ_0 a_0 + ĝ_g a_g‖ / ‖a_0‖`` (``a``
    the unit-gain atoms, ``ĝ`` the least-squares gains), with ``ground_height`` its ground
    bounce ``g`` included. On a mast the bounce is a fraction of a metre longer than the
    LOS and their atoms nearly collinear: the two gains alone are ill-determined (large
    and opposite where the fitted delay is slightly off), their joint signal is not."""
    eta = snap.geometry.paths(fit.x, ground_height)
    gains = snap.fit_gains(eta)
    atoms = snap.atoms(eta)
    group = [0] + ([len(eta) // 2] if ground_height is not None else [])
    signal = np.tensordot(gains[group], atoms[group], axes=1)
    amplitude = float(np.linalg.norm(signal) / np.linalg.norm(atoms[0]))
    return float(free_space_ratio_db(amplitude, eta[0, 0], snap.geometry.wavelength))


def fix_covariance(snap: LocmanSnapshot, fit: Fit, variance_factor: float,
                   ground_height: float | None = None) -> FloatArray:
    """``[2, 2]`` [m²] covariance of the UE ``(x, y)``: the inverse position FIM of the
    model (``T^T J_η T``, Shahmansoori et al. eqs. 14-20, the bound's
    :func:`estimators.locman.bound.locman_bounds`; with the LOS's ground bounce where
    ``ground_height`` is given) at the ESTIMATED parameters — the fitted geometry ``x̂``
    and the least-squares gains there — inflated by the a-posteriori variance factor
    (:attr:`Integrity.variance_factor`)."""
    eta = snap.geometry.paths(fit.x, ground_height)
    gain = snap.fit_gains(eta)
    if fit.ground_free and ground_height is not None:
        # The refit's ground height is an unknown: one more nuisance parameter.
        T = geometric_transform(snap.geometry, np.append(fit.x, ground_height), len(eta),
                                ground_height, ground_free=True)
    else:
        T = geometric_transform(snap.geometry, fit.x, len(eta), ground_height)
    bound = invert_fim(T.T @ snap.fim(gain, eta) @ T)
    return np.asarray(bound[:2, :2] * variance_factor, dtype=np.float64)


def ground_height_variance(snap: LocmanSnapshot, fit: Fit) -> float:
    """``var(ĥ)`` [m²] of a refit that estimated the ground's height
    (:func:`refine_with_ground` with ``free_height``): its entry of the inverse FIM of
    the model with the ground bounces at the fit, the least-squares gains there; NaN
    where the FIM is singular (no ground echo) or the fit has no ground."""
    h = fit.ground_height
    if h is None:
        return float("nan")
    eta = snap.geometry.paths(fit.x, h)
    gain = snap.fit_gains(eta)
    T = geometric_transform(snap.geometry, np.append(fit.x, h), len(eta), h,
                            ground_free=True)
    bound = invert_fim(T.T @ snap.fim(gain, eta) @ T)
    return float(bound[len(fit.x), len(fit.x)])


def reorder(channel: ChannelEstimate, los: int) -> ChannelEstimate:
    """``channel`` with path ``los`` first (the LOS), the others by delay."""
    rest = [i for i in np.argsort(channel.params[:, 0]) if i != los]
    idx = [los, *rest]
    return ChannelEstimate(params=channel.params[idx], gain=channel.gain[idx],
                           diagnostics=channel.diagnostics)


def los_ranges(geometry: LinkGeometry, area: Area | None) -> tuple[float, float]:
    """The least and greatest BS-UE distance [m] of a UE in ``area`` at the model's UE
    height (``(0, ∞)`` without an area)."""
    if area is None:
        return 0.0, np.inf
    (x0, y0), (x1, y1) = area
    b = geometry.bs_position
    dz = geometry.ue_height - b[2]
    near = np.hypot(max(x0 - b[0], 0.0, b[0] - x1), max(y0 - b[1], 0.0, b[1] - y1))
    far = np.hypot(max(abs(x0 - b[0]), abs(x1 - b[0])), max(abs(y0 - b[1]), abs(y1 - b[1])))
    return float(np.hypot(near, dz)), float(np.hypot(far, dz))


# ------------------------------------------------------------------ estimators


class WlsLocalizer(Estimator):
    """The pipeline LOCMAN and its baseline share: per-path channel parameters (the
    subclass's :meth:`channel_parameters`), then the WLS of eqs. (19)-(21).

    The unknowns are planar (eq. 3): the UE's height is known (``ue_height``, default
    the service area's, :func:`estimators.base.resolve_service_area`), so positions are
    scored in the horizontal plane (:meth:`position_dimensions` = 2); a BS above or
    below the UE is handled by the model's known heights (eq. 3 with vertical
    reflectors). Every subclass returns the paper's bound (:mod:`estimators.locman.bound`).

    Integrity (the paper assumes a LOS, §III-D; a real channel may have none): a fix is
    reported ``converged=False`` with a reason where the LOS hypothesis fails — the fix
    outside the service area (a wall's echo taken for the LOS puts the UE at its mirror
    image behind the wall), the fitted LOS more than ``los_margin_db`` below free space
    at its length (a reflection taken for a blocked LOS puts the UE anywhere along its
    direction: issue 22's held-out city, 120 m off), or, with ``los_path="strongest"``,
    a path estimated more than :data:`EARLIER_PATH_CELLS` range cells ``c/B`` before the
    strongest one.
    Every converged fix carries ``position_covariance``: the inverse position FIM at the
    estimated parameters inflated by the a-posteriori variance factor
    ``max(1, residual/noise, EXIP cost/noise)`` (:func:`fix_covariance`,
    :class:`Integrity`). Where the subclass models the ground (:meth:`_ground_height`,
    :class:`Locman`'s ``ground_height``), the WLS fix is then refit to the pilots with
    every path's ground bounce (:func:`refine_with_ground`), and its covariance is that
    model's inverse FIM at the refit times ``max(1, residual/noise)`` of the refit.
    With ``bs="auto"`` and :attr:`least_error_bs` (LOCMAN's), every BS is tried and, of
    the fixes that pass, the one of least reported mean square error (the trace of its
    ``position_covariance``) is kept; without it, the BSs are tried from the strongest
    received signal down and the first fix that passes is kept.

    Parameters
    ----------
    num_paths : ``"auto"``: the model order from the data, at most
        :data:`AUTO_MAX_PATHS` paths (the channel stage's threshold
        ``order_threshold``, default :data:`AUTO_ORDER_THRESHOLD`); an integer: at most
        that many paths, the LOS and ``num_paths - 1`` single bounces (exactly that many
        where ``order_threshold`` is None).
    order_threshold : the channel stage's path threshold ε relative to the strongest
        (§III-D's eigenvalue threshold for LOCMAN); None: ``num_paths`` paths (an
        integer) or :data:`AUTO_ORDER_THRESHOLD` (``"auto"``).
    los_path : which estimated path is the LOS: ``"strongest"`` (§III-D; a path more
        than :data:`EARLIER_PATH_CELLS` range cells before it makes the fix not
        converged), ``"earliest"``, or ``"auto"``: the strongest, unless a path arrives
        that much before it, then the earliest (a LOS is the shortest path; on real
        channels its ground bounce can fade it below a wall's echo).
    ue_height : the UE's known height [m]; None: the service area's
        (:attr:`Observation.service_area`, the run's median UE height).
    area : ``((x0, y0), (x1, y1))`` [m], where the UE can be: a fix outside is not
        converged; None: the observation's service area (none: no such check).
    max_iterations : Levenberg-Marquardt evaluations per starting point of eq. (21).
    bs : which BS of the observation: an index, or ``"auto"`` (each snapshot: with
        :attr:`least_error_bs`, every BS and the fix that passes the integrity checks
        with the least reported mean square error — the received SNR alone does not rank
        them: a BS far off, or with unresolved echoes the model lacks, gives a worse fix
        at the same SNR; else the BSs in order of received SNR, the first that passes).
    los_margin_db : [dB] how far below free space at its length the fitted LOS (with its
        ground bounce, where modelled) may be and still be taken as a LOS, where that
        amplitude is known (``Observation.free_space_known``; :func:`los_free_space_db`).
    """

    paper: ClassVar[str] = "locman"
    bound: ClassVar[str] = DESCRIPTION
    #: ``bs="auto"``: every BS, the passing fix of least reported error (True), or the
    #: first passing fix from the strongest signal down (False).
    least_error_bs: ClassVar[bool] = False
    sounding: ClassVar[dict[str, Any]] = {
        "link": "downlink", "precoder": "random", "num_beams": 16, "combiner": "identity",
        "pilots": "random",
    }

    def __init__(
        self,
        *,
        num_paths: int | Literal["auto"] = "auto",
        order_threshold: float | None = None,
        los_path: Literal["auto", "strongest", "earliest"] = "auto",
        ue_height: float | None = None,
        area: Area | None = None,
        max_iterations: int = 200,
        bs: int | Literal["auto"] = "auto",
        los_margin_db: float = 6.0,
    ) -> None:
        self.num_paths = num_paths
        self.order_threshold = order_threshold
        self.los_path = los_path
        self.ue_height = ue_height
        self.area = area
        self.max_iterations = max_iterations
        self.bs = bs
        self.los_margin_db = los_margin_db

    @property
    def max_paths(self) -> int:
        """The most paths the model takes (``num_paths``, :data:`AUTO_MAX_PATHS` for
        ``"auto"``)."""
        return AUTO_MAX_PATHS if self.num_paths == "auto" else int(self.num_paths)

    @property
    def threshold(self) -> float | None:
        """The path threshold in effect (``order_threshold``, or the auto default)."""
        if self.order_threshold is None and self.num_paths == "auto":
            return AUTO_ORDER_THRESHOLD
        return self.order_threshold

    @property
    def num_scatterers(self) -> int:
        return self.max_paths - 1

    def position_dimensions(self, obs: Observation) -> int:
        """2: the UE height is known (eq. 3's planar unknowns), never estimated."""
        return 2

    @property
    def num_estimated_paths(self) -> int:
        return self.max_paths

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.num_paths != "auto" and (not isinstance(self.num_paths, (int, np.integer))
                                         or self.num_paths < 1):
            raise EstimatorInputError(f"{self.name}: num_paths must be 'auto' or >= 1")
        samples = 2 * int(np.prod(obs.y.shape[2:]))
        unknowns = 5  # complex gain, delay, AOA, AOD
        if self.max_paths > samples // unknowns:
            raise EstimatorInputError(
                f"{self.name}: num_paths={self.max_paths} exceeds {samples // unknowns}, "
                f"the {samples} real samples of a snapshot over {unknowns} unknowns a path")
        if self.max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: max_iterations={self.max_iterations} must be >= 1")
        if self.los_path not in ("auto", "strongest", "earliest"):
            raise EstimatorInputError(
                f"{self.name}: los_path must be 'auto', 'strongest' or 'earliest'")
        if not self.los_margin_db >= 0:
            raise EstimatorInputError(f"{self.name}: los_margin_db must be >= 0")
        if obs.link != "downlink":
            raise EstimatorInputError(f"{self.name}: needs a downlink observation")
        if self.bs != "auto" and (not isinstance(self.bs, (int, np.integer))
                                  or not 0 <= self.bs < obs.num_bs):
            raise EstimatorInputError(
                f"{self.name}: bs={self.bs!r} but {obs.num_bs} BS(s) (or 'auto')")
        self._service(obs)
        Nr = obs.ue_array.num_ant
        for b in self._candidates(obs):
            W = obs.combiners[0, b]
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

    def _service(self, obs: Observation) -> tuple[float, Area | None]:
        """The UE height [m] and the area a fix must lie in (None: unchecked): the
        hyper-parameters where set, else the observation's service area."""
        if self.ue_height is not None and self.area is None and obs.service_area is None:
            return float(self.ue_height), None
        service = resolve_service_area(self.name, obs, self.area, self.ue_height)
        return service.ue_height, service.area

    def _candidates(self, obs: Observation, t: int | None = None) -> list[int]:
        """The BSs to try: ``[bs]``, or for ``"auto"`` every BS from the highest
        received SNR ``||Y||² / σ²`` of snapshot ``t`` down (index order without ``t``)."""
        if self.bs != "auto":
            return [int(self.bs)]
        if t is None:
            return list(range(obs.num_bs))
        power = np.sum(np.abs(obs.y[t]) ** 2, axis=(1, 2, 3)) / np.maximum(
            obs.noise_variance[t], 1e-300)
        return [int(b) for b in np.argsort(-power, kind="stable")]

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """Bytes of the larger of the two stages: the channel stage's arrays
        (:meth:`_channel_bytes`) or, under ``num_paths``, the position stage's EXIP
        Jacobian (:func:`geometric_weight`: ``[K Nr G, 5 path]`` complex, its columns
        listed and stacked beside the paths' atoms, 192 bytes a path and received
        sample) with the per-path results."""
        T, _, S, G, K = obs.y.shape
        P = self.max_paths
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
        return self.max_paths

    def _ground_height(self, geometry: LinkGeometry) -> float | None:
        """The ground height [m] whose LOS bounce the fix models
        (:func:`refine_with_ground`), or None: none (here; :class:`Locman` has it)."""
        return None

    def _fix_covariance(self, snap: LocmanSnapshot, channel: ChannelEstimate, fit: Fit,
                        variance_factor: float, ground_height: float | None
                        ) -> tuple[FloatArray, str, dict[str, float]]:
        """The fix's ``[2, 2]`` covariance [m²], a reason it fails its integrity check
        ("" where it passes) and diagnostics: here :func:`fix_covariance` (the model's
        inverse FIM inflated by ``variance_factor``), never failing; a channel stage of
        coarser resolution than the FIM's overrides it
        (:class:`estimators.locman.baselines.DcsSomp`'s grid)."""
        return fix_covariance(snap, fit, variance_factor, ground_height), "", {}

    @abc.abstractmethod
    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        """Per-path ``(c τ [m], ω_R, ω_T [rad])`` and gains, LOS first (the method's first
        stage)."""

    def localize(self, snap: LocmanSnapshot, channel: ChannelEstimate,
                 area: Area | None = None) -> SnapshotEstimate:
        """Position, yaw and scatterers from the channel parameters (eqs. 19-21), with
        the integrity checks and covariance of the class docstring (``area``: where a
        fix must lie, None: anywhere)."""
        cell = SPEED_OF_LIGHT / (snap.spacing_hz * snap.frequencies.size)
        channel, problem = self._choose_los(snap, channel, area, EARLIER_PATH_CELLS * cell)
        if problem:
            return dataclasses.replace(self._failed(problem),
                                       diagnostics={"num_paths": float(channel.order)})
        fit = solve_position(snap, channel, self.max_iterations)
        g = snap.geometry
        ground = self._ground_height(g)
        quality = integrity(snap, channel, fit)
        variance_factor = quality.variance_factor
        wls_x = fit.x
        if ground is not None:
            # The refit is the channel-domain ML of the model with the ground bounces:
            # its residual is the a-posteriori variance factor (the WLS's EXIP cost
            # measures the LOS/ground merging the refit removes; kept as a diagnostic).
            refined = refine_with_ground(snap, fit, ground, self.max_iterations,
                                         free_height=True)
            assert refined.ground_height is not None
            h = refined.ground_height
            # The nominal ground stands unless the data reject it (a Wald test at 99 %:
            # a free height costs precision where the ground echo is barely resolved,
            # 0.01 -> 0.48 m on `two` of scripts/locman/real.py); it is known to within
            # MIN_GROUND_CLEARANCE_M (terrain, a kerb): a refit that moves it further,
            # or cannot tell it (no ground echo: a singular FIM), keeps the nominal.
            factor = max(1.0, refined.cost / (snap.y.size * snap.noise_variance))
            if not (abs(h - ground) <= MIN_GROUND_CLEARANCE_M
                    and min(g.ue_height, float(g.bs_position[2])) - h >= MIN_GROUND_CLEARANCE_M
                    and (h - ground) ** 2 > GROUND_HEIGHT_CHI2
                    * ground_height_variance(snap, refined) * factor):
                refined = refine_with_ground(snap, fit, ground, self.max_iterations)
            assert refined.ground_height is not None
            ground = refined.ground_height
            ground_quality = integrity(snap, channel, dataclasses.replace(refined, cost=0.0),
                                       ground)
            quality = dataclasses.replace(quality,
                                          residual_factor=ground_quality.residual_factor,
                                          unexplained=ground_quality.unexplained)
            variance_factor = max(1.0, ground_quality.residual_factor)
            fit = dataclasses.replace(refined, cost=fit.cost)
        ue = np.array([fit.x[0], fit.x[1], g.ue_height])
        L = channel.order
        diagnostics = {"wls_cost": fit.cost, "num_paths": float(L),
                       "ground_shift_m": float(np.hypot(*(fit.x[:2] - wls_x[:2]))),
                       "ground_height_m": np.nan if ground is None else float(ground),
                       "residual_factor": quality.residual_factor,
                       "geometry_factor": quality.geometry_factor,
                       "unexplained": quality.unexplained, "earlier_m": quality.earlier_m,
                       **channel.diagnostics}
        los_db = los_free_space_db(snap, fit, ground) if snap.free_space_known else np.nan
        diagnostics["los_free_space_db"] = los_db
        reason = ""
        if area is not None and not in_area(area, ue):
            reason = (f"fix ({ue[0]:.1f}, {ue[1]:.1f}) m outside the service area "
                      f"{area}: the LOS hypothesis does not hold")
        elif los_db < -self.los_margin_db:
            reason = (f"no LOS: the path taken for it is {-los_db:.1f} dB below free space "
                      f"at the fix's {float(g.paths(fit.x)[0, 0]):.1f} m (los_margin_db="
                      f"{self.los_margin_db:g}): a reflection, the LOS blocked")
        if not reason:
            covariance, reason, checked = self._fix_covariance(snap, channel, fit,
                                                               variance_factor, ground)
            diagnostics.update(checked)
        if reason:
            return dataclasses.replace(self._failed(reason), diagnostics=diagnostics)
        Q = self.num_scatterers
        scatterers = np.full((Q, 3), np.nan)
        found = g.scatterer_position(fit.x)
        scatterers[: len(found)] = found
        P = self.max_paths
        tau = np.full(P, np.nan)
        aod = np.full((P, 2), np.nan)
        gain = np.full(P, np.nan + 0j)
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
            position_covariance=position_covariance(covariance),
            diagnostics={**diagnostics, "variance_factor": variance_factor},
        )

    def _choose_los(self, snap: LocmanSnapshot, channel: ChannelEstimate, area: Area | None,
                    margin: float) -> tuple[ChannelEstimate, str]:
        """The channel with its LOS first (``los_path``), its other paths' ranges
        unwrapped past the LOS, or a reason why no path can be the LOS.

        Only a path at a range the service area allows (:func:`los_ranges`, within
        ``margin`` [m]) can be the LOS: the ranges are known modulo ``c/Δf``, and a long
        echo comes back at a short alias. ``"strongest"``: the strongest path, not
        converged where an allowed path arrives more than ``margin`` before it;
        ``"earliest"``: the earliest allowed; ``"auto"``: the strongest unless an allowed
        one arrives more than ``margin`` before it, then the earliest. A bounce is longer
        than the LOS: another path estimated shorter is taken one ``c/Δf`` longer.
        """
        rho = channel.params[:, 0]
        lo, hi = los_ranges(snap.geometry, area)
        allowed = np.flatnonzero((rho >= lo - margin) & (rho <= hi + margin))
        if allowed.size == 0:
            return channel, (f"no LOS: no path at a range the service area allows "
                             f"({lo:.0f}-{hi:.0f} m; paths at "
                             f"{', '.join(f'{r:.0f}' for r in rho)} m)")
        strongest = int(allowed[np.argmax(np.abs(channel.gain[allowed]))])
        earliest = int(allowed[np.argmin(rho[allowed])])
        ahead = float(rho[strongest] - rho[earliest])
        if self.los_path == "earliest" or (self.los_path == "auto" and ahead > margin):
            los = earliest
        elif ahead > margin:
            return channel, (f"no LOS: a path arrives {ahead:.1f} m before the strongest "
                             f"(taken as the LOS)")
        else:
            los = strongest
        channel = reorder(channel, los)
        params = channel.params.copy()
        wrap = SPEED_OF_LIGHT / snap.spacing_hz
        params[1:, 0] = np.where(params[1:, 0] < params[0, 0], params[1:, 0] + wrap,
                                 params[1:, 0])
        return dataclasses.replace(channel, params=params), ""

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        # Every matrix of a snapshot is small (the ADMM's eigen-decompositions, the
        # refit's QRs of 2048 x 6): threaded BLAS only adds synchronization, measured
        # 50-100x slower eigen-decompositions and 13x slower munich snapshots (26 s vs
        # 2 s) on 2 busy cores.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._estimate_bs_by_bs(obs, t)

    def _estimate_bs_by_bs(self, obs: Observation, t: int) -> SnapshotEstimate:
        height, area = self._service(obs)
        reasons, passed = [], []
        for b in self._candidates(obs, t):
            snap = snapshot(obs, t, b, height)
            result = self.localize(snap, self.channel_parameters(snap), area)
            result = dataclasses.replace(result, diagnostics={**result.diagnostics,
                                                              "bs": float(b)})
            if result.converged:
                if not self.least_error_bs:
                    return result
                passed.append(result)
            else:
                reasons.append(f"BS {b}: {result.reason}")
        if passed:
            # The least reported mean square error (every converged fix has a finite
            # covariance): on the bench drives every BS is sounded at the same SNR, and
            # the first one's fix was 0.06-0.65 m off where another's was 2-8 mm.
            return min(passed, key=lambda r: float(np.trace(
                np.asarray(r.position_covariance)[:2, :2])))
        return dataclasses.replace(result, reason="; ".join(reasons))

    # -- bound --------------------------------------------------------------------

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The paper's bounds (:attr:`bound`) at the true channel of every snapshot.

        The model's ``L`` paths of a BS's truth are its LOS and earliest ``L - 1``
        single bounces off vertical reflectors (:func:`locman_bounds`: ground, ceiling
        and multi-bounce paths are not the model's and are skipped): ``L = num_paths``,
        or for ``"auto"`` the most up to :data:`AUTO_MAX_PATHS` there are; a snapshot
        without them (no LOS, too few paths) gets NaN. The BS is ``bs``, or for ``"auto"``
        the one of least position bound at each snapshot (no single-BS fix can do
        better). The UE height is the truth's, a known parameter of the model
        (``ue_height`` is this estimator's assumption of it, not the channel's).
        ``position_error_bound [snapshot]`` [m] on the UE ``(x, y)``,
        ``orientation_error_bound [snapshot]`` [rad] on the yaw, ``scatterer_error_bound
        [snapshot, max_paths - 1]`` [m], ``channel_crlb [snapshot, 5 max_paths, 5
        max_paths]`` on per-path ``(c τ [m], ω_R, ω_T [rad], Re g, Im g)``
        (:func:`estimators.locman.bound.locman_bounds`), NaN-padded beyond ``L``.
        """
        self.check(obs)
        T, P = obs.num_snapshots, self.max_paths
        peb, oeb = np.full(T, np.nan), np.full(T, np.nan)
        seb = np.full((T, P - 1), np.nan)
        channel = np.full((T, 5 * P, 5 * P), np.nan)
        orders = [P] if self.num_paths != "auto" else list(range(P, 0, -1))
        for b in self._candidates(obs):
            done = np.zeros(T, bool)
            for L in orders:
                bound = locman_bounds(obs, bs_truth(truth, b), L, b).bound
                better = ~done & np.isfinite(bound.position_error_bound) & ~(
                    bound.position_error_bound >= peb)
                done |= np.isfinite(bound.position_error_bound)
                peb[better] = bound.position_error_bound[better]
                assert bound.orientation_error_bound is not None
                assert bound.channel_crlb is not None
                oeb[better] = bound.orientation_error_bound[better]
                seb[better] = np.nan
                seb[better, : L - 1] = bound.scatterer_error_bound[better]
                channel[better] = np.nan
                n = np.arange(5 * L)
                channel[np.ix_(better, n, n)] = \
                    bound.channel_crlb[better]
        return Bound(position_error_bound=peb, scatterer_error_bound=seb,
                     orientation_error_bound=oeb, channel_crlb=cast(FloatArray, channel))
