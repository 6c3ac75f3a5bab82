"""The MISO paper's synthetic setting (Fascista et al., Sec. V-A), reconstructed.

The extracted paper lost most numbers; what is chosen here (and why):

* BS at the origin, 32-element half-wavelength ULA (along y, boresight +x), 38 GHz,
  100 MHz, 64 subcarriers, one DL transmission (as the issue's paper-style setting);
* MS at (25, 8) m, one NLOS path from a scatterer at (18, 20) m: the paths differ by
  14.6 m in length (4.9 delay bins) and 30° in AOD, i.e. resolvable as in the paper;
* ``M = 16`` beams steered uniformly over the sector [-10°, 70°] that contains the MS
  and the scatterer ("beams uniformly covering the area"); for the 3D variant, the same
  azimuths at several zeniths;
* LOS gain ``λ/(4π d)`` (free space), NLOS gain set by the LOS-to-multipath ratio
  ``LMR = |α_0|² / |α_1|²``; path phases uniform at random per trial (the paper's
  ``φ_l``);
* ``SNR`` = mean received SNR per noiseless sample (``estimators.observe``), the same
  definition the twin uses;
* the service area (``Observation.service_area``): the 50 m x 60 m region in front of
  the BS that the beams cover, ``((0, -10), (50, 50))`` m, at the MS's height.

:func:`small` is the instance the conformance test runs every ``miso-*`` estimator on;
:func:`variant_3d` the 3D variant of the tests, figures and benchmark.

References
----------
A. Fascista, A. Coluccia, H. Wymeersch, G. Seco-Granados, "Downlink single-snapshot
localization and mapping with a single-antenna receiver", IEEE Trans. Wireless Commun.,
2021: Sec. V-A (simulation setup), received signal eqs. (1)-(4).
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
    steering_vector,
    subcarrier_frequencies,
)
from estimators.observe import build_observation
from estimators.scenario import static_truth
from estimators.types import ArrayGeometry, ChannelTruth, Observation, ServiceArea
from estimators.typing import ComplexArray, FloatArray


@dataclass(frozen=True)
class MisoScenario:
    """One BS at the origin, one single-antenna MS, single-bounce NLOS paths.

    Attributes
    ----------
    ue_position : ``[3]`` [m].
    scatterers : ``[path - 1, 3]`` [m], one single-bounce NLOS path each.
    lmr_db : ``[path - 1]`` [dB], LOS-to-multipath power ratio of each NLOS path.
    rows, cols : the BS array (use ``rows > 1`` and out-of-plane positions for 3D).
    carrier_frequency, bandwidth : [Hz]; num_subcarriers, num_beams : counts.
    beam_sector_rad : [rad] the azimuths the beams are steered over.
    beam_zeniths_rad : [rad] the zeniths of the beam grid.
    """

    ue_position: tuple[float, float, float] = (25.0, 8.0, 0.0)
    scatterers: tuple[tuple[float, float, float], ...] = ((18.0, 20.0, 0.0),)
    lmr_db: tuple[float, ...] = (3.0,)
    rows: int = 1
    cols: int = 32
    carrier_frequency: float = 38e9
    bandwidth: float = 100e6
    num_subcarriers: int = 64
    num_beams: int = 16
    beam_sector_rad: tuple[float, float] = (float(np.deg2rad(-10.0)), float(np.deg2rad(70.0)))
    #: Zenith angles of the beam grid; one row (π/2) for the planar (2D) model. In 3D the
    #: beams must also scan in elevation: beams that all point at zenith π/2 weight the
    #: array rows uniformly, and the zenith then only scales a real array factor that
    #: cannot be told from the unknown path gain (the FIM is singular).
    beam_zeniths_rad: tuple[float, ...] = (float(np.pi / 2),)
    #: The service area's corners [m] (``Observation.service_area``, at the MS height).
    service_region: tuple[tuple[float, float], tuple[float, float]] = ((0.0, -10.0),
                                                                       (50.0, 50.0))

    @property
    def wavelength(self) -> float:
        """[m]."""
        return SPEED_OF_LIGHT / self.carrier_frequency

    def bs_array(self) -> ArrayGeometry:
        """The ``rows x cols`` half-wavelength BS array."""
        half = self.wavelength / 2
        return ArrayGeometry(
            planar_array_positions(self.rows, self.cols, vertical_spacing_m=half,
                                   horizontal_spacing_m=half),
            self.rows, self.cols,
        )

    def precoders(self) -> ComplexArray:
        """``[bs_ant, beam]``: ``f_m = a(θ_m)^* / sqrt(N)``, so ``a(θ)^T f_m`` peaks at
        ``θ_m``; ``num_beams`` azimuths over the sector times each of
        ``beam_zeniths_rad`` ("beams that cover the whole area", Sec. V-A)."""
        azimuths = np.linspace(*self.beam_sector_rad, self.num_beams)
        az, zen = np.meshgrid(azimuths, np.asarray(self.beam_zeniths_rad), indexing="ij")
        a = steering_vector(self.bs_array().element_positions, az.ravel(), zen.ravel(),
                            self.wavelength)
        return np.asarray(a.conj().T / np.sqrt(a.shape[1]))

    def geometry(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Path delays ``[path]`` [s], AODs and AOAs ``[path, 2]`` (azimuth, zenith)
        [rad], LOS first (eqs. 10-13)."""
        p = np.asarray(self.ue_position, dtype=np.float64)
        s = np.asarray(self.scatterers, dtype=np.float64).reshape(-1, 3)
        lengths = np.concatenate([[np.linalg.norm(p)],
                                  np.linalg.norm(s, axis=1) + np.linalg.norm(p - s, axis=1)])
        departures = np.vstack([p, s])
        arrivals = np.vstack([-p, s - p])
        aod = np.stack(direction_angles(departures), axis=-1)
        aoa = np.stack(direction_angles(arrivals), axis=-1)
        return lengths / SPEED_OF_LIGHT, aod, aoa

    def observation(
        self, n: int, rng: np.random.Generator, snr_db: float
    ) -> tuple[Observation, ChannelTruth]:
        """``n`` independent trials (random path phases ``φ_l`` and noise), one per
        snapshot of the returned observation, at ``snr_db`` [dB] mean received SNR per
        noiseless sample, and the truth behind them (:class:`estimators.scenario.Scenario`).
        """
        tau, aod, aoa = self.geometry()
        num_paths = len(tau)
        los_length = SPEED_OF_LIGHT * tau[0]
        amplitude = self.wavelength / (4 * np.pi * los_length) * np.concatenate(
            [[1.0], 10 ** (-np.asarray(self.lmr_db, dtype=np.float64) / 20)])
        gains = amplitude * np.exp(1j * rng.uniform(0, 2 * np.pi, size=(n, num_paths)))
        frequencies = subcarrier_frequencies(self.num_subcarriers, self.bandwidth)
        bs_array = self.bs_array()
        ue_array = ArrayGeometry(np.zeros((1, 3)), 1, 1)
        cfr = np.stack([
            mimo_ofdm_channel(g, tau, aod, aoa, tx_element_positions=bs_array.element_positions,
                              rx_element_positions=ue_array.element_positions,
                              wavelength=self.wavelength, frequencies=frequencies)
            for g in gains
        ])[:, None]  # [snapshot, bs, ue_ant, bs_ant, subcarrier]
        obs = build_observation(
            cfr, frequencies=frequencies, carrier_frequency=self.carrier_frequency,
            bs_position=np.zeros((1, 3)), bs_orientation=np.zeros((1, 3)), bs_array=bs_array,
            ue_array=ue_array, rng=rng, precoder=self.precoders(), combiner="identity",
            snr_db=snr_db,
        )
        obs = dataclasses.replace(obs, service_area=ServiceArea(
            area=self.service_region, ue_height=float(self.ue_position[2])))
        truth = static_truth(gains, (tau, aod, aoa), self.ue_position, self.scatterers)
        return obs, truth


def small() -> MisoScenario:
    """The paper's 2D setting as it is (32-element ULA, 16 beams, 64 subcarriers): every
    ``miso-*`` estimator runs a snapshot of it in tens of milliseconds."""
    return MisoScenario()


def variant_3d() -> MisoScenario:
    """The 3D variant: a 4x8 planar BS array, the MS 5 m below the BS and the scatterer
    3 m above, 12 azimuths x 3 zeniths (π/2, π/2 ± 0.25 rad) = 36 beams."""
    return MisoScenario(
        ue_position=(25.0, 8.0, -5.0), scatterers=((18.0, 20.0, 3.0),), rows=4, cols=8,
        num_beams=12, beam_zeniths_rad=(np.pi / 2 - 0.25, np.pi / 2, np.pi / 2 + 0.25),
    )
