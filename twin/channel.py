"""MIMO-OFDM channels from the traced paths."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from twin.paths import PathSet

# Snapshots per chunk: bounds the [chunk, B, P, Nr, Nt, K] temporary.
_MAX_CHUNK_ELEMENTS = 1 << 24


def _chunks(pathset: PathSet, per_snapshot: int) -> list[slice]:
    step = max(1, _MAX_CHUNK_ELEMENTS // max(per_snapshot, 1))
    return [slice(s, s + step) for s in range(0, pathset.num_snapshots, step)]


def cfr(pathset: PathSet, frequencies: npt.ArrayLike) -> npt.NDArray[np.complex64]:
    """Channel frequency response.

    ``H[t, b, r, s, k] = Σ_p gain[t, b, p, r, s] exp(-j 2π f_k τ[t, b, p])`` over valid
    paths (absolute delays: no normalisation, so ToA information is kept).

    Parameters
    ----------
    pathset : the traced paths.
    frequencies : ``[subcarrier]`` [Hz], baseband offsets from the carrier.

    Returns
    -------
    ``[snapshot, bs, rx_ant, tx_ant, subcarrier]`` complex64 (rx = UE, tx = BS).
    """
    f = np.asarray(frequencies, dtype=np.float64)
    T, B, P, Nr, Nt = pathset.gain.shape
    out = np.empty((T, B, Nr, Nt, f.size), dtype=np.complex64)
    for sl in _chunks(pathset, B * P * f.size * max(Nr * Nt, 1)):
        valid = pathset.valid[sl]
        tau = np.where(valid, pathset.tau[sl], 0.0)
        phase = np.exp(-2j * np.pi * tau[..., None] * f) * valid[..., None]  # [t, B, P, K]
        out[sl] = np.einsum("tbprs,tbpk->tbrsk", pathset.gain[sl].astype(np.complex128), phase)
    return out


def cir_taps(
    pathset: PathSet, bandwidth_hz: float, num_taps: int
) -> npt.NDArray[np.complex64]:
    """Discrete channel impulse response, sinc-interpolated at the sample rate ``B``.

    ``h[t, b, r, s, l] = Σ_p gain[t, b, p, r, s] sinc(l - B τ[t, b, p])``, ``l = 0..L-1``
    (absolute delays: tap 0 is time 0 at the BS).

    Returns
    -------
    ``[snapshot, bs, rx_ant, tx_ant, tap]`` complex64.
    """
    T, B, P, Nr, Nt = pathset.gain.shape
    taps = np.arange(num_taps, dtype=np.float64)
    out = np.empty((T, B, Nr, Nt, num_taps), dtype=np.complex64)
    for sl in _chunks(pathset, B * P * num_taps * max(Nr * Nt, 1)):
        valid = pathset.valid[sl]
        delay_samples = np.where(valid, pathset.tau[sl], 0.0) * bandwidth_hz
        kernel = np.sinc(taps - delay_samples[..., None]) * valid[..., None]  # [t, B, P, L]
        out[sl] = np.einsum("tbprs,tbpl->tbrsl", pathset.gain[sl].astype(np.complex128), kernel)
    return out
