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

``dimensions`` (default: the array decides, :meth:`_MisoBase.position_dimensions`): 3
estimates azimuth *and* zenith and 3D positions (a planar BS array); 2 is the paper's
planar model with known heights: the BS's and the UE height hypothesis of the service
area (:func:`estimators.base.resolve_service_area`), every path's zenith following from
its length (:func:`estimators.miso.model.height_zenith`, vertical reflectors), positions
in the horizontal plane.

``num_paths`` (default ``"auto"``): paths are extracted one by one while the residual is
above the noise and the new path explains more than the largest peak noise alone would
give on the grid (a detection test at false-alarm probability ``detection_pfa``), at
most ``max_paths``.

Integrity (:meth:`_MisoBase._localize`): a fix is reported ``converged=False`` with the
reason where the earliest path is too weak to be a LOS (physical gains and isotropic
arrays: free-space amplitude at its length), where the array cannot tell the UE from its
mirror image behind it and both lie in the service area, or where it lies outside the service area;
every converged fix carries a position covariance: the inverse FIM of the model at the
estimated parameters (the bound's eqs. 7-16), times the a-posteriori variance factor
``max(1, residual power / expected noise power)``.

The bound: :mod:`estimators.miso.bound`; derivations: ``docs/estimators/miso.md``.

References
----------
A. Fascista, A. Coluccia, H. Wymeersch, G. Seco-Granados, "Downlink single-snapshot
localization and mapping with a single-antenna receiver", IEEE Trans. Wireless Commun.,
2021: ML (23)-(30), single-path model (31), localization (Sec. IV-C1), mapping (33).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares, minimize

from estimators.arrays import (
    SPEED_OF_LIGHT,
    direction_angles,
    free_space_ratio_db,
    rotation_matrix,
    unit_direction,
)
from estimators.base import (
    AUTO_GROUND_HEIGHT,
    MIN_GROUND_CLEARANCE_M,
    Bound,
    Estimator,
    EstimatorInputError,
    GroundHeight,
    SnapshotEstimate,
    estimate_bytes,
    fixed_ground_height,
    grown_most,
    position_covariance,
    register,
    resolve_service_area,
)
from estimators.fisher import crlb as invert_fim
from estimators.fisher import gaussian_fim, likelihood_region_moment, numerical_jacobian
from estimators.miso.bound import (
    BOUND_DESCRIPTION,
    miso_bound,
    miso_channel_fim,
    miso_jacobian,
)
from estimators.miso.model import MisoSnapshot, ground_bounce, height_zenith
from estimators.types import Area, Observation, Truth, bs_truth, check_area, in_area
from estimators.typing import BoolArray, ComplexArray, FloatArray

# ------------------------------------------------------------ the SP pseudospectrum


@dataclass(frozen=True)
class _Grid:
    """The coarse search grid of the SP pseudospectrum.

    Attributes
    ----------
    ranges : ``[range]`` [m], path lengths ``c τ``.
    azimuths, zeniths : ``[direction]`` [rad], departure directions.
    range_zeniths : ``[range]`` [rad] or None: in the 2-D model with a BS above the UE,
        the zenith of every direction at each range (:func:`height_zenith`), which
        replaces ``zeniths``.
    """

    ranges: FloatArray
    azimuths: FloatArray
    zeniths: FloatArray
    range_zeniths: FloatArray | None = None


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
                 max_range: float, dimensions: int, height_drop: float = 0.0) -> _Grid:
    """Ranges ``(0, max_range]`` in ``range_step`` [m]; azimuths over the half-space in
    front of the BS array (``bs_yaw ± π/2`` [rad]) in ``angle_step``; zeniths π/2 for
    ``dimensions == 2`` (or, for a BS ``height_drop`` [m] above the UE, the zenith of
    each range, :func:`height_zenith`), else ``(0, π)`` in ``angle_step``. The paper's
    note: 2 m and 4° suffice (footnote 2)."""
    ranges = np.arange(range_step, max_range + 1e-9, range_step)
    azimuths = bs_yaw + np.arange(-np.pi / 2 + angle_step / 2, np.pi / 2, angle_step)
    if dimensions == 2:
        per_range = height_zenith(ranges, height_drop) if height_drop else None
        return _Grid(ranges, azimuths, np.full_like(azimuths, np.pi / 2), per_range)
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
    pilot_energy = np.sum(np.abs(snap.pilots) ** 2, axis=1)
    if grid.range_zeniths is not None:  # [range, direction, beam]: zenith per range
        responses = snap.beam_response(grid.azimuths[None, :], grid.range_zeniths[:, None])
        energy = (np.abs(responses) ** 2 @ pilot_energy).T  # [direction, range]
        scores = np.abs(np.einsum("rdm,mr->dr", responses.conj(), correlations)) ** 2
        return np.asarray(scores / np.maximum(energy, 1e-300))
    responses = snap.beam_response(grid.azimuths, grid.zeniths)  # [direction, beam]
    energy = np.abs(responses) ** 2 @ pilot_energy
    scores = np.abs(responses.conj() @ correlations) ** 2
    return np.asarray(scores / np.maximum(energy, 1e-300)[:, None])


# ------------------------------------------------------------------- the estimators

#: Patterns whose gain is the same in front of and behind the array's plane.
_SYMMETRIC_PATTERNS = ("iso", "dipole", "hw_dipole")


@dataclass(frozen=True)
class _Context:
    """What one snapshot's search knows besides the data.

    Attributes
    ----------
    dimensions : 2 or 3.
    height_drop : [m] BS height less the UE height hypothesis (2-D); 0 in 3-D.
    ue_height : [m] the hypothesis (2-D), the nominal height (3-D), None where unknown.
    area : the service area's corners [m], or None where none is known.
    """

    dimensions: int
    height_drop: float
    ue_height: float | None
    area: Area | None


class _MisoBase(Estimator):
    """Shared pipeline; subclasses pick how far to go (grid, SP refine, joint ML).

    Parameters
    ----------
    num_paths : paths of the model, LOS included (the paper takes it from initial
        access), or ``"auto"``: chosen per snapshot from the data (:meth:`_extract`:
        paths are added while the residual is above the noise and each new one passes a
        detection test at ``detection_pfa``), at most ``max_paths``.
    max_paths : the cap of ``num_paths="auto"`` (also the size of the per-path results).
    dimensions : 2 (the paper's planar model, known heights: positions in the horizontal
        plane), 3 (azimuth and zenith; needs a planar BS array), or None: 3 where the BS
        array is planar (rows > 1 and columns > 1), else 2.
    range_step_m : [m] and angle_step_rad : [rad], the coarse grid (paper: 2 m, 4°).
    max_range_m : [m] the grid's reach; None: the unambiguous range ``c / Δf``.
    sage_passes : re-estimations of every path with the others cancelled.
    max_iterations : Nelder-Mead iterations (and function evaluations) per refinement.
    area : ``((x_min, y_min), (x_max, y_max))`` [m], where the UE may be; None: the
        observation's service area. A fix outside it is not converged; it tells a UE
        behind the array from its mirror image in front.
    ue_height : [m] the UE height hypothesis of the 2-D model, the nominal height a 3-D
        fix is checked against; None: the observation's service area's.
    height_tolerance_m : [m] how far a 3-D fix's height may lie from the nominal UE
        height (a person or a car: within a couple of metres of the drive's median;
        larger for drones); further is not converged (a direction near the array's
        endfire aliased, a fix below the ground).
    detection_pfa : false-alarm probability of the per-path detection test of
        ``num_paths="auto"``.
    los_margin_db : [dB] how far below the free-space amplitude at its length the
        earliest path may be and still be taken as the LOS (where that amplitude is
        known: ``Observation.free_space_known``).
    los_merge_db : [dB] how far the LOS's fitted amplitude may depart from free space at
        its length before the fix is taken for a merged LOS and refused (where that
        amplitude is known): above free space at every stage, below it at the refined
        stages (a grid atom off the path's own parameters loses amplitude by itself).
        A single path cannot arrive above free space; a LOS that does has absorbed an
        unresolved path of relative amplitude ``ρ ≥ 10^(Δ/20) - 1``, which pulls the
        fix toward that path by at least ``1 - 10^(-Δ/20)`` of their separation (1 dB:
        11 %, of up to a resolution cell). :meth:`_localize`.
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
        num_paths: int | Literal["auto"] = "auto",
        max_paths: int = 5,
        dimensions: int | None = None,
        range_step_m: float = 2.0,
        angle_step_rad: float = float(np.deg2rad(4.0)),
        max_range_m: float | None = None,
        sage_passes: int = 2,
        max_iterations: int = 4000,
        area: Area | None = None,
        ue_height: float | None = None,
        height_tolerance_m: float = 2.0,
        detection_pfa: float = 0.01,
        los_margin_db: float = 6.0,
        los_merge_db: float = 1.0,
        bs: int = 0,
    ) -> None:
        self.num_paths = num_paths
        self.max_paths = max_paths
        self.dimensions = dimensions
        self.range_step_m = range_step_m
        self.angle_step_rad = angle_step_rad
        self.max_range_m = max_range_m
        self.sage_passes = sage_passes
        self.max_iterations = max_iterations
        self.area = area
        self.ue_height = ue_height
        self.height_tolerance_m = height_tolerance_m
        self.detection_pfa = detection_pfa
        self.los_margin_db = los_margin_db
        self.los_merge_db = los_merge_db
        self.bs = bs

    @property
    def _auto(self) -> bool:
        return isinstance(self.num_paths, str)

    @property
    def _size(self) -> int:
        """Paths of the model (``num_paths``), or at most (``max_paths`` for auto)."""
        return int(self.max_paths if self._auto else self.num_paths)

    @property
    def num_scatterers(self) -> int:
        return self._size - 1

    @property
    def num_estimated_paths(self) -> int:
        return self._size

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self._auto and self.num_paths != "auto":
            raise EstimatorInputError(
                f"{self.name}: num_paths must be an integer >= 1 or 'auto', got "
                f"{self.num_paths!r}")
        knob = "max_paths" if self._auto else "num_paths"
        if self._size < 1:
            raise EstimatorInputError(f"{self.name}: {knob} must be >= 1")
        if self.dimensions not in (None, 2, 3):
            raise EstimatorInputError(f"{self.name}: dimensions must be 2, 3 or None")
        if obs.link != "downlink" or obs.y.shape[2] != 1 or obs.ue_array.num_ant != 1:
            raise EstimatorInputError(
                f"{self.name}: needs a downlink observation at a single-antenna UE "
                f"(got link={obs.link}, UE antennas={obs.ue_array.num_ant})"
            )
        dims = self.position_dimensions(obs)
        samples = 2 * int(np.prod(obs.y.shape[2:]))
        unknowns = 2 + dims  # complex gain, range, azimuth[, zenith]
        if self._size > samples // unknowns:
            raise EstimatorInputError(
                f"{self.name}: {knob}={self._size} exceeds {samples // unknowns}, "
                f"the {samples} real samples of a snapshot over {unknowns} unknowns a path")
        if not self.range_step_m > 0 or not (self.max_range_m is None or self.max_range_m > 0):
            raise EstimatorInputError(
                f"{self.name}: range_step_m and max_range_m must be > 0 (got "
                f"{self.range_step_m}, {self.max_range_m})")
        if not self.height_tolerance_m > 0:
            raise EstimatorInputError(
                f"{self.name}: height_tolerance_m must be > 0, got {self.height_tolerance_m}")
        if not 0 < self.angle_step_rad <= np.pi:
            raise EstimatorInputError(
                f"{self.name}: angle_step_rad must be in (0, π], got {self.angle_step_rad}")
        if self.sage_passes < 0 or self.max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: sage_passes={self.sage_passes} must be >= 0, "
                f"max_iterations={self.max_iterations} >= 1")
        if not 0 < self.detection_pfa < 1:
            raise EstimatorInputError(
                f"{self.name}: detection_pfa must be in (0, 1), got {self.detection_pfa}")
        if not 0 <= self.bs < obs.num_bs:
            raise EstimatorInputError(f"{self.name}: bs={self.bs} but {obs.num_bs} BS(s)")
        if not (self.los_margin_db >= 0 and self.los_merge_db >= 0):
            raise EstimatorInputError(
                f"{self.name}: los_margin_db and los_merge_db must be >= 0 (got "
                f"{self.los_margin_db}, {self.los_merge_db})")
        if dims == 3 and obs.bs_array.rows < 2:
            raise EstimatorInputError(
                f"{self.name}: dimensions=3 needs a planar BS array (rows >= 2) to see zenith"
            )
        self._context(obs)  # a 2-D model without a UE height, or a malformed area

    def _context(self, obs: Observation) -> _Context:
        """The dimensions, the 2-D height hypothesis and the service area of ``obs``.

        The service area comes from :func:`resolve_service_area` (the hyper-parameters
        where set, else the observation's). Without any, a 3-D search has no area (no
        area test, the UE assumed in front of the array as in the paper) and a 2-D one
        raises (it needs a UE height)."""
        dims = self.position_dimensions(obs)
        if obs.service_area is None and (self.area is None or self.ue_height is None):
            if dims == 2 and self.ue_height is None:
                resolve_service_area(self.name, obs, self.area, self.ue_height)  # raises
            area = None
            if self.area is not None:
                try:
                    area = check_area(self.area, f"{self.name}: area")
                except ValueError as exc:
                    raise EstimatorInputError(str(exc)) from None
            height = None if self.ue_height is None else float(self.ue_height)
        else:
            service = resolve_service_area(self.name, obs, self.area, self.ue_height)
            area, height = service.area, service.ue_height
        if dims == 3:
            return _Context(3, 0.0, height, area)
        assert height is not None
        drop = float(obs.bs_position[self.bs, 2]) - height
        return _Context(2, drop, height, area)

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """Bytes of the search grid's pseudospectrum (:func:`pseudospectrum_bytes`) and
        of the paths' atoms, keyed by the hyper-parameter that sizes each.

        The ``R`` ranges go under ``range_step_m`` or ``max_range_m``, the ``D``
        directions under ``angle_step_rad`` or ``dimensions``, the ``[D, R]`` scores
        under whichever of the four grew the grid most from its default
        (:func:`~estimators.base.grown_most`); in 2-D with a BS above the UE the beam
        responses of every (range, direction), ``[R, D, bs_ant + beam]`` complex, too.
        ``num_paths`` (``max_paths`` for auto): the ``[path, M, K]`` atoms (their
        least-squares copy and conjugate alongside), the joint ML's Nelder-Mead simplex
        over ``paths * dimensions`` unknowns, and the results.
        """
        T, _, _, M, K = obs.y.shape
        N = obs.bs_array.num_ant
        defaults = self.default_params()
        step, angle = self.range_step_m, self.angle_step_rad
        context = self._context(obs)
        dims = context.dimensions
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
        if dims == 2 and context.height_drop:
            spectrum["grid"] += 16.0 * R * D * (N + M)
        terms: dict[str, float] = {}
        for key, value in (
            (grown_most({k: growth[k] for k in ("range_step_m", "max_range_m")}),
             spectrum["range"]),
            (grown_most({k: growth[k] for k in ("angle_step_rad", "dimensions")}),
             spectrum["direction"]),
            (grown_most(growth), spectrum["grid"]),
        ):
            terms[key] = terms.get(key, 0.0) + value
        P = self._size
        unknowns = P * dims
        simplex = 16.0 * (unknowns + 1) * unknowns if self.stage == "joint" else 0.0
        terms["max_paths" if self._auto else "num_paths"] = (
            48.0 * P * M * K + simplex + estimate_bytes(T, P, P - 1))
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
        context = self._context(obs)
        max_range = self.max_range_m or self._unambiguous_range(obs)
        yaw = float(obs.bs_orientation[self.bs, 0])
        grid = _search_grid(snap, yaw, self.range_step_m, self.angle_step_rad, max_range,
                            context.dimensions, context.height_drop)
        refined, on_grid = self._extract(snap, grid, context)  # [L, 3] (range, az, zen)
        detection = self._detection(snap, grid, context)
        keep = self._significant(snap, refined, detection)
        refined, on_grid = refined[keep], on_grid[keep]
        if self.stage == "grid":
            params = on_grid[self._significant(snap, on_grid, detection)]
            return self._grid_fix(snap, grid, params, self._localize(obs, snap, params, context),
                                  context)
        if self.stage == "sp-refine":
            params = np.stack([self._refine_single(snap, p, snap.y, context)
                               for p in on_grid])
        else:
            params = self._prune_joint(snap, self._refine_joint(snap, refined, context),
                                       detection, context)
        params = params[distinct_paths(snap, params)]
        params = params[self._significant(snap, params, detection)]
        ground = self._ground_height(snap, params[np.argmin(params[:, 0])], context)
        if ground is not None:
            params, ground = self._refit_with_ground(snap, params, ground, detection, context)
        return self._localize(obs, snap, params, context, ground)

    def _ground_height(self, snap: MisoSnapshot, los: FloatArray,
                       context: _Context) -> float | None:
        """The ground height [m] whose LOS bounce the model includes, or None (the
        paper's model: here; :class:`MisoML` has it)."""
        return None

    def _refit_with_ground(self, snap: MisoSnapshot, params: FloatArray,
                           ground_height: float, detection: float,
                           context: _Context) -> tuple[FloatArray, float | None]:
        """The joint ML (eq. 30) of the LOS, its ground bounce pinned to it
        (:func:`~estimators.miso.model.ground_bounce`) and the other paths, from the
        free model's estimates ``params [L, 3]``; then the nested test of
        :meth:`_prune_joint` on the other paths, which drops a free path that was the
        ground bounce itself (it explains nothing the pinned one does not).

        Outside the paper: a BS on a mast sees the ground echo 0.2-1.5 m of path behind
        the LOS, at a zenith a few degrees steeper, inside one range cell ``c / B`` and
        one beam: free, the pair is the ill-conditioned fit that biases the LOS (and so
        the fix) by metres, or splits into a cancelling pair far above free space.
        Pinned, it costs one complex gain. Gains are concentrated out (eq. 29) and the
        geometry fitted by Levenberg-Marquardt. The bounce itself passes the same test as
        any path (``num_paths="auto"``): where dropping it raises the residual energy by
        less than ``detection`` (no ground there, a ground that absorbs), the free model
        ``params`` is kept. Returns ``[L', 3]`` (range, azimuth, zenith), the LOS first
        and the ground bounce last, and ``ground_height``; or ``params`` and None.
        """
        d = context.dimensions
        b = snap.bs_position
        params = params[np.argsort(params[:, 0])]
        scale = np.sqrt(float(np.vdot(snap.y, snap.y).real))

        def rows(x: FloatArray) -> FloatArray:
            free = self._full(x.reshape(-1, d), context)
            return np.vstack([free, ground_bounce(b, free[0], ground_height)])

        def residual(x: FloatArray) -> FloatArray:
            k = rows(x)
            atoms = snap.atoms(k[:, 0] / SPEED_OF_LIGHT, k[:, 1], k[:, 2])
            r = (snap.y - np.tensordot(snap.fit_gains(atoms), atoms, axes=1)).ravel()
            return np.concatenate([r.real, r.imag]) / scale

        def fit(free: FloatArray) -> tuple[FloatArray, float]:
            while True:
                x0 = self._free(free, context).ravel()
                try:
                    res = least_squares(residual, x0, method="lm", x_scale="jac",
                                        max_nfev=min(self.max_iterations, 100 * x0.size))
                    x = np.asarray(res.x)
                except ValueError:  # a non-finite residual (a path straight above the BS)
                    x = x0
                if not np.all(np.isfinite(x)):
                    x = x0
                k = rows(x)
                # The joint fit can merge two paths (or a path and the bounce) into a
                # cancelling pair, as SP-refine's peaks do: refit without the repeat.
                kept = distinct_paths(snap, np.vstack([k[-1:], k[:-1]]))[1:] - 1
                if len(kept) == len(k) - 1 or not len(kept):
                    return k, float(np.sum(residual(x) ** 2)) * scale**2
                free = k[:-1][kept]

        def cost(free: FloatArray) -> float:
            k = np.vstack([free, ground_bounce(b, free[0], ground_height)])
            return snap.joint_cost(k[:, 0] / SPEED_OF_LIGHT, k[:, 1], k[:, 2])

        fitted, full = fit(params)
        while detection > 0 and len(fitted) > 2:
            free = fitted[:-1]
            rise = [cost(np.delete(free, i, axis=0)) for i in range(1, len(free))]
            reduced, reduced_cost = fit(np.delete(free, 1 + int(np.argmin(rise)), axis=0))
            if reduced_cost - full >= detection:
                break
            fitted, full = reduced, reduced_cost
        free = fitted[:-1]
        if detection > 0 and snap.joint_cost(free[:, 0] / SPEED_OF_LIGHT, free[:, 1],
                                             free[:, 2]) - full < detection:
            return params, None
        return fitted, ground_height

    def _grid_fix(self, snap: MisoSnapshot, grid: _Grid, params: FloatArray,
                  fix: SnapshotEstimate, context: _Context) -> SnapshotEstimate:
        """The grid estimator's fix with the second moment of its LOS likelihood region
        about it added to its covariance.

        The grid points' quantisation (``step² / 12`` in :meth:`_covariance`) assumes the
        reported LOS is the grid point nearest the LOS's own peak. Where the LOS and
        another path are unresolved on the coarse grid, or the extraction's local
        refinement settled on the wrong peak, the grid fix can lie metres off with that
        small a covariance. The LOS cell's single-path log-likelihood is
        ``|g^H r|² / (|g|² σ²)`` (eq. 31 against the residual ``r`` of the other paths);
        the cells within ``κ chi2_d(0.99) / 2`` of the best (``κ`` the variance factor:
        the residual's excess over the noise tempers it) are where the likelihood-ratio
        test does not reject the LOS. Their UE positions ``b + c τ u`` have a second
        moment about the fix — its offset to the region plus the region's spread, several
        peaks giving their spread — which the covariance adds (issue 22's integrity
        rule; the DAUN family's region moment on the grid of this method).
        """
        if not fix.converged or fix.position_covariance is None:
            return fix
        d = context.dimensions
        los = int(np.argmin(params[:, 0]))
        others = np.delete(params, los, axis=0)
        residual = snap.y
        if len(others):
            atoms = snap.atoms(others[:, 0] / SPEED_OF_LIGHT, others[:, 1], others[:, 2])
            residual = snap.y - np.tensordot(snap.fit_gains(atoms), atoms, axes=1)
        score = sp_pseudospectrum(snap, grid, residual)  # [direction, range]
        direction, distance = np.indices(score.shape).reshape(2, -1)
        zenith = (grid.zeniths[direction] if grid.range_zeniths is None
                  else grid.range_zeniths[distance])
        points = snap.bs_position + grid.ranges[distance, None] * unit_direction(
            grid.azimuths[direction], zenith)
        moment = np.zeros((3, 3))
        moment[:d, :d] = likelihood_region_moment(
            points[:, :d], score.ravel() / snap.noise_variance, fix.ue_position[:d],
            kappa=max(1.0, float(fix.diagnostics.get("variance_factor", 1.0))), dof=d)
        return replace(fix, position_covariance=fix.position_covariance + moment)

    def _prune_joint(self, snap: MisoSnapshot, params: FloatArray, detection: float,
                     context: _Context) -> FloatArray:
        """The nested-model test of ``num_paths="auto"`` on the joint ML: the least
        significant path is dropped and the rest re-fitted jointly while that raises
        the residual energy by less than ``detection`` [W] (:meth:`_detection`)."""

        def cost(p: FloatArray) -> float:
            return snap.joint_cost(p[:, 0] / SPEED_OF_LIGHT, p[:, 1], p[:, 2])

        while detection > 0 and len(params) > 1:
            full = cost(params)
            rise = [cost(np.delete(params, i, axis=0)) for i in range(len(params))]
            reduced = self._refine_joint(snap, np.delete(params, int(np.argmin(rise)), axis=0),
                                         context)
            if cost(reduced) - full >= detection:
                break
            params = reduced
        return params

    def _detection(self, snap: MisoSnapshot, grid: _Grid, context: _Context) -> float:
        """The energy [W] a path must explain to be kept by ``num_paths="auto"``:
        ``σ² (ln(G / detection_pfa) + d)`` (:meth:`_extract`); 0 for a fixed count."""
        if not self._auto:
            return 0.0
        cells = grid.ranges.size * grid.azimuths.size
        return float(snap.noise_variance * (np.log(cells / self.detection_pfa)
                                            + context.dimensions))

    def _significant(self, snap: MisoSnapshot, params: FloatArray,
                     detection: float) -> npt.NDArray[np.intp]:
        """Indices of the paths of ``params [L, 3]`` kept: the least significant path
        is dropped, one at a time, while removing it (the other gains refitted) raises
        the fit's residual energy by less than ``detection`` [W]; the earliest path
        found is kept always. Ghost paths that an unresolved pair (a LOS and its ground
        bounce) leaves in the successive extraction go; paths that are there stay."""
        keep = list(range(len(params)))
        if detection <= 0:
            return np.asarray(keep, dtype=np.intp)

        def cost(indices: list[int]) -> float:
            k = params[indices]
            return snap.joint_cost(k[:, 0] / SPEED_OF_LIGHT, k[:, 1], k[:, 2])

        while len(keep) > 1:
            full = cost(keep)
            rise = [cost([j for j in keep if j != i]) - full for i in keep]
            weakest = int(np.argmin(rise))
            if rise[weakest] >= detection:
                break
            keep.pop(weakest)
        return np.asarray(keep, dtype=np.intp)

    def _extract(self, snap: MisoSnapshot, grid: _Grid,
                 context: _Context) -> tuple[FloatArray, FloatArray]:
        """SAGE-style successive extraction on the SP pseudospectrum, and the model order.

        Each path is found at the grid maximum of the residual's pseudospectrum, refined
        locally (SP cost against the residual), and cancelled with a joint least-squares
        refit of all gains before the next one is searched; ``sage_passes`` then
        re-estimate every path with all the others cancelled. Cancelling *refined*
        atoms matters: a strong path between grid points otherwise leaves a residual
        stronger than a weak LOS.

        ``num_paths="auto"`` stops before ``max_paths`` where the next path explains
        less of the residual energy (after the joint least-squares refit) than
        ``σ² (ln(G / detection_pfa) + d)``: on noise alone the SP score ``|g^H n|²/|g|²``
        of each of the ``G`` grid cells is ``σ²`` times a unit exponential, whose
        largest of ``G`` exceeds ``σ² ln(G / pfa)`` with probability ``pfa``, and the
        local refinement of its ``d`` (range, angles) adds about ``σ²`` each. A residual
        that is noise alone thus stops it with probability ``1 - pfa``. The first path
        is always kept.

        Returns the refined ``[L, 3]`` and the grid ``[L, 3]`` (range, azimuth, zenith),
        ``L <= max_paths``.
        """
        refined: list[FloatArray] = []
        on_grid: list[FloatArray] = []
        detection = self._detection(snap, grid, context)

        def residual_of(paths: list[FloatArray]) -> ComplexArray:
            if not paths:
                return snap.y
            k = np.asarray(paths)
            atoms = snap.atoms(k[:, 0] / SPEED_OF_LIGHT, k[:, 1], k[:, 2])
            return snap.y - np.tensordot(snap.fit_gains(atoms), atoms, axes=1)

        def best(residual: ComplexArray) -> tuple[FloatArray, FloatArray]:
            score = sp_pseudospectrum(snap, grid, residual)
            d, r = np.unravel_index(int(np.argmax(score)), score.shape)
            zenith = (grid.zeniths[d] if grid.range_zeniths is None
                      else grid.range_zeniths[r])
            point = np.array([grid.ranges[r], grid.azimuths[d], zenith])
            return self._refine_single(snap, point, residual, context), point

        residual = snap.y
        energy = float(np.vdot(residual, residual).real)
        for _ in range(self._size):
            fine, coarse = best(residual)
            candidate = residual_of([*refined, fine])
            remaining = float(np.vdot(candidate, candidate).real)
            if self._auto and refined and energy - remaining < detection:
                break
            refined.append(fine)
            on_grid.append(coarse)
            residual, energy = candidate, remaining
        for _ in range(self.sage_passes if len(refined) > 1 else 0):
            for i in range(len(refined)):
                others = refined[:i] + refined[i + 1:]
                refined[i], on_grid[i] = best(residual_of(others))
        return np.asarray(refined), np.asarray(on_grid)

    def _free(self, params: FloatArray, context: _Context) -> FloatArray:
        cols = [0, 1] if context.dimensions == 2 else [0, 1, 2]
        return params[:, cols]

    def _full(self, free: FloatArray, context: _Context) -> FloatArray:
        if context.dimensions == 3:
            return free
        return np.column_stack([free, height_zenith(free[:, 0], context.height_drop)])

    def _simplex(self, x0: FloatArray, dims: int) -> FloatArray:
        per_path = [self.range_step_m / 4, self.angle_step_rad / 4, self.angle_step_rad / 4]
        steps = np.tile(per_path[:dims], len(x0) // dims)
        return np.vstack([x0, x0 + np.diag(steps)])

    def _refine_single(
        self, snap: MisoSnapshot, params: FloatArray, y: ComplexArray, context: _Context
    ) -> FloatArray:
        """Nelder-Mead on the single-path cost (eq. 31) of one path against ``y``."""
        x0 = self._free(params[None], context)[0]

        def cost(x: FloatArray) -> float:
            p = self._full(x[None], context)[0]
            return snap.joint_cost(np.array([p[0] / SPEED_OF_LIGHT]), p[1:2], p[2:3], y)

        res = minimize(cost, x0, method="Nelder-Mead", options={
            "initial_simplex": self._simplex(x0, context.dimensions), "xatol": 1e-6,
            "fatol": 1e-14, "maxiter": self.max_iterations, "maxfev": self.max_iterations})
        return self._full(np.asarray(res.x)[None], context)[0]

    def _refine_joint(self, snap: MisoSnapshot, params: FloatArray,
                      context: _Context) -> FloatArray:
        """The joint ML over every path (eq. 30): the residual ``y - Σ α_p g_p`` in the
        paths' gains, ranges and angles, minimised by Levenberg-Marquardt with the
        analytic Jacobian of the bound (:func:`miso_jacobian`, eq. 9) from the SAGE
        estimates and their least-squares gains. The same minimum as the compressed
        cost (29) over ranges and angles (the gains concentrated out), reached in tens
        of Jacobian evaluations instead of thousands of cost evaluations."""
        dims = context.dimensions
        per_path = dims + 2
        tau0 = params[:, 0] / SPEED_OF_LIGHT
        gains0 = snap.fit_gains(snap.atoms(tau0, params[:, 1], params[:, 2]))
        x0 = np.column_stack([gains0.real, gains0.imag, self._free(params, context)]).ravel()
        scale = np.sqrt(float(np.vdot(snap.y, snap.y).real))

        def unpack(x: FloatArray) -> tuple[ComplexArray, FloatArray, FloatArray]:
            e = x.reshape(-1, per_path)
            full = self._full(e[:, 2:], context)
            return e[:, 0] + 1j * e[:, 1], full[:, 0] / SPEED_OF_LIGHT, full[:, 1:3]

        def residual(x: FloatArray) -> FloatArray:
            gains, tau, aod = unpack(x)
            r = (snap.y - snap.noiseless(gains, tau, aod[:, 0], aod[:, 1])).ravel() / scale
            return np.concatenate([r.real, r.imag])

        def jacobian(x: FloatArray) -> FloatArray:
            gains, tau, aod = unpack(x)
            with np.errstate(divide="ignore", invalid="ignore"):
                d = miso_jacobian(snap, gains, tau, aod, dims, context.height_drop)
            d = d.copy()
            d[:, 2::per_path] /= SPEED_OF_LIGHT  # per metre of range, not per second
            d = -d / scale
            return np.asarray(np.concatenate([d.real, d.imag]), dtype=np.float64)

        try:
            res = least_squares(residual, x0, jac=jacobian, method="lm", x_scale="jac",
                                max_nfev=min(self.max_iterations, 200), xtol=1e-10,
                                ftol=1e-10)
            x = np.asarray(res.x)
        except ValueError:  # a non-finite Jacobian (a path straight above the BS)
            x = x0
        if not np.all(np.isfinite(x)):
            x = x0
        return self._full(x.reshape(-1, per_path)[:, 2:], context)

    def _localize(self, obs: Observation, snap: MisoSnapshot, params: FloatArray,
                  context: _Context, ground_height: float | None = None) -> SnapshotEstimate:
        """LOS = shortest path (Sec. IV-C1); scatterers by eq. (33); the integrity tests
        and the covariance.

        Not converged, with the reason, where (1) free space is known
        (``Observation.free_space_known``: physical gains, isotropic arrays) and the
        earliest path's amplitude is more than ``los_margin_db`` below free space at its
        length, ``λ / (4π c τ_0)`` (a reflection or an obstructed LOS, not a LOS: MISO
        cannot localize without one, Theorem 1); (2) the BS array is flat (all elements
        in its local y-z plane) with a pattern symmetric about that plane, so that the
        UE's mirror image through the plane explains the data equally, and both lie in
        the service area (the image is taken where only it does); (3) the fix lies
        outside the service area; (4) free space is known and the LOS's amplitude is
        more than ``los_merge_db`` above it (at every stage) or below it (at the refined
        stages), short of (1): a merged LOS. A single path arrives at free space; the
        fitted LOS atom of a LOS ``a_0`` and an unresolved path ``a_1 = c a_0``
        (``|c| < 1``: a longer, passive path) has, to first order in their separation
        ``δ``, the amplitude ``|1 + c| |a_0|`` and the parameters of the LOS moved by
        ``Re(c / (1 + c)) δ`` toward the other path, between ``1 - 1 / |1 + c|`` and
        ``1 / 2`` of ``δ``: above free space by ``Δ`` dB (``|1 + c| = 10^(Δ/20)``) the
        pull is at least ``1 - 10^(-Δ/20)`` of ``δ`` toward it; below, it may reach
        ``10^(Δ/20) - 1`` of ``δ`` away from it. The residual, second order in ``δ``,
        does not show the merge; the amplitude is its first-order trace (a wall behind
        a mast's BS, its echo mirrored through an isotropic flat array's back:
        docs/estimators/miso.md, "A merged LOS is refused"). The covariance:
        :meth:`_covariance`.

        With ``ground_height``, the last row of ``params`` is the LOS's ground bounce
        (:meth:`_refit_with_ground`), re-derived from whichever path is taken as the LOS;
        its scatterer is the ground point (3-D; the planar model has no floor).
        """
        ground = ground_height is not None
        free = params[:-1] if ground else params
        free = free[np.argsort(free[:, 0])]
        b = snap.bs_position

        def fitted(free: FloatArray
                   ) -> tuple[FloatArray, FloatArray, ComplexArray, float, FloatArray]:
            """The paths (the ground bounce last), their delays, gains, the residual
            energy and each path's amplitude against free space at its length [dB]."""
            rows = (np.vstack([free, ground_bounce(b, free[0], ground_height)])
                    if ground_height is not None else free)
            tau = rows[:, 0] / SPEED_OF_LIGHT
            atoms = snap.atoms(tau, rows[:, 1], rows[:, 2])
            gains = snap.fit_gains(atoms)
            residual = snap.y - np.tensordot(gains, atoms, axes=1)
            free_space_db = free_space_ratio_db(gains, rows[:, 0], snap.wavelength)
            return rows, tau, gains, float(np.vdot(residual, residual).real), free_space_db

        params, tau, gains, cost, free_space_db = fitted(free)
        free_space = obs.free_space_known
        if free_space:
            # Nothing arrives before the LOS: an earlier path far below free space is a
            # fitting artefact of an unresolved pair, not the LOS; drop it.
            strong = np.flatnonzero(free_space_db[:len(free)] >= -self.los_margin_db)
            first = int(strong[0]) if strong.size else 0
            if first:
                free = free[first:]
                params, tau, gains, cost, free_space_db = fitted(free)
        ue = b + params[0, 0] * unit_direction(params[0, 1], params[0, 2])
        if context.dimensions == 2 and context.ue_height is not None:
            ue = ue.copy()
            ue[2] = context.ue_height  # = b_z - Δh already, up to rounding
        scatterers, valid = map_scatterers(b, ue, params[1:, 0], params[1:, 1], params[1:, 2])
        if ground and context.dimensions == 2:
            valid[-1] = False  # a floor point: outside the planar model's map
            scatterers[-1] = np.nan
        aod = params[:, 1:3].copy()
        reason = ""
        los_db = float(free_space_db[0]) if free_space else float("nan")
        if free_space and los_db < -self.los_margin_db:
            reason = (f"no LOS: the strongest-to-free-space path ({params[0, 0]:.1f} m) is "
                      f"{-los_db:.1f} dB below free space at its length (reflections or "
                      f"an obstructed LOS only)")
        mirror = self._mirror(obs)
        if not reason and mirror is not None and context.area is not None:
            image = b + mirror @ (ue - b)
            here, there = in_area(context.area, ue), in_area(context.area, image)
            if here and there:
                reason = (f"front/back ambiguous: the BS array cannot tell the fix "
                          f"({ue[0]:.1f}, {ue[1]:.1f}) from its mirror image "
                          f"({image[0]:.1f}, {image[1]:.1f}), both in the service area")
            elif there:
                ue = image
                scatterers = b + (scatterers - b) @ mirror.T
                directions = unit_direction(aod[:, 0], aod[:, 1]) @ mirror.T
                aod = np.stack(direction_angles(directions), axis=-1)
        if not reason and context.area is not None and not in_area(context.area, ue):
            reason = (f"outside the service area: fix ({ue[0]:.1f}, {ue[1]:.1f}) m, area "
                      f"{context.area}")
        if (not reason and context.dimensions == 3 and context.ue_height is not None
                and abs(ue[2] - context.ue_height) > self.height_tolerance_m):
            reason = (f"implausible height: fix at z = {ue[2]:.1f} m, the UEs' nominal "
                      f"height {context.ue_height:.1f} m (height_tolerance_m "
                      f"{self.height_tolerance_m:g})")
        covariance, variance_factor = self._covariance(snap, gains, tau, aod, ue, cost,
                                                       context, ground_height)
        if not reason and free_space:
            reason = self._merged_los(snap, params[[0, -1]] if ground else params[:1],
                                      gains[0], variance_factor)
        P, L = self.num_estimated_paths, len(tau)
        diagnostics = {"cost": cost, "residual_ratio": cost / float(np.vdot(snap.y, snap.y).real),
                       "num_paths": float(L), "ground_bounce": float(ground),
                       "variance_factor": variance_factor,
                       "los_free_space_db": los_db}
        return SnapshotEstimate(
            ue_position=np.full(3, np.nan) if reason else ue,
            scatterers=_pad(scatterers, self.num_scatterers, np.nan),
            scatterer_valid=_pad(valid & ~bool(reason), self.num_scatterers, False),
            path_tau=_pad(tau, P, np.nan), path_aod=_pad(aod, P, np.nan),
            path_gain=_pad(gains, P, np.nan + 0j),
            position_covariance=None if reason or covariance is None
            else position_covariance(covariance),
            converged=not reason, reason=reason, diagnostics=diagnostics,
        )

    def _mirror(self, obs: Observation) -> FloatArray | None:
        """The reflection ``[3, 3]`` through the BS array's plane where the array cannot
        tell front from back (every element at the same local x, a pattern symmetric
        about that plane), else None."""
        r = obs.bs_array.element_positions
        if obs.bs_array.pattern not in _SYMMETRIC_PATTERNS or np.ptp(r[:, 0]) > 1e-9:
            return None
        normal = rotation_matrix(obs.bs_orientation[self.bs])[:, 0]
        return np.eye(3) - 2.0 * np.outer(normal, normal)

    def _merged_los(self, snap: MisoSnapshot, los: FloatArray, gain: complex,
                    variance_factor: float) -> str:
        """The reason (4) of :meth:`_localize`, or ``""``: the LOS's fitted amplitude
        ``|gain|`` is more than ``los_merge_db`` above free space at its length
        ``los[0, 0]`` [m] (any stage) or below it (refined stages), beyond its own
        noise: ``z`` standard deviations of its least-squares amplitude in the LOS's own
        model, ``sqrt(κ σ² [(AᴴA)⁻¹]_00 / 2)``, ``A`` the unit-gain atoms of ``los``
        (``[1 or 2, 3]`` (range, azimuth, zenith): the LOS, and its pinned ground bounce
        where the fit has one), ``κ`` the variance factor, ``z`` the two-sided normal
        quantile of ``detection_pfa`` (the detection test's false-alarm probability).
        The LOS's own model, not the full model's CRLB: a path merged into the LOS,
        partly resolved, correlates with it and widens the full model's LOS amplitude,
        and that width is the merge, not noise to forgive it by; the pinned bounce is
        the LOS's own (on a mast it is nearly collinear with the LOS, and the two gains
        alone are poorly determined)."""
        from scipy.stats import norm

        atoms = snap.atoms(los[:, 0] / SPEED_OF_LIGHT, los[:, 1], los[:, 2])
        flat = atoms.reshape(len(los), -1)
        gram = flat.conj() @ flat.T
        try:
            inverse = float(np.linalg.inv(gram)[0, 0].real)
        except np.linalg.LinAlgError:
            return ""
        std = np.sqrt(max(inverse, 0.0) * variance_factor * snap.noise_variance / 2.0)
        spread = float(norm.isf(self.detection_pfa / 2.0)) * std
        length, wavelength = float(los[0, 0]), snap.wavelength
        above = float(free_space_ratio_db(max(abs(gain) - spread, 0.0), length, wavelength))
        below = float(free_space_ratio_db(abs(gain) + spread, length, wavelength))
        if above > self.los_merge_db:
            beyond = above
        elif self.stage != "grid" and below < -self.los_merge_db:
            beyond = below
        else:
            return ""
        fitted = float(free_space_ratio_db(gain, length, wavelength))
        return (f"{MERGED_LOS}: its amplitude is {fitted:+.1f} dB from free space at its "
                f"length {length:.1f} m ({beyond:+.1f} dB beyond its noise; "
                f"los_merge_db={self.los_merge_db:g}): an unresolved path merged into it "
                f"pulls the fix")

    def _covariance(
        self, snap: MisoSnapshot, gains: ComplexArray, tau: FloatArray, aod: FloatArray,
        ue: FloatArray, cost: float, context: _Context, ground_height: float | None = None,
    ) -> tuple[FloatArray | None, float]:
        """The UE's position covariance ``[d, d]`` [m²] and its variance factor.

        The channel CRLB of the model (eqs. 7-9, every estimated path) at the
        *estimated* paths, its LOS block ``(τ_0, azimuth_0[, zenith_0])`` mapped to the
        UE through ``p = b + c τ_0 u`` (2-D: the horizontal distance ``sqrt((c τ_0)² -
        Δh²)``) — the position CRLB of eqs. 14-16, since the paths' single-bounce
        scatterers map one-to-one to their parameters (Theorem 1) — times the
        a-posteriori variance factor ``max(1, |r|² / (σ² (MK - n/2)))`` for ``n`` real
        unknowns: the residual is what the noise explains when the model fits; more
        (unmodelled paths, diffuse energy) inflates it; for ``miso-sp-grid``, whose
        parameters are grid points, plus the grid's quantisation variance (``step²/12``
        in range and angle). Where the full model's FIM is singular (two estimates of one
        path), the LOS's own FIM alone. With ``ground_height``, the last path is the LOS's
        ground bounce: a gain, its geometry the LOS's (:meth:`_channel_fim`). None
        without noise."""
        d = context.dimensions
        sigma2 = snap.noise_variance
        if not sigma2 > 0:
            return None, float("nan")
        ground = int(ground_height is not None)
        unknowns = (len(tau) - ground) * (d + 2) + 2 * ground
        factor = max(1.0, cost / (sigma2 * max(snap.y.size - unknowns / 2, 1.0)))
        zen = aod[:, 1].copy()
        if d == 2:
            zen[:len(tau) - ground] = height_zenith(SPEED_OF_LIGHT * tau[:len(tau) - ground],
                                                    context.height_drop)
        angles = np.column_stack([aod[:, 0], zen])
        los = slice(2, d + 2)  # τ, azimuth[, zenith] of path 0
        block = np.full((d, d), np.nan)
        for paths in (len(tau) - ground, 1):
            chosen = [*range(paths), *range(len(tau) - ground, len(tau))]
            with np.errstate(divide="ignore", invalid="ignore"):
                fim = self._channel_fim(snap, gains[chosen], tau[chosen], angles[chosen],
                                        context, ground_height)
            block = invert_fim(fim)[los, los]
            if np.all(np.isfinite(block)):
                break
        r, az, theta = SPEED_OF_LIGHT * tau[0], angles[0, 0], angles[0, 1]
        if d == 3:
            u = unit_direction(az, theta)
            du_daz = np.array([-np.sin(theta) * np.sin(az), np.sin(theta) * np.cos(az), 0.0])
            du_dzen = np.array([np.cos(theta) * np.cos(az), np.cos(theta) * np.sin(az),
                                -np.sin(theta)])
            jac = np.column_stack([SPEED_OF_LIGHT * u, r * du_daz, r * du_dzen])
        else:
            rho = np.sqrt(max(r**2 - context.height_drop**2, 1e-12))
            heading = np.array([np.cos(az), np.sin(az)])
            jac = np.column_stack([SPEED_OF_LIGHT * r / rho * heading,
                                   rho * np.array([-np.sin(az), np.cos(az)])])
        if not np.all(np.isfinite(block)):
            return None, factor
        block = factor * block
        if self.stage == "grid":
            # The grid estimator reports grid points: their uniform quantisation error
            # (step² / 12 in range and in each angle) adds to the noise's.
            step = np.array([self.range_step_m / SPEED_OF_LIGHT, self.angle_step_rad,
                             self.angle_step_rad])[:d]
            block = block + np.diag(step**2 / 12.0)
        return jac @ block @ jac.T, factor

    @staticmethod
    def _channel_fim(snap: MisoSnapshot, gains: ComplexArray, tau: FloatArray,
                     angles: FloatArray, context: _Context,
                     ground_height: float | None) -> FloatArray:
        """The channel FIM (eqs. 7-9) of the model's unknowns: per free path ``(Re α,
        Im α, τ, azimuth[, zenith])`` (:func:`miso_channel_fim`), and, with
        ``ground_height``, the ground bounce's ``(Re α, Im α)`` last, its ``(τ, azimuth,
        zenith)`` functions of the LOS's: its Jacobian columns enter the LOS's through the
        chain rule (the reparametrisation ``J' = J T`` of a constrained model)."""
        d, drop = context.dimensions, context.height_drop
        if ground_height is None:
            return miso_channel_fim(snap, gains, tau, angles, d, drop)
        jac = miso_jacobian(snap, gains[:-1], tau[:-1], angles[:-1], d, drop)
        bounce = miso_jacobian(snap, gains[-1:], tau[-1:], angles[-1:], 3)  # [N, 5]

        def pinned(v: FloatArray) -> FloatArray:  # LOS (τ, az[, zen]) → bounce (τ, az, zen)
            zenith = v[2] if d == 3 else height_zenith(SPEED_OF_LIGHT * v[0], drop)
            g = ground_bounce(snap.bs_position, np.array(
                [SPEED_OF_LIGHT * v[0], v[1], float(zenith)]), ground_height)
            return np.array([g[0] / SPEED_OF_LIGHT, g[1], g[2]])

        los = np.r_[tau[0], angles[0, 0], angles[0, 1]][:d]
        chain = numerical_jacobian(pinned, los, np.r_[1e-12, 1e-7, 1e-7][:d]).real
        jac = jac.copy()
        jac[:, 2:2 + d] += bounce[:, 2:] @ chain
        return gaussian_fim(np.column_stack([jac, bounce[:, :2]]), snap.noise_variance)

    # -- contracts ---------------------------------------------------------------

    def position_dimensions(self, obs: Observation) -> int:
        """The hyper-parameter ``dimensions``; None: 3 where the BS array is planar (rows
        > 1 and columns > 1: the method's 3-D form), else 2 (the paper's planar model)."""
        if self.dimensions is not None:
            return int(self.dimensions)
        return 3 if obs.bs_array.rows > 1 and obs.bs_array.cols > 1 else 2

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The paper's bounds (:func:`estimators.miso.bound.miso_bound`, eqs. 7-17) at
        BS ``bs``'s first ``num_paths`` valid paths in ``truth`` (``"auto"``: all, at
        most ``max_paths``); NaN where they do not apply."""
        self.check(obs)
        bound = miso_bound(obs, bs_truth(truth, self.bs),
                           num_paths=None if self._auto else int(self.num_paths),
                           max_paths=self._size, dimensions=self.position_dimensions(obs),
                           bs=self.bs)
        # The ground bounce's scatterer slot (miso-ml) is outside the paper's bound: NaN.
        scatterer = bound.scatterer_error_bound
        padded = np.full((scatterer.shape[0], self.num_scatterers), np.nan)
        padded[:, :scatterer.shape[1]] = scatterer
        return replace(bound, scatterer_error_bound=padded)




#: How the reason of a fix refused for a merged LOS starts (:meth:`_MisoBase._merged_los`).
MERGED_LOS = "merged LOS"

#: Two estimated paths whose unit-gain responses correlate above this are one path
#: found twice (:func:`distinct_paths`): their least-squares gains amplify the noise by
#: ``1 / (1 - ρ²)``, 5 000x here; SP-refine's duplicates on the office walk had ``1 - ρ``
#: of 3e-13 to 1e-12 and came out as cancelling pairs 10⁴-10⁵ times the path's gain.
DUPLICATE_COHERENCE = 1.0 - 1e-4


def distinct_paths(snap: MisoSnapshot, params: FloatArray) -> npt.NDArray[np.intp]:
    """Indices of the paths of ``params [L, 3]`` (range [m], azimuth, zenith [rad]) that
    are not a repeat of an earlier one: a path whose response ``g_p`` (eq. 31)
    correlates with an earlier kept path's above :data:`DUPLICATE_COHERENCE` is dropped.

    SP-refine refines each grid peak against the received pilots independently (Sec.
    IV-B), so the peaks of one lobe climb to the same maximum; the joint ML can let two
    paths merge. Kept, such a pair is fitted by huge opposite gains (a derivative atom,
    not two paths): 88-101 dB above free space on the office walk, where the
    covariance at those gains gave sub-millimetre standard deviations (5-20 mm with
    the duplicate dropped) to fixes 2-14 cm off.
    """
    atoms = snap.atoms(params[:, 0] / SPEED_OF_LIGHT, params[:, 1], params[:, 2])
    flat = atoms.reshape(len(params), -1)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    kept: list[int] = []
    for i in range(len(params)):
        if all(abs(np.vdot(flat[j], flat[i])) <= DUPLICATE_COHERENCE for j in kept):
            kept.append(i)
    return np.asarray(kept, dtype=np.intp)


def _pad(values: Any, size: int, fill: Any) -> Any:
    """``values [n, ...]`` padded with ``fill`` to ``[size, ...]``."""
    v = np.asarray(values)
    out = np.full((size, *v.shape[1:]), fill, dtype=v.dtype if v.size else type(fill))
    out[:len(v)] = v
    return out


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
    """``miso-ml``: joint ML over all paths (eq. 30), the paper's proposed estimator.

    Parameters
    ----------
    ground_height : [m] the height of a horizontal ground (outside the paper): the joint
        ML then models the LOS's ground bounce, pinned to the LOS
        (:meth:`_refit_with_ground`), where the BS and the fix are both at least
        :data:`MIN_GROUND_CLEARANCE_M` above it; None: the paper's model; ``"auto"``
        (default): the observation's ground
        (:func:`estimators.base.resolve_ground_height`: the twin's scene under the
        drive), else 0 m.
    **kwargs : the hyper-parameters of :class:`_MisoBase`.
    """

    name = "miso-ml"
    stage = "joint"
    auto_parameters = AUTO_GROUND_HEIGHT

    def __init__(self, *, ground_height: GroundHeight = "auto", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ground_height = ground_height

    @property
    def num_scatterers(self) -> int:
        return self._size - (self.ground_height is None)

    @property
    def num_estimated_paths(self) -> int:
        return self._size + (self.ground_height is not None)

    def _ground_height(self, snap: MisoSnapshot, los: FloatArray,
                       context: _Context) -> float | None:
        """``ground_height`` where the BS and the LOS's end both clear it by
        :data:`MIN_GROUND_CLEARANCE_M`, else None (closer, the bounce has the LOS's
        delay and direction: one path)."""
        h = fixed_ground_height(self.ground_height)
        if h is None:
            return None
        ue_z = float(snap.bs_position[2] + los[0] * np.cos(los[2]))
        if min(ue_z, float(snap.bs_position[2])) - h < MIN_GROUND_CLEARANCE_M:
            return None
        return float(h)
