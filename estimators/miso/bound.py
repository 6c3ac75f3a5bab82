"""The MISO paper's Cramér-Rao bounds: channel FIM, position FIM, PEB and scatterer bounds.

Per path ``p`` the channel parameters are ``η_p = (Re α_p, Im α_p, τ_p, azimuth_p[,
zenith_p])``; the position parameters ``x = (p, s_1, ..., s_{L-1}, gains)`` (UE, then
each single-bounce scatterer, in the estimator's ``dimensions``). Derivations:
``docs/estimators/miso.md``.

References
----------
A. Fascista, A. Coluccia, H. Wymeersch, G. Seco-Granados, "Downlink single-snapshot
localization and mapping with a single-antenna receiver", IEEE Trans. Wireless Commun.,
2021: channel FIM eqs. (7)-(9), geometry (10)-(13), position FIM (14)-(16), PEB (17),
Theorem 1 (21).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from estimators.arrays import SPEED_OF_LIGHT, steering_vector
from estimators.base import Bound
from estimators.fisher import crlb as invert_fim
from estimators.fisher import efficient_error, error_bound, gaussian_fim
from estimators.miso.model import MisoSnapshot, height_zenith
from estimators.types import ChannelTruth, Observation
from estimators.typing import BoolArray, ComplexArray, FloatArray

BOUND_DESCRIPTION = (
    "UE position error bound (PEB, eq. 17) and each single-bounce scatterer's error bound "
    "from the position-domain FIM (eqs. 14-16) of the channel FIM (eqs. 7-9), in the "
    "estimator's dimensions; channel_crlb: the inverse channel FIM. NaN on a snapshot "
    "without LOS or with fewer true paths than num_paths (no MISO localization without "
    "LOS, Theorem 1)"
)


def miso_jacobian(
    snap: MisoSnapshot, gain: ComplexArray, tau: FloatArray, aod: FloatArray, dimensions: int,
    height_drop: float = 0.0,
) -> ComplexArray:
    """``∂μ/∂η`` of the noiseless observation (eq. 9).

    Parameters
    ----------
    snap : the snapshot whose beams, pilots and subcarriers sound the paths.
    gain : ``[path]`` complex; tau : ``[path]`` [s]; aod : ``[path, 2]`` (azimuth,
        zenith) [rad], the zenith read only for ``dimensions == 3``.
    dimensions : 2 or 3.
    height_drop : [m] for ``dimensions == 2``, BS height less UE height: every path's
        zenith is :func:`~estimators.miso.model.height_zenith` of its length (π/2 for
        0, the paper's plane), so the ``τ`` column also carries ``∂μ/∂θ · dθ/dτ``.

    Returns
    -------
    ``[beam * subcarrier, path * (dimensions + 2)]`` complex, columns per path
    ``(Re α, Im α, τ, azimuth[, zenith])``.
    """
    az = aod[:, 0]
    lengths = SPEED_OF_LIGHT * np.asarray(tau)
    zen = aod[:, 1] if dimensions == 3 else height_zenith(lengths, height_drop)
    # dθ/dτ of the 2-D model's zenith (cos θ = -Δh / (c τ)); 0 in 3-D and for Δh = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        dzen_dtau = (np.zeros(len(tau)) if dimensions == 3 else
                     -height_drop * SPEED_OF_LIGHT / (lengths**2 * np.sin(zen)))
    r = snap.element_positions
    wavenumber = 2 * np.pi / snap.wavelength
    steering = steering_vector(r, az, zen, snap.wavelength)  # [path, bs_ant]
    du_daz = np.stack([-np.sin(zen) * np.sin(az), np.sin(zen) * np.cos(az),
                       np.zeros_like(az)], -1)
    du_dzen = np.stack([np.cos(zen) * np.cos(az), np.cos(zen) * np.sin(az), -np.sin(zen)], -1)
    delay = np.exp(-2j * np.pi * tau[:, None] * snap.frequencies)  # [path, subcarrier]
    dphase = -2j * np.pi * snap.frequencies
    columns = []
    for p in range(len(tau)):
        def shaped(response: ComplexArray, factor: Any = 1.0, p: int = p) -> ComplexArray:
            return np.asarray(
                (response[:, None] * (delay[p] * factor)[None, :] * snap.pilots).ravel())
        response = steering[p] @ snap.precoders
        unit = shaped(response)
        d_zen = (steering[p] * 1j * wavenumber * (r @ du_dzen[p])) @ snap.precoders
        d_tau = gain[p] * shaped(response, dphase)
        if dzen_dtau[p] != 0:
            d_tau = d_tau + gain[p] * dzen_dtau[p] * shaped(d_zen)
        columns += [unit, 1j * unit, d_tau]
        d_az = (steering[p] * 1j * wavenumber * (r @ du_daz[p])) @ snap.precoders
        columns.append(gain[p] * shaped(d_az))
        if dimensions == 3:
            columns.append(gain[p] * shaped(d_zen))
    return np.stack(columns, axis=-1)


def miso_channel_fim(
    snap: MisoSnapshot, gain: ComplexArray, tau: FloatArray, aod: FloatArray, dimensions: int,
    height_drop: float = 0.0,
) -> FloatArray:
    """Channel-domain FIM (eqs. 7-9) at the given true paths:
    ``[path * (dimensions + 2), path * (dimensions + 2)]`` in :func:`miso_jacobian`'s
    order (``height_drop`` as there)."""
    return gaussian_fim(miso_jacobian(snap, gain, tau, aod, dimensions, height_drop),
                        snap.noise_variance)


def miso_position_transform(
    bs: FloatArray, ue: FloatArray, scatterers: FloatArray, dimensions: int,
    height_drop: float = 0.0,
) -> tuple[FloatArray, BoolArray]:
    """``T = ∂η/∂x`` from position to channel parameters (eqs. 10-16).

    Parameters
    ----------
    bs, ue : ``[3]`` [m].
    scatterers : ``[path - 1, 3]`` [m], NaN for a path that is not single-bounce: it
        keeps its own ``(τ, angles)`` in ``x``.
    dimensions : 2 (positions in the horizontal plane) or 3.
    height_drop : [m] for ``dimensions == 2``, BS height less UE height (known): a path
        of horizontal length ``ρ`` (unfolded, vertical reflectors) has ``c τ =
        sqrt(ρ² + Δh²)``, so its ``τ`` row is the planar one times ``ρ / (c τ)``.

    Returns
    -------
    transform : ``[path * (dimensions + 2), dimensions * path + 2 * path]``.
    mapped : ``[path - 1]`` bool, which NLOS paths were mapped to a scatterer.
    """
    d = dimensions
    c = SPEED_OF_LIGHT
    num_paths = len(scatterers) + 1
    per_path = 2 + d  # Re α, Im α, τ, angles
    mapped = (np.all(np.isfinite(scatterers), axis=-1) if len(scatterers)
              else np.zeros(0, bool))
    b, p = np.asarray(bs)[:d], np.asarray(ue)[:d]
    transform = np.zeros((num_paths * per_path, d * num_paths + 2 * num_paths))

    def angle_gradient(v: FloatArray) -> FloatArray:
        """∂(azimuth[, zenith])/∂v for a direction vector v (eqs. 11, 13)."""
        horizontal2 = v[0] ** 2 + v[1] ** 2
        rows = [np.array([-v[1], v[0], 0.0][:d]) / horizontal2]
        if d == 3:
            length2, horizontal = v @ v, np.sqrt(horizontal2)
            rows.append(np.array([v[0] * v[2] / horizontal, v[1] * v[2] / horizontal,
                                  -horizontal]) / length2)
        return np.vstack(rows)

    drop2 = float(height_drop) ** 2 if d == 2 else 0.0

    def slant(horizontal: float) -> float:
        """d(c τ)/d(horizontal length): 1 in the paper's plane."""
        return horizontal / np.sqrt(horizontal**2 + drop2) if drop2 else 1.0

    los = p - b  # τ_0 = |p - b| / c, angles of p - b (eqs. 10-11)
    transform[2, 0:d] = los / np.linalg.norm(los) / c * slant(float(np.linalg.norm(los)))
    transform[3:per_path, 0:d] = angle_gradient(los)
    for q in range(num_paths - 1):
        row, col = (q + 1) * per_path, d * (q + 1)
        if mapped[q]:
            s = np.asarray(scatterers[q])[:d]
            departure, arrival = s - b, p - s  # eqs. 12-13
            k = slant(float(np.linalg.norm(departure) + np.linalg.norm(arrival)))
            transform[row + 2, 0:d] = k * arrival / np.linalg.norm(arrival) / c
            transform[row + 2, col:col + d] = k * (departure / np.linalg.norm(departure)
                                                   - arrival / np.linalg.norm(arrival)) / c
            transform[row + 3:row + per_path, col:col + d] = angle_gradient(departure)
        else:
            transform[row + 2:row + per_path, col:col + d] = np.eye(d)
    gains_col = d * num_paths
    for path in range(num_paths):
        transform[path * per_path:path * per_path + 2,
                  gains_col + 2 * path:gains_col + 2 * path + 2] = np.eye(2)
    return transform, mapped


def vertical_reflectors(bs: FloatArray, ue: FloatArray, scatterers: FloatArray,
                        tolerance_m: float = 0.05) -> FloatArray:
    """The scatterers the 2-D model with heights maps (vertical reflectors), NaN others.

    A single bounce off a vertical surface keeps the path's unfolded line from the BS to
    the UE's image at the UE's height: its point lies at the height that line has there
    (``z_b - Δh d / ρ``, ``d`` and ``ρ`` horizontal lengths to it and in all). A ground
    or ceiling bounce does not: its path has its own zenith, outside the 2-D model.

    Parameters
    ----------
    bs, ue : ``[3]`` [m]; scatterers : ``[path - 1, 3]`` [m] (NaN: not single-bounce).
    tolerance_m : [m] off that height still counted as on it.

    Returns
    -------
    ``[path - 1, 3]`` [m].
    """
    s = np.asarray(scatterers, dtype=np.float64).reshape(-1, 3)
    b, p = np.asarray(bs, dtype=np.float64), np.asarray(ue, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.linalg.norm(s[:, :2] - b[:2], axis=1)
        total = first + np.linalg.norm(p[:2] - s[:, :2], axis=1)
        line = b[2] - (b[2] - p[2]) * first / total
    on_line = np.abs(s[:, 2] - line) <= tolerance_m
    return np.where(on_line[:, None], s, np.nan)


def position_crlb(
    snap: MisoSnapshot, gain: ComplexArray, tau: FloatArray, aod: FloatArray,
    ue: FloatArray, scatterers: FloatArray, dimensions: int, height_drop: float = 0.0,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Channel CRLB and position-domain CRLB (eqs. 7-16) at the given paths.

    Parameters
    ----------
    snap : the snapshot; gain ``[path]``, tau ``[path]`` [s], aod ``[path, 2]`` [rad]:
        the paths (path 0 the LOS); ue ``[3]`` [m]; scatterers ``[path - 1, 3]`` [m]
        (NaN: kept as channel parameters); dimensions, height_drop: as
        :func:`miso_jacobian` and :func:`miso_position_transform`.

    Returns
    -------
    channel : ``[n, n]``, position : ``[m, m]`` (UE first, then the scatterers, then
    the gains; NaN where singular), mapped : ``[path - 1]``.
    """
    d = dimensions
    # A UE straight above the BS or on it has no azimuth: NaN, not a warning.
    with np.errstate(divide="ignore", invalid="ignore"):
        fim = miso_channel_fim(snap, gain, tau, aod, d, height_drop)
        transform, mapped = miso_position_transform(snap.bs_position, ue, scatterers, d,
                                                    height_drop)
        return invert_fim(fim), invert_fim(transform.T @ fim @ transform), mapped


def miso_bound(
    obs: Observation, truth: ChannelTruth, *, num_paths: int | None, dimensions: int,
    bs: int, max_paths: int | None = None,
) -> Bound:
    """PEB and scatterer bounds (eqs. 7-17) at the true channel of every snapshot.

    The first ``num_paths`` valid paths of ``truth`` are the model's paths (None: all
    valid paths, at most ``max_paths``: the bound of an estimator that finds the model
    order); path 0 must be the LOS. A snapshot where this does not hold (no LOS, too few
    paths), or where the FIM does not exist (no noise) or is singular, gets NaN. In 2-D
    the heights are known (the truth's): every path's zenith follows from its length
    (:func:`miso_jacobian`), and only vertical reflectors are mapped
    (:func:`vertical_reflectors`; other paths keep their ``(τ, azimuth)``).

    Parameters
    ----------
    obs : a single-antenna downlink observation; truth : its true channel (of BS ``bs``).
    num_paths, dimensions, bs, max_paths : the estimator's hyper-parameters.

    Returns
    -------
    ``position_error_bound [snapshot]`` [m] in ``dimensions``,
    ``scatterer_error_bound [snapshot, L - 1]`` [m] (NaN for a path that is not mapped),
    ``channel_crlb [snapshot, n, n]``, ``n = L * (dimensions + 2)``, ``L = num_paths``
    (or ``max_paths``; NaN-padded where a snapshot has fewer).
    """
    if num_paths is None and max_paths is None:
        raise ValueError("miso_bound: give num_paths or max_paths")
    size = int(num_paths if num_paths is not None else max_paths)  # type: ignore[arg-type]
    T, d = obs.num_snapshots, dimensions
    peb = np.full(T, np.nan)
    scatterer_bound = np.full((T, size - 1), np.nan)
    channel = np.full((T, size * (d + 2), size * (d + 2)), np.nan)
    for t in range(T):
        paths = np.flatnonzero(truth.valid[t])[:size]
        if (num_paths is not None and len(paths) < num_paths) or not len(paths) \
                or not truth.los[t] or paths[0] != 0:
            continue
        snap = MisoSnapshot.from_observation(obs, t, bs)
        if not snap.noise_variance > 0:
            continue
        ue = truth.ue_position[t]
        scatterers = truth.scatterer[t, paths[1:]]
        drop = 0.0
        if d == 2:
            drop = float(snap.bs_position[2] - ue[2])
            scatterers = vertical_reflectors(snap.bs_position, ue, scatterers)
        crlb_channel, crlb_position, mapped = position_crlb(
            snap, truth.gain[t, paths], truth.tau[t, paths], truth.aod[t, paths], ue,
            scatterers, d, drop)
        n = len(paths) * (d + 2)
        channel[t, :n, :n] = crlb_channel
        peb[t] = error_bound(crlb_position, range(d))
        for q in np.flatnonzero(mapped):
            scatterer_bound[t, q] = error_bound(crlb_position, range(d * (q + 1), d * (q + 2)))
    return Bound(position_error_bound=peb, scatterer_error_bound=scatterer_bound,
                 channel_crlb=channel)


def efficient_errors(
    obs: Observation, truth: ChannelTruth, *, dimensions: int, bs: int = 0
) -> tuple[FloatArray, FloatArray]:
    """The errors an efficient estimator makes on each snapshot's own noise.

    The ML linearised at the truth: ``δx = J_x^-1 (2/σ²) Re{D_x^H n}`` with ``D_x = D T``
    (eqs. 9, 14) and ``n = y - μ`` the noise of the observation. Its covariance is the
    CRLB exactly, so an estimator's errors compared trial by trial with these measure
    its distance from the bound without most of the Monte-Carlo spread of either. Needs
    the model's own setting (every valid path of ``truth`` modelled, path 0 the LOS).

    Parameters
    ----------
    obs : the observation; truth : its true channel (of BS ``bs``).
    dimensions : 2 (the horizontal plane) or 3.

    Returns
    -------
    ue : ``[snapshot, dimensions]`` [m]; scatterers : ``[snapshot, path - 1,
    dimensions]`` [m].
    """
    d = dimensions
    ue, scatterers = [], []
    for t in range(obs.num_snapshots):
        paths = np.flatnonzero(truth.valid[t])
        snap = MisoSnapshot.from_observation(obs, t, bs)
        gain, tau, aod = truth.gain[t, paths], truth.tau[t, paths], truth.aod[t, paths]
        noise = snap.y - snap.noiseless(gain, tau, aod[:, 0], aod[:, 1])
        ue_t, points = truth.ue_position[t], truth.scatterer[t, paths[1:]]
        drop = float(snap.bs_position[2] - ue_t[2]) if d == 2 else 0.0
        if d == 2:
            points = vertical_reflectors(snap.bs_position, ue_t, points)
        transform, _ = miso_position_transform(snap.bs_position, ue_t, points, d, drop)
        jacobian = miso_jacobian(snap, gain, tau, aod, d, drop) @ transform
        step = efficient_error(jacobian, noise, snap.noise_variance)
        ue.append(step[:d])
        scatterers.append(step[d:d * len(paths)].reshape(-1, d))
    return np.asarray(ue), np.asarray(scatterers)
