"""DAUN's registered estimators (estimators/daun/estimators.py) on the paper's setting,
and the checkpoints they load (estimators/daun/checkpoint.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from estimators.base import EstimatorInputError
from estimators.daun.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from estimators.daun.estimators import Daun, PAdmm
from estimators.daun.scenario import DaunScenario, small
from tests.tolerances import (
    DAUN_PADMM_OWN_CELL_MIN,
    FLOAT32_REL,
)

#: A small version of the paper's setting: fast, and a grid one cell of which is 4 m.
SMALL = DaunScenario(num_bs_antennas=16, grid_shape=(10, 10), num_angles=32)


def test_padmm_localizes_on_the_grid_at_high_snr() -> None:
    """16-element arrays at ~60 m resolve ~7 m across range; four BSs cut that to the
    true cell or a neighbour (4 m cells: half-diagonal 2.83 m, diagonal 5.66 m)."""
    obs, truths = SMALL.observation(16, np.random.default_rng(5), 20.0)
    p = truths[0].ue_position
    est = PAdmm(area=SMALL.area, grid_shape=SMALL.grid_shape, ue_height=SMALL.height,
                num_angles=SMALL.num_angles).estimate(obs)
    assert est.converged.all()
    errors = np.linalg.norm(est.ue_position - p, axis=1)
    half_diagonal = 2.0 * np.sqrt(2)
    assert np.all(errors <= 2 * half_diagonal + FLOAT32_REL)
    assert np.mean(errors <= half_diagonal + FLOAT32_REL) >= DAUN_PADMM_OWN_CELL_MIN


def test_checkpoints_load_by_name_and_refuse_what_they_are_not(tmp_path: Path) -> None:
    shipped = load_checkpoint("street")
    assert shipped["format"] == CHECKPOINT_FORMAT
    assert len(shipped["parameters"]["w"]) == 4
    with pytest.raises(EstimatorInputError, match=r"'nowhere' not found \(shipped: .*street"):
        load_checkpoint("nowhere")
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a checkpoint")
    with pytest.raises(EstimatorInputError, match="not readable"):
        load_checkpoint(str(foreign))
    # A checkpoint trained for other BSs refuses the observation in one line, naming both
    # geometries and the two commands that make a matching one.
    obs, _ = DaunScenario(num_bs_antennas=8, bs_xy=((-50.0, -50.0), (50.0, 50.0))
                          ).observation(1, np.random.default_rng(0), 10.0)
    for checkpoint, trained in ((None, r"shipped: 'street': 4 BSs at \(-45, 0, 8\)"),
                                ("street", r"'street' was trained for 4 BSs at \(-45, 0, 8\)")):
        with pytest.raises(EstimatorInputError) as error:
            Daun(checkpoint=checkpoint).estimate(obs)
        message = str(error.value)
        assert "\n" not in message
        assert re.search(trained, message), message
        assert re.search(r"2 BSs at \(-50, -50, 0\) 45°, \(50, 50, 0\) -135°; 1x8 array; "
                         r"30 GHz", message), message
        assert "`twin dataset CONFIG.yaml -o DIR`" in message
        assert "`twin train daun DIR -o daun.pt`" in message


def test_daun_chooses_the_shipped_checkpoint_of_the_geometry() -> None:
    """``checkpoint=None``: the shipped one trained for the observation's geometry
    (``small()``: ``paper-small``), the same fixes as naming it."""
    obs, _ = small().observation(2, np.random.default_rng(1), 20.0)
    chosen = Daun().estimate(obs)
    named = Daun(checkpoint="paper-small").estimate(obs)
    np.testing.assert_array_equal(chosen.ue_position, named.ue_position)
    assert load_checkpoint("paper-small")["geometry"]["bs_array"] == [1, 8]
