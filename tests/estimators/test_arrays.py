"""Array geometry and steering vectors vs Sionna RT's own conventions."""

from __future__ import annotations

import numpy as np
import pytest

from estimators.arrays import (
    dft_beams,
    direction_angles,
    planar_array_positions,
    rotation_matrix,
    steering_vector,
    unit_direction,
    wrap_angle,
)
from estimators.types import ArrayGeometry
from tests.tolerances import (
    FLOAT32_ABS,
    FLOAT64_ABS,
    FLOAT64_REL,
)


@pytest.mark.parametrize("rows, cols, polarization", [(1, 16, "V"), (2, 3, "V"), (4, 4, "VH"),
                                                      (3, 1, "cross")])
def test_positions_match_sionna_planar_array(rows: int, cols: int, polarization: str) -> None:
    from twin.backend import sionna_rt

    rt = sionna_rt()
    array = rt.PlanarArray(num_rows=rows, num_cols=cols, vertical_spacing=0.7,
                           horizontal_spacing=0.5, pattern="iso", polarization=polarization)
    theirs = array.positions(1.0, expand_patterns=True)  # wavelength 1 m: in wavelengths
    theirs = np.stack([np.asarray(theirs.x), np.asarray(theirs.y), np.asarray(theirs.z)], -1)
    pols = 2 if polarization in ("VH", "cross") else 1
    ours = planar_array_positions(rows, cols, vertical_spacing_m=0.7, horizontal_spacing_m=0.5,
                                  num_polarizations=pols)
    assert ours.shape == (array.num_ant, 3)
    np.testing.assert_allclose(ours, theirs, atol=FLOAT32_ABS)


def test_rotation_matrix_matches_sionna() -> None:
    from twin.backend import mitsuba, sionna_rt

    sionna_rt()
    mi = mitsuba()
    from sionna.rt.utils import rotation_matrix as sionna_rotation

    rng = np.random.default_rng(0)
    for angles in rng.uniform(-np.pi, np.pi, size=(5, 3)):
        theirs = np.array(sionna_rotation(mi.Point3f(*map(float, angles)))).reshape(3, 3)
        np.testing.assert_allclose(rotation_matrix(angles), theirs, atol=FLOAT32_ABS)
    R = rotation_matrix(rng.uniform(-np.pi, np.pi, size=3))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=FLOAT64_ABS)


def test_direction_round_trip() -> None:
    rng = np.random.default_rng(1)
    az = rng.uniform(-np.pi, np.pi, 100)
    zen = rng.uniform(0.01, np.pi - 0.01, 100)
    az2, zen2 = direction_angles(3.7 * unit_direction(az, zen))
    np.testing.assert_allclose(az2, az, rtol=FLOAT64_REL, atol=FLOAT64_ABS)
    np.testing.assert_allclose(zen2, zen, rtol=FLOAT64_REL, atol=FLOAT64_ABS)


def test_steering_vector_phase_convention() -> None:
    pos = planar_array_positions(1, 8, vertical_spacing_m=0.5, horizontal_spacing_m=0.5)
    # Broadside (+x) is in phase; endfire (+y) advances by π per half wavelength along +y.
    broadside = steering_vector(pos, 0.0, np.pi / 2, 1.0)
    np.testing.assert_allclose(broadside, np.ones(8), atol=FLOAT64_ABS)
    a = steering_vector(pos, np.pi / 2, np.pi / 2, 1.0)
    np.testing.assert_allclose(a[1:] / a[:-1], np.full(7, np.exp(1j * np.pi)), atol=FLOAT64_ABS)


@pytest.mark.parametrize("rows, cols", [(1, 16), (4, 4), (2, 8)])
def test_dft_beams_are_orthonormal(rows: int, cols: int) -> None:
    pos = planar_array_positions(rows, cols, vertical_spacing_m=0.5, horizontal_spacing_m=0.5)
    F = dft_beams(pos, 1.0)
    assert F.shape == (rows * cols, rows * cols)
    np.testing.assert_allclose(F.conj().T @ F, np.eye(rows * cols), atol=FLOAT64_ABS)


def test_dft_beams_cover_the_field_of_view() -> None:
    pos = planar_array_positions(1, 16, vertical_spacing_m=0.5, horizontal_spacing_m=0.5)
    F = dft_beams(pos, 1.0)
    azimuths = np.linspace(-1.2, 1.2, 2001)
    gains = np.abs(steering_vector(pos, azimuths, np.pi / 2, 1.0).conj() @ F) ** 2
    best = gains.max(axis=1)
    # Full DFT codebook: worst-case scalloping between beams is (2/π)² of the array gain.
    assert best.min() > 16 * (2 / np.pi) ** 2 * 0.99
    assert best.max() == pytest.approx(16.0, rel=1e-3)


def test_linear_layout_is_the_one_ula_check() -> None:
    line = ArrayGeometry(planar_array_positions(1, 8, vertical_spacing_m=0.005,
                                                horizontal_spacing_m=0.004), 1, 8)
    layout = line.linear_layout()
    assert layout is not None and layout.size == 8 and layout.centred
    np.testing.assert_allclose(layout.spacing, 0.004, rtol=FLOAT64_REL)
    np.testing.assert_allclose(np.abs(layout.axis), [0.0, 1.0, 0.0], atol=FLOAT64_REL)
    column = ArrayGeometry(planar_array_positions(4, 1, vertical_spacing_m=0.005,
                                                  horizontal_spacing_m=0.004), 4, 1)
    assert column.linear_layout() is not None
    np.testing.assert_allclose(np.abs(column.linear_layout().axis), [0, 0, 1],  # type: ignore[union-attr]
                               atol=FLOAT64_REL)
    planar = ArrayGeometry(planar_array_positions(2, 4, vertical_spacing_m=0.005,
                                                  horizontal_spacing_m=0.005), 2, 4)
    assert planar.linear_layout() is None
    shifted = ArrayGeometry(line.element_positions + np.array([0.0, 0.01, 0.0]), 1, 8)
    assert shifted.linear_layout() is not None and not shifted.linear_layout().centred  # type: ignore[union-attr]
    uneven = line.element_positions.copy()
    uneven[3, 1] += 1e-4
    assert ArrayGeometry(uneven, 1, 8).linear_layout() is None
    assert ArrayGeometry(line.element_positions[:1], 1, 1).linear_layout() is None


def test_wrap_angle() -> None:
    angles = np.array([0.0, np.pi / 2, 3 * np.pi / 2, -3 * np.pi / 2, 7.0, -7.0])
    wrapped = wrap_angle(angles)
    assert np.all((wrapped > -np.pi) & (wrapped <= np.pi))
    np.testing.assert_allclose(np.exp(1j * wrapped), np.exp(1j * angles), atol=FLOAT64_REL)
    np.testing.assert_allclose(wrapped[:4], [0.0, np.pi / 2, -np.pi / 2, np.pi / 2],
                               atol=FLOAT64_REL)
