"""Estimators on twin channels: truth conversion, MISO and LOCMAN against ray-traced truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from estimators.arrays import SPEED_OF_LIGHT, mimo_ofdm_channel
from estimators.miso.bound import efficient_errors
from estimators.miso.estimators import MisoML
from tests.conftest import assert_stored_bound, make_config, run_config, wall_y, write_obj
from tests.tolerances import (
    DCS_SOMP_TWIN_UE_M,
    EFFICIENCY_DB1,
    LOCMAN_TWIN_SCATTERER_M,
    LOCMAN_TWIN_UE_M,
    LOCMAN_TWIN_YAW_RAD,
    SLAB_TWIN_SCATTERER_M,
    SLAB_TWIN_UE_M,
    SLAB_TWIN_YAW_RAD,
    STEERING_REL,
    STORED_BOUND_LOCMAN_M,
    STORED_BOUND_MISO_M,
    paired_rmse_margin,
    rmse_margin,
)
from twin.runfile import RunData
from twin.sounding import channel_truth, observation_from_run

UE = [[12.0, 1.0, 3.0], [18.0, -2.0, 3.0], [25.0, 3.0, 3.0], [9.0, 4.0, 3.0],
      [30.0, -5.0, 3.0], [15.0, 6.0, 3.0], [22.0, 0.0, 3.0], [27.0, -3.0, 3.0]]


@pytest.fixture(scope="module")
def wall_run(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    """LOS + one wall reflection, BS and UE at the same height: the paper's 2D model."""
    tmp = tmp_path_factory.mktemp("miso-twin")
    scene = write_obj(tmp / "wall.obj", wall_y("wall_north", 10.0))
    config = make_config(scene, ue_positions=UE, bs_array={"rows": 1, "cols": 16},
                         bs_orientation=(0.2, 0.0, 0.0),
                         tracing={"max_depth": 1, "refraction": False},
                         radio={"frequency_hz": 28e9, "bandwidth_hz": 100e6,
                                "num_subcarriers": 64})
    run: RunData = run_config(config, tmp).run
    return run


def test_channel_truth_rebuilds_the_twin_cfr(wall_run: RunData) -> None:
    run = wall_run
    truth = channel_truth(run)
    assert truth.los.all()
    assert np.all(truth.valid.sum(axis=1) == 2)
    tx = run.bs_array.world_positions(run.bs_orientation[0])
    for t in range(len(UE)):
        v = truth.valid[t]
        model = mimo_ofdm_channel(
            truth.gain[t, v], truth.tau[t, v], truth.aod[t, v], truth.aoa[t, v],
            tx_element_positions=tx, rx_element_positions=np.zeros((1, 3)),
            wavelength=SPEED_OF_LIGHT / run.carrier_frequency, frequencies=run.frequencies,
        )
        twin = run.cfr[t, 0]
        assert np.linalg.norm(twin - model) / np.linalg.norm(twin) < STEERING_REL
        np.testing.assert_allclose(truth.scatterer[t, 1, 1], 10.0, atol=1e-3)  # on the wall


def test_miso_ml_on_twin_reaches_its_bound(wall_run: RunData) -> None:
    run = wall_run
    obs = observation_from_run(run, rng=np.random.default_rng(4), seed=4, snr_db=15.0,
                               **MisoML.sounding)
    est = MisoML().estimate(obs)
    truth = channel_truth(run)
    bound = MisoML().crlb(obs, truth)
    assert est.converged.all()
    # The UE paired with the efficient estimator on the same noise (its MSE is the bound):
    # measured 0.997-1.004 over seeds 4-7, where the bound-reaching estimator alone scores
    # 1.06-1.17 x the PEB on 8 positions. The scatterer: unpaired (its paired margin is
    # x1.5-1.9 on 8 very different positions, no tighter).
    ue_err = (est.ue_position - truth.ue_position)[:, :2]
    efficient_ue, _ = efficient_errors(obs, truth, dimensions=2)
    ratio = np.sqrt(np.mean(np.sum(ue_err**2, axis=1)) / np.mean(np.sum(efficient_ue**2, axis=1)))
    assert ratio <= EFFICIENCY_DB1 * paired_rmse_margin(ue_err, efficient_ue)
    sc_err = np.linalg.norm(est.scatterers[:, 0] - truth.scatterer[:, 1], axis=1)
    margin = EFFICIENCY_DB1 * rmse_margin(len(UE))
    assert np.sqrt(np.mean(sc_err**2)) <= margin * np.sqrt(
        np.mean(bound.scatterer_error_bound[:, 0] ** 2))
    ue_err = np.linalg.norm(est.ue_position - truth.ue_position, axis=1)
    assert np.max(ue_err) < 0.1  # centimetres, against the ray-traced positions


def test_twin_estimate_end_to_end_on_a_simulated_run_file(tmp_path: Path) -> None:
    """`twin simulate` → run.h5 → `twin estimate -a miso-ml,miso-sp-grid` → est.h5."""
    import yaml

    from twin.estimate import estimate_run
    from twin.estimatefile import read_estimates
    from twin.runfile import read_run
    from twin.simulate import simulate_to_file

    scene = write_obj(tmp_path / "wall.obj", wall_y("wall_north", 10.0))
    config = make_config(scene.name, ue_positions=UE[:4], bs_array={"rows": 1, "cols": 16},
                         tracing={"max_depth": 1, "refraction": False},
                         radio={"frequency_hz": 28e9, "bandwidth_hz": 100e6,
                                "num_subcarriers": 64})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    simulate_to_file(tmp_path / "c.yaml", tmp_path / "run.h5")
    estimate_run(tmp_path / "run.h5", "miso-ml,miso-sp-grid", tmp_path / "est.h5", snr_db=20.0)
    run, est = read_run(tmp_path / "run.h5"), read_estimates(tmp_path / "est.h5")
    assert list(est.estimates) == ["miso-ml", "miso-sp-grid"]
    assert est.run_scene_sha256 == run.scene_sha256 and est.run_num_snapshots == 4
    ml = est.estimates["miso-ml"]
    assert ml.converged.all()
    assert np.max(np.linalg.norm(ml.ue_position - run.drive.position, axis=1)) < 0.1
    grid = est.estimates["miso-sp-grid"]
    assert np.max(np.linalg.norm(grid.ue_position - run.drive.position, axis=1)) < 3.0
    for name in est.estimates:  # LOS + one wall at every snapshot: the bound applies
        bound = assert_stored_bound(est, name, [True] * 4)
        assert np.all(bound.position_m < STORED_BOUND_MISO_M), bound.position_m


# ---------------------------------------------------------------- LOCMAN / DCS-SOMP

LOCMAN_UE = [[6.0, 1.0, 1.5], [8.0, -2.0, 1.5], [7.0, 3.0, 1.5], [9.0, 2.0, 1.5]]
LOCMAN_UE_HEIGHT = 1.5
LOCMAN_YAW = 0.4 + np.pi  # the UE array's broadside roughly towards the BS


@pytest.fixture
def one_blas_thread() -> Iterator[None]:
    """OpenBLAS (numpy's and scipy's wheels) limited to one thread during a test.

    LOCMAN's ADMM runs thousands of small Hermitian eigendecompositions; with two
    OpenBLAS threads on a busy 2-core machine each one costs ~100x more (a 96 x 96
    ``eigh``: 2 ms -> 190 ms), which turned this file's LOCMAN test from ~2 s into
    80-260 s. Best effort: a BLAS without these symbols is left as it is.
    """
    import ctypes

    handles = []
    for folder in ("numpy.libs", "scipy.libs"):
        for lib in sorted((Path(np.__file__).parents[1] / folder).glob("libscipy_openblas*.so")):
            cdll = ctypes.CDLL(str(lib))
            for suffix in ("64_", ""):
                get = getattr(cdll, f"scipy_openblas_get_num_threads{suffix}", None)
                set_ = getattr(cdll, f"scipy_openblas_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    handles.append((get, set_, int(get())))
                    set_(1)
                    break
    try:
        yield
    finally:
        for _, set_, previous in handles:
            set_(previous)


@pytest.fixture(scope="module")
def locman_run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`twin simulate` of LOS + one wall with a BS ULA (8) and a rotated UE ULA (4).

    BS 1.5 m above the UE: the wall bounce is a vertical reflector, LOCMAN's model with
    a known UE height. K = 9 subcarriers over 100 MHz: c / Δf = 24 m exceeds every
    path (<= 16 m), and the denoiser stays small (a second per snapshot).
    """
    import yaml

    from twin.simulate import simulate_to_file

    tmp = tmp_path_factory.mktemp("locman-twin")
    scene = write_obj(tmp / "wall.obj", wall_y("wall_north", 6.0))
    config = make_config(scene.name, ue_positions=LOCMAN_UE, bs_array={"rows": 1, "cols": 8},
                         ue_array={"rows": 1, "cols": 4}, ue_orientation=(LOCMAN_YAW, 0.0, 0.0),
                         tracing={"max_depth": 1, "refraction": False},
                         radio={"frequency_hz": 28e9, "bandwidth_hz": 100e6,
                                "num_subcarriers": 9})
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))
    simulate_to_file(tmp / "c.yaml", tmp / "run.h5")
    return tmp / "run.h5"


def test_locman_forward_model_equals_the_twin_cfr(locman_run_file: Path) -> None:
    """LocmanSnapshot.channel at the ray-traced geometry (eq. 3 with the vertical-
    reflector heights) rebuilds the twin's MIMO CFR: steering, delays, gains, yaw."""
    from estimators.locman.bound import true_parameters
    from estimators.locman.estimators import Locman
    from estimators.locman.model import snapshot
    from twin.runfile import read_run

    run = read_run(locman_run_file)
    truth = channel_truth(run)
    assert truth.los.all() and np.all(truth.valid.sum(axis=1) == 2)
    assert truth.ue_orientation is not None
    np.testing.assert_allclose(truth.ue_orientation[:, 0], LOCMAN_YAW)
    obs = observation_from_run(run, rng=np.random.default_rng(0), seed=0, snr_db=30.0,
                               **Locman.sounding)
    for t in range(len(LOCMAN_UE)):
        snap = snapshot(obs, t, 0, LOCMAN_UE_HEIGHT)
        paths = np.flatnonzero(truth.valid[t])
        _, eta = true_parameters(snap, truth, t, paths)
        model = snap.channel(truth.gain[t, paths], eta)  # [K, Nr, Nt]
        twin = run.cfr[t, 0].transpose(2, 0, 1)
        assert np.linalg.norm(twin - model) / np.linalg.norm(twin) < STEERING_REL


def test_twin_estimate_locman_and_dcs_somp_end_to_end(
    locman_run_file: Path, tmp_path: Path, one_blas_thread: None
) -> None:
    """run.h5 → `twin estimate -a locman,dcs-somp` → est.h5, against ray-traced truth."""
    from twin.estimate import estimate_run
    from twin.estimatefile import read_estimates
    from twin.runfile import read_run

    estimate_run(locman_run_file, "locman,dcs-somp", tmp_path / "est.h5", snr_db=30.0,
                 settings=["num_paths=2", f"ue_height={LOCMAN_UE_HEIGHT}"])
    run, est = read_run(locman_run_file), read_estimates(tmp_path / "est.h5")
    truth = channel_truth(run)
    T = len(LOCMAN_UE)
    assert list(est.estimates) == ["locman", "dcs-somp"]
    assert est.run_num_snapshots == T
    for name, e in est.estimates.items():
        assert e.ue_position.shape == (T, 3) and e.ue_yaw.shape == (T,), name
        assert e.scatterers.shape == (T, 1, 3) and e.path_tau.shape == (T, 2), name
        assert e.converged.all() and e.scatterer_valid.all(), name
        np.testing.assert_allclose(e.ue_position[:, 2], LOCMAN_UE_HEIGHT)
    lm = est.estimates["locman"]
    assert np.max(np.linalg.norm(lm.ue_position - run.drive.position, axis=1)) < LOCMAN_TWIN_UE_M
    yaw_err = np.angle(np.exp(1j * (lm.ue_yaw - LOCMAN_YAW)))
    assert np.max(np.abs(yaw_err)) < LOCMAN_TWIN_YAW_RAD
    # The wall bounce: the scatterer is the ray-traced reflection point on the wall.
    sc_err = np.linalg.norm(lm.scatterers[:, 0] - truth.scatterer[:, 1], axis=1)
    assert np.max(sc_err) < LOCMAN_TWIN_SCATTERER_M
    somp = est.estimates["dcs-somp"]
    assert np.max(np.linalg.norm(somp.ue_position - run.drive.position, axis=1)) < \
        DCS_SOMP_TWIN_UE_M
    # One bound for the method and its baseline, in the plane: below LOCMAN's errors'
    # scale (millimetres at 30 dB), not the BS-UE height difference. Each algorithm is
    # sounded with its own random pilots, so the two bounds differ by their draws
    # (measured 1-3 %).
    locman_bound = assert_stored_bound(est, "locman", [True] * T)
    somp_bound = assert_stored_bound(est, "dcs-somp", [True] * T)
    np.testing.assert_allclose(locman_bound.position_m, somp_bound.position_m, rtol=0.1)
    assert np.all(locman_bound.position_m < STORED_BOUND_LOCMAN_M)
    assert est.position_dimensions == {"locman": 2, "dcs-somp": 2}


# ------------------------------------------------------------------- SLAB

SLAB_UE = [[15.0, 2.0, 1.5], [15.0, 2.0, 1.5], [17.0, 0.5, 1.5], [17.0, 0.5, 1.5]]
SLAB_BS = [((0.0, 0.0, 1.5), 0.13), ((30.0, -4.0, 1.5), 2.76), ((14.0, -20.0, 1.5), 1.53)]
SLAB_UE_YAW = 0.3


@pytest.fixture(scope="module")
def slab_run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three BSs (1x4 ULAs) and a UE (1x4 ULA, yaw 0.3) at one height below a wall: per
    BS the LOS and one wall bounce, SLAB's planar L = 1 model exactly. 30 subcarriers
    over 25 MHz (10 per BS 2.5 MHz apart: 120 m unambiguous; with 50 MHz a wall point
    came back on its 60 m delay alias). The UE holds each position for two
    snapshots (one window of SLAB's loop)."""
    import yaml

    from twin.simulate import simulate_to_file

    tmp = tmp_path_factory.mktemp("slab-twin")
    scene = write_obj(tmp / "wall.obj", wall_y("wall_north", 10.0))
    config = make_config(scene.name, ue_positions=SLAB_UE, ue_array={"rows": 1, "cols": 4},
                         ue_orientation=(SLAB_UE_YAW, 0.0, 0.0),
                         tracing={"max_depth": 1, "refraction": False},
                         radio={"frequency_hz": 28e9, "bandwidth_hz": 25e6,
                                "num_subcarriers": 30})
    config["base_stations"] = [
        {"name": f"bs{j}", "position": list(p), "orientation": [yaw, 0.0, 0.0],
         "array": {"rows": 1, "cols": 4}} for j, (p, yaw) in enumerate(SLAB_BS)]
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))
    simulate_to_file(tmp / "c.yaml", tmp / "run.h5")
    return tmp / "run.h5"


def test_twin_estimate_slab_closed_loop(
    slab_run_file: Path, tmp_path: Path, one_blas_thread: None
) -> None:
    """run.h5 → `twin estimate -a slab,slab-lce` (closed loop: each slot re-sounded with
    the beams SLAB chose) → UE, yaw and the wall points against the ray-traced truth."""
    from twin.estimate import estimate_run
    from twin.estimatefile import read_estimates
    from twin.runfile import read_run

    estimate_run(slab_run_file, "slab,slab-lce", tmp_path / "est.h5", snr_db=30.0,
                 settings=["window=2", "ground_height=null"])  # a mesh without ground
    run, est = read_run(slab_run_file), read_estimates(tmp_path / "est.h5")
    walls = np.stack([channel_truth(run, bs=j).scatterer[:, 1] for j in range(3)], axis=1)
    for name, e in est.estimates.items():
        assert e.converged.all(), (name, e.reason)
        ue_err = np.linalg.norm(e.ue_position - run.drive.position, axis=1)
        yaw_err = np.abs(np.angle(np.exp(1j * (e.ue_yaw - SLAB_UE_YAW))))
        wall_err = np.linalg.norm(e.scatterers[..., :2] - walls[..., :2], axis=-1)
        assert np.max(ue_err) < SLAB_TWIN_UE_M, (name, ue_err)
        assert np.max(yaw_err) < SLAB_TWIN_YAW_RAD, (name, yaw_err)
        assert np.max(wall_err) < SLAB_TWIN_SCATTERER_M, (name, wall_err)
    slab = est.estimates["slab"]
    assert np.all(np.isfinite(slab.diagnostics["bfr_cost"]))  # BFR ran at every slot
    assert np.all(np.isnan(est.estimates["slab-lce"].diagnostics["bfr_cost"]))
    assert est.sounding["slab"]["closed_loop"] is True
    # The long-term bound from every BS's truth (LOS + one wall each).
    for name in est.estimates:
        bound = assert_stored_bound(est, name, [True] * run.drive.num_snapshots)
        assert np.all(bound.position_m < SLAB_TWIN_UE_M), bound.position_m
