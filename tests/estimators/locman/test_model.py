"""LOCMAN's forward model (estimators/locman/model.py): the twin's channel, its
Jacobian, and the arrays it accepts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from estimators.arrays import mimo_ofdm_channel, rotation_matrix
from estimators.base import EstimatorInputError
from estimators.fisher import numerical_jacobian
from estimators.locman.bound import true_parameters
from estimators.locman.model import Ula, least_squares_gains, snapshot
from estimators.locman.scenario import small
from tests.tolerances import FIM_NUMERIC_REL, FLOAT64_REL


def test_forward_model_is_the_twins_channel() -> None:
    obs, truth = small().observation(1, np.random.default_rng(4), 20.0)
    snap = snapshot(obs, 0, 0, None)
    _, eta = true_parameters(snap, truth, 0, np.arange(3))
    assert truth.ue_orientation is not None
    ue_elements = obs.ue_array.element_positions @ rotation_matrix(truth.ue_orientation[0]).T
    reference = mimo_ofdm_channel(
        truth.gain[0], truth.tau[0], truth.aod[0], truth.aoa[0],
        tx_element_positions=obs.bs_array.element_positions, rx_element_positions=ue_elements,
        wavelength=obs.wavelength, frequencies=obs.frequencies)  # [Nr, Nt, K]
    ours = snap.channel(truth.gain[0], eta).transpose(1, 2, 0)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=FLOAT64_REL * np.abs(
        reference).max() * 1e3)


def test_channel_jacobian_matches_finite_differences() -> None:
    obs, truth = small().observation(1, np.random.default_rng(5), 10.0)
    snap = snapshot(obs, 0, 0, None)
    _, eta = true_parameters(snap, truth, 0, np.arange(3))
    gain = truth.gain[0]

    def mean(v: np.ndarray) -> np.ndarray:
        p = v.reshape(-1, 5)
        return np.einsum("krt,ktg->krg", snap.channel(p[:, 3] + 1j * p[:, 4], p[:, :3]),
                         snap.x).ravel()

    v0 = np.column_stack([eta, gain.real, gain.imag]).ravel()
    steps = np.tile([1e-5, 1e-6, 1e-6, 1e-9, 1e-9], 3)
    numeric = numerical_jacobian(mean, v0, steps)
    D = snap.jacobian(gain, eta)
    assert np.linalg.norm(D - numeric) / np.linalg.norm(numeric) < FIM_NUMERIC_REL


def test_ula_accepts_centred_ulas_only() -> None:
    obs, _ = small().observation(1, np.random.default_rng(9), 10.0)
    ula = Ula.of(obs.ue_array, "UE array")
    assert ula.size == 4 and ula.spacing == pytest.approx(obs.wavelength / 2)
    shifted = dataclasses.replace(obs.ue_array,
                                  element_positions=obs.ue_array.element_positions + 0.01)
    with pytest.raises(EstimatorInputError, match="centred"):
        Ula.of(shifted, "UE array")


def test_ground_bounces_are_the_paths_from_the_bs_image_in_the_ground() -> None:
    """Each path's ground bounce (``paths(x, ground_height)``, outside the paper) is the
    same path from the BS's image in the ground, whose array is mirrored too."""
    obs, truth = small().observation(1, np.random.default_rng(4), 20.0)
    snap = snapshot(obs, 0, 0, None)
    x, _ = true_parameters(snap, truth, 0, np.arange(3))
    b, h = np.array([0.0, 0.0, 6.0]), 0.3
    tilted = np.array([0.0, 0.8, 0.6])  # a BS axis with a vertical component
    geometry = dataclasses.replace(snap.geometry, bs_position=b, bs_axis=tilted,
                                   ue_height=1.5)
    image = dataclasses.replace(geometry, bs_position=b * [1, 1, -1] + [0, 0, 2 * h],
                                bs_axis=tilted * [1, 1, -1])
    eta = geometry.paths(x, ground_height=h)
    assert eta.shape == (6, 3)
    np.testing.assert_allclose(eta[:3], geometry.paths(x), rtol=FLOAT64_REL * 10)
    np.testing.assert_allclose(eta[3:], image.paths(x), rtol=FLOAT64_REL * 1e3, atol=1e-12)


def test_paths_of_a_batch_are_the_paths_of_each_point() -> None:
    """``paths(x [..., n], ground [...])`` (the refit's batched differences) equals the
    paths of each point, with and without the ground and with one height per point."""
    obs, truth = small().observation(1, np.random.default_rng(4), 20.0)
    snap = snapshot(obs, 0, 0, None)
    x, _ = true_parameters(snap, truth, 0, np.arange(3))
    geometry = dataclasses.replace(snap.geometry, bs_position=np.array([0.0, 0.0, 6.0]),
                                   bs_axis=np.array([0.0, 0.8, 0.6]), ue_height=1.5)
    rng = np.random.default_rng(9)
    points = x + rng.normal(scale=0.5, size=(2, 4, len(x)))
    heights = rng.uniform(-0.3, 0.3, size=(2, 4))
    for ground in (None, 0.1, heights):
        batched = geometry.paths(points, ground)
        for i, j in np.ndindex(2, 4):
            h = ground[i, j] if isinstance(ground, np.ndarray) else ground
            np.testing.assert_allclose(batched[i, j], geometry.paths(points[i, j], h),
                                       rtol=FLOAT64_REL)
    np.testing.assert_allclose(geometry.scatterer_position(points)[1, 2],
                               geometry.scatterer_position(points[1, 2]), rtol=FLOAT64_REL)


def test_least_squares_gains_are_lstsqs_including_a_rank_deficient_basis() -> None:
    """QR where the atoms are independent, least norm (``lstsq``) where two coincide."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((200, 3)) + 1j * rng.standard_normal((200, 3))
    y = rng.standard_normal(200) + 1j * rng.standard_normal(200)
    want = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(least_squares_gains(A, y), want, rtol=1e-10)
    twins = np.column_stack([A, A[:, 0]])  # the 4th atom is the 1st: no unique gains
    got = least_squares_gains(twins, y)
    np.testing.assert_allclose(got, np.linalg.lstsq(twins, y, rcond=None)[0], rtol=1e-10)
    assert abs(got[0] - got[3]) < 1e-10 * abs(got[0])  # least norm splits it evenly
