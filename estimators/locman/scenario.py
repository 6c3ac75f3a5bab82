"""LOCMAN's synthetic setting (Li et al. §IV-A; Shahmansoori et al.'s model), reconstructed.

The extracted paper lost its numbers; what is chosen here (and why):

* BS at the origin with an ``Nt = 8`` half-wavelength ULA along y (broadside +x); the
  target at (5, 2) m with an ``Nr = 8`` ULA and orientation (yaw) 0.2 rad; two
  scatterers at (2.5, 4) m and (4, -2.5) m — all in one plane (the paper's 2D model);
* fc = 60 GHz, B = 100 MHz, ``K = 15`` subcarriers (odd, as §II-B assumes), ``G = 16``
  pilot transmissions with random unit-modulus entries (the paper's pilots) — small
  enough for the SDP reference of Prop. 4 (``[L1 Nr + L2 Nt]² = 128²``);
* the paths are 2.5 m and 3.9 m longer than the LOS (resolution ``c/B = 3 m``) and
  ≥ 30° apart at both ends, i.e. resolvable as in the paper;
* free-space gains ``λ / (4π ℓ)`` on each path's length ``ℓ`` (the paper's "free-space
  path loss model"), phases uniform at random per trial;
* ``sync_error_s`` adds the same unknown offset to every TOA (§IV-D, eq. 22);
* SNR = mean received SNR per noiseless sample (``estimators.observe``, as the twin);
* the service area (``Observation.service_area``): 10 m x 10 m in front of the BS
  around the target, at the target's height (the plane of the paper's 2D model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from estimators.arrays import (
    SPEED_OF_LIGHT,
    direction_angles,
    mimo_ofdm_channel,
    planar_array_positions,
    rotation_matrix,
    subcarrier_frequencies,
)
from estimators.observe import build_observation
from estimators.scenario import static_truth
from estimators.types import ArrayGeometry, ChannelTruth, Observation, ServiceArea


@dataclass(frozen=True)
class LocmanScenario:
    """One BS, one multi-antenna target of unknown yaw, LOS + single-bounce NLOS paths.

    Attributes
    ----------
    ue_position : ``[3]`` [m]; the BS is at the origin.
    ue_yaw : [rad], the UE ULA's yaw (pitch = roll = 0).
    scatterers : ``[path - 1, 3]`` [m], one single-bounce point per NLOS path.
    num_bs_antennas, num_ue_antennas : ULA sizes ``Nt``, ``Nr`` (half-wavelength).
    carrier_frequency, bandwidth : [Hz].
    num_subcarriers : ``K`` (odd, §II-B).
    num_pilots : ``G`` pilot transmissions (random unit-modulus precoders).
    sync_error_s : [s], a common TOA offset (eq. 22).
    """

    ue_position: tuple[float, float, float] = (5.0, 2.0, 0.0)
    ue_yaw: float = 0.2
    scatterers: tuple[tuple[float, float, float], ...] = ((2.5, 4.0, 0.0), (4.0, -2.5, 0.0))
    num_bs_antennas: int = 8
    num_ue_antennas: int = 8
    carrier_frequency: float = 60e9
    bandwidth: float = 100e6
    num_subcarriers: int = 15
    num_pilots: int = 16
    sync_error_s: float = 0.0

    @property
    def wavelength(self) -> float:
        return SPEED_OF_LIGHT / self.carrier_frequency

    def ula(self, size: int) -> ArrayGeometry:
        half = self.wavelength / 2
        return ArrayGeometry(planar_array_positions(1, size, vertical_spacing_m=half,
                                                    horizontal_spacing_m=half), 1, size)

    def service_area(self) -> ServiceArea:
        """Where the target may be: ``[0, 10] x [-5, 5]`` m in front of the BS, at the
        target's height."""
        return ServiceArea(area=((0.0, -5.0), (10.0, 5.0)), ue_height=self.ue_position[2])

    def geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Path delays ``[L]`` [s] (with the sync error), AODs and AOAs ``[L, 2]``
        (world azimuth, zenith) [rad], LOS first (eq. 3)."""
        p = np.asarray(self.ue_position, dtype=np.float64)
        s = np.asarray(self.scatterers, dtype=np.float64).reshape(-1, 3)
        lengths = np.concatenate([[np.linalg.norm(p)],
                                  np.linalg.norm(s, axis=1) + np.linalg.norm(p - s, axis=1)])
        aod = np.stack(direction_angles(np.vstack([p, s])), axis=-1)
        aoa = np.stack(direction_angles(np.vstack([-p, s - p])), axis=-1)
        return lengths / SPEED_OF_LIGHT + self.sync_error_s, aod, aoa

    def observation(
        self, n: int, rng: np.random.Generator, snr_db: float
    ) -> tuple[Observation, ChannelTruth]:
        """``n`` independent trials (random path phases, pilots and noise), one per
        snapshot, at ``snr_db`` [dB] (mean received SNR per noiseless sample), and the
        truth behind them (:class:`estimators.scenario.Scenario`)."""
        tau, aod, aoa = self.geometry()
        L = len(tau)
        lengths = (tau - self.sync_error_s) * SPEED_OF_LIGHT
        gains = self.wavelength / (4 * np.pi * lengths) * np.exp(
            1j * rng.uniform(0, 2 * np.pi, size=(n, L)))
        freqs = subcarrier_frequencies(self.num_subcarriers, self.bandwidth)
        bs_array, ue_array = self.ula(self.num_bs_antennas), self.ula(self.num_ue_antennas)
        orientation = np.array([self.ue_yaw, 0.0, 0.0])
        ue_elements = ue_array.element_positions @ rotation_matrix(orientation).T
        cfr = np.stack([
            mimo_ofdm_channel(g, tau, aod, aoa, tx_element_positions=bs_array.element_positions,
                              rx_element_positions=ue_elements, wavelength=self.wavelength,
                              frequencies=freqs)
            for g in gains
        ])[:, None]  # [trial, bs=1, Nr, Nt, K]
        # Random pilots: a fresh unit-modulus precoder and pilot phases per trial.
        precoders = np.exp(1j * rng.uniform(0, 2 * np.pi, size=(
            n, 1, self.num_bs_antennas, self.num_pilots))) / np.sqrt(self.num_bs_antennas)
        obs = build_observation(
            cfr, frequencies=freqs, carrier_frequency=self.carrier_frequency,
            bs_position=np.zeros((1, 3)), bs_orientation=np.zeros((1, 3)), bs_array=bs_array,
            ue_array=ue_array, rng=rng, precoder=precoders, combiner="identity",
            snr_db=snr_db,
        )
        obs = dataclasses.replace(obs, service_area=self.service_area())
        truth = static_truth(gains, (tau, aod, aoa), self.ue_position, self.scatterers, orientation)
        return obs, truth


def small() -> LocmanScenario:
    """The paper's setting with 4-element ULAs, 7 subcarriers and 6 pilot transmissions:
    the ADMM's lifted matrix is of order 32 instead of 128 (a snapshot in well under a
    second), still three resolvable paths."""
    return LocmanScenario(num_bs_antennas=4, num_ue_antennas=4, num_subcarriers=7,
                          num_pilots=6)
