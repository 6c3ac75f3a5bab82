"""SLAB's registered estimators: Algorithm 1 on an :class:`~estimators.types.Observation`.

Names (Zhou, Liu, Lau 2019, §VII): ``slab`` (SLLS LCE + SLAB's BFR), ``slab-lce`` (SLLS,
the initial random BF throughout), ``gd-lce`` and ``ls-lce`` (the LCE baselines, random
BF), ``gd-bfr`` and ``lmi-bfr`` (SLLS + the BFR baselines).

**Closed loop.** SLAB picks the BF vectors of the next slot from its own estimate, so it
cannot run on pre-recorded pilots: each class asks for ``closed_loop`` in its
``sounding`` and observes every slot through ``Observation.sounder``, BS ``j`` sending its
``M`` BF vectors on its own subcarriers ``Θ_j = {j, j + J, ...}`` (0-based here) and
nothing elsewhere; the pilots are divided out (SLAB's BF vectors include them).

**Slots and snapshots.** Slot ``k`` is snapshot ``k`` of the observation. The paper's
slots share one geometry (fresh fading only), as the synthetic
:meth:`~estimators.slab.scenario.SlabScenario.observation` does. Along a twin drive the UE
moves between snapshots, so snapshots are grouped in windows of ``window`` snapshots
within which the geometry is taken as fixed: the loop (LCE, fusion, BFR) runs over a
window, and the next window starts its LCE at the last fused estimate; its first slot
is sounded with the initial random beams ``w[1]`` (the BFR's beams are for the last
window's geometry; ``carry_beams=True``: with the last BFR's beams). With
``reacquire`` (default) that first LCE also re-draws the scatterers from the new
window's data at the UE it finds and keeps the better fit
(:func:`~estimators.slab.lce_init.track`, :func:`~estimators.slab.lce_init.prefer`): a
reflection point slides along its
wall as the UE moves, and a scatterer estimate once in another basin of (24) is
otherwise never found again. With ``rescan`` (default) the window's multi-start runs
too, and its fix replaces the tracked one where it ranks better
(:func:`~estimators.slab.lce_init.prefer`: the UE inside the area, then the lower cost
(24) beyond the noise's spread, then the scatterers inside their region):
after a gap the UE can be tens of metres on, outside the tracker's basin, which then
converged there with a small covariance (issue 22's confident wild fixes on the street
and in Munich). ``window=None``: one window, the paper's static setting; ``window=1``
(the default: a drive moves): every snapshot on
its own (no fusion over positions the UE has left).

**Mapping to the model** (:mod:`estimators.slab.model`): the plane is the world's
``(x, y)``; BS ``j``'s pose is ``bs_position[j, :2]`` and its yaw; arrays must be ``1 x
N`` ULAs (broadside = the device's yaw, as the model's); one wavelength (the
observation's carrier: no beam squint); subcarrier frequencies are the observation's;
``σ²`` is the mean of the BSs' noise variances of the snapshot; ``Σ`` is estimated from
the channel estimates (the paper assumes it known; the twin does not know it). The
paper's channel ``a_U a_B^H`` (eq. 1) is the physical ``a_U a_B^T`` with the BS elements
numbered backwards, so the model's BF vector element ``t`` goes to BS antenna
``N_B - 1 - t``. The UE height is not estimated (the estimate's ``z`` is the UE height
hypothesis), so every SLAB estimator's positions are 2-D
(:meth:`~estimators.base.Estimator.position_dimensions`).

**Geometry from the observation** (issue 22): ``num_bs=None`` takes every observed BS;
the subcarriers used are the largest multiple of ``J`` (the highest ``K mod J``
dropped: diagnostic ``subcarriers_dropped``); ``area``/``ue_height`` ``None`` take the
observation's service area (:func:`~estimators.base.resolve_service_area`), the UE's
prior; the scatterers may be anywhere in the bounding box of the area and the BSs grown
by ``scatterer_margin_m``. The BSs' known heights above the UE hypothesis enter the model
(:func:`~estimators.slab.model.slant`: image method, vertical walls), and with
``ground_height`` one ground bounce per BS, its geometry pinned by ``x``.

**Covariance and integrity.** Each fix's ``position_covariance`` is the UE block of
``Λ[k]^{-1}`` (the fused precision, eqs. 26-27: the inverse instantaneous FIM at the
estimates), times the a-posteriori variance factor ``max(1, F / (σ² (N - J P - A/2)))``
(``F`` the LCE residual (24), ``N`` complex samples, ``J P`` gains, ``A`` location
parameters; the largest over the window's slots so far; diagnostic ``residual_ratio``),
plus the spread of the competing fits (multi-start candidates, tracker) whose cost (24)
lies within the position's 99 % likelihood region of the fix
(:func:`~estimators.slab.lce_init.position_spread`; diagnostic ``spread_m``, the square
root of its trace): a multimodality the data cannot resolve, which the FIM at the fix
does not see.
A fix outside the service area, without a covariance (a singular FIM: a path the data do
not determine), with ``residual_ratio > max_residual_ratio``, or at which a BS's fitted
LOS (with its ground bounce) is more than ``los_margin_db`` below free space at its
length (where that is known, ``Observation.free_space_known``:
:func:`_los_free_space_db`; diagnostics
``los_free_space_db``, the weakest, and ``bs_with_los``; ``min_bs_with_los``) is
``converged=False`` with the reason, and the next window restarts from the
multi-start. The last is the model's own premise, the LOS of every BS: where one is
blocked, the LOS + ``L`` model takes a reflection, or a sidelobe of another path, for
it, and the data can favour a fix tens of metres off (issue 22's held-out city: the
fixes 75-126 m off, reported with sub-metre covariances, had a BS's LOS 14-43 dB below
free space; the weakest BS's of the fixes within 3 m of the truth, -5.1 to +3.0 dB).
The variance factor scales the noise, not a model bias: on street runs with more wall
bounces than ``L`` the covariance under-covers (docs/estimators/slab.md, "On real
drives").

**Bound** (:meth:`_Slab.crlb`, the same for all six, so they are compared to one bound):
the long-term CRLB of Lemma 1 (eq. 20) of one slot, sounded with the observation's
open-loop random precoders (the initial random BF ``w[1]`` of every variant, BS ``j`` on
``Θ_j``), at the truth's geometry with ``Σ = diag(|h_{l,j}|²)`` the truth's path powers
of the snapshot (the twin's paths have deterministic powers; on the paper's Rayleigh
fading this is one draw of them). BFR's beams lower the bound of later slots, and
fusion over slots accumulates information, so ``slab``, ``gd-bfr``, ``lmi-bfr`` and the
fused estimates of every variant can lie below it. NaN where the truth (one
``ChannelTruth`` per BS) lacks a BS, its LOS or ``L`` single-bounce paths
(:func:`~estimators.slab.bound.truth_paths`), or the FIM is singular.

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: Algorithm 1, §VII.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from estimators.arrays import free_space_ratio_db
from estimators.base import (
    AUTO_GROUND_HEIGHT,
    MIN_GROUND_CLEARANCE_M,
    Bound,
    Estimate,
    Estimator,
    EstimatorInputError,
    GroundHeight,
    SnapshotEstimate,
    _degenerate,
    _stack,
    estimate_bytes,
    fixed_ground_height,
    position_covariance,
    register,
    resolve_service_area,
)
from estimators.slab.bound import SlabFisher, TruthPaths, long_term_bound, truth_paths
from estimators.slab.lce import STEP_SIGMAS, LceResult, residual_dof
from estimators.slab.loop import BfrMethod, LceMethod, SlabRun, run_slab
from estimators.slab.model import SlabSystem, random_beamformers, slant, subcarrier_indices
from estimators.types import (
    LINEAR_LAYOUT_REL,
    Area,
    ArrayGeometry,
    Observation,
    ServiceArea,
    Truth,
    bs_truth,
    in_area,
)
from estimators.typing import ComplexArray, FloatArray


def _ula_spacing(array: ArrayGeometry, what: str) -> float:
    """Element spacing [m] of a ``1 x N`` ULA along the local y axis (signed: negative
    if its elements are numbered towards -y)."""
    layout = array.linear_layout()
    if layout is None or abs(abs(layout.axis[1]) - 1.0) > LINEAR_LAYOUT_REL:
        raise EstimatorInputError(f"{what}: needs a 1 x N ULA of >= 2 antennas along the "
                                  f"local y axis, got {array.rows}x{array.cols} "
                                  f"{array.polarization}")
    return float(layout.spacing * np.sign(layout.axis[1]))


def _residual_ratio(run: SlabRun, k: int, noise_variance: float, ue_antennas: int) -> float:
    """Slot ``k``'s LCE residual ``F`` (24) over the noise power it should leave,
    ``σ² (N - J P - A/2)`` (``N = J N_U M K'`` complex samples, ``J P`` complex gains and
    ``A`` real location parameters fitted): ≈ 1 where the model explains the data."""
    J, P = run.channel_estimates.shape[1:]
    _, _, beams, per_bs = run.beamformers[k].shape
    dof = residual_dof(J * ue_antennas * beams * per_bs, J * P, run.fused.shape[1])
    return float(run.lce_results[k].cost / (noise_variance * dof))


def _los_free_space_db(result: LceResult, *, bs_position: FloatArray,
                       height_offset: FloatArray, ground: bool, amplitude: float,
                       wavelength: float) -> FloatArray:
    """``[bs]`` [dB] each BS's LOS at the LCE ``result`` against free space at the LOS's
    length (:func:`~estimators.arrays.free_space_ratio_db`; 0 dB: Friis, isotropic
    elements).

    The amplitude is the fitted LOS gain ``|ĥ_{0,j}|`` (30) plus, with ``ground`` (the
    ground bounce modelled: the last path), ``|ĥ_{g,j}|``: the bounce is a fraction of a
    metre longer than the LOS at street ranges, their columns nearly collinear, and the
    fit splits one power between the two gains. Where it splits them, the sum does not
    fade with the pair's coherent sum (the two-ray fade, by the ground's reflection
    coefficient); where the split is ill-determined it is at least that coherent sum
    and can be more, which lets a weak LOS pass rather than refuse a present one.
    (LOCMAN's single-link fit splits the pair less stably:
    :func:`estimators.locman.wls.los_free_space_db` takes their joint signal.) Times
    ``√(N_B N_U)``: the model's gain is the physical one over the array's (§II-B).
    """
    bs_position = np.asarray(bs_position, dtype=np.float64)
    horizontal = np.linalg.norm(result.ue_position[None] - bs_position[:, :2], axis=1)
    length, _ = slant(horizontal, height_offset)
    gains = np.abs(result.gains)
    los = gains[:, 0] + (gains[:, -1] if ground else 0.0)
    return free_space_ratio_db(amplitude * los, length, wavelength)


def _position_covariance(precision: FloatArray, inflation: float,
                         spread: FloatArray | None = None) -> FloatArray | None:
    """The UE block [m²] of ``Λ[k]^{-1}`` (the fused precision, eqs. 26-27: the inverse
    FIM at the estimates), times ``inflation``, plus ``spread`` ``[2, 2]`` [m²] (the
    competing fits the data cannot tell apart,
    :func:`~estimators.slab.lce_init.position_spread`); ``None`` where ``Λ`` is
    singular."""
    lam = np.asarray(precision, dtype=np.float64)
    if not np.all(np.isfinite(lam)) or not np.any(lam):
        return None
    scale = 1.0 / np.sqrt(np.clip(np.diag(lam), 1e-300, None))
    try:
        inverse = scale[:, None] * np.linalg.inv(lam * scale[:, None] * scale[None, :]) \
            * scale[None, :]
    except np.linalg.LinAlgError:
        return None
    block = inverse[:2, :2] * inflation
    if spread is not None:
        block = block + spread
    if not np.all(np.isfinite(block)) or np.any(np.diag(block) <= 0):
        return None
    return position_covariance(block)


class _Slab(Estimator):
    """Algorithm 1 with an LCE and a BFR method (class attributes ``lce``, ``bfr``).

    Hyper-parameters (keyword-only; ``None`` = from the observation)
    ----------------------------------------------------------------
    num_bs : ``J``, the first ``J`` BSs of the observation; ``None``: all of them.
    num_nlos : ``L``, scatterers (single-bounce paths) per BS.
    window : snapshots per window of fixed geometry (module docstring); ``1`` (default):
        every snapshot on its own, as along a drive; ``None``: one window, the paper's
        static setting (the UE does not move between snapshots).
    area : ``((x_min, y_min), (x_max, y_max))`` [m], where the UE is (the multi-start's
        prior; a fix outside it is not converged); ``None``: the observation's service
        area (:func:`~estimators.base.resolve_service_area`).
    ue_height : the UE height hypothesis [m] (the estimate's ``z``, and the BSs' heights
        above it enter the model: :mod:`estimators.slab.model`); ``None``: the service
        area's.
    scatterer_margin_m : [m] the scatterers may be anywhere in the bounding box of
        ``area`` and the BSs grown by this (walls that reflect into the area stand
        outside it).
    max_iterations, step_tolerance, step_sigmas : of the LCE (``None``:
        ``default_iterations``; :func:`~estimators.slab.lce.slls`: it stops where its
        Gauss-Newton step is shorter than ``step_sigmas`` standard deviations of the
        estimate).
    reacquire : re-draw the scatterers at each new window (module docstring).
    rescan : with ``reacquire``, each new window also runs the multi-start, whose fix
        replaces the tracked one where it is better (the UE inside the area, then the
        lower cost (24)): between windows the UE may have moved out of the tracker's
        basin.
    carry_beams : sound a new window's first slot with the previous window's last BFR
        beams; ``False`` (default): with the initial random beams ``w[1]``, as the
        paper's slot 1. The BFR designs beams for the estimated geometry, and a new
        window is a new geometry: beams for where the UE was, tens of metres back,
        starved the new window's data and gave confident wild fixes (issue 22).
    ground_height : [m] the ground's height: each BS gets a ground-bounce path (the LOS's
        directions, the BS's image in the ground; its gain free), where the UE height
        hypothesis is at least ``MIN_GROUND_CLEARANCE_M`` above it; ``None``: no ground
        bounce, the paper's model; ``"auto"`` (default): the observation's ground
        (:func:`estimators.base.resolve_ground_height`: the twin's scene under the
        drive), else 0 m.
    max_residual_ratio : a snapshot whose LCE residual is more than this many times the
        noise power it should leave is reported ``converged=False`` (the model cannot
        explain the observation).
    los_margin_db : [dB] how far below free space at its length a BS's fitted LOS (with
        its ground bounce) may be and still count as a LOS (where that amplitude is known:
        ``Observation.free_space_known``; :func:`_los_free_space_db`).
    min_bs_with_los : a fix on whose LOS fewer BSs agree is reported ``converged=False``;
        ``None`` (default): every BS, the paper's model (and its bound's: NaN where the
        truth lacks a BS's LOS). A BS's LOS alone fixes ``x`` and ``ϑ``; where another
        BS's "LOS" is a reflection (its LOS blocked) or a sidelobe of one, the fix lands
        anywhere with a small covariance. With ``2`` on issue 22's held-out city
        (``scripts.slab.drives --drives etoile``), ``slab-lce`` at 0 dB kept a fix 126 m
        off (its covariance 0.9 m) on which two BSs' apparent LOS agreed.
    """

    paper: ClassVar[str] = "slab"
    bound: ClassVar[str] = (
        "long-term CRLB (Zhou et al. Lemma 1, eq. 20; FIM eqs. 38, 55) of one slot "
        "sounded with the observation's random precoders, Σ = the truth's path powers: "
        "UE position (plane), yaw, scatterers")
    lce: ClassVar[LceMethod] = "slls"
    bfr: ClassVar[BfrMethod] = "slab"
    auto_parameters = AUTO_GROUND_HEIGHT
    #: LCE iterations per slot where ``max_iterations`` is None. SLLS converges in ~5; the
    #: gradient baselines do not reach ``step_tolerance`` in 3000 on the paper setting
    #: (weakly determined scatterer coordinates), so theirs is a budget, and most of their
    #: snapshots come back ``converged=False``: (24)'s curvature spans ~2e4 (street drive,
    #: issue 22), steepest descent gains ~1/κ a step (docs/estimators/slab.md).
    default_iterations: ClassVar[int] = 50
    #: ``J`` of :attr:`num_scatterers` before an observation is seen (``num_bs=None``):
    #: the paper's three BSs; an estimate reports ``num_nlos`` x its observation's BSs.
    paper_num_bs: ClassVar[int] = 3
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "random",
                                          "num_beams": 20, "pilots": "ones",
                                          "closed_loop": True}

    def __init__(
        self,
        *,
        num_bs: int | None = None,
        num_nlos: int = 1,
        window: int | None = 1,
        area: Area | None = None,
        ue_height: float | None = None,
        scatterer_margin_m: float = 30.0,
        max_iterations: int | None = None,
        step_tolerance: float = 1e-7,
        step_sigmas: float = STEP_SIGMAS,
        reacquire: bool = True,
        rescan: bool = True,
        carry_beams: bool = False,
        ground_height: GroundHeight = "auto",
        max_residual_ratio: float = 30.0,
        los_margin_db: float = 6.0,
        min_bs_with_los: int | None = None,
    ) -> None:
        self.num_bs = num_bs
        self.num_nlos = num_nlos
        self.window = window
        self.area = area
        self.ue_height = ue_height
        self.scatterer_margin_m = scatterer_margin_m
        self.max_iterations = max_iterations
        self.step_tolerance = step_tolerance
        self.step_sigmas = step_sigmas
        self.reacquire = reacquire
        self.rescan = rescan
        self.carry_beams = carry_beams
        self.ground_height = ground_height
        self.max_residual_ratio = max_residual_ratio
        self.los_margin_db = los_margin_db
        self.min_bs_with_los = min_bs_with_los

    @property
    def num_scatterers(self) -> int:
        """``J L``; with ``num_bs=None`` the paper's ``J`` (:attr:`paper_num_bs`): an
        estimate on an observation reports ``L`` per observed BS."""
        return (self.num_bs if self.num_bs is not None else self.paper_num_bs) * self.num_nlos

    def _resolved(self, obs: Observation) -> Self:
        """This estimator with ``num_bs`` from ``obs`` where it is ``None``, and its
        ``"auto"`` hyper-parameters resolved (:meth:`Estimator._resolved`)."""
        resolved = super()._resolved(obs)
        return resolved if resolved.num_bs is not None \
            else resolved.with_params(num_bs=obs.num_bs)

    def _num_bs(self) -> int:
        assert self.num_bs is not None  # _resolved
        return self.num_bs

    def position_dimensions(self, obs: Observation) -> int:
        """2: the model is planar (§II-B; the heights enter only as the known BS heights
        above the UE height hypothesis), the UE height is not estimated nor scored."""
        return 2

    def _validate(self, obs: Observation) -> None:
        if self.num_bs is None:
            self._resolved(obs)._validate(obs)
            return
        super()._validate(obs)
        if self.num_bs < 1 or self.num_nlos < 0:
            raise EstimatorInputError(f"{self.name}: num_bs must be >= 1, num_nlos >= 0")
        if self.window is not None and self.window < 1:
            raise EstimatorInputError(f"{self.name}: window must be >= 1 or None")
        if not self.step_sigmas >= 0:
            raise EstimatorInputError(f"{self.name}: step_sigmas must be >= 0")
        if not self.max_residual_ratio > 1:
            raise EstimatorInputError(f"{self.name}: max_residual_ratio must be > 1")
        if not self.los_margin_db >= 0:
            raise EstimatorInputError(f"{self.name}: los_margin_db must be >= 0")
        if self.min_bs_with_los is not None and self.min_bs_with_los < 1:
            raise EstimatorInputError(f"{self.name}: min_bs_with_los must be >= 1 or None")
        if obs.link != "downlink":
            raise EstimatorInputError(f"{self.name}: needs a downlink observation")
        if obs.sounder is None:
            raise EstimatorInputError(
                f"{self.name}: needs a closed-loop sounder (sounding 'closed_loop')")
        if obs.num_bs < self.num_bs:
            raise EstimatorInputError(
                f"{self.name}: num_bs={self.num_bs} but {obs.num_bs} BS(s) observed")
        count = self._used_subcarriers(obs)
        if count < 2 * self.num_bs:
            raise EstimatorInputError(
                f"{self.name}: {obs.frequencies.size} subcarriers leave fewer than 2 per BS "
                f"over {self.num_bs} BSs")
        resolve_service_area(self.name, obs, self.area, self.ue_height)
        _ula_spacing(obs.bs_array, f"{self.name}: BS array")
        _ula_spacing(obs.ue_array, f"{self.name}: UE array")
        # A slot's unknowns, 2 J (L + 1) gains (real parts) and 2 J L + 3 location
        # parameters, cannot outnumber its real samples, 2 Nu M K'' per BS.
        J = self.num_bs
        samples = 2 * J * obs.ue_array.num_ant * obs.pilots.shape[0] * (count // J)
        bound = (samples - 2 * J - 3) // (4 * J)
        if self.num_nlos > bound:
            raise EstimatorInputError(
                f"{self.name}: num_nlos={self.num_nlos} exceeds {bound}: a slot's {samples} "
                f"real samples over 4 unknowns a NLOS path and BS, {2 * J + 3} for the LOS")
        if self.max_iterations is not None and self.max_iterations < 1:
            raise EstimatorInputError(
                f"{self.name}: max_iterations={self.max_iterations} must be >= 1 or None")

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """Bytes of the loop's largest arrays, keyed by the hyper-parameter that sizes
        them (``J`` BSs, ``L = num_nlos``, ``P = L + 1`` paths and ``A = 2 J L + 3``
        location parameters; ``K'`` subcarriers a BS, ``Nu``, ``Nb`` antennas, ``M``
        beams).

        ``num_nlos``: the larger of the LCE stage, the response derivatives ``[J, K', Nu,
        Nb, P, A]`` (complex128, twice while formed) or with the coefficient derivatives
        ``[J, Nu, M, K', P, A]``, plus the first slot's LOS hypotheses (~150 bytes each of
        ``(2 P)^J``, measured: most fall outside the area), and the BFR stage (not for
        ``bfr="none"``), the feature matrices ``K^α [J, K', A, A, Nb, Nb]`` (complex128,
        three times: contraction, scaling, contiguous copy; fifteen for lmi-bfr's SDP;
        measured), ``K^h [J, K', P, P, Nb, Nb]`` and the response derivatives twice;
        plus the scatterer estimates.
        ``max_iterations``: the LCE's iterate histories, ~``16 A + 200`` bytes an
        iteration and slot of a window.
        """
        if self.num_bs is None:
            return self._resolved(obs)._working_memory(obs)
        T = obs.num_snapshots
        J, L = self.num_bs, self.num_nlos
        P, A = L + 1, 2 * J * L + 3
        per_bs = self._used_subcarriers(obs) // J
        Nu, Nb, M = obs.ue_array.num_ant, obs.bs_array.num_ant, obs.pilots.shape[0]
        responses = J * per_bs * Nu * Nb * P * A
        coefficients = J * Nu * M * per_bs * P * A
        lce = 16.0 * max(2 * responses, responses + coefficients) + 150.0 * (2 * P) ** J
        # lmi-bfr's SDP holds K^α again, compiled by cvxpy and copied by SCS: measured
        # (live peak, L = 2, 3) ~240 bytes an entry where the others hold 48.
        copies = 15 if self.bfr == "lmi" else 3
        bfr = 0.0 if self.bfr == "none" else 16.0 * (
            copies * J * per_bs * A * A * Nb * Nb + J * per_bs * P * P * Nb * Nb
            + 2 * responses)
        iterations = self.max_iterations or self.default_iterations
        history = min(self.window or T, T) * (iterations + 1) * (16.0 * A + 200.0)
        return {"num_nlos": max(lce, bfr) + estimate_bytes(T, 0, J * L),
                "max_iterations": history}

    # -------------------------------------------------------------- the mapping

    def _used_subcarriers(self, obs: Observation) -> int:
        """``N'_C``: the largest multiple of ``J`` within the observation's subcarriers
        (Θ_j interleaves them evenly, §II-A); the highest ``K mod J`` are not used."""
        J = self._num_bs()
        return J * (obs.frequencies.size // J)

    def _system(self, obs: Observation) -> SlabSystem:
        theta = self._subcarriers(obs)
        return SlabSystem(
            num_bs_antennas=obs.bs_array.num_ant, num_ue_antennas=obs.ue_array.num_ant,
            bs_spacing=_ula_spacing(obs.bs_array, "BS array"),
            ue_spacing=_ula_spacing(obs.ue_array, "UE array"),
            frequencies=obs.frequencies[theta],
            wavelengths=np.full(theta.shape, obs.wavelength),
        )

    def _subcarriers(self, obs: Observation) -> npt.NDArray[np.intp]:
        """``Θ_j`` ``[bs, subcarrier]``, 0-based: ``{j, j + J, ...}`` over the first
        :meth:`_used_subcarriers`."""
        return subcarrier_indices(self._used_subcarriers(obs), self._num_bs()) - 1

    def _sound(self, obs: Observation, snapshots: list[int], rng: np.random.Generator
               ) -> Callable[[int, ComplexArray], ComplexArray]:
        """``sound(k, w)`` of snapshot ``snapshots[k]``: BS ``j`` sends ``w[j]`` on ``Θ_j``."""
        sounder = obs.sounder
        assert sounder is not None  # _validate
        theta = self._subcarriers(obs)
        J, B, K = self._num_bs(), obs.num_bs, obs.frequencies.size
        pilots = obs.pilots[:, theta]  # [beam, bs, subcarrier]

        def sound(k: int, w: ComplexArray) -> ComplexArray:
            F = np.zeros((B, K, *w.shape[1:3]), dtype=np.complex128)
            for j in range(J):  # the model's element t is antenna N_B - 1 - t (a_B^H)
                F[j, theta[j]] = np.moveaxis(w[j], -1, 0)[:, ::-1]
            y = sounder.sound(snapshots[k], F, rng)
            z = np.stack([y[j][..., theta[j]] for j in range(J)])
            return np.asarray(z / np.moveaxis(pilots, 1, 0)[:, None])

        return sound

    def _ground(self, obs: Observation, ue_height: float) -> FloatArray | None:
        """``[bs]`` [m] the BSs' images in the ground above the UE (``h_j + h_UE - 2
        h_ground``), or ``None`` where no ground bounce is modelled (``ground_height``)."""
        ground = fixed_ground_height(self.ground_height)
        if ground is None or ue_height - ground < MIN_GROUND_CLEARANCE_M:
            return None
        J = self._num_bs()
        return np.asarray(obs.bs_position[:J, 2] + ue_height - 2.0 * ground)

    def _geometry(self, obs: Observation) -> tuple[ServiceArea, Area, FloatArray]:
        """The service area (the UE's prior and height hypothesis), the scatterers' region
        (the bounding box of the area and the BSs grown by ``scatterer_margin_m``) and
        ``Δh [bs]`` [m], the BSs' heights above the UE hypothesis."""
        service = resolve_service_area(self.name, obs, self.area, self.ue_height)
        J = self._num_bs()
        (x0, y0), (x1, y1) = service.area
        xy = np.vstack([obs.bs_position[:J, :2], [[x0, y0], [x1, y1]]])
        m = self.scatterer_margin_m
        lo, hi = xy.min(axis=0) - m, xy.max(axis=0) + m
        region = ((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1])))
        return service, region, obs.bs_position[:J, 2] - service.ue_height

    # ----------------------------------------------------------------- the loop

    def _estimate(
        self, obs: Observation, rng: np.random.Generator, on_snapshot: Callable[[int], None]
    ) -> Estimate:
        if self.num_bs is None:
            return self._resolved(obs)._estimate(obs, rng, on_snapshot)
        T, J = obs.num_snapshots, self._num_bs()
        system = self._system(obs)
        service, region, heights = self._geometry(obs)
        dropped = obs.frequencies.size - self._used_subcarriers(obs)
        ground = self._ground(obs, service.ue_height)
        window = self.window or T
        w = random_beamformers(J, system.num_bs_antennas, obs.pilots.shape[0],
                               system.num_subcarriers_per_bs, rng)
        alpha: FloatArray | None = None
        results: dict[int, tuple[SnapshotEstimate, float]] = {}
        for first in range(0, T, window):
            snapshots = list(range(first, min(first + window, T)))
            # A snapshot whose observation is unusable (no signal, NaN, bad noise) is
            # failed and skipped; the window's loop runs over the others.
            for t in snapshots:
                problem = _degenerate(obs, t)
                if problem:
                    results[t] = (self._failed(problem), 0.0)
            good = [t for t in snapshots if t not in results]
            if not good:
                continue
            noise = float(np.mean(obs.noise_variance[good[0], :J]))
            try:
                with np.errstate(all="raise"):
                    run = run_slab(
                        self._sound(obs, good, rng), system=system,
                        bs_position=obs.bs_position[:J, :2],
                        bs_orientation=obs.bs_orientation[:J, 0], num_nlos=self.num_nlos,
                        initial_beamformers=w, num_slots=len(good), rng=rng,
                        noise_variance=noise, area=service.area, scatterer_area=region,
                        height_offset=heights,
                        ground_offset=ground, lce=self.lce, bfr=self.bfr,
                        initial_alpha=alpha, reacquire=self.reacquire, rescan=self.rescan,
                        lce_options={
                            "max_iterations": self.max_iterations or self.default_iterations,
                            "step_tolerance": self.step_tolerance,
                            "step_sigmas": self.step_sigmas},
                    )
            except (np.linalg.LinAlgError, ArithmeticError, ValueError) as exc:
                for t in good:
                    results[t] = (self._failed(f"{type(exc).__name__}: {exc}"[:200]), 0.0)
                alpha = None  # the next window starts afresh (multi-start)
                continue
            ratios = [_residual_ratio(run, k, noise, system.num_ue_antennas)
                      for k in range(len(good))]
            for k, t in enumerate(good):
                los_db = _los_free_space_db(
                    run.lce_results[k], bs_position=obs.bs_position[:J],
                    height_offset=heights, ground=ground is not None,
                    amplitude=system.amplitude, wavelength=obs.wavelength) \
                    if obs.free_space_known else None
                results[t] = self._snapshot(run, k, ratios[: k + 1], service, dropped,
                                            los_db)
            # The next window tracks this one's last fix, unless that fix failed its own
            # checks: then it starts afresh from the multi-start.
            alpha = run.fused[-1] if results[good[-1]][0].converged else None
            if self.carry_beams:
                w = run.next_beamformers
            on_snapshot(snapshots[-1] + 1)
        return _stack([results[t] for t in range(T)])

    def _snapshot(self, run: SlabRun, k: int, ratios: list[float], service: ServiceArea,
                  dropped: int, los_db: FloatArray | None
                  ) -> tuple[SnapshotEstimate, float]:
        """Slot ``k``'s fused estimate, its covariance and integrity (module docstring,
        "Covariance and integrity"); ``los_db [bs]``: :func:`_los_free_space_db` (``None``:
        not known)."""
        ue = np.array([*run.ue_position[k], service.ue_height])
        points = run.scatterers[k].reshape(-1, 2)
        scatterers = np.column_stack([points, np.full(len(points), service.ue_height)])
        lce = run.lce_results[k]
        inflation = max(1.0, *ratios)
        spread = None if run.position_spread is None else run.position_spread[k]
        covariance = _position_covariance(run.precision[k], inflation, spread)
        converged, reason = bool(lce.converged), lce.reason
        if converged and not in_area(service.area, ue):
            converged, reason = False, "the fix is outside the service area"
        elif converged and covariance is None:
            # A converged fit whose FIM is singular: some parameter is not determined by
            # the data (e.g. a scatterer on its own BS, its path the LOS again: office
            # drive, issue 22). Without a covariance the fix's quality is unknown.
            converged, reason = False, (
                "the FIM at the fix is singular (a path the data do not determine): no "
                "covariance")
        elif converged and ratios[-1] > self.max_residual_ratio:
            converged, reason = False, (
                f"the residual is {ratios[-1]:.0f}x the noise power the model leaves "
                f"(max_residual_ratio={self.max_residual_ratio:g}): the LOS + {self.num_nlos} "
                f"path model does not explain the observation")
        elif converged and los_db is not None and np.sum(
                los_db >= -self.los_margin_db) < min(self.min_bs_with_los or los_db.size,
                                                     los_db.size):
            weak = np.flatnonzero(los_db < -self.los_margin_db)
            needed = (f"at least {self.min_bs_with_los} BSs" if self.min_bs_with_los
                      else "every BS")
            converged, reason = False, (
                f"the LOS of BS(s) {', '.join(map(str, weak))} at the fix is "
                f"{', '.join(f'{-los_db[j]:.1f}' for j in weak)} dB below free space at "
                f"its length (los_margin_db={self.los_margin_db:g}): blocked, or a fix "
                f"that takes another path for it (the model needs the LOS of {needed})")
        result = SnapshotEstimate(
            ue_position=ue, ue_yaw=float(run.ue_yaw[k]),
            scatterers=scatterers, scatterer_valid=np.isfinite(points).all(axis=1),
            path_tau=np.zeros(0), path_aod=np.zeros((0, 2)), path_gain=np.zeros(0, complex),
            converged=converged, reason=reason,
            position_covariance=covariance,
            diagnostics={"position_error_bound": float(run.position_error_bound[k]),
                         "bfr_cost": float(run.bfr_cost[k]),
                         "lce_iterations": float(lce.iterations),
                         "lce_runtime_s": float(run.lce_runtime_s[k]),
                         "bfr_runtime_s": float(run.bfr_runtime_s[k]),
                         "residual_ratio": float(ratios[-1]),
                         "los_free_space_db": float(np.min(los_db))
                         if los_db is not None else float("nan"),
                         "bs_with_los": float(np.sum(los_db >= -self.los_margin_db))
                         if los_db is not None else float("nan"),
                         "spread_m": float(np.sqrt(np.trace(spread)))
                         if spread is not None else 0.0,
                         "subcarriers_dropped": float(dropped)},
        )
        return result, float(run.lce_runtime_s[k] + run.bfr_runtime_s[k])

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        raise NotImplementedError("SLAB runs over slots: see _estimate")

    # -------------------------------------------------------------------- the bound

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The long-term CRLB of Lemma 1 (eq. 20) per snapshot (:attr:`bound`; module
        docstring): ``position_error_bound [snapshot]`` [m] in the plane,
        ``orientation_error_bound [snapshot]`` [rad] on the yaw,
        ``scatterer_error_bound [snapshot, J L]`` [m] in the order of
        ``Estimate.scatterers``; NaN where it does not apply.

        Raises :class:`~estimators.base.EstimatorInputError` only where :meth:`check`
        does, and ``ValueError`` if ``truth`` has another number of snapshots.
        """
        self.check(obs)
        resolved = self._resolved(obs)
        if resolved is not self:
            return resolved.crlb(obs, truth)
        T, J, L = obs.num_snapshots, self._num_bs(), self.num_nlos
        snapshots = bs_truth(truth, 0).tau.shape[0]
        if snapshots != T:
            raise ValueError(f"{self.name}: truth has {snapshots} snapshots, the "
                             f"observation {T}")
        system = self._system(obs)
        theta = self._subcarriers(obs)
        # _sound divides the pilots out: the model's noise is σ² / |s|².
        pilot_power = np.mean(np.abs(obs.pilots[:, theta]) ** 2, axis=(0, 2))  # [bs]
        position = np.full(T, np.nan)
        orientation = np.full(T, np.nan)
        scatterer = np.full((T, J * L), np.nan)
        for t in range(T):
            ue_z = float(bs_truth(truth, 0).ue_position[t, 2])
            paths = truth_paths(truth, t, bs_position=obs.bs_position[:J],
                                bs_orientation=obs.bs_orientation[:J, 0], num_nlos=L,
                                ground_height=fixed_ground_height(self.ground_height)
                                if self._ground(obs, ue_z) is not None else None)
            # The bound of the truth: the BSs' heights above the true UE.
            if not isinstance(paths, TruthPaths):
                continue
            # The model's BF element t is BS antenna N_B - 1 - t (a_B^H, module docstring);
            # the open-loop precoders are the same on every subcarrier.
            w = np.broadcast_to(obs.precoders[t, :J, ::-1, :, None],
                                (*obs.precoders[t, :J].shape, theta.shape[1]))
            covariance = np.abs(paths.gains) ** 2 / system.amplitude**2
            try:
                with np.errstate(all="raise"):
                    fisher = SlabFisher.at(
                        system=system, geometry=paths.geometry,
                        gain_covariance=covariance[:, :, None] * np.eye(covariance.shape[1]),
                        noise_variance=float(np.mean(obs.noise_variance[t, :J]
                                                     / pilot_power[:J])))
                    bound = long_term_bound(w, fisher=fisher)
            except (np.linalg.LinAlgError, ArithmeticError, ValueError):
                continue
            position[t] = bound.position_error_bound
            orientation[t] = bound.orientation_error_bound
            scatterer[t] = bound.scatterer_error_bound.reshape(-1)
        return Bound(position_error_bound=position, scatterer_error_bound=scatterer,
                     orientation_error_bound=orientation)


@register
class Slab(_Slab):
    """``slab``: SLLS LCE + SLAB's BFR (Algorithm 1)."""

    name: ClassVar[str] = "slab"


@register
class SlabLce(_Slab):
    """``slab-lce``: SLLS LCE with the initial random BF throughout (no BFR)."""

    name: ClassVar[str] = "slab-lce"
    bfr: ClassVar[BfrMethod] = "none"


@register
class GdLce(_Slab):
    """``gd-lce``: gradient-descent LCE baseline (Armijo), random BF."""

    name: ClassVar[str] = "gd-lce"
    lce: ClassVar[LceMethod] = "gd-lce"
    bfr: ClassVar[BfrMethod] = "none"
    default_iterations: ClassVar[int] = 1000


@register
class LsLce(_Slab):
    """``ls-lce``: conjugate-gradient (Armijo line search) LCE baseline, random BF."""

    name: ClassVar[str] = "ls-lce"
    lce: ClassVar[LceMethod] = "ls-lce"
    bfr: ClassVar[BfrMethod] = "none"
    default_iterations: ClassVar[int] = 1000


@register
class GdBfr(_Slab):
    """``gd-bfr``: SLLS LCE + projected-gradient BFR baseline."""

    name: ClassVar[str] = "gd-bfr"
    bfr: ClassVar[BfrMethod] = "gd"


@register
class LmiBfr(_Slab):
    """``lmi-bfr``: SLLS LCE + LMI (SDP relaxation, cvxpy/SCS) BFR baseline."""

    name: ClassVar[str] = "lmi-bfr"
    bfr: ClassVar[BfrMethod] = "lmi"
