"""One conformance test over every registered estimator (scikit-learn style)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import tracemalloc
from typing import Any

import numpy as np
import pytest

from estimators import ESTIMATORS, Bound, Estimate, Estimator
from estimators.base import EstimatorInputError
from estimators.miso.estimators import _search_grid, grid_size, sp_pseudospectrum
from estimators.miso.model import MisoSnapshot
from estimators.scenario import Scenario
from estimators.types import Observation, Truth

NAMES = sorted(ESTIMATORS)
PAPERS = ("daun", "locman", "miso", "ris_cd", "slab")
#: SLAB's gradient LCE baselines stop at their iteration budget on the paper setting
#: without reaching the step tolerance (their documented behaviour, the paper's Fig. 4):
#: ``converged`` is not required of them.
SLAB_GRADIENT_LCE = ("gd-lce", "ls-lce")


def paper_scenario(name: str) -> Scenario:
    """The reduced setting of the estimator's own paper (``estimators.<paper>.scenario``
    ``small()``), found through the paper the estimator declares."""
    module = importlib.import_module(f"estimators.{ESTIMATORS[name].paper}.scenario")
    scenario = module.small()
    assert isinstance(scenario, Scenario), f"{name}: {module.__name__}.small() is no Scenario"
    return scenario


def paper_sample(name: str, num_snapshots: int = 2) -> tuple[Observation, Truth]:
    """A small observation of the estimator's own paper setting at 10 dB and its truth."""
    return paper_scenario(name).observation(num_snapshots, np.random.default_rng(3), 10.0)


def paper_observation(name: str, num_snapshots: int = 2) -> Observation:
    return paper_sample(name, num_snapshots)[0]


def test_registry_is_filled_and_consistent() -> None:
    assert {"miso-ml", "miso-sp-grid", "miso-sp-refine", "locman", "dcs-somp", "slab",
            "slab-lce", "gd-lce", "ls-lce", "gd-bfr", "lmi-bfr", "p-admm", "daun", "daun-r",
            "dpd", "stansfield", "srl", "cvx-direct", "ris-cd", "ris-rss"} <= set(NAMES)
    for name, cls in ESTIMATORS.items():
        assert cls.name == name and issubclass(cls, Estimator)
        assert cls.paper in PAPERS, f"{name} declares paper {cls.paper!r}"
        assert cls.__module__.startswith(f"estimators.{cls.paper}."), (name, cls.__module__)
    # Every paper has its bound, on at least one of its estimators.
    assert {cls.paper for cls in ESTIMATORS.values() if cls.bound} == set(PAPERS)


@pytest.mark.parametrize("name", NAMES)
def test_declares_what_it_can_represent(name: str) -> None:
    cls = ESTIMATORS[name]
    assert cls.position_dimensions is not Estimator.position_dimensions, name
    obs = paper_observation(name, num_snapshots=1)
    assert cls().position_dimensions(obs) in (2, 3)
    # A bound is declared (a sentence naming the paper's equations), never probed for.
    assert (cls.crlb is not Estimator.crlb) == bool(cls.bound), name


@pytest.mark.parametrize("name", [n for n in NAMES if ESTIMATORS[n].bound])
def test_the_bound_of_the_paper_setting(name: str) -> None:
    obs, truth = paper_sample(name)
    estimator = ESTIMATORS[name]()
    bound = estimator.crlb(obs, truth)
    T, Q = obs.num_snapshots, estimator.num_scatterers
    assert isinstance(bound, Bound) and dataclasses.is_dataclass(bound)
    assert bound.position_error_bound.shape == (T,)
    # The paper's own setting is where its bound applies: finite, positive, and below the
    # distances of the setting (metres, not millimetres squared or kilometres).
    assert np.all(np.isfinite(bound.position_error_bound))
    assert np.all((bound.position_error_bound > 0) & (bound.position_error_bound < 1e3))
    assert bound.scatterer_error_bound.shape[0] == T
    assert bound.scatterer_error_bound.shape[1] in (0, Q)
    if bound.orientation_error_bound is not None:
        assert bound.orientation_error_bound.shape == (T,)
    for key, value in bound.other.items():
        assert np.shape(value) == (T,), key
    # Computed from the same truth twice: the same numbers (no hidden randomness).
    np.testing.assert_array_equal(estimator.crlb(obs, truth).position_error_bound,
                                  bound.position_error_bound)


@pytest.mark.parametrize("name", NAMES)
def test_constructible_with_keyword_only_defaults(name: str) -> None:
    cls = ESTIMATORS[name]
    # Every parameter but self is keyword-only (a ``**kwargs`` passes the parent's on).
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), \
            f"{name}: {p.name} is not keyword-only"
    params = [p for p, _ in cls.hyper_parameters().values()]
    for p in params:
        assert p.default is not inspect.Parameter.empty, f"{name}: {p.name} has no default"
    estimator = cls()
    assert estimator.get_params() == {p.name: p.default for p in params}


@pytest.mark.parametrize("name", NAMES)
def test_get_params_round_trip(name: str) -> None:
    estimator = ESTIMATORS[name]()
    clone = type(estimator)(**estimator.get_params())
    assert clone.get_params() == estimator.get_params()
    changed = estimator.with_params(max_iterations=17) if "max_iterations" in \
        estimator.get_params() else estimator.with_params()
    assert changed is not estimator
    with pytest.raises(TypeError, match="unknown parameter"):
        estimator.with_params(no_such_parameter=1)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_shapes_units_and_no_state(name: str) -> None:
    estimator = ESTIMATORS[name]()
    before = repr(estimator)
    obs = paper_observation(name)
    a = estimator.estimate(obs, np.random.default_rng(5))
    b = estimator.estimate(obs, np.random.default_rng(5))
    assert repr(estimator) == before  # results are returned, never stored on self
    assert isinstance(a, Estimate) and dataclasses.is_dataclass(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.converged = np.zeros(2, bool)  # type: ignore[misc]
    for field in dataclasses.fields(Estimate):
        va, vb = getattr(a, field.name), getattr(b, field.name)
        if isinstance(va, np.ndarray) and field.name != "runtime_s":  # wall time varies
            np.testing.assert_array_equal(va, vb)
    T, Q, P = obs.num_snapshots, estimator.num_scatterers, estimator.num_estimated_paths
    assert a.ue_position.shape == (T, 3) and a.ue_yaw.shape == (T,)
    assert a.scatterers.shape == (T, Q, 3) and a.scatterer_valid.shape == (T, Q)
    assert a.path_tau.shape == (T, P) and a.path_aod.shape == (T, P, 2)
    assert a.converged.shape == (T,) and len(a.reason) == T and a.runtime_s.shape == (T,)
    assert (a.converged.all() or name in SLAB_GRADIENT_LCE) and np.all(a.runtime_s > 0)
    # Units: metres (a paper-scale position), seconds (delays of tens of metres).
    assert np.all(np.linalg.norm(a.ue_position, axis=1) < 1e3)
    # (A path slot the estimator left unused, e.g. under ``num_paths="auto"``, is NaN.)
    tau = a.path_tau[np.isfinite(a.path_tau)]
    assert tau.size == 0 or np.all((tau > 0) & (tau < 1e-5))
    assert np.isfinite(a.path_tau).any() or P == 0, name
    # Every converged fix says how unsure it is: a symmetric positive semi-definite
    # covariance [m²] in the dimensions the estimator estimates, NaN in the others.
    d = estimator.position_dimensions(obs)
    assert a.position_covariance is not None and a.position_covariance.shape == (T, 3, 3)
    for t in np.flatnonzero(a.converged):
        block = a.position_covariance[t, :d, :d]
        assert np.all(np.isfinite(block)), (name, t, a.position_covariance[t])
        np.testing.assert_allclose(block, block.T, err_msg=name)
        assert np.linalg.eigvalsh(block).min() >= 0, (name, block)
        assert np.all(np.isnan(a.position_covariance[t, d:])), name


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("corruption", ["zeros", "nan", "inf_noise"])
def test_degenerate_input_gives_not_converged_with_reason(name: str, corruption: str) -> None:
    obs = paper_observation(name)
    if corruption == "zeros":
        obs = dataclasses.replace(obs, y=np.zeros_like(obs.y))
    elif corruption == "nan":
        y = obs.y.copy()
        y[0, 0, 0, 0, 0] = np.nan
        obs = dataclasses.replace(obs, y=y)
    else:
        obs = dataclasses.replace(obs, noise_variance=np.full_like(obs.noise_variance, np.inf))
    est = ESTIMATORS[name]().estimate(obs)
    failed = [0] if corruption == "nan" else list(range(obs.num_snapshots))
    assert not est.converged[failed].any()
    assert all(est.reason[t] for t in failed)
    assert np.all(np.isnan(est.ue_position[failed]))
    if corruption == "nan" and obs.num_snapshots > 1:
        # The other snapshot is unaffected (SLAB's gradient baselines stop at their
        # budget without claiming convergence, but they do estimate).
        assert est.converged[1] or name in SLAB_GRADIENT_LCE
        assert np.all(np.isfinite(est.ue_position[1]))


# ------------------------------------------------------------------ resource bounds


@pytest.mark.parametrize("name", NAMES)
def test_working_memory_is_keyed_by_hyper_parameters(name: str) -> None:
    estimator = ESTIMATORS[name]()
    memory = estimator.working_memory(paper_observation(name))
    assert isinstance(memory, dict)
    assert set(memory) <= set(estimator.default_params()), f"{name}: {sorted(memory)}"
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in memory.values())


#: (estimator, hyper-parameters, the knob, its setting grown by ``factor``, factor): the
#: knob's term must grow by exactly that factor. miso: 96 m in steps of 1 m or 0.5 m (96
#: and 192 ranges, under the unambiguous 192 m); dpd: twice the grid points.
SCALING = [
    ("miso-ml", {"range_step_m": 1.0, "max_range_m": 96.0}, "range_step_m", 0.5, 2),
    ("miso-ml", {"range_step_m": 1.0, "max_range_m": 96.0}, "range_step_m", 0.25, 4),
    ("dpd", {"grid_shape": (20, 20)}, "grid_shape", (40, 20), 2),
    ("dpd", {"grid_shape": (20, 20)}, "grid_shape", (60, 60), 9),
]


@pytest.mark.parametrize("name, params, knob, grown, factor", SCALING)
def test_working_memory_scales_with_its_knob(name: str, params: dict[str, Any], knob: str,
                                             grown: Any, factor: int) -> None:
    obs = paper_observation(name)
    estimator = ESTIMATORS[name](**params)
    before = estimator.working_memory(obs)[knob]
    after = estimator.with_params(**{knob: grown}).working_memory(obs)[knob]
    assert after == factor * before


def _peak_bytes(work: Any) -> int:
    """tracemalloc's peak while ``work()`` runs (numpy's allocations are traced)."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_miso_working_memory_is_within_2x_of_its_grid() -> None:
    obs = paper_observation("miso-ml", num_snapshots=1)
    step, angle = 0.25, float(np.deg2rad(1.0))  # 767 ranges x 180 directions
    estimator = ESTIMATORS["miso-ml"](range_step_m=step, angle_step_rad=angle)
    memory = estimator.working_memory(obs)
    snap = MisoSnapshot.from_observation(obs, 0, 0)
    reach = 3e8 / float(obs.frequencies[1] - obs.frequencies[0])

    def search() -> None:
        grid = _search_grid(snap, 0.0, step, angle, reach, 2)
        assert (grid.ranges.size, grid.azimuths.size) == grid_size(step, angle, reach, 2)
        sp_pseudospectrum(snap, grid, snap.y)

    grid_bytes = sum(v for k, v in memory.items() if k != "num_paths")
    peak = _peak_bytes(search)
    assert peak / 2 <= grid_bytes <= 2 * peak, (grid_bytes, peak)


def test_dpd_working_memory_is_within_2x_of_its_peak() -> None:
    obs = paper_observation("dpd", num_snapshots=4)
    estimator = ESTIMATORS["dpd"](grid_shape=(60, 60), num_angles=400)
    memory = sum(estimator.working_memory(obs).values())
    peak = _peak_bytes(lambda: estimator.estimate(obs))
    assert peak / 2 <= memory <= 2 * peak, (memory, peak)


#: The path-count knobs and their bounds on a snapshot ``y [.., S, M, K]``: real samples
#: over the unknowns of a path (miso: gain, range, azimuth; locman, dcs-somp: gain,
#: delay, AOA, AOD); slab: per slot, 4 a NLOS path and BS after the LOS's 2 J + 3
#: (default J = 3 BSs, K / J subcarriers each). Then the least count allowed.
PATH_BOUNDS = [
    ("miso-ml", "num_paths", lambda S, M, K: 2 * S * M * K // 4, 1),
    ("miso-sp-grid", "num_paths", lambda S, M, K: 2 * S * M * K // 4, 1),
    ("locman", "num_paths", lambda S, M, K: 2 * S * M * K // 5, 1),
    ("dcs-somp", "num_paths", lambda S, M, K: 2 * S * M * K // 5, 1),
    ("slab", "num_nlos", lambda S, M, K: (2 * 3 * S * M * (K // 3) - 9) // 12, 0),
]


@pytest.mark.parametrize("name, knob, bound, least", PATH_BOUNDS)
def test_path_counts_are_bounded_by_the_data(name: str, knob: str, bound: Any,
                                             least: int) -> None:
    obs = paper_observation(name, num_snapshots=1)
    estimator = ESTIMATORS[name](**{knob: 10**9})
    for call in (estimator.check, estimator.working_memory, estimator.estimate):
        with pytest.raises(EstimatorInputError,
                           match=rf"^{name}: {knob}=1000000000 exceeds "
                                 rf"{bound(*obs.y.shape[2:])}\b") as raised:
            call(obs)
        assert "\n" not in str(raised.value)
    most = bound(*obs.y.shape[2:])
    estimator.with_params(**{knob: most}).check(obs)
    for count in (most + 1, least - 1):
        with pytest.raises(EstimatorInputError, match=knob):
            estimator.with_params(**{knob: count}).check(obs)
