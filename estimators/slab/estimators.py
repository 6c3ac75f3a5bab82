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
window, and the next window starts its sounding with the last BFR's beams and its LCE at
the last fused estimate (no multi-start). With ``reacquire`` (default) that first LCE
also re-draws the scatterers from the new window's data at the UE it finds and keeps the
better fit with its scatterers inside the area (:func:`~estimators.slab.lce_init.track`): a
reflection point slides along its wall as the UE moves, and a scatterer estimate once in
another basin of (24) is otherwise never found again. ``window=None``: one window, the
paper's static setting; ``window=1``: every snapshot on its own (no fusion over
positions the UE has left).

**Mapping to the model** (:mod:`estimators.slab.model`): the plane is the world's
``(x, y)``; BS ``j``'s pose is ``bs_position[j, :2]`` and its yaw; arrays must be ``1 x
N`` ULAs (broadside = the device's yaw, as the model's); one wavelength (the
observation's carrier: no beam squint); subcarrier frequencies are the observation's;
``σ²`` is the mean of the BSs' noise variances of the snapshot; ``Σ`` is estimated from
the channel estimates (the paper assumes it known; the twin does not know it). The
paper's channel ``a_U a_B^H`` (eq. 1) is the physical ``a_U a_B^T`` with the BS elements
numbered backwards, so the model's BF vector element ``t`` goes to BS antenna
``N_B - 1 - t``. The model is planar: heights are not modelled (the estimate's ``z`` is
``ue_height``), so every SLAB estimator's positions are 2-D
(:meth:`~estimators.base.Estimator.position_dimensions`).

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
    estimate_bytes,
    register,
)
from estimators.slab.bound import SlabFisher, TruthPaths, long_term_bound, truth_paths
from estimators.slab.loop import BfrMethod, LceMethod, SlabRun, run_slab
from estimators.slab.model import SlabSystem, random_beamformers, subcarrier_indices
from estimators.types import LINEAR_LAYOUT_REL, Area, ArrayGeometry, Observation, Truth, bs_truth
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


class _Slab(Estimator):
    """Algorithm 1 with an LCE and a BFR method (class attributes ``lce``, ``bfr``)."""

    paper: ClassVar[str] = "slab"
    bound: ClassVar[str] = (
        "long-term CRLB (Zhou et al. Lemma 1, eq. 20; FIM eqs. 38, 55) of one slot "
        "sounded with the observation's random precoders, Σ = the truth's path powers: "
        "UE position (plane), yaw, scatterers")
    lce: ClassVar[LceMethod] = "slls"
    bfr: ClassVar[BfrMethod] = "slab"
    #: LCE iterations per slot where ``max_iterations`` is None. SLLS converges in ~5; the
    #: gradient baselines do not reach ``step_tolerance`` in 3000 on the paper setting
    #: (weakly determined scatterer coordinates), so theirs is a budget, and their
    #: snapshots come back ``converged=False`` (docs/estimators/slab.md).
    default_iterations: ClassVar[int] = 50
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "random",
                                          "num_beams": 20, "pilots": "ones",
                                          "closed_loop": True}

    def __init__(
        self,
        *,
        num_bs: int = 3,
        num_nlos: int = 1,
        window: int | None = None,
        area_margin_m: float = 100.0,
        ue_height: float = 0.0,
        max_iterations: int | None = None,
        step_tolerance: float = 1e-7,
        reacquire: bool = True,
    ) -> None:
        self.num_bs = num_bs
        self.num_nlos = num_nlos
        self.window = window
        self.area_margin_m = area_margin_m
        self.ue_height = ue_height
        self.max_iterations = max_iterations
        self.step_tolerance = step_tolerance
        self.reacquire = reacquire

    @property
    def num_scatterers(self) -> int:
        return self.num_bs * self.num_nlos

    def position_dimensions(self, obs: Observation) -> int:
        """2: the model is planar (§II-B), heights are neither estimated nor scored."""
        return 2

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.num_bs < 1 or self.num_nlos < 0:
            raise EstimatorInputError(f"{self.name}: num_bs must be >= 1, num_nlos >= 0")
        if self.window is not None and self.window < 1:
            raise EstimatorInputError(f"{self.name}: window must be >= 1 or None")
        if obs.link != "downlink":
            raise EstimatorInputError(f"{self.name}: needs a downlink observation")
        if obs.sounder is None:
            raise EstimatorInputError(
                f"{self.name}: needs a closed-loop sounder (sounding 'closed_loop')")
        if obs.num_bs < self.num_bs:
            raise EstimatorInputError(
                f"{self.name}: num_bs={self.num_bs} but {obs.num_bs} BS(s) observed")
        count = obs.frequencies.size
        if count % self.num_bs or count < 2 * self.num_bs:
            raise EstimatorInputError(
                f"{self.name}: {count} subcarriers do not interleave over {self.num_bs} BSs")
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
        T = obs.num_snapshots
        J, L = self.num_bs, self.num_nlos
        P, A = L + 1, 2 * J * L + 3
        per_bs = obs.frequencies.size // J
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
        """``Θ_j`` ``[bs, subcarrier]``, 0-based: ``{j, j + J, ...}``."""
        return subcarrier_indices(obs.frequencies.size, self.num_bs) - 1

    def _sound(self, obs: Observation, snapshots: list[int], rng: np.random.Generator
               ) -> Callable[[int, ComplexArray], ComplexArray]:
        """``sound(k, w)`` of snapshot ``snapshots[k]``: BS ``j`` sends ``w[j]`` on ``Θ_j``."""
        sounder = obs.sounder
        assert sounder is not None  # _validate
        theta = self._subcarriers(obs)
        J, B, K = self.num_bs, obs.num_bs, obs.frequencies.size
        pilots = obs.pilots[:, theta]  # [beam, bs, subcarrier]

        def sound(k: int, w: ComplexArray) -> ComplexArray:
            F = np.zeros((B, K, *w.shape[1:3]), dtype=np.complex128)
            for j in range(J):  # the model's element t is antenna N_B - 1 - t (a_B^H)
                F[j, theta[j]] = np.moveaxis(w[j], -1, 0)[:, ::-1]
            y = sounder.sound(snapshots[k], F, rng)
            z = np.stack([y[j][..., theta[j]] for j in range(J)])
            return np.asarray(z / np.moveaxis(pilots, 1, 0)[:, None])

        return sound

    def _area(self, obs: Observation) -> Area:
        """The BSs' bounding box widened by ``area_margin_m``, as corners."""
        xy = obs.bs_position[: self.num_bs, :2]
        lo, hi = xy.min(axis=0) - self.area_margin_m, xy.max(axis=0) + self.area_margin_m
        return ((float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1])))

    # ----------------------------------------------------------------- the loop

    def _estimate(
        self, obs: Observation, rng: np.random.Generator, on_snapshot: Callable[[int], None]
    ) -> Estimate:
        T, J = obs.num_snapshots, self.num_bs
        system = self._system(obs)
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
            try:
                with np.errstate(all="raise"):
                    run = run_slab(
                        self._sound(obs, good, rng), system=system,
                        bs_position=obs.bs_position[:J, :2],
                        bs_orientation=obs.bs_orientation[:J, 0], num_nlos=self.num_nlos,
                        initial_beamformers=w, num_slots=len(good), rng=rng,
                        noise_variance=float(np.mean(obs.noise_variance[good[0], :J])),
                        area=self._area(obs), lce=self.lce, bfr=self.bfr,
                        initial_alpha=alpha, reacquire=self.reacquire, lce_options={
                            "max_iterations": self.max_iterations or self.default_iterations,
                            "step_tolerance": self.step_tolerance},
                    )
            except (np.linalg.LinAlgError, ArithmeticError, ValueError) as exc:
                for t in good:
                    results[t] = (self._failed(f"{type(exc).__name__}: {exc}"[:200]), 0.0)
                continue
            for k, t in enumerate(good):
                results[t] = self._snapshot(run, k)
            alpha, w = run.fused[-1], run.next_beamformers
            on_snapshot(snapshots[-1] + 1)
        return _stack([results[t] for t in range(T)])

    def _snapshot(self, run: SlabRun, k: int) -> tuple[SnapshotEstimate, float]:
        ue = np.array([*run.ue_position[k], self.ue_height])
        points = run.scatterers[k].reshape(-1, 2)
        scatterers = np.column_stack([points, np.full(len(points), self.ue_height)])
        lce = run.lce_results[k]
        result = SnapshotEstimate(
            ue_position=ue, ue_yaw=float(run.ue_yaw[k]),
            scatterers=scatterers, scatterer_valid=np.isfinite(points).all(axis=1),
            path_tau=np.zeros(0), path_aod=np.zeros((0, 2)), path_gain=np.zeros(0, complex),
            converged=bool(lce.converged), reason=lce.reason,
            diagnostics={"position_error_bound": float(run.position_error_bound[k]),
                         "bfr_cost": float(run.bfr_cost[k]),
                         "lce_iterations": float(lce.iterations),
                         "lce_runtime_s": float(run.lce_runtime_s[k]),
                         "bfr_runtime_s": float(run.bfr_runtime_s[k])},
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
        T, J, L = obs.num_snapshots, self.num_bs, self.num_nlos
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
            paths = truth_paths(truth, t, bs_position=obs.bs_position[:J],
                                bs_orientation=obs.bs_orientation[:J, 0], num_nlos=L)
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
                        gain_covariance=covariance[:, :, None] * np.eye(L + 1),
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
