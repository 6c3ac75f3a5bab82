"""The estimator interface: registry, keyword-only hyper-parameters, frozen results.

Every estimator is a class registered in :data:`ESTIMATORS`. ``estimate(obs)``
validates the observation, then calls ``_estimate``; the default ``_estimate`` runs
``_estimate_snapshot`` on every snapshot, timing each and turning degenerate input
(no signal, non-finite samples, singular systems) into ``converged=False`` with a
reason instead of an exception.
"""

from __future__ import annotations

import abc
import inspect
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self, TypeVar

import numpy as np
import numpy.typing as npt

from estimators.types import Area, Observation, ServiceArea, Truth
from estimators.typing import FloatArray


class EstimatorInputError(ValueError):
    """An observation an estimator cannot work with at all (wrong link, shapes...)."""


#: [m] the BS and the UE must be this far above the ground for an estimator to model the
#: LOS's ground bounce (``miso-ml``, LOCMAN, the SLAB family): closer, the bounce has the
#: LOS's delay and directions, one path.
MIN_GROUND_CLEARANCE_M = 0.5


@dataclass(frozen=True)
class SnapshotEstimate:
    """One snapshot's result (``Q`` scatterers, ``P`` estimated paths).

    ``ue_position [3]`` [m], ``ue_yaw`` [rad] (NaN if not estimated),
    ``scatterers [Q, 3]`` [m], ``scatterer_valid [Q]``, ``path_tau [P]`` [s],
    ``path_aod [P, 2]`` (azimuth, zenith) [rad], ``path_gain [P]`` complex,
    ``position_covariance [3, 3]`` [m²] how unsure ``ue_position`` is (None: not
    reported; a 2-D method fills the horizontal block and leaves z NaN,
    :func:`position_covariance`).
    """

    ue_position: FloatArray
    scatterers: FloatArray
    scatterer_valid: npt.NDArray[np.bool_]
    path_tau: FloatArray
    path_aod: FloatArray
    path_gain: npt.NDArray[np.complex128]
    ue_yaw: float = float("nan")
    position_covariance: FloatArray | None = None
    converged: bool = True
    reason: str = ""
    diagnostics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    """An estimator's result over all snapshots of an observation.

    Attributes
    ----------
    ue_position : ``[snapshot, 3]`` [m] (NaN where not converged).
    ue_yaw : ``[snapshot]`` [rad], the UE array's yaw (NaN where not estimated); the
        truth's full orientation is ``ChannelTruth.ue_orientation [snapshot, 3]``.
    scatterers : ``[snapshot, Q, 3]`` [m].
    scatterer_valid : ``[snapshot, Q]`` bool.
    path_tau : ``[snapshot, P]`` [s]; path_aod ``[snapshot, P, 2]`` [rad];
    path_gain : ``[snapshot, P]`` complex128 — the estimated channel parameters.
    converged : ``[snapshot]`` bool; reason: ``[snapshot]`` why not ("" if converged).
    runtime_s : ``[snapshot]`` [s] wall time per snapshot.
    diagnostics : name -> ``[snapshot]`` array (e.g. final cost).
    position_covariance : ``[snapshot, 3, 3]`` [m²], the covariance the estimator
        reports for ``ue_position`` (NaN where it reports none; for a 2-D method the z
        row and column are NaN): what ``twin evaluate`` checks a wild fix against.
    scatterer_covariance : ``[snapshot, Q, 3, 3]`` [m²], the covariance reported for
        each scatterer (NaN where none is: the papers' estimators report none; the
        landmark map of ``twin track`` does).
    """

    ue_position: FloatArray
    ue_yaw: FloatArray
    scatterers: FloatArray
    scatterer_valid: npt.NDArray[np.bool_]
    path_tau: FloatArray
    path_aod: FloatArray
    path_gain: npt.NDArray[np.complex128]
    converged: npt.NDArray[np.bool_]
    reason: tuple[str, ...]
    runtime_s: FloatArray
    diagnostics: Mapping[str, FloatArray] = field(default_factory=dict)
    position_covariance: FloatArray | None = None
    scatterer_covariance: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.position_covariance is None:
            object.__setattr__(self, "position_covariance",
                               np.full((self.ue_position.shape[0], 3, 3), np.nan))
        if self.scatterer_covariance is None:
            object.__setattr__(self, "scatterer_covariance",
                               np.full((*self.scatterers.shape[:2], 3, 3), np.nan))

    @property
    def num_snapshots(self) -> int:
        return int(self.ue_position.shape[0])


@dataclass(frozen=True)
class Bound:
    """The paper's Cramér-Rao bounds per snapshot (NaN where the FIM is singular).

    Attributes
    ----------
    position_error_bound : ``[snapshot]`` [m], the PEB in the estimator's
        :meth:`Estimator.dimensions` (horizontal for a 2-D method).
    scatterer_error_bound : ``[snapshot, Q]`` [m], or ``[snapshot, 0]`` where the paper
        bounds no scatterer.
    orientation_error_bound : ``[snapshot]`` [rad], or None where the paper bounds none.
    channel_crlb : ``[snapshot, n, n]`` on the channel parameters in the order the
        estimator documents, or None.
    other : name -> ``[snapshot]`` further bounds the paper gives (unit in the name,
        e.g. ``"two_stage_position_m"``); ``twin estimate`` stores each as
        ``bound/<name>``.
    """

    position_error_bound: FloatArray
    scatterer_error_bound: FloatArray
    orientation_error_bound: FloatArray | None = None
    channel_crlb: FloatArray | None = None
    other: Mapping[str, FloatArray] = field(default_factory=dict)


E = TypeVar("E", bound="Estimator")
ESTIMATORS: dict[str, type[Estimator]] = {}


def register(cls: type[E]) -> type[E]:
    """Class decorator: add an estimator to :data:`ESTIMATORS` under ``cls.name``."""
    if not getattr(cls, "name", ""):
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if cls.name in ESTIMATORS and ESTIMATORS[cls.name] is not cls:
        raise TypeError(f"estimator name '{cls.name}' is registered twice")
    ESTIMATORS[cls.name] = cls
    return cls


class Estimator(abc.ABC):
    """Base class. Subclasses take keyword-only hyper-parameters and store them as
    attributes of the same name, unchanged (scikit-learn style); results are returned,
    never stored on ``self``.
    """

    name: ClassVar[str] = ""
    #: The paper subpackage the estimator belongs to (``"slab"``, ``"miso"``, ...): its
    #: ``scenario`` module gives the paper's own setting (:mod:`estimators.scenario`).
    paper: ClassVar[str] = ""
    #: What :meth:`crlb` bounds, in words with the paper's equation numbers ("" if the
    #: estimator has no bound). Declared, so callers never probe for a bound.
    bound: ClassVar[str] = ""
    #: Keyword arguments for ``twin.sounding.build_observation``: how the twin must
    #: sound the channel for this estimator (link, precoder, beams...).
    sounding: ClassVar[Mapping[str, Any]] = {}
    #: Hyper-parameters that may be ``"auto"``, each with the function that resolves it
    #: against the observation (``(value, obs) -> value``; :meth:`_resolved`), e.g.
    #: ``{"ground_height": resolve_ground_height}``. Declared, never guessed by name.
    auto_parameters: ClassVar[Mapping[str, Callable[[Any, Observation], Any]]] = {}

    @property
    def num_scatterers(self) -> int:
        """Number of scatterers ``Q`` reported per snapshot (``Estimate.scatterers``)."""
        return 0

    @property
    def num_estimated_paths(self) -> int:
        """Number of estimated paths ``P`` (``Estimate.path_*``)."""
        return 0

    def position_dimensions(self, obs: Observation) -> int:
        """What the estimated positions can represent: 2 (the horizontal plane; heights
        are not estimated and are not scored) or 3.

        Declared by every estimator (it may depend on its hyper-parameters, e.g. MISO's
        ``dimensions``, and on ``obs``, e.g. a planar array); ``twin estimate`` stores
        it and ``twin evaluate`` scores by it.
        """
        raise NotImplementedError(f"{self.name} does not declare its position dimensions")

    @classmethod
    def hyper_parameters(cls) -> dict[str, tuple[inspect.Parameter, Any]]:
        """The keyword-only hyper-parameters of ``__init__`` and their type hints; an
        ``__init__`` that adds its own and passes ``**kwargs`` on (a subclass with one
        more option) also has its parent's."""
        found: dict[str, tuple[inspect.Parameter, Any]] = {}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            parameters = inspect.signature(init).parameters.values()
            hints = typing.get_type_hints(init)
            for p in parameters:
                if p.kind is inspect.Parameter.KEYWORD_ONLY:
                    found.setdefault(p.name, (p, hints.get(p.name, Any)))
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
                break
        return found

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """The keyword-only hyper-parameters of ``__init__`` and their defaults."""
        return {name: p.default for name, (p, _) in cls.hyper_parameters().items()}

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters, as passed to ``__init__``."""
        return {name: getattr(self, name) for name in self.default_params()}

    def with_params(self: E, **changes: Any) -> E:
        """A new estimator with some hyper-parameters changed."""
        params = self.get_params()
        unknown = set(changes) - set(params)
        if unknown:
            raise TypeError(
                f"{self.name}: unknown parameter(s) {sorted(unknown)} (known: {sorted(params)})"
            )
        return type(self)(**{**params, **changes})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ estimation

    def estimate(
        self,
        obs: Observation,
        rng: np.random.Generator | None = None,
        *,
        on_snapshot: Callable[[int], None] | None = None,
    ) -> Estimate:
        """Estimate UE position (and what else the method gives) for every snapshot.

        ``rng`` feeds any randomness of the method (default: a fixed seed), so results
        are reproducible; ``on_snapshot(done)`` is called after each snapshot.
        Raises :class:`EstimatorInputError` only for observations of the wrong kind
        (shapes, link, array); degenerate *data* gives ``converged=False``.
        """
        self.check(obs)
        rng = rng if rng is not None else np.random.default_rng(0)
        return self._resolved(obs)._estimate(obs, rng, on_snapshot or (lambda done: None))

    def _resolved(self, obs: Observation) -> Self:
        """This estimator with its :attr:`auto_parameters` that are ``"auto"`` set from
        ``obs``; itself where none is. Used by :meth:`estimate` and by the subclasses'
        :meth:`crlb`."""
        changes = {name: resolve(getattr(self, name), obs)
                   for name, resolve in self.auto_parameters.items()
                   if getattr(self, name) == "auto"}
        return self.with_params(**changes) if changes else self

    def check(self, obs: Observation) -> None:
        """Raise :class:`EstimatorInputError` (one line, naming what does not fit) if
        this estimator cannot work on ``obs``; estimate nothing."""
        self._validate(obs)

    def working_memory(self, obs: Observation) -> dict[str, float]:
        """:meth:`check` ``obs``, then the bytes that this estimator's largest arrays
        hold at once on it, beyond the observation itself, keyed by the hyper-parameter
        that sizes each (:meth:`_working_memory`).

        Read before any work by callers that bound resources: ``twin estimate`` adds
        these to the observations' size and refuses, naming the key, a setting that
        needs more memory than the machine has. ``{}``: nothing that a hyper-parameter
        can make large. An estimate within a factor of ~2 of the measured peak.
        """
        self.check(obs)
        return self._working_memory(obs)

    def _working_memory(self, obs: Observation) -> dict[str, float]:
        """:meth:`working_memory` of a checked observation."""
        return {}

    def _validate(self, obs: Observation) -> None:
        if obs.y.ndim != 5:
            raise EstimatorInputError(
                f"{self.name}: y must be [snapshot, bs, rx_stream, tx_beam, subcarrier], "
                f"got shape {obs.y.shape}"
            )
        T, B, S, M, K = obs.y.shape
        checks = [
            (obs.precoders.shape[:2] == (T, B) and obs.precoders.shape[-1] == M, "precoders"),
            (obs.combiners.shape[:2] == (T, B) and obs.combiners.shape[-1] == S, "combiners"),
            (obs.pilots.shape == (M, K), "pilots"),
            (obs.frequencies.shape == (K,), "frequencies"),
            (obs.noise_variance.shape == (T, B), "noise_variance"),
            (obs.bs_position.shape == (B, 3), "bs_position"),
        ]
        for ok, what in checks:
            if not ok:
                raise EstimatorInputError(f"{self.name}: {what} does not match y {obs.y.shape}")

    def _estimate(
        self, obs: Observation, rng: np.random.Generator, on_snapshot: Callable[[int], None]
    ) -> Estimate:
        results = []
        for t in range(obs.num_snapshots):
            start = time.perf_counter()
            problem = _degenerate(obs, t)
            if problem:
                result = self._failed(problem)
            else:
                try:
                    with np.errstate(all="raise"):
                        result = self._estimate_snapshot(obs, t, rng)
                except (np.linalg.LinAlgError, ArithmeticError, ValueError) as exc:
                    result = self._failed(f"{type(exc).__name__}: {exc}"[:200])
            results.append((result, time.perf_counter() - start))
            on_snapshot(t + 1)
        return _stack(results)

    @abc.abstractmethod
    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        """Estimate one snapshot ``t`` of a validated, non-degenerate observation."""

    def _failed(self, reason: str) -> SnapshotEstimate:
        Q, P = self.num_scatterers, self.num_estimated_paths
        return SnapshotEstimate(
            ue_position=np.full(3, np.nan), scatterers=np.full((Q, 3), np.nan),
            scatterer_valid=np.zeros(Q, bool), path_tau=np.full(P, np.nan),
            path_aod=np.full((P, 2), np.nan), path_gain=np.full(P, np.nan + 0j),
            converged=False, reason=reason,
        )

    # ---------------------------------------------------------------------- bounds

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        """The paper's Cramér-Rao bounds (:attr:`bound`) from the true channel behind
        ``obs`` (:data:`estimators.types.Truth`: one :class:`ChannelTruth` per BS, or a
        single one for a single-BS observation; :func:`estimators.types.bs_truth` picks
        a BS's); an estimator with ``bound == ""`` has none.

        Works on every observation the estimator accepts: NaN where the paper's bound
        does not apply (no LOS, a singular FIM), never an exception.
        """
        raise NotImplementedError(f"{self.name} has no Cramér-Rao bound")


def grown_most(growth: Mapping[str, float]) -> str:
    """The key of the largest factor (the first one on ties).

    For a term that several hyper-parameters size together (a grid of ranges times
    directions), ``growth`` maps each to the factor the term would shrink by if that
    hyper-parameter were set back to its default: the key to name is the one that grew
    it most, the first where none did.
    """
    return max(growth, key=lambda key: growth[key])


def largest_stage(*stages: Mapping[str, float]) -> dict[str, float]:
    """Of the working memories of stages that run one after another (each keyed as
    :meth:`Estimator.working_memory`), the one of the largest total: their arrays never
    coexist, so the peak is one stage's, not the sum."""
    largest = max(stages, key=lambda stage: sum(stage.values()))
    return dict(largest)


def estimate_bytes(num_snapshots: int, num_paths: int, num_scatterers: int) -> float:
    """Bytes of the per-path results of an :class:`Estimate` while they are gathered:
    every snapshot's own arrays and their stacked copies (``path_tau``, ``path_aod``,
    ``path_gain``: 40 bytes a path; ``scatterers``, ``scatterer_valid``: 25 a
    scatterer)."""
    return 2.0 * num_snapshots * (40 * num_paths + 25 * num_scatterers)


def _degenerate(obs: Observation, t: int) -> str:
    y = obs.y[t]
    if not np.all(np.isfinite(y)):
        return "non-finite samples in the observation"
    if not np.any(y):
        return "no signal (all-zero observation)"
    if not np.all(np.isfinite(obs.noise_variance[t])) or np.any(obs.noise_variance[t] < 0):
        return "invalid noise variance"
    return ""


def _diagnostic(results: list[tuple[SnapshotEstimate, float]], key: str) -> FloatArray:
    return np.array([r.diagnostics.get(key, np.nan) for r, _ in results], dtype=np.float64)


def _stack(results: list[tuple[SnapshotEstimate, float]]) -> Estimate:
    def gather(get: Callable[[SnapshotEstimate], Any], dtype: Any) -> Any:
        return np.array([get(r) for r, _ in results], dtype=dtype)

    keys = sorted({k for r, _ in results for k in r.diagnostics})
    return Estimate(
        ue_position=gather(lambda r: r.ue_position, np.float64),
        ue_yaw=gather(lambda r: r.ue_yaw, np.float64),
        scatterers=gather(lambda r: r.scatterers, np.float64),
        scatterer_valid=gather(lambda r: r.scatterer_valid, bool),
        path_tau=gather(lambda r: r.path_tau, np.float64),
        path_aod=gather(lambda r: r.path_aod, np.float64),
        path_gain=gather(lambda r: r.path_gain, np.complex128),
        converged=gather(lambda r: r.converged, bool),
        reason=tuple(r.reason for r, _ in results),
        runtime_s=np.array([dt for _, dt in results]),
        diagnostics={k: _diagnostic(results, k) for k in keys},
        position_covariance=np.array([
            np.full((3, 3), np.nan) if r.position_covariance is None
            else r.position_covariance for r, _ in results], dtype=np.float64).reshape(-1, 3, 3),
    )


def position_covariance(block: npt.ArrayLike) -> FloatArray:
    """A ``[d, d]`` position covariance [m²] (``d = 2``: horizontal; 3) as the ``[3, 3]``
    of :attr:`SnapshotEstimate.position_covariance`: the z row and column NaN for
    ``d = 2`` (a height the method does not estimate has no variance)."""
    c = np.asarray(block, dtype=np.float64)
    d = c.shape[0]
    if c.shape != (d, d) or d not in (2, 3):
        raise ValueError(f"position covariance must be [2, 2] or [3, 3], got {c.shape}")
    out = np.full((3, 3), np.nan)
    out[:d, :d] = 0.5 * (c + c.T)
    return out


#: A ground-bounce model's ``ground_height``: [m], None (no ground), or ``"auto"``
#: (:func:`resolve_ground_height`).
GroundHeight = float | None | Literal["auto"]
#: [m] ``ground_height="auto"`` where the observation knows no ground: the z = 0 of the
#: papers' settings and of the bundled, Sionna and OSM scenes.
DEFAULT_GROUND_HEIGHT_M = 0.0


def resolve_ground_height(value: GroundHeight, obs: Observation) -> float | None:
    """``value`` [m] (or None), or for ``"auto"`` the observation's ground
    (:attr:`ServiceArea.ground_height`: the twin's scene under the drive), else
    :data:`DEFAULT_GROUND_HEIGHT_M`."""
    if value != "auto":
        return fixed_ground_height(value)
    known = obs.service_area.ground_height if obs.service_area is not None else None
    return DEFAULT_GROUND_HEIGHT_M if known is None else float(known)


#: The :attr:`Estimator.auto_parameters` of a ground-bounce model.
AUTO_GROUND_HEIGHT: Mapping[str, Callable[[Any, Observation], Any]] = MappingProxyType(
    {"ground_height": resolve_ground_height})


def fixed_ground_height(value: GroundHeight) -> float | None:
    """``value`` once resolved (:meth:`Estimator._resolved`): a float or None."""
    if value == "auto":
        raise RuntimeError("ground_height='auto' must be resolved against the observation")
    return None if value is None else float(value)


def resolve_service_area(
    name: str, obs: Observation, area: Area | None, ue_height: float | None
) -> ServiceArea:
    """The service area an estimator searches: its own ``area`` / ``ue_height``
    hyper-parameters where set, else the observation's (:attr:`Observation.service_area`,
    the run's). :class:`EstimatorInputError` naming both where neither gives one, or
    where the hyper-parameters are not an area."""
    known = obs.service_area
    if area is None or ue_height is None:
        if known is None:
            raise EstimatorInputError(
                f"{name}: the observation has no service area; set area=((x0, y0), "
                f"(x1, y1)) and ue_height")
        area = known.area if area is None else area
        ue_height = known.ue_height if ue_height is None else ue_height
    try:
        return ServiceArea(area=area, ue_height=float(ue_height))
    except (TypeError, ValueError) as exc:
        raise EstimatorInputError(f"{name}: {exc}") from None
