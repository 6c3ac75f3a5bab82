"""DAUN's registered estimators (Fan, Liu, Li, Huang): ``p-admm``, ``daun``, ``daun-r``.

Grid localizers (:class:`estimators.daun.grid.GridLocalizer`) of the narrowband uplink of
eq. (1), running the ADMM of :mod:`estimators.daun.admm` with fixed (P-ADMM) or trained
(DAUN, from a :mod:`estimators.daun.checkpoint`) parameters.

References
----------
W. Fan, S. Liu, C. Li, Y. Huang, "Fast Direct Localization for Millimeter Wave MIMO
Systems via Deep ADMM Unfolding", eqs. (1)–(18), Algorithm 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from estimators.base import Estimate, EstimatorInputError, register
from estimators.daun.admm import (
    AdmmParameters,
    parameters_from,
    positions,
    solve,
)
from estimators.daun.checkpoint import checkpoint_for, load_checkpoint
from estimators.daun.grid import GridLocalizer, grid_parameters
from estimators.daun.model import DirectLocalizationProblem
from estimators.types import Area, Observation
from estimators.typing import ComplexArray, FloatArray


def admm_bytes(num_bs: int, num_antennas: int, num_grid_points: int, num_angles: int,
               num_samples: int, *, refine: bool) -> dict[str, float]:
    """Bytes :class:`~estimators.daun.admm.AdmmOperators` and the iterations add to the
    dictionaries, by share: ``grid_shape`` for the ``K`` grid points, ``num_angles`` for
    the ``L`` angles (``M`` BSs of ``N`` elements, ``S`` samples).

    Per column, the larger of preparing the operators (the complex128 transformed column,
    ``16 M N``, beside its float32 copies, ``8 M N``) and running them: the float32
    copies (``8 M N``) and, per column and sample, measured (tracemalloc, live peak over 5
    to 160 samples, 16-element arrays): at most 36 bytes a BS for the grid (the planar
    iterates of a block of samples, float32; the complex128 ``X`` handed back; 26 at 160
    samples, the blocks' share spread), 48 with Algorithm 1's selection (its magnitudes
    and cluster masks); at most 40 for the angles.
    """
    M, N, S = num_bs, num_antennas, num_samples
    per_point = 48.0 if refine else 36.0
    prepare = 24.0 * M * N
    return {"grid_shape": num_grid_points * max(prepare, M * (8.0 * N + per_point * S)),
            "num_angles": num_angles * max(prepare, M * (8.0 * N + 40.0 * S))}


class _AdmmLocalizer(GridLocalizer):
    """The grid localizers that run the ADMM iteration (:mod:`estimators.daun.admm`):
    their working memory, with or without Algorithm 1's refinement (``refine``)."""

    refine: bool

    def _method_bytes(self, num_bs: int, num_antennas: int, num_grid_points: int,
                      num_angles: int, num_samples: int) -> dict[str, float]:
        return admm_bytes(num_bs, num_antennas, num_grid_points, num_angles, num_samples,
                          refine=self.refine)


@functools.lru_cache(maxsize=8)
def _trained_parameters(checkpoint: str) -> AdmmParameters:
    # Read once per checkpoint, as load_checkpoint's (a hashable value: _layers caches by it).
    return parameters_from(load_checkpoint(checkpoint)["parameters"])


@register
class PAdmm(_AdmmLocalizer):
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
        area: Area | None = None,
        grid_shape: tuple[int, int] | None = None,
        ue_height: float | None = None,
        num_angles: int | None = None,
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

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.iterations < 1 or min(self.rho, self.tau1, self.tau2, self.w) <= 0:
            raise EstimatorInputError(
                f"{self.name}: iterations must be >= 1 and rho, tau1, tau2, w > 0")

    def _localize(
        self, problem: DirectLocalizationProblem, y: ComplexArray,
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        solution = solve(problem, y, self.parameters(problem.num_bs))
        return (positions(problem, solution.X, refine=self.refine),
                {"nmse": solution.nmse})


@register
class Daun(_AdmmLocalizer):
    """DAUN: the unfolded ADMM with trained per-layer ``ρ^(i), τ1^(i), τ2^(i)`` and
    shared ``w_m`` (§III-B) from a checkpoint (``twin train daun``).

    ``checkpoint``: a shipped name (``assets/daun/``) or a path, whose recorded geometry
    (BSs, array, carrier) must be the observation's; None (the default): the shipped
    one trained for the observation's geometry
    (:func:`estimators.daun.checkpoint.checkpoint_for`). Where none is, a one-line
    :class:`EstimatorInputError` names both geometries and the commands that make one.
    The grid setting (``area``, ``grid_shape``, ``ue_height``, ``num_angles``) defaults
    to the one the checkpoint was trained on (its parameters were learned on that
    grid's dictionaries); fixes are checked as every grid localizer's.

    References
    ----------
    Fan et al., §III-B (Fig. 1), eq. (18).
    """

    name = "daun"
    refine = False  # DAUN-R: True (a class constant here, a hyper-parameter of P-ADMM)

    def __init__(
        self,
        *,
        checkpoint: str | None = None,
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

    def _preset(self, obs: Observation) -> dict[str, Any]:
        trained = grid_parameters(load_checkpoint(checkpoint_for(self.checkpoint, obs))
                                  ["setting"])
        return {key: trained[key] if value is None else value
                for key, value in super()._preset(obs).items()}

    def _estimate(self, obs: Observation, rng: np.random.Generator,
                  on_snapshot: Callable[[int], None]) -> Estimate:
        chosen = checkpoint_for(self.checkpoint, obs)
        if chosen != self.checkpoint:  # None: run as the shipped one chosen
            return self.with_params(checkpoint=chosen)._estimate(obs, rng, on_snapshot)
        return super()._estimate(obs, rng, on_snapshot)

    def parameters(self) -> AdmmParameters:
        """The trained parameters of ``checkpoint`` (set: :meth:`localize` on arrays has
        no observation to choose one by)."""
        if self.checkpoint is None:
            raise EstimatorInputError(f"{self.name}: localize() on arrays needs a "
                                      "checkpoint (estimate() chooses one by geometry)")
        return _trained_parameters(self.checkpoint)

    def _localize(
        self, problem: DirectLocalizationProblem, y: ComplexArray,
        noise_variance: FloatArray, rng: np.random.Generator,
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        solution = solve(problem, y, self.parameters())
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
    refine = True
