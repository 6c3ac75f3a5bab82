"""UE snapshots: trajectory sampling closed forms, position lists and CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tolerances import (
    FLOAT64_ABS,
    FLOAT64_REL,
)
from twin.config import TrajectoryConfig, UEConfig
from twin.drive import build_drive, sample_trajectory
from twin.errors import TwinInputError


def test_straight_line_sampling() -> None:
    traj = TrajectoryConfig(waypoints=[(-20, 5, 1.5), (20, 5, 1.5)], speed_mps=10,
                            sample_period_s=0.1)
    time, position, velocity = sample_trajectory(traj)
    assert len(time) == 41  # 40 m at 1 m per sample, both ends included
    np.testing.assert_allclose(time, np.arange(41) * 0.1, rtol=FLOAT64_REL)
    np.testing.assert_allclose(position[:, 0], np.linspace(-20, 20, 41), atol=FLOAT64_ABS)
    np.testing.assert_allclose(velocity, np.tile([10.0, 0, 0], (41, 1)), atol=FLOAT64_ABS)


def test_polyline_keeps_constant_speed_across_corners() -> None:
    traj = TrajectoryConfig(waypoints=[(0, 0, 1), (3, 0, 1), (3, 4, 1)], speed_mps=2,
                            sample_period_s=0.5)
    _, position, velocity = sample_trajectory(traj)
    assert len(position) == 8  # 7 m path, 1 m per sample
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(position, axis=0), axis=1))])
    # Samples before/after the corner lie on the path at arc length k m.
    np.testing.assert_allclose(position[4], [3, 1, 1], atol=FLOAT64_ABS)
    assert arc[-1] <= 7.0 + 1e-12
    np.testing.assert_allclose(np.linalg.norm(velocity, axis=1), 2.0, rtol=FLOAT64_REL)
    np.testing.assert_allclose(velocity[0], [2, 0, 0], atol=FLOAT64_ABS)
    np.testing.assert_allclose(velocity[-1], [0, 2, 0], atol=FLOAT64_ABS)


def test_repeated_waypoints_are_ignored_and_zero_length_is_an_error() -> None:
    traj = TrajectoryConfig(waypoints=[(0, 0, 1), (0, 0, 1), (2, 0, 1)], speed_mps=1,
                            sample_period_s=1)
    _, position, _ = sample_trajectory(traj)
    np.testing.assert_allclose(position[:, 0], [0, 1, 2], atol=FLOAT64_ABS)
    with pytest.raises(TwinInputError, match="zero-length trajectory"):
        sample_trajectory(TrajectoryConfig(waypoints=[(1, 2, 3), (1, 2, 3)], speed_mps=1,
                                           sample_period_s=1))


def test_positions_csv(tmp_path: Path) -> None:
    csv = tmp_path / "pos.csv"
    csv.write_text("x,y,z\n1,2,3\n# comment\n4, 5, 6\n")
    drive = build_drive(UEConfig(positions_csv="pos.csv", orientation=(0.1, 0, 0)), tmp_path)
    np.testing.assert_array_equal(drive.position, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(drive.velocity, np.zeros((2, 3)))
    np.testing.assert_array_equal(drive.orientation[:, 0], [0.1, 0.1])
    csv.write_text("1,2\n")
    with pytest.raises(TwinInputError, match=r"pos.csv:1: expected x,y,z"):
        build_drive(UEConfig(positions_csv="pos.csv"), tmp_path)
    with pytest.raises(TwinInputError, match="file not found"):
        build_drive(UEConfig(positions_csv="missing.csv"), tmp_path)
