"""The registered MISO estimators: SP ML on a coarse grid, SP ML refined, joint ML.

Fascista et al.'s estimators on the forward model of :mod:`estimators.miso.model`:

* ``miso-sp-grid`` — single-path (SP) ML pseudospectrum (eq. 31) on a coarse
  (range, angle) grid; paths extracted one by one, each refined locally and cancelled
  (joint least-squares refit of the gains) before the next is searched (SAGE-style,
  the paper's footnote 3); the reported parameters are the grid points;
* ``miso-sp-refine`` — each grid estimate refined by Nelder-Mead on its SP cost on the
  received signal (the paper's "SP ML with refinement");
* ``miso-ml`` — the joint ML (eqs. 29-30, gains concentrated out) by Nelder-Mead over
  all paths' (range, angle), initialised by the SAGE-style estimates.

The UE position follows from the LOS, the shortest path (Sec. IV-C1):
``p = b + c τ_0 u(θ_0)``; each NLOS path's scatterer from eq. (33).
``dimensions=2`` is the paper's planar model (azimuth only, zenith π/2, positions in the
BS's horizontal plane, UE height ``ue_height`` if given); ``dimensions=3`` estimates
azimuth *and* zenith (a planar BS array is needed) and 3D positions. The bound:
:mod:`estimators.miso.bound`; derivations: ``docs/estimators/miso.md``.

References
----------
A. Fascista, A. Coluccia, H. Wymeersch, G. Seco-Granados, "Downlink single-snapshot
localization and mapping with a single-antenna receiver", IEEE Trans. Wireless Commun.,
2021: ML (23)-(30), single-path model (31), localization (Sec. IV-C1), mapping (33).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.optimize import minimize

from estimators.arrays import SPEED_OF_LIGHT, unit_direction
from estimators.base import (
    Bound,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    estimate_bytes,
    grown_most,
    register,
)
from estimators.miso.bound import BOUND_DESCRIPTION, miso_bound
from estimators.miso.model import MisoSnapshot
from estimators.types import Observation, Truth, bs_truth
from estimators.typing import BoolArray, ComplexArray, FloatArray

# ------------------------------------------------------------ the SP pseudospectrum


@dataclass(frozen=True)
class _Grid:
    """The coarse search grid of the SP pseudospectrum.

    Attributes
    ----------
    ranges : ``[range]`` [m], path lengths ``c τ``.
    azimuths, zeniths : ``[direction]`` [rad], departure directions.
    """

    ranges: FloatArray
    azimuths: FloatArray
    zeniths: FloatArray


def _arange_length(start: float, stop: float, step: float) -> int:
    """``len(np.arange(start, stop, step))`` without building it (numpy's own rule)."""
    return max(int(np.ceil((stop - start) / step)), 0)


def grid_size(range_step: float, angle_step: float, max_range: float,
              dimensions: int) -> tuple[int, int]:
    """Numbers of ranges and of directions of :func:`_search_grid`, without building it.

    Parameters
    ----------
    range_step : [m]; angle_step : [rad]; max_range : [m]; dimensions : 2 or 3.
    """
    ranges = _arange_length(range_step, max_range + 1e-9, range_step)
    directions = _arange_length(-np.pi / 2 + angle_step / 2, np.pi / 2, angle_step)
    if dimensions == 3:
        directions *= _arange_length(angle_step / 2, np.pi, angle_step)
    return ranges, directions


def _search_grid(snap: MisoSnapshot, bs_yaw: float, range_step: float, angle_step: float,
                 max_range: float, dimensions: int) -> _Grid:
    """Ranges ``(0, max_range]`` in ``range_step`` [m]; azimuths over the half-space in
    front of the BS array (``bs_yaw ± π/2`` [rad]) in ``angle_step``; zeniths π/2 for
    ``dimensions == 2``, else ``(0, π)`` in ``angle_step``. The paper's note: 2 m and 4°
    suffice (footnote 2)."""
    ranges = np.arange(range_step, max_range + 1e-9, range_step)
    azimuths = bs_yaw + np.arange(-np.pi / 2 + angle_step / 2, np.pi / 2, angle_step)
    if dimensions == 2:
        return _Grid(ranges, azimuths, np.full_like(azimuths, np.pi / 2))
    zeniths = np.arange(angle_step / 2, np.pi, angle_step)
    az, zen = np.meshgrid(azimuths, zeniths, indexing="ij")
    return _Grid(ranges, az.ravel(), zen.ravel())


def pseudospectrum_bytes(num_ranges: int, num_directions: int, num_beams: int,
                         num_subcarriers: int, num_antennas: int) -> dict[str, float]:
    """Peak bytes of :func:`sp_pseudospectrum` on a ``range x direction`` grid, by axis.

    ``"range"``: the delay phasors ``[subcarrier, range]`` and their products with the
    residual ``[beam, range]``, complex; ``"direction"``: the steering vectors
    ``[direction, bs_ant]`` with their exponent, or the beam responses ``[direction,
    beam]`` with their conjugate (complex, one pair at a time); ``"grid"``: the scores
    ``[direction, range]``, complex, then their magnitudes alongside.
    """
    R, D = num_ranges, num_directions
    return {"range": R * (16.0 * (num_subcarriers + num_beams) + 8),
            "direction": D * (32.0 * max(num_antennas, num_beams) + 48),
            "grid": 24.0 * D * R}


def sp_pseudospectrum(snap: MisoSnapshot, grid: _Grid, residual: ComplexArray) -> FloatArray:
    """Single-path ML score ``|g^H r|² / |g|²`` on the grid: ``[direction, range]``.

    Its maximum is the minimum of the SP cost ``L_SP = |r|² - |g^H r|²/|g|²`` (eq. 31),
    evaluated for all grid points with two matrix products.

    Parameters
    ----------
    residual : ``[beam, subcarrier]``, the received pilots less the paths found so far.
    """
    tau = grid.ranges / SPEED_OF_LIGHT
    delay_phasors = np.exp(2j * np.pi * np.outer(snap.frequencies, tau))  # [subcarrier, range]
    correlations = (snap.pilots.conj() * residual) @ delay_phasors  # [beam, range]
    responses = snap.beam_response(grid.azimuths, grid.zeniths)  # [direction, beam]
    energy = np.abs(responses) ** 2 @ np.sum(np.abs(snap.pilots) ** 2, axis=1)
    scores = np.abs(responses.conj() @ correlations) ** 2
    return np.asarray(scores / np.maximum(energy, 1e-300)[:, None])


# ------------------------------------------------------------------- the estimators


class _MisoBase(Estimator):
    """Shared pipeline; subclasses pick how far to go (grid, SP refine, joint ML).

    Parameters
    ----------
    num_paths : paths of the model, LOS included (the paper takes it from initial
        access).
    dimensions : 2 (the paper's planar model: azimuth only, positions in the BS's
        horizontal plane) or 3 (azimuth and zenith; needs a planar BS array).
    range_step_m : [m] and angle_step_rad : [rad], the coarse grid (paper: 2 m, 4°).
    max_range_m : [m] the grid's reach; None: the unambiguous range ``c / Δf``.
    sage_passes : re-estimations of every path with the others cancelled.
    max_iterations : Nelder-Mead iterations (and function evaluations) per refinement.
    ue_height : [m] reported as the UE's height for ``dimensions == 2``; None: the
        BS's.
    bs : which BS of the observation sounds.
    """

    paper: ClassVar[str] = "miso"
    bound: ClassVar[str] = BOUND_DESCRIPTION
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

    # -- contracts ---------------------------------------------------------------

    def position_dimensions(self, obs: Observation) -> int:
        """The hyper-parameter ``dimensions``: 2 (the paper's planar model) or 3."""
        return self.dimensions

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The paper's bounds (:func:`estimators.miso.bound.miso_bound`, eqs. 7-17) at
        BS ``bs``'s first ``num_paths`` valid paths in ``truth``; NaN where they do not
        apply."""
        self.check(obs)
        return miso_bound(obs, bs_truth(truth, self.bs), num_paths=self.num_paths,
                          dimensions=self.dimensions, bs=self.bs)


def map_scatterers(
    bs: FloatArray, ue: FloatArray, ranges: FloatArray, azimuth: FloatArray, zenith: FloatArray
) -> tuple[FloatArray, BoolArray]:
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
