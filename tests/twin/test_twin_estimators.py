"""Estimators on twin channels: truth conversion and MISO against ray-traced truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from estimators.arrays import SPEED_OF_LIGHT, mimo_ofdm_channel
from estimators.miso import MisoML
from tests.conftest import make_config, run_config, wall_y, write_obj
from tests.tolerances import EFFICIENCY_DB1, STEERING_REL, rmse_margin
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
    ue_err = np.linalg.norm(est.ue_position - truth.ue_position, axis=1)
    sc_err = np.linalg.norm(est.scatterers[:, 0] - truth.scatterer[:, 1], axis=1)
    margin = EFFICIENCY_DB1 * rmse_margin(len(UE))
    assert np.sqrt(np.mean(ue_err**2)) <= margin * np.sqrt(np.mean(bound.position_error_bound**2))
    assert np.sqrt(np.mean(sc_err**2)) <= margin * np.sqrt(
        np.mean(bound.scatterer_error_bound[:, 0] ** 2))
    assert np.max(ue_err) < 0.1  # centimetres, against the ray-traced positions


def test_twin_estimate_end_to_end_on_a_simulated_run_file(tmp_path: Path) -> None:
    """`twin simulate` → run.h5 → `twin estimate -a miso-ml,miso-sp-grid` → est.h5."""
    import yaml

    from twin.estimate import estimate_run, read_estimates
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
