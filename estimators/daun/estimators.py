"""Direct localization on a position grid (Fan, Liu, Li, Huang): ``p-admm``, ``daun``,
``daun-r``, and the base class of the paper's baselines (:mod:`estimators.daun.baselines`).

All of them see the narrowband uplink of eq. (1): a single-antenna user, ``M`` BSs with
identity combining (``Observation.y [snapshot, bs, bs_ant, 1, subcarrier]``; the
subcarrier nearest the carrier is used), and localize on the grid of eq. (2) over a
rectangular ``area`` at the user's known height.

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eqs. (1)–(18), Algorithm 1.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from estimators.base import (
    Estimate,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    _degenerate,
    _stack,
    register,
)
from estimators.daun.admm import (
    AdmmParameters,
    TorchProblem,
    parameters_from,
    positions,
)
from estimators.daun.model import DirectLocalizationProblem, narrowband_uplink
from estimators.types import Observation
from estimators.typing import FloatArray

Area = tuple[tuple[float, float], tuple[float, float]]

#: Trained checkpoints shipped with the package (``checkpoint="street"`` etc.).
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "daun"
CHECKPOINT_FORMAT = "daun-checkpoint/1"
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

    Hyper-parameters (the paper's §IV setting by default): ``area`` ``[[x0, y0], [x1,
    y1]]`` [m], ``grid_shape`` ``(nx, ny)`` (``K = nx ny``), ``ue_height`` [m],
    ``num_angles`` ``L``.
    """

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
        (x0, y0), (x1, y1) = setting["area"]
        nx, ny = setting["grid_shape"]
        if not (x1 > x0 and y1 > y0 and nx > 0 and ny > 0 and setting["num_angles"] > 0):
            raise EstimatorInputError(
                f"{self.name}: area {setting['area']} / grid_shape {setting['grid_shape']} / "
                f"num_angles {setting['num_angles']} describe an empty grid")

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


def admm_bytes(num_bs: int, num_antennas: int, num_grid_points: int, num_angles: int,
               num_samples: int, *, refine: bool) -> dict[str, float]:
    """Bytes :class:`~estimators.daun.admm.TorchProblem` and the iterations add to the
    dictionaries, by share: ``grid_shape`` for the ``K`` grid points, ``num_angles`` for
    the ``L`` angles (``M`` BSs of ``N`` elements, ``S`` samples).

    Per column: the complex64 dictionary and its conjugate (``16 M N``). Per column and
    sample, measured (live peak over 5 to 160 samples): 36 bytes a BS for the grid (the
    iterate, its gradient step and the shrinkage's temporaries, complex64 and float32;
    the complex128 ``X`` handed back), 48 with Algorithm 1's selection (its magnitudes
    and cluster masks); 40 for the angles.
    """
    M, N, S = num_bs, num_antennas, num_samples
    per_point = 48.0 if refine else 36.0
    return {"grid_shape": num_grid_points * M * (16.0 * N + per_point * S),
            "num_angles": num_angles * M * (16.0 * N + 40.0 * S)}


@register
class PAdmm(GridLocalizer):
    """P-ADMM: eqs. (5)–(17) with fixed ``ρ, τ1, τ2, w`` (the paper's ρ = 5, τ1 = τ2 = 0.5,
    w_m = 1) for ``iterations`` iterations from zero; the position is ``Φ_k̂``, ``k̂ =
    argmax_k ‖[X]_{k,:}‖₂``, or Algorithm 1's with ``refine``.

    ``iterations`` is an early stop: problem (3) is equality-constrained, so the converged
    solution fits the noise too (measured in docs/estimators/daun.md).

    References
    ----------
    Fan et al., eqs. (3)–(17).
    """

    name = "p-admm"

    def __init__(
        self,
        *,
        iterations: int = 10,
        rho: float = 5.0,
        tau1: float = 0.5,
        tau2: float = 0.5,
        w: float = 1.0,
        refine: bool = False,
        area: Area = PAPER_AREA,
        grid_shape: tuple[int, int] = PAPER_GRID_SHAPE,
        ue_height: float = 0.0,
        num_angles: int = PAPER_NUM_ANGLES,
    ) -> None:
        super().__init__(area=area, grid_shape=grid_shape, ue_height=ue_height,
                         num_angles=num_angles)
        self.iterations = iterations
        self.rho = rho
        self.tau1 = tau1
        self.tau2 = tau2
        self.w = w
        self.refine = refine

    def parameters(self, num_bs: int) -> AdmmParameters:
        return AdmmParameters.fixed(self.iterations, num_bs, rho=self.rho, tau1=self.tau1,
                                    tau2=self.tau2, w=self.w)

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        return admm_bytes(num_bs, num_antennas, num_grid_points, num_angles, num_samples,
                          refine=self.refine)

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.iterations < 1 or min(self.rho, self.tau1, self.tau2, self.w) <= 0:
            raise EstimatorInputError(
                f"{self.name}: iterations must be >= 1 and rho, tau1, tau2, w > 0")

    def _localize(
        self, problem: DirectLocalizationProblem, y: npt.NDArray[np.complex128],
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        solution = TorchProblem(problem).solve(y, self.parameters(problem.num_bs))
        return (positions(problem, solution.X, refine=self.refine),
                {"nmse": solution.nmse})


@functools.lru_cache(maxsize=8)
def load_checkpoint(checkpoint: str) -> dict[str, Any]:
    """A DAUN checkpoint: a shipped name (``assets/daun/NAME.pt``) or a path."""
    import torch

    path = Path(checkpoint)
    if not path.suffix:
        path = CHECKPOINTS_DIR / f"{checkpoint}.pt"
    if not path.is_file():
        shipped = sorted(p.stem for p in CHECKPOINTS_DIR.glob("*.pt"))
        raise EstimatorInputError(
            f"daun: checkpoint '{checkpoint}' not found (shipped: {', '.join(shipped)})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: one line, no traceback
        raise EstimatorInputError(f"daun: checkpoint '{path}' is not readable ({exc})"
                                  ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise EstimatorInputError(f"daun: '{path}' is not a {CHECKPOINT_FORMAT} file")
    return data


@register
class Daun(GridLocalizer):
    """DAUN: the unfolded ADMM with trained per-layer ``ρ^(i), τ1^(i), τ2^(i)`` and
    shared ``w_m`` (§III-B) from a checkpoint (``twin train daun``). The grid setting
    (``area``, ``grid_shape``, ``ue_height``, ``num_angles``) defaults to the one the
    checkpoint was trained on.

    References
    ----------
    Fan et al., §III-B (Fig. 1), eq. (18).
    """

    name = "daun"
    refine: ClassVar[bool] = False

    def __init__(
        self,
        *,
        checkpoint: str = "street",
        min_los_bs: int = 3,
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
    ) -> None:
        super().__init__(area=area, grid_shape=grid_shape, ue_height=ue_height,
                         num_angles=num_angles)
        self.checkpoint = checkpoint
        self.min_los_bs = min_los_bs

    def setting(self) -> dict[str, Any]:
        trained = load_checkpoint(self.checkpoint)["setting"]
        return {key: trained[key] if value is None else value
                for key, value in super().setting().items()}

    def parameters(self) -> AdmmParameters:
        return parameters_from(load_checkpoint(self.checkpoint)["parameters"])

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        return admm_bytes(num_bs, num_antennas, num_grid_points, num_angles, num_samples,
                          refine=self.refine)

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        trained = len(self.parameters().w)
        if trained != obs.num_bs:
            raise EstimatorInputError(
                f"{self.name}: checkpoint '{self.checkpoint}' was trained for {trained} BSs, "
                f"the observation has {obs.num_bs}")

    def _localize(
        self, problem: DirectLocalizationProblem, y: npt.NDArray[np.complex128],
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        solution = TorchProblem(problem).solve(y, self.parameters())
        return (positions(problem, solution.X, refine=self.refine,
                          min_los_bs=self.min_los_bs), {"nmse": solution.nmse})


@register
class DaunR(Daun):
    """DAUN with the position refinement of Algorithm 1 (DAUN-R).

    References
    ----------
    Fan et al., §III-C, Algorithm 1.
    """

    name = "daun-r"
    refine: ClassVar[bool] = True
