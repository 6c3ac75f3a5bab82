"""Observations: pilots, precoders, combiners and noise on top of a channel.

Used by the twin (on ray-traced CFRs, via :mod:`twin.sounding`) and by the papers'
synthetic models alike, so both produce observations the same way. Everything random
is drawn from the ``rng`` passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, dft_beams, random_beams
from estimators.types import ArrayGeometry, Link, Observation, PositionPrior

BOLTZMANN_DBM_PER_HZ = -174.0
"""Thermal noise density ``k_B T_0`` at 290 K [dBm/Hz]."""

BeamSpec = Literal["random", "dft", "identity"] | npt.NDArray[np.complex128]


def _beams(
    spec: BeamSpec,
    array: ArrayGeometry,
    num_beams: int | None,
    wavelength: float,
    leading: tuple[int, int],
    rng: np.random.Generator,
    what: str,
) -> npt.NDArray[np.complex128]:
    n = array.num_ant
    if isinstance(spec, str):
        if spec == "identity":
            beams = np.eye(n, dtype=np.complex128)
        elif spec == "dft":
            beams = dft_beams(array.element_positions, wavelength, num_beams)
        elif spec == "random":
            beams = random_beams(n, num_beams or n, rng)
        else:
            raise ValueError(f"{what}: unknown beam kind '{spec}' (random, dft, identity)")
        return np.broadcast_to(beams, (*leading, *beams.shape)).astype(np.complex128)
    given = np.asarray(spec, dtype=np.complex128)
    if given.ndim == 2:
        given = np.broadcast_to(given, (*leading, *given.shape))
    if given.shape[:-1] != (*leading, n):
        raise ValueError(f"{what}: expected shape [..., {n}, beam], got {given.shape}")
    return given


def complex_normal(
    rng: np.random.Generator, shape: int | tuple[int, ...], variance: npt.ArrayLike = 1.0
) -> npt.NDArray[np.complex128]:
    """Circularly-symmetric complex Gaussian samples ``CN(0, variance)`` of ``shape``.

    ``variance`` broadcasts against ``shape`` (e.g. ``[snapshot, bs, 1, 1, 1]``). The
    real parts are drawn first, then the imaginary parts: every noise and random gain of
    the project comes from here, so one seed gives one stream.
    """
    real = rng.standard_normal(shape)
    imag = rng.standard_normal(shape)
    return np.asarray(np.sqrt(np.asarray(variance, dtype=np.float64) / 2) * (real + 1j * imag))


def mrt_beam(channel: npt.ArrayLike) -> npt.NDArray[np.complex128]:
    """``[tx_ant]`` one unit-norm wideband maximum-ratio beam for ``channel [rx_ant, tx_ant,
    subcarrier]``: the principal eigenvector of ``Σ_k H_k^H H_k`` (the most power summed
    over the subcarriers)."""
    h = np.asarray(channel, dtype=np.complex128)
    _, vectors = np.linalg.eigh(np.einsum("rsk,rtk->st", h.conj(), h))
    return np.asarray(vectors[:, -1])


@dataclass(frozen=True)
class ChannelSounder:
    """:class:`estimators.types.Sounder` of a known channel (the twin's ray-traced CFR or a
    paper's model): ``y[b, :, m, k] = H[t, b, :, :, k] F[b, k, :, m] s[m, k] + n``, ``n ~
    CN(0, noise_variance[t, b] I)``.

    Attributes
    ----------
    channel : ``[snapshot, bs, rx_ant, tx_ant, subcarrier]`` complex, in the link's
        direction (the uplink's is the downlink's transpose).
    pilots : ``[tx_beam, subcarrier]``, those of the open-loop observation.
    noise_variance : ``[snapshot, bs]`` [W], that of the open-loop observation.
    """

    channel: npt.NDArray[np.complex128] = field(repr=False)
    pilots: npt.NDArray[np.complex128]
    noise_variance: npt.NDArray[np.float64]

    def sound(
        self, t: int, precoders: npt.NDArray[np.complex128], rng: np.random.Generator
    ) -> npt.NDArray[np.complex128]:
        T, B, _, Nt, K = self.channel.shape
        F = np.asarray(precoders, dtype=np.complex128)
        M = self.pilots.shape[0]
        if not 0 <= t < T:
            raise ValueError(f"snapshot {t} out of range (0..{T - 1})")
        if F.shape != (B, K, Nt, M):
            raise ValueError(f"precoders: expected [bs, subcarrier, tx_ant, tx_beam] = "
                             f"{(B, K, Nt, M)}, got {F.shape}")
        if np.any(np.linalg.norm(F, axis=2) > 1 + 1e-9):
            raise ValueError("precoders: a beam has more than unit norm")
        y0 = np.einsum("brsk,bksm,mk->brmk", self.channel[t], F, self.pilots)
        return np.asarray(y0 + complex_normal(rng, y0.shape,
                                              self.noise_variance[t][:, None, None, None]))


def thermal_noise_variance(
    bandwidth_hz: float, num_subcarriers: int, noise_figure_db: float
) -> float:
    """Noise variance per subcarrier sample [W]: ``k_B T_0 (B / K) NF``."""
    dbm = BOLTZMANN_DBM_PER_HZ + 10 * np.log10(bandwidth_hz / num_subcarriers) + noise_figure_db
    return float(10 ** ((dbm - 30.0) / 10.0))


def build_observation(
    cfr: npt.ArrayLike,
    *,
    frequencies: npt.ArrayLike,
    carrier_frequency: float,
    bs_position: npt.ArrayLike,
    bs_orientation: npt.ArrayLike,
    bs_array: ArrayGeometry,
    ue_array: ArrayGeometry,
    rng: np.random.Generator,
    link: Link = "downlink",
    precoder: BeamSpec = "dft",
    num_beams: int | None = None,
    combiner: BeamSpec = "identity",
    num_streams: int | None = None,
    pilots: Literal["random", "ones"] = "random",
    snr_db: float | None = None,
    noise_variance: npt.ArrayLike | None = None,
    tx_power_dbm: float | None = None,
    noise_figure_db: float = 7.0,
    bandwidth_hz: float | None = None,
    snapshot_time: npt.ArrayLike | None = None,
    seed: int | None = None,
    closed_loop: bool = False,
) -> Observation:
    """Noisy pilot observations of a (downlink) CFR.

    ``y = W^H (H F diag(s) + N)``, ``N ~ CN(0, σ² I)`` per receive antenna.

    Parameters
    ----------
    cfr : ``[snapshot, bs, ue_ant, bs_ant, subcarrier]`` complex, the downlink channel
        (uplink uses its transpose by reciprocity).
    frequencies : ``[subcarrier]`` [Hz], baseband offsets.
    carrier_frequency : [Hz].
    bs_position, bs_orientation : ``[bs, 3]`` [m], [rad].
    bs_array, ue_array : array geometries.
    rng : source of pilots, random beams and noise.
    link : ``"downlink"`` (BS precodes, UE combines) or ``"uplink"``.
    precoder, combiner : ``"dft"``, ``"random"``, ``"identity"``, or an array
        ``[tx_ant, beam]`` / ``[snapshot, bs, tx_ant, beam]``.
    num_beams, num_streams : codebook sizes for ``"dft"``/``"random"``.
    pilots : ``"random"`` unit-modulus phases or all ``"ones"``, ``[beam, subcarrier]``.
    snr_db : mean received SNR per noiseless sample ``|W^H H F s|²`` of each snapshot
        and BS over the noise variance per receive antenna (the usual paper
        definition).
    noise_variance : ``σ²`` [W] per receive antenna and sample, absolute: a scalar or
        ``[snapshot, bs]`` (a paper that fixes the noise and scales the transmit power).
        Exactly one of ``snr_db``, ``noise_variance`` and ``tx_power_dbm``.
    tx_power_dbm : total transmit power over all subcarriers; with ``noise_figure_db``
        and ``bandwidth_hz`` the noise is thermal, ``k_B T_0 (B/K) NF`` per subcarrier,
        and the SNR follows the ray-traced path loss.
    closed_loop : attach a :class:`ChannelSounder` (``Observation.sounder``) of the same
        channel, pilots and noise level, for estimators that choose their own beams.
    """
    h = np.asarray(cfr, dtype=np.complex128)
    if h.ndim != 5:
        raise ValueError(f"cfr: expected [snapshot, bs, ue_ant, bs_ant, subcarrier], got {h.shape}")
    if sum(x is not None for x in (snr_db, noise_variance, tx_power_dbm)) != 1:
        raise ValueError("give exactly one of snr_db, noise_variance and tx_power_dbm")
    f = np.asarray(frequencies, dtype=np.float64)
    T, B, _, _, K = h.shape
    if link == "uplink":
        h = np.swapaxes(h, 2, 3)
        tx_array, rx_array = ue_array, bs_array
    else:
        tx_array, rx_array = bs_array, ue_array
    wavelength = SPEED_OF_LIGHT / carrier_frequency
    F = _beams(precoder, tx_array, num_beams, wavelength, (T, B), rng, "precoder")
    W = _beams(combiner, rx_array, num_streams, wavelength, (T, B), rng, "combiner")
    M = F.shape[-1]
    if pilots == "random":
        s = np.exp(1j * rng.uniform(0.0, 2.0 * np.pi, size=(M, K)))
    else:
        s = np.ones((M, K), dtype=np.complex128)
    if tx_power_dbm is not None:
        if bandwidth_hz is None:
            raise ValueError("tx_power_dbm needs bandwidth_hz for the thermal noise")
        s = s * np.sqrt(10 ** ((tx_power_dbm - 30.0) / 10.0) / K)
    y0 = np.einsum("tbrn,tbrsk,tbsm,mk->tbnmk", W.conj(), h, F, s)
    if tx_power_dbm is not None:
        assert bandwidth_hz is not None
        sigma2 = np.full((T, B), thermal_noise_variance(bandwidth_hz, K, noise_figure_db))
    elif noise_variance is not None:
        sigma2 = np.broadcast_to(np.asarray(noise_variance, dtype=np.float64), (T, B)).copy()
        if not np.all(np.isfinite(sigma2) & (sigma2 >= 0)):
            raise ValueError("noise_variance must be finite and non-negative")
    else:
        assert snr_db is not None
        power = np.mean(np.abs(y0) ** 2, axis=(2, 3, 4))
        # A snapshot without any path has no signal to refer to: use the run's mean.
        fallback = power[power > 0].mean() if np.any(power > 0) else 1.0
        sigma2 = np.where(power > 0, power, fallback) / 10 ** (snr_db / 10.0)
    noise = complex_normal(rng, (T, B, h.shape[2], M, K), sigma2[:, :, None, None, None])
    y = y0 + np.einsum("tbrn,tbrmk->tbnmk", W.conj(), noise)
    return Observation(
        y=y,
        precoders=np.ascontiguousarray(F),
        combiners=np.ascontiguousarray(W),
        pilots=s,
        frequencies=f,
        carrier_frequency=float(carrier_frequency),
        noise_variance=sigma2,
        bs_position=np.asarray(bs_position, dtype=np.float64),
        bs_orientation=np.asarray(bs_orientation, dtype=np.float64),
        bs_array=bs_array,
        ue_array=ue_array,
        link=link,
        snapshot_time=np.asarray(snapshot_time if snapshot_time is not None else np.zeros(T)),
        seed=seed,
        sounder=ChannelSounder(h, s, sigma2) if closed_loop else None,
    )


def select_snapshots(obs: Observation, index: npt.ArrayLike) -> Observation:
    """The observation of the snapshots ``index [n]`` only (in that order): every
    per-snapshot field sliced (``y``, beams, noise, times, the prior, a
    :class:`ChannelSounder`'s channel), the same noise draws as in ``obs``, so a snapshot
    gets the same estimate whether or not the others are estimated with it.

    Raises ``ValueError`` for an index outside ``obs``'s snapshots, or a closed-loop
    sounder that is not a :class:`ChannelSounder` (it cannot be sliced).
    """
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    T = obs.num_snapshots
    if idx.size and (idx.min() < 0 or idx.max() >= T):
        raise ValueError(f"snapshots {idx.tolist()} are not all in 0..{T - 1}")
    sounder = obs.sounder
    if sounder is not None:
        if not isinstance(sounder, ChannelSounder):
            raise ValueError(f"cannot select snapshots of a {type(sounder).__name__}")
        sounder = ChannelSounder(sounder.channel[idx], sounder.pilots,
                                 sounder.noise_variance[idx])
    prior = obs.prior
    if prior is not None:
        prior = PositionPrior(mean=prior.mean[idx], covariance=prior.covariance[idx])
    times = obs.snapshot_time[idx] if obs.snapshot_time.shape == (T,) else obs.snapshot_time
    return dataclasses.replace(
        obs, y=obs.y[idx], noise_variance=obs.noise_variance[idx], snapshot_time=times,
        precoders=obs.precoders[idx], combiners=obs.combiners[idx], sounder=sounder,
        prior=prior)
