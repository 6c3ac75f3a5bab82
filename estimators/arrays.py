"""Array geometry, steering vectors and the MIMO-OFDM forward model.

These functions are the *same* function of geometry as the phases Sionna RT
applies to its synthetic arrays, so an estimator's forward model matches the
twin's channels (pinned by ``tests/twin/test_physics.py::test_steering_consistency``).

Conventions (world frame of Sionna RT, right-handed, z up):

* azimuth ``phi`` from +x toward +y, zenith ``theta`` from +z;
* a planar array of ``rows x cols`` elements lies in its local y-z plane, boresight +x,
  element ``(row i, col j)`` at ``y = d_h (j - (cols-1)/2)``, ``z = -d_v (i - (rows-1)/2)``,
  flattened column by column (index ``j * rows + i``), as Sionna RT's ``PlanarArray``;
* device orientation ``(yaw, pitch, roll)`` = rotations about ``(z, y, x)``
  (3GPP TR 38.901 eq. 7.1-4), applied to the local element positions;
* dual-polarized arrays repeat the element positions once per polarization
  (antenna index = ``pol * array_size + element``), as Sionna RT fuses them;
* the phase of antenna ``m`` for a plane wave with unit direction ``u`` (pointing
  *away* from the array, towards the departure/arrival direction) is
  ``exp(+j 2π/λ r_m · u)``; the OFDM phase of subcarrier offset ``f_k`` is
  ``exp(-j 2π f_k τ)`` (narrowband array model: no beam squint);
* the model is scalar: polarization is not modelled. It is exact for single-polarized
  arrays rotated in yaw only; a pitch or roll rotates the polarization and Sionna RT
  then applies a polarization-mismatch factor (about 1% in gain for 0.1-0.3 rad).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from estimators.typing import ComplexArray, FloatArray

SPEED_OF_LIGHT = 299_792_458.0
"""Speed of light in vacuum [m/s]."""



def planar_array_positions(
    rows: int,
    cols: int,
    *,
    vertical_spacing_m: float,
    horizontal_spacing_m: float,
    num_polarizations: int = 1,
) -> FloatArray:
    """Element positions of a planar array in its local frame.

    Parameters
    ----------
    rows, cols
        Number of element rows (along local z) and columns (along local y).
    vertical_spacing_m, horizontal_spacing_m
        Element spacing [m].
    num_polarizations
        1 for single-polarized, 2 for dual-polarized arrays (positions repeated).

    Returns
    -------
    positions : ``[ant, 3]`` float64 [m], ``ant = num_polarizations * rows * cols``,
        centred on the array origin.
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"array needs rows >= 1 and cols >= 1, got {rows} x {cols}")
    # Column by column (rows vary fastest), the order of Sionna RT's PlanarArray.
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="xy")
    y = horizontal_spacing_m * (jj.ravel() - (cols - 1) / 2)
    z = -vertical_spacing_m * (ii.ravel() - (rows - 1) / 2)
    single = np.stack([np.zeros_like(y), y, z], axis=-1)
    return np.tile(single, (num_polarizations, 1))


def rotation_matrix(orientation: npt.ArrayLike) -> FloatArray:
    """Rotation matrix of a device orientation.

    Parameters
    ----------
    orientation : ``[..., 3]`` (yaw, pitch, roll) [rad]: rotations about (z, y, x).

    Returns
    -------
    R : ``[..., 3, 3]`` float64, ``world = R @ local``.

    References
    ----------
    3GPP TR 38.901, eq. (7.1-4); Sionna RT ``rotation_matrix``.
    """
    o = np.asarray(orientation, dtype=np.float64)
    sa, ca = np.sin(o[..., 0]), np.cos(o[..., 0])
    sb, cb = np.sin(o[..., 1]), np.cos(o[..., 1])
    sc, cc = np.sin(o[..., 2]), np.cos(o[..., 2])
    rot = np.empty((*o.shape[:-1], 3, 3))
    rot[..., 0, 0] = ca * cb
    rot[..., 0, 1] = ca * sb * sc - sa * cc
    rot[..., 0, 2] = ca * sb * cc + sa * sc
    rot[..., 1, 0] = sa * cb
    rot[..., 1, 1] = sa * sb * sc + ca * cc
    rot[..., 1, 2] = sa * sb * cc - ca * sc
    rot[..., 2, 0] = -sb
    rot[..., 2, 1] = cb * sc
    rot[..., 2, 2] = cb * cc
    return rot


def wrap_angle(angle: npt.ArrayLike) -> FloatArray:
    """Angles [rad] wrapped into ``(-π, π]``: the one wrapping of the project."""
    return np.asarray(np.angle(np.exp(1j * np.asarray(angle, dtype=np.float64))))


def unit_direction(azimuth: npt.ArrayLike, zenith: npt.ArrayLike) -> FloatArray:
    """Unit vector of a direction given by azimuth and zenith angles.

    Parameters
    ----------
    azimuth : ``[...]`` [rad], from +x toward +y.
    zenith : ``[...]`` [rad], from +z (broadcast against ``azimuth``).

    Returns
    -------
    u : ``[..., 3]`` float64.
    """
    phi, theta = np.broadcast_arrays(
        np.asarray(azimuth, dtype=np.float64), np.asarray(zenith, dtype=np.float64)
    )
    return np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1
    )


def direction_angles(vector: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Azimuth and zenith [rad] of (not necessarily unit) vectors ``[..., 3]``."""
    v = np.asarray(vector, dtype=np.float64)
    azimuth = np.arctan2(v[..., 1], v[..., 0])
    zenith = np.arctan2(np.hypot(v[..., 0], v[..., 1]), v[..., 2])
    return azimuth, zenith


def area_grid(area: npt.ArrayLike, shape: tuple[int, int], height: float) -> FloatArray:
    """Cell centres of a ``shape = (nx, ny)`` grid over ``area = [[x0, y0], [x1, y1]]``
    [m] at ``height`` [m]: ``[K, 3]``, ``K = nx * ny``, x fastest."""
    (x0, y0), (x1, y1) = np.asarray(area, dtype=np.float64)
    nx, ny = shape
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    return np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, float(height))], axis=-1)


def block_grid(area: npt.ArrayLike, block_size: float, height: float) -> FloatArray:
    """Centres of the whole ``block_size`` [m] square blocks that fit in ``area = [[x0,
    y0], [x1, y1]]`` [m] from its ``(x0, y0)`` corner, at ``height`` [m]: ``[block, 3]``,
    x fastest (:func:`area_grid` of the blocks' extent)."""
    (x0, y0), (x1, y1) = np.asarray(area, dtype=np.float64)
    nx = int(np.floor((x1 - x0) / block_size + 1e-9))
    ny = int(np.floor((y1 - y0) / block_size + 1e-9))
    extent = ((x0, y0), (x0 + nx * block_size, y0 + ny * block_size))
    return area_grid(extent, (nx, ny), height)


def steering_vector(
    element_positions: npt.ArrayLike,
    azimuth: npt.ArrayLike,
    zenith: npt.ArrayLike,
    wavelength: float,
) -> ComplexArray:
    """Array response to a plane wave.

    Parameters
    ----------
    element_positions : ``[ant, 3]`` [m], element positions relative to the array
        reference point, already rotated into the world frame
        (``rotation_matrix(orientation) @ local``).
    azimuth, zenith : ``[...]`` [rad], departure (transmit side) or arrival
        (receive side) direction, pointing away from the array.
    wavelength : [m].

    Returns
    -------
    a : ``[..., ant]`` complex128, ``a_m = exp(+j 2π/λ r_m · u(φ, θ))``.
    """
    u = unit_direction(azimuth, zenith)
    r = np.asarray(element_positions, dtype=np.float64)
    return np.exp(1j * 2.0 * np.pi / wavelength * (u @ r.T))


def free_space_ratio_db(amplitude: npt.ArrayLike, length: npt.ArrayLike,
                        wavelength: float) -> FloatArray:
    """[dB] a path's complex amplitude against free space at its length: ``20 log10(|a|
    4π d / λ)`` (0 for a LOS between isotropic antennas, Friis; -inf for a zero
    amplitude). Broadcast over ``amplitude`` and ``length`` [m].

    References
    ----------
    H. T. Friis, "A note on a simple transmission formula", Proc. IRE 34(5), 1946.
    """
    with np.errstate(divide="ignore"):
        return np.asarray(20.0 * np.log10(np.abs(np.asarray(amplitude)) * 4.0 * np.pi
                                          * np.asarray(length, dtype=np.float64)
                                          / wavelength))


def subcarrier_frequencies(num_subcarriers: int, bandwidth_hz: float) -> FloatArray:
    """Baseband subcarrier offsets from the carrier [Hz], spacing ``B / K``.

    Sionna's convention: ``k = -K/2 .. K/2 - 1`` for even ``K``, ``-(K-1)/2 .. (K-1)/2``
    for odd ``K``.

    Returns
    -------
    frequencies : ``[subcarrier]`` float64 [Hz].
    """
    spacing = bandwidth_hz / num_subcarriers
    start = -(num_subcarriers // 2) if num_subcarriers % 2 == 0 else -(num_subcarriers - 1) // 2
    return (np.arange(num_subcarriers, dtype=np.float64) + start) * spacing


def delay_response(frequencies: npt.ArrayLike, tau: npt.ArrayLike) -> ComplexArray:
    """OFDM phase of path delays on subcarriers.

    Parameters
    ----------
    frequencies : ``[subcarrier]`` [Hz], baseband offsets.
    tau : ``[...]`` [s].

    Returns
    -------
    d : ``[..., subcarrier]`` complex128, ``exp(-j 2π f_k τ)``.
    """
    f = np.asarray(frequencies, dtype=np.float64)
    t = np.asarray(tau, dtype=np.float64)
    return np.exp(-2j * np.pi * t[..., None] * f)


def mimo_ofdm_channel(
    gain: npt.ArrayLike,
    tau: npt.ArrayLike,
    aod: npt.ArrayLike,
    aoa: npt.ArrayLike,
    *,
    tx_element_positions: npt.ArrayLike,
    rx_element_positions: npt.ArrayLike,
    wavelength: float,
    frequencies: npt.ArrayLike,
) -> ComplexArray:
    """Geometric multipath MIMO-OFDM channel (the estimators' forward model).

    ``H[m_r, m_t, k] = Σ_p g_p a_r(θ_r,p)[m_r] a_t(θ_t,p)[m_t] exp(-j 2π f_k τ_p)``

    Parameters
    ----------
    gain : ``[path]`` complex, path gain at the array reference points.
    tau : ``[path]`` [s].
    aod, aoa : ``[path, 2]`` (azimuth, zenith) [rad].
    tx_element_positions, rx_element_positions : ``[ant, 3]`` [m], world-rotated.
    wavelength : [m], carrier wavelength.
    frequencies : ``[subcarrier]`` [Hz], baseband offsets.

    Returns
    -------
    H : ``[rx_ant, tx_ant, subcarrier]`` complex128.
    """
    aod_ = np.asarray(aod, dtype=np.float64)
    aoa_ = np.asarray(aoa, dtype=np.float64)
    a_t = steering_vector(tx_element_positions, aod_[:, 0], aod_[:, 1], wavelength)
    a_r = steering_vector(rx_element_positions, aoa_[:, 0], aoa_[:, 1], wavelength)
    d = delay_response(frequencies, tau)
    g = np.asarray(gain, dtype=np.complex128)
    return np.einsum("p,pr,pt,pk->rtk", g, a_r, a_t, d)


def dft_beams(
    element_positions: npt.ArrayLike, wavelength: float, num_beams: int | None = None
) -> ComplexArray:
    """Beams uniformly covering the array's field of view (a DFT codebook).

    Beams point along local directions whose (y, z) direction cosines lie on a
    uniform grid over ``[-1, 1)``: ``cols_b x rows_b`` beams with
    ``cols_b = min(num_beams, n_y)`` distinct y-positions. For half-wavelength
    spacing and ``num_beams`` = elements, the columns are the orthogonal 2D DFT.

    Parameters
    ----------
    element_positions : ``[ant, 3]`` [m], in the array's local frame.
    wavelength : [m].
    num_beams : number of beams (default: number of distinct element positions).

    Returns
    -------
    ``[ant, beam]`` complex128 with unit-norm columns.
    """
    r = np.asarray(element_positions, dtype=np.float64)
    n_y = np.unique(np.round(r[:, 1], 9)).size
    n_z = np.unique(np.round(r[:, 2], 9)).size
    total = num_beams if num_beams is not None else n_y * n_z
    if total < 1:
        raise ValueError(f"num_beams must be >= 1, got {total}")
    beams_z = max(1, min(n_z, round(np.sqrt(total * n_z / n_y))) if n_z > 1 else 1)
    beams_y = int(np.ceil(total / beams_z))
    grid_y = -1.0 + (2.0 * np.arange(beams_y) + 1.0) / beams_y
    grid_z = -1.0 + (2.0 * np.arange(beams_z) + 1.0) / beams_z if beams_z > 1 else np.zeros(1)
    uy, uz = np.meshgrid(grid_y, grid_z, indexing="ij")
    cos_y, cos_z = uy.ravel()[:total], uz.ravel()[:total]
    u = np.stack([np.sqrt(np.clip(1 - cos_y**2 - cos_z**2, 0, None)), cos_y, cos_z], axis=-1)
    beams = np.exp(1j * 2.0 * np.pi / wavelength * (r @ u.T))
    return beams / np.linalg.norm(beams, axis=0, keepdims=True)


def random_beams(num_ant: int, num_beams: int, rng: np.random.Generator) -> ComplexArray:
    """Random unit-modulus (analog) beams, ``[ant, beam]`` with unit-norm columns."""
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(num_ant, num_beams))
    return np.exp(1j * phases) / np.sqrt(num_ant)
