"""LOCMAN: joint localization and orientation by multi-dimensional atomic norm.

``locman`` (registered): the atomic norm denoiser of the virtual channel matrix
(:mod:`estimators.locman.anm`, eqs. 5-17, by ADMM or the SDP), per-path ``(τ, ω_R,
ω_T)`` from the Vandermonde decompositions (MaPP, §III-D), the model order from the
eigenvalue threshold, then the EXIP-weighted least squares for position, yaw and
scatterers (:mod:`estimators.locman.wls`, eqs. 19-21). The model is that of
:mod:`estimators.locman.model`; the bound that of :mod:`estimators.locman.bound`;
derivations in ``docs/estimators/locman.md``.

References
----------
J. Li, M. Ferreira Da Costa, U. Mitra, "Joint localization and orientation estimation in
millimeter-wave MIMO OFDM systems via atomic norm minimization", IEEE Trans. Signal
Process., 2022: virtual channel (5)-(6), denoiser (13)-(14), SDP (17), MaPP and model
order §III-D, EXIP WLS (19)-(21).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from estimators.arrays import wrap_angle
from estimators.base import (
    AUTO_GROUND_HEIGHT,
    MIN_GROUND_CLEARANCE_M,
    EstimatorInputError,
    GroundHeight,
    fixed_ground_height,
    register,
)
from estimators.locman import anm
from estimators.locman.model import (
    ChannelEstimate,
    LinkGeometry,
    LocmanSnapshot,
    order_paths,
    range_from_delay_phase,
)
from estimators.locman.wls import WlsLocalizer
from estimators.types import Area, Observation


@register
class Locman(WlsLocalizer):
    """``locman``: atomic norm channel estimation + EXIP WLS (the paper's method).

    Parameters
    ----------
    num_paths, order_threshold, los_path, ue_height, area, max_iterations, bs, los_margin_db
        As :class:`estimators.locman.wls.WlsLocalizer`.
    solver : ``"admm"`` (:func:`anm.solve_admm`) or ``"sdp"`` (:func:`anm.solve_sdp`,
        cvxpy/SCS, small sizes only); both solve eq. (13) through eq. (17).
    admm_tolerance : the ADMM's relative stopping residual (measured on the paper
        setting at 0 dB, 3 trials: 1e-3 gives the positions of 1e-5 to 0.2 mm with ~1/5
        of the iterations).
    admm_max_iterations : the ADMM's iteration cap.
    mu_scale : multiplies the regularization ``μ`` of Prop. 3 (eq. 14); 1 = the paper's.
    formulation : the matrix whose atomic norm the denoiser takes
        (:data:`anm.Formulation`): ``"hankel"``, the paper's block-Hankel virtual channel
        (eqs. 5-6), or ``"decoupled"``, the channel as a ``[subcarrier, rx_ant tx_ant]``
        matrix (``Θ`` of order ``K + Nr Nt`` instead of ``L1 Nr + L2 Nt``: 96 against 392
        at 64 subcarriers, BS 1x8, UE 1x4; the paths' parameters then come from the
        paper's MaPP on the virtual channel of the denoised channel). The default: ~90x
        faster at that size; as accurate on the paper's setting, position RMSE 1.24x the
        paper formulation's (+-0.30, 3 sigma, 16 trials) at that size
        (``python -m scripts.locman.bench_drive``, docs/estimators/locman.md "Speed").
    ground_height : [m] the height of a horizontal ground (outside the paper): the fix
        of eq. (19) is refit to the received pilots with the LOS's ground bounce
        modelled (:func:`estimators.locman.wls.refine_with_ground`; a BS on a mast sees
        it inside one range cell behind the LOS, which it otherwise biases), where the
        UE and the BS are both at least ``MIN_GROUND_CLEARANCE_M`` = 0.5 m above it.
        The refit estimates the ground's height too, from this one (a terrain mesh cm
        off biases each ground bounce's length by about twice that), and keeps the
        estimate where the data reject this one (a Wald test at 99 %,
        ``GROUND_HEIGHT_CHI2``) within ``MIN_GROUND_CLEARANCE_M`` of it, else this
        one. None: no ground (the paper's model). ``"auto"`` (default): the
        observation's ground (:func:`estimators.base.resolve_ground_height`: the twin's
        scene under the drive), else 0 m.
    """

    name = "locman"
    auto_parameters = AUTO_GROUND_HEIGHT
    #: ``bs="auto"`` keeps the passing fix of least reported error over every BS (on the
    #: bench's ue_array drives, every BS sounded at the same SNR, the first BS's fix was
    #: 0.06-0.65 m off at 4 of 12 snapshots where another BS's was 2-8 mm:
    #: docs/estimators/locman.md "On real drives"). It costs a channel stage per BS.
    least_error_bs = True

    def __init__(
        self,
        *,
        num_paths: int | Literal["auto"] = "auto",
        order_threshold: float | None = None,
        los_path: Literal["auto", "strongest", "earliest"] = "auto",
        ue_height: float | None = None,
        area: Area | None = None,
        max_iterations: int = 200,
        bs: int | Literal["auto"] = "auto",
        los_margin_db: float = 6.0,
        solver: Literal["admm", "sdp"] = "admm",
        admm_tolerance: float = 1e-3,
        admm_max_iterations: int = 3000,
        mu_scale: float = 1.0,
        ground_height: GroundHeight = "auto",
        formulation: anm.Formulation = "decoupled",
    ) -> None:
        super().__init__(num_paths=num_paths, order_threshold=order_threshold,
                         los_path=los_path, ue_height=ue_height, area=area,
                         max_iterations=max_iterations, bs=bs,
                         los_margin_db=los_margin_db)
        self.solver = solver
        self.admm_tolerance = admm_tolerance
        self.admm_max_iterations = admm_max_iterations
        self.mu_scale = mu_scale
        self.ground_height = ground_height
        self.formulation = formulation

    def _ground_height(self, geometry: LinkGeometry) -> float | None:
        """``ground_height`` where the UE and the BS are both at least
        :data:`MIN_GROUND_CLEARANCE_M` above it, else None (no ground bounce)."""
        h = fixed_ground_height(self.ground_height)
        if h is None or min(geometry.ue_height, float(geometry.bs_position[2])) - h < \
                MIN_GROUND_CLEARANCE_M:
            return None
        return float(h)

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.solver not in ("admm", "sdp"):
            raise EstimatorInputError(f"{self.name}: solver must be 'admm' or 'sdp'")
        if self.formulation not in anm.FORMULATIONS:
            raise EstimatorInputError(
                f"{self.name}: formulation must be one of {anm.FORMULATIONS}")
        if self.admm_max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: admm_max_iterations={self.admm_max_iterations} must be >= 1")

    def _channel_bytes(self, num_subcarriers: int, num_rx: int, num_tx: int,
                       num_beams: int) -> dict[str, float]:
        # The lifted matrices' size is the observation's (K, Nr, Nt); the solver is the
        # one setting that changes what they cost. The model order is at most
        # min(L1, L2) (channel_parameters), whatever num_paths.
        bytes_of = anm.sdp_memory_bytes if self.solver == "sdp" else anm.admm_memory_bytes
        return {"solver": bytes_of(num_subcarriers, num_rx, num_tx,
                                   formulation=self.formulation)}

    def _max_order(self, num_subcarriers: int) -> int:
        return min(self.max_paths, *anm.hankel_sizes(num_subcarriers))

    def denoise(self, snap: LocmanSnapshot) -> anm.AnmSolution:
        """The atomic norm denoiser (eq. 13) with ``μ`` of Prop. 3 (eq. 14)."""
        problem = anm.AnmProblem(
            y=snap.y, x=snap.x,
            mu=self.mu_scale * anm.regularization(snap.noise_variance, snap.x, snap.rx.size))
        if self.solver == "sdp":
            return anm.solve_sdp(problem, formulation=self.formulation)
        return anm.solve_admm(problem, tolerance=self.admm_tolerance,
                              max_iterations=self.admm_max_iterations,
                              formulation=self.formulation)

    def channel_parameters(self, snap: LocmanSnapshot) -> ChannelEstimate:
        solution = self.denoise(snap)
        K = solution.H.shape[0]
        limit = min(self.max_paths, *anm.hankel_sizes(K))
        threshold = self.threshold
        order = limit if threshold is None else anm.solution_order(solution, threshold, limit)
        paths = anm.decompose(solution, order)
        params = np.column_stack([
            range_from_delay_phase(paths.delay_phase, snap.spacing_hz),
            wrap_angle(paths.rx_phase),
            # H[k] = Σ g z^k a_R(ω_R) a_T(ω_T)^T = Σ g z^k a_R(ω_R) a_T(-ω_T)^H.
            wrap_angle(-paths.tx_phase),
        ])
        return order_paths(snap, params, self.los_path, {
            "solver_iterations": float(solution.iterations),
            "solver_converged": float(solution.converged)})

