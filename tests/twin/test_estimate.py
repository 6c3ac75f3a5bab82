"""``twin estimate``: estimators on a run file → one HDF5 estimate file.

Contract (twin/estimate.py): each algorithm sees the run's channel sounded as its class
asks (``sounding``) with noise drawn from ``SeedSequence([seed, crc32(name)])``; the
estimate file holds ``/config`` (seed, run identity, noise) and
``/estimates/<algorithm>/...`` with the per-snapshot results; same inputs ⇒ identical
arrays; user errors are one line (``TwinInputError``; exit 2 from the CLI) and leave no
output. The estimators here are small real ones defined in this module and registered
only while a test needs them, so the file does not depend on any paper's estimator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from estimators.arrays import SPEED_OF_LIGHT, steering_vector, unit_direction
from estimators.base import (
    ESTIMATORS,
    Bound,
    Estimate,
    Estimator,
    EstimatorInputError,
    SnapshotEstimate,
    register,
)
from estimators.types import Observation, Truth, bs_truth
from tests.conftest import make_config, wall_y, write_obj
from tests.tolerances import FLOAT64_REL
from tests.twin.test_cli import assert_no_output, assert_one_line_error, run_twin, temp_leftovers
from twin.cli import app
from twin.errors import TwinInputError
from twin.estimate import (
    DEFAULT_NOISE_FIGURE_DB,
    DEFAULT_TX_POWER_DBM,
    NOT_ESTIMATED,
    algorithm_rng,
    estimate_run,
)
from twin.estimatefile import read_estimates
from twin.runfile import read_run
from twin.settings import parse_settings
from twin.simulate import simulate_to_file
from twin.sounding import observation_from_run, service_margin, thermal_noise_variance

UE_POSITIONS = [(4.0, 0.0, 3.0), (6.0, 2.0, 3.0), (8.0, -1.5, 3.0), (12.0, 3.0, 3.0),
                (9.0, 5.0, 3.0)]
T = len(UE_POSITIONS)
STRONGEST = "test-strongest-path"
FIRST = "test-first-arrival"
BOTH = f"{STRONGEST},{FIRST}"
ONE_LINE = r"^[^\n]*\Z"  # pytest.raises(match=...): a message without line breaks


# ------------------------------------------------------------ test estimators


class StrongestPath(Estimator):
    """Strongest (beam, delay) pairs of the matched filter, one snapshot at a time.

    At BS 0, the pilots are removed, ``z[m, k] = y[m, k] / s[m, k]``, and correlated
    with a delay grid ``τ_g = g / (oversampling K Δf)`` over the unambiguous range:
    ``E[m, g] = |(1/K) Σ_k z[m, k] e^{+j2π f_k τ_g}|²``. The ``num_paths`` largest
    peaks on distinct beams are the paths; a beam's direction is the azimuth (in the
    BS's horizontal plane, in front of the array) maximising ``|a(φ, π/2)^T F[:, m]|``.
    The UE lies at ``bs + c τ_0 u(φ_0)``; the other paths' scatterers at ``c τ_p / 2``
    along their beams.
    """

    name: ClassVar[str] = STRONGEST
    paper: ClassVar[str] = "test"
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "dft"}

    def __init__(self, *, num_paths: int = 1, oversampling: int = 4) -> None:
        self.num_paths = num_paths
        self.oversampling = oversampling

    @property
    def num_scatterers(self) -> int:
        return self.num_paths - 1

    @property
    def num_estimated_paths(self) -> int:
        return self.num_paths

    def position_dimensions(self, obs: Observation) -> int:
        """2: the beams' directions are azimuths in the BS's horizontal plane."""
        return 2

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if self.num_paths < 1 or self.oversampling < 1:
            raise EstimatorInputError(f"{self.name}: num_paths and oversampling must be >= 1")
        if obs.link != "downlink" or obs.ue_array.num_ant != 1:
            raise EstimatorInputError(
                f"{self.name}: needs a downlink at a single-antenna UE "
                f"(got {obs.ue_array.num_ant} UE antennas)"
            )

    def _energy(self, obs: Observation, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Matched-filter output ``[beam, delay]`` (complex) and the delay grid [s]."""
        f = obs.frequencies
        K = f.size
        spacing = float(f[1] - f[0])
        taus = np.arange(K * self.oversampling) / (K * self.oversampling * spacing)
        z = obs.y[t, 0, 0] / obs.pilots
        return z @ np.exp(2j * np.pi * np.outer(f, taus)) / K, taus

    def _beam_azimuths(self, obs: Observation, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Pointing azimuth of every beam [rad] and its response ``a(φ)^T F[:, m]``."""
        yaw = float(obs.bs_orientation[0, 0])
        grid = yaw + np.linspace(-np.pi / 2, np.pi / 2, 721)
        elements = obs.bs_array.world_positions(obs.bs_orientation[0])
        response = steering_vector(elements, grid, np.pi / 2, obs.wavelength) @ obs.precoders[t, 0]
        best = np.argmax(np.abs(response), axis=0)
        return grid[best], response[best, np.arange(best.size)]

    def _pick(self, energy: np.ndarray) -> list[tuple[int, int]]:
        """``(beam, delay index)`` of the ``num_paths`` strongest peaks on distinct beams."""
        e = energy.copy()
        picks = []
        for _ in range(min(self.num_paths, e.shape[0])):
            m, g = np.unravel_index(int(np.argmax(e)), e.shape)
            picks.append((int(m), int(g)))
            e[m] = -np.inf
        return picks

    def _result(self, obs: Observation, t: int, picks: list[tuple[int, int]]) -> SnapshotEstimate:
        corr, taus = self._energy(obs, t)
        azimuth, response = self._beam_azimuths(obs, t)
        P = self.num_paths
        tau, aod, gain = np.full(P, np.nan), np.full((P, 2), np.nan), np.full(P, np.nan + 0j)
        for p, (m, g) in enumerate(picks):
            tau[p], aod[p] = taus[g], (azimuth[m], np.pi / 2)
            gain[p] = corr[m, g] / response[m]
        bs = obs.bs_position[0]
        directions = unit_direction(aod[:, 0], aod[:, 1])
        scatterers = bs + (SPEED_OF_LIGHT * tau[1:, None] / 2) * directions[1:]
        m0, g0 = picks[0]
        return SnapshotEstimate(
            ue_position=bs + SPEED_OF_LIGHT * tau[0] * directions[0],
            scatterers=scatterers, scatterer_valid=np.isfinite(scatterers).all(axis=1),
            path_tau=tau, path_aod=aod, path_gain=gain,
            diagnostics={"peak_energy": float(np.abs(corr[m0, g0]) ** 2),
                         "noise_variance": float(obs.noise_variance[t, 0])},
        )

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        corr, _ = self._energy(obs, t)
        return self._result(obs, t, self._pick(np.abs(corr) ** 2))


class FirstArrival(StrongestPath):
    """The earliest delay whose best-beam energy is ``threshold_db`` above the median
    energy is the LOS; further paths as in :class:`StrongestPath`. All-ones pilots."""

    name: ClassVar[str] = FIRST
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "dft",
                                          "pilots": "ones"}

    def __init__(
        self, *, num_paths: int = 1, oversampling: int = 4, threshold_db: float = 10.0
    ) -> None:
        super().__init__(num_paths=num_paths, oversampling=oversampling)
        self.threshold_db = threshold_db

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        corr, _ = self._energy(obs, t)
        energy = np.abs(corr) ** 2
        best = energy.max(axis=0)
        above = np.flatnonzero(best >= np.median(energy) * 10 ** (self.threshold_db / 10))
        if above.size == 0:
            return self._failed(f"no delay {self.threshold_db:g} dB above the median")
        g = int(above[0])
        first = (int(np.argmax(energy[:, g])), g)
        rest = energy.copy()
        rest[first[0]] = -np.inf
        return self._result(obs, t, [first, *self._pick(rest)[: self.num_paths - 1]])


@pytest.fixture(autouse=True)
def registered_test_estimators() -> Iterator[None]:
    """Register the test estimators for one test; unregister them afterwards."""
    register(StrongestPath)
    register(FirstArrival)
    yield
    ESTIMATORS.pop(STRONGEST, None)
    ESTIMATORS.pop(FIRST, None)


# ------------------------------------------------------------------- runs


def _simulate(tmp: Path, **kwargs: Any) -> Path:
    write_obj(tmp / "scene.obj", wall_y("wall_north", 10.0))
    config = make_config("scene.obj", ue_positions=UE_POSITIONS, bs_array={"rows": 1, "cols": 8},
                         seed=11, **kwargs)
    (tmp / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    simulate_to_file(tmp / "run.yaml", tmp / "run.h5")
    return tmp / "run.h5"


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LOS + a wall reflection, an 8-element BS and a single-antenna UE, seed 11."""
    return _simulate(tmp_path_factory.mktemp("estimate-run"))


@pytest.fixture(scope="module")
def ue_array_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same drive with a 2x2 UE array."""
    return _simulate(tmp_path_factory.mktemp("estimate-ue-array"),
                     ue_array={"rows": 2, "cols": 2})


def _datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by its path."""
    out: dict[str, np.ndarray] = {}

    def collect(key: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            out[key] = node[()]

    with h5py.File(path, "r") as f:
        f.visititems(collect)
    return out


def _assert_estimates_equal(a: Estimate, b: Estimate, runtime: bool = True) -> None:
    for fl in fields(Estimate):
        if fl.name == "runtime_s" and not runtime:
            continue
        x, y = getattr(a, fl.name), getattr(b, fl.name)
        if fl.name == "diagnostics":
            assert sorted(x) == sorted(y)
            for key in x:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
        elif fl.name == "reason":
            assert tuple(x) == tuple(y)
        else:
            assert np.asarray(x).dtype == np.asarray(y).dtype, fl.name
            np.testing.assert_array_equal(x, y, err_msg=fl.name)


# ------------------------------------------------------------- the file


def test_file_layout_and_shapes(run_path: Path, tmp_path: Path) -> None:
    """One group per algorithm with [T, ...] datasets of the documented shapes and units."""
    out = tmp_path / "est.h5"
    results = estimate_run(run_path, BOTH, out, snr_db=20.0, settings=["num_paths=3"])
    assert list(results) == [STRONGEST, FIRST]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est.h5"]
    P, Q = 3, 2
    shapes = {
        "ue_position": (T, 3), "ue_yaw": (T,), "scatterers": (T, Q, 3),
        "scatterer_valid": (T, Q), "converged": (T,), "reason": (T,), "runtime_s": (T,),
        "path_tau": (T, P), "path_aod": (T, P, 2), "path_gain": (T, P),
        "position_covariance": (T, 3, 3), "scatterer_covariance": (T, Q, 3, 3),
        "diagnostics/peak_energy": (T,), "diagnostics/noise_variance": (T,),
    }
    units = {"ue_position": "m", "scatterers": "m", "runtime_s": "s", "path_tau": "s",
             "path_aod": "rad (azimuth, zenith)", "ue_yaw": "rad"}
    with h5py.File(out, "r") as f:
        assert set(f) == {"config", "estimates", "snapshot_time"}
        np.testing.assert_array_equal(f["snapshot_time"][()], read_run(run_path).drive.time)
        assert set(f["estimates"]) == {STRONGEST, FIRST}
        for algo in (STRONGEST, FIRST):
            g = f["estimates"][algo]
            for key, shape in shapes.items():
                assert g[key].shape == shape, (algo, key)
            for key, unit in units.items():
                assert g[key].attrs["units"] == unit, (algo, key)
            assert g["converged"].dtype == np.bool_
            assert g["scatterer_valid"].dtype == np.bool_
            assert g["path_gain"].dtype == np.complex128
            assert h5py.check_string_dtype(g["reason"].dtype) is not None
            assert g["converged"][()].all()
            assert (g["runtime_s"][()] >= 0).all()
    # The LOS is the strongest path here: the estimated range is the true one.
    run = read_run(run_path)
    true_range = np.linalg.norm(run.drive.position - run.bs_position[0], axis=1)
    est_range = SPEED_OF_LIGHT * results[STRONGEST].path_tau[:, 0]
    resolution = SPEED_OF_LIGHT / run.bandwidth / 4  # the delay grid's step [m]
    assert np.all(np.abs(est_range - true_range) <= resolution)


def test_config_and_algorithm_attrs(run_path: Path, tmp_path: Path) -> None:
    """/config names the run (file, scene hash, snapshots, seed); each algorithm group
    carries its parameters, sounding, seed and noise. Default noise: thermal, 20 dBm."""
    out = tmp_path / "est.h5"
    estimate_run(run_path, [STRONGEST, FIRST], out, settings=[f"{FIRST}.threshold_db=6"])
    run = read_run(run_path)
    default_noise = {"tx_power_dbm": DEFAULT_TX_POWER_DBM,
                     "noise_figure_db": DEFAULT_NOISE_FIGURE_DB}
    with h5py.File(out, "r") as f:
        cfg = f["config"].attrs
        assert cfg["schema_version"] == "2.2"
        assert cfg["kind"] == "estimates"
        assert int(cfg["seed"]) == 11 == run.seed
        assert cfg["run_file"] == "run.h5"
        assert cfg["run_scene_sha256"] == run.scene_sha256
        assert int(cfg["run_num_snapshots"]) == T
        assert int(cfg["run_seed"]) == 11
        assert json.loads(cfg["algorithms"]) == [STRONGEST, FIRST]
        assert "numpy" in json.loads(cfg["versions"])
        assert yaml.safe_load(cfg["noise"]) == default_noise
        for algo, cls, params in (
            (STRONGEST, StrongestPath, {"num_paths": 1, "oversampling": 4}),
            (FIRST, FirstArrival, {"num_paths": 1, "oversampling": 4, "threshold_db": 6.0}),
        ):
            attrs = f["estimates"][algo].attrs
            assert yaml.safe_load(attrs["params"]) == params
            assert yaml.safe_load(attrs["sounding"]) == cls.sounding
            assert int(attrs["seed"]) == 11
            assert yaml.safe_load(attrs["noise"]) == default_noise
            assert float(attrs["tx_power_dbm"]) == DEFAULT_TX_POWER_DBM
            assert attrs["estimator"].endswith(cls.__qualname__)
            assert int(attrs["position_dimensions"]) == 2
            assert "bound" not in f["estimates"][algo]  # no bound declared
        # The int given on the command line became the float the parameter is.
        assert isinstance(yaml.safe_load(f["estimates"][FIRST].attrs["params"])["threshold_db"],
                          float)


def test_thermal_noise_follows_tx_power_mode(run_path: Path, tmp_path: Path) -> None:
    """In tx-power mode the noise variance is k_B T0 (B/K) NF, whatever the power."""
    results = estimate_run(run_path, STRONGEST, tmp_path / "est.h5", tx_power_dbm=30.0,
                           noise_figure_db=9.0)
    run = read_run(run_path)
    expected = thermal_noise_variance(run.bandwidth, run.frequencies.size, 9.0)
    np.testing.assert_allclose(results[STRONGEST].diagnostics["noise_variance"], expected,
                               rtol=FLOAT64_REL)
    assert read_estimates(tmp_path / "est.h5").noise == {"tx_power_dbm": 30.0,
                                                          "noise_figure_db": 9.0}


def test_snr_mode_is_recorded(run_path: Path, tmp_path: Path) -> None:
    """--snr-db is stored as the noise setting, without a noise figure."""
    estimate_run(run_path, STRONGEST, tmp_path / "est.h5", snr_db=12.5)
    with h5py.File(tmp_path / "est.h5", "r") as f:
        assert yaml.safe_load(f["config"].attrs["noise"]) == {"snr_db": 12.5}
        assert float(f["estimates"][STRONGEST].attrs["snr_db"]) == 12.5
        assert "noise_figure_db" not in f["estimates"][STRONGEST].attrs


# ------------------------------------------------------------- randomness


def test_same_inputs_give_identical_arrays(run_path: Path, tmp_path: Path) -> None:
    """Same run, algorithms, settings and seed ⇒ every dataset identical (runtimes aside)."""
    kwargs: dict[str, Any] = {"snr_db": 5.0, "settings": ["num_paths=2"], "seed": 3}
    estimate_run(run_path, BOTH, tmp_path / "a.h5", **kwargs)
    estimate_run(run_path, BOTH, tmp_path / "b.h5", **kwargs)
    a, b = _datasets(tmp_path / "a.h5"), _datasets(tmp_path / "b.h5")
    assert sorted(a) == sorted(b)
    compared = [key for key in a if not key.endswith("runtime_s")]
    assert len(compared) == 2 * 13 + 1  # 11 result datasets, 2 covariances; snapshot_time
    for key in compared:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_different_seed_draws_different_noise(run_path: Path, tmp_path: Path) -> None:
    """Another seed is stored and changes the noise-dependent output."""
    first = estimate_run(run_path, STRONGEST, tmp_path / "a.h5", snr_db=5.0, seed=1)
    second = estimate_run(run_path, STRONGEST, tmp_path / "b.h5", snr_db=5.0, seed=2)
    assert read_estimates(tmp_path / "a.h5").seed == 1
    assert read_estimates(tmp_path / "b.h5").seed == 2
    a, b = first[STRONGEST], second[STRONGEST]
    assert not np.array_equal(a.path_gain, b.path_gain)
    assert not np.array_equal(a.diagnostics["peak_energy"], b.diagnostics["peak_energy"])


def test_algorithm_generator_is_the_documented_one(run_path: Path, tmp_path: Path) -> None:
    """Each algorithm's observation and randomness come from SeedSequence([seed,
    crc32(name)]): rebuilding them by hand gives the file's estimates exactly."""
    results = estimate_run(run_path, BOTH, tmp_path / "est.h5", snr_db=8.0, seed=5)
    run = read_run(run_path)
    for name, cls in ((STRONGEST, StrongestPath), (FIRST, FirstArrival)):
        rng = algorithm_rng(5, name)
        obs = observation_from_run(run, rng=rng, seed=5, snr_db=8.0, **cls.sounding)
        by_hand = cls().estimate(obs, rng)
        _assert_estimates_equal(results[name], by_hand, runtime=False)
    # Independent generators: the two algorithms did not see the same noise.
    a = algorithm_rng(5, STRONGEST).standard_normal(4)
    assert not np.array_equal(a, algorithm_rng(5, FIRST).standard_normal(4))


def test_seed_defaults_to_the_run_seed(run_path: Path, tmp_path: Path) -> None:
    """Without a seed the run's seed is used: same arrays as passing it explicitly."""
    implicit = estimate_run(run_path, STRONGEST, tmp_path / "a.h5", snr_db=5.0)
    explicit = estimate_run(run_path, STRONGEST, tmp_path / "b.h5", snr_db=5.0, seed=11)
    _assert_estimates_equal(implicit[STRONGEST], explicit[STRONGEST], runtime=False)


# ------------------------------------------------------------- read back


def test_read_estimates_round_trip(run_path: Path, tmp_path: Path) -> None:
    """read_estimates rebuilds the in-memory Estimates exactly, with the file's attrs."""
    out = tmp_path / "est.h5"
    results = estimate_run(run_path, BOTH, out, snr_db=10.0, settings=["num_paths=2"],
                           seed=7)
    back = read_estimates(out)
    run = read_run(run_path)
    assert list(back.estimates) == [STRONGEST, FIRST]
    for name, est in results.items():
        assert isinstance(back.estimates[name], Estimate)
        _assert_estimates_equal(est, back.estimates[name])
    assert back.schema_version == "2.2"
    assert (back.seed, back.run_seed, back.run_num_snapshots) == (7, 11, T)
    assert back.run_file == "run.h5"
    assert back.run_scene_sha256 == run.scene_sha256
    assert back.noise == {"snr_db": 10.0}
    assert back.params[FIRST] == {"num_paths": 2, "oversampling": 4, "threshold_db": 10.0}
    assert back.sounding[STRONGEST] == StrongestPath.sounding
    assert "h5py" in back.versions


def test_failed_snapshots_round_trip(run_path: Path, tmp_path: Path) -> None:
    """Non-converged snapshots keep their reason and NaNs through the file."""
    out = tmp_path / "est.h5"
    results = estimate_run(run_path, FIRST, out, snr_db=10.0,
                           settings=["threshold_db=2e2"])
    est = results[FIRST]
    assert not est.converged.any()
    assert all(r.startswith("no delay") for r in est.reason)
    assert np.isnan(est.ue_position).all()
    _assert_estimates_equal(est, read_estimates(out).estimates[FIRST])


@pytest.mark.parametrize("kind", ["missing", "text", "run file", "empty hdf5"])
def test_read_estimates_rejects_other_files(run_path: Path, tmp_path: Path, kind: str) -> None:
    """Anything but an estimate file is one TwinInputError line naming the file."""
    path = tmp_path / "est.h5"
    if kind == "text":
        path.write_text("not hdf5\n")
    elif kind == "run file":
        path = run_path
    elif kind == "empty hdf5":
        h5py.File(path, "w").close()
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        read_estimates(path)
    assert str(path) in str(info.value)
    if kind == "run file":
        assert "a run file" in str(info.value)


# ------------------------------------------------------------- --set


def test_set_global_and_scoped() -> None:
    """key=value reaches every selected algorithm that has the key; algo.key=value only
    that one and wins over the global value; YAML values fit the annotations."""
    classes = {STRONGEST: StrongestPath, FIRST: FirstArrival}
    out = parse_settings(
        [f"{STRONGEST}.num_paths=3", "num_paths=2", "threshold_db=3", "oversampling=8"],
        classes,
    )
    assert out == {STRONGEST: {"num_paths": 3, "oversampling": 8},
                   FIRST: {"num_paths": 2, "threshold_db": 3.0, "oversampling": 8}}
    assert isinstance(out[FIRST]["threshold_db"], float)
    assert parse_settings([], classes) == {STRONGEST: {}, FIRST: {}}


@pytest.mark.parametrize(("item", "needles"), [
    ("nope=1", ("nope", "no selected algorithm", "num_paths")),
    (f"{STRONGEST}.threshold_db=1", (STRONGEST, "threshold_db", "oversampling")),
    ("unknown-algo.num_paths=1", ("unknown-algo", "not selected")),
    ("num_paths=two", ("num_paths", "int", "two")),
    ("num_paths=[1, 2]", ("num_paths", "int")),
    ("num_paths=true", ("num_paths", "int")),
    ("num_paths", ("key=value",)),
    ("threshold_db=[1", ("not valid YAML",)),
])
def test_set_errors_are_one_line(item: str, needles: tuple[str, ...]) -> None:
    """Unknown keys, unselected algorithms, ill-typed or malformed values: one line."""
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        parse_settings([item], {STRONGEST: StrongestPath, FIRST: FirstArrival})
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


class Shaped(StrongestPath):
    """Hyper-parameters of the annotated kinds the project's estimators use."""

    name: ClassVar[str] = "test-shaped"

    def __init__(
        self, *, area: tuple[tuple[float, float], tuple[float, float]] | None = None,
        solver: Literal["admm", "sdp"] = "admm", label: str = "", scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.area, self.solver, self.label, self.scale = area, solver, label, scale


@pytest.mark.parametrize(("item", "expected"), [
    ("area=[[0, 1], [2.5, 3]]", ((0.0, 1.0), (2.5, 3.0))),
    ("area=null", None),
    ("solver=sdp", "sdp"),
    ("label=3", "3"),  # a text parameter takes the text as written
    ("scale=1e6", 1e6),  # YAML 1.1 reads 1e6 as text
    ("scale=2", 2.0),
])
def test_set_validates_against_the_annotation(item: str, expected: Any) -> None:
    value = parse_settings([item], {Shaped.name: Shaped})[Shaped.name]
    assert list(value.values()) == [expected]
    assert type(next(iter(value.values()))) is type(expected)


@pytest.mark.parametrize("item", [
    "area=[[0, 1]]", "area=[[0, 1], [2, 3], [4, 5]]", "solver=qp", "scale=.nan",
    "scale=true", "area=[[0, true], [2, 3]]",
])
def test_set_refuses_what_the_annotation_does_not_allow(item: str) -> None:
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        parse_settings([item], {Shaped.name: Shaped})
    assert f"{Shaped.name}.{item.partition('=')[0]} expects" in str(info.value)


def test_set_same_key_twice_is_an_error() -> None:
    with pytest.raises(TwinInputError, match="more than once"):
        parse_settings(["num_paths=1", "num_paths=2"], {STRONGEST: StrongestPath})


def test_set_applies_to_the_estimators(run_path: Path, tmp_path: Path) -> None:
    """Overrides reach the estimators: P paths and P - 1 scatterers per snapshot."""
    results = estimate_run(run_path, BOTH, tmp_path / "est.h5", snr_db=20.0,
                           settings=["num_paths=2", f"{FIRST}.num_paths=3"])
    assert results[STRONGEST].path_tau.shape == (T, 2)
    assert results[FIRST].path_tau.shape == (T, 3)
    assert results[FIRST].scatterers.shape == (T, 2, 3)


# ------------------------------------------------------------- other user errors


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"snr_db": 10.0, "tx_power_dbm": 20.0}, "not both"),
    ({"snr_db": 10.0, "noise_figure_db": 5.0}, "--noise-figure-db"),
    ({"snr_db": float("nan")}, "--snr-db"),
    ({"noise_figure_db": -1.0}, "--noise-figure-db"),
    ({"seed": -1}, "--seed"),
])
def test_noise_and_seed_errors(run_path: Path, tmp_path: Path, kwargs: dict[str, Any],
                               needle: str) -> None:
    """Exactly one noise mode, finite values, a non-negative seed; nothing written."""
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        estimate_run(run_path, STRONGEST, tmp_path / "est.h5", **kwargs)
    assert needle in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_algorithm_lists_registered_sorted(run_path: Path, tmp_path: Path) -> None:
    with pytest.raises(TwinInputError) as info:
        estimate_run(run_path, f"{STRONGEST},nope", tmp_path / "est.h5")
    message = str(info.value)
    assert "'nope'" in message
    listed = message.split("registered: ")[1].rstrip(")").split(", ")
    assert listed == sorted(ESTIMATORS)
    assert {STRONGEST, FIRST} <= set(listed)


def test_estimator_input_error_names_algorithm_and_run(
    ue_array_run: Path, tmp_path: Path
) -> None:
    """A single-antenna estimator on a run with a 2x2 UE array: one line naming the
    algorithm and the run file; no output."""
    out = tmp_path / "est.h5"
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        estimate_run(ue_array_run, [STRONGEST], out, snr_db=10.0)
    message = str(info.value)
    assert STRONGEST in message and str(ue_array_run) in message
    assert "single-antenna" in message
    assert_no_output(out)


class UeArrayOnly(StrongestPath):
    """:class:`StrongestPath` on the first UE antenna, refusing single-antenna UEs."""

    name: ClassVar[str] = "test-ue-array-only"

    def _validate(self, obs: Observation) -> None:
        Estimator._validate(self, obs)
        if obs.ue_array.num_ant < 2:
            raise EstimatorInputError(f"{self.name}: needs a UE array")


@pytest.fixture()
def ue_array_only() -> Iterator[str]:
    register(UeArrayOnly)
    yield UeArrayOnly.name
    ESTIMATORS.pop(UeArrayOnly.name)


def test_misfit_fails_before_any_estimator_runs(
    ue_array_run: Path, tmp_path: Path, ue_array_only: str
) -> None:
    """The misfit comes second: the first (fitting) estimator never starts."""
    calls: list[tuple[str, int, int]] = []
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        estimate_run(ue_array_run, [ue_array_only, STRONGEST], tmp_path / "est.h5",
                     snr_db=10.0, on_progress=lambda *a: calls.append(a))
    assert STRONGEST in str(info.value) and calls == []
    assert_no_output(tmp_path / "est.h5")


def test_on_skip_leaves_misfits_out(ue_array_run: Path, tmp_path: Path,
                                    ue_array_only: str) -> None:
    skipped: list[tuple[str, str]] = []
    out = tmp_path / "est.h5"
    results = estimate_run(ue_array_run, [STRONGEST, ue_array_only], out, snr_db=10.0,
                           on_skip=lambda *a: skipped.append(a))
    assert list(results) == [ue_array_only]
    assert [name for name, _ in skipped] == [STRONGEST]
    assert "single-antenna" in skipped[0][1] and "\n" not in skipped[0][1]
    assert list(read_estimates(out).estimates) == [ue_array_only]
    with pytest.raises(TwinInputError, match=ONE_LINE) as info:
        estimate_run(ue_array_run, [STRONGEST, FIRST], tmp_path / "none.h5",
                     on_skip=lambda *a: None)
    assert "none of" in str(info.value)
    assert_no_output(tmp_path / "none.h5")


class SteeredBeam(StrongestPath):
    """Closed loop within a snapshot: :class:`StrongestPath` on the DFT sounding, then one
    beam steered at its LOS departure direction, sounded again through ``obs.sounder``;
    diagnostic ``steered_gain_db``: the steered beam's received power over the mean DFT
    beam's."""

    name: ClassVar[str] = "test-steered-beam"
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "dft",
                                          "closed_loop": True}

    def _validate(self, obs: Observation) -> None:
        super()._validate(obs)
        if obs.sounder is None:
            raise EstimatorInputError(f"{self.name}: needs a closed-loop sounder")

    def _estimate_snapshot(
        self, obs: Observation, t: int, rng: np.random.Generator
    ) -> SnapshotEstimate:
        result = super()._estimate_snapshot(obs, t, rng)
        assert obs.sounder is not None
        elements = obs.bs_array.world_positions(obs.bs_orientation[0])
        azimuth, zenith = result.path_aod[0]
        a = steering_vector(elements, azimuth, zenith, obs.wavelength)
        F = np.zeros((obs.num_bs, obs.frequencies.size, a.size, obs.pilots.shape[0]), complex)
        F[:, :, :, 0] = a.conj() / np.linalg.norm(a)
        y = obs.sounder.sound(t, F, rng)
        steered = np.mean(np.abs(y[0, 0, 0]) ** 2)
        mean_dft = np.mean(np.abs(obs.y[t, 0, 0]) ** 2)
        return replace(result, diagnostics={
            **result.diagnostics, "steered_gain_db": float(10 * np.log10(steered / mean_dft))})


def test_closed_loop_estimator_gets_a_sounder(run_path: Path, tmp_path: Path) -> None:
    """A class asking ``closed_loop`` gets the run's channel to re-sound: the beam it
    steers at its own LOS estimate beats the mean DFT beam by about the array gain;
    same seed, same arrays."""
    register(SteeredBeam)
    try:
        a = estimate_run(run_path, SteeredBeam.name, tmp_path / "a.h5", snr_db=20.0)
        b = estimate_run(run_path, SteeredBeam.name, tmp_path / "b.h5", snr_db=20.0)
    finally:
        ESTIMATORS.pop(SteeredBeam.name)
    _assert_estimates_equal(a[SteeredBeam.name], b[SteeredBeam.name], runtime=False)
    gain = a[SteeredBeam.name].diagnostics["steered_gain_db"]
    # 8 elements: a beam on the LOS gains up to 10 log10(8) = 9 dB over the DFT mean.
    assert np.all(gain > 3.0) and np.all(gain < 10 * np.log10(8) + 1.0), gain
    with h5py.File(tmp_path / "a.h5") as f:
        assert "closed_loop: true" in f[f"estimates/{SteeredBeam.name}"].attrs["sounding"]


class BadSounding(StrongestPath):
    """Asks for a precoder kind the twin does not have."""

    name: ClassVar[str] = "test-bad-sounding"
    sounding: ClassVar[dict[str, Any]] = {"link": "downlink", "precoder": "fancy"}


def test_bad_sounding_option_is_one_line(run_path: Path, tmp_path: Path) -> None:
    """A sounding the twin cannot build: one line naming the algorithm and the run."""
    register(BadSounding)
    try:
        with pytest.raises(TwinInputError, match=ONE_LINE) as info:
            estimate_run(run_path, [STRONGEST, BadSounding.name], tmp_path / "est.h5")
    finally:
        ESTIMATORS.pop(BadSounding.name)
    message = str(info.value)
    assert BadSounding.name in message and str(run_path) in message and "fancy" in message
    assert list(tmp_path.iterdir()) == []


def test_output_must_not_be_the_run(run_path: Path) -> None:
    before = run_path.read_bytes()
    with pytest.raises(TwinInputError, match="is the input"):
        estimate_run(run_path, STRONGEST, run_path, overwrite=True)
    assert run_path.read_bytes() == before


def test_progress_reports_every_snapshot_of_each_algorithm(
    run_path: Path, tmp_path: Path
) -> None:
    calls: list[tuple[str, int, int]] = []
    estimate_run(run_path, BOTH, tmp_path / "est.h5", snr_db=10.0,
                 on_progress=lambda *a: calls.append(a))
    assert calls == [(name, done, T) for name in (STRONGEST, FIRST) for done in range(T + 1)]


# ------------------------------------------------------------- the CLI


def test_cli_estimate_writes_file_and_summary(run_path: Path, tmp_path: Path) -> None:
    """`twin estimate` in-process (the test estimators exist only here): exit 0, the
    file, one summary line per algorithm on stderr."""
    out = tmp_path / "est.h5"
    result = CliRunner().invoke(app, [
        "estimate", str(run_path), "-a", STRONGEST, "-a", FIRST, "-o", str(out),
        "--snr-db", "10", "--set", "num_paths=2", "--seed", "4",
    ])
    assert result.exit_code == 0, result.output
    back = read_estimates(out)
    assert list(back.estimates) == [STRONGEST, FIRST]
    assert back.seed == 4
    assert back.params[STRONGEST]["num_paths"] == 2
    assert f"{STRONGEST}: {T}/{T} converged" in result.stderr
    assert f"{FIRST}: {T}/{T} converged" in result.stderr
    assert "ms per snapshot" in result.stderr


def test_cli_estimate_quiet_prints_nothing(run_path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "estimate", str(run_path), "-a", STRONGEST, "-o", str(tmp_path / "est.h5"), "-q",
    ])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert (tmp_path / "est.h5").is_file()


# Error paths through the real console script. The test estimators are not registered
# in that subprocess; every error below is found before algorithm names are resolved
# (noise options, output, run file), except the unknown algorithm itself.


def test_cli_unknown_algorithm(run_path: Path, tmp_path: Path) -> None:
    result = run_twin("estimate", str(run_path), "-a", "no-such-algo", "-o", "est.h5",
                      cwd=tmp_path)
    assert_one_line_error(result, ("no-such-algo", "registered"))
    assert_no_output(tmp_path / "est.h5")


def test_cli_missing_run_file(tmp_path: Path) -> None:
    result = run_twin("estimate", "absent.h5", "-a", STRONGEST, "-o", "est.h5", cwd=tmp_path)
    assert_one_line_error(result, ("absent.h5", "not found"))
    assert_no_output(tmp_path / "est.h5")


@pytest.mark.parametrize("kind", ["text", "hdf5"])
def test_cli_not_a_run_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "notarun.h5"
    if kind == "text":
        path.write_text("seed: 1\n")
    else:
        with h5py.File(path, "w") as f:
            f.create_group("config").attrs["schema_version"] = "1.0"
    result = run_twin("estimate", "notarun.h5", "-a", STRONGEST, "-o", "est.h5", cwd=tmp_path)
    assert_one_line_error(result, ("notarun.h5", "not"))
    assert_no_output(tmp_path / "est.h5")


def test_cli_snr_and_tx_power_exclusive(run_path: Path, tmp_path: Path) -> None:
    result = run_twin("estimate", str(run_path), "-a", "any", "-o", "est.h5", "--snr-db", "10",
                      "--tx-power-dbm", "20", cwd=tmp_path)
    assert_one_line_error(result, ("--snr-db", "--tx-power-dbm"))
    assert_no_output(tmp_path / "est.h5")


def test_cli_existing_output_kept_without_overwrite(run_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "est.h5"
    out.write_bytes(b"earlier estimates")
    result = run_twin("estimate", str(run_path), "-a", STRONGEST, "-o", "est.h5", cwd=tmp_path)
    assert_one_line_error(result, ("est.h5", "--overwrite"))
    assert out.read_bytes() == b"earlier estimates"
    assert temp_leftovers(tmp_path) == []


# ------------------------------------------------- dimensions and bounds


class RangeBounded(StrongestPath):
    """:class:`StrongestPath` with a stand-in bound that shows which truth it was given:
    the true BS-UE range as the position bound, the truth's scatterers' ranges from the
    BS per path after the first, its yaw as the orientation bound, and a further bound."""

    name: ClassVar[str] = "test-range-bounded"
    bound: ClassVar[str] = "test: the true range (no paper)"

    def crlb(self, obs: Observation, truth: Truth) -> Bound:
        if obs.num_bs > 1:  # one ChannelTruth per BS, in the observation's order
            assert isinstance(truth, list) and len(truth) == obs.num_bs
            np.testing.assert_array_equal(truth[1].ue_position, truth[0].ue_position)
        truth = bs_truth(truth, 0)
        bs = obs.bs_position[0]
        assert truth.scatterer is not None  # the twin's truth has its scatterers
        scatterers = truth.scatterer[:, 1:self.num_paths]
        return Bound(
            position_error_bound=np.linalg.norm(truth.ue_position - bs, axis=1),
            scatterer_error_bound=np.linalg.norm(scatterers - bs, axis=-1),
            orientation_error_bound=truth.ue_orientation[:, 0],
            other={"delay_s": truth.tau[:, 0]},
        )


class Undeclared(StrongestPath):
    """An estimator that forgot to declare its dimensions."""

    name: ClassVar[str] = "test-undeclared"

    def position_dimensions(self, obs: Observation) -> int:
        return Estimator.position_dimensions(self, obs)


@pytest.fixture()
def contract_estimators() -> Iterator[None]:
    register(RangeBounded)
    register(Undeclared)
    yield
    ESTIMATORS.pop(RangeBounded.name)
    ESTIMATORS.pop(Undeclared.name)


def test_bound_and_dimensions_stored_at_estimate_time(
    run_path: Path, tmp_path: Path, contract_estimators: None
) -> None:
    """An estimator with a bound gets ``bound/position_m``, ``scatterer_m``,
    ``orientation_rad`` and each further bound, from the twin's truth (the run's own
    drive); one without gets none; both their declared dimensions."""
    out = tmp_path / "est.h5"
    estimate_run(run_path, [RangeBounded.name, STRONGEST], out, snr_db=20.0,
                 settings=["num_paths=2"])
    run = read_run(run_path)
    true_range = np.linalg.norm(run.drive.position - run.bs_position[0], axis=1)
    with h5py.File(out, "r") as f:
        g = f["estimates"][RangeBounded.name]
        assert g["bound"].attrs["description"] == RangeBounded.bound
        assert sorted(g["bound"]) == ["delay_s", "orientation_rad", "position_m", "scatterer_m"]
        np.testing.assert_allclose(g["bound/position_m"][()], true_range, rtol=FLOAT64_REL)
        assert g["bound/scatterer_m"].shape == (T, 1)
        assert g["bound/position_m"].attrs["units"] == "m"
        np.testing.assert_allclose(g["bound/delay_s"][()] * SPEED_OF_LIGHT, true_range,
                                   rtol=1e-6)
        assert "bound" not in f["estimates"][STRONGEST]
    back = read_estimates(out)
    assert back.position_dimensions == {RangeBounded.name: 2, STRONGEST: 2}
    assert set(back.bounds) == {RangeBounded.name}
    stored = back.bounds[RangeBounded.name]
    np.testing.assert_allclose(stored.position_m, true_range, rtol=FLOAT64_REL)
    assert stored.orientation_rad is not None and stored.orientation_rad.shape == (T,)
    assert set(stored.other) == {"delay_s"}


def test_undeclared_dimensions_fail_before_any_estimator_runs(
    run_path: Path, tmp_path: Path, contract_estimators: None
) -> None:
    """A missing ``position_dimensions`` is a programming error, not a guess: it is
    raised before anything runs, and nothing is written."""
    out = tmp_path / "est.h5"
    ran: list[str] = []
    with pytest.raises(NotImplementedError, match="test-undeclared"):
        estimate_run(run_path, [STRONGEST, Undeclared.name], out, snr_db=20.0,
                     on_progress=lambda name, done, total: ran.append(name))
    assert ran == [] and not out.exists()


def test_bound_gets_one_truth_per_bs(tmp_path: Path, contract_estimators: None) -> None:
    """On a run with two BSs the bound is given both BSs' true channels, in the BS order
    (asserted inside :meth:`RangeBounded.crlb`), and what it returns is stored."""
    write_obj(tmp_path / "scene.obj", wall_y("wall_north", 10.0))
    config = make_config("scene.obj", ue_positions=UE_POSITIONS[:2],
                         bs_array={"rows": 1, "cols": 8}, seed=11)
    config["base_stations"].append({**config["base_stations"][0], "name": "bs1",
                                    "position": [20.0, 0.0, 3.0]})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    simulate_to_file(tmp_path / "run.yaml", tmp_path / "run.h5")
    estimate_run(tmp_path / "run.h5", RangeBounded.name, tmp_path / "est.h5", snr_db=20.0)
    run = read_run(tmp_path / "run.h5")
    stored = read_estimates(tmp_path / "est.h5").bounds[RangeBounded.name]
    np.testing.assert_allclose(
        stored.position_m, np.linalg.norm(run.drive.position - run.bs_position[0], axis=1),
        rtol=FLOAT64_REL)


# ------------------------------------------------------- snapshots, service area


def test_snapshots_estimate_a_subset_with_the_same_noise(run_path: Path, tmp_path: Path
                                                         ) -> None:
    """``--snapshots``: the selected snapshots are estimated exactly as in a full call (the
    run is sounded whole first), the others stored as not estimated; per algorithm."""
    full = estimate_run(run_path, BOTH, tmp_path / "full.h5", snr_db=10.0)
    part = estimate_run(run_path, BOTH, tmp_path / "part.h5", snr_db=10.0,
                        snapshots=["1:5:2", f"{FIRST}=0,4"])
    chosen = {STRONGEST: [1, 3], FIRST: [0, 4]}
    for name, index in chosen.items():
        left_out = sorted(set(range(T)) - set(index))
        np.testing.assert_array_equal(part[name].ue_position[index],
                                      full[name].ue_position[index])
        assert not part[name].converged[left_out].any()
        assert {part[name].reason[t] for t in left_out} == {NOT_ESTIMATED}
        assert np.isnan(part[name].ue_position[left_out]).all()
    stored = read_estimates(tmp_path / "part.h5").estimates[STRONGEST]
    assert stored.reason[0] == NOT_ESTIMATED


@pytest.mark.parametrize("item", ["nope=0:2", "99", "a:b", "1:1", "0:1:2:3"])
def test_snapshots_errors_are_one_line(run_path: Path, tmp_path: Path, item: str) -> None:
    with pytest.raises(TwinInputError, match=ONE_LINE) as err:
        estimate_run(run_path, BOTH, tmp_path / "est.h5", snr_db=10.0, snapshots=[item])
    assert item in str(err.value)
    assert not (tmp_path / "est.h5").exists()


def test_service_area_is_the_drive_grown_by_the_margin(run_path: Path, tmp_path: Path
                                                       ) -> None:
    """The observation's and the estimate file's service area: the drive's horizontal
    extent grown on every side by a quarter of its larger side (8 m here: 2 m), its
    median UE height."""
    run = read_run(run_path)
    obs = observation_from_run(run, rng=np.random.default_rng(0), snr_db=10.0)
    assert obs.service_area is not None
    xy = np.array(UE_POSITIONS)[:, :2]
    margin = 0.25 * 8.0
    assert service_margin(8.0) == margin and service_margin(1.0) == 2.0
    assert service_margin(400.0) == 10.0
    np.testing.assert_allclose(obs.service_area.area,
                               [xy.min(0) - margin, xy.max(0) + margin], atol=1e-5)
    assert obs.service_area.ue_height == pytest.approx(3.0, abs=1e-5)
    estimate_run(run_path, STRONGEST, tmp_path / "est.h5", snr_db=10.0)
    with h5py.File(tmp_path / "est.h5", "r") as f:
        stored = json.loads(f["config"].attrs["service_area"])
    np.testing.assert_allclose(stored["area"], obs.service_area.area)
