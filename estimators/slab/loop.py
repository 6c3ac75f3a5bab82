"""SLAB's loop over time slots (Zhou, Liu, Lau 2019, Algorithm 1): LCE ↔ BFR, closed loop.

Per slot ``k = 1 … K`` (:func:`run_slab`):

1. **Sound** slot ``k`` with the BF vectors ``w[k]`` (``w[1]`` given, e.g. random): the
   caller's ``sound(k, w[k])`` returns ``z[k]`` (eq. 11). The synthetic model wraps
   :meth:`estimators.slab.scenario.SlabScenario.sample`
   (:func:`estimators.slab.scenario.scenario_sounder`); the registered estimators wrap
   the observation's closed-loop sounder. The BF vectors chosen at slot ``k`` are the ones the
   next observation is made with: nothing else reaches the sounder.
2. **LCE** (Algorithm 2, :mod:`estimators.slab.lce`, :mod:`estimators.slab.lce_init`):
   slot 1 from the multi-start (§IV-D) unless an initial ``α`` is given, slot ``k ≥ 2``
   from the fused ``ᾱ[k-1]``; gives the fresh ``α̂[k]`` and ``ĥ[k]`` (30).
3. **Fusion** (eqs. 25-27, :mod:`estimators.slab.fusion`): ``ᾱ[k]`` and ``Λ[k]`` from
   ``Λ#[k] = 𝔅_α(α̂[k], ĥ[k]; w[k])^{-1}``.
4. **BFR** (Algorithm 3, :mod:`estimators.slab.bfr`, or a baseline,
   :mod:`estimators.slab.baselines`) at ``ᾱ[k]``: ``w[k+1]``
   minimises the normalised long-term CRLB (23) at the estimate, with

   * the normaliser ``w[0]`` of eq. (23) = the initial BF ``w[1]`` (the paper: "the
     realization of BF vector ω at the initial time slot"), in every slot, so the costs of
     all slots share one scale (``κ(w[1]) = 2``);
   * the start = the current ``w[k]`` (warm start: from slot 2 on the estimate moves
     little and the previous optimum is nearly optimal again; lmi-bfr uses the start only
     for its scaling);
   * ``bfr="none"``: ``w[k+1] = w[1]``, the ``slab-lce`` variant (LCE and fusion with the
     initial random BF throughout).

   Where the BFR cannot run (a singular long-term FIM at the estimate, e.g. a scatterer
   estimate on a BS; the SDP solver failing) the slot keeps ``w[k+1] = w[k]`` and records
   why (``bfr_reasons``); the loop never raises from inside the algebra.

**The fading covariance Σ.** The paper assumes it known (footnote 6: ``Σ = I_J ⊗
diag(φ_{l,j}^{-6})`` in the simulations; "in practice [it] can be estimated"). Given
``gain_covariance``, it is used as is. Otherwise it is estimated from the LCE's own
channel estimates, diagonal (the paths fade independently, as in the paper's model):
``Σ̂[k] = diag((1/k) Σ_{i ≤ k} |ĥ_{l,j}[i]|²)``, the running sample mean of ``|ĥ|²`` per
path (:func:`estimate_gain_covariance`). It is not corrected for the LS estimate's noise
(``E|ĥ_l|² = Σ_ll + σ² [(G^H G)^{-1}]_ll``; small against ``Σ_ll`` at the paper's 20 dB),
and after a few slots it is a coarse estimate (one exponential draw per path and slot).
Σ enters the BFR only as the weight of each path's information, and the bound
(:attr:`SlabRun.position_error_bound`) scales with it.

**Bound.** Per slot, the long-term CRLB (Lemma 1, eq. 20) at the fused estimate ``ᾱ[k]``
with the Σ used there and the BF vectors ``w[k]`` of the slot: what the UE can compute
(a bound at the truth needs the truth; the tests and figures compute that one).

**Runtimes.** ``lce_runtime_s[k]``: LCE (the multi-start at slot 1), the fusion precision
(27) and the fusion; ``bfr_runtime_s[k]``: Σ's estimate, the feature matrices' building
blocks at ``ᾱ[k]`` and the BFR solve (0 for ``"none"``). The bound is diagnostics, in
neither.

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: Algorithm 1 (§III),
fusion (25)-(27), LCE Algorithm 2 (§IV, (24), (30)-(36)), multi-start (§IV-D), BFR
(28)-(29), Algorithm 3 (§V), normalised CRLB (23), Lemma 1 (20), footnote 6 (Σ).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from estimators.slab.baselines import gd_bfr, gd_lce, lmi_bfr, ls_lce
from estimators.slab.bfr import BfrProblem, BfrResult, slab_bfr
from estimators.slab.bound import SlabFisher, long_term_bound
from estimators.slab.fusion import Fused, fuse, slot_precision
from estimators.slab.lce import LceProblem, LceResult, slls
from estimators.slab.lce_init import (
    MultiStart,
    Tracked,
    multistart,
    position_spread,
    prefer,
    track,
)
from estimators.slab.model import SlabSystem
from estimators.types import Area, check_area
from estimators.typing import ComplexArray, FloatArray

#: ``sound(k, w[k]) -> z[k]``: slot ``k`` (0-based: ``k = 0`` is the paper's slot 1)
#: observed with BF vectors ``[bs, bs_ant, beam, subcarrier]``; returns the received pilots
#: ``[bs, ue_ant, beam, subcarrier]`` complex (eq. 11), fresh fading and noise.
Sound = Callable[[int, ComplexArray], npt.ArrayLike]
LceMethod = Literal["slls", "gd-lce", "ls-lce"]
BfrMethod = Literal["slab", "gd", "lmi", "none"]

_LCE: dict[str, Callable[..., LceResult]] = {"slls": slls, "gd-lce": gd_lce, "ls-lce": ls_lce}
_BFR = ("slab", "gd", "lmi", "none")


def estimate_gain_covariance(channel_estimates: npt.ArrayLike) -> ComplexArray:
    """Σ from channel estimates: the running mean of ``|ĥ|²`` per path, diagonal.

    Parameters
    ----------
    channel_estimates : ``[slot, bs, path]`` complex, ``ĥ[1] … ĥ[k]`` (30).

    Returns
    -------
    ``[bs, path, path]`` complex128, ``diag((1/k) Σ_i |ĥ_{l,j}[i]|²)`` per BS (module
    docstring: not bias-corrected for the estimation noise).
    """
    h = np.asarray(channel_estimates, dtype=np.complex128)
    if h.ndim != 3 or h.shape[0] == 0:
        raise ValueError(f"channel_estimates: expected [slot >= 1, bs, path], got {h.shape}")
    power = np.mean(np.abs(h) ** 2, axis=0)  # [bs, path]
    return np.asarray(power[:, :, None] * np.eye(h.shape[2]), dtype=np.complex128)


@dataclass(frozen=True)
class SlabRun:
    """Algorithm 1 over ``K`` slots (:func:`run_slab`).

    Attributes
    ----------
    lce_method : ``"slls"``, ``"gd-lce"`` or ``"ls-lce"``.
    bfr_method : ``"slab"``, ``"gd"``, ``"lmi"`` or ``"none"``.
    estimates : ``[slot, 2JL + 3]`` [m, rad, m], the fresh ``α̂[k]`` of each slot's LCE.
    fused : ``[slot, 2JL + 3]`` [m, rad, m], ``ᾱ[k]`` (25).
    precision : ``[slot, 2JL + 3, 2JL + 3]``, ``Λ[k]`` (26) [1/m², 1/rad², ...].
    channel_estimates : ``[slot, bs, path]`` complex128, ``ĥ[k]`` (30).
    gain_covariance : ``[slot, bs, path, path]`` complex128, the Σ used at slot ``k``
        (given, or estimated from ``ĥ[1] … ĥ[k]``).
    beamformers : ``[slot, bs, bs_ant, beam, subcarrier]`` complex128, ``w[k]``: the BF
        vectors slot ``k`` was sounded with (``w[1]`` the initial ones).
    next_beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex128, ``w[K+1]`` from the
        last slot's BFR.
    alpha_crlb_trace : ``[slot]`` [m², rad²], ``trace 𝔅_α`` of the long-term CRLB (20) at
        ``ᾱ[k]``, Σ used, ``w[k]``.
    position_error_bound : ``[slot]`` [m], its UE position part ``sqrt(var x + var y)``.
    bfr_cost : ``[slot]``, κ (23) of ``w[k+1]`` at ``ᾱ[k]`` (normaliser ``w[1]``, so
        ``2 / bfr_cost`` is the BFR gain over the initial BF); NaN where no BFR ran.
    lce_runtime_s, bfr_runtime_s : ``[slot]`` [s], wall times (module docstring).
    lce_results : one :class:`~estimators.slab.lce.LceResult` per slot.
    bfr_results : one :class:`~estimators.slab.bfr.BfrResult` per slot (``None`` where
        none ran).
    bfr_reasons : per slot ``""`` or why the BFR did not run / kept ``w[k]``.
    multistart : slot 1's :class:`~estimators.slab.lce_init.MultiStart` (``None`` if an
        initial ``α`` was given without ``rescan``, or the rescan found no start).
    tracked : slot 1's :class:`~estimators.slab.lce_init.Tracked` where an initial ``α`` was
        given with ``reacquire`` (``None`` otherwise).
    position_spread : ``[slot, 2, 2]`` [m²], slot 1's
        :func:`~estimators.slab.lce_init.position_spread`: the second moment about its
        fix of the competing fits (multi-start, tracker) that the data cannot tell from
        it; later slots of the window keep it (they do not search again). Zeros where
        there are none.
    """

    lce_method: str
    bfr_method: str
    estimates: FloatArray
    fused: FloatArray
    precision: FloatArray
    channel_estimates: ComplexArray
    gain_covariance: ComplexArray
    beamformers: ComplexArray
    next_beamformers: ComplexArray
    alpha_crlb_trace: FloatArray
    position_error_bound: FloatArray
    bfr_cost: FloatArray
    lce_runtime_s: FloatArray
    bfr_runtime_s: FloatArray
    lce_results: tuple[LceResult, ...]
    bfr_results: tuple[BfrResult | None, ...]
    bfr_reasons: tuple[str, ...]
    multistart: MultiStart | None
    tracked: Tracked | None = None
    position_spread: FloatArray | None = None

    @property
    def num_slots(self) -> int:
        return int(self.fused.shape[0])

    @property
    def ue_position(self) -> FloatArray:
        """``[slot, 2]`` [m], the fused UE position ``x̄[k]``."""
        return np.asarray(self.fused[:, :2])

    @property
    def ue_yaw(self) -> FloatArray:
        """``[slot]`` [rad], the fused UE yaw ``ϑ̄[k]``."""
        return np.asarray(self.fused[:, 2])

    @property
    def scatterers(self) -> FloatArray:
        """``[slot, bs, nlos, 2]`` [m], the fused scatterers ``v̄[k]``."""
        J = self.channel_estimates.shape[1]
        return np.asarray(self.fused[:, 3:].reshape(self.num_slots, J, -1, 2))


def _bfr(
    method: str, start: ComplexArray, problem: BfrProblem, rng: np.random.Generator,
    options: Mapping[str, Any],
) -> BfrResult:
    if method == "slab":
        return slab_bfr(start, problem=problem, **options)
    if method == "gd":
        return gd_bfr(start, problem=problem, **options)
    return lmi_bfr(start, problem=problem, rng=rng, **options)


def run_slab(
    sound: Sound,
    *,
    system: SlabSystem,
    bs_position: npt.ArrayLike,
    bs_orientation: npt.ArrayLike,
    num_nlos: int,
    initial_beamformers: npt.ArrayLike,
    num_slots: int,
    rng: np.random.Generator,
    noise_variance: float,
    area: Area = ((0.0, 0.0), (1000.0, 1000.0)),
    lce: LceMethod = "slls",
    bfr: BfrMethod = "slab",
    gain_covariance: npt.ArrayLike | None = None,
    initial_alpha: npt.ArrayLike | None = None,
    reacquire: bool = False,
    rescan: bool = False,
    height_offset: npt.ArrayLike | None = None,
    scatterer_area: Area | None = None,
    ground_offset: npt.ArrayLike | None = None,
    multistart_options: Mapping[str, Any] | None = None,
    lce_options: Mapping[str, Any] | None = None,
    bfr_options: Mapping[str, Any] | None = None,
) -> SlabRun:
    """SLAB (Algorithm 1): per slot sound with ``w[k]``, LCE, fusion, BFR → ``w[k+1]``.

    Parameters
    ----------
    sound : ``sound(k, w[k]) -> z[k]``, ``k = 0 … num_slots - 1`` (:data:`Sound`); called
        once per slot, in order, with a copy of the BF vectors.
    system : arrays and subcarriers (:class:`~estimators.slab.model.SlabSystem`).
    bs_position : ``[bs, 2]`` [m], ``u_j``.
    bs_orientation : ``[bs]`` [rad], ``φ_j``.
    num_nlos : ``L``, scatterers per BS.
    initial_beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, ``w[1]`` (e.g.
        random, :func:`~estimators.slab.model.random_beamformers`); also the
        normaliser of the BFR cost (23).
    num_slots : ``K ≥ 1``.
    rng : the algorithm's randomness (the multi-start's draws, lmi-bfr's randomisation);
        the sounder has its own.
    noise_variance : ``σ²`` [W] per UE antenna and sample.
    area : ``((x_min, y_min), (x_max, y_max))`` [m] corners (:data:`estimators.types.Area`),
        where the multi-start draws.
    lce : ``"slls"`` (SLAB) or the baselines ``"gd-lce"``, ``"ls-lce"``.
    bfr : ``"slab"`` (Algorithm 3), the baselines ``"gd"``, ``"lmi"``, or ``"none"`` (keep
        ``w[1]``: ``slab-lce``).
    gain_covariance : ``[bs, path, path]`` Σ; ``None``: estimated per slot (module
        docstring).
    initial_alpha : ``[2JL + 3]`` [m, rad, m], slot 1's LCE start instead of the
        multi-start.
    reacquire : with ``initial_alpha``, slot 1 also starts from it with its scatterers
        re-drawn from the data and keeps the better result
        (:func:`~estimators.slab.lce_init.track`): the geometry may have moved since
        ``initial_alpha`` (a new window along a drive).
    rescan : with ``initial_alpha`` and ``reacquire``, slot 1 also runs the multi-start
        and keeps its result where it is better
        (:func:`~estimators.slab.lce_init.prefer`: the UE inside the area, then the lower
        cost (24) beyond the noise's spread): the tracker only searches near
        ``initial_alpha``.
    height_offset : ``[bs]`` [m], each BS's height above the UE (hypothesis); ``None``:
        the paper's plane (:class:`~estimators.slab.model.SlabGeometry`).
    scatterer_area : corners where the scatterers may be; ``None``: ``area``.
    ground_offset : ``[bs]`` [m], each BS's image in the ground above the UE: a ground
        bounce per BS is modelled (last path); ``None``: none, the paper's model.
    multistart_options : keyword arguments of :func:`~estimators.slab.lce_init.multistart`.
    lce_options : keyword arguments of the LCE method (:func:`~estimators.slab.lce.slls`...).
    bfr_options : keyword arguments of the BFR method (:func:`~estimators.slab.bfr.
        slab_bfr`, :func:`~estimators.slab.baselines.gd_bfr`,
        :func:`~estimators.slab.baselines.lmi_bfr`).

    Returns
    -------
    :class:`SlabRun`.

    Raises
    ------
    ValueError
        on an unknown method, ``num_slots < 1``, or shapes that do not fit (including a
        ``z`` of the wrong shape from ``sound``).

    References
    ----------
    Zhou, Liu, Lau 2019, Algorithm 1; eqs. (20), (23), (25)-(30); Algorithms 2, 3.
    """
    if lce not in _LCE:
        raise ValueError(f"lce must be one of {sorted(_LCE)}, got {lce!r}")
    if bfr not in _BFR:
        raise ValueError(f"bfr must be one of {list(_BFR)}, got {bfr!r}")
    if num_slots < 1:
        raise ValueError(f"num_slots must be >= 1, got {num_slots}")
    area = check_area(area, "run_slab area")
    u = np.asarray(bs_position, dtype=np.float64)
    phi = np.asarray(bs_orientation, dtype=np.float64)
    w1 = np.array(initial_beamformers, dtype=np.complex128)
    ground = None if ground_offset is None else np.asarray(ground_offset, dtype=np.float64)
    J, P = u.shape[0], num_nlos + 1 + int(ground is not None)
    if ground is not None and ground.shape != (J,):
        raise ValueError(f"ground_offset: expected ({J},), got {ground.shape}")
    known = None
    if gain_covariance is not None:
        known = np.asarray(gain_covariance, dtype=np.complex128)
        if known.shape != (J, P, P):
            raise ValueError(f"gain_covariance: expected {(J, P, P)}, got {known.shape}")
    heights = None if height_offset is None else np.asarray(height_offset, dtype=np.float64)
    if heights is not None and heights.shape != (J,):
        raise ValueError(f"height_offset: expected ({J},), got {heights.shape}")
    if scatterer_area is not None:
        scatterer_area = check_area(scatterer_area, "run_slab scatterer_area")
    solve = _LCE[lce]
    solver_options = dict(lce_options or {})
    options = dict(bfr_options or {})

    w = w1
    fused: Fused | None = None
    ms: MultiStart | None = None
    tracked: Tracked | None = None
    used, estimates, fused_alpha, precisions, gains, covariances = [], [], [], [], [], []
    spread = np.zeros((2, 2))
    spreads: list[FloatArray] = []
    traces, pebs, costs, lce_times, bfr_times = [], [], [], [], []
    lce_results: list[LceResult] = []
    bfr_results: list[BfrResult | None] = []
    reasons: list[str] = []
    for k in range(num_slots):
        used.append(w)
        z = np.asarray(sound(k, w.copy()), dtype=np.complex128)
        problem = LceProblem(system=system, bs_position=u, bs_orientation=phi,
                             num_nlos=num_nlos, beamformers=w, z=z,
                             noise_variance=float(noise_variance), area=area,
                             height_offset=heights, scatterer_area=scatterer_area,
                             ground_offset=ground)
        # ---- LCE (Algorithm 2) and fusion (25)-(27)
        start = time.perf_counter()
        competitors: list[LceResult] = []
        if k == 0 and initial_alpha is None:
            ms = multistart(problem, rng, **dict(multistart_options or {}))
            result = ms.result if lce == "slls" and not solver_options else solve(
                problem, ms.candidates[ms.best], **solver_options)
            competitors += [*ms.screening, ms.result]
        elif k == 0 and reacquire and initial_alpha is not None:
            tracked = track(problem, initial_alpha, rng, solve=solve,
                            solver_options=solver_options)
            result = tracked.result
            competitors += list(tracked.results)
            if rescan:
                # The tracker is a local search from where the UE was: after a gap the
                # UE may be tens of metres on, in another basin of (24). The multi-start
                # searches the whole area; the better by the paper's rule is kept.
                try:
                    ms = multistart(problem, rng, **dict(multistart_options or {}))
                except ValueError:
                    ms = None
                if ms is not None:
                    found = ms.result if lce == "slls" and not solver_options else solve(
                        problem, ms.candidates[ms.best], **solver_options)
                    competitors += [*ms.screening, ms.result, found]
                    if not prefer(problem, result, found):
                        result = found
        else:
            alpha0 = fused.alpha if fused is not None else initial_alpha
            result = solve(problem, alpha0, **solver_options)
        if k == 0:
            # Fits elsewhere that the data cannot tell from this one: the FIM at the fix
            # knows nothing of them, the reported covariance must (issue 22).
            spread = position_spread(problem, result, competitors)
        spreads.append(spread)
        fused = fuse(fused, result.alpha, slot_precision(problem, result.alpha, result.gains))
        lce_times.append(time.perf_counter() - start)
        lce_results.append(result)
        estimates.append(result.alpha)
        fused_alpha.append(fused.alpha)
        precisions.append(fused.precision)
        gains.append(result.gains)

        # ---- BFR (Algorithm 3 / baselines) at ᾱ[k]
        start = time.perf_counter()
        sigma = known if known is not None else estimate_gain_covariance(np.stack(gains))
        fisher: SlabFisher | None = None
        reason = ""
        if not np.all(np.isfinite(fused.alpha)):
            reason = "non-finite location estimate"
        else:
            fisher = SlabFisher.at(system=system, geometry=problem.geometry(fused.alpha),
                                   gain_covariance=sigma, noise_variance=noise_variance)
        next_w, outcome, cost = w, None, float("nan")
        if bfr == "none":
            next_w = w1
        elif fisher is not None:
            try:
                bfr_problem = BfrProblem.at(fisher=fisher, reference_beamformers=w1)
                outcome = _bfr(bfr, w, bfr_problem, rng, options)
                next_w, cost = outcome.beamformers, outcome.cost
            except (np.linalg.LinAlgError, ArithmeticError) as error:
                reason = f"BFR failed, BF vectors kept: {error}"
        bfr_times.append(time.perf_counter() - start if bfr != "none" else 0.0)
        bfr_results.append(outcome)
        reasons.append(reason)
        costs.append(cost)
        covariances.append(sigma)

        # ---- diagnostics: the long-term bound at the estimate for this slot's beams
        if fisher is not None:
            bound = long_term_bound(w, fisher=fisher)
            traces.append(bound.alpha_trace)
            pebs.append(bound.position_error_bound)
        else:
            traces.append(float("nan"))
            pebs.append(float("nan"))
        w = np.array(next_w, dtype=np.complex128)

    return SlabRun(
        lce_method=lce, bfr_method=bfr, estimates=np.stack(estimates),
        fused=np.stack(fused_alpha), precision=np.stack(precisions),
        channel_estimates=np.stack(gains), gain_covariance=np.stack(covariances),
        beamformers=np.stack(used), next_beamformers=w,
        alpha_crlb_trace=np.asarray(traces, dtype=np.float64),
        position_error_bound=np.asarray(pebs, dtype=np.float64),
        bfr_cost=np.asarray(costs, dtype=np.float64),
        lce_runtime_s=np.asarray(lce_times), bfr_runtime_s=np.asarray(bfr_times),
        lce_results=tuple(lce_results), bfr_results=tuple(bfr_results),
        bfr_reasons=tuple(reasons), multistart=ms, tracked=tracked,
        position_spread=np.stack(spreads),
    )
