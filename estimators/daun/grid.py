"""The grid of the paper's eq. (2) and the base of every localizer that searches it:
DAUN's own (:mod:`estimators.daun.estimators`) and the paper's baselines
(:mod:`estimators.daun.baselines`), which thus do not depend on the proposed method.

All of them see the narrowband uplink of eq. (1): a single-antenna user, ``M`` BSs with
identity combining (``Observation.y [snapshot, bs, bs_ant, 1, subcarrier]``; the
subcarrier nearest the carrier is used), and localize on the grid of eq. (2) over a
rectangular ``area`` at the user's known height: their positions live in the horizontal
plane.

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eqs. (1)–(2), §IV.
"""

from __future__ import annotations

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
)
from estimators.daun.bound import LOS_BOUND, los_bound
from estimators.daun.model import DirectLocalizationProblem, narrowband_uplink
from estimators.types import Area, ChannelTruth, Observation, Truth, check_area
from estimators.typing import FloatArray

#: The paper's §IV grid: 40 x 40 m, K = 30 x 30, L = 100 (the grid localizers' defaults).
PAPER_AREA: Area = ((-20.0, -20.0), (20.0, 20.0))
PAPER_GRID_SHAPE = (30, 30)
PAPER_NUM_ANGLES = 100


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

    Hyper-parameters (the paper's §IV setting by default): ``area`` ``((x_min, y_min),
    (x_max, y_max))`` [m] (:data:`estimators.types.Area`), ``grid_shape`` ``(nx, ny)``
    (``K = nx ny``), ``ue_height`` [m], ``num_angles`` ``L``.

    Every estimator of the paper, baselines included, returns the same bound
    (:meth:`crlb`, :mod:`estimators.daun.bound`).
    """

    paper: ClassVar[str] = "daun"
    bound: ClassVar[str] = LOS_BOUND
    sounding: ClassVar[Mapping[str, Any]] = {
        "link": "uplink", "precoder": "identity", "combiner": "identity", "pilots": "ones"}

    def __init__(
        self,
        *,
        area: Area | None = PAPER_AREA,
        grid_shape: tuple[int, int] | None = PAPER_GRID_SHAPE,
        ue_height: float | None = 0.0,
        num_angles: int | None = PAPER_NUM_ANGLES,
    ) -> None:
        self.area = area
        self.grid_shape = grid_shape
        self.ue_height = ue_height
        self.num_angles = num_angles

    def setting(self) -> dict[str, Any]:
        """The resolved ``area``, ``grid_shape``, ``ue_height``, ``num_angles``."""
        return {"area": self.area, "grid_shape": self.grid_shape,
                "ue_height": self.ue_height, "num_angles": self.num_angles}

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
        setting = self.setting()
        try:
            check_area(setting["area"], f"{self.name}: area")
        except ValueError as exc:
            raise EstimatorInputError(str(exc)) from None
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
        hyper-parameters, :meth:`_method_bytes`), for all the observation's snapshots at
        once (they are localized as one batch).

        Per share, the larger of building the dictionaries
        (:meth:`DirectLocalizationProblem.memory_bytes`) and holding them
        (:meth:`DirectLocalizationProblem.dictionary_bytes`) with the method's arrays.
        """
        setting = self.setting()
        nx, ny = setting["grid_shape"]
        M, N, L = obs.num_bs, obs.bs_array.num_ant, int(setting["num_angles"])
        K = int(nx) * int(ny)
        method = self._method_bytes(M, N, K, L, obs.num_snapshots)
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
        s = self.setting()
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
        found: dict[str, FloatArray] = {}
        position = np.full((obs.num_snapshots, 3), np.nan)
        if good.any():
            p, found = self._localize(problem, y[good], noise_variance[good], rng)
            position[good] = p
        per_snapshot = (time.perf_counter() - start) / max(int(good.sum()), 1)
        results = []
        rows = np.cumsum(good) - 1
        for t in range(obs.num_snapshots):
            if good[t]:
                result = SnapshotEstimate(
                    ue_position=position[t], scatterers=np.zeros((0, 3)),
                    scatterer_valid=np.zeros(0, bool), path_tau=np.zeros(0),
                    path_aod=np.zeros((0, 2)), path_gain=np.zeros(0, np.complex128),
                    diagnostics={k: float(v[rows[t]]) for k, v in found.items()})
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
