"""Matching and GOSPA on hand-made cases: perfect, missed, false alarm, swapped order."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tolerances import FLOAT64_ABS
from twin.metrics import gospa, match_points

TRUTH = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 2.0]])
C = 1.0


def test_perfect_map() -> None:
    m = match_points(TRUTH, TRUTH, C)
    g = gospa(m, C)
    assert g.total == 0.0 and g.num_matched == 3 and g.precision == g.recall == 1.0


def test_swapped_order_and_small_errors() -> None:
    est = TRUTH[[2, 0, 1]] + np.array([[0.1, 0, 0], [0, 0.2, 0], [0, 0, 0.3]])
    m = match_points(est, TRUTH, C)
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 2), (1, 0), (2, 1)]
    g = gospa(m, C)
    assert g.localization == pytest.approx(np.sqrt(0.01 + 0.04 + 0.09), abs=FLOAT64_ABS)
    assert g.missed == g.false == 0.0


def test_missed_point() -> None:
    g = gospa(match_points(TRUTH[:2], TRUTH, C), C)
    assert (g.num_matched, g.num_missed, g.num_false) == (2, 1, 0)
    assert g.total == pytest.approx(np.sqrt(C**2 / 2), abs=FLOAT64_ABS)
    assert g.recall == pytest.approx(2 / 3) and g.precision == 1.0


def test_false_alarm_and_beyond_cutoff() -> None:
    est = np.vstack([TRUTH, [[50.0, 50.0, 0.0]], [[10.0, 0.0, 1.5]]])  # far + too far
    m = match_points(est, TRUTH, C)
    g = gospa(m, C)
    assert (g.num_matched, g.num_missed, g.num_false) == (3, 0, 2)
    assert g.precision == pytest.approx(3 / 5)
    # A point beyond the cut-off of its nearest truth is a false alarm AND leaves it missed.
    m2 = match_points([[10.0, 0.0, 1.5]], TRUTH[1:2], C)
    assert (m2.pairs.shape[0], m2.missed.size, m2.false.size) == (0, 1, 1)


def test_optimal_not_greedy_assignment() -> None:
    """Greedy nearest-first would pair est 0 with truth 0 and strand truth 1."""
    truth = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    est = np.array([[0.6, 0, 0], [-0.5, 0, 0]])
    m = match_points(est, truth, 2.0)
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 1), (1, 0)]
    assert np.sum(m.distances) == pytest.approx(0.4 + 0.5)


def test_horizontal_scoring_and_nan_rows() -> None:
    est = np.array([[0.0, 0.0, 5.0], [np.nan, 0, 0]])
    m3 = match_points(est, TRUTH[:1], C)
    m2 = match_points(est, TRUTH[:1], C, dims=2)
    assert m3.pairs.shape[0] == 0 and m2.pairs.shape[0] == 1
    assert m2.false.size == 0  # the NaN row is ignored, not a false alarm


def test_empty_sets() -> None:
    g = gospa(match_points(np.zeros((0, 3)), TRUTH, C), C)
    assert g.num_missed == 3 and g.precision == 1.0 and g.recall == 0.0
    g = gospa(match_points(TRUTH, np.zeros((0, 3)), C), C)
    assert g.num_false == 3 and g.recall == 1.0
