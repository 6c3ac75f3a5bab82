"""LOCMAN's Cramér-Rao bounds: channel parameters, UE position, yaw and scatterers.

The channel FIM over per-path ``(c τ [m], ω_R, ω_T [rad], Re g, Im g)`` is
``J_η = (2/σ²) Re{D^H D}`` with ``D = ∂μ/∂η`` the Jacobian of the noiseless received
pilots (Shahmansoori et al. eqs. 14-16; :meth:`LocmanSnapshot.fim`); the position-domain
FIM is ``T^T J_η T`` with ``T = ∂η/∂x`` over ``x = (p_x, p_y, α, s_1x, s_1y, ..., gains)``
(eqs. 17-20), on the geometry of Li et al. eq. (3) (:meth:`LinkGeometry.paths`). The
bound applies to the paper's model only — a LOS path and single-bounce NLOS paths —
and is NaN for a snapshot whose true channel is not of that form.

References
----------
A. Shahmansoori, G. E. Garcia, G. Destino, G. Seco-Granados, H. Wymeersch, "Position
and orientation estimation through millimeter-wave MIMO in 5G systems", IEEE Trans.
Wireless Commun. 17(3), 2018: §III, eqs. (14)-(20).
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022: geometry (3), the CRLB of §IV (Figs. 5-6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT
from estimators.base import Bound
from estimators.fisher import crlb as invert_fim
from estimators.fisher import efficient_error, error_bound
from estimators.locman.model import LinkGeometry, LocmanSnapshot, snapshot
from estimators.types import ChannelTruth, Observation
from estimators.typing import ComplexArray, FloatArray

#: Step of the finite differences of the geometric mapping (smooth, O(1-100) m values).
_GEOMETRY_STEP = 1e-6

#: What :func:`locman_bounds` bounds (``Estimator.bound`` of every LOCMAN estimator).
DESCRIPTION = (
    "CRLB of the UE position (x, y) [m], yaw [rad] and scatterers (x, y) [m] of the LOS + "
    "single-bounce model (Li et al. eq. 3; channel FIM Shahmansoori et al. eqs. 14-16, "
    "position FIM eqs. 17-20), from the LOS and the earliest num_paths - 1 true single "
    "bounces off vertical reflectors; NaN where there is no LOS or too few"
)


def path_jacobian(geometry: LinkGeometry, x: FloatArray, ground_height: float | None = None,
                  ground_free: bool = False) -> FloatArray:
    """``∂η/∂x``: ``[3 path, len(x)]``, rows per path ``(c τ, ω_R, ω_T)`` of
    :meth:`LinkGeometry.paths`, by central differences (a smooth closed form; relative
    steps of ``1e-6``; the ``2 len(x)`` points in one batched call). ``ground_height``,
    ``ground_free``: as :func:`geometric_transform`."""
    x = np.asarray(x, dtype=np.float64)
    h = _GEOMETRY_STEP * np.maximum(1.0, np.abs(x))
    points = x + np.concatenate([np.diag(h), -np.diag(h)])  # [2 n, n]
    if ground_free:  # the last unknown is the ground's height (LOCMAN's refit)
        eta = geometry.paths(points[:, :-1], points[:, -1])
    else:
        eta = geometry.paths(points, ground_height)
    eta = eta.reshape(len(points), -1)
    return np.asarray((eta[: len(x)] - eta[len(x):]).T / (2 * h), dtype=np.float64)


def geometric_transform(geometry: LinkGeometry, x: FloatArray, num_paths: int,
                        ground_height: float | None = None,
                        ground_free: bool = False) -> FloatArray:
    """``T = ∂η/∂x`` from ``(x, gains)`` to per-path ``(c τ, ω_R, ω_T, Re g, Im g)``.

    The geometric block by central differences of :meth:`LinkGeometry.paths` (a smooth
    closed form; with its ground bounce where ``ground_height`` is given, counted in
    ``num_paths``); the gains map to themselves. ``ground_free``: the last element of
    ``x`` is the ground's height [m] (an unknown of LOCMAN's refit), not
    ``ground_height``. Returns ``[5 path, len(x) + 2 path]`` (``x`` of eq. 19, then
    ``(Re g, Im g)`` per path).
    """
    n_x = len(x)
    D = path_jacobian(geometry, x, ground_height, ground_free)
    T = np.zeros((5 * num_paths, n_x + 2 * num_paths))
    for l_ in range(num_paths):
        T[5 * l_:5 * l_ + 3, :n_x] = D[3 * l_:3 * l_ + 3]
        T[5 * l_ + 3:5 * l_ + 5, n_x + 2 * l_:n_x + 2 * l_ + 2] = np.eye(2)
    return T


@dataclass(frozen=True)
class LocmanBounds:
    """The paper's bounds per snapshot: :class:`Bound` and the per-path channel bounds.

    Attributes
    ----------
    bound : ``position_error_bound [snapshot]`` [m] on the UE ``(x, y)``,
        ``orientation_error_bound [snapshot]`` [rad] on the yaw,
        ``scatterer_error_bound [snapshot, num_paths - 1]`` [m] on each scatterer
        ``(x, y)``, ``channel_crlb [snapshot, 5 num_paths, 5 num_paths]`` on per-path
        ``(c τ [m], ω_R, ω_T [rad], Re g, Im g)``.
    range_bound : ``[snapshot, path]`` [m], on ``c τ``.
    aoa_bound, aod_bound : ``[snapshot, path]`` [rad], on the planar angles from the
        array broadsides (eq. 3), through ``ω = k d sin θ``.
    """

    bound: Bound
    range_bound: FloatArray
    aoa_bound: FloatArray
    aod_bound: FloatArray

    @property
    def orientation_error_bound(self) -> FloatArray:
        """``[snapshot]`` [rad], the yaw bound (``bound.orientation_error_bound``, which
        this paper always gives)."""
        return np.asarray(self.bound.orientation_error_bound, dtype=np.float64)


def true_parameters(
    snap: LocmanSnapshot, truth: ChannelTruth, t: int, paths: npt.NDArray[np.intp]
) -> tuple[FloatArray, FloatArray]:
    """The true unknowns of eq. (19) and the channel parameters they map to (eq. 3).

    Parameters
    ----------
    snap : snapshot ``t`` in the paper's form (its geometry maps ``x`` to ``η``).
    truth : the true channel; ``ue_orientation`` must be given.
    t : the snapshot.
    paths : ``[path]`` indices into ``truth``'s paths, the LOS first, then the
        single-bounce paths whose scatterers enter ``x``.

    Returns
    -------
    x : ``[3 + 2 (path - 1)]`` ``(p_x, p_y [m], α [rad], s_1x, s_1y, ... [m])``.
    eta : ``[path, 3]`` ``(c τ [m], ω_R, ω_T [rad])``.
    """
    if truth.ue_orientation is None:
        raise ValueError("the truth gives no UE orientation: the yaw is a parameter")
    p = truth.ue_position[t]
    x = [p[0], p[1], truth.ue_orientation[t, 0]]
    for q in paths[1:]:
        x += list(truth.scatterer[t, q, :2])
    xs = np.asarray(x, dtype=np.float64)
    return xs, snap.geometry.paths(xs)


#: [m] A true path is of the model's geometry (eq. 3) where the model, at the true UE,
#: yaw and bounce point, gives its length to this: far above the twin's float32 geometry
#: (~10 µm at 100 m), far below what a bounce off a horizontal surface (the ground, a
#: ceiling) differs by — the model puts every bounce on a vertical reflector, so such a
#: bounce point maps onto the LOS, its length short by 0.08-2.7 m on the bench drives.
MODEL_PATH_TOLERANCE_M = 1e-3


def _of_the_model(truth: ChannelTruth, t: int, num_paths: int,
                  geometry: LinkGeometry | None = None) -> npt.NDArray[np.intp] | None:
    """The model's ``num_paths`` paths of snapshot ``t``: the LOS (path 0), then the
    earliest single bounces with known scatterers; None where there are not that many,
    no LOS, or no orientation.

    Without ``geometry``, the first ``num_paths`` valid paths must be these (a
    multi-bounce path among them: None). With ``geometry``, the model's paths are taken
    from all the valid ones: a single bounce is the model's only where eq. (3)
    reproduces its length (:data:`MODEL_PATH_TOLERANCE_M`: a bounce off a vertical
    reflector), and the others are skipped — a multi-bounce path, and a ground or
    ceiling bounce, which the model would put on a vertical reflector on the LOS line (a
    duplicate of the LOS: a singular FIM, so the bound fell back to the LOS alone)."""
    valid = np.flatnonzero(truth.valid[t])
    if (len(valid) == 0 or not truth.los[t] or valid[0] != 0
            or truth.ue_orientation is None or not np.isfinite(truth.gain[t, 0])):
        return None
    paths = [0]
    p = truth.ue_position[t]
    for q in valid[1:]:
        if len(paths) == num_paths:
            break
        s = truth.scatterer[t, q]
        if not (np.all(np.isfinite(s)) and np.isfinite(truth.gain[t, q])):
            if geometry is None:
                return None
            continue
        if geometry is not None:
            x = np.array([p[0], p[1], truth.ue_orientation[t, 0], s[0], s[1]])
            with np.errstate(divide="ignore", invalid="ignore"):
                length = geometry.paths(x)[1, 0]
            if not abs(length - SPEED_OF_LIGHT * truth.tau[t, q]) <= MODEL_PATH_TOLERANCE_M:
                continue
        paths.append(int(q))
    return np.asarray(paths, dtype=np.intp) if len(paths) == num_paths else None


def locman_bounds(
    obs: Observation, truth: ChannelTruth, num_paths: int, bs: int = 0,
    ground_height: float | None = None,
) -> LocmanBounds:
    """CRLBs of the channel parameters, UE position, yaw and scatterers per snapshot.

    Channel FIM ``J_η = (2/σ²) Re{D^H D}`` (Shahmansoori et al. eqs. 14-16), position
    FIM ``T^T J_η T`` with ``T = ∂η/∂x`` (eqs. 17-20), ``x = (p, α, s_1, ..., gains)``,
    the UE height known (the truth's) and the scatterers on vertical reflectors (eq. 3,
    :class:`LinkGeometry`).

    Parameters
    ----------
    obs : a downlink observation with identity combining and ULAs at both ends (the
        estimators' :meth:`check` has passed).
    truth : the true channel behind ``obs``, ``[snapshot, path]``.
    num_paths : the model's paths: the LOS and the earliest ``num_paths - 1`` single
        bounces of ``truth`` that eq. (3) describes (off vertical reflectors; the others
        are skipped, :func:`_of_the_model`).
    bs : which BS of ``obs``.
    ground_height : [m] where given (outside the paper), the bound of the model
        :class:`estimators.locman.estimators.Locman` refits with its ``ground_height``:
        every model path followed by its ground bounce (:meth:`LinkGeometry.paths`),
        whose gain is the sum of the true paths of that length
        (:data:`MODEL_PATH_TOLERANCE_M`; 0 where the truth has none). The per-path
        arrays then hold the ``2 num_paths`` paths, the ground bounces last.

    Returns
    -------
    LocmanBounds
        NaN for a snapshot without that many model paths (no LOS, too few single
        bounces, no orientation), and where a FIM is singular; never raises on such a
        snapshot.
    """
    if truth.ue_position.shape[0] != obs.num_snapshots:
        raise ValueError(f"truth has {truth.ue_position.shape[0]} snapshots, the observation "
                         f"{obs.num_snapshots}")
    T_, Q = obs.num_snapshots, num_paths - 1
    L = num_paths if ground_height is None else 2 * num_paths  # paths of the model's η
    peb, oeb = np.full(T_, np.nan), np.full(T_, np.nan)
    seb = np.full((T_, Q), np.nan)
    rng_b, aoa_b, aod_b = (np.full((T_, L), np.nan) for _ in range(3))
    channel = np.full((T_, 5 * L, 5 * L), np.nan)
    for t in range(T_):
        if not truth.los[t] or truth.ue_orientation is None:
            continue
        # The height is a known parameter of the model: the bound is at the true one
        # (whatever height an estimator assumes).
        snap = snapshot(obs, t, bs, float(truth.ue_position[t, 2]))
        paths = _of_the_model(truth, t, num_paths, snap.geometry)
        if paths is None:
            continue
        # A scatterer on the UE or the BS makes a path direction 0/0: NaN, as singular.
        with np.errstate(divide="ignore", invalid="ignore"):
            x, eta = true_parameters(snap, truth, t, paths)
            gain = truth.gain[t, paths]
            if ground_height is not None:
                eta = snap.geometry.paths(x, ground_height)
                gain = np.concatenate([gain, _gains_of_length(truth, t, eta[num_paths:, 0])])
            if not np.all(np.isfinite(eta)):
                continue
            fim = snap.fim(gain, eta)
            channel[t] = invert_fim(fim)
            k = 2 * np.pi / snap.geometry.wavelength
            # ω = k d sin θ (θ from broadside): var θ = var ω / (k d cos θ)².
            for l_ in range(L):
                rng_b[t, l_] = np.sqrt(channel[t, 5 * l_, 5 * l_])
                for col, spacing, out in ((1, snap.rx.spacing, aoa_b),
                                          (2, snap.tx.spacing, aod_b)):
                    s = eta[l_, col] / (k * spacing)
                    out[t, l_] = np.sqrt(channel[t, 5 * l_ + col, 5 * l_ + col]) / (
                        k * spacing * np.sqrt(max(1 - s**2, 1e-12)))
            T = geometric_transform(snap.geometry, x, L, ground_height)
            bound = invert_fim(T.T @ fim @ T)
        peb[t] = error_bound(bound, [0, 1])
        oeb[t] = error_bound(bound, [2])
        for q in range(Q):
            seb[t, q] = error_bound(bound, [3 + 2 * q, 4 + 2 * q])
    return LocmanBounds(
        bound=Bound(position_error_bound=peb, scatterer_error_bound=seb,
                    orientation_error_bound=oeb, channel_crlb=channel),
        range_bound=rng_b, aoa_bound=aoa_b, aod_bound=aod_b,
    )


def _gains_of_length(truth: ChannelTruth, t: int, lengths: FloatArray) -> ComplexArray:
    """``[path]`` complex: per length [m], the summed gains of snapshot ``t``'s valid
    true paths that long (:data:`MODEL_PATH_TOLERANCE_M`): a ground bounce and its
    wall-ground / ground-wall pair have the same unfolded path; 0 where none is."""
    valid = truth.valid[t]
    out = np.zeros(len(lengths), dtype=np.complex128)
    for i, length in enumerate(lengths):
        same = valid & (np.abs(SPEED_OF_LIGHT * truth.tau[t] - length) <= MODEL_PATH_TOLERANCE_M)
        out[i] = np.sum(truth.gain[t, same])
    return out


def efficient_errors(
    obs: Observation, truth: ChannelTruth, num_paths: int, bs: int = 0
) -> FloatArray:
    """The errors an efficient estimator makes on each snapshot's own noise.

    The ML linearised at the truth: ``δx = J_x^-1 (2/σ²) Re{D_x^H n}`` with ``D_x = D T``
    (Shahmansoori et al. eqs. 14-20; :meth:`LocmanSnapshot.jacobian`,
    :func:`geometric_transform`) and ``n = y - μ`` the noise of the observation. Its
    covariance is the CRLB of :func:`locman_bounds` exactly, so an estimator's errors
    compared trial by trial with these measure its distance from the bound without
    most of the Monte-Carlo spread of either. Needs the model's own setting: the true
    channel is the first ``num_paths`` paths of ``truth`` exactly (the paper's
    synthetic setting, not a twin channel).

    Parameters
    ----------
    obs : the observation; truth : its true channel; num_paths : the model's paths;
    bs : which BS of ``obs``.

    Returns
    -------
    errors : ``[snapshot, 3 + 2 (num_paths - 1)]`` on ``(p_x, p_y [m], α [rad], s_1x,
        s_1y, ... [m])``; NaN where the bound is (:func:`locman_bounds`).
    """
    L = num_paths
    errors = np.full((obs.num_snapshots, 3 + 2 * (L - 1)), np.nan)
    for t in range(obs.num_snapshots):
        if not truth.los[t] or truth.ue_orientation is None:
            continue
        snap = snapshot(obs, t, bs, float(truth.ue_position[t, 2]))
        paths = _of_the_model(truth, t, L)
        if paths is None:
            continue
        x, eta = true_parameters(snap, truth, t, paths)
        gain = truth.gain[t, paths]
        noise = snap.y - np.einsum("krt,ktg->krg", snap.channel(gain, eta), snap.x)
        jacobian = snap.jacobian(gain, eta) @ geometric_transform(snap.geometry, x, L)
        errors[t] = efficient_error(jacobian, noise, snap.noise_variance)[: len(x)]
    return errors
