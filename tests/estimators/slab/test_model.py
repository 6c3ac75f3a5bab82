"""SLAB's signal model (Zhou, Liu, Lau 2019, eqs. 1-19) against an independent forward
model (:mod:`tests.estimators.slab.reference`)."""

from __future__ import annotations

import numpy as np
import pytest

from estimators.slab.model import coefficient_matrix, path_responses, subcarrier_indices
from tests.estimators.slab.reference import PAPER, independent_coefficients
from tests.tolerances import FLOAT64_REL


def test_subcarriers_are_interleaved_over_the_bss() -> None:
    theta = subcarrier_indices(30, 3)
    assert theta.shape == (3, 10)
    assert theta[1].tolist() == list(range(2, 31, 3))  # Θ_2 = {2, 5, ..., 29}
    assert sorted(theta.ravel().tolist()) == list(range(1, 31))
    with pytest.raises(ValueError, match="split evenly"):
        subcarrier_indices(31, 3)


def test_coefficient_matrix_matches_independent_forward_model() -> None:
    w = PAPER.random_beamformers(np.random.default_rng(3))
    mine = coefficient_matrix(path_responses(PAPER.system(), PAPER.geometry()), w)
    theirs = independent_coefficients(PAPER, PAPER.geometry().alpha(), w)
    assert mine.shape == (3, 4, 20, 10, 2)
    assert np.linalg.norm(mine - theirs) <= FLOAT64_REL * np.linalg.norm(theirs)
