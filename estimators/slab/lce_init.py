"""SLAB's first-slot starting point (§IV-D) and the re-acquisition along a drive.

The paper: "randomly generate multiple samples over the parameter space of α, try all
samples and then choose the best sample with the minimum cost function value (24) as the
initial point". Uniform samples of ``α`` over the area essentially never land in the
~3 m basin of (24), so :func:`draw_starts` draws them where the data point (per-BS path
periodograms, LOS hypotheses, UE positions and scatterers drawn around them, scored by
(24)) and :func:`multistart` keeps the paper's rule: a few SLLS iterations from every
candidate, the lowest cost (24) wins. :func:`track` and :func:`redraw_scatterers` start
a new window of a drive from the previous estimate. Steps, and why: docs/estimators/
slab.md, "LCE" (the multi-start).

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: §IV-D, Algorithm 2,
the LCE cost (24).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2

from estimators.arrays import SPEED_OF_LIGHT, wrap_angle
from estimators.fisher import REGION_PROBABILITY
from estimators.slab.lce import (
    ORIENTATION,
    LceProblem,
    LceResult,
    _wrapped,
    residual_dof,
    slls,
)
from estimators.slab.model import azimuth, slant, ula_response
from estimators.types import Area, in_area
from estimators.typing import ComplexArray, FloatArray

#: ``search(coarse, cost, centers) -> [(cost, point)]``, best first (:func:`_coarse_to_fine`).
Search = Callable[[Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
                   Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
                   npt.NDArray[np.float64]], list[tuple[float, npt.NDArray[np.float64]]]]

#: ``|sin θ|`` above which the multi-start also tries the grating alias ``sin θ ∓ 2``.
_ENDFIRE_SINE = 0.85


def _delay_period(frequencies: FloatArray) -> float:
    """[s] ``1 / Δf`` of evenly spaced subcarriers: delays are known modulo it."""
    spacing = np.diff(frequencies)
    if spacing.size == 0:
        return float("inf")
    if not np.allclose(spacing, spacing[0], rtol=1e-9, atol=0):
        raise ValueError("multistart needs evenly spaced subcarriers per BS")
    return float(1.0 / abs(spacing[0]))


def _columns(problem: LceProblem, bs: int, tau: npt.ArrayLike, sin_aod: npt.ArrayLike,
             sin_aoa: npt.ArrayLike) -> ComplexArray:
    """Single-path columns of ``G`` (eq. 14) of BS ``bs`` for paths ``[n]`` given by
    ``τ`` [s], ``sin θ_B``, ``sin θ_U``: ``[n, ue_ant · beam · subcarrier]``."""
    sysm = problem.system
    lam, f = sysm.wavelengths[bs], sysm.frequencies[bs]
    t = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    aod = np.arcsin(np.clip(np.atleast_1d(np.asarray(sin_aod, dtype=np.float64)), -1, 1))
    aoa = np.arcsin(np.clip(np.atleast_1d(np.asarray(sin_aoa, dtype=np.float64)), -1, 1))
    a_u = ula_response(sysm.num_ue_antennas, spacing=sysm.ue_spacing, wavelength=lam,
                       angle=aoa[:, None])  # [n, subcarrier, ue_ant]
    a_b = ula_response(sysm.num_bs_antennas, spacing=sysm.bs_spacing, wavelength=lam,
                       angle=aod[:, None])
    w = problem.beamformers[bs]  # [bs_ant, beam, subcarrier]
    beams = np.matmul(a_b.conj().transpose(1, 0, 2), w.transpose(2, 0, 1))  # [k, n, m]
    delay = np.exp(-2j * np.pi * t[:, None] * f[None, :])  # [n, k]
    ue = (sysm.amplitude * a_u * delay[:, :, None]).transpose(0, 2, 1)  # [n, r, k]
    col = ue[:, :, None, :] * beams.transpose(1, 2, 0)[:, None, :, :]  # [n, r, m, k]
    return np.asarray(col.reshape(col.shape[0], -1))


def _off(basis: ComplexArray | None, data: ComplexArray) -> ComplexArray:
    """``data [..., obs]`` projected off the columns of ``basis [obs, q]``."""
    if basis is None or basis.shape[1] == 0:
        return data
    q = np.linalg.qr(basis)[0]
    return np.asarray(data - (data @ q.conj()) @ q.T)


def _gain_of_fit(basis: ComplexArray | None, data: ComplexArray, cols: ComplexArray
                 ) -> FloatArray:
    """Decrease of ``‖data - [basis, c] h‖²`` over ``‖data - basis h‖²`` for every column
    ``c`` of ``cols [n, obs]``: ``|c'^H d'|² / ‖c'‖²`` with ``'`` off ``basis``."""
    d, c = _off(basis, data), _off(basis, cols)
    norm = np.sum(np.abs(c) ** 2, axis=-1)
    return np.asarray(np.abs(c.conj() @ d) ** 2 / np.where(norm > 0, norm, np.inf))


@dataclass(frozen=True)
class _Periodogram:
    """Single-path periodogram ``|c^H d|² / ‖c‖²`` of one BS's data ``d`` on a grid: the
    decrease of ``‖d - c h‖²`` by one path ``c(τ, θ_B, θ_U)`` with its gain fitted (30).

    ``power [sin_aoa, sin_aod, delay]`` [W] on ``sin θ = -1 + 2 i / n`` and
    ``τ = period · i / n_delay``; the delay axis is periodic (``period`` [s]).
    """

    power: FloatArray
    period: float

    @property
    def sines(self) -> FloatArray:
        n = self.power.shape[0]
        return np.asarray(-1.0 + 2.0 * np.arange(n) / n)

    @property
    def delays(self) -> FloatArray:
        n = self.power.shape[2]
        return np.asarray(self.period * np.arange(n) / n)

    def lookup(self, tau: FloatArray, sin_aod: FloatArray, sin_aoa: FloatArray) -> FloatArray:
        """Nearest-grid values at ``τ`` [s], ``sin θ_B``, ``sin θ_U`` (any equal shapes)."""
        nu, nb, nd = self.power.shape
        iu = np.clip(np.rint((sin_aoa + 1) * nu / 2).astype(np.intp), 0, nu - 1)
        ib = np.clip(np.rint((sin_aod + 1) * nb / 2).astype(np.intp), 0, nb - 1)
        idd = np.rint(np.mod(tau, self.period) / self.period * nd).astype(np.intp) % nd
        return np.asarray(self.power[iu, ib, idd])


def _period(problem: LceProblem, bs: int) -> float:
    """[s] the delay period of BS ``bs`` (a span beyond all delays for one subcarrier)."""
    period = _delay_period(problem.system.frequencies[bs])
    return period if np.isfinite(period) else 1e-3


def _periodogram(problem: LceProblem, bs: int, data: ComplexArray, *, angle_grid: int,
                 delay_grid: int) -> _Periodogram:
    """:class:`_Periodogram` of ``data [ue_ant · beam · subcarrier]`` of BS ``bs``."""
    sysm = problem.system
    lam, f = sysm.wavelengths[bs], sysm.frequencies[bs]
    period = _period(problem, bs)
    sines = -1.0 + 2.0 * np.arange(angle_grid) / angle_grid
    angles = np.arcsin(sines)[:, None]
    a_u = ula_response(sysm.num_ue_antennas, spacing=sysm.ue_spacing, wavelength=lam,
                       angle=angles)  # [sin_aoa, subcarrier, ue_ant]
    a_b = ula_response(sysm.num_bs_antennas, spacing=sysm.bs_spacing, wavelength=lam,
                       angle=angles)  # [sin_aod, subcarrier, bs_ant]
    beams = np.einsum("bkt,tmk->bmk", a_b.conj(), problem.beamformers[bs])  # a_B^H ω
    norm = sysm.amplitude**2 * sysm.num_ue_antennas * np.sum(np.abs(beams) ** 2, axis=(1, 2))
    taus = period * np.arange(delay_grid) / delay_grid
    cube = data.reshape(problem.z[bs].shape).transpose(2, 0, 1)  # [k, r, m]
    combined = np.matmul(a_u.conj().transpose(1, 0, 2), cube)  # [k, sin_aoa, m]
    per_carrier = np.matmul(combined, beams.conj().transpose(2, 1, 0))  # [k, u, b]
    spectrum = per_carrier.transpose(1, 2, 0) @ np.exp(2j * np.pi * np.outer(f, taus))
    power = sysm.amplitude**2 * np.abs(spectrum) ** 2 / np.where(
        norm > 0, norm, np.inf)[None, :, None]
    return _Periodogram(power=np.asarray(power), period=period)


def _extract_paths(problem: LceProblem, bs: int, count: int, *, angle_grid: int,
                   delay_grid: int, refine_passes: int,
                   known: ComplexArray | None = None) -> FloatArray:
    """``count`` paths of BS ``bs``, ``[path, (τ, sin θ_B, sin θ_U)]``, strongest first.

    Greedy: the maximum of the single-path periodogram (the cost (24) of one path with its
    gain (30)) of the residual on a (``sin θ_U``, ``sin θ_B``, delay) grid, refined by
    Nelder-Mead on the joint fit with the paths found so far, then ``refine_passes``
    cyclic re-refinements of each path with the others fixed. ``τ`` is modulo the
    delay period. ``known [obs, q]``: columns of paths already known (e.g. the LOS at a
    known UE), fitted along with every path and never returned.
    """
    from scipy.optimize import minimize  # local: keeps the module import light

    data = problem.z[bs].reshape(-1)
    period = _period(problem, bs)
    scale = np.array([1e9, 1.0, 1.0])  # Nelder-Mead in (ns, sin, sin)

    def with_known(paths: FloatArray) -> ComplexArray | None:
        cols = [_columns(problem, bs, *paths.T).T] if len(paths) else []
        if known is not None:
            cols.append(known)
        return np.hstack(cols) if cols else None

    def refine(p: FloatArray, others: FloatArray) -> FloatArray:
        basis = with_known(others)
        q_basis = np.linalg.qr(basis)[0] if basis is not None else np.zeros((data.size, 0))
        d = data - q_basis @ (q_basis.conj().T @ data)

        def loss(q: FloatArray) -> float:
            c = _columns(problem, bs, *(q / scale))[0]
            c = c - q_basis @ (q_basis.conj().T @ c)
            return -float(np.abs(np.vdot(c, d)) ** 2 / max(np.vdot(c, c).real, 1e-300))

        out = minimize(loss, p * scale, method="Nelder-Mead",
                       options={"xatol": 1e-3, "fatol": 1e-8 * np.vdot(d, d).real,
                                "initial_simplex": p * scale + np.vstack(
                                    [np.zeros(3), np.diag([0.5, 0.02, 0.02])]),
                                "maxiter": 600})
        q = out.x / scale
        return np.array([np.mod(q[0], period), np.clip(q[1], -1, 1), np.clip(q[2], -1, 1)])

    paths = np.zeros((0, 3))
    for _ in range(count):
        table = _periodogram(problem, bs, _off(with_known(paths), data), angle_grid=angle_grid,
                             delay_grid=delay_grid)
        iu, ib, idd = np.unravel_index(int(np.argmax(table.power)), table.power.shape)
        guess = np.array([table.delays[idd], table.sines[ib], table.sines[iu]])
        paths = np.vstack([paths, refine(guess, paths)])
    for _ in range(refine_passes):
        for q in range(count):
            paths[q] = refine(paths[q], np.delete(paths, q, axis=0))
    return paths


@dataclass(frozen=True)
class _Hypothesis:
    """Which extracted path of each BS is the LOS, where the LOS rays meet, and the LOS
    AOAs (front/back and grating alias resolved at that position).

    ``score`` [sin²], ``position [2]`` [m], ``los [bs]``, ``aoa [bs]`` ``θ_U`` [rad].
    """

    score: float
    position: FloatArray
    los: tuple[int, ...]
    aoa: FloatArray


def _sine_options(sine: float) -> list[float]:
    """``sin θ`` and, near endfire, its grating alias: a half-wavelength ULA's phase
    ``π (λ_c/λ_n) sin θ`` cannot tell ``sin θ`` from ``sin θ ∓ 2`` (``|sin θ| → 1``)."""
    out = [sine]
    if abs(sine) > _ENDFIRE_SINE:
        out.append(float(np.clip(sine - 2 * np.sign(sine), -1, 1)))
    return out


def _angle_options(sine: float) -> list[float]:
    """Angles ``θ`` with this ``sin θ`` or its alias, both front (``arcsin``) and back
    (``π - arcsin``) of the ULA."""
    return [a for s in _sine_options(sine) for a in (np.arcsin(s), np.pi - np.arcsin(s))]


def _nearest(values: list[float], target: float) -> float:
    """The one of ``values`` nearest ``target``."""
    return float(values[int(np.argmin(np.abs(np.asarray(values) - target)))])


def _closest(angles: list[float], target: float) -> float:
    """The one of ``angles`` [rad] nearest ``target`` on the circle."""
    gaps = np.abs(wrap_angle(np.asarray(angles) - target))
    return float(angles[int(np.argmin(gaps))])


def _triangulate(origins: FloatArray, bearings: FloatArray, weights: FloatArray
                 ) -> FloatArray | None:
    """Weighted least-squares intersection of the rays ``origins[j] + t e(bearings[j])``;
    ``None`` unless it lies ahead (``t > 0``) on every ray."""
    normals = np.stack([-np.sin(bearings), np.cos(bearings)], axis=-1)
    A = np.einsum("j,ji,jk->ik", weights, normals, normals)
    if np.linalg.cond(A) > 1e8:
        return None
    x = np.linalg.solve(A, np.einsum("j,ji,jk,jk->i", weights, normals, normals, origins))
    along = np.einsum("jk,jk->j", x - origins,
                      np.stack([np.cos(bearings), np.sin(bearings)], axis=-1))
    return x if np.all(along > 0) else None


def _orientation(problem: LceProblem, positions: FloatArray, sin_aoa: FloatArray
                 ) -> FloatArray:
    """``ϑ [n]`` for UE positions ``[n, 2]``: the grid point (1°) that best fits the LOS
    sines ``sin(az(u_j - x) - ϑ) ≈ sin_aoa[j]`` in least squares."""
    grid = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    back = azimuth(problem.bs_position[None, :, :] - positions[:, None, :])  # [n, bs]
    cos_el = _cos_el(problem, positions)[:, None, :]
    misfit = np.sum((cos_el * np.sin(back[:, None, :] - grid[None, :, None]) - sin_aoa) ** 2,
                    axis=-1)
    return np.asarray(grid[np.argmin(misfit, axis=1)])


def _orientation_from(problem: LceProblem, positions: FloatArray, aoa: FloatArray
                      ) -> FloatArray:
    """``ϑ [n]`` for UE positions ``[n, 2]``: circular mean over BSs of
    ``az(u_j - x) - θ_U,j``, weighted by ``cos² θ_U,j`` (a ULA's angle precision)."""
    back = azimuth(problem.bs_position[None, :, :] - positions[:, None, :])  # [n, bs]
    weights = np.cos(aoa) ** 2 + 1e-3
    if np.any(problem.heights):
        aoa = _azimuths(aoa, _cos_el(problem, positions))
    return np.asarray(np.angle(np.sum(weights * np.exp(1j * (back - aoa)), axis=-1)))


def _azimuths(cone: FloatArray, cos_el: FloatArray) -> FloatArray:
    """Relative azimuths [rad] of cone angles ``cone`` seen at elevations ``cos_el``
    (broadcast): ``sin(az) = sin θ / cos ε`` (clipped to ±1), on ``θ``'s side."""
    sine = np.clip(np.sin(cone) / cos_el, -1.0, 1.0)
    return np.asarray(np.where(np.cos(cone) >= 0, np.arcsin(sine), np.pi - np.arcsin(sine)))


def _los_hypotheses(problem: LceProblem, paths: Sequence[FloatArray], count: int
                    ) -> list[_Hypothesis]:
    """The ``count`` most consistent LOS assignments, in the sine domain (where a ULA's
    precision is uniform): each assignment's LOS rays (front/back and endfire aliases)
    are triangulated, weighted by ``cos² θ_B``; score = squared misfit of the LOS sines at
    both ends, the UE's with the best ``ϑ``."""

    u, phi, J = problem.bs_position, problem.bs_orientation, problem.num_bs
    found: list[_Hypothesis] = []
    for los in itertools.product(*(range(len(p)) for p in paths)):
        sb = np.array([paths[j][los[j], 1] for j in range(J)])
        su_options = [_sine_options(paths[j][los[j], 2]) for j in range(J)]
        for aod in itertools.product(*(_angle_options(s) for s in sb)):
            x = _triangulate(u, phi + np.asarray(aod), np.cos(np.asarray(aod)) ** 2 + 1e-3)
            if x is not None and np.any(problem.heights):
                # BSs above the UE: the sines are cos ε sin(az); undo ε at the first
                # intersection and intersect again.
                x = _triangulate(u, phi + _azimuths(np.asarray(aod),
                                                    _cos_el(problem, x[None])[0]),
                                 np.cos(np.asarray(aod)) ** 2 + 1e-3)
            if x is None or not in_area(problem.area, x):
                continue
            predicted = _cos_el(problem, x[None])[0] * np.sin(azimuth(x - u) - phi)
            misfit_b = sum(min((predicted[j] - o) ** 2 for o in _sine_options(sb[j]))
                           for j in range(J))
            for su in itertools.product(*su_options):
                sin_aoa = np.asarray(su)
                theta = _orientation(problem, x[None], sin_aoa)[0]
                back = azimuth(u - x)
                misfit_u = float(np.sum((_cos_el(problem, x[None])[0] * np.sin(back - theta)
                                         - sin_aoa) ** 2))
                aoa = np.array([_closest(_angle_options(float(sin_aoa[j])),
                                         float(back[j] - theta)) for j in range(J)])
                found.append(_Hypothesis(score=float(misfit_b) + misfit_u, position=x, los=los,
                                         aoa=aoa))
    found.sort(key=lambda h: h.score)
    polished: list[_Hypothesis] = []
    for h in found:  # the best distinct ones, polished
        if all(np.linalg.norm(h.position - k.position) > 1.0 for k in polished):
            polished.append(_polish(problem, paths, h))
        if len(polished) == 4 * count:
            break
    polished.sort(key=lambda h: h.score)
    kept: list[_Hypothesis] = []
    for h in polished:  # distinct positions, at most two per LOS assignment
        if (all(np.linalg.norm(h.position - k.position) > 1.0 for k in kept)
                and sum(k.los == h.los for k in kept) < 2):
            kept.append(h)
        if len(kept) == count:
            break
    return kept


def _polish(problem: LceProblem, paths: Sequence[FloatArray], hyp: _Hypothesis
            ) -> _Hypothesis:
    """The hypothesis' ``x`` and ``ϑ`` refined by least squares on the LOS sine misfits
    at both ends (the alias options nearest the start), and re-scored."""
    from scipy.optimize import least_squares  # local: keeps the module import light

    u, phi, J = problem.bs_position, problem.bs_orientation, problem.num_bs
    x0 = hyp.position
    theta0 = float(_orientation_from(problem, x0[None], hyp.aoa)[0])
    predicted = np.sin(azimuth(x0 - u) - phi)
    sb = np.array([_nearest(_sine_options(paths[j][hyp.los[j], 1]), float(predicted[j]))
                   for j in range(J)])
    su = np.sin(hyp.aoa)
    scale = 100.0  # [m] per unit of the position unknowns

    def residual(p: FloatArray) -> FloatArray:
        x = x0 + scale * p[:2]
        cos_el = _cos_el(problem, x[None])[0]
        return np.concatenate([cos_el * np.sin(azimuth(x - u) - phi) - sb,
                               cos_el * np.sin(azimuth(u - x) - p[2]) - su])

    out = least_squares(residual, np.array([0.0, 0.0, theta0]), method="lm")
    x = x0 + scale * out.x[:2]
    if not in_area(problem.area, x):
        return hyp
    back = azimuth(u - x)
    aoa = np.array([_closest(_angle_options(float(su[j])), float(back[j] - out.x[2]))
                    for j in range(J)])
    return _Hypothesis(score=float(np.sum(out.fun**2)), position=x, los=hyp.los, aoa=aoa)


def _los_view(problem: LceProblem, bs: int, positions: FloatArray, theta: npt.ArrayLike
              ) -> tuple[FloatArray, FloatArray, FloatArray]:
    d = positions - problem.bs_position[bs]
    return _path_view(problem, bs, np.linalg.norm(d, axis=-1), d, -d, theta)


def _nlos_view(problem: LceProblem, bs: int, points: FloatArray, position: FloatArray,
               theta: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    dep, arr = points - problem.bs_position[bs], points - position
    length = np.linalg.norm(dep, axis=-1) + np.linalg.norm(arr, axis=-1)
    return _path_view(problem, bs, length, dep, arr, theta)


def _los_columns(problem: LceProblem, bs: int, positions: FloatArray, theta: FloatArray
                 ) -> ComplexArray:
    return _columns(problem, bs, *_los_view(problem, bs, positions, theta))


def _ground_columns(problem: LceProblem, bs: int, position: FloatArray, theta: float
                    ) -> list[ComplexArray]:
    """``[]``, or the ground bounce's column of BS ``bs`` with the UE at ``position
    [2]`` where the problem models one: the LOS's directions, the image's height."""
    if problem.ground_offset is None:
        return []
    d = position - problem.bs_position[bs]
    length, cos_el = slant(np.linalg.norm(d), float(problem.ground_offset[bs]))
    return [_columns(problem, bs, length / SPEED_OF_LIGHT,
                     cos_el * np.sin(azimuth(d) - problem.bs_orientation[bs]),
                     cos_el * np.sin(azimuth(-d) - theta))[0]]


def _nlos_columns(problem: LceProblem, bs: int, points: FloatArray, position: FloatArray,
                  theta: float) -> ComplexArray:
    return _columns(problem, bs, *_nlos_view(problem, bs, points, position, theta))


def _path_view(problem: LceProblem, bs: int, horizontal: FloatArray, departure: FloatArray,
               arrival: FloatArray, theta: npt.ArrayLike
               ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(τ, sin θ_B, sin θ_U)`` of paths of BS ``bs`` with unfolded horizontal lengths
    ``horizontal [n]`` [m], horizontal departure and arrival directions ``[n, 2]`` and UE
    yaws ``theta``: the BS ``Δh`` above the UE lengthens them and scales the sines by
    ``cos ε`` (:func:`~estimators.slab.model.slant`)."""
    length, cos_el = slant(horizontal, problem.heights[bs])
    return (length / SPEED_OF_LIGHT,
            cos_el * np.sin(azimuth(departure) - problem.bs_orientation[bs]),
            cos_el * np.sin(azimuth(arrival) - np.asarray(theta, dtype=np.float64)))


def _cos_el(problem: LceProblem, positions: FloatArray) -> FloatArray:
    """``cos ε [n, bs]`` of the LOS of every BS from UE positions ``[n, 2]``."""
    d = np.linalg.norm(positions[:, None, :] - problem.bs_position[None], axis=-1)
    return slant(d, problem.heights[None, :])[1]


def _scatterer_guesses(problem: LceProblem, bs: int, path: FloatArray, position: FloatArray,
                       theta: float) -> FloatArray:
    """``[option, 2]``: intersections of the path's BS ray and UE ray over the front/back
    (and endfire alias) options of both angles that meet in front of both ends and
    inside ``area`` (the
    ULA's front/back symmetry with the delay period also fits far-away points); the
    midpoint of BS and UE if none does."""
    u, phi = problem.bs_position[bs], problem.bs_orientation[bs]
    out = []
    for aod in _angle_options(path[1]):
        for aoa in _angle_options(path[2]):
            e1 = np.array([np.cos(phi + aod), np.sin(phi + aod)])
            e2 = np.array([np.cos(theta + aoa), np.sin(theta + aoa)])
            A = np.stack([e1, -e2], axis=-1)
            if abs(np.linalg.det(A)) < 1e-9:
                continue
            s, t = np.linalg.solve(A, position - u)
            if s > 0 and t > 0 and in_area(problem.scatterer_region, u + s * e1):
                out.append(u + s * e1)
    return np.asarray(out) if out else (u + 0.5 * (position - u))[None]


def _box(center: FloatArray, radius: float, bounds: Area | None
         ) -> tuple[FloatArray, FloatArray]:
    """Corners ``(low, high) [2]`` [m] of the square of half-side ``radius`` around
    ``center``, cut to ``bounds`` where given (and not disjoint from it)."""
    low, high = center - radius, center + radius
    if bounds is not None:
        cut_low = np.maximum(low, bounds[0])
        cut_high = np.minimum(high, bounds[1])
        if np.all(cut_low < cut_high):
            low, high = cut_low, cut_high
    return low, high


def _coarse_to_fine(
    coarse: Callable[[FloatArray], FloatArray], cost: Callable[[FloatArray], FloatArray],
    centers: FloatArray, rng: np.random.Generator, *, radius: float, samples: int, keep: int,
    fine_radius: float, fine_samples: int, bounds: Area | None = None,
) -> list[tuple[float, FloatArray]]:
    """Random search of a cost of points ``[n, 2]`` (lower is better): the ``centers``
    and ``samples`` uniform draws in a square of half-side ``radius`` around each, scored
    by the ``coarse`` approximation of ``cost``; the ``keep`` best at least
    ``2 fine_radius`` apart each get ``fine_samples`` draws in a square of half-side
    ``fine_radius``, scored by ``cost``. With ``bounds`` (the prior's corners) every
    square is cut to them: a draw outside the prior cannot be the answer. Returns
    ``(cost, point)`` of the best of each of those, best first."""
    draws = np.vstack([centers, *(rng.uniform(*_box(c, radius, bounds), (samples, 2))
                                  for c in centers)])
    values = coarse(draws)
    kept = _best_apart(draws, -values, keep, 2 * fine_radius)
    out = []
    for p in kept:
        fine = np.vstack([p, rng.uniform(*_box(p, fine_radius, bounds), (fine_samples, 2))])
        fine_values = cost(fine)
        i = int(np.argmin(fine_values))
        out.append((float(fine_values[i]), fine[i]))
    return sorted(out, key=lambda t: t[0])


def _searcher(rng: np.random.Generator, *, num_samples: int, search_radius_m: float,
              num_fine_samples: int, fine_radius_m: float, num_kept: int,
              bounds: Area | None = None) -> Search:
    """:func:`_coarse_to_fine` with the draws' sizes bound (the multi-start's options)."""

    def search(coarse: Callable[[FloatArray], FloatArray],
               cost: Callable[[FloatArray], FloatArray], centers: FloatArray
               ) -> list[tuple[float, FloatArray]]:
        return _coarse_to_fine(coarse, cost, centers, rng, radius=search_radius_m,
                               samples=num_samples, keep=num_kept, fine_radius=fine_radius_m,
                               fine_samples=num_fine_samples, bounds=bounds)

    return search


def _best_apart(points: FloatArray, scores: FloatArray, count: int, spacing: float
                ) -> FloatArray:
    """Up to ``count`` highest-scoring ``points [n, 2]``, pairwise at least ``spacing``
    apart (greedy non-maximum suppression)."""
    chosen: list[FloatArray] = []
    for i in np.argsort(scores)[::-1]:
        if all(np.linalg.norm(points[i] - c) >= spacing for c in chosen):
            chosen.append(points[i])
            if len(chosen) == count:
                break
    return np.asarray(chosen)


def draw_starts(
    problem: LceProblem, rng: np.random.Generator, *, num_candidates: int = 6,
    num_hypotheses: int = 4, num_samples: int = 30_000, search_radius_m: float = 45.0,
    num_fine_samples: int = 100, fine_radius_m: float = 2.0, num_kept: int = 6,
    angle_grid: int = 64, delay_grid: int = 64, refine_passes: int = 1,
) -> FloatArray:
    """Starting points of the first slot: random samples of ``α`` scored by the cost (24).

    Procedure (the module docstring says why):

    1. Per BS, ``L + 1`` paths ``(τ mod period, sin θ_B, sin θ_U)`` by a greedy
       single-path fit of (24) (grid, then Nelder-Mead, ``refine_passes`` cyclic
       re-refinements).
    2. LOS hypotheses: which path of each BS is the LOS, and the front/back and endfire
       alias options of each ULA angle; the BS-side LOS rays are triangulated (weights
       ``cos² θ_B``), ``ϑ`` fitted to the UE-side sines; the ``num_hypotheses`` with the
       smallest squared sine misfit (at distinct positions) are kept.
    3. Around each hypothesis' position, UE positions drawn at random, coarse to fine:
       ``num_samples`` uniform in a square of half-side ``search_radius_m`` (it spans the
       delay period's range alias) cut to ``problem.area`` (the UE's prior), scored by
       a look-up in the periodogram tables of the data with the other extracted paths
       projected out; then ``num_fine_samples`` in
       squares of half-side ``fine_radius_m`` around the ``num_kept`` best, scored by
       (24) itself with the LOS at the sample and the other extracted paths free. ``ϑ``
       follows from the hypothesis' LOS AOAs (weighted circular mean). Candidates: the
       best position of every hypothesis (in hypothesis order), then the second best of
       every hypothesis, ..., ``num_candidates`` in all. (Costs are not compared across
       hypotheses here: a wrong LOS assignment leaves the true LOS paths to the free,
       geometry-less paths and can score better than the right one.)
    4. Per candidate and BS, each scatterer drawn the same way around the intersections
       of its path's BS and UE rays (front/back and alias options meeting in front of
       both ends inside ``area``), scored by that BS's block of (24) with its other
       paths fitted; greedy over ``l``.

    Parameters
    ----------
    problem : the first slot's data.
    rng : source of the draws.
    num_candidates : starting points returned.
    num_hypotheses : LOS hypotheses searched.
    num_samples, search_radius_m : coarse draws (look-ups) per hypothesis / ray
        intersection, and the half-side [m] of their square.
    num_fine_samples, fine_radius_m, num_kept : fine draws [m] around the best coarse ones.
    angle_grid, delay_grid : grid of the path search (``sin θ`` over ``[-1, 1)``, delay
        over one period).
    refine_passes : cyclic re-refinements of the extracted paths.

    Returns
    -------
    ``[candidate, 2JL + 3]`` [m, rad, m].

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D (multi-start), (24), (30).
    """
    J, L = problem.num_bs, problem.num_nlos
    z = problem.z.reshape(J, -1)
    search = _searcher(rng, num_samples=num_samples, search_radius_m=search_radius_m,
                       num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m,
                       num_kept=num_kept)
    # The UE is inside the area (its prior): its draws are confined to it. A square of
    # 2 x 45 m around a hypothesis in a 13 x 8 m office left ~1 % of the draws inside,
    # and the best candidates outside, where every fix is refused.
    search_ue = _searcher(rng, num_samples=num_samples, search_radius_m=search_radius_m,
                          num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m,
                          num_kept=num_kept, bounds=problem.area)

    def table(bs: int, basis: ComplexArray | None) -> tuple[float, _Periodogram]:
        """``‖P⊥ z_j‖²`` and the periodogram of ``P⊥ z_j`` (``P⊥`` off ``basis``)."""
        rest = _off(basis, z[bs])
        return (float(np.sum(np.abs(rest) ** 2)),
                _periodogram(problem, bs, rest, angle_grid=angle_grid, delay_grid=delay_grid))

    paths = [_extract_paths(problem, j, L + 1, angle_grid=angle_grid, delay_grid=delay_grid,
                            refine_passes=refine_passes) for j in range(J)]
    ranked: list[tuple[int, int, FloatArray, _Hypothesis]] = []  # (rank, hypothesis, ...)
    for order, hyp in enumerate(_los_hypotheses(problem, paths, num_hypotheses)):
        bases = []
        for j in range(J):
            others = np.delete(paths[j], hyp.los[j], axis=0)
            bases.append(_columns(problem, j, *others.T).T if len(others) else None)
        tables = [table(j, bases[j]) for j in range(J)]

        def los_coarse(xs: FloatArray, hyp: _Hypothesis = hyp,
                       tables: list[tuple[float, _Periodogram]] = tables) -> FloatArray:
            thetas = _orientation_from(problem, xs, hyp.aoa)
            total = np.zeros(len(xs))
            for j, (energy, t) in enumerate(tables):
                total += energy - t.lookup(*_los_view(problem, j, xs, thetas))
            return total

        def los_cost(xs: FloatArray, hyp: _Hypothesis = hyp,
                     bases: list[ComplexArray | None] = bases,
                     tables: list[tuple[float, _Periodogram]] = tables) -> FloatArray:
            thetas = _orientation_from(problem, xs, hyp.aoa)
            return np.asarray(sum(
                tables[j][0]
                - _gain_of_fit(bases[j], z[j], _los_columns(problem, j, xs, thetas))
                for j in range(J)))

        found = search_ue(los_coarse, los_cost, hyp.position[None])
        ranked.extend((rank, order, x, hyp) for rank, (_, x) in enumerate(found))
    starts = []
    for _, _, x, hyp in sorted(ranked, key=lambda e: (e[0], e[1]))[:num_candidates]:
        theta = float(_orientation_from(problem, x[None], hyp.aoa)[0])
        scatterers = np.stack([
            _place_scatterers(problem, j, np.delete(paths[j], hyp.los[j], axis=0), x, theta,
                              search, angle_grid=angle_grid, delay_grid=delay_grid)
            for j in range(J)])
        starts.append(np.concatenate([x, [theta], scatterers.reshape(-1)]))
    return np.asarray(starts)


def _place_scatterers(problem: LceProblem, bs: int, nlos: FloatArray, x: FloatArray,
                      theta: float, search: Search, *, angle_grid: int, delay_grid: int
                      ) -> FloatArray:
    """``[nlos, 2]`` [m]: BS ``bs``'s scatterers for the extracted NLOS paths ``nlos
    [path, (τ, sin θ_B, sin θ_U)]`` with the UE at ``x``, ``ϑ = theta`` (step 4 of
    :func:`draw_starts`): each drawn around the intersections of its path's BS and UE rays,
    scored by the BS's block of (24) with the LOS, the scatterers placed so far and the
    later paths fitted; greedy over the paths."""
    z = problem.z[bs].reshape(-1)
    fixed = [_los_columns(problem, bs, x[None], np.array([theta]))[0],
             *_ground_columns(problem, bs, x, theta)]
    out = np.empty((len(nlos), 2))
    for ell in range(len(nlos)):
        later = nlos[ell + 1:]
        basis = np.stack(fixed + ([*_columns(problem, bs, *later.T)] if len(later) else []),
                         axis=-1)
        periodogram = _periodogram(problem, bs, _off(basis, z), angle_grid=angle_grid,
                                   delay_grid=delay_grid)

        def coarse(vs: FloatArray, t: _Periodogram = periodogram) -> FloatArray:
            return -t.lookup(*_nlos_view(problem, bs, vs, x, theta))

        def cost(vs: FloatArray, basis: ComplexArray = basis) -> FloatArray:
            return -_gain_of_fit(basis, z, _nlos_columns(problem, bs, vs, x, theta))

        v = search(coarse, cost, _scatterer_guesses(problem, bs, nlos[ell], x, theta))[0][1]
        out[ell] = v
        fixed.append(_nlos_columns(problem, bs, v[None], x, theta)[0])
    return out


def redraw_scatterers(
    problem: LceProblem, alpha: npt.ArrayLike, rng: np.random.Generator, *,
    num_samples: int = 30_000, search_radius_m: float = 45.0, num_fine_samples: int = 100,
    fine_radius_m: float = 2.0, num_kept: int = 6, angle_grid: int = 64,
    delay_grid: int = 64, refine_passes: int = 1,
) -> FloatArray:
    """``α`` with every scatterer drawn afresh from the data, the UE kept at ``α``'s.

    Per BS, the LOS column at ``α``'s UE position and orientation is fitted, ``L`` paths
    are extracted from what it leaves (:func:`_extract_paths`) and each scatterer is
    drawn around its path's ray intersections as in step 4 of :func:`draw_starts`. Along
    a drive a reflection point slides along its wall with the UE and the previous
    window's scatterer estimate can end in another basin of (24); this re-acquires it
    from the present window's data (:func:`track`).

    Parameters
    ----------
    problem : the slot's data.
    alpha : ``[2JL + 3]`` [m, rad, m], e.g. the previous window's fused ``ᾱ``.
    rng : source of the draws.
    num_samples, search_radius_m, num_fine_samples, fine_radius_m, num_kept, angle_grid,
    delay_grid, refine_passes : as :func:`draw_starts`.

    Returns
    -------
    ``[2JL + 3]`` [m, rad, m].

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D (the multi-start's draws), (24), (30).
    """
    out = _wrapped(np.array(alpha, dtype=np.float64))
    x, theta = out[:2], float(out[ORIENTATION])
    J, L = problem.num_bs, problem.num_nlos
    search = _searcher(rng, num_samples=num_samples, search_radius_m=search_radius_m,
                       num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m,
                       num_kept=num_kept)
    scatterers = np.empty((J, L, 2))
    for j in range(J):
        los = np.stack([_los_columns(problem, j, x[None], np.array([theta]))[0],
                        *_ground_columns(problem, j, x, theta)], axis=-1)  # [obs, 1 or 2]
        nlos = _extract_paths(problem, j, L, angle_grid=angle_grid, delay_grid=delay_grid,
                              refine_passes=refine_passes, known=los)
        scatterers[j] = _place_scatterers(problem, j, nlos, x, theta, search,
                                          angle_grid=angle_grid, delay_grid=delay_grid)
    out[3:] = scatterers.reshape(-1)
    return out


def likelihood_margin(problem: LceProblem, cost: float) -> float:
    """[W] How far above the lowest cost ``cost`` (24) a fit of ``α`` stays inside the UE
    position's likelihood region at :data:`estimators.fisher.REGION_PROBABILITY`.

    The noise is circular Gaussian of variance ``σ²`` a sample, so ``-2 log`` of the
    likelihood ratio of two fits is ``2 ΔF / σ²``; the position's (profile) region is
    ``2 ΔF / σ² ≤ χ²_p(2)``. The model's misfit (walls beyond ``L``, diffuse power)
    scales the residual: ``σ²`` is taken times the a-posteriori variance factor
    ``s = max(1, F / (σ² (N - J P - A/2)))`` of the best fit (quasi-likelihood), the same
    factor the reported covariance carries.
    """
    sigma2 = float(problem.noise_variance)
    paths = problem.num_nlos + 1 + int(problem.ground_offset is not None)
    dof = residual_dof(problem.z.size, problem.num_bs * paths, problem.num_alpha)
    factor = max(1.0, cost / (sigma2 * dof)) if np.isfinite(cost) else 1.0
    return 0.5 * factor * sigma2 * float(chi2.ppf(REGION_PROBABILITY, 2))


def _inside(problem: LceProblem, result: LceResult, *, scatterers: bool) -> bool:
    ok = in_area(problem.area, result.ue_position)
    if scatterers:
        ok = ok and all(in_area(problem.scatterer_region, v)
                        for v in result.scatterers.reshape(-1, 2))
    return bool(ok)


def prefer(problem: LceProblem, a: LceResult, b: LceResult) -> bool:
    """Whether competing LCE result ``a`` of one slot is at least as good as ``b``.

    1. A UE inside ``problem.area`` (its prior; a fix outside is refused) beats one
       outside.
    2. A cost (24) lower by more than :func:`likelihood_margin` wins (the paper's rule,
       §IV-D): the data tell the two apart.
    3. Costs within it are alike to the data: the one with every scatterer inside its
       region wins (SLLS, unconstrained, drifts along the ULAs' front/back symmetry with
       the range alias, which fits points far away as well), then the lower cost.

    A first version ranked the scatterers' region before the cost: on the street drive's
    snapshot 17 (issue 22) the multi-start's fix, 0.06 m off at ``F/σ²`` 6994, lost to
    the tracker's, 16 m off at ``F/σ²`` 55 283, for one scatterer 0.19 m beyond the
    region's 30 m margin, and was reported converged.
    """
    a_in, b_in = _inside(problem, a, scatterers=False), _inside(problem, b, scatterers=False)
    if a_in != b_in:
        return a_in
    fa = a.cost if np.isfinite(a.cost) else np.inf
    fb = b.cost if np.isfinite(b.cost) else np.inf
    if abs(fa - fb) > likelihood_margin(problem, min(fa, fb)):
        return bool(fa < fb)
    a_in, b_in = _inside(problem, a, scatterers=True), _inside(problem, b, scatterers=True)
    if a_in != b_in:
        return a_in
    return bool(fa <= fb)


def position_spread(problem: LceProblem, chosen: LceResult,
                    others: Sequence[LceResult]) -> FloatArray:
    """``[2, 2]`` [m²] a covariance term whose 99 % ellipse about ``chosen``'s UE reaches
    the UE of every fit in ``others`` that the data cannot tell from it.

    Such a fit has its UE inside ``problem.area`` and a cost (24) within
    :func:`likelihood_margin` of the lowest: a point of the position's likelihood region
    (another LOS hypothesis, a yaw flip, a valley of the scatterers), of which the FIM at
    the fix knows nothing. Each offset ``d_i`` from the fix adds ``d_i d_iᵀ / χ²_p(2)``
    (``p`` = :data:`estimators.fisher.REGION_PROBABILITY`), so that any covariance
    ``C ⪰`` the sum has ``d_iᵀ C⁻¹ d_i ≤ χ²_p(2)`` for each (conservative where several
    fits share one basin). Each fit's cost is that of its own iterate, so a fit stopped
    early (the multi-start's screening) is in the region or not as it stands. Zero where
    there are none.
    """
    costs = [r.cost for r in (chosen, *others) if np.isfinite(r.cost)]
    out = np.zeros((2, 2))
    if not costs:
        return out
    low = min(costs)
    limit = low + likelihood_margin(problem, low)
    for r in others:
        d = r.ue_position - chosen.ue_position
        if np.isfinite(r.cost) and r.cost <= limit and np.all(np.isfinite(d)) \
                and _inside(problem, r, scatterers=False):
            out += np.outer(d, d)
    return np.asarray(out / chi2.ppf(REGION_PROBABILITY, 2))


@dataclass(frozen=True)
class Tracked:
    """One slot's LCE from a previous estimate with re-drawn scatterers (:func:`track`).

    Attributes
    ----------
    result : the chosen :class:`LceResult`.
    kept : ``result`` is the one from the previous estimate (else from the re-drawn
        scatterers).
    candidates : ``[2, 2JL + 3]``, the two starts (previous, re-drawn at the first's
        solution).
    results : both :class:`LceResult` (previous, re-drawn).
    """

    result: LceResult
    kept: bool
    candidates: FloatArray
    results: tuple[LceResult, LceResult]


def track(
    problem: LceProblem, previous: npt.ArrayLike, rng: np.random.Generator, *,
    solve: Callable[..., LceResult] | None = None,
    solver_options: Mapping[str, Any] | None = None,
    redraw_options: Mapping[str, Any] | None = None,
) -> Tracked:
    """LCE of a slot whose geometry may have moved since ``previous`` (a new window).

    Two starts: ``previous`` itself, and its solution with the scatterers re-drawn from
    the data at the UE it found (:func:`redraw_scatterers`; the UE may have moved metres
    since ``previous``, and scatterers drawn for the old position would be wrong). Both
    are solved; the better by :func:`prefer` is kept (the UE inside the area, then the
    lower cost (24) beyond the noise's spread, then the scatterers inside their region).

    Parameters
    ----------
    problem : the slot's data.
    previous : ``[2JL + 3]`` [m, rad, m].
    rng : source of the re-draw.
    solve : the LCE method (default :func:`slls`).
    solver_options : its keyword arguments.
    redraw_options : keyword arguments of :func:`redraw_scatterers`.

    Returns
    -------
    :class:`Tracked`.

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D, Algorithm 2.
    """
    method = solve or slls
    options = dict(solver_options or {})
    moved = method(problem, previous, **options)
    starts = np.stack([_wrapped(np.asarray(previous, dtype=np.float64)),
                       redraw_scatterers(problem, moved.alpha, rng,
                                         **dict(redraw_options or {}))])
    results = (moved, method(problem, starts[1], **options))

    kept = prefer(problem, results[0], results[1])
    return Tracked(result=results[0] if kept else results[1], kept=kept, candidates=starts,
                   results=results)


@dataclass(frozen=True)
class MultiStart:
    """The multi-start LCE of the first slot (:func:`multistart`).

    Attributes
    ----------
    candidates : ``[candidate, 2JL + 3]`` [m, rad, m], the starting points drawn.
    screening : one :class:`LceResult` per candidate, SLLS stopped after
        ``screen_iterations``.
    best : index of the candidate with the lowest screened cost ``F``.
    result : SLLS from ``candidates[best]`` run to convergence.
    runtime_s : [s] wall time, draws and SLLS runs.
    """

    candidates: FloatArray
    screening: tuple[LceResult, ...]
    best: int
    result: LceResult
    runtime_s: float


def multistart(
    problem: LceProblem, rng: np.random.Generator, *, num_candidates: int = 6,
    num_hypotheses: int = 4, num_samples: int = 30_000, search_radius_m: float = 45.0,
    num_fine_samples: int = 100, fine_radius_m: float = 2.0, num_kept: int = 6,
    angle_grid: int = 64, delay_grid: int = 64, refine_passes: int = 1,
    screen_iterations: int = 6, max_iterations: int = 50, step_tolerance: float = 1e-7,
) -> MultiStart:
    """First-slot LCE (§IV-D): :func:`draw_starts`, SLLS from each start, the lowest
    cost (24) wins.

    Every candidate gets ``screen_iterations`` SLLS iterations; the one with the lowest
    cost is then run to convergence (starts from wrong LOS hypotheses end far above it,
    so the screening only saves their iterations).

    Parameters
    ----------
    problem, rng, num_candidates, num_hypotheses, num_samples, search_radius_m,
    num_fine_samples, fine_radius_m, num_kept, angle_grid, delay_grid, refine_passes :
        as :func:`draw_starts`.
    screen_iterations : SLLS iterations of every candidate before choosing.
    max_iterations, step_tolerance : of the final :func:`slls`.

    Returns
    -------
    :class:`MultiStart`.

    Raises
    ------
    ValueError
        if no LOS hypothesis puts the UE inside ``problem.area`` (no starting point; 4 of
        500 random placements in ``scripts.slab.figures --parts random``).

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D, Algorithm 2.
    """
    start = time.perf_counter()
    candidates = draw_starts(
        problem, rng, num_candidates=num_candidates, num_hypotheses=num_hypotheses,
        num_samples=num_samples, search_radius_m=search_radius_m,
        num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m, num_kept=num_kept,
        angle_grid=angle_grid, delay_grid=delay_grid, refine_passes=refine_passes)
    if len(candidates) == 0:
        raise ValueError("multistart: no LOS hypothesis puts the UE inside the area, so "
                         "there is no starting point")
    screening = tuple(slls(problem, c, max_iterations=screen_iterations,
                           step_tolerance=step_tolerance) for c in candidates)
    best = int(np.argmin([r.cost for r in screening]))
    result = slls(problem, candidates[best], max_iterations=max_iterations,
                  step_tolerance=step_tolerance)
    return MultiStart(candidates=candidates, screening=screening, best=best, result=result,
                      runtime_s=time.perf_counter() - start)
