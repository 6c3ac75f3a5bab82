"""SLAB's synthetic setting (Zhou, Liu, Lau 2019, §VII-A) and adapters to run on it.

The paper's simulation: ``J = 3`` BSs, ``N'_C = 30`` subcarriers interleaved over them,
``L = 1`` scatterer per BS, ``M = 20`` training beams, SNR 20 dB, ``N_B = N_U = 4``,
``f_c = 6`` GHz, ``T_s = 10`` ns, a 1000 x 1000 m area (:class:`SlabScenario`). Choices
where the paper is silent:

* **SNR** (the paper gives 20 dB without a definition): the fading-averaged received
  power per UE antenna and sample with an isotropic unit-norm BF vector,
  ``N_B N_U Σ_l Σ_{j,ll}``, averaged over the BSs, over ``σ²``. It does not depend on
  the BF vectors, so beamforming gains are not normalised away (BFR optimises them), and
  one ``σ²`` serves all BSs (the noise is at the UE).
* **Placement** (§VII-A: BSs, UE and orientations "at random" in a 1000 x 1000 m area;
  scatterers unspecified): the defaults are one fixed, well-spread instance — BSs near
  three corners with the UE within 7° of their broadsides, the UE near the centre, each
  BS's scatterer off its LOS line so that the NLOS path is 57, 159 and 85 m longer (19-53
  delay bins of ``c T_s = 3 m``), 3-9 dB weaker than the LOS and 27-38° off it at the
  BS; the UE's orientation keeps all six AOAs >= 20° from its array's endfire (where a
  ULA loses angle information). :meth:`SlabScenario.random` draws the paper's random
  placement (scatterers uniform in the same area, orientations uniform in ``[-π, π)``).

Nothing on the runtime path (model, estimators, algorithm rooms) imports this module: it
makes data (:meth:`SlabScenario.sample`, :meth:`SlabScenario.observation`) and runs the
algorithms on it (:func:`lce_problem`, :func:`scenario_sounder`, :func:`run_slab_on`).

References
----------
B. Zhou, A. Liu, V. Lau, "Successive localization and beamforming in 5G mmWave MIMO
communication systems", IEEE Trans. Signal Process. 67(6), 2019: §VII-A, eq. (11).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, planar_array_positions, random_beams
from estimators.observe import build_observation, complex_normal
from estimators.slab.lce import LceProblem
from estimators.slab.loop import BfrMethod, LceMethod, SlabRun, Sound, run_slab
from estimators.slab.model import (
    SlabGeometry,
    SlabSystem,
    arrival_vectors,
    azimuth,
    coefficient_matrix,
    departure_vectors,
    draw_gains,
    path_parameters,
    path_responses,
    pathloss_covariance,
    random_beamformers,
    received_signal,
    subcarrier_indices,
)
from estimators.types import Area, ArrayGeometry, ChannelTruth, Observation, ServiceArea
from estimators.typing import ComplexArray

Point = tuple[float, float]


@dataclass(frozen=True)
class SlabSample:
    """Observations of ``num_slots`` time slots (eq. 11).

    ``z [slot, bs, ue_ant, beam, subcarrier]`` complex128, ``gains [slot, bs, path]`` the
    fading ``h[k]`` drawn, ``beamformers [slot, bs, bs_ant, beam, subcarrier]`` used,
    ``noise_variance`` ``σ²`` [W] per UE antenna and sample.
    """

    z: ComplexArray
    gains: ComplexArray
    beamformers: ComplexArray
    noise_variance: float


@dataclass(frozen=True)
class SlabScenario:
    """The paper's simulation setting (§VII-A); placement and SNR: module docstring.

    Positions [m] in the plane, orientations and ``ue_yaw`` [rad] (broadside azimuths);
    ``scatterers``
    per BS, one tuple of ``L`` points each (the same ``L`` for every BS; ``()`` for LOS
    only). ``num_subcarriers`` is ``N'_C`` over all BSs, ``num_beams`` is ``M``,
    ``sampling_period`` ``T_s`` [s], ``path_loss_exponent`` the 3 of ``φ^{-3}``.
    """

    bs_positions: tuple[Point, ...] = ((150.0, 200.0), (850.0, 250.0), (400.0, 880.0))
    bs_orientations: tuple[float, ...] = (0.6, 2.5, -1.4)
    ue_position: Point = (520.0, 460.0)
    ue_yaw: float = 0.65
    scatterers: tuple[tuple[Point, ...], ...] = (
        ((260.0, 420.0),), ((700.0, 560.0),), ((600.0, 700.0),))
    num_subcarriers: int = 30
    num_beams: int = 20
    num_bs_antennas: int = 4
    num_ue_antennas: int = 4
    carrier_frequency: float = 6e9
    sampling_period: float = 10e-9
    snr_db: float = 20.0
    path_loss_exponent: float = 3.0
    beam_squint: bool = True
    area_m: float = 1000.0

    def __post_init__(self) -> None:
        J = len(self.bs_positions)
        if len(self.bs_orientations) != J or len(self.scatterers) != J:
            raise ValueError(
                f"{J} BS positions need as many orientations ({len(self.bs_orientations)}) "
                f"and scatterer lists ({len(self.scatterers)})"
            )
        if len({len(s) for s in self.scatterers}) > 1:
            raise ValueError("every BS needs the same number L of scatterers (NLOS paths)")
        subcarrier_indices(self.num_subcarriers, J)  # raises if N'_C is not a multiple

    @classmethod
    def random(
        cls, rng: np.random.Generator, *, num_bs: int = 3, num_nlos: int = 1,
        **settings: Any,
    ) -> SlabScenario:
        """The paper's random placement (§VII-A/B): BSs, UE and ``num_nlos`` scatterers
        per BS uniform in the square area, orientations uniform in ``[-π, π)``;
        ``settings`` override the other fields (``snr_db``, ``num_bs_antennas``...)."""
        side = float(settings.get("area_m", cls.area_m))

        def points(count: int) -> list[Point]:
            xy = rng.uniform(0.0, side, size=(count, 2))
            return [(float(a), float(b)) for a, b in xy]

        bs = points(num_bs)
        orientations = tuple(float(a) for a in rng.uniform(-np.pi, np.pi, size=num_bs))
        ue = points(1)[0]
        ue_yaw = float(rng.uniform(-np.pi, np.pi))
        scatterers = tuple(tuple(points(num_nlos)) for _ in range(num_bs))
        return cls(bs_positions=tuple(bs), bs_orientations=orientations, ue_position=ue,
                   ue_yaw=ue_yaw, scatterers=scatterers, **settings)

    @property
    def num_bs(self) -> int:
        """``J``."""
        return len(self.bs_positions)

    def area(self) -> Area:
        """The square the placement lives in, ``((0, 0), (area_m, area_m))`` [m] corners."""
        return ((0.0, 0.0), (self.area_m, self.area_m))

    @property
    def wavelength(self) -> float:
        """Carrier wavelength ``λ_c`` [m]."""
        return SPEED_OF_LIGHT / self.carrier_frequency

    def geometry(self) -> SlabGeometry:
        """The true geometry (BS poses and ``α``)."""
        J, L = self.num_bs, len(self.scatterers[0])
        return SlabGeometry(
            bs_position=np.asarray(self.bs_positions, dtype=np.float64).reshape(J, 2),
            bs_orientation=np.asarray(self.bs_orientations, dtype=np.float64),
            ue_position=np.asarray(self.ue_position, dtype=np.float64),
            ue_yaw=float(self.ue_yaw),
            scatterers=np.asarray(self.scatterers, dtype=np.float64).reshape(J, L, 2),
        )

    def system(self) -> SlabSystem:
        """Arrays (``d = λ_c / 2``) and subcarriers ``f_n = n / (N'_C T_s)``, ``n ∈ Θ_j``."""
        n = subcarrier_indices(self.num_subcarriers, self.num_bs)
        frequencies = n / (self.num_subcarriers * self.sampling_period)
        carriers = self.carrier_frequency + (frequencies if self.beam_squint
                                             else np.zeros_like(frequencies))
        half = self.wavelength / 2
        return SlabSystem(
            num_bs_antennas=self.num_bs_antennas, num_ue_antennas=self.num_ue_antennas,
            bs_spacing=half, ue_spacing=half, frequencies=np.asarray(frequencies, np.float64),
            wavelengths=np.asarray(SPEED_OF_LIGHT / carriers, dtype=np.float64),
        )

    def gain_covariance(self) -> ComplexArray:
        """``Σ`` ``[bs, path, path]``: ``diag(φ_{l,j}^{-2·3})`` (§VII-A)."""
        return pathloss_covariance(self.geometry(), self.path_loss_exponent)

    def noise_variance(self) -> float:
        """``σ²`` [W] from ``snr_db`` (definition: module docstring)."""
        cov = self.gain_covariance()
        power = self.num_bs_antennas * self.num_ue_antennas * np.mean(
            np.real(np.trace(cov, axis1=1, axis2=2)))
        return float(power / 10 ** (self.snr_db / 10))

    def random_beamformers(self, rng: np.random.Generator) -> ComplexArray:
        """``[bs, bs_ant, beam, subcarrier]`` random unit-norm BF vectors."""
        return random_beamformers(self.num_bs, self.num_bs_antennas, self.num_beams,
                                  self.num_subcarriers // self.num_bs, rng)

    def observation(
        self, n: int, rng: np.random.Generator, snr_db: float
    ) -> tuple[Observation, tuple[ChannelTruth, ...]]:
        """The setting as an :class:`~estimators.types.Observation` (the
        :class:`~estimators.scenario.Scenario` protocol) and its truth.

        Snapshot ``t`` is slot ``t`` of ``n`` (fresh fading ``h[t] ~ CN(0, Σ)``, the
        geometry fixed), every BS's channel on all ``N'_C`` subcarriers, at ``snr_db`` [dB]
        (the definition of :meth:`noise_variance`), with a closed-loop ``sounder``: SLAB
        chooses its BF vectors per slot and subcarrier, BS ``j`` sending on ``Θ_j`` only.
        The channel is the physical one, ``a_U a_B^T`` as the twin's: the model's
        ``a_B^H`` (eq. 1) with the BS elements in reverse order, so BF vector element
        ``t`` of the model is BS antenna ``N_B - 1 - t`` of the observation.

        The open-loop ``y`` (:func:`~estimators.observe.build_observation`) is one random
        unit-modulus precoder per beam, slot and BS on every subcarrier, pilots all ones,
        noise ``σ²`` for every BS (the noise is at the UE). Positions get ``z = 0`` and
        orientations ``(yaw, 0, 0)``; the arrays are ``1 x N`` ULAs at ``λ_c / 2``; the
        ``service_area`` is the placement square at UE height 0; ``physical_gains`` is
        ``False`` (the fading's variances ``Σ`` are the paper's path-loss law, not Friis').
        Narrowband only: with ``beam_squint`` the per-subcarrier wavelengths cannot be
        carried (raises ``ValueError``).

        The truth is one :class:`ChannelTruth` per BS (:data:`estimators.types.Truth`),
        ``L + 1`` paths each, the LOS first: gains ``√(N_B N_U) h`` (the gain of one
        antenna pair, as the twin's), world azimuths of departure and arrival at zenith
        ``π/2``, the scatterers at ``z = 0``.
        """
        if self.beam_squint:
            raise ValueError("observation(): an Observation carries one wavelength; "
                             "use beam_squint=False")
        setting = dataclasses.replace(self, snr_db=float(snr_db))
        J, NB, NU, M = self.num_bs, self.num_bs_antennas, self.num_ue_antennas, self.num_beams
        K = self.num_subcarriers
        frequencies = np.arange(1, K + 1) / (K * self.sampling_period)
        half = self.wavelength / 2
        every = SlabSystem(num_bs_antennas=NB, num_ue_antennas=NU, bs_spacing=half,
                           ue_spacing=half, frequencies=np.tile(frequencies, (J, 1)),
                           wavelengths=np.full((J, K), self.wavelength))
        geometry = self.geometry()
        mu = path_responses(every, geometry)  # [bs, subcarrier, ue, bs_ant, path]
        gains = draw_gains(self.gain_covariance(), n, rng)  # [slot, bs, path]
        # The paper's H = a_U a_B^H is the physical channel a_U a_B^T (the project's, the
        # twin's) with the BS elements numbered backwards: a_B(θ)^*[t] = a_B(θ)[N-1-t].
        cfr = np.einsum("bkrsp,tbp->tbrsk", mu[:, :, :, ::-1], gains)
        precoders = np.stack([random_beams(NB, M, rng) for _ in range(n * J)]
                             ).reshape(n, J, NB, M)
        ula = {N: ArrayGeometry(planar_array_positions(1, N, vertical_spacing_m=half,
                                                       horizontal_spacing_m=half), 1, N)
               for N in {NB, NU}}
        obs = build_observation(
            cfr, frequencies=frequencies, carrier_frequency=self.carrier_frequency,
            bs_position=np.column_stack([np.asarray(self.bs_positions), np.zeros(J)]),
            bs_orientation=np.column_stack([np.asarray(self.bs_orientations),
                                            np.zeros((J, 2))]),
            bs_array=ula[NB], ue_array=ula[NU], rng=rng, precoder=precoders,
            pilots="ones", noise_variance=setting.noise_variance(),
            snapshot_time=np.arange(n, dtype=np.float64), closed_loop=True)
        # The setting's prior: the placement square, every antenna in the plane z = 0.
        obs = dataclasses.replace(obs, service_area=ServiceArea(area=self.area(),
                                                                ue_height=0.0),
                                  physical_gains=False)  # Σ's path loss is not Friis'.
        return obs, self._truth(geometry, gains)

    def _truth(self, geometry: SlabGeometry, gains: ComplexArray
               ) -> tuple[ChannelTruth, ...]:
        """One :class:`ChannelTruth` per BS (``gains [slot, bs, path]`` the fading ``h``)."""
        n, J, P = gains.shape
        paths = path_parameters(geometry)
        zenith = np.full((J, P, 1), np.pi / 2)
        aod = np.concatenate([azimuth(departure_vectors(geometry))[..., None], zenith], -1)
        aoa = np.concatenate([azimuth(arrival_vectors(geometry))[..., None], zenith], -1)
        points = np.concatenate([np.full((J, 1, 2), np.nan), geometry.scatterers], axis=1)
        height = np.where(np.isnan(points[..., :1]), np.nan, 0.0)  # NaN for the LOS
        scatterer = np.concatenate([points, height], axis=2)
        amplitude = np.sqrt(self.num_bs_antennas * self.num_ue_antennas)

        def each(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.repeat(array[None], n, axis=0)

        return tuple(ChannelTruth(
            gain=np.asarray(amplitude * gains[:, j], dtype=np.complex128),
            tau=each(paths.tau[j]), aod=each(aod[j]), aoa=each(aoa[j]),
            valid=np.ones((n, P), bool), los=np.ones(n, bool),
            ue_position=each(np.array([*geometry.ue_position, 0.0])),
            scatterer=each(scatterer[j]),
            ue_orientation=each(np.array([geometry.ue_yaw, 0.0, 0.0])),
        ) for j in range(J))

    def sample(
        self, beamformers: npt.ArrayLike, rng: np.random.Generator, *, num_slots: int = 1
    ) -> SlabSample:
        """Received pilots of ``num_slots`` slots with fresh fading and noise (eq. 11).

        Parameters
        ----------
        beamformers : ``[bs, bs_ant, beam, subcarrier]`` (the same in every slot) or
            ``[slot, bs, bs_ant, beam, subcarrier]`` (``w[k]`` per slot), complex.
        rng : source of the fading ``h[k]`` and the noise.
        num_slots : number of slots ``K`` (must match a per-slot ``beamformers``).
        """
        w = np.asarray(beamformers, dtype=np.complex128)
        fixed = w.ndim == 4
        if fixed:
            w = np.broadcast_to(w, (num_slots, *w.shape))
        expected = (num_slots, self.num_bs, self.num_bs_antennas, self.num_beams,
                    self.num_subcarriers // self.num_bs)
        if w.shape != expected:
            raise ValueError(f"beamformers: expected {expected[1:]} or {expected}, got {w.shape}")
        mu = path_responses(self.system(), self.geometry())
        gains = draw_gains(self.gain_covariance(), num_slots, rng)
        if fixed:
            clean = received_signal(coefficient_matrix(mu, w[0]), gains)
        else:
            clean = np.stack([received_signal(coefficient_matrix(mu, w[s]), gains[s:s + 1])[0]
                              for s in range(num_slots)])
        sigma2 = self.noise_variance()
        noise = complex_normal(rng, clean.shape, sigma2)
        return SlabSample(z=clean + noise, gains=gains, beamformers=np.ascontiguousarray(w),
                          noise_variance=sigma2)


def small() -> SlabScenario:
    """The paper's setting reduced for the conformance test: narrowband (one wavelength,
    as an :class:`Observation` carries), ``N'_C = 12`` subcarriers (4 a BS), ``M = 4``
    beams; the geometry, arrays and SNR definition of :class:`SlabScenario`."""
    return SlabScenario(beam_squint=False, num_subcarriers=12, num_beams=4)


# ------------------------------------------------------------ running on the setting


def lce_problem(scenario: SlabScenario, sample: SlabSample, slot: int = 0) -> LceProblem:
    """Slot ``slot`` of a :meth:`SlabScenario.sample` as an LCE problem (BS poses and
    ``L`` from the scenario; its truth is not used)."""
    truth = scenario.geometry()
    return LceProblem(system=scenario.system(), bs_position=truth.bs_position,
                      bs_orientation=truth.bs_orientation, num_nlos=truth.num_nlos,
                      beamformers=np.asarray(sample.beamformers[slot]),
                      z=np.asarray(sample.z[slot]), noise_variance=sample.noise_variance,
                      area=scenario.area())


def scenario_sounder(scenario: SlabScenario, rng: np.random.Generator) -> Sound:
    """``sound(k, w)`` of the paper's model: one slot of :meth:`SlabScenario.sample` with
    fresh fading ``h[k] ~ CN(0, Σ)`` and noise from ``rng``, ``z [bs, ue_ant, beam,
    subcarrier]`` (``k`` unused: the geometry is static, eq. 11)."""

    def sound(k: int, beamformers: ComplexArray) -> ComplexArray:
        del k
        return np.asarray(scenario.sample(beamformers, rng).z[0])

    return sound


def run_slab_on(
    scenario: SlabScenario, rng: np.random.Generator, *, num_slots: int,
    bfr: BfrMethod = "slab", lce: LceMethod = "slls", known_covariance: bool = True,
    initial_beamformers: npt.ArrayLike | None = None, **options: Any,
) -> SlabRun:
    """:func:`~estimators.slab.loop.run_slab` on the synthetic model of ``scenario``
    (truth used only to sound).

    ``rng`` is split into three streams (``rng.spawn(3)``): the initial random BF ``w[1]``,
    the sounder (fading and noise), the algorithm (multi-start, lmi-bfr). The same seed
    gives every BFR method the same ``w[1]``, the same fading ``h[k]`` and the same noise
    samples (common random numbers), so methods compare pairwise.

    Parameters
    ----------
    scenario : the model.
    rng : the run's randomness.
    num_slots, bfr, lce : as :func:`~estimators.slab.loop.run_slab`.
    known_covariance : pass the scenario's Σ (the paper's assumption) or estimate it.
    initial_beamformers : ``[bs, bs_ant, beam, subcarrier]``, ``w[1]``; random if ``None``.
    options : further keyword arguments of :func:`~estimators.slab.loop.run_slab`
        (``initial_alpha``, ``multistart_options``, ``lce_options``, ``bfr_options``).

    Returns
    -------
    :class:`~estimators.slab.loop.SlabRun`.
    """
    beam_rng, channel_rng, algorithm_rng = rng.spawn(3)
    w1 = (scenario.random_beamformers(beam_rng) if initial_beamformers is None
          else np.asarray(initial_beamformers, dtype=np.complex128))
    truth: SlabGeometry = scenario.geometry()
    return run_slab(
        scenario_sounder(scenario, channel_rng), system=scenario.system(),
        bs_position=truth.bs_position, bs_orientation=truth.bs_orientation,
        num_nlos=truth.num_nlos, initial_beamformers=w1, num_slots=num_slots,
        rng=algorithm_rng, noise_variance=scenario.noise_variance(),
        area=scenario.area(), lce=lce, bfr=bfr,
        gain_covariance=scenario.gain_covariance() if known_covariance else None,
        **options,
    )
