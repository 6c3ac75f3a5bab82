"""The synthetic setting of RIS-aided fingerprint positioning (Sang, Gui, Ying, Diao, Ng,
"correlation dispersion", §II and §V-A).

A BS with ``N_t`` antennas and a fixed wideband MRT precoder serves single-antenna users
in an indoor area through an ``N``-element RIS; their direct link is blocked. OFDM with
``K`` subcarriers, ``P`` of them uniformly spaced pilots. The area is divided into blocks;
a block's fingerprint is its CFR on the pilots (eq. 4), and with the RIS phases ``θ``

``h(x) = A(x) v``, ``v = [θ; 1]``, ``A(x) [pilot, N + 1]``: ``A[k, e] = r_e(x, k) (G_k
f)_e`` for element ``e`` (RIS → user channel ``r``, BS → RIS channel ``G``, precoder
``f``), the last column the direct link (eqs. 1–3).

Choices where the paper is silent or its values were lost (docs/estimators/ris_cd.md):

* **Channels** (§V-A, the IEEE 802.11b indoor model): every link is a tapped delay line
  with an exponential power-delay profile of RMS spread ``delay_spread`` at the sample
  period ``1 / bandwidth``, taps up to ``max_taps``, i.i.d. Rayleigh taps, times a
  distance path loss ``PL(d) = PL_0 d^{-α}`` [linear amplitude²] (``PL_0`` at 1 m).
* **Spatial consistency** (§V-A: channels drawn independently at points farther apart than
  the correlation distance, the rest interpolated [3GPP R1-161622]): the RIS → user taps
  are drawn on a square grid of pitch ``correlation_distance`` over the area and
  interpolated bilinearly in between, renormalised so that every position has the same
  tap variance (a plain bilinear mix of independent draws loses up to half of it midway).
  The BS → RIS link is common to all users.
* **Precoder:** one wideband MRT vector, the principal eigenvector of the reference user's
  (area centre's) ``Σ_k h_k^* h_k^T``, for the uniform RIS configuration (§II-A: a fixed
  beamformer, not re-optimised with the RIS).
* **CSI errors** (eqs. 6–7): the radio map holds an estimate of the cascaded link, its
  RIS → block part off by ``Δr``, ``‖Δr‖_F = csi_error · ‖r‖_F`` per block (a uniformly
  random direction on that sphere; the BS → RIS link and the blocked direct link are
  known); users see the true channel.
* **Prior** (eq. 39): a horizontal isotropic Gaussian, ``x̂ = x + N(0, σ_p² I_2)``, the
  height known.
* **SNR** (§V-A): the mean received SNR per pilot at the area's centre, uniform phases.

:meth:`RisCdScenario.observation` is the :class:`estimators.scenario.Scenario` face
(a fresh channel realization, uniform phases); :func:`small` the instance the conformance
test runs ``ris-cd`` and ``ris-rss`` on. Noise and random gains come from
:func:`estimators.observe.complex_normal`, the observation from
:func:`estimators.observe.build_observation`.

References
----------
X. Sang, G. Gui, K. Ying, Y. Diao, D. W. K. Ng, "Integrated Communication and Positioning
Design in RIS-empowered OFDM Systems: A Correlation Dispersion Scheme", arXiv 2212.00241,
eqs. (1)–(7), (39), §V-A.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, block_grid, planar_array_positions
from estimators.observe import build_observation, complex_normal, mrt_beam
from estimators.types import (
    Area,
    ArrayGeometry,
    ChannelTruth,
    FingerprintMap,
    Observation,
    PositionPrior,
    ServiceArea,
    check_area,
)
from estimators.typing import ComplexArray, FloatArray


def power_delay_profile(delay_spread_s: float, sample_period_s: float, max_taps: int
                        ) -> FloatArray:
    """``[tap]`` tap powers of an exponential power-delay profile (IEEE 802.11b indoor
    model: ``σ_l² ∝ e^{−l T_s / τ_rms}``), normalised to sum 1, ``l < min(max_taps,
    ceil(10 τ_rms / T_s))``."""
    count = int(min(max_taps, max(1, np.ceil(10 * delay_spread_s / sample_period_s))))
    power = np.exp(-np.arange(count) * sample_period_s / delay_spread_s)
    return np.asarray(power / power.sum())


def taps_to_cfr(taps: npt.ArrayLike, subcarriers: npt.ArrayLike, num_subcarriers: int
                ) -> ComplexArray:
    """``[..., pilot]``: a tapped delay line ``taps [..., tap]`` on the OFDM subcarriers
    ``subcarriers [pilot]`` (indices into ``K = num_subcarriers``), ``Σ_l h_l e^{−j2π k l
    / K}``."""
    h = np.asarray(taps, dtype=np.complex128)
    k = np.asarray(subcarriers, dtype=np.float64)
    phase = np.exp(-2j * np.pi * np.outer(np.arange(h.shape[-1]), k) / num_subcarriers)
    return np.asarray(h @ phase)


def bilinear_weights(points: npt.ArrayLike, origin: npt.ArrayLike, pitch: float,
                     shape: tuple[int, int]) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Bilinear interpolation on a ``shape = (nx, ny)`` grid of ``pitch`` [m] from
    ``origin [2]``: for ``points [n, 2]``, the 4 grid indices ``[n, 4]`` (x fastest) and
    their weights ``[n, 4]`` (summing to 1)."""
    p = (np.asarray(points, dtype=np.float64)[:, :2] - np.asarray(origin)[:2]) / pitch
    nx, ny = shape
    i = np.clip(np.floor(p[:, 0]).astype(np.int64), 0, nx - 2)
    j = np.clip(np.floor(p[:, 1]).astype(np.int64), 0, ny - 2)
    u = np.clip(p[:, 0] - i, 0.0, 1.0)
    w = np.clip(p[:, 1] - j, 0.0, 1.0)
    index = np.stack([j * nx + i, j * nx + i + 1, (j + 1) * nx + i, (j + 1) * nx + i + 1], -1)
    weight = np.stack([(1 - u) * (1 - w), u * (1 - w), (1 - u) * w, u * w], -1)
    return index, weight


@dataclass(frozen=True)
class RisCdRealization:
    """One draw of the scenario's channels (:meth:`RisCdScenario.realize`).

    ``bs_to_ris [pilot, element, bs_ant]`` (``G_k``), ``anchor_taps [anchor, element,
    tap]`` (RIS → user taps on the correlation grid, path loss not applied),
    ``precoder [bs_ant]`` (unit norm).
    """

    scenario: RisCdScenario
    bs_to_ris: ComplexArray
    anchor_taps: ComplexArray
    precoder: ComplexArray

    def ris_to_user(self, positions: npt.ArrayLike) -> ComplexArray:
        """``[position, pilot, element]`` RIS → user channel ``r(x, k)``: the interpolated
        taps on the pilots, with the distance path loss from the RIS."""
        s = self.scenario
        x = np.atleast_2d(np.asarray(positions, dtype=np.float64))
        index, weight = bilinear_weights(x, s.area[0], s.correlation_distance,
                                         s.anchor_shape)
        weight = weight / np.linalg.norm(weight, axis=1, keepdims=True)
        taps = np.einsum("nc,ncel->nel", weight, self.anchor_taps[index])
        distance = np.linalg.norm(x - np.asarray(s.ris_position), axis=1)
        amplitude = np.sqrt(s.path_loss_at_1m * distance ** -s.ris_user_exponent)
        return taps_to_cfr(taps, s.pilot_subcarriers, s.num_subcarriers).transpose(
            0, 2, 1) * amplitude[:, None, None]

    def fingerprint_matrices(self, positions: npt.ArrayLike) -> ComplexArray:
        """``[position, pilot, element + 1]`` ``A(x)``: ``h(x) = A(x) [θ; 1]`` is the CFR on
        the pilots after the precoder (eq. 3); the last column, the direct link, is zero
        (blocked)."""
        cascaded = self.ris_to_user(positions) * (self.bs_to_ris @ self.precoder)[None]
        return np.concatenate([cascaded, np.zeros((*cascaded.shape[:2], 1))], axis=-1)

    def cfr(self, positions: npt.ArrayLike, theta: npt.ArrayLike) -> ComplexArray:
        """``[position, 1, 1, bs_ant, pilot]`` the downlink CFR at ``positions`` for RIS
        phases ``θ [element]`` (before precoding; the layout of ``Observation`` users)."""
        return self.cascade(self.ris_to_user(positions), theta)

    def cascade(self, ris_to_user: npt.ArrayLike, theta: npt.ArrayLike) -> ComplexArray:
        """``[position, 1, 1, bs_ant, pilot]`` the CFR through the RIS for a RIS → user
        channel ``ris_to_user [position, pilot, element]`` and phases ``θ [element]``."""
        h = np.einsum("nke,e,kes->nsk", np.asarray(ris_to_user),
                      np.asarray(theta, dtype=np.complex128), self.bs_to_ris)
        return np.asarray(h[:, None, None])


@dataclass(frozen=True)
class RisCdScenario:
    """The paper's setting (§V-A; values lost in the paper's table are this module's
    choices, see the module docstring). Positions [m]; the area ``((x_min, y_min),
    (x_max, y_max))`` [m] (:data:`estimators.types.Area`) at the users' height
    ``user_height`` [m]; blocks ``block_size`` [m] square; frequencies [Hz]; the delay
    spread [s]; path-loss exponents and ``csi_error`` dimensionless; ``prior_std`` [m]
    per horizontal axis."""

    carrier_frequency: float = 2.4e9
    bandwidth: float = 20e6
    num_subcarriers: int = 64
    num_pilots: int = 8
    num_bs_antennas: int = 4
    ris_shape: tuple[int, int] = (4, 4)
    bs_position: tuple[float, float, float] = (0.0, 0.0, 10.0)
    ris_position: tuple[float, float, float] = (30.0, 0.0, 3.0)
    area: Area = ((31.0, -5.0), (41.0, 5.0))
    user_height: float = 1.5
    block_size: float = 1.0
    correlation_distance: float = 3.0
    delay_spread: float = 50e-9
    max_taps: int = 8
    path_loss_at_1m: float = 1e-3
    bs_ris_exponent: float = 2.2
    ris_user_exponent: float = 2.8
    csi_error: float = 0.05
    prior_std: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "area", check_area(self.area, "RisCdScenario.area"))

    @property
    def num_elements(self) -> int:
        return self.ris_shape[0] * self.ris_shape[1]

    @property
    def pilot_subcarriers(self) -> npt.NDArray[np.int64]:
        """``[pilot]`` uniformly spaced pilot indices (eq. 4), ``K / P`` apart."""
        return np.arange(self.num_pilots) * (self.num_subcarriers // self.num_pilots)

    @property
    def pilot_frequencies(self) -> FloatArray:
        """``[pilot]`` [Hz] baseband offsets of the pilots."""
        spacing = self.bandwidth / self.num_subcarriers
        return np.asarray((self.pilot_subcarriers - self.num_subcarriers // 2) * spacing,
                          dtype=np.float64)

    @property
    def anchor_shape(self) -> tuple[int, int]:
        """``(nx, ny)`` of the correlation grid covering the area."""
        (x0, y0), (x1, y1) = self.area
        pitch = self.correlation_distance
        return (int(np.ceil((x1 - x0) / pitch)) + 1, int(np.ceil((y1 - y0) / pitch)) + 1)

    def block_positions(self) -> FloatArray:
        """``[block, 3]`` [m] the blocks' centres (x fastest)."""
        return block_grid(self.area, self.block_size, self.user_height)

    def realize(self, rng: np.random.Generator) -> RisCdRealization:
        """Draw the channels: ``G`` (BS → RIS) and the RIS → user taps on the correlation
        grid; then the MRT precoder of the area's centre for uniform phases."""
        pdp = power_delay_profile(self.delay_spread, 1 / self.bandwidth, self.max_taps)
        n, m = self.num_elements, self.num_bs_antennas
        amplitude = np.sqrt(pdp)

        def rayleigh(*shape: int) -> ComplexArray:
            return complex_normal(rng, shape)

        d_br = float(np.linalg.norm(np.subtract(self.ris_position, self.bs_position)))
        g_taps = rayleigh(n, m, pdp.size) * amplitude * np.sqrt(
            self.path_loss_at_1m * d_br ** -self.bs_ris_exponent)
        bs_to_ris = taps_to_cfr(g_taps, self.pilot_subcarriers,
                                self.num_subcarriers).transpose(2, 0, 1)
        nx, ny = self.anchor_shape
        anchor_taps = rayleigh(nx * ny, n, pdp.size) * amplitude
        draft = RisCdRealization(self, bs_to_ris, anchor_taps, np.zeros(m, np.complex128))
        centre = np.array([*np.mean(self.area, axis=0), self.user_height])
        precoder = mrt_beam(draft.cfr(centre, np.ones(n))[0, 0])  # [ue_ant, bs_ant, pilot]
        return RisCdRealization(self, bs_to_ris, anchor_taps, precoder)

    def map_errors(self, realization: RisCdRealization, rng: np.random.Generator
                   ) -> ComplexArray:
        """``[block, pilot, element]`` the radio map's error on the RIS → block channel
        (eqs. 6–7): ``‖Δr‖_F = csi_error · ‖r‖_F`` per block, a uniformly random
        direction."""
        r = realization.ris_to_user(self.block_positions())
        size = np.sqrt(np.sum(np.abs(r) ** 2, axis=(1, 2)))
        # Only the direction counts (rescaled below): unit variance per real part.
        error = complex_normal(rng, r.shape, 2.0)
        norm = np.linalg.norm(error.reshape(len(r), -1), axis=1)
        return np.asarray(error * (self.csi_error * size / norm)[:, None, None])

    def estimated_matrices(self, realization: RisCdRealization, errors: npt.ArrayLike
                           ) -> tuple[ComplexArray, FloatArray]:
        """The design's view of the blocks: ``Â_i [block, pilot, element + 1]`` (the
        estimated cascaded channel after the precoder, direct column zero) and the
        Frobenius bound ``ε_i [block]`` of its error (eq. 7), here exactly ``‖Δ_i‖_F``."""
        a = realization.fingerprint_matrices(self.block_positions())
        delta = np.asarray(errors) * (realization.bs_to_ris @ realization.precoder)[None]
        a[..., :-1] += delta
        return a, np.linalg.norm(delta.reshape(len(a), -1), axis=1)

    def fingerprint_map(self, realization: RisCdRealization, theta: npt.ArrayLike,
                        errors: npt.ArrayLike) -> FingerprintMap:
        """The radio map the positioning sees: every block's CFR for ``θ``, its RIS →
        block part off by ``errors`` (:meth:`map_errors`)."""
        blocks = self.block_positions()
        r = realization.ris_to_user(blocks) + np.asarray(errors)
        return FingerprintMap(block_positions=blocks, cfr=realization.cascade(r, theta),
                              block_size=np.array([self.block_size, self.block_size]))

    def noise_variance(self, realization: RisCdRealization, snr_db: float) -> float:
        """Noise variance per pilot [W] for the reference SNR at the area's centre."""
        centre = np.array([*np.mean(self.area, axis=0), self.user_height])
        h = realization.cfr(centre, np.ones(self.num_elements))[0, 0, 0]
        signal = float(np.mean(np.abs(realization.precoder @ h) ** 2))
        return signal / 10 ** (snr_db / 10)

    def sample(self, realization: RisCdRealization, theta: npt.ArrayLike, snr_db: float,
               num_users: int, rng: np.random.Generator,
               fingerprints: FingerprintMap | None = None,
               positions: npt.ArrayLike | None = None) -> tuple[Observation, FloatArray]:
        """``num_users`` users uniform over the area (or at ``positions [user, 3]``), each
        one snapshot: their pilots through the true channel, the radio map (drawn with
        :meth:`fingerprint_map` if not given) and a prior. Returns the observation and the
        true positions ``[user, 3]``."""
        if positions is None:
            (x0, y0), (x1, y1) = self.area
            xy = rng.uniform([x0, y0], [x1, y1], size=(num_users, 2))
            truth = np.concatenate([xy, np.full((num_users, 1), self.user_height)], axis=1)
        else:
            truth = np.asarray(positions, dtype=np.float64).reshape(num_users, 3)
        h = realization.cfr(truth, theta)  # [T, 1, 1, S, K]
        wavelength = SPEED_OF_LIGHT / self.carrier_frequency
        bs_array = ArrayGeometry(planar_array_positions(
            1, self.num_bs_antennas, vertical_spacing_m=wavelength / 2,
            horizontal_spacing_m=wavelength / 2), rows=1, cols=self.num_bs_antennas)
        ue_array = ArrayGeometry(np.zeros((1, 3)), rows=1, cols=1)
        # Noise drawn here, before the prior and the map's errors (the seeds' order).
        obs = build_observation(
            h, frequencies=self.pilot_frequencies, carrier_frequency=self.carrier_frequency,
            bs_position=np.asarray([self.bs_position], dtype=np.float64),
            bs_orientation=np.zeros((1, 3)), bs_array=bs_array, ue_array=ue_array, rng=rng,
            precoder=realization.precoder[:, None], combiner="identity", pilots="ones",
            noise_variance=self.noise_variance(realization, snr_db))
        prior_mean = truth.copy()
        prior_mean[:, :2] += self.prior_std * rng.standard_normal((num_users, 2))
        covariance = np.zeros((num_users, 3, 3))
        covariance[:, 0, 0] = covariance[:, 1, 1] = self.prior_std**2
        obs = dataclasses.replace(
            obs, prior=PositionPrior(mean=prior_mean, covariance=covariance),
            service_area=ServiceArea(area=self.area, ue_height=self.user_height),
            fingerprints=fingerprints if fingerprints is not None else self.fingerprint_map(
                realization, theta, self.map_errors(realization, rng)))
        return obs, truth

    def observation(self, n: int, rng: np.random.Generator, snr_db: float
                    ) -> tuple[Observation, ChannelTruth]:
        """The :class:`estimators.scenario.Scenario` face: a channel realization
        (:meth:`realize`), then ``n`` users uniform over the area (:meth:`sample`) at
        ``snr_db`` [dB] (the SNR at the area's centre), all with uniform RIS phases, and
        their truth (the users' positions; no geometric path, the direct link blocked)."""
        realization = self.realize(rng)
        obs, positions = self.sample(realization, np.ones(self.num_elements), snr_db, n, rng)
        truth = ChannelTruth(
            gain=np.zeros((n, 0), np.complex128), tau=np.zeros((n, 0)),
            aod=np.zeros((n, 0, 2)), aoa=np.zeros((n, 0, 2)), valid=np.zeros((n, 0), bool),
            los=np.zeros(n, bool), ue_position=positions, scatterer=np.zeros((n, 0, 3)))
        return obs, truth


def small() -> RisCdScenario:
    """The paper's setting as it is (100 blocks of 1 m, a 4 x 4 RIS, 8 pilots): the
    localizers score ~100 candidates per snapshot and the bounds fit 16-dimensional
    mixtures, in well under a second."""
    return RisCdScenario()
