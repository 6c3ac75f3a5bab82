"""SLAB's localization and channel estimation (LCE, §IV) and its two LCE baselines.

One time slot ``k`` observes ``z[k] = G(α; w[k]) h[k] + ε`` (eqs. 11-13, model:
:mod:`estimators.slab.model`). The LCE problem (24) is the least squares
``min_{α, h} ‖z - G(α) h‖²``. It is linear in the fading ``h``: for a given ``α`` the best
``h`` is the least-squares fit (30), so (24) is the *separable* problem on ``α`` alone

    F(α) = min_h ‖z - G(α) h‖² = ‖P⊥_{G(α)} z‖²,                     (24) with (30)

``P⊥`` the projector off the columns of ``G`` (per BS: ``G`` is block diagonal, eq. 14).
Every method here minimises this same ``F`` (variable projection, Golub-Pereyra); they
differ only in the direction on ``α``:

* **SLLS** (:func:`slls`, eqs. 30-36): the Gauss-Newton direction of the linearised model
  (32), ``p = (∇^H g)^† (z - g)`` (34), with the Armijo step (35)-(36). ``α`` is real, so
  the pseudo-inverse is the *real* least squares over ``[Re; Im]`` (the paper solves it
  complex and keeps ``Re{α}``, Algorithm 2 step 6). Two readings of ``∇g``:

  - ``direction="projected"`` (default): the Jacobian of the residual of ``F``,
    ``P⊥ ∂(G h)/∂α`` (Kaufman's variable-projection Gauss-Newton step). It is the α-part
    of the joint Gauss-Newton step on ``β = [α; h]`` of (24), so near a zero-residual
    optimum the convergence is quadratic, Theorem 2 (37).
  - ``direction="alternating"``: (34) literally, ``h`` held at (30) during the α step
    (Algorithm 2 alternates (30) and (35)). Its direction ignores the α-h coupling (the
    ``τ`` columns ``-j2π f_n G`` are strongly correlated with ``G`` itself, all ``f_n > 0``),
    so its rate is only linear; measured in the tests.

  Stopping: the Gauss-Newton step (projected) is an estimate of the distance to the
  local optimum; every method stops when its ``‖·‖_∞`` is below ``step_tolerance``
  [m and rad], or when the decrease of ``F`` it predicts is below ``F``'s float64
  rounding (weakly determined scatterer coordinates reach that floor first), so the
  three methods are compared at the same accuracy.

* **GD-LCE** (:func:`gd_lce`, the paper's "GD-based LCE [33]"): steepest descent
  ``-∇F`` with Armijo backtracking; the trial step starts at ``growth`` times the last
  accepted one (Beck-Teboulle's backtracking for ``growth = 1``).
* **LS-LCE** (:func:`ls_lce`, the paper's "LS-based LCE [34]"): §VII-A says "uses the
  gradient with an Armijo-type line search (LS)", citing Dai, "Conjugate gradient
  methods with Armijo-type line searches" (2002). Read here as that reference's method:
  nonlinear conjugate gradient (Polak-Ribière-Polyak, ``β = max(0, β_PRP)``, restarted
  on ``-∇F`` when the direction is not a sufficient descent direction) with the same
  Armijo backtracking. (The paper's one-line description would otherwise be the same
  as GD with Armijo; its citation is what tells them apart.)

``∇F = -2 Re{(∂(G h)/∂α)^H r}`` at ``h`` = (30) (the envelope theorem: ``r ⟂ G``), the
gradient of (36). ``ϑ`` is wrapped to ``(-π, π]`` after every step.

**Multi-start at the first slot** (§IV-D: "randomly generate multiple samples over the
parameter space of α, try all samples and then choose the best sample with the minimum
cost function value (24) as the initial point"), :func:`multistart`. Uniform samples of
the 9-dimensional ``α`` over the 10⁶ m² area essentially never land in the basin of (24)
(measured: the cost rises over 0-3 m from the true ``x`` or ``v`` and is flat beyond;
0.3 rad in ``ϑ``). The samples are therefore drawn where the data point
(:func:`draw_starts`), keeping the paper's rule (random samples, the lowest cost (24)
wins):

1. Per BS, ``L + 1`` paths ``(τ mod period, sin θ_B, sin θ_U)``: greedy maxima of the
   single-path periodogram ``|c^H z_j|² / ‖c‖²`` (which is (24) for one path with its
   gain (30)), refined by Nelder-Mead on the joint fit.
2. LOS hypotheses: which path of each BS is the LOS, with the front/back (``θ`` vs
   ``π - θ``) and near-endfire grating-alias (``sin θ ∓ 2``) options of each ULA angle;
   the BS-side LOS rays are triangulated, ``ϑ`` fitted to the UE-side sines; the most
   consistent (squared sine misfit) are kept.
3. UE positions drawn at random around each hypothesis (a square spanning the range
   alias below), scored by (24) with the LOS at the sample and the other paths free —
   first through a tabulated periodogram (look-ups), the best few then by (24) itself
   with finer draws around them.
   The best positions of every hypothesis are kept (the second best too: a range
   alias can win within the right hypothesis).
4. Scatterers the same way per BS around the intersections of their paths' BS and UE
   rays (inside ``area``: the front/back symmetry with the range alias also fits points
   kilometres away).
5. A few SLLS iterations from every candidate; the lowest ``F`` is run to convergence.

The delay axis is periodic: a BS's subcarriers are ``J / (N'_C T_s)`` apart
(interleaving, §II-A), so its delays are only known modulo ``N'_C T_s / J`` (100 ns = 30 m
in the paper setting); ranges are resolved by the BSs together, and (24) has local
minima ~30 m apart in ``x`` and in every ``v``.

**Fusion across slots** (eqs. 25-27), :func:`fuse`: the fresh ``α̂[k]`` enters with the
precision ``Λ#[k] = 𝔅_α(α̂[k], ĥ[k]; w[k])^{-1}``, the inverse of the α block of the
inverse instantaneous FIM (eq. 48 of :class:`estimators.slab.bound.SlabFisher`) at the
estimates; ``Λ[0] = 0``. The orientation difference is wrapped before fusing. From slot
2 on the LCE starts at ``ᾱ[k-1]`` (§IV-D).

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: LCE problem (24),
fusion (25)-(27), channel estimate (30), SLLS (31)-(36), Theorem 2 (37), Algorithm 2,
multi-start (§IV-D), baselines (§VII-A), instantaneous FIM (47)-(48).
G. H. Golub, V. Pereyra, "The differentiation of pseudo-inverses and nonlinear least
squares problems whose variables separate", SIAM J. Numer. Anal. 10(2), 1973.
L. Kaufman, "A variable projection method for solving separable nonlinear least squares
problems", BIT 15, 1975.
A. Beck, M. Teboulle, "Gradient-based algorithms with applications to signal recovery",
2009 (the paper's [33]). Y.-H. Dai, "Conjugate gradient methods with Armijo-type line
searches", Acta Math. Appl. Sinica 18(1), 2002 (the paper's [34]).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT
from estimators.fisher import crlb as invert_fim
from estimators.slab.bound import SlabFisher, response_jacobian
from estimators.slab.model import (
    SlabGeometry,
    SlabSample,
    SlabScenario,
    SlabSystem,
    azimuth,
    coefficient_matrix,
    path_responses,
    ula_response,
    wrap_angle,
)
from estimators.typing import ComplexArray, FloatArray

Direction = Literal["projected", "alternating"]
Method = Literal["slls", "gd-lce", "ls-lce"]
Area = tuple[tuple[float, float], tuple[float, float]]
#: ``search(coarse, cost, centers) -> [(cost, point)]``, best first (:func:`_coarse_to_fine`).
Search = Callable[[Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
                   Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
                   npt.NDArray[np.float64]], list[tuple[float, npt.NDArray[np.float64]]]]

#: Index of the UE orientation ``ϑ`` in ``α``.
ORIENTATION = 2
#: Relative rounding of ``F`` (a sum of ~10³ squares in float64), with margin: a
#: Gauss-Newton step predicted to decrease ``F`` by less is numerically converged.
_ROUNDING = 1e3 * float(np.finfo(np.float64).eps)
#: ``|sin θ|`` above which the multi-start also tries the grating alias ``sin θ ∓ 2``.
_ENDFIRE_SINE = 0.85


# ---------------------------------------------------------------------- problem


@dataclass(frozen=True)
class LceProblem:
    """What the UE has at one slot: the known system and BS poses, the BF vectors used
    and the received pilots.

    Attributes
    ----------
    system : arrays and subcarriers (:class:`estimators.slab.model.SlabSystem`).
    bs_position : ``[bs, 2]`` [m], ``u_j``.
    bs_orientation : ``[bs]`` [rad], ``φ_j``.
    num_nlos : ``L``, NLOS paths (scatterers) per BS.
    beamformers : ``[bs, bs_ant, beam, subcarrier]`` complex, ``w[k]``.
    z : ``[bs, ue_ant, beam, subcarrier]`` complex, ``z[k]`` (eq. 11).
    noise_variance : ``σ²`` [W] per UE antenna and sample (only the fusion precision
        (27) uses it).
    area : ``((x_min, x_max), (y_min, y_max))`` [m], where the UE and the scatterers
        are (the region the multi-start draws from).
    """

    system: SlabSystem
    bs_position: FloatArray
    bs_orientation: FloatArray
    num_nlos: int
    beamformers: ComplexArray
    z: ComplexArray
    noise_variance: float
    area: Area = ((0.0, 1000.0), (0.0, 1000.0))

    def __post_init__(self) -> None:
        J = self.bs_position.shape[0]
        NB, NU = self.system.num_bs_antennas, self.system.num_ue_antennas
        K = self.system.num_subcarriers_per_bs
        w, z = self.beamformers, self.z
        if w.ndim != 4 or w.shape[:2] != (J, NB) or w.shape[3] != K:
            raise ValueError(f"beamformers: expected [{J}, {NB}, beam, {K}], got {w.shape}")
        if z.shape != (J, NU, w.shape[2], K):
            raise ValueError(f"z: expected {(J, NU, w.shape[2], K)}, got {z.shape}")

    @classmethod
    def from_sample(cls, scenario: SlabScenario, sample: SlabSample, slot: int = 0
                    ) -> LceProblem:
        """Slot ``slot`` of a :meth:`SlabScenario.sample` (BS poses and ``L`` from the
        scenario; the scenario's truth is not used)."""
        truth = scenario.geometry()
        return cls(system=scenario.system(), bs_position=truth.bs_position,
                   bs_orientation=truth.bs_orientation, num_nlos=truth.num_nlos,
                   beamformers=np.asarray(sample.beamformers[slot]),
                   z=np.asarray(sample.z[slot]), noise_variance=sample.noise_variance,
                   area=((0.0, scenario.area_m), (0.0, scenario.area_m)))

    @property
    def num_bs(self) -> int:
        return int(self.bs_position.shape[0])

    @property
    def num_alpha(self) -> int:
        """``2 J L + 3``."""
        return 2 * self.num_bs * self.num_nlos + 3

    def geometry(self, alpha: npt.ArrayLike) -> SlabGeometry:
        """The geometry with location parameters ``alpha [2JL + 3]``."""
        a = np.asarray(alpha, dtype=np.float64)
        if a.shape != (self.num_alpha,):
            raise ValueError(f"alpha: expected shape ({self.num_alpha},), got {a.shape}")
        return SlabGeometry(
            bs_position=self.bs_position, bs_orientation=self.bs_orientation,
            ue_position=a[:2].copy(), ue_orientation=float(a[ORIENTATION]),
            scatterers=a[3:].reshape(self.num_bs, self.num_nlos, 2),
        )


# ------------------------------------------------------------- cost and derivatives


@dataclass(frozen=True)
class _Fit:
    """``F(α)`` and what the directions need at one ``α``.

    ``cost`` ``F`` (24), ``gains [bs, path]`` ``h`` (30), ``residual [bs, obs]``
    ``z - G h``, ``jacobian [bs, obs, alpha]`` ``∂(G h)/∂α`` and ``projected`` its part
    off the columns of ``G`` (both ``None`` unless asked for).
    """

    cost: float
    gains: ComplexArray
    residual: ComplexArray
    jacobian: ComplexArray | None = None
    projected: ComplexArray | None = None


def _fit(problem: LceProblem, alpha: FloatArray, *, derivatives: bool) -> _Fit:
    geometry = problem.geometry(alpha)
    mu = path_responses(problem.system, geometry)
    G = coefficient_matrix(mu, problem.beamformers)  # [bs, r, m, k, path]
    J, P = G.shape[0], G.shape[-1]
    cols = G.reshape(J, -1, P)
    z = problem.z.reshape(J, -1)
    gains = np.empty((J, P), dtype=np.complex128)
    for j in range(J):
        gains[j] = np.linalg.lstsq(cols[j], z[j], rcond=None)[0]  # (30)
    residual = z - np.einsum("bop,bp->bo", cols, gains)
    cost = float(np.sum(np.abs(residual) ** 2))
    if not derivatives:
        return _Fit(cost=cost, gains=gains, residual=residual)
    dmu = response_jacobian(problem.system, geometry, mu)
    dG = np.einsum("bkrtpa,btmk->brmkpa", dmu, problem.beamformers)
    jac = np.einsum("brmkpa,bp->brmka", dG, gains).reshape(J, -1, problem.num_alpha)
    projected = np.empty_like(jac)
    for j in range(J):
        coeff = np.linalg.lstsq(cols[j], jac[j], rcond=None)[0]
        projected[j] = jac[j] - cols[j] @ coeff
    return _Fit(cost=cost, gains=gains, residual=residual, jacobian=jac, projected=projected)


def lce_cost(problem: LceProblem, alpha: npt.ArrayLike) -> float:
    """The LCE cost (24) with the fading fitted by (30): ``F(α) = min_h ‖z - G(α) h‖²``.

    Parameters
    ----------
    problem : one slot's data.
    alpha : ``[2JL + 3]`` [m, rad, m], ``α = [x; ϑ; v]``.

    Returns
    -------
    ``F`` [W] (sum of squared sample magnitudes).
    """
    return _fit(problem, np.asarray(alpha, dtype=np.float64), derivatives=False).cost


def channel_estimate(problem: LceProblem, alpha: npt.ArrayLike) -> ComplexArray:
    """``ĥ = G(α)^† z`` (30), ``[bs, path]`` complex."""
    return _fit(problem, np.asarray(alpha, dtype=np.float64), derivatives=False).gains


def _real(m: ComplexArray) -> FloatArray:
    """Stack ``[Re; Im]`` along the first axis (observations of a real parameter)."""
    return np.concatenate([m.real, m.imag], axis=0)


def _gradient(fit: _Fit) -> FloatArray:
    """``∇F = -2 Re{(∂(G h)/∂α)^H r}`` ``[alpha]`` (the gradient in (36))."""
    assert fit.jacobian is not None
    return np.asarray(-2.0 * np.real(np.einsum("boa,bo->a", fit.jacobian.conj(), fit.residual)))


def _gauss_newton(fit: _Fit, direction: Direction) -> FloatArray:
    """The SLLS direction (34) as a real least squares, columns scaled to unit norm."""
    jac = fit.projected if direction == "projected" else fit.jacobian
    assert jac is not None
    A = _real(jac.reshape(-1, jac.shape[-1]))
    b = _real(fit.residual.reshape(-1))
    norms = np.linalg.norm(A, axis=0)
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    q = np.linalg.lstsq(A * scale, b, rcond=None)[0]
    return np.asarray(q * scale)


def _wrapped(alpha: FloatArray) -> FloatArray:
    out = alpha.copy()
    out[ORIENTATION] = float(wrap_angle(out[ORIENTATION]))
    return out


# ------------------------------------------------------------------------ results


@dataclass(frozen=True)
class LceResult:
    """One slot's LCE (:func:`slls`, :func:`gd_lce`, :func:`ls_lce`).

    Attributes
    ----------
    method : ``"slls"``, ``"gd-lce"`` or ``"ls-lce"``.
    alpha : ``[2JL + 3]`` [m, rad, m], the fresh estimate ``α̂[k]``.
    gains : ``[bs, path]`` complex, ``ĥ[k]`` (30) at ``alpha``.
    iterations : accepted updates of ``α``.
    cost_history : ``[iterations + 1]`` [W], ``F`` at the start and after each update.
    alpha_history : ``[iterations + 1, 2JL + 3]``, the iterates.
    step_history : ``[iterations + 1]`` [m, rad], ``‖·‖_∞`` of the Gauss-Newton step at
        each iterate (the stopping measure).
    converged : the last Gauss-Newton step is below the tolerance, or the decrease of
        ``F`` it predicts is below ``F``'s float64 rounding (``1e3 ε F``).
    reason : why not converged (``""`` if converged).
    runtime_s : [s] wall time.
    """

    method: str
    alpha: FloatArray
    gains: ComplexArray
    iterations: int
    cost_history: FloatArray
    alpha_history: FloatArray
    step_history: FloatArray
    converged: bool
    reason: str
    runtime_s: float

    @property
    def cost(self) -> float:
        """Final ``F`` [W]."""
        return float(self.cost_history[-1])

    @property
    def ue_position(self) -> FloatArray:
        """``[2]`` [m]."""
        return self.alpha[:2]

    @property
    def ue_orientation(self) -> float:
        """[rad]."""
        return float(self.alpha[ORIENTATION])

    @property
    def scatterers(self) -> FloatArray:
        """``[bs, nlos, 2]`` [m]."""
        J = self.gains.shape[0]
        return self.alpha[3:].reshape(J, -1, 2)


def _descend(
    problem: LceProblem, alpha0: npt.ArrayLike, *, method: str, max_iterations: int,
    step_tolerance: float, armijo_slope: float, armijo_shrink: float,
    max_backtracks: int, direction: Direction, initial_step: float, growth: float,
) -> LceResult:
    start = time.perf_counter()
    alpha = _wrapped(np.asarray(alpha0, dtype=np.float64))
    fit = _fit(problem, alpha, derivatives=True)
    costs, alphas, steps = [fit.cost], [alpha], []
    converged, reason = False, f"no convergence in {max_iterations} iterations"
    previous_gradient: FloatArray | None = None
    previous_direction: FloatArray | None = None
    gamma = np.nan
    for _ in range(max_iterations + 1):
        newton = _gauss_newton(fit, "projected")
        steps.append(float(np.max(np.abs(newton))))
        if not np.all(np.isfinite(newton)):
            reason = "non-finite Gauss-Newton step"
            break
        gradient = _gradient(fit)
        # Predicted decrease of F along the Gauss-Newton step, -∇F·p/2: below the
        # rounding of F the cost cannot tell iterates apart any more.
        floor = float(-gradient @ newton) / 2 <= _ROUNDING * fit.cost
        if steps[-1] <= step_tolerance or floor:
            converged, reason = True, ""
            break
        if len(costs) > max_iterations:
            break
        if method == "slls":
            d = newton if direction == "projected" else _gauss_newton(fit, direction)
            trial = 1.0
        else:
            d = -gradient
            if method == "ls-lce" and previous_gradient is not None:
                assert previous_direction is not None
                beta = float(gradient @ (gradient - previous_gradient)) / float(
                    previous_gradient @ previous_gradient)
                d = -gradient + max(beta, 0.0) * previous_direction
                if gradient @ d > -1e-3 * np.linalg.norm(gradient) * np.linalg.norm(d):
                    d = -gradient  # restart
            largest = float(np.max(np.abs(d)))
            trial = initial_step / largest if np.isnan(gamma) else gamma * growth
            trial = min(trial, 1e3 * initial_step / largest)
        slope = float(gradient @ d)
        if not slope < 0:
            reason = "not a descent direction"
            break
        gamma = trial
        for _ in range(max_backtracks):
            candidate = _wrapped(alpha + gamma * d)
            new = _fit(problem, candidate, derivatives=False).cost
            if new <= fit.cost + armijo_slope * gamma * slope:  # Armijo (36)
                break
            gamma *= armijo_shrink
        else:
            reason = "Armijo line search failed"
            break
        previous_gradient, previous_direction = gradient, d
        alpha = candidate
        fit = _fit(problem, alpha, derivatives=True)
        costs.append(fit.cost)
        alphas.append(alpha)
    return LceResult(
        method=method, alpha=alpha, gains=fit.gains, iterations=len(costs) - 1,
        cost_history=np.asarray(costs), alpha_history=np.asarray(alphas),
        step_history=np.asarray(steps[: len(costs)]), converged=converged, reason=reason,
        runtime_s=time.perf_counter() - start,
    )


def slls(
    problem: LceProblem, alpha0: npt.ArrayLike, *, max_iterations: int = 50,
    step_tolerance: float = 1e-7, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 40, direction: Direction = "projected",
) -> LceResult:
    """SLLS-based LCE of one slot (Algorithm 2 steps 1-6, eqs. 30-36).

    Parameters
    ----------
    problem : the slot's data.
    alpha0 : ``[2JL + 3]`` [m, rad, m], the initial point ``α_[0]``.
    max_iterations : ``M_I``, at most this many updates.
    step_tolerance : [m, rad], stop when the Gauss-Newton step's largest entry is below.
    armijo_slope : ``a`` of (36).
    armijo_shrink : ``ν`` of the backtracking (``γ ← ν γ`` from ``γ = 1``).
    max_backtracks : trials of the line search before giving up.
    direction : ``"projected"`` (variable projection; default) or ``"alternating"``
        ((34) with ``h`` held at (30)); see the module docstring.

    Returns
    -------
    :class:`LceResult` with ``method = "slls"``.

    References
    ----------
    Zhou, Liu, Lau 2019, eqs. (24), (30)-(36), Theorem 2 (37), Algorithm 2.
    """
    return _descend(problem, alpha0, method="slls", max_iterations=max_iterations,
                    step_tolerance=step_tolerance, armijo_slope=armijo_slope,
                    armijo_shrink=armijo_shrink, max_backtracks=max_backtracks,
                    direction=direction, initial_step=1.0, growth=1.0)


def gd_lce(
    problem: LceProblem, alpha0: npt.ArrayLike, *, max_iterations: int = 500,
    step_tolerance: float = 1e-7, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 60, initial_step: float = 1.0, growth: float = 2.0,
) -> LceResult:
    """GD-based LCE baseline (§VII-A, [33]): steepest descent on ``F`` with Armijo steps.

    Parameters
    ----------
    problem, alpha0 : as :func:`slls`.
    max_iterations, step_tolerance, armijo_slope, armijo_shrink, max_backtracks : as
        :func:`slls` (the same stopping measure: the Gauss-Newton step at the iterate).
    initial_step : [m, rad], largest entry of the first trial step.
    growth : each later trial step is ``growth`` times the last accepted one
        (``1``: Beck-Teboulle's non-increasing backtracking).

    Returns
    -------
    :class:`LceResult` with ``method = "gd-lce"``.

    References
    ----------
    Zhou, Liu, Lau 2019, (24), (36), §VII-A; Beck, Teboulle 2009.
    """
    return _descend(problem, alpha0, method="gd-lce", max_iterations=max_iterations,
                    step_tolerance=step_tolerance, armijo_slope=armijo_slope,
                    armijo_shrink=armijo_shrink, max_backtracks=max_backtracks,
                    direction="projected", initial_step=initial_step, growth=growth)


def ls_lce(
    problem: LceProblem, alpha0: npt.ArrayLike, *, max_iterations: int = 500,
    step_tolerance: float = 1e-7, armijo_slope: float = 1e-4, armijo_shrink: float = 0.5,
    max_backtracks: int = 60, initial_step: float = 1.0, growth: float = 2.0,
) -> LceResult:
    """LS-based LCE baseline (§VII-A, [34]): PRP+ conjugate gradient on ``F`` with
    Armijo-type backtracking (reading: module docstring).

    Parameters
    ----------
    problem, alpha0, max_iterations, step_tolerance, armijo_slope, armijo_shrink,
    max_backtracks, initial_step, growth : as :func:`gd_lce`.

    Returns
    -------
    :class:`LceResult` with ``method = "ls-lce"``.

    References
    ----------
    Zhou, Liu, Lau 2019, (24), (36), §VII-A; Dai 2002.
    """
    return _descend(problem, alpha0, method="ls-lce", max_iterations=max_iterations,
                    step_tolerance=step_tolerance, armijo_slope=armijo_slope,
                    armijo_shrink=armijo_shrink, max_backtracks=max_backtracks,
                    direction="projected", initial_step=initial_step, growth=growth)


# ------------------------------------------------------------------- multi-start


def _delay_period(frequencies: FloatArray) -> float:
    """[s] ``1 / Δf`` of evenly spaced subcarriers: delays are known modulo it."""
    spacing = np.diff(frequencies)
    if spacing.size == 0:
        return float("inf")
    if not np.allclose(spacing, spacing[0], rtol=1e-9, atol=0):
        raise ValueError("multistart needs evenly spaced subcarriers per BS")
    return float(1.0 / abs(spacing[0]))


def _columns(problem: LceProblem, bs: int, tau: npt.ArrayLike, sin_aod: npt.ArrayLike,
             sin_aoa: npt.ArrayLike) -> ComplexArray:
    """Single-path columns of ``G`` (eq. 14) of BS ``bs`` for paths ``[n]`` given by
    ``τ`` [s], ``sin θ_B``, ``sin θ_U``: ``[n, ue_ant · beam · subcarrier]``."""
    sysm = problem.system
    lam, f = sysm.wavelengths[bs], sysm.frequencies[bs]
    t = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    aod = np.arcsin(np.clip(np.atleast_1d(np.asarray(sin_aod, dtype=np.float64)), -1, 1))
    aoa = np.arcsin(np.clip(np.atleast_1d(np.asarray(sin_aoa, dtype=np.float64)), -1, 1))
    a_u = ula_response(sysm.num_ue_antennas, spacing=sysm.ue_spacing, wavelength=lam,
                       angle=aoa[:, None])  # [n, subcarrier, ue_ant]
    a_b = ula_response(sysm.num_bs_antennas, spacing=sysm.bs_spacing, wavelength=lam,
                       angle=aod[:, None])
    w = problem.beamformers[bs]  # [bs_ant, beam, subcarrier]
    beams = np.matmul(a_b.conj().transpose(1, 0, 2), w.transpose(2, 0, 1))  # [k, n, m]
    delay = np.exp(-2j * np.pi * t[:, None] * f[None, :])  # [n, k]
    ue = (sysm.amplitude * a_u * delay[:, :, None]).transpose(0, 2, 1)  # [n, r, k]
    col = ue[:, :, None, :] * beams.transpose(1, 2, 0)[:, None, :, :]  # [n, r, m, k]
    return np.asarray(col.reshape(col.shape[0], -1))


def _off(basis: ComplexArray | None, data: ComplexArray) -> ComplexArray:
    """``data [..., obs]`` projected off the columns of ``basis [obs, q]``."""
    if basis is None or basis.shape[1] == 0:
        return data
    q = np.linalg.qr(basis)[0]
    return np.asarray(data - (data @ q.conj()) @ q.T)


def _gain_of_fit(basis: ComplexArray | None, data: ComplexArray, cols: ComplexArray
                 ) -> FloatArray:
    """Decrease of ``‖data - [basis, c] h‖²`` over ``‖data - basis h‖²`` for every column
    ``c`` of ``cols [n, obs]``: ``|c'^H d'|² / ‖c'‖²`` with ``'`` off ``basis``."""
    d, c = _off(basis, data), _off(basis, cols)
    norm = np.sum(np.abs(c) ** 2, axis=-1)
    return np.asarray(np.abs(c.conj() @ d) ** 2 / np.where(norm > 0, norm, np.inf))


@dataclass(frozen=True)
class _Periodogram:
    """Single-path periodogram ``|c^H d|² / ‖c‖²`` of one BS's data ``d`` on a grid: the
    decrease of ``‖d - c h‖²`` by one path ``c(τ, θ_B, θ_U)`` with its gain fitted (30).

    ``power [sin_aoa, sin_aod, delay]`` [W] on ``sin θ = -1 + 2 i / n`` and
    ``τ = period · i / n_delay``; the delay axis is periodic (``period`` [s]).
    """

    power: FloatArray
    period: float

    @property
    def sines(self) -> FloatArray:
        n = self.power.shape[0]
        return np.asarray(-1.0 + 2.0 * np.arange(n) / n)

    @property
    def delays(self) -> FloatArray:
        n = self.power.shape[2]
        return np.asarray(self.period * np.arange(n) / n)

    def lookup(self, tau: FloatArray, sin_aod: FloatArray, sin_aoa: FloatArray) -> FloatArray:
        """Nearest-grid values at ``τ`` [s], ``sin θ_B``, ``sin θ_U`` (any equal shapes)."""
        nu, nb, nd = self.power.shape
        iu = np.clip(np.rint((sin_aoa + 1) * nu / 2).astype(np.intp), 0, nu - 1)
        ib = np.clip(np.rint((sin_aod + 1) * nb / 2).astype(np.intp), 0, nb - 1)
        idd = np.rint(np.mod(tau, self.period) / self.period * nd).astype(np.intp) % nd
        return np.asarray(self.power[iu, ib, idd])


def _period(problem: LceProblem, bs: int) -> float:
    """[s] the delay period of BS ``bs`` (a span beyond all delays for one subcarrier)."""
    period = _delay_period(problem.system.frequencies[bs])
    return period if np.isfinite(period) else 1e-3


def _periodogram(problem: LceProblem, bs: int, data: ComplexArray, *, angle_grid: int,
                 delay_grid: int) -> _Periodogram:
    """:class:`_Periodogram` of ``data [ue_ant · beam · subcarrier]`` of BS ``bs``."""
    sysm = problem.system
    lam, f = sysm.wavelengths[bs], sysm.frequencies[bs]
    period = _period(problem, bs)
    sines = -1.0 + 2.0 * np.arange(angle_grid) / angle_grid
    angles = np.arcsin(sines)[:, None]
    a_u = ula_response(sysm.num_ue_antennas, spacing=sysm.ue_spacing, wavelength=lam,
                       angle=angles)  # [sin_aoa, subcarrier, ue_ant]
    a_b = ula_response(sysm.num_bs_antennas, spacing=sysm.bs_spacing, wavelength=lam,
                       angle=angles)  # [sin_aod, subcarrier, bs_ant]
    beams = np.einsum("bkt,tmk->bmk", a_b.conj(), problem.beamformers[bs])  # a_B^H ω
    norm = sysm.amplitude**2 * sysm.num_ue_antennas * np.sum(np.abs(beams) ** 2, axis=(1, 2))
    taus = period * np.arange(delay_grid) / delay_grid
    cube = data.reshape(problem.z[bs].shape).transpose(2, 0, 1)  # [k, r, m]
    combined = np.matmul(a_u.conj().transpose(1, 0, 2), cube)  # [k, sin_aoa, m]
    per_carrier = np.matmul(combined, beams.conj().transpose(2, 1, 0))  # [k, u, b]
    spectrum = per_carrier.transpose(1, 2, 0) @ np.exp(2j * np.pi * np.outer(f, taus))
    power = sysm.amplitude**2 * np.abs(spectrum) ** 2 / np.where(
        norm > 0, norm, np.inf)[None, :, None]
    return _Periodogram(power=np.asarray(power), period=period)


def _extract_paths(problem: LceProblem, bs: int, count: int, *, angle_grid: int,
                   delay_grid: int, refine_passes: int,
                   known: ComplexArray | None = None) -> FloatArray:
    """``count`` paths of BS ``bs``, ``[path, (τ, sin θ_B, sin θ_U)]``, strongest first.

    Greedy: the maximum of the single-path periodogram (the cost (24) of one path with its
    gain (30)) of the residual on a (``sin θ_U``, ``sin θ_B``, delay) grid, refined by
    Nelder-Mead on the joint fit with the paths found so far, then ``refine_passes``
    cyclic re-refinements of each path with the others fixed. ``τ`` is modulo the
    delay period. ``known [obs, q]``: columns of paths already known (e.g. the LOS at a
    known UE), fitted along with every path and never returned.
    """
    from scipy.optimize import minimize  # local: keeps the module import light

    data = problem.z[bs].reshape(-1)
    period = _period(problem, bs)
    scale = np.array([1e9, 1.0, 1.0])  # Nelder-Mead in (ns, sin, sin)

    def with_known(paths: FloatArray) -> ComplexArray | None:
        cols = [_columns(problem, bs, *paths.T).T] if len(paths) else []
        if known is not None:
            cols.append(known)
        return np.hstack(cols) if cols else None

    def refine(p: FloatArray, others: FloatArray) -> FloatArray:
        basis = with_known(others)
        q_basis = np.linalg.qr(basis)[0] if basis is not None else np.zeros((data.size, 0))
        d = data - q_basis @ (q_basis.conj().T @ data)

        def loss(q: FloatArray) -> float:
            c = _columns(problem, bs, *(q / scale))[0]
            c = c - q_basis @ (q_basis.conj().T @ c)
            return -float(np.abs(np.vdot(c, d)) ** 2 / max(np.vdot(c, c).real, 1e-300))

        out = minimize(loss, p * scale, method="Nelder-Mead",
                       options={"xatol": 1e-3, "fatol": 1e-8 * np.vdot(d, d).real,
                                "initial_simplex": p * scale + np.vstack(
                                    [np.zeros(3), np.diag([0.5, 0.02, 0.02])]),
                                "maxiter": 600})
        q = out.x / scale
        return np.array([np.mod(q[0], period), np.clip(q[1], -1, 1), np.clip(q[2], -1, 1)])

    paths = np.zeros((0, 3))
    for _ in range(count):
        table = _periodogram(problem, bs, _off(with_known(paths), data), angle_grid=angle_grid,
                             delay_grid=delay_grid)
        iu, ib, idd = np.unravel_index(int(np.argmax(table.power)), table.power.shape)
        guess = np.array([table.delays[idd], table.sines[ib], table.sines[iu]])
        paths = np.vstack([paths, refine(guess, paths)])
    for _ in range(refine_passes):
        for q in range(count):
            paths[q] = refine(paths[q], np.delete(paths, q, axis=0))
    return paths


@dataclass(frozen=True)
class _Hypothesis:
    """Which extracted path of each BS is the LOS, where the LOS rays meet, and the LOS
    AOAs (front/back and grating alias resolved at that position).

    ``score`` [sin²], ``position [2]`` [m], ``los [bs]``, ``aoa [bs]`` ``θ_U`` [rad].
    """

    score: float
    position: FloatArray
    los: tuple[int, ...]
    aoa: FloatArray


def _sine_options(sine: float) -> list[float]:
    """``sin θ`` and, near endfire, its grating alias: a half-wavelength ULA's phase
    ``π (λ_c/λ_n) sin θ`` cannot tell ``sin θ`` from ``sin θ ∓ 2`` (``|sin θ| → 1``)."""
    out = [sine]
    if abs(sine) > _ENDFIRE_SINE:
        out.append(float(np.clip(sine - 2 * np.sign(sine), -1, 1)))
    return out


def _angle_options(sine: float) -> list[float]:
    """Angles ``θ`` with this ``sin θ`` or its alias, both front (``arcsin``) and back
    (``π - arcsin``) of the ULA."""
    return [a for s in _sine_options(sine) for a in (np.arcsin(s), np.pi - np.arcsin(s))]


def _nearest(values: list[float], target: float) -> float:
    """The one of ``values`` nearest ``target``."""
    return float(values[int(np.argmin(np.abs(np.asarray(values) - target)))])


def _closest(angles: list[float], target: float) -> float:
    """The one of ``angles`` [rad] nearest ``target`` on the circle."""
    gaps = np.abs(wrap_angle(np.asarray(angles) - target))
    return float(angles[int(np.argmin(gaps))])


def _triangulate(origins: FloatArray, bearings: FloatArray, weights: FloatArray
                 ) -> FloatArray | None:
    """Weighted least-squares intersection of the rays ``origins[j] + t e(bearings[j])``;
    ``None`` unless it lies ahead (``t > 0``) on every ray."""
    normals = np.stack([-np.sin(bearings), np.cos(bearings)], axis=-1)
    A = np.einsum("j,ji,jk->ik", weights, normals, normals)
    if np.linalg.cond(A) > 1e8:
        return None
    x = np.linalg.solve(A, np.einsum("j,ji,jk,jk->i", weights, normals, normals, origins))
    along = np.einsum("jk,jk->j", x - origins,
                      np.stack([np.cos(bearings), np.sin(bearings)], axis=-1))
    return x if np.all(along > 0) else None


def _orientation(problem: LceProblem, positions: FloatArray, sin_aoa: FloatArray
                 ) -> FloatArray:
    """``ϑ [n]`` for UE positions ``[n, 2]``: the grid point (1°) that best fits the LOS
    sines ``sin(az(u_j - x) - ϑ) ≈ sin_aoa[j]`` in least squares."""
    grid = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    back = azimuth(problem.bs_position[None, :, :] - positions[:, None, :])  # [n, bs]
    misfit = np.sum((np.sin(back[:, None, :] - grid[None, :, None]) - sin_aoa) ** 2, axis=-1)
    return np.asarray(grid[np.argmin(misfit, axis=1)])


def _orientation_from(problem: LceProblem, positions: FloatArray, aoa: FloatArray
                      ) -> FloatArray:
    """``ϑ [n]`` for UE positions ``[n, 2]``: circular mean over BSs of
    ``az(u_j - x) - θ_U,j``, weighted by ``cos² θ_U,j`` (a ULA's angle precision)."""
    back = azimuth(problem.bs_position[None, :, :] - positions[:, None, :])  # [n, bs]
    weights = np.cos(aoa) ** 2 + 1e-3
    return np.asarray(np.angle(np.sum(weights * np.exp(1j * (back - aoa)), axis=-1)))


def _los_hypotheses(problem: LceProblem, paths: Sequence[FloatArray], count: int
                    ) -> list[_Hypothesis]:
    """The ``count`` most consistent LOS assignments, in the sine domain (where a ULA's
    precision is uniform): each assignment's LOS rays (front/back and endfire aliases)
    are triangulated, weighted by ``cos² θ_B``; score = squared misfit of the LOS sines at
    both ends, the UE's with the best ``ϑ``."""
    import itertools

    u, phi, J = problem.bs_position, problem.bs_orientation, problem.num_bs
    found: list[_Hypothesis] = []
    for los in itertools.product(*(range(len(p)) for p in paths)):
        sb = np.array([paths[j][los[j], 1] for j in range(J)])
        su_options = [_sine_options(paths[j][los[j], 2]) for j in range(J)]
        for aod in itertools.product(*(_angle_options(s) for s in sb)):
            x = _triangulate(u, phi + np.asarray(aod), np.cos(np.asarray(aod)) ** 2 + 1e-3)
            if x is None or not _inside(problem.area, x):
                continue
            predicted = np.sin(azimuth(x - u) - phi)
            misfit_b = sum(min((predicted[j] - o) ** 2 for o in _sine_options(sb[j]))
                           for j in range(J))
            for su in itertools.product(*su_options):
                sin_aoa = np.asarray(su)
                theta = _orientation(problem, x[None], sin_aoa)[0]
                back = azimuth(u - x)
                misfit_u = float(np.sum((np.sin(back - theta) - sin_aoa) ** 2))
                aoa = np.array([_closest(_angle_options(float(sin_aoa[j])),
                                         float(back[j] - theta)) for j in range(J)])
                found.append(_Hypothesis(score=float(misfit_b) + misfit_u, position=x, los=los,
                                         aoa=aoa))
    found.sort(key=lambda h: h.score)
    polished: list[_Hypothesis] = []
    for h in found:  # the best distinct ones, polished
        if all(np.linalg.norm(h.position - k.position) > 1.0 for k in polished):
            polished.append(_polish(problem, paths, h))
        if len(polished) == 4 * count:
            break
    polished.sort(key=lambda h: h.score)
    kept: list[_Hypothesis] = []
    for h in polished:  # distinct positions, at most two per LOS assignment
        if (all(np.linalg.norm(h.position - k.position) > 1.0 for k in kept)
                and sum(k.los == h.los for k in kept) < 2):
            kept.append(h)
        if len(kept) == count:
            break
    return kept


def _polish(problem: LceProblem, paths: Sequence[FloatArray], hyp: _Hypothesis
            ) -> _Hypothesis:
    """The hypothesis' ``x`` and ``ϑ`` refined by least squares on the LOS sine misfits
    at both ends (the alias options nearest the start), and re-scored."""
    from scipy.optimize import least_squares  # local: keeps the module import light

    u, phi, J = problem.bs_position, problem.bs_orientation, problem.num_bs
    x0 = hyp.position
    theta0 = float(_orientation_from(problem, x0[None], hyp.aoa)[0])
    predicted = np.sin(azimuth(x0 - u) - phi)
    sb = np.array([_nearest(_sine_options(paths[j][hyp.los[j], 1]), float(predicted[j]))
                   for j in range(J)])
    su = np.sin(hyp.aoa)
    scale = 100.0  # [m] per unit of the position unknowns

    def residual(p: FloatArray) -> FloatArray:
        x = x0 + scale * p[:2]
        return np.concatenate([np.sin(azimuth(x - u) - phi) - sb,
                               np.sin(azimuth(u - x) - p[2]) - su])

    out = least_squares(residual, np.array([0.0, 0.0, theta0]), method="lm")
    x = x0 + scale * out.x[:2]
    if not _inside(problem.area, x):
        return hyp
    back = azimuth(u - x)
    aoa = np.array([_closest(_angle_options(float(su[j])), float(back[j] - out.x[2]))
                    for j in range(J)])
    return _Hypothesis(score=float(np.sum(out.fun**2)), position=x, los=hyp.los, aoa=aoa)


def _los_columns(problem: LceProblem, bs: int, positions: FloatArray, theta: FloatArray
                 ) -> ComplexArray:
    d = positions - problem.bs_position[bs]
    return _columns(problem, bs, np.linalg.norm(d, axis=-1) / SPEED_OF_LIGHT,
                    np.sin(azimuth(d) - problem.bs_orientation[bs]),
                    np.sin(azimuth(-d) - theta))


def _nlos_columns(problem: LceProblem, bs: int, points: FloatArray, position: FloatArray,
                  theta: float) -> ComplexArray:
    dep, arr = points - problem.bs_position[bs], points - position
    length = np.linalg.norm(dep, axis=-1) + np.linalg.norm(arr, axis=-1)
    return _columns(problem, bs, length / SPEED_OF_LIGHT,
                    np.sin(azimuth(dep) - problem.bs_orientation[bs]),
                    np.sin(azimuth(arr) - theta))


def _inside(area: Area, point: FloatArray) -> bool:
    (x0, x1), (y0, y1) = area
    return bool(x0 <= point[0] <= x1 and y0 <= point[1] <= y1)


def _scatterer_guesses(problem: LceProblem, bs: int, path: FloatArray, position: FloatArray,
                       theta: float) -> FloatArray:
    """``[option, 2]``: intersections of the path's BS ray and UE ray over the front/back
    (and endfire alias) options of both angles that meet in front of both ends and
    inside ``area`` (the
    ULA's front/back symmetry with the delay period also fits far-away points); the
    midpoint of BS and UE if none does."""
    u, phi = problem.bs_position[bs], problem.bs_orientation[bs]
    out = []
    for aod in _angle_options(path[1]):
        for aoa in _angle_options(path[2]):
            e1 = np.array([np.cos(phi + aod), np.sin(phi + aod)])
            e2 = np.array([np.cos(theta + aoa), np.sin(theta + aoa)])
            A = np.stack([e1, -e2], axis=-1)
            if abs(np.linalg.det(A)) < 1e-9:
                continue
            s, t = np.linalg.solve(A, position - u)
            if s > 0 and t > 0 and _inside(problem.area, u + s * e1):
                out.append(u + s * e1)
    return np.asarray(out) if out else (u + 0.5 * (position - u))[None]


def _coarse_to_fine(
    coarse: Callable[[FloatArray], FloatArray], cost: Callable[[FloatArray], FloatArray],
    centers: FloatArray, rng: np.random.Generator, *, radius: float, samples: int, keep: int,
    fine_radius: float, fine_samples: int,
) -> list[tuple[float, FloatArray]]:
    """Random search of a cost of points ``[n, 2]`` (lower is better): the ``centers``
    and ``samples`` uniform draws in a square of half-side ``radius`` around each, scored
    by the ``coarse`` approximation of ``cost``; the ``keep`` best at least
    ``2 fine_radius`` apart each get ``fine_samples`` draws in a square of half-side
    ``fine_radius``, scored by ``cost``. Returns ``(cost, point)`` of the best of each of
    those, best first."""
    draws = np.vstack([centers, *(c + rng.uniform(-radius, radius, (samples, 2))
                                  for c in centers)])
    values = coarse(draws)
    kept = _best_apart(draws, -values, keep, 2 * fine_radius)
    out = []
    for p in kept:
        fine = np.vstack([p, p + rng.uniform(-fine_radius, fine_radius, (fine_samples, 2))])
        fine_values = cost(fine)
        i = int(np.argmin(fine_values))
        out.append((float(fine_values[i]), fine[i]))
    return sorted(out, key=lambda t: t[0])


def _searcher(rng: np.random.Generator, *, num_samples: int, search_radius_m: float,
              num_fine_samples: int, fine_radius_m: float, num_kept: int) -> Search:
    """:func:`_coarse_to_fine` with the draws' sizes bound (the multi-start's options)."""

    def search(coarse: Callable[[FloatArray], FloatArray],
               cost: Callable[[FloatArray], FloatArray], centers: FloatArray
               ) -> list[tuple[float, FloatArray]]:
        return _coarse_to_fine(coarse, cost, centers, rng, radius=search_radius_m,
                               samples=num_samples, keep=num_kept, fine_radius=fine_radius_m,
                               fine_samples=num_fine_samples)

    return search


def _best_apart(points: FloatArray, scores: FloatArray, count: int, spacing: float
                ) -> FloatArray:
    """Up to ``count`` highest-scoring ``points [n, 2]``, pairwise at least ``spacing``
    apart (greedy non-maximum suppression)."""
    chosen: list[FloatArray] = []
    for i in np.argsort(scores)[::-1]:
        if all(np.linalg.norm(points[i] - c) >= spacing for c in chosen):
            chosen.append(points[i])
            if len(chosen) == count:
                break
    return np.asarray(chosen)


def draw_starts(
    problem: LceProblem, rng: np.random.Generator, *, num_candidates: int = 6,
    num_hypotheses: int = 4, num_samples: int = 30_000, search_radius_m: float = 45.0,
    num_fine_samples: int = 100, fine_radius_m: float = 2.0, num_kept: int = 6,
    angle_grid: int = 64, delay_grid: int = 64, refine_passes: int = 1,
) -> FloatArray:
    """Starting points of the first slot: random samples of ``α`` scored by the cost (24).

    Procedure (the module docstring says why):

    1. Per BS, ``L + 1`` paths ``(τ mod period, sin θ_B, sin θ_U)`` by a greedy
       single-path fit of (24) (grid, then Nelder-Mead, ``refine_passes`` cyclic
       re-refinements).
    2. LOS hypotheses: which path of each BS is the LOS, and the front/back and endfire
       alias options of each ULA angle; the BS-side LOS rays are triangulated (weights
       ``cos² θ_B``), ``ϑ`` fitted to the UE-side sines; the ``num_hypotheses`` with the
       smallest squared sine misfit (at distinct positions) are kept.
    3. Around each hypothesis' position, UE positions drawn at random, coarse to fine:
       ``num_samples`` uniform in a square of half-side ``search_radius_m`` (it spans the
       delay period's range alias), scored by a look-up in the periodogram tables of the
       data with the other extracted paths projected out; then ``num_fine_samples`` in
       squares of half-side ``fine_radius_m`` around the ``num_kept`` best, scored by
       (24) itself with the LOS at the sample and the other extracted paths free. ``ϑ``
       follows from the hypothesis' LOS AOAs (weighted circular mean). Candidates: the
       best position of every hypothesis (in hypothesis order), then the second best of
       every hypothesis, ..., ``num_candidates`` in all. (Costs are not compared across
       hypotheses here: a wrong LOS assignment leaves the true LOS paths to the free,
       geometry-less paths and can score better than the right one.)
    4. Per candidate and BS, each scatterer drawn the same way around the intersections
       of its path's BS and UE rays (front/back and alias options meeting in front of
       both ends inside ``area``), scored by that BS's block of (24) with its other
       paths fitted; greedy over ``l``.

    Parameters
    ----------
    problem : the first slot's data.
    rng : source of the draws.
    num_candidates : starting points returned.
    num_hypotheses : LOS hypotheses searched.
    num_samples, search_radius_m : coarse draws (look-ups) per hypothesis / ray
        intersection, and the half-side [m] of their square.
    num_fine_samples, fine_radius_m, num_kept : fine draws [m] around the best coarse ones.
    angle_grid, delay_grid : grid of the path search (``sin θ`` over ``[-1, 1)``, delay
        over one period).
    refine_passes : cyclic re-refinements of the extracted paths.

    Returns
    -------
    ``[candidate, 2JL + 3]`` [m, rad, m].

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D (multi-start), (24), (30).
    """
    J, L = problem.num_bs, problem.num_nlos
    z = problem.z.reshape(J, -1)
    search = _searcher(rng, num_samples=num_samples, search_radius_m=search_radius_m,
                       num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m,
                       num_kept=num_kept)

    def table(bs: int, basis: ComplexArray | None) -> tuple[float, _Periodogram]:
        """``‖P⊥ z_j‖²`` and the periodogram of ``P⊥ z_j`` (``P⊥`` off ``basis``)."""
        rest = _off(basis, z[bs])
        return (float(np.sum(np.abs(rest) ** 2)),
                _periodogram(problem, bs, rest, angle_grid=angle_grid, delay_grid=delay_grid))

    paths = [_extract_paths(problem, j, L + 1, angle_grid=angle_grid, delay_grid=delay_grid,
                            refine_passes=refine_passes) for j in range(J)]
    ranked: list[tuple[int, int, FloatArray, _Hypothesis]] = []  # (rank, hypothesis, ...)
    for order, hyp in enumerate(_los_hypotheses(problem, paths, num_hypotheses)):
        bases = []
        for j in range(J):
            others = np.delete(paths[j], hyp.los[j], axis=0)
            bases.append(_columns(problem, j, *others.T).T if len(others) else None)
        tables = [table(j, bases[j]) for j in range(J)]

        def los_coarse(xs: FloatArray, hyp: _Hypothesis = hyp,
                       tables: list[tuple[float, _Periodogram]] = tables) -> FloatArray:
            thetas = _orientation_from(problem, xs, hyp.aoa)
            total = np.zeros(len(xs))
            for j, (energy, t) in enumerate(tables):
                d = xs - problem.bs_position[j]
                total += energy - t.lookup(
                    np.linalg.norm(d, axis=-1) / SPEED_OF_LIGHT,
                    np.sin(azimuth(d) - problem.bs_orientation[j]),
                    np.sin(azimuth(-d) - thetas))
            return total

        def los_cost(xs: FloatArray, hyp: _Hypothesis = hyp,
                     bases: list[ComplexArray | None] = bases,
                     tables: list[tuple[float, _Periodogram]] = tables) -> FloatArray:
            thetas = _orientation_from(problem, xs, hyp.aoa)
            return np.asarray(sum(
                tables[j][0]
                - _gain_of_fit(bases[j], z[j], _los_columns(problem, j, xs, thetas))
                for j in range(J)))

        found = search(los_coarse, los_cost, hyp.position[None])
        ranked.extend((rank, order, x, hyp) for rank, (_, x) in enumerate(found))
    starts = []
    for _, _, x, hyp in sorted(ranked, key=lambda e: (e[0], e[1]))[:num_candidates]:
        theta = float(_orientation_from(problem, x[None], hyp.aoa)[0])
        scatterers = np.stack([
            _place_scatterers(problem, j, np.delete(paths[j], hyp.los[j], axis=0), x, theta,
                              search, angle_grid=angle_grid, delay_grid=delay_grid)
            for j in range(J)])
        starts.append(np.concatenate([x, [theta], scatterers.reshape(-1)]))
    return np.asarray(starts)


def _place_scatterers(problem: LceProblem, bs: int, nlos: FloatArray, x: FloatArray,
                      theta: float, search: Search, *, angle_grid: int, delay_grid: int
                      ) -> FloatArray:
    """``[nlos, 2]`` [m]: BS ``bs``'s scatterers for the extracted NLOS paths ``nlos
    [path, (τ, sin θ_B, sin θ_U)]`` with the UE at ``x``, ``ϑ = theta`` (step 4 of
    :func:`draw_starts`): each drawn around the intersections of its path's BS and UE rays,
    scored by the BS's block of (24) with the LOS, the scatterers placed so far and the
    later paths fitted; greedy over the paths."""
    z = problem.z[bs].reshape(-1)
    fixed = [_los_columns(problem, bs, x[None], np.array([theta]))[0]]
    out = np.empty((len(nlos), 2))
    for ell in range(len(nlos)):
        later = nlos[ell + 1:]
        basis = np.stack(fixed + ([*_columns(problem, bs, *later.T)] if len(later) else []),
                         axis=-1)
        periodogram = _periodogram(problem, bs, _off(basis, z), angle_grid=angle_grid,
                                   delay_grid=delay_grid)

        def coarse(vs: FloatArray, t: _Periodogram = periodogram) -> FloatArray:
            dep, arr = vs - problem.bs_position[bs], vs - x
            length = np.linalg.norm(dep, axis=-1) + np.linalg.norm(arr, axis=-1)
            return -t.lookup(length / SPEED_OF_LIGHT,
                             np.sin(azimuth(dep) - problem.bs_orientation[bs]),
                             np.sin(azimuth(arr) - theta))

        def cost(vs: FloatArray, basis: ComplexArray = basis) -> FloatArray:
            return -_gain_of_fit(basis, z, _nlos_columns(problem, bs, vs, x, theta))

        v = search(coarse, cost, _scatterer_guesses(problem, bs, nlos[ell], x, theta))[0][1]
        out[ell] = v
        fixed.append(_nlos_columns(problem, bs, v[None], x, theta)[0])
    return out


def redraw_scatterers(
    problem: LceProblem, alpha: npt.ArrayLike, rng: np.random.Generator, *,
    num_samples: int = 30_000, search_radius_m: float = 45.0, num_fine_samples: int = 100,
    fine_radius_m: float = 2.0, num_kept: int = 6, angle_grid: int = 64,
    delay_grid: int = 64, refine_passes: int = 1,
) -> FloatArray:
    """``α`` with every scatterer drawn afresh from the data, the UE kept at ``α``'s.

    Per BS, the LOS column at ``α``'s UE position and orientation is fitted, ``L`` paths
    are extracted from what it leaves (:func:`_extract_paths`) and each scatterer is
    drawn around its path's ray intersections as in step 4 of :func:`draw_starts`. Along
    a drive a reflection point slides along its wall with the UE and the previous
    window's scatterer estimate can end in another basin of (24); this re-acquires it
    from the present window's data (:func:`track`).

    Parameters
    ----------
    problem : the slot's data.
    alpha : ``[2JL + 3]`` [m, rad, m], e.g. the previous window's fused ``ᾱ``.
    rng : source of the draws.
    num_samples, search_radius_m, num_fine_samples, fine_radius_m, num_kept, angle_grid,
    delay_grid, refine_passes : as :func:`draw_starts`.

    Returns
    -------
    ``[2JL + 3]`` [m, rad, m].

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D (the multi-start's draws), (24), (30).
    """
    out = _wrapped(np.array(alpha, dtype=np.float64))
    x, theta = out[:2], float(out[ORIENTATION])
    J, L = problem.num_bs, problem.num_nlos
    search = _searcher(rng, num_samples=num_samples, search_radius_m=search_radius_m,
                       num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m,
                       num_kept=num_kept)
    scatterers = np.empty((J, L, 2))
    for j in range(J):
        los = _los_columns(problem, j, x[None], np.array([theta])).T  # [obs, 1]
        nlos = _extract_paths(problem, j, L, angle_grid=angle_grid, delay_grid=delay_grid,
                              refine_passes=refine_passes, known=los)
        scatterers[j] = _place_scatterers(problem, j, nlos, x, theta, search,
                                          angle_grid=angle_grid, delay_grid=delay_grid)
    out[3:] = scatterers.reshape(-1)
    return out


@dataclass(frozen=True)
class Tracked:
    """One slot's LCE from a previous estimate with re-drawn scatterers (:func:`track`).

    Attributes
    ----------
    result : the chosen :class:`LceResult`.
    kept : ``result`` is the one from the previous estimate (else from the re-drawn
        scatterers).
    candidates : ``[2, 2JL + 3]``, the two starts (previous, re-drawn at the first's
        solution).
    results : both :class:`LceResult` (previous, re-drawn).
    """

    result: LceResult
    kept: bool
    candidates: FloatArray
    results: tuple[LceResult, LceResult]


def track(
    problem: LceProblem, previous: npt.ArrayLike, rng: np.random.Generator, *,
    solve: Callable[..., LceResult] | None = None,
    solver_options: Mapping[str, Any] | None = None,
    redraw_options: Mapping[str, Any] | None = None,
) -> Tracked:
    """LCE of a slot whose geometry may have moved since ``previous`` (a new window).

    Two starts: ``previous`` itself, and its solution with the scatterers re-drawn from
    the data at the UE it found (:func:`redraw_scatterers`; the UE may have moved metres
    since ``previous``, and scatterers drawn for the old position would be wrong). Both
    are solved; a result with every scatterer inside ``problem.area`` is preferred (the
    front/back symmetry of the ULAs with the range alias also fits points far outside,
    where SLLS, unconstrained, can drift), then the lower cost (24).

    Parameters
    ----------
    problem : the slot's data.
    previous : ``[2JL + 3]`` [m, rad, m].
    rng : source of the re-draw.
    solve : the LCE method (default :func:`slls`).
    solver_options : its keyword arguments.
    redraw_options : keyword arguments of :func:`redraw_scatterers`.

    Returns
    -------
    :class:`Tracked`.

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D, Algorithm 2.
    """
    method = solve or slls
    options = dict(solver_options or {})
    moved = method(problem, previous, **options)
    starts = np.stack([_wrapped(np.asarray(previous, dtype=np.float64)),
                       redraw_scatterers(problem, moved.alpha, rng,
                                         **dict(redraw_options or {}))])
    results = (moved, method(problem, starts[1], **options))

    def rank(r: LceResult) -> tuple[bool, float]:
        inside = all(_inside(problem.area, v) for v in r.scatterers.reshape(-1, 2))
        cost = r.cost if np.isfinite(r.cost) else np.inf
        return (not inside, cost)

    kept = rank(results[0]) <= rank(results[1])
    return Tracked(result=results[0] if kept else results[1], kept=kept, candidates=starts,
                   results=results)


@dataclass(frozen=True)
class MultiStart:
    """The multi-start LCE of the first slot (:func:`multistart`).

    Attributes
    ----------
    candidates : ``[candidate, 2JL + 3]`` [m, rad, m], the starting points drawn.
    screening : one :class:`LceResult` per candidate, SLLS stopped after
        ``screen_iterations``.
    best : index of the candidate with the lowest screened cost ``F``.
    result : SLLS from ``candidates[best]`` run to convergence.
    runtime_s : [s] wall time, draws and SLLS runs.
    """

    candidates: FloatArray
    screening: tuple[LceResult, ...]
    best: int
    result: LceResult
    runtime_s: float


def multistart(
    problem: LceProblem, rng: np.random.Generator, *, num_candidates: int = 6,
    num_hypotheses: int = 4, num_samples: int = 30_000, search_radius_m: float = 45.0,
    num_fine_samples: int = 100, fine_radius_m: float = 2.0, num_kept: int = 6,
    angle_grid: int = 64, delay_grid: int = 64, refine_passes: int = 1,
    screen_iterations: int = 6, max_iterations: int = 50, step_tolerance: float = 1e-7,
) -> MultiStart:
    """First-slot LCE (§IV-D): :func:`draw_starts`, SLLS from each start, the lowest
    cost (24) wins.

    Every candidate gets ``screen_iterations`` SLLS iterations; the one with the lowest
    cost is then run to convergence (starts from wrong LOS hypotheses end far above it,
    so the screening only saves their iterations).

    Parameters
    ----------
    problem, rng, num_candidates, num_hypotheses, num_samples, search_radius_m,
    num_fine_samples, fine_radius_m, num_kept, angle_grid, delay_grid, refine_passes :
        as :func:`draw_starts`.
    screen_iterations : SLLS iterations of every candidate before choosing.
    max_iterations, step_tolerance : of the final :func:`slls`.

    Returns
    -------
    :class:`MultiStart`.

    References
    ----------
    Zhou, Liu, Lau 2019, §IV-D, Algorithm 2.
    """
    start = time.perf_counter()
    candidates = draw_starts(
        problem, rng, num_candidates=num_candidates, num_hypotheses=num_hypotheses,
        num_samples=num_samples, search_radius_m=search_radius_m,
        num_fine_samples=num_fine_samples, fine_radius_m=fine_radius_m, num_kept=num_kept,
        angle_grid=angle_grid, delay_grid=delay_grid, refine_passes=refine_passes)
    screening = tuple(slls(problem, c, max_iterations=screen_iterations,
                           step_tolerance=step_tolerance) for c in candidates)
    best = int(np.argmin([r.cost for r in screening]))
    result = slls(problem, candidates[best], max_iterations=max_iterations,
                  step_tolerance=step_tolerance)
    return MultiStart(candidates=candidates, screening=screening, best=best, result=result,
                      runtime_s=time.perf_counter() - start)


# ------------------------------------------------------------------------ fusion


def slot_precision(problem: LceProblem, alpha: npt.ArrayLike, gains: npt.ArrayLike
                   ) -> FloatArray:
    """``Λ#[k] = 𝔅_α(α̂[k], ĥ[k]; w[k])^{-1}`` (27): the inverse of the α block of the
    inverse instantaneous FIM (eqs. 47-48) at the slot's estimates.

    Parameters
    ----------
    problem : the slot's data (system, BF vectors ``w[k]``, ``σ²``).
    alpha : ``[2JL + 3]`` [m, rad, m], ``α̂[k]``.
    gains : ``[bs, path]`` complex, ``ĥ[k]``.

    Returns
    -------
    ``[2JL + 3, 2JL + 3]`` float64 [1/m², 1/rad², ...] (NaN where the FIM is singular).

    References
    ----------
    Zhou, Liu, Lau 2019, eqs. (27), (47)-(48).
    """
    geometry = problem.geometry(alpha)
    h = np.asarray(gains, dtype=np.complex128)
    mu = path_responses(problem.system, geometry)
    fisher = SlabFisher(  # Σ is not used by the instantaneous FIM
        responses=mu, jacobian=response_jacobian(problem.system, geometry, mu),
        gain_covariance=np.zeros((*h.shape, h.shape[1]), dtype=np.complex128),
        noise_variance=problem.noise_variance)
    n = problem.num_alpha
    bound = invert_fim(fisher.instantaneous(problem.beamformers, h))[:n, :n]
    return invert_fim(bound)


@dataclass(frozen=True)
class Fused:
    """The fused location estimate after slot ``k`` (eqs. 25-26).

    ``alpha [2JL + 3]`` [m, rad, m] ``ᾱ[k]``; ``precision [2JL + 3, 2JL + 3]`` ``Λ[k]``.
    """

    alpha: FloatArray
    precision: FloatArray


def fuse(previous: Fused | None, estimate: npt.ArrayLike, precision: npt.ArrayLike) -> Fused:
    """Precision-weighted fusion (25)-(26) of a fresh ``α̂[k]`` into ``ᾱ[k-1]``.

    ``ᾱ[k] = Λ[k]^{-1} (Λ[k-1] ᾱ[k-1] + Λ#[k] α̂[k])``, ``Λ[k] = Λ[k-1] + Λ#[k]``, computed
    as ``ᾱ[k-1] + Λ[k]^{-1} Λ#[k] (α̂[k] - ᾱ[k-1])`` with the orientation difference
    wrapped to ``(-π, π]``; ``previous=None`` is ``Λ[0] = 0``. A non-finite ``Λ#[k]``
    (singular FIM) leaves ``ᾱ`` and ``Λ`` unchanged (at the first slot: ``ᾱ = α̂``,
    ``Λ = 0``, so the next usable slot replaces it).

    Parameters
    ----------
    previous : ``ᾱ[k-1], Λ[k-1]`` or ``None`` at the first slot.
    estimate : ``[2JL + 3]`` [m, rad, m], ``α̂[k]``.
    precision : ``[2JL + 3, 2JL + 3]``, ``Λ#[k]`` (:func:`slot_precision`).

    Returns
    -------
    :class:`Fused`.

    References
    ----------
    Zhou, Liu, Lau 2019, eqs. (25)-(27).
    """
    a = _wrapped(np.asarray(estimate, dtype=np.float64))
    lam = np.asarray(precision, dtype=np.float64)
    finite = bool(np.all(np.isfinite(lam)))
    if previous is None:
        return Fused(alpha=a, precision=lam if finite else np.zeros_like(lam))
    if not finite:
        return previous
    if not np.any(previous.precision):  # Λ[k-1] = 0: the first usable slot
        return Fused(alpha=a, precision=lam)
    total = previous.precision + lam
    delta = a - previous.alpha
    delta[ORIENTATION] = float(wrap_angle(delta[ORIENTATION]))
    scale = 1.0 / np.sqrt(np.diag(total))  # solve in the scaled (unit-diagonal) system
    step = scale * np.linalg.solve(total * scale[:, None] * scale[None, :],
                                   scale * (lam @ delta))
    return Fused(alpha=_wrapped(previous.alpha + step), precision=total)


@dataclass(frozen=True)
class LceSlot:
    """One slot of :func:`run_lce`: the fresh estimate, its precision and the fusion.

    ``result`` (``α̂[k]``, ``ĥ[k]``), ``precision [2JL + 3, 2JL + 3]`` ``Λ#[k]`` (27),
    ``fused`` ``ᾱ[k]``, ``Λ[k]`` (25)-(26).
    """

    result: LceResult
    precision: FloatArray
    fused: Fused


@dataclass(frozen=True)
class LceTrack:
    """The LCE over slots (Algorithm 2 per slot, BF vectors given).

    Attributes
    ----------
    slots : one :class:`LceSlot` per slot.
    multistart : the first slot's :class:`MultiStart` (``None`` if an initial point was
        given).
    """

    slots: tuple[LceSlot, ...]
    multistart: MultiStart | None

    @property
    def estimates(self) -> FloatArray:
        """``[slot, 2JL + 3]`` the fresh ``α̂[k]``."""
        return np.stack([s.result.alpha for s in self.slots])

    @property
    def fused(self) -> FloatArray:
        """``[slot, 2JL + 3]`` the fused ``ᾱ[k]``."""
        return np.stack([s.fused.alpha for s in self.slots])

    @property
    def runtime_s(self) -> FloatArray:
        """``[slot]`` [s] LCE wall time per slot (the multi-start's at the first)."""
        first = self.multistart.runtime_s if self.multistart is not None else None
        return np.array([first if (k == 0 and first is not None) else s.result.runtime_s
                         for k, s in enumerate(self.slots)])


_METHODS: dict[str, Callable[..., LceResult]] = {"slls": slls, "gd-lce": gd_lce,
                                                 "ls-lce": ls_lce}


def run_lce(
    problems: Sequence[LceProblem], rng: np.random.Generator, *, method: Method = "slls",
    initial_alpha: npt.ArrayLike | None = None,
    multistart_options: Mapping[str, Any] | None = None,
    solver_options: Mapping[str, Any] | None = None,
) -> LceTrack:
    """LCE over slots ``k = 1 … K`` (Algorithm 2 with the fusion (25)-(27)).

    Slot 1 starts from the multi-start (§IV-D; :func:`multistart`) unless
    ``initial_alpha`` is given; slot ``k ≥ 2`` from ``ᾱ[k-1]``. ``gd-lce`` and ``ls-lce``
    start from the same point as SLLS (the multi-start's chosen candidate).

    Parameters
    ----------
    problems : one :class:`LceProblem` per slot (their BF vectors are the ``w[k]``).
    rng : source of the multi-start's draws.
    method : ``"slls"``, ``"gd-lce"`` or ``"ls-lce"``.
    initial_alpha : ``[2JL + 3]`` [m, rad, m], skips the multi-start.
    multistart_options : keyword arguments of :func:`multistart`.
    solver_options : keyword arguments of the method (:func:`slls`, :func:`gd_lce`,
        :func:`ls_lce`).

    Returns
    -------
    :class:`LceTrack`.

    References
    ----------
    Zhou, Liu, Lau 2019, Algorithm 2, §IV-D, eqs. (25)-(27).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    solve = _METHODS[method]
    options = dict(solver_options or {})
    slots: list[LceSlot] = []
    fused: Fused | None = None
    ms: MultiStart | None = None
    for k, problem in enumerate(problems):
        if k == 0 and initial_alpha is None:
            ms = multistart(problem, rng, **dict(multistart_options or {}))
            result = ms.result if method == "slls" and not options else solve(
                problem, ms.candidates[ms.best], **options)
        else:
            start = fused.alpha if fused is not None else initial_alpha
            result = solve(problem, start, **options)
        precision = slot_precision(problem, result.alpha, result.gains)
        fused = fuse(fused, result.alpha, precision)
        slots.append(LceSlot(result=result, precision=precision, fused=fused))
    return LceTrack(slots=tuple(slots), multistart=ms)
