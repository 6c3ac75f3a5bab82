"""The grid of the paper's eq. (2) and the base of every localizer that searches it:
DAUN's own (:mod:`estimators.daun.estimators`) and the paper's baselines
(:mod:`estimators.daun.baselines`), which thus do not depend on the proposed method.

All of them see the narrowband uplink of eq. (1): a single-antenna user, ``M`` BSs with
identity combining (``Observation.y [snapshot, bs, bs_ant, 1, subcarrier]``; the
subcarrier nearest the carrier is used), and localize on the grid of eq. (2) over a
rectangular ``area`` at the user's known height: their positions live in the horizontal
plane.

The grid comes from the observation unless set (issue 22): the area and the user height
from its service area (:func:`estimators.base.resolve_service_area`), the cell from the
arrays' resolution there (:func:`derived_grid`). Every fix is checked and given a
covariance (:mod:`estimators.daun.integrity`).

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eqs. (1)–(2), §IV.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from estimators.base import (
    Bound,
    Estimate,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    _degenerate,
    _stack,
    position_covariance,
    resolve_service_area,
)
from estimators.daun.bound import LOS_BOUND, los_bound
from estimators.daun.integrity import fix_integrity
from estimators.daun.model import DirectLocalizationProblem, narrowband_uplink
from estimators.types import Area, ChannelTruth, Observation, Truth, check_area
from estimators.typing import FloatArray

#: The paper's §IV grid: 40 x 40 m, K = 30 x 30, L = 100 (its scenario and figures).
PAPER_AREA: Area = ((-20.0, -20.0), (20.0, 20.0))
PAPER_GRID_SHAPE = (30, 30)
PAPER_NUM_ANGLES = 100

#: Grid cells per across-range resolution cell of the arrays (:func:`derived_grid`).
CELLS_PER_RESOLUTION = 4
#: Angles of ``B`` per horizontal array element (the paper's L = 100 for N = 50).
ANGLES_PER_ELEMENT = 2
#: The most grid points a derived grid has (coarser cells beyond).
MAX_GRID_POINTS = 16_384
#: Snapshots localized at once (the working memory is that of one chunk).
CHUNK = 64


def derived_grid(obs: Observation, area: Area, max_points: int = MAX_GRID_POINTS
                 ) -> tuple[tuple[int, int], int]:
    """A grid ``(nx, ny)`` over ``area`` and an angle count ``L`` from the observation's
    arrays (issue 22: never the paper's setting on another geometry).

    Cell: ``r λ / (CELLS_PER_RESOLUTION D)`` [m], the across-range Rayleigh resolution
    ``λ/D`` of the arrays' horizontal aperture ``D`` (``cols`` times the element
    spacing; ``λ/2`` for a single column) at the horizontal distance ``r`` from the
    nearest BS to the area's centre (at least 1 m), quartered, so that the DPD peak is
    never missed between grid points; at most ``max_points`` points (coarser cells
    beyond), at least 2 cells a side. The paper's setting gives 0.71 m (its grid: 1.33
    m). ``L = ANGLES_PER_ELEMENT cols`` (at least 8).
    """
    (x0, y0), (x1, y1) = area
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    r = max(float(np.min(np.linalg.norm(obs.bs_position[:, :2] - centre, axis=1))), 1.0)
    cols = int(obs.bs_array.cols)
    local_y = np.unique(np.round(obs.bs_array.element_positions[:, 1], 9))
    spacing = (float(local_y.max() - local_y.min()) / (len(local_y) - 1)
               if len(local_y) > 1 else obs.wavelength / 2)
    aperture = max(len(local_y), 1) * spacing
    cell = r * obs.wavelength / aperture / CELLS_PER_RESOLUTION
    width, height = x1 - x0, y1 - y0
    cell = max(cell, float(np.sqrt(width * height / max_points)))
    shape = (max(2, int(np.ceil(width / cell - 1e-9))), max(2, int(np.ceil(height / cell - 1e-9))))
    while shape[0] * shape[1] > max_points:  # ceil's rounding
        shape = (max(2, shape[0] - 1), max(2, shape[1] - 1))
    return shape, max(8, ANGLES_PER_ELEMENT * max(cols, len(local_y)))


def grid_parameters(setting: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``setting`` (JSON-like lists) as the grid hyper-parameters of a
    :class:`GridLocalizer`: ``area``, ``grid_shape``, ``ue_height``, ``num_angles``."""
    (x0, y0), (x1, y1) = setting["area"]
    nx, ny = setting["grid_shape"]
    return {"area": ((float(x0), float(y0)), (float(x1), float(y1))),
            "grid_shape": (int(nx), int(ny)), "ue_height": float(setting["ue_height"]),
            "num_angles": int(setting["num_angles"])}


class GridLocalizer(Estimator):
    """Base of the grid-based direct localizers: builds the problem of eq. (2) once per
    observation, hands ``_localize`` the narrowband ``y`` (as received, pilot removed) of
    the non-degenerate snapshots, and spreads the batch's wall time over them.

    Hyper-parameters, each from the observation where None (the default): ``area``
    ``((x_min, y_min), (x_max, y_max))`` [m] (:data:`estimators.types.Area`) and
    ``ue_height`` [m] from its service area, ``grid_shape`` ``(nx, ny)`` (``K = nx ny``)
    and ``num_angles`` ``L`` from :func:`derived_grid` (``max_grid_points`` points at
    most, a class constant).

    Every fix is checked (:func:`estimators.daun.integrity.fix_integrity`): too few BSs
    with a LOS at it, or a fix at the search area's edge with the cost rising beyond it,
    give ``converged=False`` with the reason; the others get the horizontal covariance
    of that module (the LOS-only CRLB at the fix, inflated by the unexplained residual,
    plus the grid's quantisation).

    Every estimator of the paper, baselines included, returns the same bound
    (:meth:`crlb`, :mod:`estimators.daun.bound`).
    """

    paper: ClassVar[str] = "daun"
    bound: ClassVar[str] = LOS_BOUND
    sounding: ClassVar[Mapping[str, Any]] = {
        "link": "uplink", "precoder": "identity", "combiner": "identity", "pilots": "ones"}
    #: The most points of a grid derived from the observation (:func:`derived_grid`).
    max_grid_points: ClassVar[int] = MAX_GRID_POINTS

    def __init__(
        self,
        *,
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
    ) -> None:
        self.area = area
        self.grid_shape = grid_shape
        self.ue_height = ue_height
        self.num_angles = num_angles

    def _preset(self, obs: Observation) -> dict[str, Any]:
        """The grid hyper-parameters as set (None: from the observation's service area
        and :func:`derived_grid`)."""
        return {"area": self.area, "grid_shape": self.grid_shape,
                "ue_height": self.ue_height, "num_angles": self.num_angles}

    def setting(self, obs: Observation) -> dict[str, Any]:
        """The resolved ``area``, ``grid_shape``, ``ue_height``, ``num_angles`` for
        ``obs``: the hyper-parameters where set, else the observation's service area and
        :func:`derived_grid`."""
        own = self._preset(obs)
        if own["area"] is not None:
            try:
                own["area"] = check_area(own["area"], f"{self.name}: area")
            except ValueError as exc:
                raise EstimatorInputError(str(exc)) from None
        served = resolve_service_area(self.name, obs, own["area"], own["ue_height"])
        shape, angles = derived_grid(obs, served.area, self.max_grid_points)
        return {"area": served.area,
                "grid_shape": shape if own["grid_shape"] is None else own["grid_shape"],
                "ue_height": served.ue_height,
                "num_angles": angles if own["num_angles"] is None else own["num_angles"]}

    def on_grid(self) -> bool:
        """Whether the fixes are grid points (their covariance has the cell's term)."""
        return True

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if obs.link != "uplink" or obs.ue_array.num_ant != 1:
            raise EstimatorInputError(
                f"{self.name}: needs the uplink of a single-antenna UE (link={obs.link}, "
                f"ue antennas={obs.ue_array.num_ant})")
        if obs.num_bs < 2:
            raise EstimatorInputError(
                f"{self.name}: needs at least 2 BSs (arrival angles alone), got {obs.num_bs}")
        if obs.y.shape[3] != 1 or obs.y.shape[2] != obs.bs_array.num_ant:
            raise EstimatorInputError(
                f"{self.name}: needs identity combining and one pilot beam, y is "
                f"{obs.y.shape}")
        setting = self.setting(obs)
        nx, ny = setting["grid_shape"]
        if not (nx > 0 and ny > 0 and setting["num_angles"] > 0):
            raise EstimatorInputError(
                f"{self.name}: grid_shape {setting['grid_shape']} / num_angles "
                f"{setting['num_angles']} describe an empty grid")

    def position_dimensions(self, obs: Observation) -> int:
        """2: the grid lies in the horizontal plane at the known ``ue_height``."""
        return 2

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The LOS-only horizontal position error bound (:data:`bound`) of every snapshot.

        Parameters
        ----------
        obs : an observation this estimator accepts (the paper's setting or a twin run).
        truth : one :class:`~estimators.types.ChannelTruth` per BS of ``obs``, in its
            order: every BS's LOS gain enters the bound.

        Returns
        -------
        ``Bound.position_error_bound [snapshot]`` [m], in the plane; NaN where fewer than
        two BSs see the LOS, and everywhere if ``truth`` is not one per BS (one BS's
        truth does not give the others' LOS gains). No scatterer or orientation bound.

        References
        ----------
        Fan et al., eq. (1); :mod:`estimators.daun.bound`.
        """
        self.check(obs)
        truths = [truth] if isinstance(truth, ChannelTruth) else list(truth)
        position = (los_bound(obs, truths) if len(truths) == obs.num_bs
                    else np.full(obs.num_snapshots, np.nan))
        return Bound(position_error_bound=position,
                     scatterer_error_bound=np.zeros((obs.num_snapshots, 0)))

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """Bytes of the dictionaries of eq. (2) and of the method's arrays beside them,
        keyed ``grid_shape`` and ``num_angles`` by share (and by the method's own
        hyper-parameters, :meth:`_method_bytes`).

        Per share, the larger of building the dictionaries
        (:meth:`DirectLocalizationProblem.memory_bytes`) and holding them
        (:meth:`DirectLocalizationProblem.dictionary_bytes`) with the method's arrays,
        for a chunk of :data:`CHUNK` snapshots (they are localized chunk by chunk).
        """
        setting = self.setting(obs)
        nx, ny = setting["grid_shape"]
        M, N, L = obs.num_bs, obs.bs_array.num_ant, int(setting["num_angles"])
        K = int(nx) * int(ny)
        method = self._method_bytes(M, N, K, L, min(obs.num_snapshots, CHUNK))
        terms = dict(method)
        for key, share in (("grid_shape", (K, 0)), ("num_angles", (0, L))):
            terms[key] = max(DirectLocalizationProblem.memory_bytes(M, N, *share),
                             DirectLocalizationProblem.dictionary_bytes(M, N, *share)
                             + method.get(key, 0.0))
        return terms

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        """Bytes the method adds to the dictionaries, keyed by hyper-parameter: ``M``
        BSs of ``N`` elements, ``K`` grid points, ``L`` angles, ``num_samples`` snapshots."""
        return {}

    def problem(self, obs: Observation) -> DirectLocalizationProblem:
        """The dictionaries of eq. (2) for this observation's BSs and the grid."""
        s = self.setting(obs)
        return DirectLocalizationProblem.build(
            bs_position=obs.bs_position, bs_orientation=obs.bs_orientation,
            element_positions=obs.bs_array.element_positions, wavelength=obs.wavelength,
            area=s["area"], grid_shape=tuple(s["grid_shape"]), ue_height=s["ue_height"],
            num_angles=s["num_angles"])

    def _estimate(
        self, obs: Observation, rng: np.random.Generator, on_snapshot: Callable[[int], None]
    ) -> Estimate:
        problem = self.problem(obs)
        y, noise_variance = narrowband_uplink(obs)
        reasons = [_degenerate(obs, t) for t in range(obs.num_snapshots)]
        good = np.array([not r for r in reasons], dtype=bool)
        start = time.perf_counter()
        found: dict[str, list[FloatArray]] = {}
        position = np.full((obs.num_snapshots, 3), np.nan)
        index = np.flatnonzero(good)
        for first in range(0, len(index), CHUNK):
            chunk = index[first:first + CHUNK]
            p, more = self._localize(problem, y[chunk], noise_variance[chunk], rng)
            position[chunk] = p
            for key, value in more.items():
                found.setdefault(key, []).append(np.asarray(value, dtype=np.float64))
        gathered = {k: np.concatenate(v) for k, v in found.items()}
        checks = {int(t): fix_integrity(problem, y[t], noise_variance[t], position[t],
                                   on_grid=self.on_grid()) for t in index}
        per_snapshot = (time.perf_counter() - start) / max(int(good.sum()), 1)
        results = []
        rows = np.cumsum(good) - 1
        for t in range(obs.num_snapshots):
            if good[t]:
                reason, covariance, checked = checks[t]
                diagnostics = {k: float(v[rows[t]]) for k, v in gathered.items()}
                diagnostics.update(checked)
                result = SnapshotEstimate(
                    ue_position=position[t], scatterers=np.zeros((0, 3)),
                    scatterer_valid=np.zeros(0, bool), path_tau=np.zeros(0),
                    path_aod=np.zeros((0, 2)), path_gain=np.zeros(0, np.complex128),
                    position_covariance=(None if covariance is None
                                         else position_covariance(covariance)),
                    diagnostics=diagnostics)
                if reason:
                    result = dataclasses.replace(
                        self._failed(f"{self.name}: {reason}"), diagnostics=diagnostics)
            else:
                result = self._failed(reasons[t])
            results.append((result, per_snapshot))
            on_snapshot(t + 1)
        return _stack(results)

    def localize(
        self, problem: DirectLocalizationProblem, y: npt.ArrayLike,
        noise_variance: npt.ArrayLike, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        """The method on arrays, without an :class:`Observation`: ``y [sample, bs,
        bs_ant]`` (eq. 1's narrowband uplink, pilot removed) and ``noise_variance
        [sample, bs]`` [W] on ``problem`` (from :meth:`problem`, or built for the same
        grid). Returns positions ``[sample, 3]`` [m] and diagnostics ``{name: [sample]}``.
        """
        return self._localize(problem, np.asarray(y, dtype=np.complex128),
                              np.asarray(noise_variance, dtype=np.float64), rng)

    def _estimate_snapshot(self, obs: Observation, t: int, rng: np.random.Generator
                           ) -> SnapshotEstimate:  # pragma: no cover - _estimate is batched
        raise NotImplementedError

    def _localize(
        self, problem: DirectLocalizationProblem, y: npt.NDArray[np.complex128],
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        """Positions ``[sample, 3]`` [m] and diagnostics ``{name: [sample]}`` from
        ``y [sample, bs, bs_ant]`` with noise variances ``[sample, bs]`` [W]."""
        raise NotImplementedError
