"""DAUN's grid localizers on a real (ray-traced) run that is not the paper's (issue 22):
four BSs with 1x16 ULAs on 8 m masts at the corners of a 100 m square over a ground
plane, users at 1.5 m inside it, narrowband 28 GHz, 20 dB.

The grid comes from the run (its service area, cells from the arrays' resolution), DAUN
refuses a checkpoint trained for other BSs in one line, and no fix is a confident wild
one (``twin.scoring.integrity_metrics``), even with a search area that misses the users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from estimators import ESTIMATORS
from estimators.base import EstimatorInputError
from tests.conftest import make_config, run_config, write_obj
from tests.tolerances import DAUN_REAL_MEDIAN_M, DAUN_REAL_P90_M
from twin.scoring import integrity_metrics
from twin.sounding import observation_from_run

#: BS corners of the square [m] (masts 8 m high, each ULA facing the centre).
CORNERS = ((-50.0, -50.0), (50.0, -50.0), (50.0, 50.0), (-50.0, 50.0))
SNR_DB = 20.0


@pytest.fixture(scope="module")
def square_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """12 users uniform in ±40 m (seed 1), one ray-traced snapshot each (depth 1: the
    LOS and the ground reflection), one subcarrier."""
    tmp = tmp_path_factory.mktemp("square")
    scene = write_obj(tmp / "ground.obj",
                      {"ground": ((-200.0, -200.0, 0.0), (400.0, 0, 0), (0, 400.0, 0))})
    rng = np.random.default_rng(1)
    users = np.column_stack([rng.uniform(-40, 40, (12, 2)), np.full(12, 1.5)])
    config = make_config(scene, ue_positions=users.tolist(), tracing={"max_depth": 1},
                         radio={"frequency_hz": 28.0e9, "bandwidth_hz": 100.0e6,
                                "num_subcarriers": 1})
    config["base_stations"] = [
        {"name": f"bs{j}", "position": [x, y, 8.0],
         "orientation": [float(np.arctan2(-y, -x)), 0.0, 0.0],
         "array": {"rows": 1, "cols": 16}} for j, (x, y) in enumerate(CORNERS)]
    return run_config(config, tmp).run


def observe(run: Any, name: str) -> Any:
    return observation_from_run(run, rng=np.random.default_rng(1), seed=1, snr_db=SNR_DB,
                                **ESTIMATORS[name].sounding)


@pytest.mark.parametrize("name", ["dpd", "p-admm"])
def test_grid_localizers_search_the_runs_own_area(square_run: Any, name: str) -> None:
    """Defaults: the grid over the run's service area (was the paper's 40 x 40 m: 119–130
    m off), every user localized within the grid's quantisation (cells of ~2.2 m)."""
    obs = observe(square_run, name)
    estimator = ESTIMATORS[name]()
    setting = estimator.setting(obs)
    assert setting["area"] == obs.service_area.area
    assert setting["ue_height"] == pytest.approx(1.5)
    est = estimator.estimate(obs)
    assert est.converged.all(), est.reason
    error = np.linalg.norm(est.ue_position[:, :2] - square_run.drive.position[:, :2], axis=1)
    assert np.median(error) <= DAUN_REAL_MEDIAN_M, error
    assert np.percentile(error, 90) <= DAUN_REAL_P90_M, error
    assert integrity_metrics(est, square_run.drive.position, 2)["confident_wild"] == 0


def test_daun_refuses_a_checkpoint_of_other_bss_in_one_line(square_run: Any) -> None:
    obs = observe(square_run, "daun")
    for checkpoint in (None, "street"):
        with pytest.raises(EstimatorInputError) as error:
            ESTIMATORS["daun"](checkpoint=checkpoint).estimate(obs)
        message = str(error.value)
        assert "\n" not in message
        # The run's geometry and the checkpoint's (the street's BSs), and the commands.
        assert "4 BSs at (-50, -50, 8) 45°, (50, -50, 8) 135°" in message, message
        assert "(-45, 0, 8) 0°, (45, 0, 8) 180°" in message, message
        assert "twin dataset" in message and "twin train daun" in message


@pytest.mark.parametrize("name", ["dpd", "p-admm", "stansfield"])
def test_no_confident_wild_fix_even_off_the_users_area(square_run: Any, name: str,
                                                       tmp_path: Path) -> None:
    """The paper's 40 x 40 m area (most users outside it): the fixes pulled to its edge or
    onto ghosts are reported unconverged, none is a confident wild fix."""
    obs = observe(square_run, name)
    est = ESTIMATORS[name](area=((-20.0, -20.0), (20.0, 20.0))).estimate(obs)
    assert (~est.converged).sum() >= 6, est.reason
    assert all(est.reason[t] for t in np.flatnonzero(~est.converged))
    assert integrity_metrics(est, square_run.drive.position, 2)["confident_wild"] == 0
