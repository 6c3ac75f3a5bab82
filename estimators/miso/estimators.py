"""Single-snapshot MISO localization and mapping (Fascista et al.).

A BS with an antenna array sends ``M`` beams (precoders ``F``) of OFDM pilots ``s``; a
single-antenna UE receives, per beam ``m`` and subcarrier ``k`` (paper eqs. 1-4),

    y[m, k] = Σ_p α_p exp(-j 2π f_k τ_p) a(θ_p)^T F[:, m] s[m, k] + n[m, k],

with ``a(θ)`` the BS steering vector (:func:`estimators.arrays.steering_vector`), ``τ_p``
the time of flight and ``θ_p`` the angle of departure of path ``p`` (path 0 the LOS).
The UE position follows from the LOS (``p = b + c τ_0 u(θ_0)``) and each NLOS path's
scatterer from eq. 33: ``s = b + d u(θ_p)``, ``d = (c²τ_p² - |p-b|²) / (2 (c τ_p - (p-b)·u(θ_p)))``.

Estimators (registered):

* ``miso-sp-grid`` — single-path (SP) ML pseudospectrum (eq. 31) on a coarse
  (range, angle) grid; paths extracted one by one, each refined locally and cancelled
  (joint least-squares refit of the gains) before the next is searched (SAGE-style);
  the reported parameters are the grid points;
* ``miso-sp-refine`` — each grid estimate refined by Nelder-Mead on its SP cost on the
  received signal (the paper's "SP ML with refinement");
* ``miso-ml`` — the joint ML (eqs. 29-30, gains concentrated out) by Nelder-Mead over
  all paths' (range, angle), initialised by the SAGE-style grid estimates.

``dimensions=2`` is the paper's planar model (azimuth only, zenith π/2, positions in the
BS's horizontal plane, UE height ``ue_height`` if given); ``dimensions=3`` estimates
azimuth *and* zenith (a planar BS array is needed) and 3D positions.

References
----------
A. Fascista, A. Coluccia, H. Wymeersch, G. Seco-Granados, "Downlink single-snapshot
localization and mapping with a single-antenna receiver", IEEE Trans. Wireless Commun.,
2021: system model eqs. (1)-(5), FIM (7)-(9), position FIM (10)-(17), ML (23)-(30),
single-path model (31), mapping (33).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from estimators.arrays import SPEED_OF_LIGHT, steering_vector, unit_direction
from estimators.base import (
    Bound,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    estimate_bytes,
    grown_most,
    register,
)
from estimators.fisher import crlb as invert_fim
from estimators.fisher import error_bound, gaussian_fim
from estimators.types import ChannelTruth, Observation
from estimators.typing import ComplexArray, FloatArray

# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class MisoSnapshot:
    """One snapshot of a MISO observation, everything the model needs.

    ``y [M, K]``, ``precoders [N, M]``, ``pilots [M, K]``, ``frequencies [K]`` [Hz],
    ``element_positions [N, 3]`` [m] (world-rotated), ``bs_position [3]`` [m].
    """

    y: ComplexArray
    precoders: ComplexArray
    pilots: ComplexArray
    frequencies: FloatArray
    element_positions: FloatArray
    bs_position: FloatArray
    wavelength: float
    noise_variance: float

    @classmethod
    def from_observation(cls, obs: Observation, t: int, bs: int) -> MisoSnapshot:
        return cls(
            y=obs.y[t, bs, 0], precoders=obs.precoders[t, bs], pilots=obs.pilots,
            frequencies=obs.frequencies,
            element_positions=obs.bs_array.world_positions(obs.bs_orientation[bs]),
            bs_position=obs.bs_position[bs], wavelength=obs.wavelength,
            noise_variance=float(obs.noise_variance[t, bs]),
        )

    def beam_response(self, azimuth: npt.ArrayLike, zenith: npt.ArrayLike) -> ComplexArray:
        """``a(θ)^T F``: ``[..., M]`` for directions ``[...]``."""
        a = steering_vector(self.element_positions, azimuth, zenith, self.wavelength)
        return a @ self.precoders

    def atoms(self, tau: FloatArray, azimuth: FloatArray, zenith: FloatArray) -> ComplexArray:
        """Unit-gain path responses ``g_p[m, k]``: ``[path, M, K]`` (eq. 31)."""
        delay = np.exp(-2j * np.pi * np.asarray(tau)[:, None] * self.frequencies)  # [P, K]
        b = self.beam_response(azimuth, zenith)  # [P, M]
        return b[:, :, None] * delay[:, None, :] * self.pilots[None]

    def fit_gains(self, atoms: ComplexArray, y: ComplexArray | None = None) -> ComplexArray:
        """Least-squares path gains ``α̂ = G^+ y`` (eq. 29)."""
        G = atoms.reshape(atoms.shape[0], -1)
        target = (self.y if y is None else y).ravel()
        gains, *_ = np.linalg.lstsq(G.T, target, rcond=None)
        return np.asarray(gains, dtype=np.complex128)

    def joint_cost(
        self, tau: FloatArray, azimuth: FloatArray, zenith: FloatArray,
        y: ComplexArray | None = None,
    ) -> float:
        """Compressed negative log-likelihood ``||y - G α̂||²`` (eqs. 28-29).

        With one path it is the single-path cost ``L_SP`` (eq. 31); ``y`` defaults to
        the received signal (a residual can be passed instead).
        """
        G = self.atoms(tau, azimuth, zenith).reshape(len(tau), -1)
        yv = (self.y if y is None else y).ravel()
        gram = G.conj() @ G.T
        proj = G.conj() @ yv
        try:
            gains = np.linalg.solve(gram, proj)
        except np.linalg.LinAlgError:
            return float(np.vdot(yv, yv).real)
        return float(np.vdot(yv, yv).real - np.vdot(proj, gains).real)


@dataclass(frozen=True)
class _Grid:
    ranges: FloatArray      # [R] [m]
    azimuths: FloatArray    # [D]
    zeniths: FloatArray     # [D]


def _arange_length(start: float, stop: float, step: float) -> int:
    """``len(np.arange(start, stop, step))`` without building it (numpy's own rule)."""
    return max(int(np.ceil((stop - start) / step)), 0)


def grid_size(range_step: float, angle_step: float, max_range: float,
              dimensions: int) -> tuple[int, int]:
    """Ranges ``R`` and directions ``D`` of :func:`_search_grid`, without building it."""
    ranges = _arange_length(range_step, max_range + 1e-9, range_step)
    directions = _arange_length(-np.pi / 2 + angle_step / 2, np.pi / 2, angle_step)
    if dimensions == 3:
        directions *= _arange_length(angle_step / 2, np.pi, angle_step)
    return ranges, directions


def _search_grid(snap: MisoSnapshot, bs_yaw: float, range_step: float, angle_step: float,
                 max_range: float, dimensions: int) -> _Grid:
    ranges = np.arange(range_step, max_range + 1e-9, range_step)
    az = bs_yaw + np.arange(-np.pi / 2 + angle_step / 2, np.pi / 2, angle_step)
    if dimensions == 2:
        return _Grid(ranges, az, np.full_like(az, np.pi / 2))
    zen = np.arange(angle_step / 2, np.pi, angle_step)
    aa, zz = np.meshgrid(az, zen, indexing="ij")
    return _Grid(ranges, aa.ravel(), zz.ravel())


def pseudospectrum_bytes(num_ranges: int, num_directions: int, num_beams: int,
                         num_subcarriers: int, num_antennas: int) -> dict[str, float]:
    """Peak bytes of :func:`sp_pseudospectrum` on an ``R x D`` grid, by axis.

    ``"range"``: the delay phasors ``[K, R]`` and their products with the residual ``[M,
    R]``, complex; ``"direction"``: the steering vectors ``[D, N]`` with their exponent,
    or the beam responses ``[D, M]`` with their conjugate (complex, one pair at a time);
    ``"grid"``: the scores ``[D, R]``, complex, then their magnitudes alongside.
    """
    R, D = num_ranges, num_directions
    return {"range": R * (16.0 * (num_subcarriers + num_beams) + 8),
            "direction": D * (32.0 * max(num_antennas, num_beams) + 48),
            "grid": 24.0 * D * R}


def sp_pseudospectrum(snap: MisoSnapshot, grid: _Grid, residual: ComplexArray) -> FloatArray:
    """Single-path ML score ``|g^H r|² / |g|²`` on the grid: ``[direction, range]``.

    Its maximum is the minimum of the SP cost ``L_SP = |r|² - |g^H r|²/|g|²`` (eq. 31),
    evaluated for all grid points with two matrix products.
    """
    tau = grid.ranges / SPEED_OF_LIGHT
    E = np.exp(2j * np.pi * np.outer(snap.frequencies, tau))  # [K, R]
    Z = (snap.pilots.conj() * residual) @ E  # [M, R]
    B = snap.beam_response(grid.azimuths, grid.zeniths)  # [D, M]
    energy = np.abs(B) ** 2 @ np.sum(np.abs(snap.pilots) ** 2, axis=1)  # [D]
    return np.abs(B.conj() @ Z) ** 2 / np.maximum(energy, 1e-300)[:, None]


# ------------------------------------------------------------------- the estimators


class _MisoBase(Estimator):
    """Shared pipeline; subclasses pick how far to go (grid, SP refine, joint ML)."""

    stage: ClassVar[Literal["grid", "sp-refine", "joint"]] = "joint"
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "dft",
                                          "pilots": "random"}

    def __init__(
        self,
        *,
        num_paths: int = 2,
        dimensions: int = 2,
        range_step_m: float = 2.0,
        angle_step_rad: float = float(np.deg2rad(4.0)),
        max_range_m: float | None = None,
        sage_passes: int = 2,
        max_iterations: int = 4000,
        ue_height: float | None = None,
        bs: int = 0,
    ) -> None:
        self.num_paths = num_paths
        self.dimensions = dimensions
        self.range_step_m = range_step_m
        self.angle_step_rad = angle_step_rad
        self.max_range_m = max_range_m
        self.sage_passes = sage_passes
        self.max_iterations = max_iterations
        self.ue_height = ue_height
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
        if self.dimensions not in (2, 3):
            raise EstimatorInputError(f"{self.name}: dimensions must be 2 or 3")
        if obs.link != "downlink" or obs.y.shape[2] != 1 or obs.ue_array.num_ant != 1:
            raise EstimatorInputError(
                f"{self.name}: needs a downlink observation at a single-antenna UE "
                f"(got link={obs.link}, UE antennas={obs.ue_array.num_ant})"
            )
        samples = 2 * int(np.prod(obs.y.shape[2:]))
        unknowns = 2 + self.dimensions  # complex gain, range, azimuth[, zenith]
        if self.num_paths > samples // unknowns:
            raise EstimatorInputError(
                f"{self.name}: num_paths={self.num_paths} exceeds {samples // unknowns}, "
                f"the {samples} real samples of a snapshot over {unknowns} unknowns a path")
        if not self.range_step_m > 0 or not (self.max_range_m is None or self.max_range_m > 0):
            raise EstimatorInputError(
                f"{self.name}: range_step_m and max_range_m must be > 0 (got "
                f"{self.range_step_m}, {self.max_range_m})")
        if not 0 < self.angle_step_rad <= np.pi:
            raise EstimatorInputError(
                f"{self.name}: angle_step_rad must be in (0, π], got {self.angle_step_rad}")
        if self.sage_passes < 0 or self.max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: sage_passes={self.sage_passes} must be >= 0, "
                f"max_iterations={self.max_iterations} >= 1")
        if not 0 <= self.bs < obs.num_bs:
            raise EstimatorInputError(f"{self.name}: bs={self.bs} but {obs.num_bs} BS(s)")
        if self.dimensions == 3 and obs.bs_array.rows < 2:
            raise EstimatorInputError(
                f"{self.name}: dimensions=3 needs a planar BS array (rows >= 2) to see zenith"
            )

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """Bytes of the search grid's pseudospectrum (:func:`pseudospectrum_bytes`) and
        of the paths' atoms, keyed by the hyper-parameter that sizes each.

        The ``R`` ranges go under ``range_step_m`` or ``max_range_m``, the ``D``
        directions under ``angle_step_rad`` or ``dimensions``, the ``[D, R]`` scores
        under whichever of the four grew the grid most from its default
        (:func:`~estimators.base.grown_most`). ``num_paths``: the ``[path, M, K]`` atoms
        (their least-squares copy and conjugate alongside), the joint ML's Nelder-Mead
        simplex over ``num_paths * dimensions`` unknowns, and the results.
        """
        T, _, _, M, K = obs.y.shape
        N = obs.bs_array.num_ant
        defaults = self.default_params()
        step, angle, dims = self.range_step_m, self.angle_step_rad, self.dimensions
        unambiguous = self._unambiguous_range(obs)
        reach = self.max_range_m or unambiguous
        R, D = grid_size(step, angle, reach, dims)
        growth = {
            "range_step_m": R / max(grid_size(defaults["range_step_m"], angle, reach, dims)[0], 1),
            "max_range_m": R / max(grid_size(step, angle, unambiguous, dims)[0], 1),
            "angle_step_rad": D / max(grid_size(step, defaults["angle_step_rad"], reach,
                                                dims)[1], 1),
            "dimensions": D / max(grid_size(step, angle, reach, 2)[1], 1),
        }
        spectrum = pseudospectrum_bytes(R, D, M, K, N)
        terms: dict[str, float] = {}
        for key, value in (
            (grown_most({k: growth[k] for k in ("range_step_m", "max_range_m")}),
             spectrum["range"]),
            (grown_most({k: growth[k] for k in ("angle_step_rad", "dimensions")}),
             spectrum["direction"]),
            (grown_most(growth), spectrum["grid"]),
        ):
            terms[key] = terms.get(key, 0.0) + value
        P = self.num_paths
        unknowns = P * dims
        simplex = 16.0 * (unknowns + 1) * unknowns if self.stage == "joint" else 0.0
        terms["num_paths"] = 48.0 * P * M * K + simplex + estimate_bytes(T, P, P - 1)
        return terms

    @staticmethod
    def _unambiguous_range(obs: Observation) -> float:
        """``c / Δf`` [m], the grid's default reach."""
        spacing = float(np.mean(np.diff(obs.frequencies))) if obs.frequencies.size > 1 else 1.0
        return SPEED_OF_LIGHT / spacing

    # -- pipeline ------------------------------------------------------------------

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        snap = MisoSnapshot.from_observation(obs, t, self.bs)
        max_range = self.max_range_m or self._unambiguous_range(obs)
        yaw = float(obs.bs_orientation[self.bs, 0])
        grid = _search_grid(snap, yaw, self.range_step_m, self.angle_step_rad, max_range,
                            self.dimensions)
        refined, on_grid = self._extract(snap, grid)  # [L, 3] (range, azimuth, zenith)
        if self.stage == "grid":
            params = on_grid
        elif self.stage == "sp-refine":
            params = np.stack([self._refine_single(snap, p, snap.y) for p in on_grid])
        else:
            params = self._refine_joint(snap, refined)
        cost = snap.joint_cost(params[:, 0] / SPEED_OF_LIGHT, params[:, 1], params[:, 2])
        return self._localize(snap, params, cost)

    def _extract(self, snap: MisoSnapshot, grid: _Grid) -> tuple[FloatArray, FloatArray]:
        """SAGE-style successive extraction on the SP pseudospectrum.

        Each path is found at the grid maximum of the residual's pseudospectrum, refined
        locally (SP cost against the residual), and cancelled with a joint least-squares
        refit of all gains before the next one is searched; ``sage_passes`` then
        re-estimate every path with all the others cancelled. Cancelling *refined*
        atoms matters: a strong path between grid points otherwise leaves a residual
        stronger than a weak LOS.

        Returns the refined ``[L, 3]`` and the grid ``[L, 3]`` (range, azimuth, zenith).
        """
        refined: list[FloatArray] = []
        on_grid: list[FloatArray] = []

        def residual_without(skip: int | None) -> ComplexArray:
            keep = [c for i, c in enumerate(refined) if i != skip]
            if not keep:
                return snap.y
            k = np.asarray(keep)
            atoms = snap.atoms(k[:, 0] / SPEED_OF_LIGHT, k[:, 1], k[:, 2])
            return snap.y - np.tensordot(snap.fit_gains(atoms), atoms, axes=1)

        def best(residual: ComplexArray) -> tuple[FloatArray, FloatArray]:
            score = sp_pseudospectrum(snap, grid, residual)
            d, r = np.unravel_index(int(np.argmax(score)), score.shape)
            point = np.array([grid.ranges[r], grid.azimuths[d], grid.zeniths[d]])
            return self._refine_single(snap, point, residual), point

        for _ in range(self.num_paths):
            fine, coarse = best(residual_without(None))
            refined.append(fine)
            on_grid.append(coarse)
        for _ in range(self.sage_passes if self.num_paths > 1 else 0):
            for i in range(self.num_paths):
                refined[i], on_grid[i] = best(residual_without(i))
        return np.asarray(refined), np.asarray(on_grid)

    def _free(self, params: FloatArray) -> FloatArray:
        cols = [0, 1] if self.dimensions == 2 else [0, 1, 2]
        return params[:, cols]

    def _full(self, free: FloatArray) -> FloatArray:
        if self.dimensions == 3:
            return free
        return np.column_stack([free, np.full(len(free), np.pi / 2)])

    def _simplex(self, x0: FloatArray) -> FloatArray:
        per_path = [self.range_step_m / 4, self.angle_step_rad / 4, self.angle_step_rad / 4]
        steps = np.tile(per_path[: self.dimensions], len(x0) // self.dimensions)
        return np.vstack([x0, x0 + np.diag(steps)])

    def _refine_single(
        self, snap: MisoSnapshot, params: FloatArray, y: ComplexArray
    ) -> FloatArray:
        """Nelder-Mead on the single-path cost (eq. 31) of one path against ``y``."""
        x0 = self._free(params[None])[0]

        def cost(x: FloatArray) -> float:
            p = self._full(x[None])[0]
            return snap.joint_cost(np.array([p[0] / SPEED_OF_LIGHT]), p[1:2], p[2:3], y)

        res = minimize(cost, x0, method="Nelder-Mead", options={
            "initial_simplex": self._simplex(x0), "xatol": 1e-6, "fatol": 1e-14,
            "maxiter": self.max_iterations, "maxfev": self.max_iterations})
        return self._full(np.asarray(res.x)[None])[0]

    def _refine_joint(self, snap: MisoSnapshot, params: FloatArray) -> FloatArray:
        """Nelder-Mead on the joint compressed ML cost over every path (eq. 30)."""
        x0 = self._free(params).ravel()
        scale = float(np.vdot(snap.y, snap.y).real)

        def cost(x: FloatArray) -> float:
            p = self._full(x.reshape(-1, self.dimensions))
            return snap.joint_cost(p[:, 0] / SPEED_OF_LIGHT, p[:, 1], p[:, 2]) / scale

        res = minimize(cost, x0, method="Nelder-Mead", options={
            "initial_simplex": self._simplex(x0), "xatol": 1e-7, "fatol": 1e-15,
            "maxiter": self.max_iterations, "maxfev": self.max_iterations,
            "adaptive": len(x0) > 4})
        return self._full(np.asarray(res.x).reshape(-1, self.dimensions))

    def _localize(self, snap: MisoSnapshot, params: FloatArray, cost: float) -> SnapshotEstimate:
        """LOS = shortest path (Sec. IV-C1); scatterers by eq. (33)."""
        order = np.argsort(params[:, 0])
        params = params[order]
        tau = params[:, 0] / SPEED_OF_LIGHT
        atoms = snap.atoms(tau, params[:, 1], params[:, 2])
        gains = snap.fit_gains(atoms)
        b = snap.bs_position
        ue = b + params[0, 0] * unit_direction(params[0, 1], params[0, 2])
        if self.dimensions == 2 and self.ue_height is not None:
            ue = ue.copy()
            ue[2] = self.ue_height
        scatterers, valid = map_scatterers(b, ue, params[1:, 0], params[1:, 1], params[1:, 2])
        return SnapshotEstimate(
            ue_position=ue, scatterers=scatterers, scatterer_valid=valid, path_tau=tau,
            path_aod=params[:, 1:3].copy(), path_gain=gains,
            diagnostics={"cost": cost, "residual_ratio": cost / float(
                np.vdot(snap.y, snap.y).real)},
        )

    # -- bound -----------------------------------------------------------------------

    def crlb(self, obs: Observation, truth: ChannelTruth) -> Bound:
        """PEB and scatterer bounds (eqs. 7-17) at the true channel of every snapshot.

        The first ``num_paths`` valid paths of ``truth`` are the model's paths (path 0
        must be the LOS). Channel parameters per path: ``(Re α, Im α, τ, azimuth[,
        zenith])``; position parameters: UE position, each single-bounce scatterer (or,
        for a path that is not single-bounce, its own ``τ`` and angles), the gains.
        """
        self.check(obs)
        T, Q = obs.num_snapshots, self.num_scatterers
        peb = np.full(T, np.nan)
        seb = np.full((T, Q), np.nan)
        n = self.num_paths * (3 + self.dimensions - 1)
        channel = np.full((T, n, n), np.nan)
        for t in range(T):
            paths = np.flatnonzero(truth.valid[t])[: self.num_paths]
            if len(paths) < self.num_paths or not truth.los[t] or paths[0] != 0:
                continue
            snap = MisoSnapshot.from_observation(obs, t, self.bs)
            fim = miso_channel_fim(snap, truth.gain[t, paths], truth.tau[t, paths],
                                   truth.aod[t, paths], self.dimensions)
            channel[t] = invert_fim(fim)
            transform, mapped = miso_position_transform(
                snap.bs_position, truth.ue_position[t], truth.scatterer[t, paths[1:]],
                self.dimensions)
            bound = invert_fim(transform.T @ fim @ transform)
            d = self.dimensions
            peb[t] = error_bound(bound, range(d))
            for q in range(Q):
                if mapped[q]:
                    seb[t, q] = error_bound(bound, range(d * (q + 1), d * (q + 2)))
        return Bound(position_error_bound=peb, scatterer_error_bound=seb, channel_crlb=channel)


def map_scatterers(
    bs: FloatArray, ue: FloatArray, ranges: FloatArray, azimuth: FloatArray, zenith: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Closed-form scatterer positions of single-bounce paths (eq. 33).

    The scatterer lies on the departure ray ``b + d u`` and the path length is
    ``d + |p - s| = c τ``, so ``d = (ρ² - |p-b|²) / (2 (ρ - (p-b)·u))`` with ``ρ = c τ``.

    Returns ``[Q, 3]`` positions [m] and ``[Q]`` validity (``d > 0``, ``ρ > |p-b|``).
    """
    u = unit_direction(azimuth, zenith).reshape(-1, 3)
    v = np.asarray(ue) - np.asarray(bs)
    rho = np.asarray(ranges, dtype=np.float64)
    denom = 2.0 * (rho - u @ v)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (rho**2 - v @ v) / denom
    valid = np.isfinite(d) & (d > 0) & (rho > np.linalg.norm(v)) & (denom > 0)
    pos = np.asarray(bs) + d[:, None] * u
    return np.where(valid[:, None], pos, np.nan), valid


def miso_jacobian(
    snap: MisoSnapshot, gain: ComplexArray, tau: FloatArray, aod: FloatArray, dimensions: int
) -> ComplexArray:
    """``∂μ/∂η`` of the noiseless observation (eq. 9), ``[M*K, paths*(3+dims-1)]``.

    Per path ``η_p = (Re α, Im α, τ, azimuth[, zenith])``.
    """
    az, zen = aod[:, 0], (aod[:, 1] if dimensions == 3 else np.full(len(tau), np.pi / 2))
    r = snap.element_positions
    k = 2 * np.pi / snap.wavelength
    a = steering_vector(r, az, zen, snap.wavelength)  # [P, N]
    du_daz = np.stack([-np.sin(zen) * np.sin(az), np.sin(zen) * np.cos(az),
                       np.zeros_like(az)], -1)
    du_dzen = np.stack([np.cos(zen) * np.cos(az), np.cos(zen) * np.sin(az), -np.sin(zen)], -1)
    delay = np.exp(-2j * np.pi * tau[:, None] * snap.frequencies)  # [P, K]
    columns = []
    for p in range(len(tau)):
        def shaped(b: ComplexArray, extra: Any = 1.0, p: int = p) -> ComplexArray:
            return (b[:, None] * (delay[p] * extra)[None, :] * snap.pilots).ravel()
        b = a[p] @ snap.precoders
        g = shaped(b)
        dphase = -2j * np.pi * snap.frequencies
        columns += [g, 1j * g, gain[p] * shaped(b, dphase)]
        db_daz = (a[p] * 1j * k * (r @ du_daz[p])) @ snap.precoders
        columns.append(gain[p] * shaped(db_daz))
        if dimensions == 3:
            db_dzen = (a[p] * 1j * k * (r @ du_dzen[p])) @ snap.precoders
            columns.append(gain[p] * shaped(db_dzen))
    return np.stack(columns, axis=-1)


def miso_channel_fim(
    snap: MisoSnapshot, gain: ComplexArray, tau: FloatArray, aod: FloatArray, dimensions: int
) -> FloatArray:
    """Channel-domain FIM (eqs. 7-9) at the given true paths."""
    return gaussian_fim(miso_jacobian(snap, gain, tau, aod, dimensions), snap.noise_variance)


def miso_position_transform(
    bs: FloatArray, ue: FloatArray, scatterers: FloatArray, dimensions: int
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """``T = ∂η/∂x`` from position to channel parameters (eqs. 10-16).

    ``x = (p, s_1, ..., s_{L-1}, gains)`` where ``p``/``s_q`` are ``dimensions``-D
    (horizontal plane for 2D); a path whose scatterer is NaN keeps its own ``(τ,
    angles)`` in ``x``. Returns ``T [n_η, n_x]`` and which paths were mapped ``[L-1]``.
    """
    d = dimensions
    c = SPEED_OF_LIGHT
    L = len(scatterers) + 1
    per = 3 + d - 1  # Re, Im, τ, angles
    mapped = np.all(np.isfinite(scatterers), axis=-1) if len(scatterers) else np.zeros(0, bool)
    b, p = np.asarray(bs)[:d], np.asarray(ue)[:d]
    # Each path contributes d position-domain coordinates: the scatterer, or (τ, angles).
    T = np.zeros((L * per, d * L + 2 * L))

    def angle_grad(v: FloatArray) -> FloatArray:
        """∂(azimuth[, zenith])/∂v for a direction vector v."""
        rh2 = v[0] ** 2 + v[1] ** 2
        rows = [np.array([-v[1], v[0], 0.0][:d]) / rh2]
        if d == 3:
            rho2, rh = v @ v, np.sqrt(rh2)
            rows.append(np.array([v[0] * v[2] / rh, v[1] * v[2] / rh, -rh]) / rho2)
        return np.vstack(rows)

    # LOS: τ_0 = |p - b|/c, angles of p - b.
    v0 = p - b
    T[2, 0:d] = v0 / np.linalg.norm(v0) / c
    T[3:per, 0:d] = angle_grad(v0)
    for q in range(L - 1):
        row, col = (q + 1) * per, d * (q + 1)
        if mapped[q]:
            s = np.asarray(scatterers[q])[:d]
            vs, vp = s - b, p - s
            T[row + 2, 0:d] = vp / np.linalg.norm(vp) / c
            T[row + 2, col:col + d] = (vs / np.linalg.norm(vs) - vp / np.linalg.norm(vp)) / c
            T[row + 3:row + per, col:col + d] = angle_grad(vs)
        else:
            T[row + 2:row + per, col:col + d] = np.eye(d)
    gains_col = d * L
    for path in range(L):
        T[path * per:path * per + 2, gains_col + 2 * path:gains_col + 2 * path + 2] = np.eye(2)
    return T, mapped


@register
class MisoSpGrid(_MisoBase):
    """``miso-sp-grid``: coarse (range, angle) grid of the SP pseudospectrum (eq. 31)."""

    name = "miso-sp-grid"
    stage = "grid"


@register
class MisoSpRefine(_MisoBase):
    """``miso-sp-refine``: grid estimates refined one path at a time (SP ML)."""

    name = "miso-sp-refine"
    stage = "sp-refine"


@register
class MisoML(_MisoBase):
    """``miso-ml``: joint ML over all paths (eq. 30), the paper's proposed estimator."""

    name = "miso-ml"
    stage = "joint"
